//go:build wasip1

package abi

import (
	_ "unsafe" // go:linkname
)

// The SDK's entry point for a host implementation. Declared here with hostAPI
// in place of the internal ProxyWasmHost type (see hostapi.go for why the two
// are interchangeable).
//
//go:linkname registerHost github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal.RegisterMockWasmHost
func registerHost(h hostAPI) (release func())

// Status values of the SDK (and of the proxy-wasm ABI) that the bridge itself
// returns.
const (
	statusOK              = 0
	statusInternalFailure = 10
)

// mem serves proxy_on_memory_allocate; see allocator.
var (
	pinned           = newPinningAllocator()
	mem    allocator = pinned
)

// Return slots for host calls. The host writes results through 32-bit
// addresses, so the slots are uint32/uint64 and live in static memory: a slot
// on the goroutine stack could move while the host re-enters the guest (for
// proxy_on_memory_allocate) before it writes the result. Callbacks and host
// calls never nest in another host call, so one set of slots suffices.
var slot struct {
	ptr, size uint32
	id        uint32
	cas       uint32
	u64       uint64
}

// keepMethods is never set. It guards a call of every hostAPI method so that
// the linker, which keeps an interface method only when it sees a call with the
// same signature, keeps host's methods: the SDK's own calls use its internal
// types and do not count.
var keepMethods bool

func init() {
	var h hostAPI = host{}
	registerHost(h) // the SDK holds its lock for the life of the module, which is fine
	if keepMethods {
		callEveryMethod(h)
	}
}

// host implements the SDK's host interface with the real proxy-wasm imports.
type host struct{}

// takeResult turns the buffer the host wrote into slot.ptr/slot.size into the
// SDK's (**byte, *int) results and ends the host call.
func takeResult(st uint32, data **byte, size *int) uint32 {
	if st == statusOK {
		*data, *size = nil, 0
		if slot.size > 0 {
			p := mem.take(uintptr(slot.ptr), slot.size)
			if p == nil {
				st = statusInternalFailure // the host returned memory we never allocated
			} else {
				*data, *size = p, int(slot.size)
			}
		}
	}
	mem.release()
	return st
}

func resetSlots() { slot.ptr, slot.size = 0, 0 }

func (host) ProxyLog(logLevel uint32, messageData *byte, messageSize int) uint32 {
	return proxyLog(logLevel, messageData, uint32(messageSize))
}

func (host) ProxySetProperty(pathData *byte, pathSize int, valueData *byte, valueSize int) uint32 {
	return proxySetProperty(pathData, uint32(pathSize), valueData, uint32(valueSize))
}

func (host) ProxyGetProperty(pathData *byte, pathSize int, returnValueData **byte, returnValueSize *int) uint32 {
	resetSlots()
	st := proxyGetProperty(pathData, uint32(pathSize), &slot.ptr, &slot.size)
	return takeResult(st, returnValueData, returnValueSize)
}

func (host) ProxySendLocalResponse(statusCode uint32, statusCodeDetailData *byte, statusCodeDetailsSize int, bodyData *byte, bodySize int, headersData *byte, headersSize int, grpcStatus int32) uint32 {
	return proxySendLocalResponse(statusCode, statusCodeDetailData, uint32(statusCodeDetailsSize),
		bodyData, uint32(bodySize), headersData, uint32(headersSize), grpcStatus)
}

func (host) ProxyGetSharedData(keyData *byte, keySize int, returnValueData **byte, returnValueSize *int, returnCas *uint32) uint32 {
	resetSlots()
	slot.cas = 0
	st := proxyGetSharedData(keyData, uint32(keySize), &slot.ptr, &slot.size, &slot.cas)
	if st == statusOK {
		*returnCas = slot.cas
	}
	return takeResult(st, returnValueData, returnValueSize)
}

func (host) ProxySetSharedData(keyData *byte, keySize int, valueData *byte, valueSize int, cas uint32) uint32 {
	return proxySetSharedData(keyData, uint32(keySize), valueData, uint32(valueSize), cas)
}

