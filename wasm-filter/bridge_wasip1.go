//go:build wasip1

package main

// The ABI bridge is linked only into the wasm module; native builds (tests
// under proxytest) use the SDK's own test host instead.
import _ "github.com/tracebridge/tracebridge/wasm-filter/abi"
