package wasmtest

import (
	"sync"
	_ "unsafe" // go:linkname

	// proxytest links the SDK's internal package, whose functions below are
	// reached by go:linkname.
	_ "github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/proxytest"
)

// The SDK's host-call entry points (proxywasm/internal/abi_hostcalls_mock.go):
// each forwards to the host registered by proxytest.NewHostEmulator. They live
// in an internal package, hence go:linkname; the SDK's internal named types
// (LogLevel, MapType, BufferType, StreamType, MetricType, Status) are all
// uint32 underneath and are restated as uint32, which has the same layout.

//go:linkname sdkLog github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyLog
func sdkLog(logLevel uint32, messageData *byte, messageSize int) uint32

//go:linkname sdkSetProperty github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxySetProperty
func sdkSetProperty(pathData *byte, pathSize int, valueData *byte, valueSize int) uint32

//go:linkname sdkGetProperty github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyGetProperty
func sdkGetProperty(pathData *byte, pathSize int, returnValueData **byte, returnValueSize *int) uint32

//go:linkname sdkSendLocalResponse github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxySendLocalResponse
func sdkSendLocalResponse(statusCode uint32, statusCodeDetailData *byte, statusCodeDetailsSize int, bodyData *byte, bodySize int, headersData *byte, headersSize int, grpcStatus int32) uint32

//go:linkname sdkGetSharedData github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyGetSharedData
func sdkGetSharedData(keyData *byte, keySize int, returnValueData **byte, returnValueSize *int, returnCas *uint32) uint32

//go:linkname sdkSetSharedData github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxySetSharedData
func sdkSetSharedData(keyData *byte, keySize int, valueData *byte, valueSize int, cas uint32) uint32

//go:linkname sdkRegisterSharedQueue github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyRegisterSharedQueue
func sdkRegisterSharedQueue(nameData *byte, nameSize int, returnID *uint32) uint32

//go:linkname sdkResolveSharedQueue github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyResolveSharedQueue
func sdkResolveSharedQueue(vmIDData *byte, vmIDSize int, nameData *byte, nameSize int, returnID *uint32) uint32

//go:linkname sdkDequeueSharedQueue github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyDequeueSharedQueue
func sdkDequeueSharedQueue(queueID uint32, returnValueData **byte, returnValueSize *int) uint32

//go:linkname sdkEnqueueSharedQueue github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyEnqueueSharedQueue
func sdkEnqueueSharedQueue(queueID uint32, valueData *byte, valueSize int) uint32

//go:linkname sdkGetHeaderMapValue github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyGetHeaderMapValue
func sdkGetHeaderMapValue(mapType uint32, keyData *byte, keySize int, returnValueData **byte, returnValueSize *int) uint32

//go:linkname sdkAddHeaderMapValue github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyAddHeaderMapValue
func sdkAddHeaderMapValue(mapType uint32, keyData *byte, keySize int, valueData *byte, valueSize int) uint32

//go:linkname sdkReplaceHeaderMapValue github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyReplaceHeaderMapValue
func sdkReplaceHeaderMapValue(mapType uint32, keyData *byte, keySize int, valueData *byte, valueSize int) uint32

//go:linkname sdkContinueStream github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyContinueStream
func sdkContinueStream(streamType uint32) uint32

//go:linkname sdkCloseStream github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyCloseStream
func sdkCloseStream(streamType uint32) uint32

//go:linkname sdkRemoveHeaderMapValue github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyRemoveHeaderMapValue
func sdkRemoveHeaderMapValue(mapType uint32, keyData *byte, keySize int) uint32

//go:linkname sdkGetHeaderMapPairs github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyGetHeaderMapPairs
func sdkGetHeaderMapPairs(mapType uint32, returnValueData **byte, returnValueSize *int) uint32

//go:linkname sdkSetHeaderMapPairs github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxySetHeaderMapPairs
func sdkSetHeaderMapPairs(mapType uint32, mapData *byte, mapSize int) uint32

//go:linkname sdkGetBufferBytes github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyGetBufferBytes
func sdkGetBufferBytes(bufferType uint32, start int, maxSize int, returnBufferData **byte, returnBufferSize *int) uint32

//go:linkname sdkSetBufferBytes github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxySetBufferBytes
func sdkSetBufferBytes(bufferType uint32, start int, maxSize int, bufferData *byte, bufferSize int) uint32

//go:linkname sdkHttpCall github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyHttpCall
func sdkHttpCall(upstreamData *byte, upstreamSize int, headerData *byte, headerSize int, bodyData *byte, bodySize int, trailersData *byte, trailersSize int, timeout uint32, calloutIDPtr *uint32) uint32

//go:linkname sdkCallForeignFunction github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyCallForeignFunction
func sdkCallForeignFunction(funcNamePtr *byte, funcNameSize int, paramPtr *byte, paramSize int, returnData **byte, returnSize *int) uint32

//go:linkname sdkSetTickPeriodMilliseconds github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxySetTickPeriodMilliseconds
func sdkSetTickPeriodMilliseconds(period uint32) uint32

//go:linkname sdkSetEffectiveContext github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxySetEffectiveContext
func sdkSetEffectiveContext(contextID uint32) uint32

//go:linkname sdkDone github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyDone
func sdkDone() uint32

//go:linkname sdkDefineMetric github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyDefineMetric
func sdkDefineMetric(metricType uint32, metricNameData *byte, metricNameSize int, returnMetricIDPtr *uint32) uint32

//go:linkname sdkIncrementMetric github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyIncrementMetric
func sdkIncrementMetric(metricID uint32, offset int64) uint32

//go:linkname sdkRecordMetric github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyRecordMetric
func sdkRecordMetric(metricID uint32, value uint64) uint32

//go:linkname sdkGetMetric github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.ProxyGetMetric
func sdkGetMetric(metricID uint32, returnMetricValue *uint64) uint32

// proxytest's HTTP-callout hook: the emulator calls back when a test answers
// an outstanding proxy_http_call.
//
//go:linkname sdkRegisterHttpCallout github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.RegisterHttpCallout
func sdkRegisterHttpCallout(calloutID uint32, callback func(numHeaders, bodySize, numTrailers int))

// The lock proxytest.NewHostEmulator takes for the emulator's lifetime, and
// the SDK state reset its release function performs. Used only to recover
// from a panic inside NewHostEmulator, which otherwise leaves the lock held
// and hangs every later test of the binary.
//
//go:linkname sdkHostMutex github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.mutex
var sdkHostMutex *sync.Mutex

//go:linkname sdkVMStateReset github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.VMStateReset
func sdkVMStateReset()
