// Package sidecar assembles Envoy-like sidecars and gateways from the
// e2e/sim/envoysim harness: a sidecar is an inbound listener (reverse proxy to
// the app, server span) plus an outbound listener (the HTTP forward proxy the
// app sends its calls through, client span unless client tracing is off),
// with the compiled tracebridge wasm module and/or the ext_proc service as
// filters; a gateway is one listener with ext_proc. RunSidecarCommand is the
// `tracebridge sidecar` command.
package sidecar

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tracebridge/tracebridge/e2e/sim/envoyconfig"
	"github.com/tracebridge/tracebridge/e2e/sim/envoysim"
	"github.com/tracebridge/tracebridge/tools/manifests"
)

// CollectorCluster is the sidecars' cluster of Config.Collector, named as
// Istio names the cluster of its zipkin tracing provider
// ("outbound|<port>||<service>", pilot/pkg/networking/core/tracing.go).
const CollectorCluster = "outbound|9411||zipkin.istio-system.svc.cluster.local"

// Config describes one sidecar.
type Config struct {
	Service        string // service name on spans
	App            string // http://127.0.0.1:PORT
	InboundListen  string
	OutboundListen string
	// Wasm is the compiled module; empty: no wasm filter.
	Wasm string
	// HostProfile models a proxy-wasm-cpp-host version's WASI
	// (envoysim.ProfileCppHost533 / ProfileCppHost427); empty: the newest.
	HostProfile envoysim.HostProfile
	// ExtProc is the ext_proc server address; empty: none. It is added as a
	// listener filter on both directions.
	ExtProc string
	// Policy is the policy document (JSON); empty: zero-config default.
	Policy []byte
	// Tracer: "zipkin" (default), "zipkin-w3c", "otel" or "none".
	Tracer string
	// ClientTracing: the outbound listener has a tracing block (Istio's
	// default); false models Telemetry match.mode SERVER.
	ClientTracing bool
	// InboundPosition: "downstream" (default) or "upstream" (precise
	// parenting: the module as an upstream filter on the inbound cluster).
	InboundPosition string
	// Collector is where spans go (Zipkin: …/api/v2/spans, OTel:
	// …/v1/traces); empty: spans are not reported.
	Collector string
	// Routes resolves outbound authorities (Istio's service registry):
	// "details:9080" → "127.0.0.1:PORT". Unlisted authorities are dialled
	// as they are.
	Routes map[string]string
	// Workers is the number of worker VMs (Envoy --concurrency), default 2.
	Workers int
	// Sampling is the random sampling percentage (nil: Envoy's 100 %).
	Sampling *float64
	// ReportInterval is the span flush interval (default 1 s).
	ReportInterval time.Duration
	// FilterStateTags adds Envoy ≥ 1.37 value tags for filterState sinks.
	FilterStateTags bool
	// Envoy is the configuration Istio generated for the sidecar
	// (LoadGenerated: istiocheck/golden/<mode>/sidecar.yaml); nil: the
	// listeners are configured from the fields above. With it, the filter
	// chains in order, the tracing blocks (provider, sampling, custom tags),
	// the router's and clusters' upstream filters and early header
	// mutation come from the file; Tracer, ClientTracing and
	// InboundPosition must be left empty, the module's configuration is
	// Policy adapted to where the file puts each filter, and FilterStateTags
	// adds the Policy's filterState tags (Telemetry formatter tags the
	// shipped manifests' policy does not have).
	Envoy *envoyconfig.File
	// EnvoyInbound and EnvoyOutbound select the listeners of Envoy that
	// the sidecar's inbound and outbound listeners run; zero: Istio's
	// (GeneratedInbound port GeneratedInboundPort, GeneratedOutbound). The
	// inbound route's cluster is the app, an ext_proc filter calls ExtProc.
	EnvoyInbound, EnvoyOutbound envoyconfig.Chain
	// Log receives one line per request and the module's warnings.
	Log io.Writer
}

// Sidecar is a running sidecar.
type Sidecar struct {
	Config   Config
	Inbound  *envoysim.Listener
	Outbound *envoysim.Listener
	Wasm     *envoysim.WasmProxy
	ExtProc  *envoysim.ExtProcFilter
	reporter envoysim.Reporter
	logMu    sync.Mutex
	// generated summarises the filter chains taken from Config.Envoy.
	generated string
}

