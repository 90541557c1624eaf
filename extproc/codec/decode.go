package codec

import (
	"math"
	"unicode/utf8"
	"unsafe"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	procmodev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/structpb"
)

// decodeRequest decodes the ProcessingRequests Envoy sends for headers into
// m (which must be empty) and reports whether it did; anything else
// (bodies, trailers, metadata, nested attribute values, unknown or repeated
// message fields, malformed input) it leaves to proto.Unmarshal, which
// fills m the same way (FuzzDecodeRequest checks proto.Equal) or fails.
//
// Why: protobuf's generic decoder allocates every HeaderValue, key and
// value separately (≈ 40 allocations for a 12-header request). Here the
// message is copied once and every string and bytes field is a view of
// that copy, and the HeaderValues are one block. Nothing writes to the
// copy afterwards: a decoded message must be treated as read-only (gRPC
// hands a received message to its handler only).
//
// Field numbers are those of envoy/service/ext_proc/v3/external_processor.proto,
// envoy/config/core/v3/base.proto and google/protobuf/struct.proto.
func decodeRequest(b []byte, m *extprocv3.ProcessingRequest) bool {
	var oneof, protocol bool
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok {
			return false
		}
		b = rest
		switch {
		case (f.num == 2 || f.num == 3) && f.typ == protowire.BytesType && !oneof:
			hh := new(extprocv3.HttpHeaders)
			if !httpHeaders(f.v, hh) {
				return false
			}
			if f.num == 2 {
				m.Request = &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: hh}
			} else {
				m.Request = &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: hh}
			}
			oneof = true
		case f.num == 9 && f.typ == protowire.BytesType:
			if m.Attributes == nil {
				m.Attributes = map[string]*structpb.Struct{}
			}
			if !attributeEntry(f.v, m.Attributes) {
				return false
			}
		case f.num == 10 && f.typ == protowire.VarintType:
			m.ObservabilityMode = f.x != 0
		case f.num == 11 && f.typ == protowire.BytesType && !protocol:
			pc := new(extprocv3.ProtocolConfiguration)
			if !protocolConfig(f.v, pc) {
				return false
			}
			m.ProtocolConfig = pc
			protocol = true
		default:
			// Other fields, a message field seen twice (protobuf merges
			// them) or an unexpected wire type: the generic decoder.
			return false
		}
	}
	return oneof
}

// str views b (a slice of the message's own copy) as a string.
func str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// field is one field of a message: its number and wire type, and its
// payload: v for length-delimited fields, x for varint and fixed64 ones.
type field struct {
	num protowire.Number
	typ protowire.Type
	v   []byte
	x   uint64
}

// nextField reads the field at the start of b and returns what follows it.
// ok is false for a malformed field and for the wire types no message here
// uses (fixed32, groups): those go to the generic decoder.
func nextField(b []byte) (f field, rest []byte, ok bool) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return f, nil, false
	}
	b = b[n:]
	f.num, f.typ = num, typ
	switch typ {
	case protowire.BytesType:
		f.v, n = protowire.ConsumeBytes(b)
	case protowire.VarintType:
		f.x, n = protowire.ConsumeVarint(b)
	case protowire.Fixed64Type:
		f.x, n = protowire.ConsumeFixed64(b)
	default:
		return f, nil, false
	}
	if n < 0 {
		return f, nil, false
	}
	return f, b[n:], true
}

// bytesField reads a length-delimited field at the start of b: the hot
// loops (header values, map entries) take only those, and skip nextField's
// other cases.
func bytesField(b []byte) (num protowire.Number, v, rest []byte, ok bool) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || typ != protowire.BytesType {
		return 0, nil, nil, false
	}
	v, m := protowire.ConsumeBytes(b[n:])
	if m < 0 {
		return 0, nil, nil, false
	}
	return num, v, b[n+m:], true
}

// httpHeaders decodes HttpHeaders: headers = 1, end_of_stream = 3 (the
// deprecated attributes = 2 is left to the generic decoder).
func httpHeaders(b []byte, hh *extprocv3.HttpHeaders) bool {
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok {
			return false
		}
		b = rest
		switch {
		case f.num == 1 && f.typ == protowire.BytesType && hh.Headers == nil:
			hm := new(corev3.HeaderMap)
			if !headerMap(f.v, hm) {
				return false
			}
			hh.Headers = hm
		case f.num == 3 && f.typ == protowire.VarintType:
			hh.EndOfStream = f.x != 0
		default:
			return false
		}
	}
	return true
}

