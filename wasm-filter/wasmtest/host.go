package wasmtest

import (
	"context"
	"fmt"
	"time"
	"unsafe"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// The "env" host module: proxy-wasm host functions for the compiled module,
// each forwarding to the SDK's host-call entry point, i.e. to the host
// installed by proxytest.NewHostEmulator.
//
// proxytest has an equivalent module inside NewWasmVMContext, but it cannot be
// used as is: NewWasmVMContext compiles on every call with no cache and no
// random source, runs _start (the module is a reactor) and hands the emulator
// pointers into guest memory, which the emulator keeps (header values, log
// lines, metric names) while the guest reuses that memory. This module copies
// every byte range out of guest memory before the emulator sees it, and uses
// wazero's reflection-free GoModuleFunc.

type hostFunc struct {
	name    string
	params  []api.ValueType
	results []api.ValueType
	fn      func(ctx context.Context, m api.Module, s []uint64) uint32
}

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

func sig(params ...api.ValueType) []api.ValueType { return params }

var status = []api.ValueType{i32}

// hostFuncs lists the proxy-wasm host functions the SDK may import, with the
// ABI 0.2.1 signatures Envoy's proxy-wasm-cpp-host uses.
var hostFuncs = []hostFunc{
	{"proxy_log", sig(i32, i32, i32), status, func(_ context.Context, m api.Module, s []uint64) uint32 {
		return sdkLog(u32(s[0]), in(m, s[1], s[2]), int(u32(s[2])))
	}},
	{"proxy_set_property", sig(i32, i32, i32, i32), status, func(_ context.Context, m api.Module, s []uint64) uint32 {
		return sdkSetProperty(in(m, s[0], s[1]), int(u32(s[1])), in(m, s[2], s[3]), int(u32(s[3])))
	}},
	{"proxy_get_property", sig(i32, i32, i32, i32), status, func(ctx context.Context, m api.Module, s []uint64) uint32 {
		var p *byte
		var n int
		st := sdkGetProperty(in(m, s[0], s[1]), int(u32(s[1])), &p, &n)
		return out(ctx, m, st, p, n, s[2], s[3])
	}},
	{"proxy_send_local_response", sig(i32, i32, i32, i32, i32, i32, i32, i32), status, func(_ context.Context, m api.Module, s []uint64) uint32 {
		return sdkSendLocalResponse(u32(s[0]), in(m, s[1], s[2]), int(u32(s[2])), in(m, s[3], s[4]), int(u32(s[4])),
			in(m, s[5], s[6]), int(u32(s[6])), int32(u32(s[7])))
	}},
	{"proxy_get_shared_data", sig(i32, i32, i32, i32, i32), status, func(ctx context.Context, m api.Module, s []uint64) uint32 {
		var p *byte
		var n int
		var cas uint32
		st := sdkGetSharedData(in(m, s[0], s[1]), int(u32(s[1])), &p, &n, &cas)
		if st == 0 {
			writeU32(m, s[4], cas)
		}
		return out(ctx, m, st, p, n, s[2], s[3])
	}},
	{"proxy_set_shared_data", sig(i32, i32, i32, i32, i32), status, func(_ context.Context, m api.Module, s []uint64) uint32 {
		return sdkSetSharedData(in(m, s[0], s[1]), int(u32(s[1])), in(m, s[2], s[3]), int(u32(s[3])), u32(s[4]))
	}},
	{"proxy_register_shared_queue", sig(i32, i32, i32), status, func(_ context.Context, m api.Module, s []uint64) uint32 {
		var id uint32
		st := sdkRegisterSharedQueue(in(m, s[0], s[1]), int(u32(s[1])), &id)
		writeU32(m, s[2], id)
		return st
	}},
	{"proxy_resolve_shared_queue", sig(i32, i32, i32, i32, i32), status, func(_ context.Context, m api.Module, s []uint64) uint32 {
		var id uint32
		st := sdkResolveSharedQueue(in(m, s[0], s[1]), int(u32(s[1])), in(m, s[2], s[3]), int(u32(s[3])), &id)
		writeU32(m, s[4], id)
		return st
	}},
	{"proxy_dequeue_shared_queue", sig(i32, i32, i32), status, func(ctx context.Context, m api.Module, s []uint64) uint32 {
		var p *byte
		var n int
		st := sdkDequeueSharedQueue(u32(s[0]), &p, &n)
		return out(ctx, m, st, p, n, s[1], s[2])
	}},
	{"proxy_enqueue_shared_queue", sig(i32, i32, i32), status, func(_ context.Context, m api.Module, s []uint64) uint32 {
		return sdkEnqueueSharedQueue(u32(s[0]), in(m, s[1], s[2]), int(u32(s[2])))
	}},
	{"proxy_get_header_map_value", sig(i32, i32, i32, i32, i32), status, func(ctx context.Context, m api.Module, s []uint64) uint32 {
		var p *byte
		var n int
		st := sdkGetHeaderMapValue(u32(s[0]), in(m, s[1], s[2]), int(u32(s[2])), &p, &n)
		return out(ctx, m, st, p, n, s[3], s[4])
	}},
	{"proxy_add_header_map_value", sig(i32, i32, i32, i32, i32), status, func(_ context.Context, m api.Module, s []uint64) uint32 {
		return sdkAddHeaderMapValue(u32(s[0]), in(m, s[1], s[2]), int(u32(s[2])), in(m, s[3], s[4]), int(u32(s[4])))
	}},
	{"proxy_replace_header_map_value", sig(i32, i32, i32, i32, i32), status, func(_ context.Context, m api.Module, s []uint64) uint32 {
		return sdkReplaceHeaderMapValue(u32(s[0]), in(m, s[1], s[2]), int(u32(s[2])), in(m, s[3], s[4]), int(u32(s[4])))
	}},
	{"proxy_remove_header_map_value", sig(i32, i32, i32), status, func(_ context.Context, m api.Module, s []uint64) uint32 {
		return sdkRemoveHeaderMapValue(u32(s[0]), in(m, s[1], s[2]), int(u32(s[2])))
	}},
	{"proxy_get_header_map_pairs", sig(i32, i32, i32), status, func(ctx context.Context, m api.Module, s []uint64) uint32 {
		var p *byte
		var n int
		st := sdkGetHeaderMapPairs(u32(s[0]), &p, &n)
		return out(ctx, m, st, p, n, s[1], s[2])
	}},
	{"proxy_set_header_map_pairs", sig(i32, i32, i32), status, func(_ context.Context, m api.Module, s []uint64) uint32 {
		return sdkSetHeaderMapPairs(u32(s[0]), in(m, s[1], s[2]), int(u32(s[2])))
	}},
	{"proxy_get_buffer_bytes", sig(i32, i32, i32, i32, i32), status, func(ctx context.Context, m api.Module, s []uint64) uint32 {
		var p *byte
		var n int
		st := sdkGetBufferBytes(u32(s[0]), int(u32(s[1])), int(u32(s[2])), &p, &n)
		return out(ctx, m, st, p, n, s[3], s[4])
	}},
	{"proxy_set_buffer_bytes", sig(i32, i32, i32, i32, i32), status, func(_ context.Context, m api.Module, s []uint64) uint32 {
		return sdkSetBufferBytes(u32(s[0]), int(u32(s[1])), int(u32(s[2])), in(m, s[3], s[4]), int(u32(s[4])))
	}},
	{"proxy_continue_stream", sig(i32), status, func(_ context.Context, _ api.Module, s []uint64) uint32 {
		return sdkContinueStream(u32(s[0]))
	}},
	{"proxy_close_stream", sig(i32), status, func(_ context.Context, _ api.Module, s []uint64) uint32 {
		return sdkCloseStream(u32(s[0]))
	}},
	{"proxy_http_call", sig(i32, i32, i32, i32, i32, i32, i32, i32, i32, i32), status, func(ctx context.Context, m api.Module, s []uint64) uint32 {
		var id uint32
		st := sdkHttpCall(in(m, s[0], s[1]), int(u32(s[1])), in(m, s[2], s[3]), int(u32(s[3])),
			in(m, s[4], s[5]), int(u32(s[5])), in(m, s[6], s[7]), int(u32(s[7])), u32(s[8]), &id)
		writeU32(m, s[9], id)
		if st == 0 {
			// proxytest answers a callout through this hook, from outside any
			// guest call: deliver it to the guest as Envoy would.
			sdkRegisterHttpCallout(id, func(numHeaders, bodySize, numTrailers int) {
				fn := m.ExportedFunction("proxy_on_http_call_response")
				_, err := fn.Call(ctx, uint64(proxytest.PluginContextID), uint64(id),
					uint64(numHeaders), uint64(bodySize), uint64(numTrailers))
				if err != nil {
					panic(fmt.Errorf("wasmtest: proxy_on_http_call_response: %w", err))
				}
			})
		}
		return st
	}},
	{"proxy_call_foreign_function", sig(i32, i32, i32, i32, i32, i32), status, func(ctx context.Context, m api.Module, s []uint64) uint32 {
		var p *byte
		var n int
		st := sdkCallForeignFunction(in(m, s[0], s[1]), int(u32(s[1])), in(m, s[2], s[3]), int(u32(s[3])), &p, &n)
		return out(ctx, m, st, p, n, s[4], s[5])
	}},
	{"proxy_set_tick_period_milliseconds", sig(i32), status, func(_ context.Context, _ api.Module, s []uint64) uint32 {
		return sdkSetTickPeriodMilliseconds(u32(s[0]))
	}},
	{"proxy_set_effective_context", sig(i32), status, func(_ context.Context, _ api.Module, s []uint64) uint32 {
		return sdkSetEffectiveContext(u32(s[0]))
	}},
	{"proxy_done", sig(), status, func(context.Context, api.Module, []uint64) uint32 {
		return sdkDone()
	}},
	{"proxy_define_metric", sig(i32, i32, i32, i32), status, func(_ context.Context, m api.Module, s []uint64) uint32 {
		var id uint32
		st := sdkDefineMetric(u32(s[0]), in(m, s[1], s[2]), int(u32(s[2])), &id)
		writeU32(m, s[3], id)
		return st
	}},
	{"proxy_increment_metric", sig(i32, i64), status, func(_ context.Context, _ api.Module, s []uint64) uint32 {
		return sdkIncrementMetric(u32(s[0]), int64(s[1]))
	}},
	{"proxy_record_metric", sig(i32, i64), status, func(_ context.Context, _ api.Module, s []uint64) uint32 {
		return sdkRecordMetric(u32(s[0]), s[1])
	}},
	{"proxy_get_metric", sig(i32, i32), status, func(_ context.Context, m api.Module, s []uint64) uint32 {
		var v uint64
		st := sdkGetMetric(u32(s[0]), &v)
		if st == 0 && !m.Memory().WriteUint64Le(u32(s[1]), v) {
			panic(errOutOfRange(s[1], 8))
		}
		return st
	}},
}

// instantiateHost adds the env module to r.
func instantiateHost(ctx context.Context, r wazero.Runtime) error {
	b := r.NewHostModuleBuilder("env")
	for _, f := range hostFuncs {
		fn := f.fn
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, s []uint64) {
				vm := vmFrom(ctx)
				if vm == nil {
					s[0] = uint64(fn(ctx, m, s))
					return
				}
				start := time.Now()
				s[0] = uint64(fn(ctx, m, s))
				vm.timing.Host += time.Since(start)
				vm.timing.HostCalls++
			}), f.params, f.results).
			Export(f.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

func u32(v uint64) uint32 { return uint32(v) }

func errOutOfRange(ptr, size uint64) error {
	return fmt.Errorf("wasmtest: guest memory [%#x, +%d) out of range", uint32(ptr), uint32(size))
}

// in copies size bytes at ptr out of guest memory. A panic here becomes a trap
// of the guest call, as a bad pointer would in Envoy.
func in(m api.Module, ptr, size uint64) *byte {
	if u32(size) == 0 {
		return nil
	}
	b, ok := m.Memory().Read(u32(ptr), u32(size))
	if !ok {
		panic(errOutOfRange(ptr, size))
	}
	c := make([]byte, len(b))
	copy(c, b)
	return &c[0]
}

func writeU32(m api.Module, ptr uint64, v uint32) {
	if !m.Memory().WriteUint32Le(u32(ptr), v) {
		panic(errOutOfRange(ptr, 4))
	}
}

// out hands a host-owned result to the guest the way proxy-wasm hosts do: the
// guest allocates (proxy_on_memory_allocate), the host fills the buffer and
// writes its address and size into the guest's return slots. An empty result
// is reported as address 0, size 0 without allocating.
func out(ctx context.Context, m api.Module, st uint32, p *byte, n int, retPtr, retSize uint64) uint32 {
	if st != 0 {
		return st
	}
	var addr uint32
	if n > 0 {
		res, err := allocFunc(ctx, m).Call(ctx, uint64(n))
		if err != nil {
			panic(fmt.Errorf("wasmtest: proxy_on_memory_allocate(%d): %w", n, err))
		}
		addr = u32(res[0])
		if addr == 0 || !m.Memory().Write(addr, unsafe.Slice(p, n)) {
			panic(fmt.Errorf("wasmtest: proxy_on_memory_allocate(%d) returned unusable address %#x", n, addr))
		}
	}
	writeU32(m, retPtr, addr)
	writeU32(m, retSize, uint32(n))
	return st
}

// vmKey carries the calling VM in the context of every guest call (VM.call
// passes vm.ctx), so host functions reach per-instance state without a lookup
// table.
type vmKey struct{}

func vmFrom(ctx context.Context) *VM {
	vm, _ := ctx.Value(vmKey{}).(*VM)
	return vm
}

// allocFunc returns the instance's proxy_on_memory_allocate. Looking an
// export up builds a new function object, a measurable share of a request,
// so the VM keeps it.
func allocFunc(ctx context.Context, m api.Module) api.Function {
	if vm := vmFrom(ctx); vm != nil {
		return vm.alloc
	}
	return m.ExportedFunction("proxy_on_memory_allocate")
}
