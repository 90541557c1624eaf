package extproc

import (
	"context"
	"net"
	"strconv"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
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

// noopProcessor answers CONTINUE to every message: the floor any ext_proc
// server pays.
type noopProcessor struct {
	extprocv3.UnimplementedExternalProcessorServer
}

func (noopProcessor) Process(s extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		req, err := s.Recv()
		if err != nil {
			return nil
		}
		if r := passThrough(req); r != nil {
			if err := s.Send(r); err != nil {
				return err
			}
		}
	}
}

// BenchmarkStreams compares, in one process over bufconn, full ext_proc
// streams against tracebridge and against a no-op server, the latter on
// gRPC's codec and on tracebridge's (which differ only with -tags
// vtprotobuf).
func BenchmarkStreams(b *testing.B) {
	for _, name := range []string{"noop", "noop-codec", "tracebridge"} {
		b.Run(name, func(b *testing.B) {
			// All servers get tracebridge-extproc's gRPC options.
			opts := ServerOptions(8 << 20)
			if name != "noop" {
				opts = append(opts, CodecOption())
			}
			gs := grpc.NewServer(opts...)
			if name != "tracebridge" {
				extprocv3.RegisterExternalProcessorServer(gs, noopProcessor{})
			} else {
				srv, err := NewServer(nil, Options{})
				if err != nil {
					b.Fatal(err)
				}
				extprocv3.RegisterExternalProcessorServer(gs, srv)
			}
			lis := bufconn.Listen(1 << 20)
			go gs.Serve(lis)
			defer gs.Stop()
			cc, err := grpc.NewClient("passthrough:///bufnet", grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Close()
			client := extprocv3.NewExternalProcessorClient(cc)
			req := reqHeadersMsg(hmap(":method", "GET", ":path", "/api/v1/orders/1", ":authority", "shop.example.com",
				"user-agent", "bench", "x-request-id", "5f0c7b2e", "traceparent", validTP), nil)
			resp := respHeadersMsg(hmap(":status", "200"))
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					s, err := client.Process(context.Background())
					if err != nil {
						b.Error(err)
						return
					}
					s.Send(req)
					s.Recv()
					s.Send(resp)
					s.Recv()
					s.CloseSend()
					s.Recv()
				}
			})
		})
	}
}

type namedCodec struct {
	name  string
	codec encoding.CodecV2
}

// comparedCodecs are the codecs the codec benchmarks run side by side:
// gRPC's proto codec (the baseline) and extproc's.
func comparedCodecs() []namedCodec {
	return []namedCodec{{"grpc-proto", encoding.GetCodecV2("proto")}, {"extproc", newCodec()}}
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
