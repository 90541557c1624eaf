package manifests

import (
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
)

// MeshProviderFile is the mesh configuration rendered when the policy's
// tracer is zipkin-w3c: Istio's Zipkin provider with traceContextOption.
const MeshProviderFile = "mesh/zipkin-w3c-provider.yaml"

// zipkinW3C reports whether the policy says the proxies' Zipkin tracer
// propagates B3 and W3C (host.tracer zipkin-w3c).
func (p *policyDoc) zipkinW3C() bool { return p.cfg.Policy.Host.Tracer == "zipkin-w3c" }

// zipkinTraceContextOption is the Envoy ZipkinConfig trace_context_option
// the policy's tracer stands for (envoy/config/trace/v3/zipkin.proto).
func (p *policyDoc) zipkinTraceContextOption() tracev3.ZipkinConfig_TraceContextOption {
	if p.zipkinW3C() {
		return tracev3.ZipkinConfig_USE_B3_WITH_W3C_PROPAGATION
	}
	return tracev3.ZipkinConfig_USE_B3
}

// meshProvider renders, for a zipkin-w3c policy, the mesh configuration
// that makes Istio's sidecars and gateways propagate B3 and W3C: a Zipkin
// extension provider with traceContextOption USE_B3_WITH_W3C_PROPAGATION
// (istio.io/api mesh/v1alpha1/config.proto), made the default tracing
// provider. It is install-time configuration (istiod Helm values, or an
// IstioOperator's spec), not a Kubernetes resource.
func (r *renderer) meshProvider() ([]File, error) {
	if !r.p.zipkinW3C() {
		return nil, nil
	}
	values := map[string]any{"meshConfig": map[string]any{
		"extensionProviders": []any{map[string]any{
			"name": "tracebridge-zipkin",
			"zipkin": map[string]any{
				"service":            "zipkin.istio-system.svc.cluster.local",
				"port":               9411,
				"traceContextOption": "USE_B3_WITH_W3C_PROPAGATION",
			},
		}},
		"defaultProviders": map[string]any{"tracing": []any{"tracebridge-zipkin"}},
	}}
	comment := `Mesh configuration for host.tracer zipkin-w3c (docs/ENVOY.md §2, §5): Istio's
Zipkin provider with traceContextOption USE_B3_WITH_W3C_PROPAGATION, so every
proxy's Zipkin tracer reads B3 first, falls back to traceparent, and writes
both x-b3-* and traceparent on every hop. The policy's host.tracer says the
same to the filters: both formats are tracer-owned.

Install-time values, not a Kubernetes resource: merge them into the istiod
Helm values (helm upgrade istiod istio/istiod -n istio-system -f this-file)
or an IstioOperator's spec, and point service/port at your collector.
Needs Istio >= 1.28: istiod sets the option only for proxies of 1.28 or later
(pilot/pkg/networking/core/tracing.go, zipkinConfig); Envoy >= 1.36.`
	return []File{{MeshProviderFile, yamlFile(doc{comment: comment, obj: values})}}, nil
}
