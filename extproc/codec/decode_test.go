package codec

import (
	"bytes"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	procmodev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// decodeCases are requests as Envoy sends them; fast says whether
// decodeRequest decodes them itself (the others go to proto.Unmarshal).
var decodeCases = []struct {
	name string
	msg  *extprocv3.ProcessingRequest
	fast bool
}{
	{"request headers, raw_value", reqHeadersMsg(hmap(":method", "GET", ":path", "/a", "x-request-id", "1", "traceparent", validTP), nil), true},
	{"request headers, value (older Envoy)", reqHeadersMsg(hmapValue(":method", "GET", "traceparent", validTP), nil), true},
	{"request headers with attributes", reqHeadersMsg(hmap(":path", "/"), attrs(
		attrSourceAddress, "10.0.0.7:5123", attrListenerDirection, 1.0, attrPeerURISAN, "spiffe://cluster.local/ns/a/sa/b", "flag", true)), true},
	{"request headers, two filters' attributes", &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: hmap("a", "b"), EndOfStream: true}},
		Attributes: map[string]*structpb.Struct{
			"envoy.filters.http.ext_proc": {Fields: map[string]*structpb.Value{"n": structpb.NewNullValue()}},
			"tracebridge":                 {},
		},
	}, true},
	{"response headers, protocol config, observability", &extprocv3.ProcessingRequest{
		Request:           &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: hmap(":status", "200")}},
		ObservabilityMode: true,
		ProtocolConfig:    &extprocv3.ProtocolConfiguration{RequestBodyMode: procmodev3.ProcessingMode_FULL_DUPLEX_STREAMED, ResponseBodyMode: procmodev3.ProcessingMode_BUFFERED, SendBodyWithoutWaitingForHeaderResponse: true},
	}, true},
	{"empty header map", reqHeadersMsg(&corev3.HeaderMap{}, nil), true},
	{"no header map", &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{}}}, true},
	{"large header", reqHeadersMsg(hmap("cookie", strings.Repeat("c=1; ", 4000)), nil), true},
	{"request body", &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: []byte("x"), EndOfStream: true}}}, false},
	{"response trailers", &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseTrailers{ResponseTrailers: &extprocv3.HttpTrailers{}}}, false},
	{"metadata context", &extprocv3.ProcessingRequest{
		Request:         &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: hmap("a", "b")}},
		MetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"x": {}}},
	}, false},
	{"nested attribute value", reqHeadersMsg(hmap("a", "b"), attrs("list", []any{"x"})), false},
	{"deprecated HttpHeaders.attributes", &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
		Headers: hmap("a", "b"),
		//lint:ignore SA1019 Envoy before 1.29 sent the attributes here.
		Attributes: attrs(attrSourceAddress, "10.0.0.7"),
	}}}, false},
	{"flow control only", &extprocv3.ProcessingRequest{ClientWindowUpdate: &extprocv3.ProcessingRequest_ClientWindowUpdate{}}, false},
}

// TestDecodeRequest: the headers messages take decodeRequest and come out
// as proto.Unmarshal makes them; the others are left to proto.Unmarshal.
// Through the codec, every message decodes equal to the original.
func TestDecodeRequest(t *testing.T) {
	c := newCodec()
	for _, tc := range decodeCases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := proto.Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			var got extprocv3.ProcessingRequest
			if fast := decodeRequest(bytes.Clone(b), &got); fast != tc.fast {
				t.Fatalf("decodeRequest took the message: %v, want %v", fast, tc.fast)
			} else if fast && !proto.Equal(&got, tc.msg) {
				t.Fatalf("decodeRequest:\n got %v\nwant %v", &got, tc.msg)
			}
			if tc.fast && !notBodyOrTrailers(mem.BufferSlice{mem.SliceBuffer(b[:1]), mem.SliceBuffer(b[1:])}) {
				t.Fatal("the codec would not try decodeRequest on this message")
			}
			var viaCodec extprocv3.ProcessingRequest
			if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &viaCodec); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(&viaCodec, tc.msg) {
				t.Fatalf("codec:\n got %v\nwant %v", &viaCodec, tc.msg)
			}
		})
	}
}

