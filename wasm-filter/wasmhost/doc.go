// Package wasmhost runs a compiled proxy-wasm module (ABI 0.2.1) on wazero
// the way Envoy's proxy-wasm-cpp-host does. It is the one host of the
// project: the plugin tests and benchmarks (through wasm-filter/wasmtest),
// the compatibility soaks and the Envoy-semantics harness
// (e2e/sim/envoysim, and so `tracebridge sidecar` and `tracebridge demo`)
// all load the module here.
//
//   - One host-function table: the proxy-wasm "env" functions decode the
//     guest's arguments, copy every byte range out of guest memory, and call
//     a [Handler] (the harness's Envoy model, or the SDK's host emulator in
//     tests); results go back through the guest's allocator.
//   - The WASI of proxy-wasm-cpp-host, per version ([Profile]: pre-427,
//     427, 533): the import set, the function bodies, and the allowlists
//     during _initialize and proxy_on_memory_allocate outside which any
//     host call traps with restricted_callback; an import the profile does
//     not register fails the load.
//   - One compilation cache: a module is compiled once per process, in one
//     runtime, whatever the profile, and cached on disk in [CacheDir].
//
// Delivering proxy_on_log and proxy_on_delete when a stream ends is the
// caller's part (the harness and wasmtest both do, as Envoy does).
package wasmhost