// headerMap decodes HeaderMap: repeated HeaderValue headers = 1. The
// values are counted first so that they take one allocation.
func headerMap(b []byte, hm *corev3.HeaderMap) bool {
	count := 0
	for rest := b; len(rest) > 0; count++ {
		num, _, r, ok := bytesField(rest)
		if !ok || num != 1 {
			return false
		}
		rest = r
	}
	if count == 0 {
		return true
	}
	vals := make([]corev3.HeaderValue, count)
	hm.Headers = make([]*corev3.HeaderValue, count)
	for i := range vals {
		_, v, rest, _ := bytesField(b) // checked by the count
		b = rest
		if !decodeHeaderValue(v, &vals[i]) {
			return false
		}
		hm.Headers[i] = &vals[i]
	}
	return true
}

// decodeHeaderValue decodes HeaderValue: key = 1, value = 2 (strings, UTF-8 as
// proto3 requires), raw_value = 3. A repeated scalar field: the last wins.
func decodeHeaderValue(b []byte, hv *corev3.HeaderValue) bool {
	for len(b) > 0 {
		num, v, rest, ok := bytesField(b)
		if !ok {
			return false
		}
		b = rest
		switch {
		case num == 1 && utf8.Valid(v):
			hv.Key = str(v)
		case num == 2 && utf8.Valid(v):
			hv.Value = str(v)
		case num == 3:
			hv.RawValue = v[:len(v):len(v)]
		default:
			return false
		}
	}
	return true
}

// attributeEntry decodes one map<string, Struct> entry (key = 1, value = 2)
// into attrs; a later entry with the same key replaces an earlier one.
func attributeEntry(b []byte, attrs map[string]*structpb.Struct) bool {
	key, val, ok := mapEntry(b)
	if !ok {
		return false
	}
	st := &structpb.Struct{}
	for len(val) > 0 {
		num, e, rest, ok := bytesField(val)
		if !ok || num != 1 {
			return false
		}
		val = rest
		fk, fv, ok := mapEntry(e)
		if !ok {
			return false
		}
		v := scalarValue(fv)
		if v == nil {
			return false
		}
		if st.Fields == nil {
			st.Fields = map[string]*structpb.Value{}
		}
		st.Fields[fk] = v
	}
	attrs[key] = st
	return true
}

// mapEntry splits a map entry with a string key (field 1, UTF-8) and a
// message value (field 2), both present exactly once.
func mapEntry(b []byte) (key string, val []byte, ok bool) {
	var haveKey, haveVal bool
	for len(b) > 0 {
		num, v, rest, ok := bytesField(b)
		if !ok {
			return "", nil, false
		}
		b = rest
		switch {
		case num == 1 && !haveKey && utf8.Valid(v):
			key, haveKey = str(v), true
		case num == 2 && !haveVal:
			val, haveVal = v, true
		default:
			return "", nil, false
		}
	}
	return key, val, haveKey && haveVal
}

// scalarValue decodes a google.protobuf.Value holding exactly one of
// null_value = 1, number_value = 2, string_value = 3, bool_value = 4;
// nil for anything else (a second field included: the generic decoder).
func scalarValue(b []byte) *structpb.Value {
	f, rest, ok := nextField(b)
	if !ok || len(rest) > 0 {
		return nil
	}
	v := new(structpb.Value)
	switch {
	case f.num == 1 && f.typ == protowire.VarintType:
		v.Kind = &structpb.Value_NullValue{NullValue: structpb.NullValue(int32(f.x))}
	case f.num == 2 && f.typ == protowire.Fixed64Type:
		v.Kind = &structpb.Value_NumberValue{NumberValue: math.Float64frombits(f.x)}
	case f.num == 3 && f.typ == protowire.BytesType && utf8.Valid(f.v):
		v.Kind = &structpb.Value_StringValue{StringValue: str(f.v)}
	case f.num == 4 && f.typ == protowire.VarintType:
		v.Kind = &structpb.Value_BoolValue{BoolValue: f.x != 0}
	default:
		return nil
	}
	return v
}

// protocolConfig decodes ProtocolConfiguration: request_body_mode = 1,
// response_body_mode = 2 (enums), send_body_without_waiting_for_header_response = 3.
func protocolConfig(b []byte, pc *extprocv3.ProtocolConfiguration) bool {
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok || f.typ != protowire.VarintType {
			return false
		}
		b = rest
		switch f.num {
		case 1:
			pc.RequestBodyMode = procmodev3.ProcessingMode_BodySendMode(int32(f.x))
		case 2:
			pc.ResponseBodyMode = procmodev3.ProcessingMode_BodySendMode(int32(f.x))
		case 3:
			pc.SendBodyWithoutWaitingForHeaderResponse = f.x != 0
		default:
			return false
		}
	}
	return true
}
