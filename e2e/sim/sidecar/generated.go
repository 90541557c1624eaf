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
func (s *Sidecar) fromGenerated(cfg Config, rep envoysim.Reporter, nodeID, operation string, extraTags []envoysim.CustomTag) error {
	if cfg.Tracer != "" && cfg.Tracer != "zipkin" {
		return fmt.Errorf("the generated configuration's tracer is Istio's Zipkin provider; --tracer %s needs a configuration by hand", cfg.Tracer)
	}
	if cfg.ExtProc != "" {
		return fmt.Errorf("the generated sidecar configuration has no ext_proc filter")
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
	in, err := load(envoyconfig.Chain{Listener: GeneratedInbound, DestinationPort: GeneratedInboundPort}, envoysim.KindServer)
	if err != nil {
		return err
	}
	if want := fmt.Sprintf("inbound|%d||", GeneratedInboundPort); in.hcm.Cluster != want {
		return fmt.Errorf("%s: route cluster %q, want %q", in.hcm.Path, in.hcm.Cluster, want)
	}
	out, err := load(envoyconfig.Chain{Listener: GeneratedOutbound}, envoysim.KindClient)
	if err != nil {
		return err
	}
	s.Inbound.Tracing, s.Outbound.Tracing = in.tracing, out.tracing
	s.Inbound.EarlyHeaderRemovals, s.Outbound.EarlyHeaderRemovals = in.hcm.EarlyHeaderRemovals, out.hcm.EarlyHeaderRemovals
	var err2 error
	wasm := func(name string, pl Placement, tracing bool) envoysim.Filter {
		if err2 != nil {
			return nil
		}
		if s.Wasm == nil {
			err2 = fmt.Errorf("the generated configuration has the wasm filter %s and no module was given (--wasm)", name)
			return nil
		}
		doc, err := Adapt(cfg.Policy, pl, tracing, "zipkin")
		if err != nil {
			err2 = err
			return nil
		}
		f, err := envoysim.NewWasmFilter(s.Wasm, name, doc, true)
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
			if f.Kind == envoyconfig.Wasm {
				// One plugin configuration per listener, as each listener
				// has its filter config: it knows whether its listener
				// has a tracing block.
				l.lis.Filters = append(l.lis.Filters, wasm(f.Name+"/"+l.dir, SidecarDownstream, l.g.tracing != nil))
			} else if f.Kind == envoyconfig.ExtProc {
				return fmt.Errorf("%s: ext_proc in a sidecar is not modelled", f.Path)
			}
		}
		for _, f := range l.g.hcm.UpstreamFilters {
			if f.Kind != envoyconfig.Wasm || l.dir != "inbound" {
				return fmt.Errorf("%s: only the wasm module on the inbound side is modelled as a sidecar upstream filter", f.Path)
			}
			l.lis.UpstreamFilters = append(l.lis.UpstreamFilters, wasm(f.Name+"/"+l.dir, SidecarUpstream, l.g.tracing != nil))
		}
	}
	if err2 != nil {
		return err2
	}
	s.generated = describe(in.hcm, out.hcm)
	return nil
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
