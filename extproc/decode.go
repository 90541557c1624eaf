package extproc

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
		num, typ, n := next(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case (num == 2 || num == 3) && typ == protowire.BytesType && !oneof:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			hh := new(extprocv3.HttpHeaders)
			if !httpHeaders(v, hh) {
				return false
			}
			if num == 2 {
				m.Request = &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: hh}
			} else {
				m.Request = &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: hh}
			}
			oneof = true
			b = b[n:]
		case num == 9 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			if m.Attributes == nil {
				m.Attributes = map[string]*structpb.Struct{}
			}
			if !attributeEntry(v, m.Attributes) {
				return false
			}
			b = b[n:]
		case num == 10 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			m.ObservabilityMode = v != 0
			b = b[n:]
		case num == 11 && typ == protowire.BytesType && !protocol:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			pc := new(extprocv3.ProtocolConfiguration)
			if !protocolConfig(v, pc) {
				return false
			}
			m.ProtocolConfig = pc
			protocol = true
			b = b[n:]
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

// next reads one field's tag; typ is -1 at a malformed tag.
func next(b []byte) (num protowire.Number, typ protowire.Type, n int) {
	num, typ, n = protowire.ConsumeTag(b)
	if n < 0 {
		return 0, -1, n
	}
	return num, typ, n
}

// httpHeaders decodes HttpHeaders: headers = 1, end_of_stream = 3 (the
// deprecated attributes = 2 is left to the generic decoder).
func httpHeaders(b []byte, hh *extprocv3.HttpHeaders) bool {
	seen := false
	for len(b) > 0 {
		num, typ, n := next(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType && !seen:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			hm := new(corev3.HeaderMap)
			if !headerMap(v, hm) {
				return false
			}
			hh.Headers = hm
			seen = true
			b = b[n:]
		case num == 3 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			hh.EndOfStream = v != 0
			b = b[n:]
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
	for rest := b; len(rest) > 0; {
		num, typ, n := next(rest)
		if n < 0 || num != 1 || typ != protowire.BytesType {
			return false
		}
		rest = rest[n:]
		_, n = protowire.ConsumeBytes(rest)
		if n < 0 {
			return false
		}
		rest = rest[n:]
		count++
	}
	if count == 0 {
		return true
	}
	vals := make([]corev3.HeaderValue, count)
	hm.Headers = make([]*corev3.HeaderValue, count)
	for i := range vals {
		_, _, n := next(b)
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		b = b[n:]
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
		num, typ, n := next(b)
		if n < 0 || typ != protowire.BytesType {
			return false
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch num {
		case 1:
			if !utf8.Valid(v) {
				return false
			}
			hv.Key = str(v)
		case 2:
			if !utf8.Valid(v) {
				return false
			}
			hv.Value = str(v)
		case 3:
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
		num, typ, n := next(val)
		if n < 0 || num != 1 || typ != protowire.BytesType {
			return false
		}
		val = val[n:]
		e, n := protowire.ConsumeBytes(val)
		if n < 0 {
			return false
		}
		val = val[n:]
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
		num, typ, n := next(b)
		if n < 0 || typ != protowire.BytesType {
			return "", nil, false
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return "", nil, false
		}
		b = b[n:]
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
// nil for anything else.
func scalarValue(b []byte) *structpb.Value {
	num, typ, n := next(b)
	if n < 0 {
		return nil
	}
	b = b[n:]
	v := new(structpb.Value)
	switch {
	case num == 1 && typ == protowire.VarintType:
		x, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return nil
		}
		v.Kind, b = &structpb.Value_NullValue{NullValue: structpb.NullValue(int32(x))}, b[n:]
	case num == 2 && typ == protowire.Fixed64Type:
		x, n := protowire.ConsumeFixed64(b)
		if n < 0 {
			return nil
		}
		v.Kind, b = &structpb.Value_NumberValue{NumberValue: math.Float64frombits(x)}, b[n:]
	case num == 3 && typ == protowire.BytesType:
		x, n := protowire.ConsumeBytes(b)
		if n < 0 || !utf8.Valid(x) {
			return nil
		}
		v.Kind, b = &structpb.Value_StringValue{StringValue: str(x)}, b[n:]
	case num == 4 && typ == protowire.VarintType:
		x, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return nil
		}
		v.Kind, b = &structpb.Value_BoolValue{BoolValue: x != 0}, b[n:]
	default:
		return nil
	}
	if len(b) > 0 {
		return nil // a second field: the generic decoder
	}
	return v
}

// protocolConfig decodes ProtocolConfiguration: request_body_mode = 1,
// response_body_mode = 2 (enums), send_body_without_waiting_for_header_response = 3.
func protocolConfig(b []byte, pc *extprocv3.ProtocolConfiguration) bool {
	for len(b) > 0 {
		num, typ, n := next(b)
		if n < 0 || typ != protowire.VarintType {
			return false
		}
		b = b[n:]
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch num {
		case 1:
			pc.RequestBodyMode = procmodev3.ProcessingMode_BodySendMode(int32(v))
		case 2:
			pc.ResponseBodyMode = procmodev3.ProcessingMode_BodySendMode(int32(v))
		case 3:
			pc.SendBodyWithoutWaitingForHeaderResponse = v != 0
		default:
			return false
		}
	}
	return true
}
