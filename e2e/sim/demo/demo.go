// Package demo is tracebridge's local demo and the building blocks of the
// end-to-end tests: a bookinfo-shaped mesh on 127.0.0.1 (an ingress gateway
// with ext_proc enrichment → productpage → details, and → reviews → ratings),
// whose services are small Go apps that do not propagate trace headers, run
// behind sidecars of the e2e/sim/envoysim harness hosting the real compiled
// module and the real tracebridge-extproc; an embedded Zipkin span sink; and
// ASCII trace trees. RunDemoCommand is `tracebridge demo` (make demo).
package demo

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/tracebridge/tracebridge/e2e/sim/backend"
	"github.com/tracebridge/tracebridge/e2e/sim/envoysim"
	"github.com/tracebridge/tracebridge/e2e/sim/sidecar"
	"github.com/tracebridge/tracebridge/internal/repo"
	"github.com/tracebridge/tracebridge/propagation"
)

// DemoJWT is an unsigned JWT whose payload carries subscription.plan=gold
// (the sample policy's "plan" tag reads it without verifying, as documented).
var DemoJWT = "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"demo-user","subscription":{"plan":"gold"}}`)) + "."

// SendRequest sends one client request through the gateway for token.
func SendRequest(ctx context.Context, client *http.Client, gatewayURL, token string, extra map[string]string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, gatewayURL+"/api/v1/products/"+token, nil)
	if err != nil {
		return nil, err
	}
	req.Host = "bookinfo.example.com"
	req.Header.Set("X-Tenant-Id", "acme")
	req.Header.Set("Authorization", "Bearer "+DemoJWT)
	for k, v := range extra {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

// TracesOf returns the traces holding a span whose URL ends with token.
func TracesOf(traces []Trace, token string) []Trace {
	var out []Trace
	for _, t := range traces {
		for _, s := range t.Spans {
			if strings.HasSuffix(s.Tags["http.url"], "/"+token) {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

// EnsureWasm returns $TRACEBRIDGE_WASM if set, else bin/tracebridge.wasm,
// building it (make wasm's command) when it is missing.
func EnsureWasm(root string) (string, error) {
	if p := os.Getenv("TRACEBRIDGE_WASM"); p != "" {
		return filepath.Abs(p)
	}
	out := filepath.Join(root, "bin", "tracebridge.wasm")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w", "-o", out, "./wasm-filter")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the wasm module: %v\n%s", err, b)
	}
	return out, nil
}

// collector is where the demo's spans go and how they are read back.
type collector struct {
	sink   *Sink
	jaeger *backend.JaegerInstance
}

func (c *collector) url() string {
	if c.jaeger != nil {
		return c.jaeger.ZipkinURL
	}
	return c.sink.URL()
}

// spans reads the spans reported between from and to, waiting until the
// count stops growing.
func (c *collector) spans(ctx context.Context, from, to time.Time) ([]SpanView, error) {
	read := func() ([]SpanView, error) {
		if c.jaeger == nil {
			var out []SpanView
			for _, s := range c.sink.Spans() {
				if !s.Start.Before(from) && !s.Start.After(to) {
					out = append(out, s)
				}
			}
			return out, nil
		}
		seen := map[string]bool{}
		var traces []backend.Trace
		for _, svc := range append([]string{GatewayService}, Services...) {
			ts, err := c.jaeger.Query.Traces(ctx, backend.TraceQuery{Service: svc, Start: from, End: to.Add(time.Second), Limit: 1000})
			if err != nil {
				if strings.Contains(err.Error(), "404") {
					continue
				}
				return nil, err
			}
			for _, t := range ts {
				if !seen[t.TraceID] {
					seen[t.TraceID] = true
					traces = append(traces, t)
				}
			}
		}
		var out []SpanView
		for _, s := range FromJaeger(traces) {
			if !s.Start.Before(from) {
				out = append(out, s)
			}
		}
		return out, nil
	}
	var last []SpanView
	stable := 0
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		s, err := read()
		if err != nil {
			return nil, err
		}
		if len(s) == len(last) && len(s) > 0 {
			stable++
			if stable >= 2 {
				return s, nil
			}
		} else {
			stable = 0
		}
		last = s
		time.Sleep(300 * time.Millisecond)
	}
	return last, nil
}

// RunDemoCommand is `tracebridge demo`.
func RunDemoCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tracebridge demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	useJaeger := fs.Bool("jaeger", os.Getenv("JAEGER") == "1", "report to real Jaeger v2 (bin/tools/jaeger, built by buildtools/build.sh) instead of the embedded span sink; also JAEGER=1")
	requests := fs.Int("requests", 3, "client requests per phase")
	hold := fs.Bool("hold", false, "keep the mesh and Jaeger running after the output until Ctrl-C (default with --jaeger)")
	verbose := fs.Bool("v", false, "print every proxy's request log line")
	precise := fs.Bool("precise", true, "also run the precise-parenting mode (module as an upstream filter on the inbound cluster)")
	profile := fs.String("wasm-host-profile", string(envoysim.DefaultHostProfile), "proxy-wasm-cpp-host version the wasm host reproduces: cpp-host-533 (Envoy 1.39+) or cpp-host-427 (Envoy 1.33–1.38)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tracebridge demo [--jaeger] [--requests N] [--precise=false] [--hold] [-v]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	holdSet := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "hold" {
			holdSet = true
		}
	})
	if *useJaeger && !holdSet {
		*hold = true
	}
	if err := runDemo(stdout, stderr, *useJaeger, *requests, *hold, *verbose, *precise, envoysim.HostProfile(*profile)); err != nil {
		fmt.Fprintln(stderr, "tracebridge demo:", err)
		return 1
	}
	return 0
}