// TestDecodeRequestEdges: encodings protobuf accepts or refuses in ways
// the fast path must match (or leave to protobuf).
func TestDecodeRequestEdges(t *testing.T) {
	hv := func(fields ...[]byte) []byte { return bytes.Join(fields, nil) }
	field := func(num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
	}
	headers := func(vals ...[]byte) []byte {
		var hm []byte
		for _, v := range vals {
			hm = append(hm, field(1, v)...)
		}
		return field(2, field(1, hm)) // request_headers { headers { headers: ... } }
	}
	cases := []struct {
		name string
		b    []byte
	}{
		{"key given twice (last wins)", headers(hv(field(1, []byte("a")), field(1, []byte("b")), field(3, []byte("v"))))},
		{"invalid UTF-8 key (protobuf refuses)", headers(hv(field(1, []byte{0xff}), field(3, []byte("v"))))},
		{"invalid UTF-8 value (protobuf refuses)", headers(hv(field(1, []byte("k")), field(2, []byte{0xc0})))},
		{"raw_value may hold any bytes", headers(hv(field(1, []byte("k")), field(3, []byte{0xff, 0})))},
		{"request_headers twice (protobuf merges)", append(headers(hv(field(1, []byte("a")))), headers(hv(field(1, []byte("b"))))...)},
		{"unknown field", append(headers(hv(field(1, []byte("a")))), field(99, nil)...)},
		{"truncated", headers(hv(field(1, []byte("abc"))))[:7]},
		{"wrong wire type for key", headers(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 5))},
		{"observability mode only (no kind)", protowire.AppendVarint(protowire.AppendTag(nil, 10, protowire.VarintType), 1)},
	}
	c := newCodec()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkDecode(t, tc.b)
			var viaCodec, want extprocv3.ProcessingRequest
			errCodec := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(tc.b)}, &viaCodec)
			errWant := proto.Unmarshal(tc.b, &want)
			if (errCodec == nil) != (errWant == nil) {
				t.Fatalf("codec error %v, protobuf error %v", errCodec, errWant)
			}
			if errWant == nil && !sameMessage(&viaCodec, &want) {
				t.Fatalf("codec:\n got %v\nwant %v", &viaCodec, &want)
			}
		})
	}
}

// checkDecode fails when decodeRequest accepts b and proto.Unmarshal
// refuses it or reads something else.
func checkDecode(t *testing.T, b []byte) {
	t.Helper()
	var got, want extprocv3.ProcessingRequest
	if !decodeRequest(bytes.Clone(b), &got) {
		return
	}
	if err := proto.Unmarshal(b, &want); err != nil {
		t.Fatalf("decodeRequest accepted what protobuf refuses (%v): %v", err, &got)
	}
	if !sameMessage(&got, &want) {
		t.Fatalf("decodeRequest:\n got %v\nwant %v", &got, &want)
	}
}

// sameMessage is proto.Equal, except that NaN numbers with the same bits
// are equal (proto.Equal holds NaN unequal to itself).
func sameMessage(a, b proto.Message) bool {
	if proto.Equal(a, b) {
		return true
	}
	det := proto.MarshalOptions{Deterministic: true}
	ab, err1 := det.Marshal(a)
	bb, err2 := det.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ab, bb)
}

// FuzzDecodeRequest: protobuf's decoder is the oracle.
func FuzzDecodeRequest(f *testing.F) {
	for _, tc := range decodeCases {
		b, err := proto.Marshal(tc.msg)
		if err != nil {
			f.Fatal(err)
		}
		// The 20 KB header is left out: the fuzzer spends minutes
		// minimizing each new input derived from it.
		if len(b) < 4096 {
			f.Add(b)
		}
	}
	f.Fuzz(checkDecode)
}

// TestNotBodyOrTrailers: the codec does not copy bodies and trailers for
// the headers decoder.
func TestNotBodyOrTrailers(t *testing.T) {
	cases := []struct {
		name string
		msg  *extprocv3.ProcessingRequest
		want bool
	}{
		{"request headers", reqHeadersMsg(hmap("a", "b"), nil), true},
		{"response headers", respHeadersMsg(hmap(":status", "200")), true},
		{"request body", &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: []byte("x")}}}, false},
		{"response body", &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{}}}, false},
		{"request trailers", &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestTrailers{RequestTrailers: &extprocv3.HttpTrailers{}}}, false},
		{"response trailers", &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseTrailers{ResponseTrailers: &extprocv3.HttpTrailers{}}}, false},
		{"empty", &extprocv3.ProcessingRequest{}, false},
	}
	for _, tc := range cases {
		b, err := proto.Marshal(tc.msg)
		if err != nil {
			t.Fatal(err)
		}
		if got := notBodyOrTrailers(mem.BufferSlice{mem.SliceBuffer(b)}); got != tc.want {
			t.Errorf("%s: notBodyOrTrailers = %v, want %v", tc.name, got, tc.want)
		}
	}
}
