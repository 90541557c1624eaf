package envoysim

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"
)

// recorder is an upstream that records the headers of every request and
// answers with the configured statuses in turn (then 200).
type recorder struct {
	mu       sync.Mutex
	seen     []http.Header
	statuses []int
	srv      *httptest.Server
}

func newRecorder(t *testing.T, statuses ...int) *recorder {
	r := &recorder{statuses: statuses}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.seen = append(r.seen, req.Header.Clone())
		st := 200
		if len(r.statuses) > 0 {
			st, r.statuses = r.statuses[0], r.statuses[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) last() http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[len(r.seen)-1]
}

// memReporter keeps reported spans.
type memReporter struct {
	mu    sync.Mutex
	spans []*Span
}

func (m *memReporter) Report(s *Span) { m.mu.Lock(); m.spans = append(m.spans, s); m.mu.Unlock() }
func (m *memReporter) Flush()         {}
func (m *memReporter) Close()         {}

func startListener(t *testing.T, l *Listener) {
	t.Helper()
	if err := l.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(time.Second) })
}

func do(t *testing.T, url string, hdr map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func zipkinListener(t *testing.T, up *recorder, rate float64, rep Reporter) *Listener {
	l := &Listener{Name: "inbound", Direction: Inbound, Cluster: FixedCluster("app", up.srv.Listener.Addr().String()),
		Tracing: &Tracing{Tracer: &ZipkinTracer{TraceID128: true}, Kind: KindServer, Service: "svc", RandomSampling: rate, Reporter: rep}}
	startListener(t, l)
	return l
}

func TestSamplingDecision(t *testing.T) {
	up := newRecorder(t)
	rep := &memReporter{}
	l := zipkinListener(t, up, 0, rep)
	// 0 % random sampling: a real span still injects, with sampled 0.
	do(t, l.URL(), nil)
	if got := up.last().Get("X-B3-Sampled"); got != "0" {
		t.Errorf("0%% sampling: x-b3-sampled = %q, want 0 (a non-sampled span still injects)", got)
	}
	// x-client-trace-id and x-envoy-force-trace force the trace
	// (conn_manager_utility.cc) and mark the request id.
	for _, h := range []string{"x-client-trace-id", "x-envoy-force-trace"} {
		do(t, l.URL(), map[string]string{h: "1"})
		if got := up.last().Get("X-B3-Sampled"); got != "1" {
			t.Errorf("%s: x-b3-sampled = %q, want 1", h, got)
		}
		rid := up.last().Get("X-Request-Id")
		want := byte(traceClient)
		if h == "x-envoy-force-trace" {
			want = traceForced
		}
		if len(rid) != 36 || rid[traceBytePos] != want {
			t.Errorf("%s: x-request-id %q does not carry trace status %c", h, rid, want)
		}
	}
	// An incoming sampled flag wins over the decision.
	do(t, l.URL(), map[string]string{"x-b3-traceid": "463ac35c9f6413ad", "x-b3-spanid": "a2fb4a1d1a96d312", "x-b3-sampled": "1"})
	if got := up.last().Get("X-B3-Sampled"); got != "1" {
		t.Errorf("incoming sampled: x-b3-sampled = %q, want 1", got)
	}
	// A request id that is not a UUID cannot be traced.
	l2 := zipkinListener(t, up, 100, rep)
	do(t, l2.URL(), map[string]string{"x-request-id": "not-a-uuid"})
	if got := up.last().Get("X-B3-Sampled"); got != "0" {
		t.Errorf("non-UUID request id: x-b3-sampled = %q, want 0", got)
	}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if len(rep.spans) != 3 {
		t.Errorf("%d spans reported, want 3 (only sampled spans)", len(rep.spans))
	}
}

func TestZipkinExtraction(t *testing.T) {
	up := newRecorder(t)
	l := zipkinListener(t, up, -1, nil)
	// b3 sampling-only: a new root trace, not sampled.
	do(t, l.URL(), map[string]string{"b3": "0"})
	if h := up.last(); h.Get("X-B3-Sampled") != "0" || h.Get("X-B3-Parentspanid") != "" || len(h.Get("X-B3-Traceid")) != 32 {
		t.Errorf("b3: 0 → %v", h)
	}
	// Malformed b3 → NullSpan: nothing injected even though x-b3-* is valid.
	do(t, l.URL(), map[string]string{"b3": "garbage-x", "x-b3-traceid": "463ac35c9f6413ad", "x-b3-spanid": "a2fb4a1d1a96d312"})
	if h := up.last(); h.Get("X-B3-Spanid") != "a2fb4a1d1a96d312" || h.Get("X-B3-Sampled") != "" {
		t.Errorf("malformed b3: want a NullSpan (headers untouched), got %v", h)
	}
	// A stale x-b3-parentspanid is never removed: a root span (no parent)
	// leaves it in place.
	do(t, l.URL(), map[string]string{"x-b3-parentspanid": "1111111111111111"})
	if h := up.last(); h.Get("X-B3-Parentspanid") != "1111111111111111" {
		t.Errorf("stale parentspanid: %q", h.Get("X-B3-Parentspanid"))
	}
}

// TestZipkinW3CPropagation: with USE_B3_WITH_W3C_PROPAGATION the Zipkin
// tracer reads B3 first, falls back to traceparent, and writes both; without
// it traceparent is neither read nor written.
func TestZipkinW3CPropagation(t *testing.T) {
	const (
		tp      = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		tpTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	)
	cases := []struct {
		name       string
		w3c        bool
		in         map[string]string
		wantTrace  string // "" = a new root
		wantParent string
		wantTP     bool
		wantSample bool
	}{
		{"w3c-only-fallback", true, map[string]string{"traceparent": tp}, tpTrace, "00f067aa0ba902b7", true, true},
		{"w3c-not-sampled", true, map[string]string{"traceparent": tp[:53] + "00"}, tpTrace, "00f067aa0ba902b7", true, false},
		{"b3-read-first", true, map[string]string{"traceparent": tp, "x-b3-traceid": "463ac35c9f6413ad48485a3953bb6124", "x-b3-spanid": "a2fb4a1d1a96d312", "x-b3-sampled": "1"},
			"463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312", true, true},
		{"malformed-traceparent-ignored", true, map[string]string{"traceparent": "00-zz-00f067aa0ba902b7-01"}, "", "", true, true},
		{"b3-only-tracer-ignores-traceparent", false, map[string]string{"traceparent": tp}, "", "", false, true},
	}
	for _, tc := range cases {
		z := &ZipkinTracer{TraceID128: true, W3C: tc.w3c}
		in := &Headers{}
		for k, v := range tc.in {
			in.Set(k, v)
		}
		s := z.StartSpan(in, KindServer, true)
		if s == nil {
			t.Errorf("%s: NullSpan", tc.name)
			continue
		}
		if tc.wantTrace != "" && (s.TraceIDHex() != tc.wantTrace || s.ParentIDHex() != tc.wantParent) {
			t.Errorf("%s: trace %s parent %s, want %s %s", tc.name, s.TraceIDHex(), s.ParentIDHex(), tc.wantTrace, tc.wantParent)
		}
		if tc.wantTrace == "" && (s.TraceIDHex() == tpTrace || s.ParentID != 0) {
			t.Errorf("%s: want a new root, got trace %s parent %s", tc.name, s.TraceIDHex(), s.ParentIDHex())
		}
		if s.Sampled != tc.wantSample {
			t.Errorf("%s: sampled %v", tc.name, s.Sampled)
		}
		out := &Headers{}
		z.Inject(s, out)
		got, ok := out.Lookup("traceparent")
		if ok != tc.wantTP {
			t.Errorf("%s: traceparent written %v, want %v", tc.name, ok, tc.wantTP)
		}
		flags := "00"
		if s.Sampled {
			flags = "01"
		}
		if want := "00-" + s.TraceIDHex() + "-" + s.SpanIDHex() + "-" + flags; ok && got != want {
			t.Errorf("%s: traceparent %s, want %s", tc.name, got, want)
		}
		if out.Get("x-b3-spanid") != s.SpanIDHex() {
			t.Errorf("%s: x-b3-spanid %q", tc.name, out.Get("x-b3-spanid"))
		}
	}
	// A 64-bit trace id is zero-padded in traceparent.
	out := &Headers{}
	(&ZipkinTracer{W3C: true}).Inject(&Span{TraceID: 0x463ac35c9f6413ad, SpanID: 1, Sampled: true}, out)
	if got := out.Get("traceparent"); got != "00-0000000000000000463ac35c9f6413ad-0000000000000001-01" {
		t.Errorf("64-bit trace id: traceparent %s", got)
	}
}

// headerSpy is an upstream filter recording the headers it sees.
type headerSpy struct {
	mu   sync.Mutex
	seen []*Headers
}

func (s *headerSpy) Name() string                       { return "spy" }
func (s *headerSpy) NewStream(*StreamInfo) FilterStream { return &spyStream{s} }

type spyStream struct{ s *headerSpy }

func (f *spyStream) DecodeHeaders(h *Headers) *LocalReply {
	f.s.mu.Lock()
	f.s.seen = append(f.s.seen, h.Clone())
	f.s.mu.Unlock()
	return nil
}
func (f *spyStream) EncodeHeaders(*Headers) {}
func (f *spyStream) OnDone()                {}

// TestRetriesReinjectAndUpstreamFiltersSeeInjection: every attempt gets the
// span's context, and upstream filters run after it.
func TestRetriesReinjectAndUpstreamFiltersSeeInjection(t *testing.T) {
	up := newRecorder(t, 503, 503)
	spy := &headerSpy{}
	l := &Listener{Name: "outbound", Direction: Outbound, Retries: 2, Cluster: FixedCluster("c", up.srv.Listener.Addr().String()),
		UpstreamFilters: []Filter{spy},
		Tracing:         &Tracing{Tracer: &ZipkinTracer{}, Kind: KindClient, Service: "svc", RandomSampling: -1}}
	startListener(t, l)
	resp := do(t, l.URL(), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d after retries", resp.StatusCode)
	}
	if len(spy.seen) != 3 {
		t.Fatalf("upstream filter ran %d times, want 3 (one per attempt)", len(spy.seen))
	}
	for i, h := range spy.seen {
		if h.Get("x-b3-spanid") == "" || h.Get("x-b3-spanid") != spy.seen[0].Get("x-b3-spanid") {
			t.Errorf("attempt %d: upstream filter saw x-b3-spanid %q", i, h.Get("x-b3-spanid"))
		}
	}
}

// TestNoTracingBlockInjectsNothing: NullSpan.
func TestNoTracingBlockInjectsNothing(t *testing.T) {
	up := newRecorder(t)
	l := &Listener{Name: "outbound", Direction: Outbound, Cluster: FixedCluster("c", up.srv.Listener.Addr().String())}
	startListener(t, l)
	do(t, l.URL(), map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
	h := up.last()
	if h.Get("X-B3-Traceid") != "" || h.Get("Traceparent") != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" {
		t.Errorf("no tracing block: headers changed: %v", h)
	}
	if h.Get("X-Request-Id") == "" {
		t.Errorf("x-request-id not generated")
	}
}

func TestCustomTags(t *testing.T) {
	t.Setenv("TB_TEST_ZONE", "zone-a")
	up := newRecorder(t)
	rep := &memReporter{}
	l := &Listener{Name: "inbound", Direction: Inbound, Cluster: FixedCluster("c", up.srv.Listener.Addr().String()),
		Filters: []Filter{stateSetter{}},
		Tracing: &Tracing{Tracer: &OTelTracer{}, Kind: KindServer, Service: "svc", RandomSampling: -1, Reporter: rep, CustomTags: []CustomTag{
			{Tag: "lit", Literal: "x"}, {Tag: "env", Environment: "TB_TEST_ZONE"}, {Tag: "hdr", RequestHeader: "x-tenant"},
			{Tag: "md", MetadataNamespace: "tracebridge", MetadataKey: "plan"}, {Tag: "fs", FilterState: "wasm.tracebridge.k"},
			{Tag: "missing", RequestHeader: "x-none", Default: "dflt"},
			{Tag: "fmt-fs", Value: "%FILTER_STATE(wasm.tracebridge.k:PLAIN)%"},
			{Tag: "fmt-fs-json", Value: "%FILTER_STATE(wasm.tracebridge.k)%"},
			{Tag: "fmt-md", Value: "%DYNAMIC_METADATA(tracebridge:plan)%"},
			{Tag: "fmt-mixed", Value: "plan=%DYNAMIC_METADATA(tracebridge:plan)%/%REQ(X-Tenant)%"},
			{Tag: "fmt-absent", Value: "%DYNAMIC_METADATA(tracebridge:none)%%FILTER_STATE(wasm.none:PLAIN)%"},
			{Tag: "fmt-unknown", Value: "%NOT_A_COMMAND(x)%"},
		}}}
	startListener(t, l)
	do(t, l.URL(), map[string]string{"x-tenant": "acme"})
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if len(rep.spans) != 1 {
		t.Fatalf("%d spans", len(rep.spans))
	}
	want := map[string]string{"lit": "x", "env": "zone-a", "hdr": "acme", "md": "gold", "fs": "v", "missing": "dflt", "http.status_code": "200",
		"fmt-fs": "v", "fmt-fs-json": `"v"`, "fmt-md": "gold", "fmt-mixed": "plan=gold/acme"}
	for k, v := range want {
		if got := rep.spans[0].Tags[k]; got != v {
			t.Errorf("tag %s = %q, want %q", k, got, v)
		}
	}
	// An empty formatted value sets no tag (custom_tag_impl.cc applySpan).
	for _, k := range []string{"fmt-absent", "fmt-unknown"} {
		if v, ok := rep.spans[0].Tags[k]; ok {
			t.Errorf("tag %s = %q, want no tag", k, v)
		}
	}
	var otlp map[string]any
	if err := json.Unmarshal(OTLPJSON(rep.spans), &otlp); err != nil {
		t.Fatal(err)
	}
}

// TestUpstreamFilterHeadersReachTags: an upstream filter decodes the
// downstream request's header map, so a header it sets is read by the span's
// request-header tag at the end of the stream.
func TestUpstreamFilterHeadersReachTags(t *testing.T) {
	up := newRecorder(t)
	rep := &memReporter{}
	l := &Listener{Name: "inbound", Direction: Inbound, Cluster: FixedCluster("c", up.srv.Listener.Addr().String()),
		UpstreamFilters: []Filter{headerSetter{"x-tracebridge-tenant", "acme"}},
		Tracing: &Tracing{Tracer: &ZipkinTracer{}, Kind: KindServer, Service: "svc", RandomSampling: -1, Reporter: rep,
			CustomTags: []CustomTag{{Tag: "tenant", RequestHeader: "x-tracebridge-tenant"}}}}
	startListener(t, l)
	do(t, l.URL(), nil)
	if got := up.last().Get("X-Tracebridge-Tenant"); got != "acme" {
		t.Errorf("upstream got x-tracebridge-tenant %q", got)
	}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if len(rep.spans) != 1 {
		t.Fatalf("%d spans", len(rep.spans))
	}
	if got := rep.spans[0].Tags["tenant"]; got != "acme" {
		t.Errorf("tag tenant = %q, want the upstream filter's acme", got)
	}
}

// headerSetter is a filter setting one request header.
type headerSetter struct{ name, value string }

func (f headerSetter) Name() string                       { return "set-" + f.name }
func (f headerSetter) NewStream(*StreamInfo) FilterStream { return f }
func (f headerSetter) DecodeHeaders(h *Headers) *LocalReply {
	h.Set(f.name, f.value)
	return nil
}
func (headerSetter) EncodeHeaders(*Headers) {}
func (headerSetter) OnDone()                {}

type stateSetter struct{}

func (stateSetter) Name() string { return "state" }
func (stateSetter) NewStream(info *StreamInfo) FilterStream {
	info.SetFilterState("wasm.tracebridge.k", "v")
	info.SetMetadata("tracebridge", map[string]any{"plan": "gold"})
	return &spyStream{&headerSpy{}}
}

// scriptedProcessor is an ext_proc server answering request headers with a
// fixed response (after an optional delay), to check the harness's
// ext_proc semantics.
type scriptedProcessor struct {
	extprocv3.UnimplementedExternalProcessorServer
	delay time.Duration
	resp  *extprocv3.ProcessingResponse
}

func (s *scriptedProcessor) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		req, err := stream.Recv()
		if err != nil {
			return nil
		}
		time.Sleep(s.delay)
		var resp *extprocv3.ProcessingResponse
		switch req.Request.(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			resp = s.resp
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}
		}
		if err := stream.Send(resp); err != nil {
			return nil
		}
	}
}