// Generated summarises the filter chains taken from Istio's generated
// configuration ("" when configured by hand).
func (s *Sidecar) Generated() string { return s.generated }

func (s *Sidecar) logf(format string, args ...any) {
	if s.Config.Log == nil {
		return
	}
	s.logMu.Lock()
	fmt.Fprintf(s.Config.Log, format+"\n", args...)
	s.logMu.Unlock()
}

// Tracer returns the tracer named name ("zipkin", "zipkin-w3c", "otel";
// nil for "none").
func Tracer(name string) (envoysim.Tracer, error) {
	switch name {
	case "", "zipkin":
		return &envoysim.ZipkinTracer{TraceID128: true}, nil
	case "zipkin-w3c":
		return &envoysim.ZipkinTracer{TraceID128: true, W3C: true}, nil
	case "otel", "opentelemetry":
		return &envoysim.OTelTracer{}, nil
	case "none":
		return nil, nil
	}
	return nil, fmt.Errorf("--tracer must be zipkin, zipkin-w3c, otel or none, got %q", name)
}

// Reporter returns a span reporter for the tracer and collector URL (a base
// URL gets the tracer's default path).
func Reporter(tracer, collector string, interval time.Duration, onErr func(error)) (envoysim.Reporter, error) {
	if collector == "" {
		return nil, nil
	}
	u, err := url.Parse(collector)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("collector %q is not a URL", collector)
	}
	if tracer == "otel" || tracer == "opentelemetry" {
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1/traces"
		}
		return envoysim.NewOTLPReporter(u.String(), interval, onErr), nil
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/api/v2/spans"
	}
	return envoysim.NewZipkinReporter(u.String(), interval, onErr), nil
}

