package sidecar

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tracebridge/tracebridge/e2e/sim/envoysim"
	"github.com/tracebridge/tracebridge/engine"
	"github.com/tracebridge/tracebridge/tools/manifests"
)

// Placement is where a policy document runs; Adapt rewrites the document for
// it with tools/manifests' AdaptPolicy, the very function that renders it for
// Istio, so the simulated proxies run what the rendered ones would.
type Placement int

// Placements.
const (
	SidecarDownstream Placement = iota // wasm listener filter, both directions
	SidecarUpstream                    // wasm upstream filter on the inbound cluster
	GatewayDownstream                  // ext_proc listener filter at a gateway
	GatewayUpstream                    // ext_proc upstream filter at a gateway
)

var placements = map[Placement]manifests.Placement{
	SidecarDownstream: manifests.PlaceSidecar,
	SidecarUpstream:   manifests.PlaceSidecarUpstream,
	GatewayDownstream: manifests.PlaceGateway,
	GatewayUpstream:   manifests.PlaceGatewayUpstream,
}

// Adapt returns the policy document adapted to a placement (direction
// pinned where the host cannot tell it, host.placement set, trust rules an
// upstream filter cannot apply removed, host.tracer set to the proxy's
// tracer) for a listener with or without a tracing block.
func Adapt(doc []byte, pl Placement, tracing bool, tracer string) ([]byte, error) {
	out, _, err := manifests.AdaptPolicy(doc, placements[pl], manifests.AdaptOptions{Tracer: tracer, Tracing: &tracing})
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
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
// Envoy's span, as the rendered manifests configure them: a request-header
// tag per "header" sink (Istio Telemetry customTags), a tag per "metadata"
// sink (the ext_proc service's dynamic metadata, namespace tracebridge) and
// per "filterState" sink (the wasm filter's filter state). With style
// manifests.CustomTagsTelemetry (the default, Istio >= 1.29) the last two are
// Envoy >= 1.37 value tags with the formatter the rendered Telemetry uses;
// with manifests.CustomTagsEnvoyFilter metadata sinks are custom tags of type
// metadata, as the EnvoyFilter fallback renders them (filter state has no
// other route than a value tag).
func CustomTags(doc []byte, metadata, filterState bool, style string) []envoysim.CustomTag {
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
				switch {
				case !metadata:
				case style == manifests.CustomTagsEnvoyFilter:
					out = append(out, envoysim.CustomTag{Tag: t.Name, MetadataNamespace: engine.MetadataNamespace, MetadataKey: t.Name})
				default:
					out = append(out, envoysim.CustomTag{Tag: t.Name, Value: manifests.TagFormatter(t.Name, sink)})
				}
			case "filterState":
				if filterState {
					out = append(out, envoysim.CustomTag{Tag: t.Name, Value: manifests.TagFormatter(t.Name, sink)})
				}
			}
		}
	}
	return out
}
