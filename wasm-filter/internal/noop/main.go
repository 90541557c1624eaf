// Command noop is a proxy-wasm module that does nothing, built with the same
// bridge (wasm-filter/abi) and SDK as the tracebridge module. Benchmarks run
// it through the same host to tell the guest's own cost from the host's and
// the bridge's:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o bin/noop.wasm ./wasm-filter/internal/noop
//
// (wasmtest.EnsurePackage builds it on demand).
package main

import (
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"

	// The bridge is empty on native targets.
	_ "github.com/tracebridge/tracebridge/wasm-filter/abi"
)

type vmContext struct{ types.DefaultVMContext }

func (*vmContext) NewPluginContext(uint32) types.PluginContext { return &pluginContext{} }

type pluginContext struct{ types.DefaultPluginContext }

func (*pluginContext) NewHttpContext(uint32) types.HttpContext { return &types.DefaultHttpContext{} }

func init() { proxywasm.SetVMContext(&vmContext{}) }

func main() {}
