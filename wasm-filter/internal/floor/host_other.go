//go:build !wasip1

package main

import (
	"encoding/binary"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm"
)

// Natively (proxytest) the floor reaches the host through the SDK.

func traceHeaders() (rid, tp string, ok bool) {
	pairs, err := proxywasm.GetHttpRequestHeaders()
	if err != nil {
		return "", "", false
	}
	for _, kv := range pairs {
		switch kv[0] {
		case "x-request-id":
			rid = kv[1]
		case "traceparent":
			tp = kv[1]
		}
	}
	return rid, tp, true
}

func direction() int {
	v, err := proxywasm.GetProperty([]string{"xds", "listener_direction"})
	if err != nil || len(v) != 8 {
		return 0
	}
	return int(binary.LittleEndian.Uint64(v))
}

func getSharedData(key string) (v []byte, cas uint32, found bool) {
	v, cas, err := proxywasm.GetSharedData(key)
	return v, cas, err == nil
}

func setSharedData(key string, v []byte, cas uint32) bool {
	return proxywasm.SetSharedData(key, v, cas) == nil
}

func replaceRequestHeader(name, value string) bool {
	return proxywasm.ReplaceHttpRequestHeader(name, value) == nil
}

func defineCounter(name string) (uint32, bool) {
	return uint32(proxywasm.DefineCounterMetric(name)), true
}

func incrementCounter(id uint32) { proxywasm.MetricCounter(id).Increment(1) }
