package extproc

import (
	"strconv"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/tracebridge/tracebridge/extproc/codec"
)

// BenchmarkHandle measures the server's own work for one stream (request
// headers, response headers, end), without gRPC: the part tracebridge adds
// to what any ext_proc server pays.
func BenchmarkHandle(b *testing.B) {
	srv, err := NewServer(nil, Options{})
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([]*extprocv3.ProcessingRequest, 1024)
	for i := range reqs {
		reqs[i] = reqHeadersMsg(hmap(
			":method", "GET", ":path", "/api/v1/orders/1", ":authority", "shop.example.com", ":scheme", "https",
			"user-agent", "Mozilla/5.0 (X11; Linux x86_64)", "accept", "application/json", "accept-encoding", "gzip, br",
			"x-forwarded-for", "203.0.113.9", "x-forwarded-proto", "https",
			"x-request-id", "5f0c7b2e-"+strconv.Itoa(i),
			"traceparent", validTP, "tracestate", "vendor=abc",
		), nil)
	}
	resp := respHeadersMsg(hmap(":status", "200", "content-type", "application/json"))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ps := srv.pool.Get().(*procStream)
		ps.begin(srv)
		if _, _, err := ps.safeHandle(reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
		if _, _, err := ps.safeHandle(resp); err != nil {
			b.Fatal(err)
		}
		ps.end()
		srv.pool.Put(ps)
	}
}

type namedCodec struct {
	name  string
	codec encoding.CodecV2
}

// comparedCodecs are the codecs the codec benchmarks run side by side:
// gRPC's proto codec (the baseline) and extproc's.
func comparedCodecs() []namedCodec {
	return []namedCodec{{"grpc-proto", encoding.GetCodecV2("proto")}, {"extproc", codec.New()}}
}

// BenchmarkMarshalReply compares gRPC's proto codec with extproc's codec on
// tracebridge's usual request headers reply (W3C and B3 set, metadata).
// Without -tags vtprotobuf both take the same path.
func BenchmarkMarshalReply(b *testing.B) {
	srv, err := NewServer(nil, Options{})
	if err != nil {
		b.Fatal(err)
	}
	ps := srv.pool.Get().(*procStream)
	ps.begin(srv)
	reply, _, err := ps.safeHandle(reqHeadersMsg(hmap(":method", "GET", ":path", "/", "x-request-id", "5f0c7b2e-1", "traceparent", validTP), nil))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range comparedCodecs() {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				data, err := c.codec.Marshal(reply)
				if err != nil {
					b.Fatal(err)
				}
				data.Free()
			}
		})
	}
}

// BenchmarkUnmarshalRequest compares gRPC's proto codec with extproc's
// codec on a request headers message like the load benchmark's (12
// headers, W3C context).
func BenchmarkUnmarshalRequest(b *testing.B) {
	msg := reqHeadersMsg(hmap(
		":method", "GET", ":path", "/api/v1/orders/1", ":authority", "shop.example.com", ":scheme", "https",
		"user-agent", "Mozilla/5.0 (X11; Linux x86_64)", "accept", "application/json", "accept-encoding", "gzip, br",
		"x-forwarded-for", "203.0.113.9", "x-forwarded-proto", "https",
		"x-request-id", "5f0c7b2e-1", "traceparent", validTP, "tracestate", "vendor=abc",
	), nil)
	wire, err := proto.Marshal(msg)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range comparedCodecs() {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				var m extprocv3.ProcessingRequest
				if err := c.codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(wire)}, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
