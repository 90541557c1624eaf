package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/tracebridge/tracebridge/e2e/sim/envoyconfig"
	"github.com/tracebridge/tracebridge/e2e/sim/envoysim"
	"github.com/tracebridge/tracebridge/e2e/sim/sidecar"
)

// Mode is how the mesh is set up.
type Mode int

// Modes.
const (
	// Control: no tracebridge, Istio's defaults (client tracing on).
	Control Mode = iota
	// AutoForward: the wasm module on both sidecar listeners, client
	// tracing off (Telemetry match.mode SERVER), the gateway enriched by
	// ext_proc.
	AutoForward
	// Precise: as AutoForward, but the inbound module is an upstream
	// filter on the inbound cluster.
	Precise
)

func (m Mode) String() string {
	return [...]string{"control", "auto-forward", "precise"}[m]
}

// MeshOptions configure a bookinfo-shaped mesh.
type MeshOptions struct {
	Mode Mode
	// Tracer is "zipkin" (default), "zipkin-w3c" or "otel".
	Tracer string
	// Collector receives spans (Zipkin v2 or OTLP/HTTP URL).
	Collector string
	// ForwardRequestID selects the app variant that forwards x-request-id
	// for every service; RequestIDApps for the named ones only.
	ForwardRequestID bool
	RequestIDApps    []string
	// RelayHeaders: every app copies these headers of its request to its
	// calls (RelayApps: only the named apps).
	RelayHeaders []string
	RelayApps    []string
	// Wasm is the compiled module (required unless Control).
	Wasm string
	// WasmHostProfile is the proxy-wasm-cpp-host version the sidecars'
	// wasm host reproduces; empty: the newest (envoysim.DefaultHostProfile).
	WasmHostProfile envoysim.HostProfile
	// SidecarPolicy and GatewayPolicy are the policy documents.
	SidecarPolicy []byte
	// ExtProc is the ext_proc server address for the gateway ("": none).
	ExtProc string
	// GatewayPlacement is where the gateway's ext_proc runs: "upstream"
	// (default), "downstream" or "both".
	GatewayPlacement string
	// ExtProcTimeout is the gateway's ext_proc message_timeout.
	ExtProcTimeout time.Duration
	// EdgeTrust adds the gateway's early_header_mutation.
	EdgeTrust bool
	// GatewayTagStyle is how the gateway's metadata tags are configured
	// (sidecar.GatewayConfig.CustomTagStyle).
	GatewayTagStyle string
	// Generated is the directory of the Envoy configuration Istio generates
	// for each mode (istiocheck/golden): the AutoForward and Precise
	// sidecars run <dir>/sidecar-auto-forward/sidecar.yaml and
	// <dir>/precise-parenting/sidecar.yaml (Zipkin tracer only). Empty, and
	// for Control, which has no overlay: configured by hand.
	Generated string
	// ReportInterval is the span flush interval.
	ReportInterval time.Duration
	// ClientSpans turns the sidecars' clientSpans on (WithClientSpans):
	// the module reports a CLIENT span for every outbound call it restores,
	// to the collector, through proxy_http_call on the host's tick.
	ClientSpans bool
	Log         io.Writer
}

// Mesh is a running mesh.
type Mesh struct {
	Options  MeshOptions
	Apps     map[string]*App
	Sidecars map[string]*sidecar.Sidecar
	Gateway  *sidecar.Gateway
}

// Services lists the mesh's services in call order.
var Services = []string{"productpage", "details", "reviews", "ratings"}

// GatewayService is the gateway's service name on spans.
const GatewayService = "istio-ingressgateway"

