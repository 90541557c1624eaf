// Package plugin is tracebridge's proxy-wasm filter: it runs the engine on
// every request and response in Envoy (sidecar inbound and outbound, gateways,
// or as an upstream filter), applies the engine's header mutations, local
// replies and tags, keeps the correlation store in proxy-wasm shared data, and
// reports decisions as Envoy stats.
//
// It is written against the proxy-wasm-go-sdk API, so the same code runs
// natively under proxytest and, compiled for wasip1 with the standard Go
// compiler, as bin/tracebridge.wasm (the ABI bridge is wasm-filter/abi). The
// per-request host reads and the metrics are the exception: in the module
// they call the bridge directly (host_wasip1.go), natively the SDK
// (host_other.go), because the SDK's wrappers allocate per call and link fmt.
package plugin
