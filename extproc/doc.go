// Package extproc is tracebridge's Envoy external processing (ext_proc)
// service: a gRPC server for envoy.service.ext_proc.v3.ExternalProcessor that
// runs the host-agnostic engine on each HTTP request Envoy hands it.
//
// One gRPC stream carries one HTTP request. On request headers the engine
// decides (keep, repair, inject, restore, translate, reject, tag) and the
// server answers with a HeaderMutation, an ImmediateResponse (reject), and the
// engine's metadata tags as dynamic metadata under engine.MetadataNamespace
// ("tracebridge"). The per-stream engine state is kept for the response
// headers (traceresponse) and released exactly once when the stream ends,
// however it ends.
//
// The server fails open: a store error, an unexpected message or a panic in
// a handler is counted and logged, and Envoy is told to continue unchanged.
//
// The other parts of the service have packages of their own: the gRPC codec
// (extproc/codec), the correlation stores (extproc/store: memory and
// Redis), and the process with its flags, connection limits, TLS, health,
// admin endpoint, policy reload and graceful drain
// (extproc/cmd/tracebridge-extproc/app).
package extproc
