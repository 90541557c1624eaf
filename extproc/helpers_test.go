package extproc

import (
	"context"
	"log/slog"
	"net"
	"runtime"
	"sort"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/tracebridge/tracebridge/extproc/codec"
	"github.com/tracebridge/tracebridge/extproc/internal/extproctest"
)

// The helpers shared with the other packages' tests.
type (
	syncBuffer = extproctest.SyncBuffer
	pair       = extproctest.Pair
)

var (
	hmap           = extproctest.HeaderMap
	hmapValue      = extproctest.HeaderMapValue
	attrs          = extproctest.Attrs
	reqHeadersMsg  = extproctest.RequestHeaders
	respHeadersMsg = extproctest.ResponseHeaders
	roundTrip      = extproctest.RoundTrip
	openStream     = extproctest.OpenStream
	closeStream    = extproctest.CloseStream
	headerPairs    = extproctest.HeaderPairs
	applyMutation  = extproctest.ApplyMutation
	headerValue    = extproctest.HeaderValue
	waitFor        = extproctest.WaitFor
	mustPolicy     = extproctest.Policy
	compiled       = extproctest.Compiled
)

// transports every client-facing test runs over.
var transports = []string{"bufconn", "tcp"}

type testEnv struct {
	srv    *Server
	m      *Metrics
	client extprocv3.ExternalProcessorClient
	conn   *grpc.ClientConn
	log    *syncBuffer
}

// startServer serves a Server over bufconn or TCP (127.0.0.1) and returns a
// connected client. o.Metrics and o.Logger are filled in when nil.
func startServer(t testing.TB, transport, policy string, o Options) *testEnv {
	t.Helper()
	env := &testEnv{log: &syncBuffer{}}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewJSONHandler(env.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := NewServer(mustPolicy(t, policy), o)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	env.srv, env.m = srv, o.Metrics
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(8<<20), codec.ServerOption())
	extprocv3.RegisterExternalProcessorServer(gs, srv)
	var target string
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(8 << 20)),
	}
	switch transport {
	case "bufconn":
		lis := bufconn.Listen(1 << 20)
		go gs.Serve(lis)
		target = "passthrough:///bufnet"
		dialOpts = append(dialOpts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return lis.DialContext(ctx)
		}))
	case "tcp":
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go gs.Serve(lis)
		target = lis.Addr().String()
	default:
		t.Fatalf("unknown transport %q", transport)
	}
	conn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		t.Fatal(err)
	}
	env.conn = conn
	env.client = extprocv3.NewExternalProcessorClient(conn)
	t.Cleanup(func() {
		conn.Close()
		gs.Stop()
	})
	return env
}

// decisionCounts reads tracebridge_extproc_decisions_total by decision.
func decisionCounts(t testing.TB, m *Metrics) map[string]float64 {
	t.Helper()
	return counterByLabel(t, m, "tracebridge_extproc_decisions_total", "decision")
}

func counterByLabel(t testing.TB, m *Metrics, name, label string) map[string]float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			key := ""
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == label {
					key = lp.GetValue()
				}
			}
			switch {
			case mt.Counter != nil:
				out[key] = mt.Counter.GetValue()
			case mt.Gauge != nil:
				out[key] = mt.Gauge.GetValue()
			}
		}
	}
	return out
}

// decisionDelta lists the decisions whose counters grew between two reads.
func decisionDelta(before, after map[string]float64) []string {
	var out []string
	for k, v := range after {
		if v > before[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