func (host) ProxyRegisterSharedQueue(nameData *byte, nameSize int, returnID *uint32) uint32 {
	slot.id = 0
	st := proxyRegisterSharedQueue(nameData, uint32(nameSize), &slot.id)
	*returnID = slot.id
	return st
}

func (host) ProxyResolveSharedQueue(vmIDData *byte, vmIDSize int, nameData *byte, nameSize int, returnID *uint32) uint32 {
	slot.id = 0
	st := proxyResolveSharedQueue(vmIDData, uint32(vmIDSize), nameData, uint32(nameSize), &slot.id)
	*returnID = slot.id
	return st
}

func (host) ProxyDequeueSharedQueue(queueID uint32, returnValueData **byte, returnValueSize *int) uint32 {
	resetSlots()
	st := proxyDequeueSharedQueue(queueID, &slot.ptr, &slot.size)
	return takeResult(st, returnValueData, returnValueSize)
}

func (host) ProxyEnqueueSharedQueue(queueID uint32, valueData *byte, valueSize int) uint32 {
	return proxyEnqueueSharedQueue(queueID, valueData, uint32(valueSize))
}

func (host) ProxyGetHeaderMapValue(mapType uint32, keyData *byte, keySize int, returnValueData **byte, returnValueSize *int) uint32 {
	resetSlots()
	st := proxyGetHeaderMapValue(mapType, keyData, uint32(keySize), &slot.ptr, &slot.size)
	return takeResult(st, returnValueData, returnValueSize)
}

func (host) ProxyAddHeaderMapValue(mapType uint32, keyData *byte, keySize int, valueData *byte, valueSize int) uint32 {
	return proxyAddHeaderMapValue(mapType, keyData, uint32(keySize), valueData, uint32(valueSize))
}

func (host) ProxyReplaceHeaderMapValue(mapType uint32, keyData *byte, keySize int, valueData *byte, valueSize int) uint32 {
	return proxyReplaceHeaderMapValue(mapType, keyData, uint32(keySize), valueData, uint32(valueSize))
}

func (host) ProxyContinueStream(streamType uint32) uint32 { return proxyContinueStream(streamType) }

func (host) ProxyCloseStream(streamType uint32) uint32 { return proxyCloseStream(streamType) }

func (host) ProxyRemoveHeaderMapValue(mapType uint32, keyData *byte, keySize int) uint32 {
	return proxyRemoveHeaderMapValue(mapType, keyData, uint32(keySize))
}

func (host) ProxyGetHeaderMapPairs(mapType uint32, returnValueData **byte, returnValueSize *int) uint32 {
	resetSlots()
	st := proxyGetHeaderMapPairs(mapType, &slot.ptr, &slot.size)
	return takeResult(st, returnValueData, returnValueSize)
}

func (host) ProxySetHeaderMapPairs(mapType uint32, mapData *byte, mapSize int) uint32 {
	return proxySetHeaderMapPairs(mapType, mapData, uint32(mapSize))
}

func (host) ProxyGetBufferBytes(bufferType uint32, start int, maxSize int, returnBufferData **byte, returnBufferSize *int) uint32 {
	resetSlots()
	st := proxyGetBufferBytes(bufferType, uint32(start), uint32(maxSize), &slot.ptr, &slot.size)
	return takeResult(st, returnBufferData, returnBufferSize)
}

func (host) ProxySetBufferBytes(bufferType uint32, start int, maxSize int, bufferData *byte, bufferSize int) uint32 {
	return proxySetBufferBytes(bufferType, uint32(start), uint32(maxSize), bufferData, uint32(bufferSize))
}

func (host) ProxyHttpCall(upstreamData *byte, upstreamSize int, headerData *byte, headerSize int, bodyData *byte, bodySize int, trailersData *byte, trailersSize int, timeout uint32, calloutIDPtr *uint32) uint32 {
	slot.id = 0
	st := proxyHttpCall(upstreamData, uint32(upstreamSize), headerData, uint32(headerSize),
		bodyData, uint32(bodySize), trailersData, uint32(trailersSize), timeout, &slot.id)
	*calloutIDPtr = slot.id
	return st
}