func runDemo(stdout, stderr io.Writer, useJaeger bool, requests int, hold, verbose, precise bool, profile envoysim.HostProfile) error {
	root, err := repo.Root()
	if err != nil {
		return fmt.Errorf("run the demo from the repository (make demo): %w", err)
	}
	work, err := os.MkdirTemp("", "tracebridge-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	fmt.Fprintln(stdout, "tracebridge demo: a bookinfo-shaped mesh on 127.0.0.1 (no cluster, no Docker, no network)")
	fmt.Fprintln(stdout, "  istio-ingressgateway → productpage → details, reviews → ratings; the apps forward no trace headers")
	fmt.Fprintln(stdout, "  (productpage relays its caller's bearer token and nothing else: its calls are restored by the narrowed strategy;")
	fmt.Fprintln(stdout, "   reviews forwards x-request-id only: its call to ratings is restored by key; anything else by sole-in-flight)")
	wasm, err := EnsureWasm(root)
	if err != nil {
		return err
	}
	extBin := os.Getenv("TRACEBRIDGE_EXTPROC_BIN")
	if extBin == "" {
		if extBin, err = BuildExtProc(root, filepath.Join(root, "bin")); err != nil {
			return err
		}
	}
	c := &collector{}
	if useJaeger {
		bin := os.Getenv("TRACEBRIDGE_JAEGER_BIN")
		if bin == "" {
			// buildtools/build.sh is a no-op when bin/tools/jaeger is
			// fresh; it prints the binary's path last.
			fmt.Fprintln(stdout, "  Jaeger v2: buildtools/build.sh jaeger (built once, then cached in bin/tools/)…")
			cmd := exec.Command("bash", filepath.Join(root, "buildtools", "build.sh"), "jaeger")
			cmd.Dir = root
			cmd.Stderr = stderr
			out, err := cmd.Output()
			if err != nil {
				return fmt.Errorf("building Jaeger: %w", err)
			}
			f := strings.Fields(string(out))
			if len(f) == 0 {
				return fmt.Errorf("buildtools/build.sh jaeger printed no path")
			}
			bin = f[len(f)-1]
		}
		c.jaeger, err = backend.StartJaeger(bin, filepath.Join(work, "jaeger"))
		if err != nil {
			return err
		}
		defer c.jaeger.Stop()
		fmt.Fprintf(stdout, "  spans go to Jaeger v2: UI and API at %s (Zipkin receiver %s)\n", c.jaeger.QueryURL, c.jaeger.ZipkinURL)
	} else {
		c.sink, err = StartSink()
		if err != nil {
			return err
		}
		defer c.sink.Close()
		fmt.Fprintf(stdout, "  spans go to the embedded Zipkin span sink at %s (make demo JAEGER=1 for real Jaeger)\n", c.sink.URL())
	}
	// With -v the proxies' log lines are printed as they come.
	var log io.Writer
	if verbose {
		log = stdout
	}
	policy, err := DemoPolicy(root)
	if err != nil {
		return err
	}
	gwPolicy, err := sidecar.GatewayPolicy(policy, "upstream", "zipkin")
	if err != nil {
		return err
	}
	gwPolicyFile := filepath.Join(work, "gateway-policy.json")
	if err := os.WriteFile(gwPolicyFile, gwPolicy, 0o644); err != nil {
		return err
	}
	ext, err := StartExtProc(extBin, gwPolicyFile, filepath.Join(work, "extproc.log"))
	if err != nil {
		return err
	}
	defer ext.Stop()
	tokens := make([]string, requests)
	for i := range tokens {
		tokens[i] = fmt.Sprintf("book-%d", i+1)
	}
	modes := []Mode{Control, AutoForward}
	if precise {
		modes = append(modes, Precise)
	}
	fmt.Fprintln(stdout, "  starting the mesh (the first run compiles the wasm module with wazero: ~15 s; later runs use the cache)")
	var summary []string
	client := &http.Client{Timeout: 10 * time.Second}
	ctx := context.Background()
	for _, mode := range modes {
		m, err := StartMesh(MeshOptions{Mode: mode, Tracer: "zipkin", Collector: c.url(), Wasm: wasm, WasmHostProfile: profile, SidecarPolicy: policy, RequestIDApps: []string{"reviews"},
			RelayHeaders: []string{"authorization"}, RelayApps: []string{"productpage"},
			ExtProc: ext.Addr, EdgeTrust: mode != Control, ReportInterval: 200 * time.Millisecond, ClientSpans: true, Log: log, Generated: generated(root, mode)})
		if err != nil {
			return err
		}
		title := map[Mode]string{
			Control:     "WITHOUT tracebridge (Istio defaults: client tracing on, apps forward nothing)",
			AutoForward: "WITH tracebridge, sidecar auto-forward (module on both listeners, client tracing off, the module's own CLIENT spans) + gateway ext_proc enrichment",
			Precise:     "WITH tracebridge, precise parenting (module as an upstream filter on the inbound cluster)",
		}[mode]
		fmt.Fprintf(stdout, "\n=== %s\n", title)
		if g := m.Sidecars["productpage"].Generated(); g != "" {
			fmt.Fprintf(stdout, "  sidecars run the configuration Istio generates (istiocheck/golden/sidecar-auto-forward/sidecar.yaml): %s\n", g)
		}
		from := time.Now()
		var traceResponses []string
		for _, tok := range tokens {
			resp, err := SendRequest(ctx, client, m.URL(), tok, nil)
			if err != nil {
				m.Close()
				return err
			}
			if label, v := ResponseTraceContext(resp.Header); v != "" {
				traceResponses = append(traceResponses, tok+": "+label+v)
			}
		}
		m.Flush()
		m.Close()
		to := time.Now()
		spans, err := c.spans(ctx, from, to)
		if err != nil {
			return err
		}
		traces := GroupTraces(spans)
		total := 0
		for _, tok := range tokens {
			ts := TracesOf(traces, tok)
			total += len(ts)
			fmt.Fprintf(stdout, "\nrequest GET /api/v1/products/%s → %d trace(s)\n", tok, len(ts))
			for _, t := range ts {
				Render(stdout, t)
			}
			if mode != Control {
				for _, h := range restoredBy(ts) {
					fmt.Fprintln(stdout, "  "+h)
				}
			}
		}
		for _, l := range traceResponses {
			fmt.Fprintln(stdout, "  "+l)
		}
		summary = append(summary, fmt.Sprintf("  %-13s %d requests → %d traces", mode.String()+":", len(tokens), total))
	}
	fmt.Fprintln(stdout, "\n=== summary")
	for _, s := range summary {
		fmt.Fprintln(stdout, s)
	}
	if c.jaeger != nil {
		svcs, _ := c.jaeger.Query.Services(ctx)
		sort.Strings(svcs)
		fmt.Fprintf(stdout, "  Jaeger query API: %s/api/traces?service=%s  (services: %s)\n", c.jaeger.QueryURL, GatewayService, strings.Join(svcs, ", "))
		fmt.Fprintf(stdout, "  Jaeger UI: %s/search  (a placeholder page when Jaeger was built without its UI assets, as buildtools/build.sh builds it)\n", c.jaeger.QueryURL)
	}
	if hold {
		fmt.Fprintln(stdout, "  running until Ctrl-C…")
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
	}
	return nil
}

// ResponseTraceContext returns the trace context a response names, in
// traceparent layout, and a label saying how it came (printed before it):
// the server-timing "trace" metric's
// desc (Trace Context Level 2, tracebridge's default), else a traceresponse
// header (responseHeader.format traceresponse). Both empty when neither is
// there.
func ResponseTraceContext(h http.Header) (label, value string) {
	st := strings.Join(h.Values("Server-Timing"), ",")
	if desc, found, _ := propagation.FindServerTimingMetric(st, propagation.ServerTimingTraceMetric); found && desc != "" {
		return "server-timing trace;desc=", desc
	}
	if v := h.Get("Traceresponse"); v != "" {
		return "traceresponse ", v
	}
	return "", ""
}

// restoredBy names, for each outbound call in traces, how tracebridge found
// its context: the tracebridge.strategy tag of the CLIENT span the module
// reported for it (engine Result.Strategy).
func restoredBy(traces []Trace) []string {
	why := map[string]string{
		"key":          "restored by key (x-request-id)",
		"narrowed":     "restored by narrowed (the relayed authorization header)",
		"soleInFlight": "restored by sole in flight",
		"injected":     "not restored: a new trace",
	}
	var out []string
	for _, t := range traces {
		for _, sp := range t.Spans {
			st, ok := sp.Tags["tracebridge.strategy"]
			if sp.Kind != "CLIENT" || !ok {
				continue
			}
			by := why[st]
			if by == "" {
				by = "strategy " + st
			}
			target, _, _ := strings.Cut(sp.Name, "/")
			out = append(out, fmt.Sprintf("%-11s → %-13s %s", sp.Service, target, by))
		}
	}
	sort.Strings(out)
	return out
}

// generated is where the mode's sidecars find the configuration Istio
// generates for them: auto-forward and precise run it; control has no
// overlay.
func generated(root string, mode Mode) string {
	if mode == Control {
		return ""
	}
	return filepath.Join(root, "istiocheck", "golden")
}
