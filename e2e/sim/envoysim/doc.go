// Package envoysim is tracebridge's Envoy-semantics harness: a small Go data
// plane that behaves like Envoy wherever tracebridge depends on Envoy's
// behaviour, so the real compiled wasm module and the real ext_proc service
// can be tested end to end without an Envoy binary.
//
// Each rule names the Envoy source file it models (paths are in
// envoyproxy/envoy unless said otherwise; see docs/ENVOY.md and
// e2e/README.md):
//
//   - the HTTP connection manager sets x-request-id and the sampling reason,
//     then creates the active span from the incoming headers BEFORE any HTTP
//     filter runs (source/common/http/conn_manager_impl.cc,
//     source/common/http/conn_manager_utility.cc);
//   - the Zipkin tracer reads the single b3 header first, then x-b3-*
//     (source/extensions/tracers/zipkin/span_context_extractor.cc) and writes
//     only x-b3-* (zipkin_core_types.cc); the OpenTelemetry tracer reads and
//     writes traceparent/tracestate (source/extensions/tracers/opentelemetry/);
//     a malformed context yields a NullSpan, which injects nothing;
//   - downstream HTTP filters run in order, then the router injects the active
//     span's context into the upstream request on every attempt
//     (source/common/router/upstream_request.cc), then upstream (cluster)
//     filters run on the injected headers;
//   - a listener without a tracing block has no span and injects nothing;
//   - finished spans carry Envoy's standard and custom tags
//     (source/common/tracing/http_tracer_impl.cc, custom_tag_impl.cc) and are
//     reported as Zipkin v2 JSON or OTLP/HTTP JSON.
//
// Filters: [WasmFilter] hosts the compiled bin/tracebridge.wasm in
// wasm-filter/wasmhost's proxy-wasm host (one VM per worker, shared data per
// proxy, as proxy-wasm-cpp-host), and [ExtProcFilter] talks to a real ext_proc server
// over gRPC with Envoy's ext_proc filter semantics
// (source/extensions/filters/http/ext_proc/ext_proc.cc).
//
// Every listener binds 127.0.0.1 only.
package envoysim
