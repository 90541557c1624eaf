package sidecar

import (
	"fmt"
	"os"
	"strings"

	tracecfgv3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"

	"github.com/tracebridge/tracebridge/e2e/sim/envoyconfig"
	"github.com/tracebridge/tracebridge/e2e/sim/envoysim"
)

// Where a sidecar's listeners are in Istio's generated configuration
// (istiocheck's mesh: the selected workload's http port 8080 and the
// outbound listener of the http port 9080 the bookinfo services use).
const (
	GeneratedInbound  = "virtualInbound"
	GeneratedOutbound = "0.0.0.0_9080"
	// GeneratedInboundPort is the workload port whose virtualInbound
	// filter chain the simulated sidecar's inbound listener runs.
	GeneratedInboundPort = 8080
)

// LoadGenerated reads a proxy's configuration as Istio generated it
// (istiocheck/golden/<mode>/<proxy>.yaml).
func LoadGenerated(path string) (*envoyconfig.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > envoyconfig.MaxFileBytes {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", path, st.Size(), envoyconfig.MaxFileBytes)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := envoyconfig.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// generatedListener is one listener's part of the generated configuration.
type generatedListener struct {
	hcm     *envoyconfig.HCM
	tracing *envoysim.Tracing // nil: no tracing block
}

// generatedTracer is the tracer the Zipkin provider configures
// (source/extensions/tracers/zipkin/config.cc).
func generatedTracer(z *tracecfgv3.ZipkinConfig) envoysim.Tracer {
	return &envoysim.ZipkinTracer{TraceID128: z.GetTraceId_128Bit(),
		W3C: z.GetTraceContextOption() == tracecfgv3.ZipkinConfig_USE_B3_WITH_W3C_PROPAGATION}
}

// generatedTags converts the tracing block's custom tags. Tags whose value
// Istio takes from the workload's labels name the simulated workload: the
// generated file's workload is istiocheck's `app`.
func generatedTags(tags []*tracingv3.CustomTag, service string) []envoysim.CustomTag {
	var out []envoysim.CustomTag
	for _, ct := range tags {
		t := envoysim.CustomTag{Tag: ct.GetTag()}
		switch {
		case ct.GetLiteral() != nil:
			t.Literal = ct.GetLiteral().GetValue()
			if t.Tag == "istio.canonical_service" {
				t.Literal = service
			}
		case ct.GetRequestHeader() != nil:
			t.RequestHeader, t.Default = ct.GetRequestHeader().GetName(), ct.GetRequestHeader().GetDefaultValue()
		case ct.GetEnvironment() != nil:
			t.Environment, t.Default = ct.GetEnvironment().GetName(), ct.GetEnvironment().GetDefaultValue()
		case ct.GetMetadata() != nil:
			md := ct.GetMetadata()
			t.MetadataNamespace, t.MetadataKey, t.Default = md.GetMetadataKey().GetKey(), md.GetMetadataKey().GetPath()[0].GetKey(), md.GetDefaultValue()
		default:
			t.Value = ct.GetValue()
		}
		out = append(out, t)
	}
	return out
}

// fromGenerated builds the inbound and outbound listeners' filters, tracing
// and upstream filters from Istio's generated configuration.
func (s *Sidecar) fromGenerated(cfg Config, appHost string, rep envoysim.Reporter, nodeID, operation string, extraTags []envoysim.CustomTag) error {
	if cfg.Tracer != "" && cfg.Tracer != "zipkin" {
		return fmt.Errorf("the generated configuration's tracer is Istio's Zipkin provider; --tracer %s needs a configuration by hand", cfg.Tracer)
	}
	inCh, outCh := cfg.EnvoyInbound, cfg.EnvoyOutbound
	if inCh.Listener == "" {
		inCh = envoyconfig.Chain{Listener: GeneratedInbound, DestinationPort: GeneratedInboundPort}
	}
	if outCh.Listener == "" {
		outCh = envoyconfig.Chain{Listener: GeneratedOutbound}
	}
	load := func(ch envoyconfig.Chain, kind envoysim.SpanKind) (*generatedListener, error) {
		h, err := cfg.Envoy.HCM(ch)
		if err != nil {
			return nil, err
		}
		g := &generatedListener{hcm: h}
		if t := h.Tracing; t != nil {
			g.tracing = &envoysim.Tracing{Tracer: generatedTracer(t.Zipkin), Kind: kind, Service: cfg.Service,
				RandomSampling: t.RandomSampling, Reporter: rep, NodeID: nodeID,
				CustomTags: append(generatedTags(t.CustomTags, cfg.Service), extraTags...)}
			if cfg.Sampling != nil {
				g.tracing.RandomSampling = *cfg.Sampling
			}
			if kind == envoysim.KindServer {
				g.tracing.Operation = operation
			}
		}
		return g, nil
	}
	in, err := load(inCh, envoysim.KindServer)
	if err != nil {
		return err
	}
	if in.hcm.Cluster == "" {
		return fmt.Errorf("%s: no inline route to the app's cluster", in.hcm.Path)
	}
	// The inbound route's cluster (Istio's inbound|<port>||, the
	// bootstrap's app) is the app.
	s.Inbound.Cluster = envoysim.FixedCluster(in.hcm.Cluster, appHost)
	out, err := load(outCh, envoysim.KindClient)
	if err != nil {
		return err
	}
	s.Inbound.Tracing, s.Outbound.Tracing = in.tracing, out.tracing
	s.Inbound.EarlyHeaderRemovals, s.Outbound.EarlyHeaderRemovals = in.hcm.EarlyHeaderRemovals, out.hcm.EarlyHeaderRemovals
	var err2 error
	wasm := func(fc envoyconfig.Filter, name string, pl Placement, tracing bool) envoysim.Filter {
		if err2 != nil {
			return nil
		}
		if s.Wasm == nil {
			err2 = fmt.Errorf("the generated configuration has the wasm filter %s and no module was given (--wasm)", name)
			return nil
		}
		// An inline filter carries its plugin configuration; an ECDS
		// reference's resource is istio-agent's fallback in the file, so
		// the module gets the policy adapted to where the file puts it.
		doc, failOpen := fc.WasmConfig, fc.FailOpen
		if doc == nil {
			var err error
			if doc, err = Adapt(cfg.Policy, pl, tracing, "zipkin"); err != nil {
				err2 = err
				return nil
			}
			failOpen = true // the manifests' failStrategy FAIL_OPEN
		}
		f, err := envoysim.NewWasmFilter(s.Wasm, name, doc, failOpen)
		if err != nil {
			err2 = err
			return nil
		}
		return f
	}
	for _, l := range []struct {
		g   *generatedListener
		lis *envoysim.Listener
		dir string
	}{{in, s.Inbound, "inbound"}, {out, s.Outbound, "outbound"}} {
		for _, f := range l.g.hcm.Filters {
			switch f.Kind {
			case envoyconfig.Wasm:
				// One plugin configuration per listener, as each listener
				// has its filter config: it knows whether its listener
				// has a tracing block.
				l.lis.Filters = append(l.lis.Filters, wasm(f, f.Name+"/"+l.dir, SidecarDownstream, l.g.tracing != nil))
			case envoyconfig.ExtProc:
				ep, err := s.extProc(cfg, f)
				if err != nil {
					return err
				}
				l.lis.Filters = append(l.lis.Filters, ep)
			}
		}
		for _, f := range l.g.hcm.UpstreamFilters {
			if f.Kind != envoyconfig.Wasm || l.dir != "inbound" {
				return fmt.Errorf("%s: only the wasm module on the inbound side is modelled as a sidecar upstream filter", f.Path)
			}
			l.lis.UpstreamFilters = append(l.lis.UpstreamFilters, wasm(f, f.Name+"/"+l.dir, SidecarUpstream, l.g.tracing != nil))
		}
	}
	if err2 != nil {
		return err2
	}
	if cfg.ExtProc != "" && s.ExtProc == nil {
		return fmt.Errorf("--extproc %s: the configuration has no ext_proc filter", cfg.ExtProc)
	}
	s.generated = describe(in.hcm, out.hcm)
	return nil
}

// extProc is the ext_proc filter the file configures, calling cfg.ExtProc
// (the address its gRPC cluster maps to).
func (s *Sidecar) extProc(cfg Config, f envoyconfig.Filter) (*envoysim.ExtProcFilter, error) {
	st, err := envoyconfig.ExtProcConfig(f.Path, f.ExtProc)
	if err != nil {
		return nil, err
	}
	if cfg.ExtProc == "" {
		return nil, fmt.Errorf("%s: ext_proc calls cluster %s and no ext_proc address was given (--extproc)", f.Path, st.Cluster)
	}
	if s.ExtProc != nil {
		return nil, fmt.Errorf("%s: a second ext_proc filter is not modelled", f.Path)
	}
	ep, err := envoysim.NewExtProcFilter(cfg.ExtProc)
	if err != nil {
		return nil, err
	}
	ep.FailureModeAllow, ep.ReceivingNamespaces, ep.AllowEnvoy = st.FailureModeAllow, st.ReceivingNamespaces, st.AllowEnvoy
	if st.MessageTimeout > 0 {
		ep.MessageTimeout = st.MessageTimeout
	}
	s.ExtProc = ep
	return ep, nil
}

// describe is the one-line summary of the generated filter chains.
func describe(hs ...*envoyconfig.HCM) string {
	var parts []string
	for _, h := range hs {
		var fs []string
		for _, f := range h.Filters {
			if f.Kind != envoyconfig.PassThrough {
				fs = append(fs, f.Name)
			}
		}
		for _, f := range h.UpstreamFilters {
			fs = append(fs, "upstream:"+f.Name)
		}
		parts = append(parts, fmt.Sprintf("%s [%s] tracing=%v", h.Path, strings.Join(fs, " "), h.Tracing != nil))
	}
	return strings.Join(parts, "; ")
}