// Start builds and starts a sidecar.
func Start(cfg Config) (*Sidecar, error) {
	if cfg.Workers == 0 {
		cfg.Workers = 2
	}
	if cfg.ReportInterval == 0 {
		cfg.ReportInterval = time.Second
	}
	if cfg.Envoy != nil && (cfg.InboundPosition != "" || cfg.ClientTracing) {
		return nil, fmt.Errorf("a sidecar configured from Istio's generated configuration takes the inbound position and client tracing from it")
	}
	if cfg.InboundPosition == "" {
		cfg.InboundPosition = "downstream"
	}
	if cfg.InboundPosition != "downstream" && cfg.InboundPosition != "upstream" {
		return nil, fmt.Errorf("--inbound-position must be downstream or upstream, got %q", cfg.InboundPosition)
	}
	app, err := url.Parse(cfg.App)
	if err != nil || app.Host == "" {
		return nil, fmt.Errorf("--app %q is not a URL like http://127.0.0.1:8080", cfg.App)
	}
	tracer, err := Tracer(cfg.Tracer)
	if err != nil {
		return nil, err
	}
	s := &Sidecar{Config: cfg}
	s.reporter, err = Reporter(cfg.Tracer, cfg.Collector, cfg.ReportInterval, func(err error) { s.logf("%s: reporting spans: %v", cfg.Service, err) })
	if err != nil {
		return nil, err
	}
	accessLog := func(rl envoysim.RequestLog) {
		trace := "-"
		if rl.TraceID != "" {
			trace = rl.TraceID + "/" + rl.SpanID
		}
		dec := strings.Join(rl.Decisions, ",")
		if dec == "" {
			dec = "-"
		}
		s.logf("%s %-8s %s %s%s %d trace=%s decisions=%s %s", cfg.Service, rl.Listener, rl.Method, rl.Authority, rl.Path, rl.Status, trace, dec, rl.Duration.Round(time.Microsecond))
	}
	// The route decorator and node id of the simulated workload (Istio's
	// "<host>:<port>/*", "sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local").
	operation := cfg.Service + ".default.svc.cluster.local:" + app.Port() + "/*"
	nodeID := "sidecar~127.0.0.1~" + cfg.Service + ".default~default.svc.cluster.local"
	var inTracing, outTracing *envoysim.Tracing
	var tags []envoysim.CustomTag
	if tracer != nil {
		tags = append([]envoysim.CustomTag{{Tag: "istio.canonical_service", Literal: cfg.Service}},
			CustomTags(cfg.Policy, cfg.ExtProc != "", cfg.FilterStateTags, "")...)
		inTracing = &envoysim.Tracing{Tracer: tracer, Kind: envoysim.KindServer, Service: cfg.Service,
			Operation: operation, RandomSampling: rate(cfg.Sampling),
			CustomTags: tags, Reporter: s.reporter, NodeID: nodeID}
		if cfg.ClientTracing {
			ot := *inTracing
			ot.Kind = envoysim.KindClient
			ot.Operation = ""
			outTracing = &ot
		}
	}
	s.Inbound = &envoysim.Listener{Name: "inbound", Direction: envoysim.Inbound, Tracing: inTracing,
		Cluster: envoysim.FixedCluster("inbound|"+app.Port()+"||", app.Host), AccessLog: accessLog}
	routes := cfg.Routes
	s.Outbound = &envoysim.Listener{Name: "outbound", Direction: envoysim.Outbound, Tracing: outTracing, Retries: 2,
		Cluster: func(h *envoysim.Headers) (string, string, error) {
			auth := h.Get(":authority")
			if auth == "" {
				return "", "", fmt.Errorf("no :authority")
			}
			host, port, err := net.SplitHostPort(auth)
			if err != nil {
				host, port = auth, "80"
			}
			if addr, ok := routes[net.JoinHostPort(host, port)]; ok {
				return "outbound|" + port + "||" + host + ".default.svc.cluster.local", addr, nil
			}
			return "outbound|" + port + "||" + host, net.JoinHostPort(host, port), nil
		}, AccessLog: accessLog}
	if cfg.Envoy != nil {
		if err := s.startWasm(cfg); err != nil {
			s.Close()
			return nil, err
		}
		var extra []envoysim.CustomTag
		if cfg.FilterStateTags {
			for _, t := range CustomTags(cfg.Policy, false, true, "") {
				if t.Value != "" {
					extra = append(extra, t)
				}
			}
		}
		if err := s.fromGenerated(cfg, app.Host, s.reporter, nodeID, operation, extra); err != nil {
			s.Close()
			return nil, fmt.Errorf("%s: %w", cfg.Service, err)
		}
		if err := s.start(cfg); err != nil {
			return nil, err
		}
		return s, nil
	}
	if cfg.Wasm != "" {
		if err := s.startWasm(cfg); err != nil {
			s.Close()
			return nil, err
		}
		// One plugin configuration per listener, as Envoy has one filter
		// config per listener: the outbound one knows whether its listener
		// has a tracing block.
		filter := func(name string, pl Placement, tracing bool) (*envoysim.WasmFilter, error) {
			doc, err := Adapt(cfg.Policy, pl, tracing, cfg.Tracer)
			if err != nil {
				return nil, err
			}
			return envoysim.NewWasmFilter(s.Wasm, name, doc, true)
		}
		outF, err := filter("tracebridge-outbound", SidecarDownstream, cfg.ClientTracing && tracer != nil)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.Outbound.Filters = append(s.Outbound.Filters, outF)
		if cfg.InboundPosition == "upstream" {
			f, err := filter("tracebridge-inbound-upstream", SidecarUpstream, tracer != nil)
			if err != nil {
				s.Close()
				return nil, err
			}
			s.Inbound.UpstreamFilters = append(s.Inbound.UpstreamFilters, f)
		} else {
			f, err := filter("tracebridge-inbound", SidecarDownstream, true)
			if err != nil {
				s.Close()
				return nil, err
			}
			s.Inbound.Filters = append(s.Inbound.Filters, f)
		}
	}
	if cfg.ExtProc != "" {
		s.ExtProc, err = envoysim.NewExtProcFilter(cfg.ExtProc)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.Inbound.Filters = append(s.Inbound.Filters, s.ExtProc)
		s.Outbound.Filters = append(s.Outbound.Filters, s.ExtProc)
	}
	if err := s.start(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// startWasm loads the module and starts its VMs (cfg.Wasm empty: none).
func (s *Sidecar) startWasm(cfg Config) error {
	if cfg.Wasm == "" {
		return nil
	}
	mod, err := envoysim.LoadWasmModule(cfg.Wasm, cfg.HostProfile)
	if err != nil {
		return err
	}
	opt := envoysim.ProxyOptions{Workers: cfg.Workers, Log: func(level int, msg string) {
		if level >= 3 { // warn and above
			s.logf("%s wasm: %s", cfg.Service, msg)
		}
	}, NodeMetadata: map[string]string{"WORKLOAD_NAME": cfg.Service}}
	if w := cfg.Log; w != nil {
		opt.Stdio = func(_ int, b []byte) { _, _ = w.Write(b) }
	}
	if u, err := url.Parse(cfg.Collector); err == nil && u.Host != "" {
		// The collector is a cluster of the proxy, as Istio's tracing
		// providers make it, for the module's proxy_http_call.
		opt.Clusters = map[string]string{CollectorCluster: u.Host}
	}
	s.Wasm, err = envoysim.NewWasmProxyWith(mod, opt)
	return err
}

// start binds the listeners.
func (s *Sidecar) start(cfg Config) error {
	if err := s.Inbound.Start(orLoopback(cfg.InboundListen)); err != nil {
		s.Close()
		return err
	}
	if err := s.Outbound.Start(orLoopback(cfg.OutboundListen)); err != nil {
		s.Close()
		return err
	}
	return nil
}

func rate(p *float64) float64 {
	if p == nil {
		return -1 // HttpConnectionManager.Tracing.random_sampling default: 100 %
	}
	return *p
}

func orLoopback(addr string) string {
	if addr == "" {
		return "127.0.0.1:0"
	}
	return addr
}

// Close stops the listeners, flushes spans and releases the VMs.
func (s *Sidecar) Close() {
	for _, l := range []*envoysim.Listener{s.Inbound, s.Outbound} {
		if l != nil {
			_ = l.Close(2 * time.Second)
		}
	}
	if s.reporter != nil {
		s.reporter.Close()
	}
	if s.ExtProc != nil {
		_ = s.ExtProc.Close()
	}
	if s.Wasm != nil {
		s.Wasm.Close()
	}
}

// Flush sends buffered spans now.
func (s *Sidecar) Flush() {
	if s.Wasm != nil {
		s.Wasm.Flush()
	}
	if s.reporter != nil {
		s.reporter.Flush()
	}
}

// GatewayConfig describes an ingress gateway: one listener with ext_proc.
type GatewayConfig struct {
	Service  string
	Listen   string
	Upstream string // host:port of the backend (e.g. productpage's inbound)
	ExtProc  string // ext_proc address; empty: none
	// Placement: "downstream", "upstream" (default: after the router's
	// injection, so translation and traceresponse agree with Envoy's span)
	// or "both".
	Placement string
	Policy    []byte
	// EdgeTrust adds the early_header_mutation that removes client trace
	// headers before the span exists.
	EdgeTrust      bool
	Tracer         string
	Collector      string
	Sampling       *float64
	ReportInterval time.Duration
	// MessageTimeout is ext_proc's message_timeout (default 200 ms).
	MessageTimeout time.Duration
	// CustomTagStyle is how the ext_proc service's metadata tags reach the
	// span, as tools/manifests renders them: "telemetry" (default, Telemetry
	// formatter tags) or "envoyfilter" (custom tags of type metadata).
	CustomTagStyle string
	Log            io.Writer
}

// Gateway is a running gateway.
type Gateway struct {
	Listener *envoysim.Listener
	ExtProc  *envoysim.ExtProcFilter
	reporter envoysim.Reporter
}

// StartGateway builds and starts a gateway.
func StartGateway(cfg GatewayConfig) (*Gateway, error) {
	if cfg.Placement == "" {
		cfg.Placement = "upstream"
	}
	if cfg.ReportInterval == 0 {
		cfg.ReportInterval = time.Second
	}
	tracer, err := Tracer(cfg.Tracer)
	if err != nil {
		return nil, err
	}
	var logMu sync.Mutex
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			logMu.Lock()
			fmt.Fprintf(cfg.Log, format+"\n", args...)
			logMu.Unlock()
		}
	}
	g := &Gateway{}
	g.reporter, err = Reporter(cfg.Tracer, cfg.Collector, cfg.ReportInterval, func(err error) { logf("%s: reporting spans: %v", cfg.Service, err) })
	if err != nil {
		return nil, err
	}
	l := &envoysim.Listener{Name: "gateway", Direction: envoysim.Unspecified,
		Cluster: envoysim.FixedCluster("outbound|9080||productpage.default.svc.cluster.local", cfg.Upstream), Retries: 2,
		AccessLog: func(rl envoysim.RequestLog) {
			trace := "-"
			if rl.TraceID != "" {
				trace = rl.TraceID + "/" + rl.SpanID
			}
			dec := strings.Join(rl.Decisions, ",")
			if dec == "" {
				dec = "-"
			}
			logf("%s %s %s %d trace=%s decisions=%s %s", cfg.Service, rl.Method, rl.Path, rl.Status, trace, dec, rl.Duration.Round(time.Microsecond))
		}}
	if cfg.EdgeTrust {
		// The removals edge-trust renders for this policy (tools/manifests).
		removals, err := manifests.EarlyRemovals(cfg.Policy)
		if err != nil {
			return nil, fmt.Errorf("edge trust: %w", err)
		}
		l.EarlyHeaderRemovals = removals
	}
	if tracer != nil {
		l.Tracing = &envoysim.Tracing{Tracer: tracer, Kind: envoysim.KindServer, Service: cfg.Service,
			Operation: "productpage.default.svc.cluster.local:9080/*", RandomSampling: rate(cfg.Sampling), Reporter: g.reporter,
			CustomTags: append([]envoysim.CustomTag{{Tag: "istio.canonical_service", Literal: cfg.Service}}, CustomTags(cfg.Policy, cfg.ExtProc != "", false, cfg.CustomTagStyle)...),
			NodeID:     "router~127.0.0.1~" + cfg.Service + ".istio-system~istio-system.svc.cluster.local"}
	}
	if cfg.ExtProc != "" {
		pl := GatewayUpstream
		if cfg.Placement == "downstream" {
			pl = GatewayDownstream
		}
		// The ext_proc server runs with its own --config (GatewayPolicy);
		// this checks that the policy suits the placement.
		if _, err := Adapt(cfg.Policy, pl, tracer != nil, cfg.Tracer); err != nil {
			return nil, err
		}
		g.ExtProc, err = envoysim.NewExtProcFilter(cfg.ExtProc)
		if err != nil {
			return nil, err
		}
		if cfg.MessageTimeout > 0 {
			g.ExtProc.MessageTimeout = cfg.MessageTimeout
		}
		switch cfg.Placement {
		case "downstream":
			l.Filters = append(l.Filters, g.ExtProc)
		case "upstream":
			l.UpstreamFilters = append(l.UpstreamFilters, g.ExtProc)
		case "both":
			l.Filters = append(l.Filters, g.ExtProc)
			l.UpstreamFilters = append(l.UpstreamFilters, g.ExtProc)
		default:
			return nil, fmt.Errorf("gateway placement must be downstream, upstream or both, got %q", cfg.Placement)
		}
	}
	if err := l.Start(orLoopback(cfg.Listen)); err != nil {
		return nil, err
	}
	g.Listener = l
	return g, nil
}

// GatewayPolicy is the document the gateway's ext_proc server runs with for
// a placement ("downstream" or "upstream").
func GatewayPolicy(doc []byte, placement, tracer string) ([]byte, error) {
	pl := GatewayUpstream
	if placement == "downstream" {
		pl = GatewayDownstream
	}
	return Adapt(doc, pl, tracer != "none", tracer)
}

// Close stops the gateway.
func (g *Gateway) Close() {
	if g.Listener != nil {
		_ = g.Listener.Close(2 * time.Second)
	}
	if g.reporter != nil {
		g.reporter.Close()
	}
	if g.ExtProc != nil {
		_ = g.ExtProc.Close()
	}
}

// Flush sends buffered spans now.
func (g *Gateway) Flush() {
	if g.reporter != nil {
		g.reporter.Flush()
	}
}
