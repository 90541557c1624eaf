package envoysim

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tracebridge/tracebridge/wasm-filter/abi"
	"github.com/tracebridge/tracebridge/wasm-filter/wasmhost"
)

// This file is Envoy's side of the proxy-wasm host, modelled on
// proxy-wasm-cpp-host (src/context.cc, src/shared_data.cc) and Envoy's
// source/extensions/common/wasm/context.cc: one VM per worker thread, one
// root context per plugin configuration, shared data and metrics per
// process, properties from the stream, proxy_set_property into filter state
// under "wasm.<path>". The VMs themselves (host-function table, cpp-host
// WASI and restrictions, compilation) are wasm-filter/wasmhost's.
//
// proxy_http_call and ticks are in wasmcallout.go. Not modelled: gRPC
// calls, shared queues and foreign functions answer Unimplemented; bodies
// and trailers are not passed to the module (the plugin only uses headers).

// HostProfile selects the proxy-wasm-cpp-host version the wasm host
// reproduces (see wasmhost.Profile).
type HostProfile = wasmhost.Profile

// Host profiles.
const (
	ProfileCppHost533    = wasmhost.ProfileCppHost533
	ProfileCppHost427    = wasmhost.ProfileCppHost427
	ProfileCppHostPre427 = wasmhost.ProfileCppHostPre427
	DefaultHostProfile   = wasmhost.DefaultProfile
)

// HostProfiles lists the modelled hosts, newest first.
func HostProfiles() []HostProfile { return wasmhost.Profiles() }

// ProfileImports returns the functions a host profile registers, as
// "module.name", sorted: what a module may import and still load.
func ProfileImports(p HostProfile) ([]string, error) { return wasmhost.ProfileImports(p) }

// WasmModule is a compiled module checked against a host profile.
type WasmModule = wasmhost.Module

// LoadWasmModule compiles the module at path once per process (cached on
// disk) and links it under profile.
func LoadWasmModule(path string, profile HostProfile) (*WasmModule, error) {
	return wasmhost.Load(path, profile)
}

// LoadWasmModuleContext compiles the module at path with ctx, which may carry
// wazero experimental options such as a function listener factory (for
// tests that watch the guest runtime), and keeps no process-wide copy.
var LoadWasmModuleContext = wasmhost.LoadContext

// WasmProxy is the wasm state of one Envoy process (one sidecar or gateway):
// its worker VMs, the process-wide shared data (one map for the empty vm_id,
// as Istio's WasmPlugin leaves vm_id empty; docs/ENVOY.md §4) and its stats.
type WasmProxy struct {
	mod     *WasmModule
	workers []*wasmWorker
	next    atomic.Uint32
	// Log receives the module's log lines (level: 0 trace … 5 critical),
	// proxy_log and fd_write alike (fd 1 info, fd 2 error, as cpp-host).
	Log func(level int, msg string)

	sharedMu sync.Mutex
	shared   map[string]*sharedValue
	casSeq   uint32

	metricsMu   sync.Mutex
	metricIDs   map[string]uint32
	metricNames []string
	metricVals  []int64

	// clusters maps proxy_http_call cluster names to addresses; node is the
	// node metadata (node.metadata.<key> properties).
	clusters map[string]string
	node     map[string]string
	co       *callouts
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
	// Clusters are the upstream clusters proxy_http_call may name, each
	// with its address (host:port); any other name is BadArgument.
	Clusters map[string]string
	// NodeMetadata is the node's metadata, read by the module as the
	// node.metadata.<key> property (Istio: WORKLOAD_NAME, NAMESPACE).
	NodeMetadata map[string]string
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
	p := &WasmProxy{mod: mod, Log: opt.Log, shared: map[string]*sharedValue{}, metricIDs: map[string]uint32{},
		clusters: opt.Clusters, node: opt.NodeMetadata, co: newCallouts()}
	for i := 0; i < workers; i++ {
		w := &wasmWorker{proxy: p, roots: map[*WasmFilter]uint32{}, nextID: 1, ticks: map[uint32]*ticker{}}
		in, err := mod.Instantiate(wasmhost.Config{Handler: w, Env: opt.Env, Log: p.log, Stdio: opt.Stdio})
		if err != nil {
			p.Close()
			return nil, err
		}
		w.in = in
		p.workers = append(p.workers, w)
	}
	return p, nil
}