// StartMesh starts apps, sidecars and the gateway on 127.0.0.1.
func StartMesh(o MeshOptions) (*Mesh, error) {
	m := &Mesh{Options: o, Apps: map[string]*App{}, Sidecars: map[string]*sidecar.Sidecar{}}
	routes := map[string]string{}
	for _, a := range Bookinfo(o.ForwardRequestID) {
		for _, n := range o.RequestIDApps {
			if n == a.Name {
				a.ForwardRequestID = true
			}
		}
		if len(o.RelayApps) == 0 {
			a.RelayHeaders = o.RelayHeaders
		}
		for _, n := range o.RelayApps {
			if n == a.Name {
				a.RelayHeaders = o.RelayHeaders
			}
		}
		if err := a.Start(); err != nil {
			m.Close()
			return nil, err
		}
		m.Apps[a.Name] = a
	}
	generated, err := o.generated()
	if err != nil {
		m.Close()
		return nil, err
	}
	for _, name := range Services {
		cfg := sidecar.Config{Service: name, App: m.Apps[name].URL(), Tracer: o.Tracer, Collector: o.Collector,
			Routes: routes, ReportInterval: o.ReportInterval, Log: o.Log, FilterStateTags: true}
		switch o.Mode {
		case Control:
			cfg.ClientTracing = true
		case AutoForward, Precise:
			cfg.Wasm, cfg.Policy, cfg.HostProfile = o.Wasm, o.SidecarPolicy, o.WasmHostProfile
			if o.ClientSpans {
				p, err := WithClientSpans(o.SidecarPolicy, o.Tracer, o.ReportInterval)
				if err != nil {
					m.Close()
					return nil, err
				}
				cfg.Policy = p
			}
			switch {
			case generated != nil:
				// The demo mesh samples every request (meshConfig
				// defaultConfig.tracing.sampling 100); istiocheck's mesh
				// keeps Istio's 1 % default.
				cfg.Envoy, cfg.Sampling = generated, &fullSampling
			case o.Mode == Precise:
				cfg.InboundPosition = "upstream"
			}
		}
		sc, err := sidecar.Start(cfg)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("%s sidecar: %w", name, err)
		}
		m.Sidecars[name] = sc
		if err := m.Apps[name].SetProxy(sc.Outbound.URL()); err != nil {
			m.Close()
			return nil, err
		}
	}
	// Filled before any traffic; only read afterwards.
	for _, name := range Services {
		routes[name+":9080"] = m.Sidecars[name].Inbound.Addr()
	}
	gcfg := sidecar.GatewayConfig{Service: GatewayService, Upstream: m.Sidecars["productpage"].Inbound.Addr(),
		Tracer: o.Tracer, Collector: o.Collector, ReportInterval: o.ReportInterval, Log: o.Log,
		EdgeTrust: o.EdgeTrust, MessageTimeout: o.ExtProcTimeout, Placement: o.GatewayPlacement, CustomTagStyle: o.GatewayTagStyle}
	if o.Mode != Control {
		gcfg.ExtProc, gcfg.Policy = o.ExtProc, o.SidecarPolicy
	}
	g, err := sidecar.StartGateway(gcfg)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	m.Gateway = g
	return m, nil
}

var fullSampling = 100.0

// generated loads the sidecar configuration Istio generates for the mode
// (nil: configured by hand).
func (o MeshOptions) generated() (*envoyconfig.File, error) {
	if o.Generated == "" || (o.Tracer != "" && o.Tracer != "zipkin") {
		return nil, nil
	}
	overlay := map[Mode]string{AutoForward: "sidecar-auto-forward", Precise: "precise-parenting"}[o.Mode]
	if overlay == "" {
		return nil, nil
	}
	return sidecar.LoadGenerated(filepath.Join(o.Generated, overlay, "sidecar.yaml"))
}

// URL is the gateway's address.
func (m *Mesh) URL() string { return m.Gateway.Listener.URL() }

// Flush makes every proxy send its buffered spans.
func (m *Mesh) Flush() {
	var wg sync.WaitGroup
	for _, sc := range m.Sidecars {
		wg.Add(1)
		go func() { defer wg.Done(); sc.Flush() }()
	}
	if m.Gateway != nil {
		m.Gateway.Flush()
	}
	wg.Wait()
}

