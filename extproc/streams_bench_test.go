package extproc_test

import (
	"context"
	"net"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/tracebridge/tracebridge/extproc"
	"github.com/tracebridge/tracebridge/extproc/cmd/tracebridge-extproc/app"
	"github.com/tracebridge/tracebridge/extproc/codec"
	"github.com/tracebridge/tracebridge/extproc/internal/extproctest"
)

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
		if r := extproc.PassThrough(req); r != nil {
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
			opts := app.ServerOptions(8 << 20)
			if name != "noop" {
				opts = append(opts, codec.ServerOption())
			}
			gs := grpc.NewServer(opts...)
			if name != "tracebridge" {
				extprocv3.RegisterExternalProcessorServer(gs, noopProcessor{})
			} else {
				srv, err := extproc.NewServer(nil, extproc.Options{})
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
			req := extproctest.RequestHeaders(extproctest.HeaderMap(":method", "GET", ":path", "/api/v1/orders/1", ":authority", "shop.example.com",
				"user-agent", "bench", "x-request-id", "5f0c7b2e", "traceparent", extproctest.ValidTP), nil)
			resp := extproctest.ResponseHeaders(extproctest.HeaderMap(":status", "200"))
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
