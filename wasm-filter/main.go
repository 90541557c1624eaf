// Command wasm-filter is tracebridge's proxy-wasm module. Built with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o bin/tracebridge.wasm ./wasm-filter
//
// (make wasm) it is a WASI reactor: the host runs _initialize, which runs the
// package initialisers below, then drives the proxy_on_* exports provided by
// wasm-filter/abi. main is never called.
package main

import (
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/tracebridge/tracebridge/wasm-filter/plugin"
)

// newVMContext is the plugin's root, shared with the tests so that the native
// (proxytest) and the compiled runs use the very same plugin.
func newVMContext() types.VMContext { return plugin.NewVMContext() }

func init() { proxywasm.SetVMContext(newVMContext()) }

func main() {}
