// Package wasmtest runs the compiled bin/tracebridge.wasm in tests: a wazero
// runner (WASI reactor start with _initialize, a real random source, a cached
// compilation, proxy_on_delete delivered) under proxytest's host emulator, so
// that the same tests drive the plugin natively and as the shipped artifact.
// It builds the module when it is missing or older than its sources.
package wasmtest
