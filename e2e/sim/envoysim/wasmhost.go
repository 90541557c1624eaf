package envoysim

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// This file is a proxy-wasm ABI 0.2.1 host for the compiled module, modelled
// on proxy-wasm-cpp-host (src/context.cc, src/exports.cc, src/shared_data.cc)
// and Envoy's extensions/common/wasm/context.cc: one VM per worker thread,
// one root context per plugin configuration, shared data and metrics per
// process, properties from the stream, proxy_set_property into filter state
// under "wasm.<path>".
//
// Not modelled: proxy_http_call, gRPC calls, shared queues and foreign
// functions answer Unimplemented; ticks are never delivered; bodies and
// trailers are not passed to the module (the plugin only uses headers).

// proxy-wasm status codes (proxy-wasm-spec abi-versions/v0.2.1).
const (
	wasmOK            = 0
	wasmNotFound      = 1
	wasmBadArgument   = 2
	wasmCasMismatch   = 8
	wasmUnimplemented = 12
)

// WasmModule is a compiled module in its own wazero runtime with this
// package's "env" host module and the WASI functions of a host profile.
type WasmModule struct {
	Path     string
	Profile  HostProfile
	spec     *profileSpec
	runtime  wazero.Runtime
	compiled wazero.CompiledModule
}

// Imports returns the module's imported functions as "module.name", sorted.
func (m *WasmModule) Imports() []string {
	var out []string
	for _, f := range m.compiled.ImportedFunctions() {
		mod, name, _ := f.Import()
		out = append(out, mod+"."+name)
	}
	sort.Strings(out)
	return out
}

// HostProfile selects the proxy-wasm-cpp-host version whose WASI and
// callback restrictions the host reproduces (ENVOY-FACTS 7; cpphost.go has
// the sources). There is no unrestricted profile: every module load goes
// through one of Envoy's.
type HostProfile string

// Host profiles.
const (
	// ProfileCppHost533 models proxy-wasm-cpp-host at 94091cd, PR 533
	// (Envoy 1.39+): 44 WASI functions, poll_oneoff succeeds at once with
	// 0 events and may be called during _initialize and malloc.
	ProfileCppHost533 HostProfile = "cpp-host-533"
	// ProfileCppHost427 models proxy-wasm-cpp-host at c4d7bb0, PR 427
	// (Envoy 1.33–1.38): 18 WASI functions, poll_oneoff and
	// fd_fdstat_set_flags return ENOSYS, and any host call outside the
	// start-up / allocation allowlists traps ("restricted_callback").
	ProfileCppHost427 HostProfile = "cpp-host-427"
	// ProfileCppHostPre427 models proxy-wasm-cpp-host at 63cb9c1, the
	// parent of PR 427 (Envoy up to 1.32): 15 WASI functions, no
	// sched_yield, poll_oneoff or fd_fdstat_set_flags, so a standard-Go
	// module fails to load. Not in HostProfiles.
	ProfileCppHostPre427 HostProfile = "cpp-host-pre-427"
	// DefaultHostProfile is the newest modelled host; an empty profile
	// means this one.
	DefaultHostProfile = ProfileCppHost533
)

var wasmModules struct {
	mu sync.Mutex
	m  map[string]*WasmModule
}

// LoadWasmModule compiles the module at path once per process and profile.
func LoadWasmModule(path string, cacheDir string, profile HostProfile) (*WasmModule, error) {
	return loadWasmModule(context.Background(), path, cacheDir, profile, true)
}

// LoadWasmModuleContext compiles the module at path with ctx, which may carry
// wazero experimental options such as a function listener factory (for
// tests that watch the guest runtime), and keeps no process-wide copy.
func LoadWasmModuleContext(ctx context.Context, path string, profile HostProfile) (*WasmModule, error) {
	return loadWasmModule(ctx, path, "", profile, false)
}

