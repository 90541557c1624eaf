// Package manifests renders what an Istio or Envoy operator applies to run
// tracebridge, from ONE policy document, so that the places the policy shows
// up never drift apart:
//
//   - the wasm filter's pluginConfig (WasmPlugin for Istio < 1.30 and
//     TrafficExtension for Istio 1.30+, both rendered from the same document),
//   - the Telemetry customTags of type header (tags with the "header" sink)
//     and of type formatter (filter-state tags on sidecars; at gateways the
//     "metadata" sink, %DYNAMIC_METADATA(tracebridge:<name>)%, Istio >= 1.29),
//     or for older Istio the EnvoyFilter tracing custom_tags of type metadata
//     (Options.CustomTags "envoyfilter"),
//   - for host.tracer zipkin-w3c, the mesh's Zipkin provider with
//     traceContextOption USE_B3_WITH_W3C_PROPAGATION (mesh/),
//   - the early_header_mutation that removes untrusted trace headers before
//     Envoy creates its span (docs/ENVOY.md §1),
//   - the ext_proc service's policy ConfigMap and the plain Envoy bootstrap.
//
// Modes (see README "Deployment modes"): sidecar-auto-forward,
// precise-parenting, gateway-enrichment, gateway-enrichment-upstream,
// edge-trust and envoy. Render returns the files of manifests/ (a kustomize
// base and one overlay per mode under istio/, and envoy/envoy.yaml);
// RunManifestsCommand is `tracebridge manifests render`.
//
// The policy is adapted per placement before it is embedded, and every
// adaptation is stated in a comment of the rendered file: sidecars drop the
// edge rule trust.untrustedDirections (every in-mesh hop is "inbound"),
// gateway placements pin direction to inbound (Istio gateway listeners are
// outbound listeners), and upstream placements (after Envoy injected its own
// context) set host.placement "upstream" and drop the untrusted rules.
package manifests
