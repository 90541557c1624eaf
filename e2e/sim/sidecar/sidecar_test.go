package sidecar

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tracebridge/tracebridge/e2e/sim/envoyconfig"
	"github.com/tracebridge/tracebridge/e2e/sim/envoysim"
	"github.com/tracebridge/tracebridge/internal/repo"
	"github.com/tracebridge/tracebridge/wasm-filter/wasmtest"
)

// echoApp answers with the request headers it received and, when asked by
// ?call=URL, first calls URL through its proxy without forwarding anything.
type echoApp struct {
	srv   *httptest.Server
	proxy string
	mu    sync.Mutex
	seen  []http.Header
}

func newEchoApp(t *testing.T) *echoApp {
	a := &echoApp{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.seen = append(a.seen, r.Header.Clone())
		a.mu.Unlock()
		out := map[string]any{"headers": r.Header}
		if call := r.URL.Query().Get("call"); call != "" {
			pu, _ := url.Parse(a.proxy)
			c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}, Timeout: 5 * time.Second}
			req, _ := http.NewRequest("GET", call, nil)
			if r.URL.Query().Get("rid") == "1" {
				// The variant that forwards x-request-id only.
				req.Header.Set("X-Request-Id", r.Header.Get("X-Request-Id"))
			}
			resp, err := c.Do(req)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			var inner map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&inner)
			resp.Body.Close()
			out["downstream"] = inner
		}
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func wasmPath(t *testing.T) string {
	t.Helper()
	p, err := wasmtest.EnsureModule()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func get(t *testing.T, u string, hdr map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp, body
}

func hdr(body map[string]any, name string) string {
	h, _ := body["headers"].(map[string]any)
	vs, _ := h[http.CanonicalHeaderKey(name)].([]any)
	if len(vs) == 0 {
		return ""
	}
	return vs[0].(string)
}

// TestRouterInjectionZipkin checks the Envoy rules tracebridge depends on,
// without any filter: the server span continues the incoming x-b3 context,
// the router overwrites x-b3-* with it, a stale parentspanid survives when
// the span has a parent, and the single b3 header is neither written nor
// removed (and wins extraction when present).
func TestRouterInjectionZipkin(t *testing.T) {
	app := newEchoApp(t)
	sc, err := Start(Config{Service: "app", App: app.srv.URL, Tracer: "zipkin"})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	const tid = "463ac35c9f6413ad48485a3953bb6124"
	_, body := get(t, sc.Inbound.URL()+"/", map[string]string{
		"x-b3-traceid": tid, "x-b3-spanid": "a2fb4a1d1a96d312", "x-b3-sampled": "1",
	})
	if got := hdr(body, "x-b3-traceid"); got != tid {
		t.Errorf("x-b3-traceid = %q, want the incoming trace", got)
	}
	if got := hdr(body, "x-b3-parentspanid"); got != "a2fb4a1d1a96d312" {
		t.Errorf("x-b3-parentspanid = %q, want the caller's span", got)
	}
	if got := hdr(body, "x-b3-spanid"); got == "a2fb4a1d1a96d312" || len(got) != 16 {
		t.Errorf("x-b3-spanid = %q, want a new server span id", got)
	}
	// A stale single b3 wins extraction (read first) and is passed on
	// untouched.
	stale := "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"
	_, body = get(t, sc.Inbound.URL()+"/", map[string]string{
		"b3": stale, "x-b3-traceid": tid, "x-b3-spanid": "a2fb4a1d1a96d312", "x-b3-sampled": "1",
	})
	if got := hdr(body, "b3"); got != stale {
		t.Errorf("b3 = %q, want it untouched", got)
	}
	if got := hdr(body, "x-b3-traceid"); got != "80f198ee56343ba864fe8b2a57d3eff7" {
		t.Errorf("x-b3-traceid = %q, want the trace of the single b3 header (read first)", got)
	}
	// Malformed context: NullSpan, nothing injected.
	_, body = get(t, sc.Inbound.URL()+"/", map[string]string{"x-b3-traceid": "zz", "x-b3-spanid": "a2fb4a1d1a96d312"})
	if got := hdr(body, "x-b3-traceid"); got != "zz" {
		t.Errorf("malformed context: x-b3-traceid = %q, want it untouched (NullSpan injects nothing)", got)
	}
	if got := hdr(body, "x-b3-sampled"); got != "" {
		t.Errorf("malformed context: x-b3-sampled = %q, want none", got)
	}
	// x-request-id is generated when absent.
	if got := hdr(body, "x-request-id"); len(got) != 36 {
		t.Errorf("x-request-id = %q, want a generated UUID", got)
	}
}

// TestOutboundWithoutTracingInjectsNothing: client tracing off leaves the
// outbound listener without a tracing block.
func TestOutboundWithoutTracingInjectsNothing(t *testing.T) {
	backend := newEchoApp(t)
	app := newEchoApp(t)
	sc, err := Start(Config{Service: "app", App: app.srv.URL, Tracer: "zipkin", ClientTracing: false})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	app.proxy = sc.Outbound.URL()
	_, body := get(t, sc.Inbound.URL()+"/?call="+url.QueryEscape(backend.srv.URL+"/x"), nil)
	inner, _ := body["downstream"].(map[string]any)
	if inner == nil {
		t.Fatalf("no downstream answer: %v", body)
	}
	for _, h := range []string{"x-b3-traceid", "traceparent", "b3"} {
		if got := hdr(inner, h); got != "" {
			t.Errorf("outbound without tracing: %s = %q, want none", h, got)
		}
	}
}

// TestOTelInjection: the OpenTelemetry tracer writes traceparent only.
func TestOTelInjection(t *testing.T) {
	app := newEchoApp(t)
	sc, err := Start(Config{Service: "app", App: app.srv.URL, Tracer: "otel"})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	_, body := get(t, sc.Inbound.URL()+"/", map[string]string{
		"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "x-b3-traceid": "463ac35c9f6413ad",
		"x-b3-spanid": "a2fb4a1d1a96d312",
	})
	tp := hdr(body, "traceparent")
	if !strings.HasPrefix(tp, "00-0af7651916cd43dd8448eb211c80319c-") || strings.Contains(tp, "b7ad6b7169203331") || !strings.HasSuffix(tp, "-01") {
		t.Errorf("traceparent = %q, want the same trace with a new span id", tp)
	}
	if got := hdr(body, "x-b3-spanid"); got != "a2fb4a1d1a96d312" {
		t.Errorf("x-b3-spanid = %q: the OpenTelemetry tracer must not touch x-b3-*", got)
	}
}

// TestWasmModuleLoads runs the compiled module in both listeners.
func TestWasmModuleLoads(t *testing.T) {
	app := newEchoApp(t)
	var log strings.Builder
	var mu sync.Mutex
	sc, err := Start(Config{Service: "app", App: app.srv.URL, Tracer: "zipkin", Wasm: wasmPath(t), Log: lockedWriter{&mu, &log}})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	resp, _ := get(t, sc.Inbound.URL()+"/", map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("log:\n%s", log.String())
	if !strings.Contains(log.String(), "decisions=wasm:") {
		t.Errorf("no wasm decision in the request log")
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// TestHostProfiles drives the module through a sidecar under each modelled
// proxy-wasm-cpp-host WASI (docs/ENVOY.md §7) with enough traffic for several
// GC cycles in the guest, and reports whether the VM survived.
func TestHostProfiles(t *testing.T) {
	wasm := wasmPath(t)
	for _, profile := range []string{"cpp-host-533", "cpp-host-427"} {
		t.Run(profile, func(t *testing.T) {
			backend := newEchoApp(t)
			app := newEchoApp(t)
			var log strings.Builder
			var mu sync.Mutex
			sc, err := Start(Config{Service: "app", App: app.srv.URL, Tracer: "zipkin", Wasm: wasm,
				HostProfile: envoysim.HostProfile(profile), Workers: 1, Log: lockedWriter{&mu, &log}})
			if err != nil {
				t.Fatalf("%s: %v", profile, err)
			}
			defer sc.Close()
			app.proxy = sc.Outbound.URL()
			big := strings.Repeat("x", 2000)
			for i := 0; i < 1500; i++ {
				resp, _ := get(t, sc.Inbound.URL()+"/?call="+url.QueryEscape(backend.srv.URL+"/x"), map[string]string{
					"x-request-id": fmt.Sprintf("req-%d", i), "baggage": "k=" + big[:i%2000],
				})
				if resp.StatusCode != 200 {
					t.Fatalf("request %d: status %d", i, resp.StatusCode)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			t.Logf("%s: 1500 requests, the guest called poll_oneoff %d times", profile, sc.Wasm.PollOneoffCalls())
			if strings.Contains(log.String(), "vm-failed") || strings.Contains(log.String(), "wasm VM failed") {
				t.Errorf("%s: the VM failed:\n%s", profile, tail(log.String()))
			}
		})
	}
}

func tail(s string) string {
	if len(s) > 3000 {
		return s[len(s)-3000:]
	}
	return s
}

// TestSidecarCommand runs `tracebridge sidecar` and stops it with SIGTERM.
func TestSidecarCommand(t *testing.T) {
	app := newEchoApp(t)
	var out strings.Builder
	var mu sync.Mutex
	w := lockedWriter{&mu, &out}
	done := make(chan int, 1)
	go func() {
		done <- RunSidecarCommand([]string{"--app", app.srv.URL, "--inbound-listen", "127.0.0.1:0", "--outbound-listen", "127.0.0.1:0",
			"--service", "cli-app", "--wasm", wasmPath(t)}, w, w)
	}()
	var inbound string
	deadline := time.Now().Add(60 * time.Second)
	for inbound == "" && time.Now().Before(deadline) {
		mu.Lock()
		for _, line := range strings.Split(out.String(), "\n") {
			if f := strings.Fields(line); len(f) > 2 && f[0] == "inbound" && f[1] == "listener" {
				inbound = f[2]
			}
		}
		mu.Unlock()
		select {
		case code := <-done:
			t.Fatalf("exited early with %d:\n%s", code, out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if inbound == "" {
		t.Fatalf("no listen address printed:\n%s", out.String())
	}
	resp, _ := get(t, inbound+"/hello", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not exit on SIGTERM")
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(out.String(), "cli-app inbound") || !strings.Contains(out.String(), "decisions=wasm:") {
		t.Errorf("no per-request decision line:\n%s", out.String())
	}
	t.Logf("output:\n%s", out.String())
}

// TestWasmRejectPolicy: the module's local reply (proxy_send_local_response)
// answers a malformed trace header under {"invalid":"reject"}; the app is
// never called.
func TestWasmRejectPolicy(t *testing.T) {
	app := newEchoApp(t)
	sc, err := Start(Config{Service: "app", App: app.srv.URL, Tracer: "zipkin", Wasm: wasmPath(t), Policy: []byte(`{"invalid":"reject"}`)})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	req, _ := http.NewRequest("GET", sc.Inbound.URL()+"/", nil)
	req.Header.Set("traceparent", "00-zz-yy-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 400 || body["error"] != "invalid_trace_context" {
		t.Errorf("status %d body %v, want 400 invalid_trace_context", resp.StatusCode, body)
	}
	app.mu.Lock()
	defer app.mu.Unlock()
	if len(app.seen) != 0 {
		t.Errorf("the app was called for a rejected request")
	}
}

// TestSidecarWithExtProc: the sidecar with the real tracebridge-extproc as
// its filter on both listeners (no wasm): the inbound context is recorded by
// the service and restored on the app's outbound call by x-request-id.
func TestSidecarWithExtProc(t *testing.T) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "tracebridge-extproc")
	if out, err := exec.Command("go", "build", "-C", root, "-o", bin, "./extproc/cmd/tracebridge-extproc").CombinedOutput(); err != nil {
		t.Fatalf("building tracebridge-extproc: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "--listen", addr, "--admin-listen", "")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	backend := newEchoApp(t)
	app := newEchoApp(t)
	var log strings.Builder
	var mu sync.Mutex
	sc, err := Start(Config{Service: "app", App: app.srv.URL, Tracer: "zipkin", ExtProc: addr, Log: lockedWriter{&mu, &log}})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	app.proxy = sc.Outbound.URL()
	const tid = "463ac35c9f6413ad48485a3953bb6124"
	_, body := get(t, sc.Inbound.URL()+"/?rid=1&call="+url.QueryEscape(backend.srv.URL+"/x"), map[string]string{
		"x-b3-traceid": tid, "x-b3-spanid": "a2fb4a1d1a96d312", "x-b3-sampled": "1",
	})
	inner, _ := body["downstream"].(map[string]any)
	if got := hdr(inner, "x-b3-traceid"); got != tid {
		mu.Lock()
		t.Errorf("outbound x-b3-traceid = %q, want %s restored by ext_proc; log:\n%s", got, tid, log.String())
		mu.Unlock()
	}
	if got := hdr(inner, "traceparent"); !strings.Contains(got, tid) {
		t.Errorf("outbound traceparent = %q, want the restored trace", got)
	}
}

// TestGeneratedConfig: a sidecar configured from Istio's generated
// configuration takes its filters, upstream filters and tracing blocks from
// the file, and refuses what it cannot run.
func TestGeneratedConfig(t *testing.T) {
	golden := func(mode string) *envoyconfig.File {
		f, err := LoadGenerated(filepath.Join("..", "..", "..", "istiocheck", "golden", mode, "sidecar.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	app := newEchoApp(t)
	wasm := wasmPath(t)
	cases := []struct {
		mode               string
		inFilters, inUp    []string
		inTracing, outTrac bool
	}{
		{"sidecar-auto-forward", []string{"envoy.filters.http.wasm/extensions.istio.io/trafficextension/default.tracebridge/inbound"}, nil, true, false},
		// Precise parenting: the listener filter on outbound only, so the
		// upstream filter is the one instance on inbound.
		{"precise-parenting", nil, []string{"envoy.filters.http.wasm/tracebridge-upstream/inbound"}, true, false},
	}
	names := func(fs []envoysim.Filter) []string {
		var out []string
		for _, f := range fs {
			out = append(out, f.Name())
		}
		return out
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			sc, err := Start(Config{Service: "app", App: app.srv.URL, Wasm: wasm, Envoy: golden(c.mode)})
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			if got := names(sc.Inbound.Filters); !slices.Equal(got, c.inFilters) {
				t.Errorf("inbound filters %v, want %v", got, c.inFilters)
			}
			if got := names(sc.Inbound.UpstreamFilters); !slices.Equal(got, c.inUp) {
				t.Errorf("inbound upstream filters %v, want %v", got, c.inUp)
			}
			if (sc.Inbound.Tracing != nil) != c.inTracing || (sc.Outbound.Tracing != nil) != c.outTrac {
				t.Errorf("tracing blocks inbound %v outbound %v, want %v %v", sc.Inbound.Tracing != nil, sc.Outbound.Tracing != nil, c.inTracing, c.outTrac)
			}
			if sc.Inbound.Tracing != nil {
				tags := map[string]envoysim.CustomTag{}
				for _, ct := range sc.Inbound.Tracing.CustomTags {
					tags[ct.Tag] = ct
				}
				if tags["tenant"].RequestHeader != "x-tracebridge-tenant" || tags["istio.canonical_service"].Literal != "app" {
					t.Errorf("custom tags %+v", sc.Inbound.Tracing.CustomTags)
				}
				if sc.Inbound.Tracing.RandomSampling != 1 {
					t.Errorf("random sampling %v, want Istio's default 1 %%", sc.Inbound.Tracing.RandomSampling)
				}
			}
		})
	}
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no module", Config{Service: "app", App: app.srv.URL, Envoy: golden("sidecar-auto-forward")}, "no module was given"},
		{"otel", Config{Service: "app", App: app.srv.URL, Wasm: wasm, Tracer: "otel", Envoy: golden("sidecar-auto-forward")}, "Istio's Zipkin provider"},
		{"position", Config{Service: "app", App: app.srv.URL, Wasm: wasm, InboundPosition: "upstream", Envoy: golden("precise-parenting")}, "takes the inbound position"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sc, err := Start(c.cfg)
			if err == nil {
				sc.Close()
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

// TestEnvoyBootstrapConfig: a sidecar built from the plain-Envoy bootstrap
// takes the module's configuration, ext_proc's settings, the tracing block
// and the early header mutation from the file.
func TestEnvoyBootstrapConfig(t *testing.T) {
	f, err := LoadGenerated(filepath.Join("..", "..", "..", "manifests", "envoy", "envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	app := newEchoApp(t)
	cfg := Config{Service: "tracebridge", App: app.srv.URL, Wasm: wasmPath(t), ExtProc: "127.0.0.1:1",
		Envoy: f, EnvoyInbound: envoyconfig.Chain{Listener: "inbound"}, EnvoyOutbound: envoyconfig.Chain{Listener: "outbound"}}
	sc, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	names := []string{}
	for _, fl := range sc.Inbound.Filters {
		names = append(names, fl.Name())
	}
	if want := []string{"envoy.filters.http.wasm/envoy.filters.http.wasm/inbound", "envoy.filters.http.ext_proc"}; !slices.Equal(names, want) {
		t.Errorf("inbound filters %v, want %v", names, want)
	}
	if w, ok := sc.Inbound.Filters[0].(*envoysim.WasmFilter); !ok || !strings.Contains(string(w.Config), `"untrustedDirections":["inbound"]`) || !w.FailOpen {
		t.Errorf("inbound module configuration is not the file's: %+v", sc.Inbound.Filters[0])
	}
	if ep := sc.ExtProc; ep == nil || ep.MessageTimeout != 100*time.Millisecond || !ep.FailureModeAllow || !slices.Equal(ep.ReceivingNamespaces, []string{"tracebridge"}) {
		t.Errorf("ext_proc settings %+v", sc.ExtProc)
	}
	if len(sc.Inbound.EarlyHeaderRemovals) != 15 || sc.Inbound.Tracing == nil || sc.Outbound.Tracing != nil {
		t.Errorf("early removals %v, tracing inbound %v outbound %v", sc.Inbound.EarlyHeaderRemovals, sc.Inbound.Tracing != nil, sc.Outbound.Tracing != nil)
	}
	cfg.ExtProc = ""
	if sc, err := Start(cfg); err == nil || !strings.Contains(err.Error(), "calls cluster tracebridge_extproc") {
		if sc != nil {
			sc.Close()
		}
		t.Errorf("without an ext_proc address: %v", err)
	}
}