func startProcessor(t *testing.T, p *scriptedProcessor) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(srv, p)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

func set(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: name, RawValue: []byte(value)}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
}

func TestExtProcSemantics(t *testing.T) {
	up := newRecorder(t)
	md, _ := structpb.NewStruct(map[string]any{"tracebridge": map[string]any{"tenant": "acme"}, "other": map[string]any{"x": "y"}})
	addr := startProcessor(t, &scriptedProcessor{resp: &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{
			HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
				set("x-ok", "1"), set("host", "evil"), set(":authority", "evil"), set("x-envoy-force-trace", "1"), set(":method", "POST"),
			}, RemoveHeaders: []string{"x-drop"}},
		}}},
		DynamicMetadata: md,
	}})
	f, err := NewExtProcFilter(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep := &memReporter{}
	l := &Listener{Name: "gw", Cluster: FixedCluster("c", up.srv.Listener.Addr().String()), Filters: []Filter{f},
		Tracing: &Tracing{Tracer: &ZipkinTracer{}, Kind: KindServer, Service: "gw", RandomSampling: -1, Reporter: rep,
			CustomTags: []CustomTag{{Tag: "tenant", MetadataNamespace: "tracebridge", MetadataKey: "tenant"}, {Tag: "x", MetadataNamespace: "other", MetadataKey: "x"}}}}
	startListener(t, l)
	do(t, l.URL(), map[string]string{"x-drop": "1"})
	h := up.last()
	if h.Get("X-Ok") != "1" || h.Get("X-Drop") != "" {
		t.Errorf("allowed mutations not applied: %v", h)
	}
	if h.Get("X-Envoy-Force-Trace") != "" {
		t.Errorf("x-envoy-* mutation applied despite mutation_rules")
	}
	rep.mu.Lock()
	tags := rep.spans[0].Tags
	rep.mu.Unlock()
	if tags["tenant"] != "acme" || tags["x"] != "" {
		t.Errorf("dynamic metadata: tags %v, want tenant from the receiving namespace only", tags)
	}
}

