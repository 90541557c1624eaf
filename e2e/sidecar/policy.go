package sidecar

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tracebridge/tracebridge/e2e/envoysim"
	"github.com/tracebridge/tracebridge/engine"
)

// Placement is where a policy document runs; Adapt rewrites the document for
// it the way tools/manifests renders it for Istio (tools/manifests/policy.go).
type Placement int

// Placements.
const (
	SidecarDownstream Placement = iota // wasm listener filter, both directions
	SidecarUpstream                    // wasm upstream filter on the inbound cluster
	GatewayDownstream                  // ext_proc listener filter at a gateway
	GatewayUpstream                    // ext_proc upstream filter at a gateway
)

// Adapt returns the policy document adapted to a placement: direction
// pinned where the host cannot tell it, host.placement set, trust rules an
// upstream filter cannot apply removed, host.tracer set to the proxy's
// tracer so that its fresh format wins when formats disagree.
func Adapt(doc []byte, pl Placement, tracing bool, tracer string) ([]byte, error) {
	m := map[string]any{}
	if len(strings.TrimSpace(string(doc))) > 0 {
		if err := json.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
	}
	sub := func(k string) map[string]any {
		v, ok := m[k].(map[string]any)
		if !ok {
			v = map[string]any{}
			m[k] = v
		}
		return v
	}
	host, trust := sub("host"), sub("trust")
	switch pl {
	case SidecarDownstream:
		host["placement"] = "downstream"
		delete(trust, "untrustedDirections")
	case SidecarUpstream:
		host["placement"] = "upstream"
		m["direction"] = "inbound"
		delete(trust, "untrustedDirections")
		delete(trust, "untrustedCIDRs")
	case GatewayDownstream:
		host["placement"] = "downstream"
		m["direction"] = "inbound"
	case GatewayUpstream:
		host["placement"] = "upstream"
		m["direction"] = "inbound"
		delete(trust, "untrustedDirections")
		delete(trust, "untrustedCIDRs")
	}
	host["tracing"] = tracing
	// The tracer's own format is the one Envoy's router rewrote on this hop:
	// engine host.tracer makes it win when formats disagree (after the
	// router's injection, a traceparent the previous hop translated still
	// names that hop's span; reading it would reparent the next hop).
	if _, set := host["tracer"]; !set && tracing {
		name, format := "", ""
		switch tracer {
		case "", "zipkin":
			name, format = "zipkin", "b3multi"
		case "otel", "opentelemetry":
			name, format = "opentelemetry", "w3c"
		}
		read := []any{"w3c", "b3", "b3multi", "jaeger"}
		if r, ok := m["read"].([]any); ok {
			read = r
		}
		for _, f := range read {
			if f == format {
				host["tracer"] = name
			}
		}
	}
	if len(trust) == 0 {
		delete(m, "trust")
	}
	out, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if _, err := engine.LoadPolicy(out, func(string) string { return "" }); err != nil {
		return nil, fmt.Errorf("adapted policy: %w", err)
	}
	return out, nil
}

// tagRule is the part of a policy tag rule the span configuration needs.
type tagRule struct {
	Name   string   `json:"name"`
	To     []string `json:"to"`
	Header string   `json:"header"`
}

// CustomTags returns the tracing custom tags that put a policy's tags on
// Envoy's span: a request-header tag per "header" sink (Istio Telemetry
// customTags), a metadata tag per "metadata" sink (namespace tracebridge,
// from ext_proc), and a filter-state value tag per "filterState" sink
// (Envoy ≥ 1.37 %FILTER_STATE(wasm.tracebridge.<name>:PLAIN)%).
func CustomTags(doc []byte, metadata, filterState bool) []envoysim.CustomTag {
	var p struct {
		Tags []tagRule `json:"tags"`
	}
	_ = json.Unmarshal(doc, &p)
	var out []envoysim.CustomTag
	for _, t := range p.Tags {
		for _, sink := range t.To {
			switch sink {
			case "header":
				h := t.Header
				if h == "" {
					h = "x-tracebridge-" + strings.ToLower(t.Name)
				}
				out = append(out, envoysim.CustomTag{Tag: t.Name, RequestHeader: h})
			case "metadata":
				if metadata {
					out = append(out, envoysim.CustomTag{Tag: t.Name, MetadataNamespace: "tracebridge", MetadataKey: t.Name})
				}
			case "filterState":
				if filterState {
					out = append(out, envoysim.CustomTag{Tag: t.Name, FilterState: "wasm.tracebridge." + t.Name})
				}
			}
		}
	}
	return out
}

// EdgeRemovals is the early_header_mutation an edge-trust policy generates:
// every trace header of the read formats plus the forcing headers, removed
// before the span exists (ENVOY-FACTS 1; manifests/envoy/envoy.yaml).
func EdgeRemovals() []string {
	return []string{"x-envoy-force-trace", "x-client-trace-id", "traceparent", "tracestate", "b3",
		"x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "uber-trace-id"}
}
