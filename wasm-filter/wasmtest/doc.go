// Package wasmtest runs the compiled bin/tracebridge.wasm in tests: an
// instance in wasm-filter/wasmhost (cpp-host's WASI and restrictions, a real
// random source, the shared compilation cache) whose host calls proxytest's
// host emulator answers, with proxy_on_delete delivered when a stream
// completes, so that the same tests drive the plugin natively and as the
// shipped artifact. It builds the module when it is missing or older than
// its sources. Test-only: it links testing and proxytest.
package wasmtest
