//go:build wasip1

package plugin

import (
	"errors"
	"strconv"
	"unsafe"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/tracebridge/tracebridge/engine"
	"github.com/tracebridge/tracebridge/wasm-filter/abi"
)

// In the module the hot path goes straight to the bridge: the SDK's
// wrappers copy every header into new strings and link fmt (abi/direct_wasip1.go).

const (
	mapTypeHttpRequestHeaders = 0 // proxy-wasm ABI MapType
	metricTypeCounter         = 0 // proxy-wasm ABI MetricType
)

// requestHeaders appends the request's header lines to dst.
func requestHeaders(dst engine.HeaderList) (engine.HeaderList, bool) {
	buf, st := abi.HeaderMapPairs(mapTypeHttpRequestHeaders)
	if st != 0 {
		return dst, false
	}
	return parseHeaderPairs(dst, buf)
}

// defineCounter defines a counter and returns its id; ok is false if the
// host refused it.
func defineCounter(name string) (id uint32, ok bool) {
	id, st := abi.DefineMetric(metricTypeCounter, name)
	return id, st == 0
}

// incrementCounter adds n to a counter; a failure is ignored (a lost count
// must not fail a request).
func incrementCounter(id uint32, n int64) { abi.IncrementMetric(id, n) }

const mapTypeHttpResponseHeaders = 2 // proxy-wasm ABI MapType

// getProperty reads a host property; the value is valid until the next host
// call.
func getProperty(path *propertyPath) ([]byte, error) {
	v, st := abi.Property(path.wire)
	return v, statusError(st)
}

// responseHeader reads one response header.
func responseHeader(name string) (string, error) {
	v, st := abi.HeaderMapValue(mapTypeHttpResponseHeaders, name)
	return string(v), statusError(st)
}

// responseHeaderLines appends the response's header lines to dst.
func responseHeaderLines(dst engine.HeaderList) (engine.HeaderList, bool) {
	buf, st := abi.HeaderMapPairs(mapTypeHttpResponseHeaders)
	if st != 0 {
		return dst, false
	}
	return parseHeaderPairs(dst, buf)
}

// removeResponseHeader removes a response header.
func removeResponseHeader(name string) error {
	return statusError(abi.RemoveHeaderMapValue(mapTypeHttpResponseHeaders, name))
}

// getSharedData reads a shared-data value and its cas; the value is valid
// until the next host call.
func getSharedData(key string) ([]byte, uint32, error) {
	v, cas, st := abi.SharedData(key)
	return v, cas, statusError(st)
}

// replaceRequestHeader sets a request header, replacing any value.
func replaceRequestHeader(name, value string) error {
	return statusError(abi.ReplaceHeaderMapValue(mapTypeHttpRequestHeaders, name, value))
}

// removeRequestHeader removes a request header.
func removeRequestHeader(name string) error {
	return statusError(abi.RemoveHeaderMapValue(mapTypeHttpRequestHeaders, name))
}

// replaceResponseHeader sets a response header, replacing any value.
func replaceResponseHeader(name, value string) error {
	return statusError(abi.ReplaceHeaderMapValue(mapTypeHttpResponseHeaders, name, value))
}

// setSharedData writes a shared-data value under cas (0: unconditionally).
func setSharedData(key string, value []byte, cas uint32) error {
	return statusError(abi.SetSharedData(key, value, cas))
}

// setFilterState sets the one-segment host property name (Envoy keeps it as
// filter state "wasm.<name>").
func setFilterState(name, value string) error {
	return statusError(abi.SetProperty(unsafe.Slice(unsafe.StringData(name), len(name)), unsafe.Slice(unsafe.StringData(value), len(value))))
}

// statusError maps a proxy-wasm status to the SDK's error values, which the
// rest of the plugin tests with errors.Is (proxywasm/internal abi_enums.go).
func statusError(st uint32) error {
	switch st {
	case 0:
		return nil
	case 1:
		return types.ErrorStatusNotFound
	case 2:
		return types.ErrorStatusBadArgument
	case 7:
		return types.ErrorStatusEmpty
	case 8:
		return types.ErrorStatusCasMismatch
	case 10:
		return types.ErrorInternalFailure
	case 12:
		return types.ErrorUnimplemented
	}
	return errors.New("proxy-wasm status " + strconv.FormatUint(uint64(st), 10))
}
