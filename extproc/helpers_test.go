package extproc

import (
	"context"
	"log/slog"
	"net"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tracebridge/tracebridge/engine"
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

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func mustPolicy(t testing.TB, doc string) *engine.Policy {
	t.Helper()
	p, err := engine.ParsePolicy([]byte(doc))
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	return p
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
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(8<<20), CodecOption())
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

// hmap builds an Envoy header map the way current Envoy sends it (raw_value).
func hmap(kv ...string) *corev3.HeaderMap {
	hm := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return hm
}

// hmapValue builds a header map the way older Envoy sends it (value).
func hmapValue(kv ...string) *corev3.HeaderMap {
	hm := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], Value: kv[i+1]})
	}
	return hm
}

// attrs builds ProcessingRequest.attributes as Envoy does: keyed by the
// filter name, one Struct field per requested attribute.
func attrs(kv ...any) map[string]*structpb.Struct {
	fields := map[string]*structpb.Value{}
	for i := 0; i+1 < len(kv); i += 2 {
		v, err := structpb.NewValue(kv[i+1])
		if err != nil {
			panic(err)
		}
		fields[kv[i].(string)] = v
	}
	return map[string]*structpb.Struct{"envoy.filters.http.ext_proc": {Fields: fields}}
}

func reqHeadersMsg(hm *corev3.HeaderMap, a map[string]*structpb.Struct) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{
		Request:    &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: hm}},
		Attributes: a,
	}
}

func respHeadersMsg(hm *corev3.HeaderMap) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: hm}},
	}
}

// roundTrip sends one message and waits for its reply.
func roundTrip(t testing.TB, s extprocv3.ExternalProcessor_ProcessClient, req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	t.Helper()
	if err := s.Send(req); err != nil {
		t.Fatalf("send: %v", err)
	}
	resp, err := s.Recv()
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return resp
}

// openStream opens a stream bounded by a timeout.
func openStream(t testing.TB, c extprocv3.ExternalProcessorClient) (extprocv3.ExternalProcessor_ProcessClient, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	s, err := c.Process(ctx)
	if err != nil {
		cancel()
		t.Fatalf("Process: %v", err)
	}
	return s, cancel
}

// closeStream half-closes and waits for the server to end the stream.
func closeStream(t testing.TB, s extprocv3.ExternalProcessor_ProcessClient) {
	t.Helper()
	if err := s.CloseSend(); err != nil {
		t.Fatalf("CloseSend: %v", err)
	}
	if _, err := s.Recv(); err == nil {
		t.Fatalf("recv after CloseSend: got a message, want end of stream")
	} else if err.Error() != "EOF" {
		t.Fatalf("recv after CloseSend: %v", err)
	}
}

type pair = [2]string

// headerPairs lists a header map as name/value pairs (value from raw_value
// or value).
func headerPairs(hm *corev3.HeaderMap) []pair {
	var out []pair
	for _, h := range hm.GetHeaders() {
		if h == nil {
			continue
		}
		v := h.Value
		if len(h.RawValue) > 0 {
			v = string(h.RawValue)
		}
		out = append(out, pair{strings.ToLower(h.Key), v})
	}
	return out
}

// applyMutation applies a HeaderMutation as Envoy does with the actions we
// send: removes, then sets (OVERWRITE_IF_EXISTS_OR_ADD replaces every line).
func applyMutation(t testing.TB, in []pair, hm *extprocv3.HeaderMutation) []pair {
	t.Helper()
	out := append([]pair(nil), in...)
	for _, r := range hm.GetRemoveHeaders() {
		out = dropName(out, r)
	}
	for _, sh := range hm.GetSetHeaders() {
		if sh.AppendAction != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Errorf("set %s: append_action %v, want OVERWRITE_IF_EXISTS_OR_ADD", sh.Header.GetKey(), sh.AppendAction)
		}
		if sh.Header.GetValue() != "" && len(sh.Header.GetRawValue()) > 0 {
			t.Errorf("set %s: both value and raw_value set (Envoy rejects that)", sh.Header.GetKey())
		}
		v := sh.Header.GetValue()
		if len(sh.Header.GetRawValue()) > 0 {
			v = string(sh.Header.GetRawValue())
		}
		out = append(dropName(out, sh.Header.GetKey()), pair{sh.Header.GetKey(), v})
	}
	return out
}

func dropName(in []pair, name string) []pair {
	out := in[:0]
	for _, p := range in {
		if p[0] != name {
			out = append(out, p)
		}
	}
	return out
}

func headerValue(hs []pair, name string) (string, bool) {
	for _, p := range hs {
		if p[0] == name {
			return p[1], true
		}
	}
	return "", false
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