// Close stops everything (spans still buffered are sent first).
func (m *Mesh) Close() {
	if m.Gateway != nil {
		m.Gateway.Close()
	}
	for _, sc := range m.Sidecars {
		sc.Close()
	}
	for _, a := range m.Apps {
		a.Close()
	}
}

// WithClientSpans returns the policy with clientSpans on, reporting to the
// sidecars' collector cluster in the tracer's format (otel: OTLP/HTTP JSON,
// else Zipkin v2 JSON), flushed every interval (default 1 s).
func WithClientSpans(policy []byte, tracer string, interval time.Duration) ([]byte, error) {
	doc := map[string]any{}
	if len(policy) > 0 {
		if err := json.Unmarshal(policy, &doc); err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
	}
	format := "zipkin"
	if tracer == "otel" || tracer == "opentelemetry" {
		format = "otlp"
	}
	if interval <= 0 {
		interval = time.Second
	}
	doc["clientSpans"] = map[string]any{"enabled": true, "format": format, "cluster": sidecar.CollectorCluster,
		"flushInterval": interval.String()}
	return json.Marshal(doc)
}

// DemoPolicy is manifests/sample-policy.json adapted for apps that forward
// nothing: narrowed and sole-in-flight correlation after the key, and a
// literal tag in filter state (a span tag through Envoy ≥ 1.37 value custom
// tags).
func DemoPolicy(root string) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(root, "manifests", "sample-policy.json"))
	if err != nil {
		return nil, err
	}
	doc := map[string]any{}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("manifests/sample-policy.json: %w", err)
	}
	corr, _ := doc["correlation"].(map[string]any)
	if corr == nil {
		corr = map[string]any{}
		doc["correlation"] = corr
	}
	corr["strategies"] = []string{"key", "narrowed", "soleInFlight"}
	tags, _ := doc["tags"].([]any)
	doc["tags"] = append(tags, map[string]any{"name": "mesh", "from": map[string]any{"literal": "bookinfo-demo"}, "to": []string{"filterState"}})
	return json.Marshal(doc)
}

// ExtProc is a running tracebridge-extproc process.
type ExtProc struct {
	Bin, Addr, Policy string
	LogPath           string
	mu                sync.Mutex
	cmd               *exec.Cmd
	done              chan struct{}
}

// BuildExtProc builds the ext_proc command into dir.
func BuildExtProc(root, dir string) (string, error) {
	out := filepath.Join(dir, "tracebridge-extproc")
	cmd := exec.Command("go", "build", "-o", out, "./extproc/cmd/tracebridge-extproc")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building tracebridge-extproc: %v\n%s", err, b)
	}
	return out, nil
}

// StartExtProc runs bin on a free 127.0.0.1 port with the policy file, and
// waits until it accepts connections.
func StartExtProc(bin, policyFile, logPath string) (*ExtProc, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	p := &ExtProc{Bin: bin, Addr: addr, Policy: policyFile, LogPath: logPath}
	return p, p.Start()
}

// Start (re)starts the process on its address.
func (p *ExtProc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := []string{"--listen", p.Addr, "--admin-listen", "", "--log-level", "warn"}
	if p.Policy != "" {
		args = append(args, "--config", p.Policy)
	}
	cmd := exec.Command(p.Bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	p.cmd, p.done = cmd, done
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			data, _ := os.ReadFile(p.LogPath)
			return fmt.Errorf("tracebridge-extproc exited during start-up:\n%s", data)
		default:
		}
		if c, err := net.DialTimeout("tcp", p.Addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("tracebridge-extproc did not listen on %s", p.Addr)
}

// Kill ends the process with SIGKILL (a crash) and waits for it.
func (p *ExtProc) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		<-p.done
		p.cmd = nil
	}
}

// Stop ends the process with SIGTERM (graceful drain) and waits.
func (p *ExtProc) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		p.cmd = nil
	}
}