func loadWasmModule(ctx context.Context, path string, cacheDir string, profile HostProfile, share bool) (*WasmModule, error) {
	if profile == "" {
		profile = DefaultHostProfile
	}
	spec, err := profileOf(profile)
	if err != nil {
		return nil, err
	}
	key := path + "\x00" + string(profile)
	if share {
		wasmModules.mu.Lock()
		defer wasmModules.mu.Unlock()
		if m := wasmModules.m[key]; m != nil {
			return m, nil
		}
	}
	wasm, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg := wazero.NewRuntimeConfig()
	if cacheDir != "" {
		if cache, err := wazero.NewCompilationCacheWithDir(cacheDir); err == nil {
			cfg = cfg.WithCompilationCache(cache)
		}
	}
	r := wazero.NewRuntimeWithConfig(ctx, cfg)
	wasi := wasiFuncs(spec)
	if err := instantiateCppHostWASI(ctx, r, wasi); err != nil {
		return nil, err
	}
	if err := instantiateEnv(ctx, r); err != nil {
		return nil, err
	}
	compiled, err := r.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("compiling %s: %w", path, err)
	}
	if err := checkImports(path, compiled, profile, wasi); err != nil {
		_ = r.Close(ctx)
		return nil, err
	}
	m := &WasmModule{Path: path, Profile: profile, spec: spec, runtime: r, compiled: compiled}
	if !share {
		return m, nil
	}
	if wasmModules.m == nil {
		wasmModules.m = map[string]*WasmModule{}
	}
	wasmModules.m[key] = m
	return m, nil
}

// WasmProxy is the wasm state of one Envoy process (one sidecar or gateway):
// its worker VMs, the process-wide shared data (one map for the empty vm_id,
// as Istio's WasmPlugin leaves vm_id empty; ENVOY-FACTS 4) and its stats.
type WasmProxy struct {
	mod     *WasmModule
	workers []*wasmWorker
	next    atomic.Uint32
	// Log receives the module's log lines (level: 0 trace … 5 critical),
	// proxy_log and fd_write alike (fd 1 info, fd 2 error, as cpp-host).
	Log   func(level int, msg string)
	env   map[string]string
	stdio func(fd int, b []byte)

	sharedMu sync.Mutex
	shared   map[string]*sharedValue
	casSeq   uint32

	pollCalls       atomic.Int64
	yieldCalls      atomic.Int64
	procExits       atomic.Int64
	restrictedTraps atomic.Int64

	metricsMu   sync.Mutex
	metricIDs   map[string]uint32
	metricNames []string
	metricVals  []int64
}

type sharedValue struct {
	data []byte
	cas  uint32
}

// NewWasmProxy instantiates the module once per worker (Envoy --concurrency).
// The module's stdout and stderr (fd_write) reach log as info and error
// lines, as in Envoy; w, when not nil, also gets them raw.
func NewWasmProxy(mod *WasmModule, workers int, log func(level int, msg string), w io.Writer) (*WasmProxy, error) {
	opt := ProxyOptions{Workers: workers, Log: log}
	if w != nil {
		opt.Stdio = func(_ int, b []byte) { _, _ = w.Write(b) }
	}
	return NewWasmProxyWith(mod, opt)
}

// ProxyOptions configures NewWasmProxyWith.
type ProxyOptions struct {
	Workers int // Envoy --concurrency (default 1)
	Log     func(level int, msg string)
	// Env is vm_config.environment_variables (what WASI environ_get
	// returns), e.g. GODEBUG=gctrace=1 or GOGC.
	Env map[string]string
	// Stdio receives every fd_write to fd 1 or 2, unmodified.
	Stdio func(fd int, b []byte)
}

// NewWasmProxyWith instantiates the module once per worker. Instantiation
// runs _initialize under the profile's start-up restriction
// (src/wasm.cc startVm); a trap there fails the proxy, as it fails the VM in
// Envoy.
func NewWasmProxyWith(mod *WasmModule, opt ProxyOptions) (*WasmProxy, error) {
	workers := opt.Workers
	if workers < 1 {
		workers = 1
	}
	p := &WasmProxy{mod: mod, Log: opt.Log, env: opt.Env, stdio: opt.Stdio, shared: map[string]*sharedValue{}, metricIDs: map[string]uint32{}}
	for i := 0; i < workers; i++ {
		cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize")
		w := &wasmWorker{proxy: p, roots: map[*WasmFilter]uint32{}, nextID: 1}
		ctx := context.WithValue(context.Background(), callKey{}, &hostCall{w: w})
		w.allowed = mod.spec.start
		m, err := mod.runtime.InstantiateModule(ctx, mod.compiled, cfg)
		w.allowed = nil
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("instantiating %s (host %s): %w", mod.Path, mod.Profile, err)
		}
		w.mod = m
		p.workers = append(p.workers, w)
	}
	return p, nil
}

