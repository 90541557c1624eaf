//go:build !wasip1

package plugin

import (
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm"

	"github.com/tracebridge/tracebridge/engine"
)

// Natively (proxytest) the plugin reaches the host through the SDK, which is
// what the emulator implements; the module uses host_wasip1.go instead.

// requestHeaders appends the request's header lines to dst.
func requestHeaders(dst engine.HeaderList) (engine.HeaderList, bool) {
	pairs, err := proxywasm.GetHttpRequestHeaders()
	if err != nil {
		return dst, false
	}
	for _, kv := range pairs {
		dst = append(dst, engine.HeaderPair{Name: engine.LowerName(kv[0]), Value: kv[1]})
	}
	return dst, true
}

// defineCounter defines a counter and returns its id.
func defineCounter(name string) (id uint32, ok bool) {
	return uint32(proxywasm.DefineCounterMetric(name)), true
}

// incrementCounter adds n to a counter.
func incrementCounter(id uint32, n int64) { proxywasm.MetricCounter(id).Increment(uint64(n)) }

// getProperty reads a host property.
func getProperty(path *propertyPath) ([]byte, error) { return proxywasm.GetProperty(path.segments) }

// responseHeader reads one response header.
func responseHeader(name string) (string, error) { return proxywasm.GetHttpResponseHeader(name) }

// responseHeaderLines appends the response's header lines to dst.
func responseHeaderLines(dst engine.HeaderList) (engine.HeaderList, bool) {
	pairs, err := proxywasm.GetHttpResponseHeaders()
	if err != nil {
		return dst, false
	}
	for _, kv := range pairs {
		dst = append(dst, engine.HeaderPair{Name: engine.LowerName(kv[0]), Value: kv[1]})
	}
	return dst, true
}

// removeResponseHeader removes a response header.
func removeResponseHeader(name string) error { return proxywasm.RemoveHttpResponseHeader(name) }

// getSharedData reads a shared-data value and its cas.
func getSharedData(key string) ([]byte, uint32, error) { return proxywasm.GetSharedData(key) }

// replaceRequestHeader sets a request header, replacing any value.
func replaceRequestHeader(name, value string) error {
	return proxywasm.ReplaceHttpRequestHeader(name, value)
}

// removeRequestHeader removes a request header.
func removeRequestHeader(name string) error { return proxywasm.RemoveHttpRequestHeader(name) }

// replaceResponseHeader sets a response header, replacing any value.
func replaceResponseHeader(name, value string) error {
	return proxywasm.ReplaceHttpResponseHeader(name, value)
}

// setSharedData writes a shared-data value under cas (0: unconditionally).
func setSharedData(key string, value []byte, cas uint32) error {
	return proxywasm.SetSharedData(key, value, cas)
}

// setFilterState sets the one-segment host property name.
func setFilterState(name, value string) error {
	return proxywasm.SetProperty([]string{name}, []byte(value))
}
