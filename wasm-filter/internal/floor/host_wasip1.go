//go:build wasip1

package main

import (
	"encoding/binary"

	"github.com/tracebridge/tracebridge/wasm-filter/abi"
)

// In the module the floor calls the bridge directly, as the tracebridge
// plugin does on its hot path (wasm-filter/plugin/host_wasip1.go).

const mapTypeHttpRequestHeaders = 0 // proxy-wasm ABI MapType

var listenerDirection = []byte("xds\x00listener_direction")

// traceHeaders reads the request's header map and returns x-request-id and
// traceparent, aliasing the host's buffer.
func traceHeaders() (rid, tp string, ok bool) {
	buf, st := abi.HeaderMapPairs(mapTypeHttpRequestHeaders)
	if st != 0 {
		return "", "", false
	}
	return findTraceHeaders(buf)
}

func direction() int {
	v, st := abi.Property(listenerDirection)
	if st != 0 || len(v) != 8 {
		return 0
	}
	return int(binary.LittleEndian.Uint64(v))
}

// getSharedData returns a value valid until the next host call.
func getSharedData(key string) (v []byte, cas uint32, found bool) {
	v, cas, st := abi.SharedData(key)
	return v, cas, st == 0
}

func setSharedData(key string, v []byte, cas uint32) bool { return abi.SetSharedData(key, v, cas) == 0 }

func replaceRequestHeader(name, value string) bool {
	return abi.ReplaceHeaderMapValue(mapTypeHttpRequestHeaders, name, value) == 0
}

func defineCounter(name string) (uint32, bool) {
	id, st := abi.DefineMetric(0, name) // 0: counter
	return id, st == 0
}

func incrementCounter(id uint32) { abi.IncrementMetric(id, 1) }