// WASICalls reports how often the guest called poll_oneoff and sched_yield
// and how many host calls trapped as restricted_callback.
func (p *WasmProxy) WASICalls() (poll, yield, restricted int64) {
	return p.pollCalls.Load(), p.yieldCalls.Load(), p.restrictedTraps.Load()
}

// MemoryBytes returns each worker VM's linear memory size.
func (p *WasmProxy) MemoryBytes() []uint32 {
	out := make([]uint32, len(p.workers))
	for i, w := range p.workers {
		w.mu.Lock()
		if w.mod != nil {
			out[i] = w.mod.Memory().Size()
		}
		w.mu.Unlock()
	}
	return out
}

// CallExport calls an exported function of the first worker's VM directly,
// outside any stream (for probes that are not proxy-wasm plugins). A trap
// fails the worker as any other.
func (p *WasmProxy) CallExport(name string, params ...uint64) ([]uint64, error) {
	w := p.workers[0]
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed != nil {
		return nil, w.failed
	}
	fn := w.mod.ExportedFunction(name)
	if fn == nil {
		return nil, fmt.Errorf("module does not export %s", name)
	}
	ctx := context.WithValue(context.Background(), callKey{}, &hostCall{w: w})
	res, err := fn.Call(ctx, params...)
	if err != nil {
		w.failed = fmt.Errorf("wasm VM failed in %s: %w", name, err)
		return nil, w.failed
	}
	return res, nil
}

// Uint32At reads a little-endian uint32 from the first worker's memory.
func (p *WasmProxy) Uint32At(addr uint32) uint32 {
	w := p.workers[0]
	w.mu.Lock()
	defer w.mu.Unlock()
	v, _ := w.mod.Memory().ReadUint32Le(addr)
	return v
}

