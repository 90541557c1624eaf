// Package abi lets a plugin written against github.com/tetratelabs/proxy-wasm-go-sdk
// (v0.24.0) run as a proxy-wasm module built by the standard Go compiler
// (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared) instead of TinyGo.
//
// The SDK only wires the proxy-wasm ABI for TinyGo. Its standard-Go build keeps
// every callback as an exported Go function and routes every host call through a
// replaceable host interface (meant for its own tests). This package supplies the
// two missing halves for wasip1:
//
//   - guest exports: each proxy_on_* callback of ABI 0.2.1 is a //go:wasmexport
//     function that forwards to the SDK's callback wrapper;
//   - host imports: a host value whose methods call the real env.proxy_* imports
//     is installed as the SDK's host, so proxywasm.* calls reach Envoy.
//
// The exports and imports build for wasip1 only, so the same plugin code
// still builds natively for proxytest; natively the package holds only its
// portable parts (allocator, host interface, the header-map wire format).
// See wasm-filter/README.md for the pitfalls the design works around.
package abi
