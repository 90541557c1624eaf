package sidecar

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tracebridge/tracebridge/e2e/sim/envoysim"
)

// RunSidecarCommand is `tracebridge sidecar`: one sidecar in front of a
// local app until SIGINT or SIGTERM.
func RunSidecarCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tracebridge sidecar", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	var policyFile, routes string
	fs.StringVar(&cfg.App, "app", "", "the app's URL, http://127.0.0.1:PORT (required)")
	fs.StringVar(&cfg.InboundListen, "inbound-listen", "127.0.0.1:15006", "inbound listener (reverse proxy to the app); 127.0.0.1 only")
	fs.StringVar(&cfg.OutboundListen, "outbound-listen", "127.0.0.1:15001", "outbound listener: the HTTP forward proxy the app must use (set it explicitly: Go's ProxyFromEnvironment never proxies loopback)")
	fs.StringVar(&cfg.Wasm, "wasm", "", "compiled module (bin/tracebridge.wasm); empty: no wasm filter")
	profile := fs.String("wasm-host-profile", string(envoysim.DefaultHostProfile), "proxy-wasm-cpp-host version whose WASI and callback restrictions the wasm host reproduces: cpp-host-533 (Envoy 1.39+ / Istio 1.31+: poll_oneoff returns 0 events) or cpp-host-427 (Envoy 1.33–1.38 / Istio 1.25–1.30: poll_oneoff and fd_fdstat_set_flags ENOSYS, restricted calls trap)")
	fs.StringVar(&cfg.ExtProc, "extproc", "", "tracebridge-extproc address host:port; empty: no ext_proc filter")
	fs.StringVar(&policyFile, "policy", "", "policy document (JSON); empty: zero-config default")
	fs.StringVar(&cfg.Tracer, "tracer", "zipkin", "Envoy tracer: zipkin, zipkin-w3c (B3 and W3C propagation), otel or none")
	clientTracing := fs.String("client-tracing", "off", "on: the outbound listener has a tracing block (Istio default); off: Telemetry match.mode SERVER")
	fs.StringVar(&cfg.InboundPosition, "inbound-position", "downstream", "downstream (listener filter) or upstream (filter on the inbound cluster: precise parenting)")
	fs.StringVar(&cfg.Collector, "collector", "", "span collector URL (Zipkin http://127.0.0.1:9411/api/v2/spans, or OTLP/HTTP …/v1/traces with --tracer otel); empty: spans not reported")
	fs.StringVar(&cfg.Service, "service", "app", "service name on spans")
	fs.StringVar(&routes, "route", "", "outbound service registry: comma-separated authority=address, e.g. details:9080=127.0.0.1:9081")
	fs.IntVar(&cfg.Workers, "workers", 2, "worker VMs (Envoy --concurrency)")
	sampling := fs.Float64("sampling", 100, "random sampling percentage")
	fs.BoolVar(&cfg.FilterStateTags, "filter-state-tags", true, "tag spans from the module's filter state (Envoy ≥ 1.37 value custom tags)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tracebridge sidecar: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return 2
	}
	if cfg.App == "" {
		fmt.Fprintln(stderr, "tracebridge sidecar: --app is required")
		return 2
	}
	switch *clientTracing {
	case "on":
		cfg.ClientTracing = true
	case "off":
	default:
		fmt.Fprintf(stderr, "tracebridge sidecar: --client-tracing must be on or off, got %q\n", *clientTracing)
		return 2
	}
	cfg.Sampling = sampling
	cfg.HostProfile = envoysim.HostProfile(*profile)
	if policyFile != "" {
		data, err := os.ReadFile(policyFile)
		if err != nil {
			fmt.Fprintln(stderr, "tracebridge sidecar:", err)
			return 1
		}
		cfg.Policy = data
	}
	if routes != "" {
		cfg.Routes = map[string]string{}
		for _, r := range strings.Split(routes, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(r), "=")
			if !ok {
				fmt.Fprintf(stderr, "tracebridge sidecar: --route %q: want authority=address\n", r)
				return 2
			}
			cfg.Routes[k] = v
		}
	}
	cfg.Log = stdout
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	sc, err := Start(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "tracebridge sidecar:", err)
		return 1
	}
	filters := []string{}
	if cfg.Wasm != "" {
		hp := string(cfg.HostProfile)
		if hp == "" {
			hp = string(envoysim.DefaultHostProfile)
		}
		filters = append(filters, "wasm "+cfg.Wasm+" (inbound "+cfg.InboundPosition+", host "+hp+")")
	}
	if cfg.ExtProc != "" {
		filters = append(filters, "ext_proc "+cfg.ExtProc)
	}
	if len(filters) == 0 {
		filters = append(filters, "none")
	}
	fmt.Fprintf(stdout, "tracebridge sidecar for %s (%s)\n", cfg.Service, cfg.App)
	fmt.Fprintf(stdout, "  inbound  listener http://%s → %s (tracer %s, server spans)\n", sc.Inbound.Addr(), cfg.App, cfg.Tracer)
	fmt.Fprintf(stdout, "  outbound listener http://%s (forward proxy; client tracing %s)\n", sc.Outbound.Addr(), *clientTracing)
	fmt.Fprintf(stdout, "  filters: %s; spans → %s\n", strings.Join(filters, ", "), orNone(cfg.Collector))
	fmt.Fprintf(stdout, "  point the app's HTTP client at the proxy, e.g. http.ProxyURL(\"http://%s\")\n", sc.Outbound.Addr())
	s := <-sig
	fmt.Fprintf(stdout, "tracebridge sidecar: %v: draining and flushing spans\n", s)
	sc.Close()
	return 0
}

func orNone(s string) string {
	if s == "" {
		return "not reported (no --collector)"
	}
	return s
}
