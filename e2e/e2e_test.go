package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracebridge/tracebridge/e2e/sim/backend"
	"github.com/tracebridge/tracebridge/e2e/sim/demo"
	"github.com/tracebridge/tracebridge/e2e/sim/envoysim"
	"github.com/tracebridge/tracebridge/e2e/sim/sidecar"
	"github.com/tracebridge/tracebridge/e2e/testsupport"
	"github.com/tracebridge/tracebridge/internal/repo"
	"github.com/tracebridge/tracebridge/wasm-filter/wasmtest"
)

// wasmHostProfile selects the proxy-wasm-cpp-host version the mesh's wasm
// host reproduces: go test ./e2e -args -wasm-host-profile=cpp-host-427.
var wasmHostProfile = flag.String("wasm-host-profile", string(envoysim.DefaultHostProfile), "cpp-host-533 (Envoy 1.39+) or cpp-host-427 (Envoy 1.33–1.38)")

// env is what every scenario shares: one Jaeger, the module, the ext_proc
// binary and the policies.
type env struct {
	jaeger   *backend.JaegerInstance
	wasm     string
	extBin   string
	policy   []byte
	gwPolicy string
	dir      string
	// generated is istiocheck/golden: the sidecars of the tracebridge
	// modes run the configuration Istio generates.
	generated string
}

