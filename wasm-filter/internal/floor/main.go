// Command floor is the least a proxy-wasm module built with the standard Go
// compiler, this SDK and our bridge (wasm-filter/abi) can do to record and
// restore a trace context by x-request-id: the essential host calls of the
// tracebridge module's two paths and nothing else (no engine, no policy).
// BenchmarkGuestTime runs it beside the tracebridge module to tell how much of
// a request's guest time any such plugin pays and how much is the engine's.
//
// Inbound (xds.listener_direction 1) it reads the request's header map, finds
// x-request-id and traceparent, reads and writes one shared-data slot (key
// "tracebridge/c/<slot>", value: x-request-id length, x-request-id,
// traceparent) and increments the recorded-inbound counter. Outbound (2) it
// reads the header map, finds x-request-id, reads the slot and, when it holds
// that id, sets traceparent and increments the restored-outbound counter.
// Built like the no-op module:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o bin/floor.wasm ./wasm-filter/internal/floor
package main

import (
	"encoding/binary"
	"unsafe"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

// Counter names as the tracebridge module defines them (plugin.CounterName;
// the benchmark reads the restored one back, so a drift fails it).
const (
	recordedInbound   = "decision=.=recorded;.;direction=.=inbound;.;tracebridge_decisions_total"
	restoredOutbound  = "decision=.=restored;.;direction=.=outbound;.;tracebridge_decisions_total"
	slotKeyPrefix     = "tracebridge/c/"
	slots             = 4096 // the default policy's correlation capacity
	inbound, outbound = 1, 2 // xds.listener_direction values
)

type vmContext struct{ types.DefaultVMContext }

func (*vmContext) NewPluginContext(uint32) types.PluginContext { return &pluginContext{} }

type pluginContext struct {
	types.DefaultPluginContext
	recorded, restored uint32 // metric ids
	key, val           []byte // reused buffers
	// The floor keeps no per-stream state, so every stream shares one
	// context: no allocation per request.
	http httpContext
}

func (p *pluginContext) OnPluginStart(int) types.OnPluginStartStatus {
	var ok1, ok2 bool
	p.recorded, ok1 = defineCounter(recordedInbound)
	p.restored, ok2 = defineCounter(restoredOutbound)
	if !ok1 || !ok2 {
		proxywasm.LogCritical("floor: the host refused to define a counter")
		return types.OnPluginStartStatusFailed
	}
	return types.OnPluginStartStatusOK
}

func (p *pluginContext) NewHttpContext(uint32) types.HttpContext {
	p.http.p = p
	return &p.http
}

type httpContext struct {
	types.DefaultHttpContext
	p *pluginContext
}

func (h *httpContext) OnHttpRequestHeaders(int, bool) types.Action {
	p := h.p
	rid, tp, ok := traceHeaders()
	if !ok || rid == "" || len(rid) > 255 {
		return types.ActionContinue
	}
	dir := direction()
	key := p.slotKey(rid)
	v, cas, found := getSharedData(key)
	switch dir {
	case inbound:
		if tp == "" {
			return types.ActionContinue
		}
		p.val = append(append(append(p.val[:0], byte(len(rid))), rid...), tp...)
		if setSharedData(key, p.val, cas) {
			incrementCounter(p.recorded)
		}
	case outbound:
		if !found || len(v) < 1 || len(v) < 1+int(v[0]) || string(v[1:1+int(v[0])]) != rid {
			return types.ActionContinue
		}
		// v is valid until the next host call; the host copies the value it sets.
		p.val = append(p.val[:0], v[1+int(v[0]):]...)
		if replaceRequestHeader("traceparent", unsafe.String(unsafe.SliceData(p.val), len(p.val))) {
			incrementCounter(p.restored)
		}
	}
	return types.ActionContinue
}

// slotKey returns the shared-data key for rid: one of slots slots by its
// FNV-1a hash, as the tracebridge store's first candidate.
func (p *pluginContext) slotKey(rid string) string {
	const offset64, prime64 = 14695981039346656037, 1099511628211
	v := uint64(offset64)
	for i := 0; i < len(rid); i++ {
		v ^= uint64(rid[i])
		v *= prime64
	}
	p.key = append(p.key[:0], slotKeyPrefix...)
	p.key = appendUint(p.key, v%slots)
	return unsafe.String(unsafe.SliceData(p.key), len(p.key)) // the host copies keys it keeps
}

// findTraceHeaders finds x-request-id and traceparent in a serialized header
// map (ABI 0.2.x encoding, as plugin/headers.go decodes it: a little-endian
// u32 pair count, u32 name and value lengths per pair, then each name and
// value followed by a NUL byte). The strings alias buf; ok is false for a
// malformed map. An empty buffer is an empty map.
//
// It deliberately does not use abi.ParseHeaderMap, the plugin's decoder:
// that one checks the NUL terminators and stores every pair, which made
// this module measurably slower (BenchmarkGuestTime), and the floor
// measures the least a plugin can do.
func findTraceHeaders(buf []byte) (rid, tp string, ok bool) {
	if len(buf) == 0 {
		return "", "", true
	}
	if len(buf) < 4 {
		return "", "", false
	}
	n := uint64(binary.LittleEndian.Uint32(buf))
	if n > uint64(len(buf)-4)/8 {
		return "", "", false
	}
	sizes, data := buf[4:4+8*n], buf[4+8*n:]
	for i := uint64(0); i < n; i++ {
		nl := uint64(binary.LittleEndian.Uint32(sizes[8*i:]))
		vl := uint64(binary.LittleEndian.Uint32(sizes[8*i+4:]))
		if nl+vl+2 > uint64(len(data)) {
			return "", "", false
		}
		name := unsafe.String(unsafe.SliceData(data), nl)
		value := unsafe.String(unsafe.SliceData(data[nl+1:]), vl)
		switch name {
		case "x-request-id":
			rid = value
		case "traceparent":
			tp = value
		}
		data = data[nl+vl+2:]
	}
	return rid, tp, true
}

func appendUint(dst []byte, n uint64) []byte {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(dst, b[i:]...)
}

func init() { proxywasm.SetVMContext(&vmContext{}) }

func main() {}