// Failed returns the error that failed a worker's VM, if any.
func (p *WasmProxy) Failed() error {
	for _, w := range p.workers {
		w.mu.Lock()
		err := w.failed
		w.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// Close releases the VMs.
func (p *WasmProxy) Close() {
	for _, w := range p.workers {
		if w.mod != nil {
			w.mod.Close(context.Background())
		}
	}
}

// withMetric runs fn on the metric the guest named by id under the metrics
// lock; an id never defined is NotFound.
func (p *WasmProxy) withMetric(raw uint64, fn func(p *WasmProxy, id int) uint32) uint32 {
	p.metricsMu.Lock()
	defer p.metricsMu.Unlock()
	id := int(uint32(raw))
	if id >= len(p.metricVals) {
		return wasmNotFound
	}
	return fn(p, id)
}

// PollOneoffCalls is how often the guest called WASI poll_oneoff.
func (p *WasmProxy) PollOneoffCalls() int64 { return p.pollCalls.Load() }

// Counters returns every stat the module defined with its value.
func (p *WasmProxy) Counters() map[string]int64 {
	p.metricsMu.Lock()
	defer p.metricsMu.Unlock()
	out := make(map[string]int64, len(p.metricNames))
	for i, n := range p.metricNames {
		out[n] = p.metricVals[i]
	}
	return out
}

type wasmWorker struct {
	mu     sync.Mutex
	proxy  *WasmProxy
	mod    api.Module
	nextID uint32
	roots  map[*WasmFilter]uint32
	failed error
	vmUp   bool
	// allowed is the restricted-callback allowlist ("module.name") while
	// the VM is restricted, nil otherwise (cpp-host keeps it per VM).
	allowed map[string]bool
}

type callKey struct{}

// hostCall is the state of one call into the guest.
type hostCall struct {
	logs        []string // the module's log lines during configuration
	w           *wasmWorker
	stream      *wasmStream
	config      []byte
	incremented []string
}

func (w *wasmWorker) call(hc *hostCall, name string, params ...uint64) (uint64, error) {
	fn := w.mod.ExportedFunction(name)
	if fn == nil {
		return 0, fmt.Errorf("module does not export %s", name)
	}
	ctx := context.WithValue(context.Background(), callKey{}, hc)
	res, err := fn.Call(ctx, params...)
	if err != nil {
		// A trap kills the VM in proxy-wasm-cpp-host (fail state); every
		// later stream on this worker gets the plugin's fail strategy.
		w.failed = fmt.Errorf("wasm VM failed in %s: %w", name, err)
		return 0, w.failed
	}
	if len(res) == 0 {
		return 0, nil
	}
	return res[0], nil
}

// root returns the root context id of filter f on this worker, creating and
// configuring it on first use. Called with w.mu held.
func (w *wasmWorker) root(f *WasmFilter) (uint32, error) {
	if w.failed != nil {
		return 0, w.failed
	}
	if id, ok := w.roots[f]; ok {
		return id, nil
	}
	id := w.nextID
	w.nextID++
	hc := &hostCall{w: w, config: f.Config}
	if _, err := w.call(hc, "proxy_on_context_create", uint64(id), 0); err != nil {
		return 0, err
	}
	if !w.vmUp {
		if ok, err := w.call(hc, "proxy_on_vm_start", uint64(id), 0); err != nil || ok == 0 {
			w.failed = fmt.Errorf("proxy_on_vm_start failed: %v", err)
			return 0, w.failed
		}
		w.vmUp = true
	}
	ok, err := w.call(hc, "proxy_on_configure", uint64(id), uint64(len(f.Config)))
	if err != nil {
		return 0, err
	}
	if ok == 0 {
		return 0, fmt.Errorf("plugin %s: proxy_on_configure refused the configuration: %s", f.PluginName, strings.Join(hc.logs, "; "))
	}
	w.roots[f] = id
	return id, nil
}

// WasmFilter is envoy.filters.http.wasm with one plugin configuration.
type WasmFilter struct {
	Proxy      *WasmProxy
	PluginName string
	Config     []byte
	// FailOpen: on a failed VM, requests continue (Istio failStrategy
	// FAIL_OPEN); otherwise they get 503 (FAIL_CLOSE, Istio's default).
	FailOpen bool
}

// NewWasmFilter creates the plugin and configures it on every worker now,
// so a refused configuration is an error at start, as in Envoy.
func NewWasmFilter(p *WasmProxy, name string, config []byte, failOpen bool) (*WasmFilter, error) {
	f := &WasmFilter{Proxy: p, PluginName: name, Config: config, FailOpen: failOpen}
	for _, w := range p.workers {
		w.mu.Lock()
		_, err := w.root(f)
		w.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Name implements Filter.
func (f *WasmFilter) Name() string { return "envoy.filters.http.wasm/" + f.PluginName }

// NewStream implements Filter: the stream stays on one worker.
func (f *WasmFilter) NewStream(info *StreamInfo) FilterStream {
	p := f.Proxy
	w := p.workers[int(p.next.Add(1))%len(p.workers)]
	return &wasmStream{f: f, w: w, info: info}
}

type wasmStream struct {
	f       *WasmFilter
	w       *wasmWorker
	info    *StreamInfo
	id      uint32
	created bool
	req     *Headers
	resp    *Headers
	local   *LocalReply
}

func (s *wasmStream) fail(err error) *LocalReply {
	s.info.AddDecision("wasm:vm-failed")
	if s.w.proxy.Log != nil {
		s.w.proxy.Log(5, err.Error())
	}
	if s.f.FailOpen {
		return nil
	}
	return &LocalReply{Status: 503, Body: "wasm plugin failed", Details: "wasm_fail_stream"}
}

func (s *wasmStream) record(hc *hostCall) {
	for _, name := range hc.incremented {
		d := name
		if i := strings.Index(name, "decision=.="); i >= 0 {
			d = name[i+len("decision=.="):]
			if j := strings.Index(d, ";"); j >= 0 {
				d = d[:j]
			}
		}
		s.info.AddDecision("wasm:" + d)
	}
}

// DecodeHeaders is proxy_on_context_create + proxy_on_request_headers.
func (s *wasmStream) DecodeHeaders(h *Headers) *LocalReply {
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	root, err := w.root(s.f)
	if err != nil {
		return s.fail(err)
	}
	s.id = w.nextID
	w.nextID++
	s.req = h
	hc := &hostCall{w: w, stream: s}
	if _, err := w.call(hc, "proxy_on_context_create", uint64(s.id), uint64(root)); err != nil {
		return s.fail(err)
	}
	s.created = true
	if _, err := w.call(hc, "proxy_on_request_headers", uint64(s.id), uint64(len(h.kv)), 0); err != nil {
		return s.fail(err)
	}
	s.record(hc)
	return s.local
}

// EncodeHeaders is proxy_on_response_headers (skipped after the plugin's own
// local reply, as Envoy does not re-enter a filter that sent one).
func (s *wasmStream) EncodeHeaders(h *Headers) {
	if !s.created || s.local != nil {
		return
	}
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed != nil {
		return
	}
	s.resp = h
	hc := &hostCall{w: w, stream: s}
	if _, err := w.call(hc, "proxy_on_response_headers", uint64(s.id), uint64(len(h.kv)), 0); err == nil {
		s.record(hc)
	}
	s.resp = nil
}

// OnDone is proxy_on_log then proxy_on_delete (Envoy's onDestroy path).
func (s *wasmStream) OnDone() {
	if !s.created {
		return
	}
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed != nil {
		return
	}
	hc := &hostCall{w: w, stream: s}
	if _, err := w.call(hc, "proxy_on_log", uint64(s.id)); err == nil {
		s.record(hc)
	}
	_, _ = w.call(hc, "proxy_on_done", uint64(s.id))
	_, _ = w.call(hc, "proxy_on_delete", uint64(s.id))
	s.created = false
}

// ---- the env host module ----

type hostFunc struct {
	name    string
	params  []api.ValueType
	results []api.ValueType
	fn      func(ctx context.Context, hc *hostCall, m api.Module, s []uint64) uint32
}

const (
	vi32 = api.ValueTypeI32
	vi64 = api.ValueTypeI64
)

func ps(t ...api.ValueType) []api.ValueType { return t }

func hostFuncByName(name string) *hostFunc {
	for i := range envFuncs {
		if envFuncs[i].name == name {
			return &envFuncs[i]
		}
	}
	return nil
}

func read(m api.Module, ptr, size uint64) []byte {
	if uint32(size) == 0 {
		return nil
	}
	b, ok := m.Memory().Read(uint32(ptr), uint32(size))
	if !ok {
		panic(fmt.Errorf("guest memory [%#x,+%d) out of range", uint32(ptr), uint32(size)))
	}
	return append([]byte(nil), b...)
}

func writeU32(m api.Module, ptr uint64, v uint32) {
	if !m.Memory().WriteUint32Le(uint32(ptr), v) {
		panic(fmt.Errorf("guest memory %#x out of range", uint32(ptr)))
	}
}

// give copies data into guest memory allocated by proxy_on_memory_allocate
// and writes its address and size to the return slots.
func give(ctx context.Context, m api.Module, data []byte, retPtr, retSize uint64) uint32 {
	var addr uint32
	if len(data) > 0 {
		// include/proxy-wasm/wasm.h allocMemory: restrict, call malloc
		// (or its alias proxy_on_memory_allocate, src/wasm.cc
		// getFunctions), then lift the restriction altogether.
		hc, _ := ctx.Value(callKey{}).(*hostCall)
		malloc := m.ExportedFunction("malloc")
		if malloc == nil {
			malloc = m.ExportedFunction("proxy_on_memory_allocate")
		}
		if hc != nil {
			hc.w.allowed = hc.w.proxy.mod.spec.alloc
		}
		res, err := malloc.Call(ctx, uint64(len(data)))
		if hc != nil {
			hc.w.allowed = nil
		}
		if err != nil {
			panic(err)
		}
		addr = uint32(res[0])
		if addr == 0 || !m.Memory().Write(addr, data) {
			panic(errors.New("proxy_on_memory_allocate returned an unusable address"))
		}
	}
	writeU32(m, retPtr, addr)
	writeU32(m, retSize, uint32(len(data)))
	return wasmOK
}

func serializePairs(kv [][2]string) []byte {
	size := 4
	for _, p := range kv {
		size += len(p[0]) + len(p[1]) + 10
	}
	out := make([]byte, 4, size)
	binary.LittleEndian.PutUint32(out, uint32(len(kv)))
	for _, p := range kv {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(p[0])))
		out = binary.LittleEndian.AppendUint32(out, uint32(len(p[1])))
	}
	for _, p := range kv {
		out = append(out, p[0]...)
		out = append(out, 0)
		out = append(out, p[1]...)
		out = append(out, 0)
	}
	return out
}

func deserializePairs(b []byte) [][2]string {
	if len(b) < 4 {
		return nil
	}
	n := int(binary.LittleEndian.Uint32(b))
	if 4+8*n > len(b) {
		return nil
	}
	out := make([][2]string, 0, n)
	data := 4 + 8*n
	for i := 0; i < n; i++ {
		kl := int(binary.LittleEndian.Uint32(b[4+8*i:]))
		vl := int(binary.LittleEndian.Uint32(b[8+8*i:]))
		if data+kl+vl+2 > len(b) {
			return out
		}
		k := string(b[data : data+kl])
		data += kl + 1
		v := string(b[data : data+vl])
		data += vl + 1
		out = append(out, [2]string{k, v})
	}
	return out
}

// headerMap returns the map a map type names for the current stream.
func (hc *hostCall) headerMap(t uint32) *Headers {
	if hc.stream == nil {
		return nil
	}
	switch t {
	case 0:
		return hc.stream.req
	case 2:
		return hc.stream.resp
	}
	return nil
}

// property answers proxy_get_property for the attributes the plugin reads
// (Envoy: extensions/filters/common/expr/context.cc and wasm/context.cc).
func (hc *hostCall) property(path string) ([]byte, bool) {
	s := hc.stream
	switch path {
	case "xds\x00listener_direction":
		// Only listener filters know their listener; upstream filters
		// and gateways pin the direction in the policy.
		if s == nil || s.info.Upstream || s.info.Direction == Unspecified {
			return nil, false
		}
		b := make([]byte, 8)
		binary.LittleEndian.PutUint64(b, uint64(s.info.Direction))
		return b, true
	case "source\x00address":
		if s == nil || s.info.Source == "" {
			return nil, false
		}
		return []byte(s.info.Source), true
	case "plugin_name":
		if s != nil {
			return []byte(s.f.PluginName), true
		}
	}
	if s != nil && strings.HasPrefix(path, "wasm.") {
		if v, ok := s.info.FilterState(path); ok {
			return []byte(v), true
		}
	}
	return nil, false
}

var envFuncs = []hostFunc{
	{"proxy_log", ps(vi32, vi32, vi32), ps(vi32), func(_ context.Context, hc *hostCall, m api.Module, s []uint64) uint32 {
		msg := string(read(m, s[1], s[2]))
		if hc.stream == nil {
			hc.logs = append(hc.logs, msg)
		}
		if log := hc.w.proxy.Log; log != nil {
			log(int(uint32(s[0])), msg)
		}
		return wasmOK
	}},
	{"proxy_get_property", ps(vi32, vi32, vi32, vi32), ps(vi32), func(ctx context.Context, hc *hostCall, m api.Module, s []uint64) uint32 {
		v, ok := hc.property(string(read(m, s[0], s[1])))
		if !ok {
			return wasmNotFound
		}
		return give(ctx, m, v, s[2], s[3])
	}},
	{"proxy_set_property", ps(vi32, vi32, vi32, vi32), ps(vi32), func(_ context.Context, hc *hostCall, m api.Module, s []uint64) uint32 {
		if hc.stream == nil {
			return wasmNotFound
		}
		// Envoy stores the value as filter state "wasm.<path>"
		// (extensions/common/wasm/context.cc setProperty; ENVOY-FACTS 5).
		path := strings.ReplaceAll(strings.TrimRight(string(read(m, s[0], s[1])), "\x00"), "\x00", ".")
		hc.stream.info.SetFilterState("wasm."+path, string(read(m, s[2], s[3])))
		return wasmOK
	}},
	{"proxy_send_local_response", ps(vi32, vi32, vi32, vi32, vi32, vi32, vi32, vi32), ps(vi32), func(_ context.Context, hc *hostCall, m api.Module, s []uint64) uint32 {
		if hc.stream == nil {
			return wasmBadArgument
		}
		hc.stream.local = &LocalReply{Status: int(uint32(s[0])), Details: string(read(m, s[1], s[2])),
			Body: string(read(m, s[3], s[4])), Headers: deserializePairs(read(m, s[5], s[6]))}
		return wasmOK
	}},
	{"proxy_get_shared_data", ps(vi32, vi32, vi32, vi32, vi32), ps(vi32), func(ctx context.Context, hc *hostCall, m api.Module, s []uint64) uint32 {
		p := hc.w.proxy
		key := read(m, s[0], s[1])
		p.sharedMu.Lock()
		v, ok := p.shared[string(key)]
		var data []byte
		var cas uint32
		if ok {
			data, cas = append([]byte(nil), v.data...), v.cas
		}
		p.sharedMu.Unlock()
		if !ok {
			return wasmNotFound
		}
		writeU32(m, s[4], cas)
		return give(ctx, m, data, s[2], s[3])
	}},
	{"proxy_set_shared_data", ps(vi32, vi32, vi32, vi32, vi32), ps(vi32), func(_ context.Context, hc *hostCall, m api.Module, s []uint64) uint32 {
		// proxy-wasm-cpp-host src/shared_data.cc SharedData::set: a non-zero
		// cas must match the current one.
		p := hc.w.proxy
		key, val, cas := string(read(m, s[0], s[1])), read(m, s[2], s[3]), uint32(s[4])
		p.sharedMu.Lock()
		defer p.sharedMu.Unlock()
		v, ok := p.shared[key]
		if ok && cas != 0 && cas != v.cas {
			return wasmCasMismatch
		}
		p.casSeq++
		if p.casSeq == 0 {
			p.casSeq = 1
		}
		p.shared[key] = &sharedValue{data: val, cas: p.casSeq}
		return wasmOK
	}},
	{"proxy_register_shared_queue", ps(vi32, vi32, vi32), ps(vi32), unimplemented},
	{"proxy_resolve_shared_queue", ps(vi32, vi32, vi32, vi32, vi32), ps(vi32), unimplemented},
	{"proxy_dequeue_shared_queue", ps(vi32, vi32, vi32), ps(vi32), unimplemented},
	{"proxy_enqueue_shared_queue", ps(vi32, vi32, vi32), ps(vi32), unimplemented},
	{"proxy_get_header_map_value", ps(vi32, vi32, vi32, vi32, vi32), ps(vi32), func(ctx context.Context, hc *hostCall, m api.Module, s []uint64) uint32 {
		h := hc.headerMap(uint32(s[0]))
		if h == nil {
			return wasmBadArgument
		}
		v, ok := h.Lookup(strings.ToLower(string(read(m, s[1], s[2]))))
		if !ok {
			return wasmNotFound
		}
		return give(ctx, m, []byte(v), s[3], s[4])
	}},
	{"proxy_add_header_map_value", ps(vi32, vi32, vi32, vi32, vi32), ps(vi32), func(_ context.Context, hc *hostCall, m api.Module, s []uint64) uint32 {
		h := hc.headerMap(uint32(s[0]))
		if h == nil {
			return wasmBadArgument
		}
		h.Add(string(read(m, s[1], s[2])), string(read(m, s[3], s[4])))
		return wasmOK
	}},
	{"proxy_replace_header_map_value", ps(vi32, vi32, vi32, vi32, vi32), ps(vi32), func(_ context.Context, hc *hostCall, m api.Module, s []uint64) uint32 {
		h := hc.headerMap(uint32(s[0]))
		if h == nil {
			return wasmBadArgument
		}
		h.Set(string(read(m, s[1], s[2])), string(read(m, s[3], s[4])))
		return wasmOK
	}},
	{"proxy_remove_header_map_value", ps(vi32, vi32, vi32), ps(vi32), func(_ context.Context, hc *hostCall, m api.Module, s []uint64) uint32 {
		h := hc.headerMap(uint32(s[0]))
		if h == nil {
			return wasmBadArgument
		}
		h.Del(string(read(m, s[1], s[2])))
		return wasmOK
	}},
	{"proxy_get_header_map_pairs", ps(vi32, vi32, vi32), ps(vi32), func(ctx context.Context, hc *hostCall, m api.Module, s []uint64) uint32 {
		h := hc.headerMap(uint32(s[0]))
		if h == nil {
			return wasmBadArgument
		}
		return give(ctx, m, serializePairs(h.kv), s[1], s[2])
	}},
	{"proxy_set_header_map_pairs", ps(vi32, vi32, vi32), ps(vi32), func(_ context.Context, hc *hostCall, m api.Module, s []uint64) uint32 {
		h := hc.headerMap(uint32(s[0]))
		if h == nil {
			return wasmBadArgument
		}
		h.SetPairs(deserializePairs(read(m, s[1], s[2])))
		return wasmOK
	}},
	{"proxy_get_buffer_bytes", ps(vi32, vi32, vi32, vi32, vi32), ps(vi32), func(ctx context.Context, hc *hostCall, m api.Module, s []uint64) uint32 {
		if uint32(s[0]) != 7 { // only the plugin configuration is modelled
			return wasmNotFound
		}
		data := hc.config
		start, max := int(uint32(s[1])), int(uint32(s[2]))
		if start > len(data) {
			return wasmBadArgument
		}
		data = data[start:]
		if max < len(data) {
			data = data[:max]
		}
		if len(data) == 0 {
			return wasmNotFound
		}
		return give(ctx, m, data, s[3], s[4])
	}},
	{"proxy_set_buffer_bytes", ps(vi32, vi32, vi32, vi32, vi32), ps(vi32), unimplemented},
	{"proxy_continue_stream", ps(vi32), ps(vi32), ok},
	{"proxy_close_stream", ps(vi32), ps(vi32), ok},
	{"proxy_http_call", ps(vi32, vi32, vi32, vi32, vi32, vi32, vi32, vi32, vi32, vi32), ps(vi32), unimplemented},
	{"proxy_call_foreign_function", ps(vi32, vi32, vi32, vi32, vi32, vi32), ps(vi32), unimplemented},
	{"proxy_set_tick_period_milliseconds", ps(vi32), ps(vi32), ok},
	{"proxy_set_effective_context", ps(vi32), ps(vi32), ok},
	{"proxy_done", ps(), ps(vi32), ok},
	{"proxy_define_metric", ps(vi32, vi32, vi32, vi32), ps(vi32), func(_ context.Context, hc *hostCall, m api.Module, s []uint64) uint32 {
		p := hc.w.proxy
		name := string(read(m, s[1], s[2]))
		p.metricsMu.Lock()
		id, ok := p.metricIDs[name]
		if !ok {
			id = uint32(len(p.metricNames))
			p.metricIDs[name] = id
			p.metricNames = append(p.metricNames, name)
			p.metricVals = append(p.metricVals, 0)
		}
		p.metricsMu.Unlock()
		writeU32(m, s[3], id)
		return wasmOK
	}},
	{"proxy_increment_metric", ps(vi32, vi64), ps(vi32), func(_ context.Context, hc *hostCall, _ api.Module, s []uint64) uint32 {
		return hc.w.proxy.withMetric(s[0], func(p *WasmProxy, id int) uint32 {
			p.metricVals[id] += int64(s[1])
			hc.incremented = append(hc.incremented, p.metricNames[id])
			return wasmOK
		})
	}},
	{"proxy_record_metric", ps(vi32, vi64), ps(vi32), func(_ context.Context, hc *hostCall, _ api.Module, s []uint64) uint32 {
		return hc.w.proxy.withMetric(s[0], func(p *WasmProxy, id int) uint32 {
			p.metricVals[id] = int64(s[1])
			return wasmOK
		})
	}},
	{"proxy_get_metric", ps(vi32, vi32), ps(vi32), func(_ context.Context, hc *hostCall, m api.Module, s []uint64) uint32 {
		return hc.w.proxy.withMetric(s[0], func(p *WasmProxy, id int) uint32 {
			if !m.Memory().WriteUint64Le(uint32(s[1]), uint64(p.metricVals[id])) {
				return wasmBadArgument
			}
			return wasmOK
		})
	}},
}

func unimplemented(context.Context, *hostCall, api.Module, []uint64) uint32 { return wasmUnimplemented }
func ok(context.Context, *hostCall, api.Module, []uint64) uint32            { return wasmOK }

func instantiateEnv(ctx context.Context, r wazero.Runtime) error {
	b := r.NewHostModuleBuilder("env")
	for _, f := range envFuncs {
		fn, qual := f.fn, "env."+f.name
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, s []uint64) {
				hc, _ := ctx.Value(callKey{}).(*hostCall)
				if hc == nil {
					s[0] = wasmBadArgument
					return
				}
				checkAllowed(hc.w, qual)
				s[0] = uint64(fn(ctx, hc, m, s))
			}), f.params, f.results).
			Export(f.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}