func setup(t *testing.T) *env {
	t.Helper()
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{dir: t.TempDir(), generated: filepath.Join(root, "istiocheck", "golden")}
	var wg sync.WaitGroup
	var wasmErr, extErr error
	wg.Add(2)
	go func() { defer wg.Done(); e.wasm, wasmErr = wasmtest.EnsureModule() }()
	go func() { defer wg.Done(); e.extBin, extErr = demo.BuildExtProc(root, e.dir) }()
	e.jaeger = testsupport.Jaeger(t)
	wg.Wait()
	if wasmErr != nil {
		t.Fatal(wasmErr)
	}
	if extErr != nil {
		t.Fatal(extErr)
	}
	if e.policy, err = demo.DemoPolicy(root); err != nil {
		t.Fatal(err)
	}
	gw, err := sidecar.GatewayPolicy(e.policy, "upstream", "zipkin")
	if err != nil {
		t.Fatal(err)
	}
	e.gwPolicy = filepath.Join(e.dir, "gateway-policy.json")
	if err := os.WriteFile(e.gwPolicy, gw, 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// logBuf collects proxy log lines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (e *env) extproc(t *testing.T) *demo.ExtProc {
	t.Helper()
	p, err := demo.StartExtProc(e.extBin, e.gwPolicy, filepath.Join(t.TempDir(), "extproc.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// mesh starts a mesh whose AutoForward and Precise sidecars run the
// configuration Istio generates (istiocheck/golden).
func (e *env) mesh(t *testing.T, o demo.MeshOptions) (*demo.Mesh, *logBuf) {
	t.Helper()
	o.Generated = e.generated
	m, log := e.startMesh(t, o)
	if o.Mode != demo.Control && o.Tracer == "zipkin" {
		for name, sc := range m.Sidecars {
			if sc.Generated() == "" {
				t.Fatalf("%s sidecar: configured by hand, want Istio's generated configuration", name)
			}
		}
	}
	return m, log
}

func (e *env) startMesh(t *testing.T, o demo.MeshOptions) (*demo.Mesh, *logBuf) {
	t.Helper()
	log := &logBuf{}
	if o.Tracer == "" {
		o.Tracer = "zipkin"
	}
	if o.Collector == "" {
		if o.Tracer == "otel" {
			o.Collector = e.jaeger.OTLPHTTPTracesURL
		} else {
			o.Collector = e.jaeger.ZipkinURL
		}
	}
	if o.Wasm == "" {
		o.Wasm = e.wasm
	}
	if o.WasmHostProfile == "" {
		o.WasmHostProfile = envoysim.HostProfile(*wasmHostProfile)
	}
	if o.SidecarPolicy == nil {
		o.SidecarPolicy = e.policy
	}
	o.ReportInterval = 200 * time.Millisecond
	o.Log = log
	m, err := demo.StartMesh(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Close()
		if t.Failed() {
			t.Logf("proxy log:\n%s", tail(log.String(), 60))
		}
	})
	return m, log
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var client = &http.Client{Timeout: 10 * time.Second}

// send sends one request per token through the gateway and returns the
// trace context each response names (server-timing trace metric).
func send(t *testing.T, m *demo.Mesh, tokens []string, extra map[string]string) map[string]string {
	t.Helper()
	tr := map[string]string{}
	for _, tok := range tokens {
		resp, err := demo.SendRequest(context.Background(), client, m.URL(), tok, extra)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", tok, resp.StatusCode)
		}
		_, tr[tok] = demo.ResponseTraceContext(resp.Header)
	}
	return tr
}

func tokens(prefix string, n int) []string {
	out := make([]string, n)
	stamp := time.Now().UnixNano() % 1e9
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d-%d", prefix, stamp, i)
	}
	return out
}

// traces reads from Jaeger every trace holding spans of the tokens, and
// waits until ready accepts them (or 20 s).
func (e *env) traces(t *testing.T, from time.Time, toks []string, ready func(map[string][]demo.Trace) bool) map[string][]demo.Trace {
	t.Helper()
	ctx := context.Background()
	var got map[string][]demo.Trace
	deadline := time.Now().Add(20 * time.Second)
	for {
		seen := map[string]bool{}
		var all []backend.Trace
		for _, svc := range append([]string{demo.GatewayService}, demo.Services...) {
			ts, err := e.jaeger.Query.Traces(ctx, backend.TraceQuery{Service: svc, Start: from.Add(-2 * time.Second), End: time.Now().Add(2 * time.Second), Limit: 5000})
			if err != nil {
				continue // a service not seen yet answers 404/empty
			}
			for _, tr := range ts {
				if !seen[tr.TraceID] {
					seen[tr.TraceID] = true
					all = append(all, tr)
				}
			}
		}
		grouped := demo.GroupTraces(demo.FromJaeger(all))
		got = map[string][]demo.Trace{}
		for _, tok := range toks {
			got[tok] = demo.TracesOf(grouped, tok)
		}
		if ready(got) || time.Now().After(deadline) {
			return got
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func spanCount(ts []demo.Trace) int {
	n := 0
	for _, t := range ts {
		n += len(t.Spans)
	}
	return n
}

func allHave(n int) func(map[string][]demo.Trace) bool {
	return func(m map[string][]demo.Trace) bool {
		for _, ts := range m {
			if spanCount(ts) < n {
				return false
			}
		}
		return true
	}
}

func dump(ts []demo.Trace) string {
	var b bytes.Buffer
	for _, t := range ts {
		demo.Render(&b, t)
	}
	return b.String()
}

// only returns the one span of service in tr (failing when not exactly one).
func only(t *testing.T, tr demo.Trace, service string) demo.SpanView {
	t.Helper()
	var out []demo.SpanView
	for _, s := range tr.Spans {
		if s.Service == service {
			out = append(out, s)
		}
	}
	if len(out) != 1 {
		t.Fatalf("trace %s: %d spans of %s, want 1:\n%s", tr.ID, len(out), service, dump([]demo.Trace{tr}))
	}
	return out[0]
}

// checkTree asserts one trace per token with the five server spans and the
// parent of each service (by service name).
func checkTree(t *testing.T, got map[string][]demo.Trace, parents map[string]string) {
	t.Helper()
	for tok, ts := range got {
		if len(ts) != 1 {
			t.Errorf("%s: %d traces, want exactly 1:\n%s", tok, len(ts), dump(ts))
			continue
		}
		tr := ts[0]
		if len(tr.Spans) != 5 {
			t.Errorf("%s: %d spans, want 5 (gateway + 4 services):\n%s", tok, len(tr.Spans), dump(ts))
			continue
		}
		gw := only(t, tr, demo.GatewayService)
		if gw.ParentID != "" {
			t.Errorf("%s: gateway span has parent %s, want a root", tok, gw.ParentID)
		}
		for svc, parent := range parents {
			s, p := only(t, tr, svc), only(t, tr, parent)
			if s.ParentID != p.SpanID {
				t.Errorf("%s: %s's parent is %s, want %s's span %s:\n%s", tok, svc, s.ParentID, parent, p.SpanID, dump(ts))
			}
		}
	}
}

// autoParents: in auto-forward mode every hop restores the context its
// sidecar received before Envoy injected the server span, so every service
// span is a child of the gateway span (README "Deployment modes" 1).
var autoParents = map[string]string{
	"productpage": demo.GatewayService, "details": demo.GatewayService,
	"reviews": demo.GatewayService, "ratings": demo.GatewayService,
}

// preciseParents: the exact call tree.
var preciseParents = map[string]string{
	"productpage": demo.GatewayService, "details": "productpage",
	"reviews": "productpage", "ratings": "reviews",
}

func TestMeshWithJaeger(t *testing.T) {
	e := setup(t)
	ext := e.extproc(t)

	t.Run("control/without-tracebridge-traces-are-disconnected", func(t *testing.T) {
		m, _ := e.mesh(t, demo.MeshOptions{Mode: demo.Control})
		from := time.Now()
		toks := tokens("control", 2)
		send(t, m, toks, nil)
		m.Flush()
		got := e.traces(t, from, toks, allHave(8))
		for tok, ts := range got {
			// gateway+productpage, then one client/server pair per call.
			if len(ts) < 4 {
				t.Errorf("%s: %d traces, want 4 disconnected ones (one per hop):\n%s", tok, len(ts), dump(ts))
			}
			t.Logf("%s: %d traces, %d spans in Jaeger", tok, len(ts), spanCount(ts))
		}
	})

	t.Run("auto-forward/one-trace-per-request", func(t *testing.T) {
		m, log := e.mesh(t, demo.MeshOptions{Mode: demo.AutoForward, ExtProc: ext.Addr, EdgeTrust: true})
		from := time.Now()
		toks := tokens("auto", 4)
		tr := send(t, m, toks, nil)
		m.Flush()
		got := e.traces(t, from, toks, allHave(5))
		checkTree(t, got, autoParents)
		if !strings.Contains(log.String(), "wasm:restored") {
			t.Errorf("no wasm:restored decision in the proxy log")
		}
		t.Run("custom-tags", func(t *testing.T) {
			for tok, ts := range got {
				if len(ts) != 1 {
					continue
				}
				gw := only(t, ts[0], demo.GatewayService)
				// Metadata tags from the gateway's ext_proc (dynamic
				// metadata, namespace tracebridge).
				for k, want := range map[string]string{"tenant": "acme", "route": "products", "plan": "gold"} {
					if gw.Tags[k] != want {
						t.Errorf("%s: gateway tag %s = %q, want %q (ext_proc metadata)", tok, k, gw.Tags[k], want)
					}
				}
				pp := only(t, ts[0], "productpage")
				if pp.Tags["tenant"] != "acme" {
					t.Errorf("%s: productpage tag tenant = %q, want acme (request-header tag x-tracebridge-tenant)", tok, pp.Tags["tenant"])
				}
				for _, svc := range demo.Services {
					s := only(t, ts[0], svc)
					if s.Tags["mesh"] != "bookinfo-demo" {
						t.Errorf("%s: %s tag mesh = %q, want bookinfo-demo (filter-state value tag)", tok, svc, s.Tags["mesh"])
					}
					if s.Tags["istio.canonical_service"] != svc {
						t.Errorf("%s: %s literal tag istio.canonical_service = %q", tok, svc, s.Tags["istio.canonical_service"])
					}
				}
			}
		})
		t.Run("response-trace-metric-matches-jaeger", func(t *testing.T) {
			for tok, ts := range got {
				v := tr[tok]
				parts := strings.Split(v, "-")
				if len(parts) != 4 {
					t.Errorf("%s: trace metric %q", tok, v)
					continue
				}
				if len(ts) != 1 || !backend.TraceIDEqual(parts[1], ts[0].ID) {
					t.Errorf("%s: trace metric %s names trace %s, Jaeger has %v", tok, v, parts[1], ids(ts))
					continue
				}
				if gw := only(t, ts[0], demo.GatewayService); gw.SpanID != parts[2] {
					t.Errorf("%s: trace metric span %s, want the gateway span %s", tok, parts[2], gw.SpanID)
				}
			}
		})
	})

	// Precise parenting on Istio's configuration: the router's upstream
	// filter is the module's one instance on inbound (the listener filter
	// matches CLIENT only), so each inbound request is recorded once.
	t.Run("precise/exact-tree", func(t *testing.T) {
		m, _ := e.mesh(t, demo.MeshOptions{Mode: demo.Precise, ExtProc: ext.Addr, EdgeTrust: true,
			ForwardRequestID: true, SidecarPolicy: policyWith(t, e.policy, []string{"key"})})
		from := time.Now()
		toks := tokens("precise", 3)
		send(t, m, toks, nil)
		m.Flush()
		checkTree(t, e.traces(t, from, toks, allHave(5)), preciseParents)
	})

	// Apps that forward nothing (narrowed and sole-in-flight correlation):
	// a second record of the same inbound request (a listener filter on
	// inbound besides the upstream one) would make every outbound lookup
	// ambiguous and each hop start a trace of its own.
	t.Run("precise/exact-tree-narrowed", func(t *testing.T) {
		m, _ := e.mesh(t, demo.MeshOptions{Mode: demo.Precise, ExtProc: ext.Addr, EdgeTrust: true})
		from := time.Now()
		toks := tokens("precise", 3)
		send(t, m, toks, nil)
		m.Flush()
		checkTree(t, e.traces(t, from, toks, allHave(5)), preciseParents)
	})

	t.Run("request-id-variant/restores-by-key", func(t *testing.T) {
		pol := policyWith(t, e.policy, []string{"key"})
		m, log := e.mesh(t, demo.MeshOptions{Mode: demo.AutoForward, ForwardRequestID: true, SidecarPolicy: pol, ExtProc: ext.Addr, EdgeTrust: true})
		from := time.Now()
		toks := tokens("rid", 12)
		concurrently(t, m, toks, 6, nil)
		m.Flush()
		checkTree(t, e.traces(t, from, toks, allHave(5)), autoParents)
		if strings.Contains(log.String(), "wasm:ambiguous") {
			t.Errorf("key strategy only: no request should be ambiguous")
		}
	})

	for _, conc := range []int{2, 8} {
		t.Run(fmt.Sprintf("sole-in-flight-under-load/concurrency-%d/never-a-wrong-trace", conc), func(t *testing.T) {
			m, log := e.mesh(t, demo.MeshOptions{Mode: demo.AutoForward, ExtProc: ext.Addr, EdgeTrust: true})
			from := time.Now()
			toks := tokens(fmt.Sprintf("load%d", conc), 40)
			concurrently(t, m, toks, conc, nil)
			m.Flush()
			got := e.traces(t, from, toks, allHave(5))
			// Every trace holding a span of a token must hold only spans
			// of that token: sole-in-flight never guesses.
			wrong, complete := 0, 0
			for tok, ts := range got {
				for _, tr := range ts {
					for _, s := range tr.Spans {
						if u := s.Tags["http.url"]; !strings.HasSuffix(u, "/"+tok) {
							wrong++
							t.Errorf("trace %s of %s holds a span of another request: %s %s", tr.ID, tok, s.Service, u)
						}
					}
				}
				if spanCount(ts) != 5 {
					t.Errorf("%s: %d spans reported, want 5", tok, spanCount(ts))
				}
				if len(ts) == 1 {
					complete++
				}
			}
			amb := strings.Count(log.String(), "wasm:ambiguous")
			restored := strings.Count(log.String(), "wasm:restored")
			if amb == 0 {
				t.Errorf("no ambiguous decision at concurrency %d: the load did not overlap", conc)
			}
			t.Logf("%d requests at concurrency %d: %d complete single traces, %d restored and %d ambiguous outbound decisions, %d misattributed spans",
				len(toks), conc, complete, restored, amb, wrong)
		})
	}

	t.Run("edge-trust/abusive-client-headers", func(t *testing.T) {
		m, log := e.mesh(t, demo.MeshOptions{Mode: demo.AutoForward, ExtProc: ext.Addr, EdgeTrust: true})
		from := time.Now()
		toks := tokens("edge", 3)
		const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		send(t, m, toks, map[string]string{
			"traceparent":         "00-" + clientTrace + "-00f067aa0ba902b7-01",
			"b3":                  "not-a-b3-header",
			"x-b3-traceid":        strings.Repeat("f", 300),
			"x-envoy-force-trace": "1",
			"x-client-trace-id":   "attacker",
			"tracestate":          strings.Repeat("k=v,", 200),
		})
		m.Flush()
		got := e.traces(t, from, toks, allHave(5))
		checkTree(t, got, autoParents)
		for tok, ts := range got {
			for _, tr := range ts {
				if backend.TraceIDEqual(tr.ID, clientTrace) {
					t.Errorf("%s: the client's trace id was trusted at the edge", tok)
				}
				if gw := only(t, tr, demo.GatewayService); gw.Tags["guid:x-client-trace-id"] != "" {
					t.Errorf("%s: x-client-trace-id reached the gateway span", tok)
				}
			}
		}
		_ = log
		// Inside the mesh (no edge): a malformed traceparent next to a
		// valid x-b3 context is repaired from it, so the hops after
		// productpage stay in Envoy's trace.
		const inTrace = "80f198ee56343ba864fe8b2a57d3eff7"
		tok := tokens("repair", 1)[0]
		req, _ := http.NewRequest("GET", m.Sidecars["productpage"].Inbound.URL()+"/api/v1/products/"+tok, nil)
		req.Header.Set("traceparent", "00-zzzz-yyyy-01")
		req.Header.Set("x-b3-traceid", inTrace)
		req.Header.Set("x-b3-spanid", "e457b5a2e4d86bd1")
		req.Header.Set("x-b3-sampled", "1")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		m.Flush()
		rep := e.traces(t, from, []string{tok}, allHave(4))[tok]
		if len(rep) != 1 || !backend.TraceIDEqual(rep[0].ID, inTrace) || len(rep[0].Spans) != 4 {
			t.Errorf("malformed traceparent in the mesh: want one trace %s with 4 spans, got:\n%s", inTrace, dump(rep))
		}
	})

	t.Run("reject-policy/ext_proc-immediate-response", func(t *testing.T) {
		// A gateway whose downstream ext_proc runs {"invalid":"reject"}:
		// a malformed traceparent is answered 400 by the real
		// tracebridge-extproc's ImmediateResponse; nothing reaches the app.
		doc, err := sidecar.GatewayPolicy([]byte(`{"invalid":"reject"}`), "downstream", "zipkin")
		if err != nil {
			t.Fatal(err)
		}
		pf := filepath.Join(t.TempDir(), "reject.json")
		if err := os.WriteFile(pf, doc, 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := demo.StartExtProc(e.extBin, pf, filepath.Join(t.TempDir(), "extproc.log"))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Stop()
		m, log := e.mesh(t, demo.MeshOptions{Mode: demo.AutoForward, ExtProc: p.Addr, GatewayPlacement: "downstream"})
		tok := tokens("reject", 1)[0]
		req, _ := http.NewRequest("GET", m.URL()+"/api/v1/products/"+tok, nil)
		req.Header.Set("traceparent", "00-not-a-valid-traceparent-01")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 400 || body["error"] != "invalid_trace_context" || body["header"] != "traceparent" {
			t.Errorf("reject: status %d body %v, want 400 invalid_trace_context for traceparent", resp.StatusCode, body)
		}
		if strings.Contains(log.String(), "productpage inbound") {
			t.Errorf("a rejected request reached productpage")
		}
		// A valid request still passes.
		send(t, m, tokens("reject-ok", 1), nil)
	})

	t.Run("extproc-killed/failure-mode-allow-and-recovery", func(t *testing.T) {
		p := e.extproc(t)
		m, log := e.mesh(t, demo.MeshOptions{Mode: demo.AutoForward, ExtProc: p.Addr, EdgeTrust: true})
		from := time.Now()
		var mu sync.Mutex
		type result struct {
			token  string
			status int
			dur    time.Duration
			err    error
		}
		var results []result
		stop := make(chan struct{})
		done := make(chan struct{})
		prefix := tokens("kill", 1)[0]
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tok := fmt.Sprintf("%s-%d", prefix, i)
				start := time.Now()
				resp, err := demo.SendRequest(context.Background(), client, m.URL(), tok, nil)
				r := result{token: tok, dur: time.Since(start), err: err}
				if err == nil {
					r.status = resp.StatusCode
				}
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
		time.Sleep(500 * time.Millisecond)
		p.Kill()
		killedAt := time.Now()
		time.Sleep(1500 * time.Millisecond)
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		restartedAt := time.Now()
		// Stop the background sender: with two requests in flight,
		// sole-in-flight (rightly) refuses to guess.
		close(stop)
		<-done
		// Tracing recovers: the gateway's ext_proc answers again (its
		// access-log line says ext_proc:continue for a new request).
		var recovered time.Time
		var recoveredTok string
		for i := 0; time.Since(restartedAt) < 10*time.Second; i++ {
			tok := fmt.Sprintf("%s-recover-%d", prefix, i)
			if _, err := demo.SendRequest(context.Background(), client, m.URL(), tok, nil); err == nil && gatewayDecision(log.String(), tok, "ext_proc:continue") {
				recovered, recoveredTok = time.Now(), tok
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if recovered.IsZero() {
			t.Fatalf("tracing did not recover within 10s of the ext_proc restart")
		}
		mu.Lock()
		defer mu.Unlock()
		allowed := 0
		var maxDur time.Duration
		for _, r := range results {
			maxDur = max(maxDur, r.dur)
			if r.err != nil || r.status != 200 {
				t.Errorf("%s: status %d, err %v: requests must keep flowing (failure_mode_allow)", r.token, r.status, r.err)
			}
			if r.dur > 3*time.Second {
				t.Errorf("%s took %s: nothing may hang (message_timeout 200 ms)", r.token, r.dur)
			}
			if gatewayDecision(log.String(), r.token, "ext_proc:failure_mode_allow") {
				allowed++
			}
		}
		if allowed == 0 {
			t.Errorf("no request went through failure_mode_allow: the kill had no effect")
		}
		// Requests made while ext_proc was down still form one trace each
		// (the sidecars' module does not depend on it); the recovered one
		// carries the gateway's metadata tags again.
		m.Flush()
		var check []string
		for _, r := range results {
			if gatewayDecision(log.String(), r.token, "ext_proc:failure_mode_allow") {
				check = append(check, r.token)
				if len(check) == 3 {
					break
				}
			}
		}
		check = append(check, recoveredTok)
		got := e.traces(t, from, check, allHave(5))
		checkTree(t, got, autoParents)
		if ts := got[recoveredTok]; len(ts) == 1 {
			if gw := only(t, ts[0], demo.GatewayService); gw.Tags["tenant"] != "acme" {
				t.Errorf("after recovery the gateway span lacks the ext_proc metadata tag tenant: %v", gw.Tags)
			}
		}
		t.Logf("%d requests (slowest %s), %d through failure_mode_allow; killed for %s; recovered %s after the restart",
			len(results), maxDur.Round(time.Millisecond), allowed, restartedAt.Sub(killedAt).Round(time.Millisecond), recovered.Sub(restartedAt).Round(time.Millisecond))
	})

	tracerAndTagScenarios(t, e, ext)

	t.Run("otel-tracer/auto-forward", func(t *testing.T) {
		m, _ := e.mesh(t, demo.MeshOptions{Mode: demo.AutoForward, Tracer: "otel"})
		from := time.Now()
		toks := tokens("otel", 2)
		send(t, m, toks, nil)
		m.Flush()
		checkTree(t, e.traces(t, from, toks, allHave(5)), autoParents)
	})
}

// gatewayDecision reports whether the gateway's log line for token names
// decision.
func gatewayDecision(log, token, decision string) bool {
	for _, line := range strings.Split(log, "\n") {
		if strings.HasPrefix(line, demo.GatewayService+" ") && strings.Contains(line, "/"+token+" ") {
			return strings.Contains(line, decision)
		}
	}
	return false
}

func ids(ts []demo.Trace) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.ID)
	}
	return out
}

func policyWith(t *testing.T, doc []byte, strategies []string) []byte {
	t.Helper()
	m := map[string]any{}
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	m["correlation"].(map[string]any)["strategies"] = strategies
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// concurrently sends one request per token with n workers; headers, when
// not nil, gives each request's extra headers.
func concurrently(t *testing.T, m *demo.Mesh, toks []string, n int, headers func(tok string) map[string]string) {
	t.Helper()
	ch := make(chan string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tok := range ch {
				var h map[string]string
				if headers != nil {
					h = headers(tok)
				}
				resp, err := demo.SendRequest(context.Background(), client, m.URL(), tok, h)
				if err != nil || resp.StatusCode != 200 {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("%s: %v %v", tok, err, resp))
					mu.Unlock()
				}
			}
		}()
	}
	for _, tok := range toks {
		ch <- tok
	}
	close(ch)
	wg.Wait()
	for _, e := range errs {
		t.Error(e)
	}
}
