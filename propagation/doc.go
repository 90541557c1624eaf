// Package propagation is tracebridge's model of a distributed-trace context and
// its wire formats: W3C Trace Context (traceparent, tracestate, traceresponse),
// W3C Baggage, B3 (multi-header and single-header), Jaeger (uber-trace-id and
// uberctx-*), and the opaque headers Envoy propagates or honours (x-request-id,
// x-ot-span-context, x-amzn-trace-id, x-envoy-force-trace, x-client-trace-id).
//
// Parsers validate strictly and report a Problem instead of an error value so
// that the hot path does not allocate. Formatters append to a caller's buffer.
// Every rule carries a comment naming the section of the specification it
// implements. The package knows nothing of Envoy, proxy-wasm or gRPC.
package propagation
