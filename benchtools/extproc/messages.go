package main

import (
	"encoding/binary"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/proto"
)

// requestHeadersMsg is a typical request as an ingress gateway hands it
// over: pseudo-headers, a few client headers, Envoy's x-request-id, a W3C
// context. id makes the path and the x-request-id unique.
func requestHeadersMsg(id string) *extprocv3.ProcessingRequest {
	kv := []string{
		":method", "GET", ":path", "/api/v1/orders/" + id, ":authority", "shop.example.com", ":scheme", "https",
		"user-agent", "Mozilla/5.0 (X11; Linux x86_64)", "accept", "application/json", "accept-encoding", "gzip, br",
		"x-forwarded-for", "203.0.113.9", "x-forwarded-proto", "https",
		"x-request-id", "5f0c7b2e-" + id,
		"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"tracestate", "vendor=abc",
	}
	hm := &corev3.HeaderMap{Headers: make([]*corev3.HeaderValue, 0, len(kv)/2)}
	for i := 0; i < len(kv); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: hm}}}
}

var responseHeaders = &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
	{Key: ":status", RawValue: []byte("200")}, {Key: "content-type", RawValue: []byte("application/json")}, {Key: "content-length", RawValue: []byte("512")},
}}}}}

// marshalGRPC is m as one gRPC length-prefixed message.
func marshalGRPC(m proto.Message) ([]byte, error) {
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return append(binary.BigEndian.AppendUint32([]byte{0}, uint32(len(b))), b...), nil
}
