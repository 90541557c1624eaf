//go:build wasip1

// The host calls these functions through //go:wasmexport; staticcheck does
// not know that.
//lint:file-ignore U1000 exported to the host with go:wasmexport

package abi

import (
	_ "unsafe" // go:linkname

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

// The SDK's callback wrappers (proxywasm/internal/abi_callback_test_export.go,
// built for every non-TinyGo target). They sit in an internal package, hence
// the linkname directives; their signatures use only public types and are
// restated exactly.

//go:linkname sdkOnVMStart github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyOnVMStart
func sdkOnVMStart(pluginContextID uint32, vmConfigurationSize int) types.OnVMStartStatus

//go:linkname sdkOnConfigure github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyOnConfigure
func sdkOnConfigure(pluginContextID uint32, pluginConfigurationSize int) types.OnPluginStartStatus

//go:linkname sdkOnNewConnection github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyOnNewConnection
func sdkOnNewConnection(contextID uint32) types.Action

//go:linkname sdkOnDownstreamData github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyOnDownstreamData
func sdkOnDownstreamData(contextID uint32, dataSize int, endOfStream bool) types.Action

//go:linkname sdkOnDownstreamConnectionClose github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyOnDownstreamConnectionClose
func sdkOnDownstreamConnectionClose(contextID uint32, peer types.PeerType)

//go:linkname sdkOnUpstreamData github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyOnUpstreamData
func sdkOnUpstreamData(contextID uint32, dataSize int, endOfStream bool) types.Action

//go:linkname sdkOnUpstreamConnectionClose github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyOnUpstreamConnectionClose
func sdkOnUpstreamConnectionClose(contextID uint32, peer types.PeerType)

//go:linkname sdkOnRequestHeaders github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyOnRequestHeaders
func sdkOnRequestHeaders(contextID uint32, numHeaders int, endOfStream bool) types.Action

//go:linkname sdkOnRequestBody github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyOnRequestBody
func sdkOnRequestBody(contextID uint32, bodySize int, endOfStream bool) types.Action

//go:linkname sdkOnRequestTrailers github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyOnRequestTrailers
func sdkOnRequestTrailers(contextID uint32, numTrailers int) types.Action

//go:linkname sdkOnResponseHeaders github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyOnResponseHeaders
func sdkOnResponseHeaders(contextID uint32, numHeaders int, endOfStream bool) types.Action

//go:linkname sdkOnResponseBody github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyOnResponseBody
func sdkOnResponseBody(contextID uint32, bodySize int, endOfStream bool) types.Action

//go:linkname sdkOnResponseTrailers github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyOnResponseTrailers
func sdkOnResponseTrailers(contextID uint32, numTrailers int) types.Action

//go:linkname sdkOnHttpCallResponse github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyOnHttpCallResponse
func sdkOnHttpCallResponse(pluginContextID, calloutID uint32, numHeaders, bodySize, numTrailers int)

//go:linkname sdkOnContextCreate github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyOnContextCreate
func sdkOnContextCreate(contextID uint32, pluginContextID uint32)

//go:linkname sdkOnDone github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyOnDone
func sdkOnDone(contextID uint32) bool

//go:linkname sdkOnLog github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyOnLog
func sdkOnLog(contextID uint32)

//go:linkname sdkOnQueueReady github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyOnQueueReady
func sdkOnQueueReady(contextID, queueID uint32)

//go:linkname sdkOnTick github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyOnTick
func sdkOnTick(pluginContextID uint32)

//go:linkname sdkOnDelete github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyOnDelete
func sdkOnDelete(contextID uint32)

// The guest exports of proxy-wasm ABI 0.2.1 that the SDK implements. The host
// passes i32 values; sizes become Go ints and booleans are 0/1.

// proxyABIVersion tells the host which ABI the module speaks. 0.2.1 is the
// version whose host functions the SDK calls (proxy_continue_stream,
// proxy_close_stream).
//
//go:wasmexport proxy_abi_version_0_2_1
func proxyABIVersion() {}

//go:wasmexport proxy_on_memory_allocate
func proxyOnMemoryAllocate(size uint32) uint32 {
	// Linear memory is below 4 GiB, so the address fits the ABI's i32.
	return uint32(mem.allocate(size))
}

//go:wasmexport proxy_on_vm_start
func proxyOnVMStart(rootContextID, vmConfigurationSize uint32) uint32 {
	return fromBool(bool(sdkOnVMStart(rootContextID, int(vmConfigurationSize))))
}

//go:wasmexport proxy_on_configure
func proxyOnConfigure(rootContextID, pluginConfigurationSize uint32) uint32 {
	return fromBool(bool(sdkOnConfigure(rootContextID, int(pluginConfigurationSize))))
}

//go:wasmexport proxy_on_context_create
func proxyOnContextCreate(contextID, parentContextID uint32) {
	sdkOnContextCreate(contextID, parentContextID)
}

//go:wasmexport proxy_on_new_connection
func proxyOnNewConnection(contextID uint32) uint32 {
	return uint32(sdkOnNewConnection(contextID))
}

//go:wasmexport proxy_on_downstream_data
func proxyOnDownstreamData(contextID, dataSize, endOfStream uint32) uint32 {
	return uint32(sdkOnDownstreamData(contextID, int(dataSize), endOfStream != 0))
}

//go:wasmexport proxy_on_downstream_connection_close
func proxyOnDownstreamConnectionClose(contextID, peerType uint32) {
	sdkOnDownstreamConnectionClose(contextID, types.PeerType(peerType))
}

//go:wasmexport proxy_on_upstream_data
func proxyOnUpstreamData(contextID, dataSize, endOfStream uint32) uint32 {
	return uint32(sdkOnUpstreamData(contextID, int(dataSize), endOfStream != 0))
}

//go:wasmexport proxy_on_upstream_connection_close
func proxyOnUpstreamConnectionClose(contextID, peerType uint32) {
	sdkOnUpstreamConnectionClose(contextID, types.PeerType(peerType))
}

//go:wasmexport proxy_on_request_headers
func proxyOnRequestHeaders(contextID, numHeaders, endOfStream uint32) uint32 {
	return uint32(sdkOnRequestHeaders(contextID, int(numHeaders), endOfStream != 0))
}

//go:wasmexport proxy_on_request_body
func proxyOnRequestBody(contextID, bodySize, endOfStream uint32) uint32 {
	return uint32(sdkOnRequestBody(contextID, int(bodySize), endOfStream != 0))
}

//go:wasmexport proxy_on_request_trailers
func proxyOnRequestTrailers(contextID, numTrailers uint32) uint32 {
	return uint32(sdkOnRequestTrailers(contextID, int(numTrailers)))
}

//go:wasmexport proxy_on_response_headers
func proxyOnResponseHeaders(contextID, numHeaders, endOfStream uint32) uint32 {
	return uint32(sdkOnResponseHeaders(contextID, int(numHeaders), endOfStream != 0))
}

//go:wasmexport proxy_on_response_body
func proxyOnResponseBody(contextID, bodySize, endOfStream uint32) uint32 {
	return uint32(sdkOnResponseBody(contextID, int(bodySize), endOfStream != 0))
}

//go:wasmexport proxy_on_response_trailers
func proxyOnResponseTrailers(contextID, numTrailers uint32) uint32 {
	return uint32(sdkOnResponseTrailers(contextID, int(numTrailers)))
}

//go:wasmexport proxy_on_http_call_response
func proxyOnHttpCallResponse(rootContextID, calloutID, numHeaders, bodySize, numTrailers uint32) {
	sdkOnHttpCallResponse(rootContextID, calloutID, int(numHeaders), int(bodySize), int(numTrailers))
}

//go:wasmexport proxy_on_done
func proxyOnDone(contextID uint32) uint32 {
	return fromBool(sdkOnDone(contextID))
}

//go:wasmexport proxy_on_log
func proxyOnLog(contextID uint32) {
	sdkOnLog(contextID)
}

//go:wasmexport proxy_on_delete
func proxyOnDelete(contextID uint32) {
	sdkOnDelete(contextID)
}

//go:wasmexport proxy_on_queue_ready
func proxyOnQueueReady(rootContextID, queueID uint32) {
	sdkOnQueueReady(rootContextID, queueID)
}

//go:wasmexport proxy_on_tick
func proxyOnTick(rootContextID uint32) {
	sdkOnTick(rootContextID)
}

func fromBool(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