func (p *WasmProxy) log(level int, msg string) {
	if p.Log != nil {
		p.Log(level, msg)
	}
}

// WASICalls reports how often the guest called poll_oneoff and sched_yield
// and how many host calls trapped as restricted_callback, over all workers.
func (p *WasmProxy) WASICalls() (poll, yield, restricted int64) {
	for _, w := range p.workers {
		a, b, c := w.in.WASICalls()
		poll, yield, restricted = poll+a, yield+b, restricted+c
	}
	return poll, yield, restricted
}

// MemoryBytes returns each worker VM's linear memory size.
func (p *WasmProxy) MemoryBytes() []uint32 {
	out := make([]uint32, len(p.workers))
	for i, w := range p.workers {
		w.mu.Lock()
		out[i] = w.in.MemorySize()
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
	fn := w.in.Export(name)
	if fn == nil {
		return nil, fmt.Errorf("module does not export %s", name)
	}
	res, err := w.call(&hostCall{}, name, params...)
	if err != nil {
		return nil, err
	}
	if len(fn.Definition().ResultTypes()) == 0 {
		return nil, nil
	}
	return []uint64{res}, nil
}

// Uint32At reads a little-endian uint32 from the first worker's memory.
func (p *WasmProxy) Uint32At(addr uint32) uint32 {
	w := p.workers[0]
	w.mu.Lock()
	defer w.mu.Unlock()
	v, _ := w.in.Module().Memory().ReadUint32Le(addr)
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

// Close stops ticks and HTTP calls, then releases the VMs.
func (p *WasmProxy) Close() {
	p.co.close()
	for _, w := range p.workers {
		if w.in != nil {
			_ = w.in.Close()
		}
	}
}

// withMetric runs fn on the metric the guest named by id under the metrics
// lock; an id never defined is NotFound.
func (p *WasmProxy) withMetric(id uint32, fn func(p *WasmProxy, id int) uint32) uint32 {
	p.metricsMu.Lock()
	defer p.metricsMu.Unlock()
	if int(id) >= len(p.metricVals) {
		return wasmhost.StatusNotFound
	}
	return fn(p, int(id))
}

// PollOneoffCalls is how often the guest called WASI poll_oneoff.
func (p *WasmProxy) PollOneoffCalls() int64 {
	poll, _, _ := p.WASICalls()
	return poll
}

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

// wasmWorker is one worker thread's VM; it answers the VM's host calls
// (wasmhost.Handler) for the call in progress.
type wasmWorker struct {
	// Shared queues, callouts, foreign functions and buffers other than
	// the plugin configuration are not modelled.
	wasmhost.Unimplemented
	mu     sync.Mutex
	proxy  *WasmProxy
	in     *wasmhost.Instance
	nextID uint32
	roots  map[*WasmFilter]uint32
	failed error
	vmUp   bool
	// hc is the state of the guest call in progress (nil: none, e.g.
	// during _initialize).
	hc *hostCall
	// ticks are the root contexts' tick timers (wasmcallout.go).
	ticks map[uint32]*ticker
}

// hostCall is the state of one call into the guest.
type hostCall struct {
	logs        []string // the module's log lines during configuration
	stream      *wasmStream
	config      []byte
	incremented []string
	// root is the root context the call runs for (0: none known).
	root uint32
	// callout is the HTTP call response during proxy_on_http_call_response.
	callout *calloutResponse
}

func (w *wasmWorker) call(hc *hostCall, name string, params ...uint64) (uint64, error) {
	w.hc = hc
	res, err := w.in.Call(name, params...)
	w.hc = nil
	if err != nil {
		// A trap kills the VM in proxy-wasm-cpp-host (fail state); every
		// later stream on this worker gets the plugin's fail strategy.
		w.failed = fmt.Errorf("wasm VM failed in %w", err)
		return 0, w.failed
	}
	return res, nil
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
	hc := &hostCall{config: f.Config, root: id}
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
	root    uint32
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
	s.root = root
	hc := &hostCall{stream: s, root: root}
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
	hc := &hostCall{stream: s, root: s.root}
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
	hc := &hostCall{stream: s, root: s.root}
	if _, err := w.call(hc, "proxy_on_log", uint64(s.id)); err == nil {
		s.record(hc)
	}
	_, _ = w.call(hc, "proxy_on_done", uint64(s.id))
	_, _ = w.call(hc, "proxy_on_delete", uint64(s.id))
	s.created = false
}

// ---- wasmhost.Handler: Envoy's answers to the module's host calls ----

// current is the call in progress, or an empty one outside any.
func (w *wasmWorker) current() *hostCall {
	if w.hc == nil {
		return &hostCall{}
	}
	return w.hc
}

// headerMap returns the map a map type names for the current stream.
func (hc *hostCall) headerMap(t uint32) *Headers {
	if t == 6 && hc.callout != nil { // HttpCallResponseHeaders
		return &hc.callout.headers
	}
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

// pairs decodes a serialized header map; a malformed one holds no pairs, as
// proxy-wasm-cpp-host's PairsUtil::toPairs (src/pairs_util.cc) answers.
func pairs(b []byte) [][2]string {
	ps, ok := abi.ParseHeaderMap([]abi.Pair(nil), b)
	if !ok {
		return nil
	}
	out := make([][2]string, len(ps))
	for i, p := range ps {
		out[i] = [2]string{p.Name, p.Value}
	}
	return out
}

func (w *wasmWorker) Log(level uint32, msg []byte) uint32 {
	hc := w.current()
	if hc.stream == nil {
		hc.logs = append(hc.logs, string(msg))
	}
	w.proxy.log(int(level), string(msg))
	return wasmhost.StatusOK
}

func (w *wasmWorker) GetProperty(path []byte) ([]byte, uint32) {
	// node.metadata.<key>: the node's metadata (Istio's WORKLOAD_NAME,
	// NAMESPACE), strings as their bytes.
	if key, ok := strings.CutPrefix(string(path), "node\x00metadata\x00"); ok {
		if v, ok := w.proxy.node[key]; ok {
			return []byte(v), wasmhost.StatusOK
		}
		return nil, wasmhost.StatusNotFound
	}
	v, ok := w.current().property(string(path))
	if !ok {
		return nil, wasmhost.StatusNotFound
	}
	return v, wasmhost.StatusOK
}

func (w *wasmWorker) SetProperty(path, value []byte) uint32 {
	hc := w.current()
	if hc.stream == nil {
		return wasmhost.StatusNotFound
	}
	// Envoy stores the value as filter state "wasm.<path>"
	// (extensions/common/wasm/context.cc setProperty; docs/ENVOY.md §5).
	p := strings.ReplaceAll(strings.TrimRight(string(path), "\x00"), "\x00", ".")
	hc.stream.info.SetFilterState("wasm."+p, string(value))
	return wasmhost.StatusOK
}

func (w *wasmWorker) SendLocalResponse(status uint32, details, body, headers []byte, _ int32) uint32 {
	hc := w.current()
	if hc.stream == nil {
		return wasmhost.StatusBadArgument
	}
	hc.stream.local = &LocalReply{Status: int(status), Details: string(details), Body: string(body), Headers: pairs(headers)}
	return wasmhost.StatusOK
}

func (w *wasmWorker) GetSharedData(key []byte) ([]byte, uint32, uint32) {
	p := w.proxy
	p.sharedMu.Lock()
	defer p.sharedMu.Unlock()
	v, ok := p.shared[string(key)]
	if !ok {
		return nil, 0, wasmhost.StatusNotFound
	}
	return append([]byte(nil), v.data...), v.cas, wasmhost.StatusOK
}

// SetSharedData follows proxy-wasm-cpp-host src/shared_data.cc
// SharedData::set: a non-zero cas must match the current one.
func (w *wasmWorker) SetSharedData(key, value []byte, cas uint32) uint32 {
	p := w.proxy
	p.sharedMu.Lock()
	defer p.sharedMu.Unlock()
	v, ok := p.shared[string(key)]
	if ok && cas != 0 && cas != v.cas {
		return wasmhost.StatusCasMismatch
	}
	p.casSeq++
	if p.casSeq == 0 {
		p.casSeq = 1
	}
	p.shared[string(key)] = &sharedValue{data: value, cas: p.casSeq}
	return wasmhost.StatusOK
}

func (w *wasmWorker) GetHeaderMapValue(mapType uint32, key []byte) ([]byte, uint32) {
	h := w.current().headerMap(mapType)
	if h == nil {
		return nil, wasmhost.StatusBadArgument
	}
	v, ok := h.Lookup(strings.ToLower(string(key)))
	if !ok {
		return nil, wasmhost.StatusNotFound
	}
	return []byte(v), wasmhost.StatusOK
}

func (w *wasmWorker) AddHeaderMapValue(mapType uint32, key, value []byte) uint32 {
	h := w.current().headerMap(mapType)
	if h == nil {
		return wasmhost.StatusBadArgument
	}
	h.Add(string(key), string(value))
	return wasmhost.StatusOK
}

func (w *wasmWorker) ReplaceHeaderMapValue(mapType uint32, key, value []byte) uint32 {
	h := w.current().headerMap(mapType)
	if h == nil {
		return wasmhost.StatusBadArgument
	}
	h.Set(string(key), string(value))
	return wasmhost.StatusOK
}

func (w *wasmWorker) RemoveHeaderMapValue(mapType uint32, key []byte) uint32 {
	h := w.current().headerMap(mapType)
	if h == nil {
		return wasmhost.StatusBadArgument
	}
	h.Del(string(key))
	return wasmhost.StatusOK
}

func (w *wasmWorker) GetHeaderMapPairs(mapType uint32) ([]byte, uint32) {
	h := w.current().headerMap(mapType)
	if h == nil {
		return nil, wasmhost.StatusBadArgument
	}
	return abi.AppendHeaderMap(nil, h.kv), wasmhost.StatusOK
}

func (w *wasmWorker) SetHeaderMapPairs(mapType uint32, b []byte) uint32 {
	h := w.current().headerMap(mapType)
	if h == nil {
		return wasmhost.StatusBadArgument
	}
	h.SetPairs(pairs(b))
	return wasmhost.StatusOK
}

// GetBufferBytes models the plugin configuration (buffer type 7) and an
// HTTP call's response body (type 4) only.
func (w *wasmWorker) GetBufferBytes(bufferType, start, maxSize uint32) ([]byte, uint32) {
	hc := w.current()
	var data []byte
	switch {
	case bufferType == 7:
		data = hc.config
	case bufferType == 4 && hc.callout != nil:
		data = hc.callout.body
	default:
		return nil, wasmhost.StatusNotFound
	}
	if int(start) > len(data) {
		return nil, wasmhost.StatusBadArgument
	}
	data = data[start:]
	if int(maxSize) < len(data) {
		data = data[:maxSize]
	}
	if len(data) == 0 {
		return nil, wasmhost.StatusNotFound
	}
	return data, wasmhost.StatusOK
}

func (w *wasmWorker) ContinueStream(uint32) uint32 { return wasmhost.StatusOK }
func (w *wasmWorker) CloseStream(uint32) uint32    { return wasmhost.StatusOK }

func (w *wasmWorker) SetEffectiveContext(uint32) uint32 { return wasmhost.StatusOK }
func (w *wasmWorker) Done() uint32                      { return wasmhost.StatusOK }

func (w *wasmWorker) DefineMetric(_ uint32, name []byte) (uint32, uint32) {
	p := w.proxy
	p.metricsMu.Lock()
	defer p.metricsMu.Unlock()
	id, ok := p.metricIDs[string(name)]
	if !ok {
		id = uint32(len(p.metricNames))
		p.metricIDs[string(name)] = id
		p.metricNames = append(p.metricNames, string(name))
		p.metricVals = append(p.metricVals, 0)
	}
	return id, wasmhost.StatusOK
}

func (w *wasmWorker) IncrementMetric(id uint32, offset int64) uint32 {
	hc := w.current()
	return w.proxy.withMetric(id, func(p *WasmProxy, id int) uint32 {
		p.metricVals[id] += offset
		hc.incremented = append(hc.incremented, p.metricNames[id])
		return wasmhost.StatusOK
	})
}

func (w *wasmWorker) RecordMetric(id uint32, value uint64) uint32 {
	return w.proxy.withMetric(id, func(p *WasmProxy, id int) uint32 {
		p.metricVals[id] = int64(value)
		return wasmhost.StatusOK
	})
}

func (w *wasmWorker) GetMetric(id uint32) (uint64, uint32) {
	var v uint64
	st := w.proxy.withMetric(id, func(p *WasmProxy, id int) uint32 {
		v = uint64(p.metricVals[id])
		return wasmhost.StatusOK
	})
	return v, st
}