func (host) ProxyCallForeignFunction(funcNamePtr *byte, funcNameSize int, paramPtr *byte, paramSize int, returnData **byte, returnSize *int) uint32 {
	resetSlots()
	st := proxyCallForeignFunction(funcNamePtr, uint32(funcNameSize), paramPtr, uint32(paramSize), &slot.ptr, &slot.size)
	return takeResult(st, returnData, returnSize)
}

func (host) ProxySetTickPeriodMilliseconds(period uint32) uint32 {
	return proxySetTickPeriodMilliseconds(period)
}

func (host) ProxySetEffectiveContext(contextID uint32) uint32 {
	return proxySetEffectiveContext(contextID)
}

func (host) ProxyDone() uint32 { return proxyDone() }

func (host) ProxyDefineMetric(metricType uint32, metricNameData *byte, metricNameSize int, returnMetricIDPtr *uint32) uint32 {
	slot.id = 0
	st := proxyDefineMetric(metricType, metricNameData, uint32(metricNameSize), &slot.id)
	*returnMetricIDPtr = slot.id
	return st
}

func (host) ProxyIncrementMetric(metricID uint32, offset int64) uint32 {
	return proxyIncrementMetric(metricID, offset)
}

func (host) ProxyRecordMetric(metricID uint32, value uint64) uint32 {
	return proxyRecordMetric(metricID, value)
}

func (host) ProxyGetMetric(metricID uint32, returnMetricValue *uint64) uint32 {
	slot.u64 = 0
	st := proxyGetMetric(metricID, &slot.u64)
	*returnMetricValue = slot.u64
	return st
}

// callEveryMethod exists only so the linker sees a call of each method with
// the hostAPI signature; see keepMethods. It never runs.
func callEveryMethod(h hostAPI) {
	var p *byte
	var n int
	var u uint32
	var u64 uint64
	h.ProxyLog(0, nil, 0)
	h.ProxySetProperty(nil, 0, nil, 0)
	h.ProxyGetProperty(nil, 0, &p, &n)
	h.ProxySendLocalResponse(0, nil, 0, nil, 0, nil, 0, 0)
	h.ProxyGetSharedData(nil, 0, &p, &n, &u)
	h.ProxySetSharedData(nil, 0, nil, 0, 0)
	h.ProxyRegisterSharedQueue(nil, 0, &u)
	h.ProxyResolveSharedQueue(nil, 0, nil, 0, &u)
	h.ProxyDequeueSharedQueue(0, &p, &n)
	h.ProxyEnqueueSharedQueue(0, nil, 0)
	h.ProxyGetHeaderMapValue(0, nil, 0, &p, &n)
	h.ProxyAddHeaderMapValue(0, nil, 0, nil, 0)
	h.ProxyReplaceHeaderMapValue(0, nil, 0, nil, 0)
	h.ProxyContinueStream(0)
	h.ProxyCloseStream(0)
	h.ProxyRemoveHeaderMapValue(0, nil, 0)
	h.ProxyGetHeaderMapPairs(0, &p, &n)
	h.ProxySetHeaderMapPairs(0, nil, 0)
	h.ProxyGetBufferBytes(0, 0, 0, &p, &n)
	h.ProxySetBufferBytes(0, 0, 0, nil, 0)
	h.ProxyHttpCall(nil, 0, nil, 0, nil, 0, nil, 0, 0, &u)
	h.ProxyCallForeignFunction(nil, 0, nil, 0, &p, &n)
	h.ProxySetTickPeriodMilliseconds(0)
	h.ProxySetEffectiveContext(0)
	h.ProxyDone()
	h.ProxyDefineMetric(0, nil, 0, &u)
	h.ProxyIncrementMetric(0, 0)
	h.ProxyRecordMetric(0, 0)
	h.ProxyGetMetric(0, &u64)
}
