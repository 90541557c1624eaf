package wasmhost

import (
	"context"
	"fmt"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// proxy-wasm status codes (proxy-wasm-spec abi-versions/v0.2.1).
const (
	StatusOK            uint32 = 0
	StatusNotFound      uint32 = 1
	StatusBadArgument   uint32 = 2
	StatusCasMismatch   uint32 = 8
	StatusUnimplemented uint32 = 12
)

// Handler answers the proxy-wasm ABI 0.2.1 host calls ("env" module) of one
// instance: the host decodes the guest's arguments, copying every byte range
// out of guest memory first (the handler may keep them), and hands results
// back through the guest's allocator. Header maps travel in their
// serialized form (wasm-filter/abi ParseHeaderMap and AppendHeaderMap read
// and write it). Each method returns a proxy-wasm status.
type Handler interface {
	Log(level uint32, msg []byte) uint32
	GetProperty(path []byte) ([]byte, uint32)
	SetProperty(path, value []byte) uint32
	SendLocalResponse(status uint32, details, body, headers []byte, grpcStatus int32) uint32
	GetSharedData(key []byte) (value []byte, cas uint32, status uint32)
	SetSharedData(key, value []byte, cas uint32) uint32
	RegisterSharedQueue(name []byte) (uint32, uint32)
	ResolveSharedQueue(vmID, name []byte) (uint32, uint32)
	DequeueSharedQueue(id uint32) ([]byte, uint32)
	EnqueueSharedQueue(id uint32, value []byte) uint32
	GetHeaderMapValue(mapType uint32, key []byte) ([]byte, uint32)
	AddHeaderMapValue(mapType uint32, key, value []byte) uint32
	ReplaceHeaderMapValue(mapType uint32, key, value []byte) uint32
	RemoveHeaderMapValue(mapType uint32, key []byte) uint32
	GetHeaderMapPairs(mapType uint32) ([]byte, uint32)
	SetHeaderMapPairs(mapType uint32, pairs []byte) uint32
	GetBufferBytes(bufferType, start, maxSize uint32) ([]byte, uint32)
	SetBufferBytes(bufferType, start, maxSize uint32, data []byte) uint32
	ContinueStream(streamType uint32) uint32
	CloseStream(streamType uint32) uint32
	HttpCall(upstream, headers, body, trailers []byte, timeoutMillis uint32) (calloutID uint32, status uint32)
	CallForeignFunction(name, param []byte) ([]byte, uint32)
	SetTickPeriodMilliseconds(period uint32) uint32
	SetEffectiveContext(contextID uint32) uint32
	Done() uint32
	DefineMetric(metricType uint32, name []byte) (uint32, uint32)
	IncrementMetric(id uint32, offset int64) uint32
	RecordMetric(id uint32, value uint64) uint32
	GetMetric(id uint32) (uint64, uint32)
}

type envFunc struct {
	name    string
	params  []api.ValueType
	results []api.ValueType
	fn      func(ctx context.Context, in *Instance, h Handler, m api.Module, s []uint64) uint32
}

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

func ps(t ...api.ValueType) []api.ValueType { return t }

var status = ps(i32)

// envFuncs is the host-function table: the proxy-wasm functions a Go SDK
// module imports, with the ABI 0.2.1 signatures of proxy-wasm-cpp-host
// (include/proxy-wasm/exports.h). cpp-host registers a few more (cppHostEnv);
// a module importing one of those is refused at load, naming it.
var envFuncs = []envFunc{
	{"proxy_log", ps(i32, i32, i32), status, func(_ context.Context, _ *Instance, h Handler, m api.Module, s []uint64) uint32 {
		return h.Log(u32(s[0]), read(m, s[1], s[2]))
	}},
	{"proxy_get_property", ps(i32, i32, i32, i32), status, func(ctx context.Context, in *Instance, h Handler, m api.Module, s []uint64) uint32 {
		v, st := h.GetProperty(read(m, s[0], s[1]))
		return in.give(ctx, m, st, v, s[2], s[3])
	}},
	{"proxy_set_property", ps(i32, i32, i32, i32), status, func(_ context.Context, _ *Instance, h Handler, m api.Module, s []uint64) uint32 {
		return h.SetProperty(read(m, s[0], s[1]), read(m, s[2], s[3]))
	}},
	{"proxy_send_local_response", ps(i32, i32, i32, i32, i32, i32, i32, i32), status, func(_ context.Context, _ *Instance, h Handler, m api.Module, s []uint64) uint32 {
		return h.SendLocalResponse(u32(s[0]), read(m, s[1], s[2]), read(m, s[3], s[4]), read(m, s[5], s[6]), int32(u32(s[7])))
	}},
	{"proxy_get_shared_data", ps(i32, i32, i32, i32, i32), status, func(ctx context.Context, in *Instance, h Handler, m api.Module, s []uint64) uint32 {
		v, cas, st := h.GetSharedData(read(m, s[0], s[1]))
		if st == StatusOK {
			writeU32(m, s[4], cas)
		}
		return in.give(ctx, m, st, v, s[2], s[3])
	}},
	{"proxy_set_shared_data", ps(i32, i32, i32, i32, i32), status, func(_ context.Context, _ *Instance, h Handler, m api.Module, s []uint64) uint32 {
		return h.SetSharedData(read(m, s[0], s[1]), read(m, s[2], s[3]), u32(s[4]))
	}},
	{"proxy_register_shared_queue", ps(i32, i32, i32), status, func(_ context.Context, _ *Instance, h Handler, m api.Module, s []uint64) uint32 {
		id, st := h.RegisterSharedQueue(read(m, s[0], s[1]))
		if st == StatusOK {
			writeU32(m, s[2], id)
		}
		return st
	}},
	{"proxy_resolve_shared_queue", ps(i32, i32, i32, i32, i32), status, func(_ context.Context, _ *Instance, h Handler, m api.Module, s []uint64) uint32 {
		id, st := h.ResolveSharedQueue(read(m, s[0], s[1]), read(m, s[2], s[3]))
		if st == StatusOK {
			writeU32(m, s[4], id)
		}
		return st
	}},
	{"proxy_dequeue_shared_queue", ps(i32, i32, i32), status, func(ctx context.Context, in *Instance, h Handler, m api.Module, s []uint64) uint32 {
		v, st := h.DequeueSharedQueue(u32(s[0]))
		return in.give(ctx, m, st, v, s[1], s[2])
	}},
	{"proxy_enqueue_shared_queue", ps(i32, i32, i32), status, func(_ context.Context, _ *Instance, h Handler, m api.Module, s []uint64) uint32 {
		return h.EnqueueSharedQueue(u32(s[0]), read(m, s[1], s[2]))
	}},
	{"proxy_get_header_map_value", ps(i32, i32, i32, i32, i32), status, func(ctx context.Context, in *Instance, h Handler, m api.Module, s []uint64) uint32 {
		v, st := h.GetHeaderMapValue(u32(s[0]), read(m, s[1], s[2]))
		return in.give(ctx, m, st, v, s[3], s[4])
	}},
	{"proxy_add_header_map_value", ps(i32, i32, i32, i32, i32), status, func(_ context.Context, _ *Instance, h Handler, m api.Module, s []uint64) uint32 {
		return h.AddHeaderMapValue(u32(s[0]), read(m, s[1], s[2]), read(m, s[3], s[4]))
	}},
	{"proxy_replace_header_map_value", ps(i32, i32, i32, i32, i32), status, func(_ context.Context, _ *Instance, h Handler, m api.Module, s []uint64) uint32 {
		return h.ReplaceHeaderMapValue(u32(s[0]), read(m, s[1], s[2]), read(m, s[3], s[4]))
	}},
	{"proxy_remove_header_map_value", ps(i32, i32, i32), status, func(_ context.Context, _ *Instance, h Handler, m api.Module, s []uint64) uint32 {
		return h.RemoveHeaderMapValue(u32(s[0]), read(m, s[1], s[2]))
	}},
	{"proxy_get_header_map_pairs", ps(i32, i32, i32), status, func(ctx context.Context, in *Instance, h Handler, m api.Module, s []uint64) uint32 {
		v, st := h.GetHeaderMapPairs(u32(s[0]))
		return in.give(ctx, m, st, v, s[1], s[2])
	}},
	{"proxy_set_header_map_pairs", ps(i32, i32, i32), status, func(_ context.Context, _ *Instance, h Handler, m api.Module, s []uint64) uint32 {
		return h.SetHeaderMapPairs(u32(s[0]), read(m, s[1], s[2]))
	}},
	{"proxy_get_buffer_bytes", ps(i32, i32, i32, i32, i32), status, func(ctx context.Context, in *Instance, h Handler, m api.Module, s []uint64) uint32 {
		v, st := h.GetBufferBytes(u32(s[0]), u32(s[1]), u32(s[2]))
		return in.give(ctx, m, st, v, s[3], s[4])
	}},
	{"proxy_set_buffer_bytes", ps(i32, i32, i32, i32, i32), status, func(_ context.Context, _ *Instance, h Handler, m api.Module, s []uint64) uint32 {
		return h.SetBufferBytes(u32(s[0]), u32(s[1]), u32(s[2]), read(m, s[3], s[4]))
	}},
	{"proxy_continue_stream", ps(i32), status, func(_ context.Context, _ *Instance, h Handler, _ api.Module, s []uint64) uint32 {
		return h.ContinueStream(u32(s[0]))
	}},
	{"proxy_close_stream", ps(i32), status, func(_ context.Context, _ *Instance, h Handler, _ api.Module, s []uint64) uint32 {
		return h.CloseStream(u32(s[0]))
	}},
	{"proxy_http_call", ps(i32, i32, i32, i32, i32, i32, i32, i32, i32, i32), status, func(_ context.Context, _ *Instance, h Handler, m api.Module, s []uint64) uint32 {
		id, st := h.HttpCall(read(m, s[0], s[1]), read(m, s[2], s[3]), read(m, s[4], s[5]), read(m, s[6], s[7]), u32(s[8]))
		if st == StatusOK {
			writeU32(m, s[9], id)
		}
		return st
	}},
	{"proxy_call_foreign_function", ps(i32, i32, i32, i32, i32, i32), status, func(ctx context.Context, in *Instance, h Handler, m api.Module, s []uint64) uint32 {
		v, st := h.CallForeignFunction(read(m, s[0], s[1]), read(m, s[2], s[3]))
		return in.give(ctx, m, st, v, s[4], s[5])
	}},
	{"proxy_set_tick_period_milliseconds", ps(i32), status, func(_ context.Context, _ *Instance, h Handler, _ api.Module, s []uint64) uint32 {
		return h.SetTickPeriodMilliseconds(u32(s[0]))
	}},
	{"proxy_set_effective_context", ps(i32), status, func(_ context.Context, _ *Instance, h Handler, _ api.Module, s []uint64) uint32 {
		return h.SetEffectiveContext(u32(s[0]))
	}},
	{"proxy_done", ps(), status, func(_ context.Context, _ *Instance, h Handler, _ api.Module, _ []uint64) uint32 {
		return h.Done()
	}},
	{"proxy_define_metric", ps(i32, i32, i32, i32), status, func(_ context.Context, _ *Instance, h Handler, m api.Module, s []uint64) uint32 {
		id, st := h.DefineMetric(u32(s[0]), read(m, s[1], s[2]))
		if st == StatusOK {
			writeU32(m, s[3], id)
		}
		return st
	}},
	{"proxy_increment_metric", ps(i32, i64), status, func(_ context.Context, _ *Instance, h Handler, _ api.Module, s []uint64) uint32 {
		return h.IncrementMetric(u32(s[0]), int64(s[1]))
	}},
	{"proxy_record_metric", ps(i32, i64), status, func(_ context.Context, _ *Instance, h Handler, _ api.Module, s []uint64) uint32 {
		return h.RecordMetric(u32(s[0]), s[1])
	}},
	{"proxy_get_metric", ps(i32, i32), status, func(_ context.Context, _ *Instance, h Handler, m api.Module, s []uint64) uint32 {
		v, st := h.GetMetric(u32(s[0]))
		if st == StatusOK && !m.Memory().WriteUint64Le(u32(s[1]), v) {
			panic(errOutOfRange(s[1], 8))
		}
		return st
	}},
}

func envFuncByName(name string) *envFunc {
	for i := range envFuncs {
		if envFuncs[i].name == name {
			return &envFuncs[i]
		}
	}
	return nil
}

// instantiateEnv adds the env module to r. A call from outside an instance
// (no Instance in its context) answers BadArgument.
func instantiateEnv(ctx context.Context, r wazero.Runtime) error {
	b := r.NewHostModuleBuilder("env")
	for _, f := range envFuncs {
		fn, qual := f.fn, "env."+f.name
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, s []uint64) {
				in := instanceOf(ctx)
				if in == nil || in.handler == nil {
					s[0] = uint64(StatusBadArgument)
					return
				}
				checkAllowed(in, qual)
				if !in.timed {
					s[0] = uint64(fn(ctx, in, in.handler, m, s))
					return
				}
				start := time.Now()
				s[0] = uint64(fn(ctx, in, in.handler, m, s))
				in.timing.Host += time.Since(start)
				in.timing.HostCalls++
			}), f.params, f.results).
			Export(f.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

func u32(v uint64) uint32 { return uint32(v) }

func errOutOfRange(ptr, size uint64) error {
	return fmt.Errorf("wasmhost: guest memory [%#x, +%d) out of range", uint32(ptr), uint32(size))
}

// read copies size bytes at ptr out of guest memory: the guest reuses its
// memory, and handlers keep what they are given (header values, log lines,
// metric names). A range outside memory traps the guest call.
func read(m api.Module, ptr, size uint64) []byte {
	if u32(size) == 0 {
		return nil
	}
	b, ok := m.Memory().Read(u32(ptr), u32(size))
	if !ok {
		panic(errOutOfRange(ptr, size))
	}
	return append([]byte(nil), b...)
}

func writeU32(m api.Module, ptr uint64, v uint32) {
	if !m.Memory().WriteUint32Le(u32(ptr), v) {
		panic(errOutOfRange(ptr, 4))
	}
}

// HostFunction returns the signature of the env function name in the
// host-function table; ok is false for a function the table lacks.
func HostFunction(name string) (params, results []api.ValueType, ok bool) {
	f := envFuncByName(name)
	if f == nil {
		return nil, nil, false
	}
	return f.params, f.results, true
}
