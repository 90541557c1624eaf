//go:build wasip1

package abi

import "unsafe"

// Direct host calls for the plugin's per-request hot path. The SDK's
// wrappers for the same calls copy every header name and value into a new
// string (proxywasm/internal DeserializeMap) and format panics with fmt
// (DefineCounterMetric, Increment), which links fmt and reflect into the
// module. These return the host's result as it is.

// HeaderMapPairs returns the host's serialized header map of mapType (ABI
// 0.2.x encoding: pair count, then name and value lengths, then each name
// and value NUL-terminated). The buffer was allocated for this call alone
// and is never reused by the bridge, so the caller may keep strings that
// alias it. status is the proxy-wasm status (0 ok).
func HeaderMapPairs(mapType uint32) (buf []byte, status uint32) {
	resetSlots()
	return sliceResult(proxyGetHeaderMapPairs(mapType, &slot.ptr, &slot.size))
}

// sliceResult ends a host call that returned a buffer in slot.ptr/slot.size
// and gives it as a slice (nil when empty or on error).
func sliceResult(st uint32) ([]byte, uint32) {
	var p *byte
	var n int
	st = takeResult(st, &p, &n)
	if st != statusOK || n == 0 {
		return nil, st
	}
	return unsafe.Slice(p, n), st
}

// DefineMetric defines a metric (0 counter, 1 gauge, 2 histogram) and returns
// its id.
func DefineMetric(metricType uint32, name string) (id, status uint32) {
	slot.id = 0
	st := proxyDefineMetric(metricType, unsafe.StringData(name), uint32(len(name)), &slot.id)
	return slot.id, st
}

// IncrementMetric adds offset to a metric.
func IncrementMetric(id uint32, offset int64) uint32 { return proxyIncrementMetric(id, offset) }

// scratch serves the calls below, whose results the caller consumes before
// its next host call.
var scratch scratchAllocator

// withScratch runs one host call with its result in the scratch buffer and
// returns that result, valid until the next host call.
func withScratch(call func() uint32) ([]byte, uint32) {
	mem = &scratch
	defer func() { mem = pinned }()
	resetSlots()
	return sliceResult(call())
}

// Property returns a host property; path is the serialized path (segments
// each followed by a NUL byte, as the SDK's SerializePropertyPath makes it).
// The value is valid until the next host call.
func Property(path []byte) (value []byte, status uint32) {
	return withScratch(func() uint32 {
		return proxyGetProperty(unsafe.SliceData(path), uint32(len(path)), &slot.ptr, &slot.size)
	})
}

// HeaderMapValue returns one header of mapType; the value is valid until the
// next host call.
func HeaderMapValue(mapType uint32, name string) (value []byte, status uint32) {
	return withScratch(func() uint32 {
		return proxyGetHeaderMapValue(mapType, unsafe.StringData(name), uint32(len(name)), &slot.ptr, &slot.size)
	})
}

// SharedData returns a shared-data value and its cas; the value is valid
// until the next host call.
func SharedData(key string) (value []byte, cas, status uint32) {
	slot.cas = 0
	value, status = withScratch(func() uint32 {
		return proxyGetSharedData(unsafe.StringData(key), uint32(len(key)), &slot.ptr, &slot.size, &slot.cas)
	})
	return value, slot.cas, status
}

// Direct writes. The SDK's wrappers for these convert strings to byte slices
// (a copy each) and map the status through its error table; these pass the
// caller's bytes to the host as they are and return the proxy-wasm status.

// ReplaceHeaderMapValue sets one header of mapType, replacing any value.
func ReplaceHeaderMapValue(mapType uint32, name, value string) uint32 {
	return proxyReplaceHeaderMapValue(mapType, unsafe.StringData(name), uint32(len(name)), unsafe.StringData(value), uint32(len(value)))
}

// RemoveHeaderMapValue removes a header of mapType.
func RemoveHeaderMapValue(mapType uint32, name string) uint32 {
	return proxyRemoveHeaderMapValue(mapType, unsafe.StringData(name), uint32(len(name)))
}

// SetSharedData writes a shared-data value; cas 0 writes unconditionally.
func SetSharedData(key string, value []byte, cas uint32) uint32 {
	return proxySetSharedData(unsafe.StringData(key), uint32(len(key)), unsafe.SliceData(value), uint32(len(value)), cas)
}

// SetProperty writes a host property; path is serialized as for Property.
func SetProperty(path, value []byte) uint32 {
	return proxySetProperty(unsafe.SliceData(path), uint32(len(path)), unsafe.SliceData(value), uint32(len(value)))
}