func TestExtProcImmediateResponseTimeoutAndFailureMode(t *testing.T) {
	up := newRecorder(t)
	immediate := startProcessor(t, &scriptedProcessor{resp: &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode_BadRequest}, Body: []byte(`{"error":"invalid_trace_context"}`)}}}})
	slow := startProcessor(t, &scriptedProcessor{delay: time.Second, resp: &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}})
	for _, tc := range []struct {
		name   string
		addr   string
		allow  bool
		status int
	}{
		{"immediate response", immediate, true, 400},
		{"message timeout, failure_mode_allow", slow, true, 200},
		{"message timeout, fail closed", slow, false, 500},
		{"server down, failure_mode_allow", "127.0.0.1:1", true, 200},
	} {
		f, err := NewExtProcFilter(tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		f.FailureModeAllow = tc.allow
		l := &Listener{Name: "gw", Cluster: FixedCluster("c", up.srv.Listener.Addr().String()), Filters: []Filter{f}}
		startListener(t, l)
		start := time.Now()
		resp := do(t, l.URL(), nil)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
		if d := time.Since(start); d > 900*time.Millisecond {
			t.Errorf("%s: took %s, want the 200 ms message timeout to bound it", tc.name, d)
		}
		f.Close()
	}
}

// FuzzFormatTagValue: a value tag's format string never panics, text
// without a command is kept as is, and a command's result never contains
// the raw command.
func FuzzFormatTagValue(f *testing.F) {
	for _, s := range []string{
		"%FILTER_STATE(wasm.tracebridge.k:PLAIN)%", "%FILTER_STATE(wasm.tracebridge.k)%",
		"%DYNAMIC_METADATA(tracebridge:plan)%", "a=%REQ(x-tenant)%/b", "%", "%%", "%(%", "%DYNAMIC_METADATA(x)%",
		"%FILTER_STATE(", "plain text", "%REQ()%",
	} {
		f.Add(s)
	}
	info := &StreamInfo{}
	info.SetFilterState("wasm.tracebridge.k", "v")
	info.SetMetadata("tracebridge", map[string]any{"plan": "gold", "n": 3.0})
	h := &Headers{}
	h.Set("x-tenant", "acme")
	f.Fuzz(func(t *testing.T, format string) {
		got := formatTagValue(format, h, info)
		if !strings.Contains(format, "%") && got != format {
			t.Fatalf("%q → %q: text without a command changed", format, got)
		}
		if strings.Count(format, "%") == 2 && strings.HasPrefix(format, "%") && strings.HasSuffix(format, "%") && strings.Contains(got, format) {
			t.Fatalf("%q → %q: command left unevaluated", format, got)
		}
	})
}
