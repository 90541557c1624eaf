package wasmtest

import (
	"fmt"
	"unsafe"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/proxytest"
)

// emulatorHandler answers the compiled module's host calls (wasmhost's
// table) with proxytest's host emulator, through the SDK's host-call entry
// points, so that the same tests drive the plugin natively and compiled.
//
// proxytest has its own wazero runner (NewWasmVMContext), but it compiles on
// every call with no cache and no random source, runs _start (the module is
// a reactor), offers unrestricted WASI, never delivers proxy_on_delete and
// hands the emulator pointers into guest memory, which the emulator keeps
// (header values, log lines, metric names) while the guest reuses that
// memory. wasmhost copies every byte range out of guest memory first.
type emulatorHandler struct{ vm *VM }

// bp is the SDK's (pointer, size) form of b.
func bp(b []byte) *byte {
	if len(b) == 0 {
		return nil
	}
	return &b[0]
}

// bytesAt is the emulator's result (pointer, size) as a slice; wasmhost
// copies it into guest memory at once.
func bytesAt(p *byte, n int) []byte {
	if p == nil || n == 0 {
		return nil
	}
	return unsafe.Slice(p, n)
}

func (emulatorHandler) Log(level uint32, msg []byte) uint32 {
	return sdkLog(level, bp(msg), len(msg))
}

func (emulatorHandler) GetProperty(path []byte) ([]byte, uint32) {
	var p *byte
	var n int
	st := sdkGetProperty(bp(path), len(path), &p, &n)
	return bytesAt(p, n), st
}

func (emulatorHandler) SetProperty(path, value []byte) uint32 {
	return sdkSetProperty(bp(path), len(path), bp(value), len(value))
}

func (emulatorHandler) SendLocalResponse(status uint32, details, body, headers []byte, grpcStatus int32) uint32 {
	return sdkSendLocalResponse(status, bp(details), len(details), bp(body), len(body), bp(headers), len(headers), grpcStatus)
}

func (emulatorHandler) GetSharedData(key []byte) ([]byte, uint32, uint32) {
	var p *byte
	var n int
	var cas uint32
	st := sdkGetSharedData(bp(key), len(key), &p, &n, &cas)
	return bytesAt(p, n), cas, st
}

func (emulatorHandler) SetSharedData(key, value []byte, cas uint32) uint32 {
	return sdkSetSharedData(bp(key), len(key), bp(value), len(value), cas)
}

func (emulatorHandler) RegisterSharedQueue(name []byte) (uint32, uint32) {
	var id uint32
	st := sdkRegisterSharedQueue(bp(name), len(name), &id)
	return id, st
}

func (emulatorHandler) ResolveSharedQueue(vmID, name []byte) (uint32, uint32) {
	var id uint32
	st := sdkResolveSharedQueue(bp(vmID), len(vmID), bp(name), len(name), &id)
	return id, st
}

func (emulatorHandler) DequeueSharedQueue(id uint32) ([]byte, uint32) {
	var p *byte
	var n int
	st := sdkDequeueSharedQueue(id, &p, &n)
	return bytesAt(p, n), st
}

func (emulatorHandler) EnqueueSharedQueue(id uint32, value []byte) uint32 {
	return sdkEnqueueSharedQueue(id, bp(value), len(value))
}

func (emulatorHandler) GetHeaderMapValue(mapType uint32, key []byte) ([]byte, uint32) {
	var p *byte
	var n int
	st := sdkGetHeaderMapValue(mapType, bp(key), len(key), &p, &n)
	return bytesAt(p, n), st
}

func (emulatorHandler) AddHeaderMapValue(mapType uint32, key, value []byte) uint32 {
	return sdkAddHeaderMapValue(mapType, bp(key), len(key), bp(value), len(value))
}

func (emulatorHandler) ReplaceHeaderMapValue(mapType uint32, key, value []byte) uint32 {
	return sdkReplaceHeaderMapValue(mapType, bp(key), len(key), bp(value), len(value))
}

func (emulatorHandler) RemoveHeaderMapValue(mapType uint32, key []byte) uint32 {
	return sdkRemoveHeaderMapValue(mapType, bp(key), len(key))
}

func (emulatorHandler) GetHeaderMapPairs(mapType uint32) ([]byte, uint32) {
	var p *byte
	var n int
	st := sdkGetHeaderMapPairs(mapType, &p, &n)
	return bytesAt(p, n), st
}

func (emulatorHandler) SetHeaderMapPairs(mapType uint32, pairs []byte) uint32 {
	return sdkSetHeaderMapPairs(mapType, bp(pairs), len(pairs))
}

func (emulatorHandler) GetBufferBytes(bufferType, start, maxSize uint32) ([]byte, uint32) {
	var p *byte
	var n int
	st := sdkGetBufferBytes(bufferType, int(start), int(maxSize), &p, &n)
	return bytesAt(p, n), st
}

func (emulatorHandler) SetBufferBytes(bufferType, start, maxSize uint32, data []byte) uint32 {
	return sdkSetBufferBytes(bufferType, int(start), int(maxSize), bp(data), len(data))
}

func (emulatorHandler) ContinueStream(streamType uint32) uint32 { return sdkContinueStream(streamType) }
func (emulatorHandler) CloseStream(streamType uint32) uint32    { return sdkCloseStream(streamType) }

func (h emulatorHandler) HttpCall(upstream, headers, body, trailers []byte, timeout uint32) (uint32, uint32) {
	var id uint32
	st := sdkHttpCall(bp(upstream), len(upstream), bp(headers), len(headers), bp(body), len(body),
		bp(trailers), len(trailers), timeout, &id)
	if st == 0 {
		// proxytest answers a callout through this hook, from outside any
		// guest call: deliver it to the guest as Envoy would.
		vm := h.vm
		sdkRegisterHttpCallout(id, func(numHeaders, bodySize, numTrailers int) {
			if _, err := vm.in.Call("proxy_on_http_call_response", uint64(proxytest.PluginContextID), uint64(id),
				uint64(numHeaders), uint64(bodySize), uint64(numTrailers)); err != nil {
				panic(fmt.Errorf("wasmtest: %w", err))
			}
		})
	}
	return id, st
}

func (emulatorHandler) CallForeignFunction(name, param []byte) ([]byte, uint32) {
	var p *byte
	var n int
	st := sdkCallForeignFunction(bp(name), len(name), bp(param), len(param), &p, &n)
	return bytesAt(p, n), st
}

func (emulatorHandler) SetTickPeriodMilliseconds(period uint32) uint32 {
	return sdkSetTickPeriodMilliseconds(period)
}

func (emulatorHandler) SetEffectiveContext(id uint32) uint32 { return sdkSetEffectiveContext(id) }
func (emulatorHandler) Done() uint32                         { return sdkDone() }

func (emulatorHandler) DefineMetric(metricType uint32, name []byte) (uint32, uint32) {
	var id uint32
	st := sdkDefineMetric(metricType, bp(name), len(name), &id)
	return id, st
}

func (emulatorHandler) IncrementMetric(id uint32, offset int64) uint32 {
	return sdkIncrementMetric(id, offset)
}

func (emulatorHandler) RecordMetric(id uint32, value uint64) uint32 {
	return sdkRecordMetric(id, value)
}

func (emulatorHandler) GetMetric(id uint32) (uint64, uint32) {
	var v uint64
	st := sdkGetMetric(id, &v)
	return v, st
}
