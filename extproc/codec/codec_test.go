package codec

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tracebridge/tracebridge/engine"
)

// TestCodecRoundTrip: what the codec writes, protobuf reads back equal, for
// the replies tracebridge sends (small ones and one above gRPC's buffer
// pooling threshold) and for a message without vtprotobuf code.
func TestCodecRoundTrip(t *testing.T) {
	set := func(name, value string) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: name, RawValue: []byte(value)}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
	}
	headers := func(muts ...*corev3.HeaderValueOption) *extprocv3.HeadersResponse {
		return &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: muts, RemoveHeaders: []string{"x-b3-flags"}}}}
	}
	cases := []struct {
		name string
		msg  proto.Message
	}{
		{"empty request headers reply", &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}},
		{"request headers reply with mutations and metadata", &extprocv3.ProcessingResponse{
			Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: headers(
				set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
				set("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"), set("x-b3-spanid", "00f067aa0ba902b7"), set("x-b3-sampled", "1"))},
			DynamicMetadata: &structpb.Struct{Fields: map[string]*structpb.Value{engine.MetadataNamespace: structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
				"trace_id": structpb.NewStringValue("4bf92f3577b34da6a3ce929d0e0e4736"), "format": structpb.NewStringValue("w3c"),
			}})}},
		}},
		{"response headers reply", &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: headers(set("traceresponse", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))}}},
		{"immediate response", &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode_BadRequest}, Body: []byte("bad trace context"), Details: "tracebridge_rejected"}}}},
		{"reply above the pooling threshold", &extprocv3.ProcessingResponse{
			Response:        &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: headers(set("baggage", strings.Repeat("k=v,", 2048)))},
			DynamicMetadata: &structpb.Struct{Fields: map[string]*structpb.Value{"n": structpb.NewNumberValue(1.5), "b": structpb.NewBoolValue(true)}},
		}},
		{"message without vtprotobuf code", &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}},
	}
	c := newCodec()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data, err := c.Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			b := data.Materialize()
			data.Free()
			got := tc.msg.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(b, got); err != nil {
				t.Fatalf("proto.Unmarshal of the codec's bytes: %v", err)
			}
			if !proto.Equal(got, tc.msg) {
				t.Fatalf("round trip changed the message:\n got %v\nwant %v", got, tc.msg)
			}
			if want := proto.Size(tc.msg); len(b) != want {
				t.Errorf("codec wrote %d bytes, protobuf's size is %d", len(b), want)
			}
		})
	}
}
