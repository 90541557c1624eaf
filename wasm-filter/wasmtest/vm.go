package wasmtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// Options tune one VM. The zero value is what tests normally want.
type Options struct {
	// Rand is the guest's random source (WASI random_get). Default
	// crypto/rand.Reader; wazero's own default repeats the same bytes in
	// every instance.
	Rand io.Reader
	// Walltime and Nanotime replace the guest's clocks (WASI clock_time_get),
	// e.g. to test expiry without sleeping. Default: the host's clocks.
	Walltime sys.Walltime
	Nanotime sys.Nanotime
	// Stderr receives the guest's stdout and stderr (Go runtime crash
	// reports). Default os.Stderr.
	Stderr io.Writer
	// Env is the guest's environment (WASI environ_get), as Envoy's
	// vm_config.environment_variables would set it, e.g. GOGC or GODEBUG for
	// the guest's Go runtime. Default: empty, like Envoy's.
	Env map[string]string
	// KeepContexts withholds proxy_on_delete from completed streams, as
	// proxytest's own runner does; only for showing what that leaks.
	KeepContexts bool
	// Module is the path of the module to run instead of the tracebridge
	// module, e.g. from EnsurePackage; it must export the same proxy-wasm
	// ABI. It is compiled once per process, like the tracebridge module.
	Module string
}

// rt is the per-process wazero runtime, with WASI and the proxy-wasm
// host module, shared by every module the harness runs.
var rt struct {
	once sync.Once
	err  error
	r    wazero.Runtime
}

// compiledModule is one module compiled in the process runtime: compiling
// costs seconds, instantiating milliseconds.
type compiledModule struct {
	once     sync.Once
	err      error
	path     string
	compiled wazero.CompiledModule
	compile  time.Duration
}

// shared is the tracebridge module; others are modules given by
// Options.Module, by path.
var (
	shared compiledModule
	others struct {
		sync.Mutex
		m map[string]*compiledModule
	}
)

// CacheDir is where wazero keeps compiled code between test runs:
// <user cache dir>/tracebridge/wazero. Empty if the user has no cache dir.
func CacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "tracebridge", "wazero")
}

// Compiled returns the process-wide compiled module, building and compiling
// it on first use (see EnsureModule), and the time the compilation took.
func Compiled() (wazero.CompiledModule, time.Duration, error) {
	shared.once.Do(func() {
		path, err := EnsureModule()
		if err != nil {
			shared.err = err
			return
		}
		shared.load(path)
	})
	return shared.compiled, shared.compile, shared.err
}

// compiledAt returns the module at path compiled, once per process.
func compiledAt(path string) *compiledModule {
	others.Lock()
	c := others.m[path]
	if c == nil {
		if others.m == nil {
			others.m = map[string]*compiledModule{}
		}
		c = &compiledModule{}
		others.m[path] = c
	}
	others.Unlock()
	c.once.Do(func() { c.load(path) })
	return c
}

// load compiles the module at path in the process runtime.
func (c *compiledModule) load(path string) {
	r, err := processRuntime()
	if err != nil {
		c.err = err
		return
	}
	wasm, err := os.ReadFile(path)
	if err != nil {
		c.err = err
		return
	}
	start := time.Now()
	compiled, err := r.CompileModule(context.Background(), wasm)
	if err != nil {
		c.err = fmt.Errorf("wasmtest: compiling %s: %w", path, err)
		return
	}
	c.path, c.compiled, c.compile = path, compiled, time.Since(start)
}

// processRuntime creates the process runtime on first use, with wazero's
// file cache in CacheDir.
func processRuntime() (wazero.Runtime, error) {
	rt.once.Do(func() {
		ctx := context.Background()
		cfg := wazero.NewRuntimeConfig()
		if dir := CacheDir(); dir != "" {
			// A broken cache dir only costs speed: compile without it.
			if cache, err := wazero.NewCompilationCacheWithDir(dir); err == nil {
				cfg = cfg.WithCompilationCache(cache)
			}
		}
		r := wazero.NewRuntimeWithConfig(ctx, cfg)
		if _, err := wasi_snapshot_preview1.Instantiate(ctx, r); err != nil {
			rt.err = err
			return
		}
		if err := instantiateHost(ctx, r); err != nil {
			rt.err = err
			return
		}
		rt.r = r
	})
	return rt.r, rt.err
}

// VM is one instance of the compiled module, usable wherever the SDK expects a
// types.VMContext: pass it to proxytest (see NewHost) to drive the module with
// the SDK's host emulator. Only HTTP contexts are supported (as in proxytest's
// own wasm runner). Unlike proxytest, a completed HTTP stream also gets
// proxy_on_delete, as in Envoy, so long runs do not grow the guest.
//
// A VM is not safe for concurrent use; the emulator serialises tests anyway.
type VM struct {
	ctx    context.Context
	mod    api.Module
	keep   bool
	alloc  api.Function
	timing Timing
	stack  [8]uint64
	fn     struct {
		vmStart, contextCreate, configure, done, log, delete, queueReady, tick,
		requestHeaders, requestBody, requestTrailers,
		responseHeaders, responseBody, responseTrailers api.Function
	}
}

// New instantiates the compiled module and runs its _initialize. Close the VM
// when done.
func New(o Options) (*VM, error) {
	m := &shared
	if o.Module != "" {
		m = compiledAt(o.Module)
	} else if _, _, err := Compiled(); err != nil {
		return nil, err
	}
	if m.err != nil {
		return nil, m.err
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	cfg := wazero.NewModuleConfig().
		WithName(""). // anonymous: many instances may share the runtime
		// The module is a WASI reactor: the host runs _initialize (Go
		// runtime and package init). wazero defaults to _start, which a
		// reactor does not have; proxytest's runner stops there.
		WithStartFunctions("_initialize").
		WithRandSource(o.Rand).
		WithStdout(o.Stderr).
		WithStderr(o.Stderr).
		WithSysWalltime().
		WithSysNanotime()
	for k, v := range o.Env {
		cfg = cfg.WithEnv(k, v)
	}
	if o.Walltime != nil {
		cfg = cfg.WithWalltime(o.Walltime, sys.ClockResolution(1))
	}
	if o.Nanotime != nil {
		cfg = cfg.WithNanotime(o.Nanotime, sys.ClockResolution(1))
	}
	ctx := context.Background()
	mod, err := rt.r.InstantiateModule(ctx, m.compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("wasmtest: instantiating %s: %w", m.path, err)
	}
	vm := &VM{mod: mod, keep: o.KeepContexts, alloc: mod.ExportedFunction("proxy_on_memory_allocate")}
	vm.ctx = context.WithValue(ctx, vmKey{}, vm)
	for _, e := range []struct {
		fn   *api.Function
		name string
	}{
		{&vm.fn.vmStart, "proxy_on_vm_start"},
		{&vm.fn.contextCreate, "proxy_on_context_create"},
		{&vm.fn.configure, "proxy_on_configure"},
		{&vm.fn.done, "proxy_on_done"},
		{&vm.fn.log, "proxy_on_log"},
		{&vm.fn.delete, "proxy_on_delete"},
		{&vm.fn.queueReady, "proxy_on_queue_ready"},
		{&vm.fn.tick, "proxy_on_tick"},
		{&vm.fn.requestHeaders, "proxy_on_request_headers"},
		{&vm.fn.requestBody, "proxy_on_request_body"},
		{&vm.fn.requestTrailers, "proxy_on_request_trailers"},
		{&vm.fn.responseHeaders, "proxy_on_response_headers"},
		{&vm.fn.responseBody, "proxy_on_response_body"},
		{&vm.fn.responseTrailers, "proxy_on_response_trailers"},
	} {
		if *e.fn = mod.ExportedFunction(e.name); *e.fn == nil {
			mod.Close(ctx)
			return nil, fmt.Errorf("wasmtest: module does not export %s", e.name)
		}
	}
	return vm, nil
}

// NewVM is New for tests: it fails tb on error and closes the VM at cleanup.
func NewVM(tb testing.TB, o Options) *VM {
	tb.Helper()
	vm, err := New(o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { vm.Close() })
	return vm
}

// Close releases the instance (the compiled module stays cached).
func (vm *VM) Close() error { return vm.mod.Close(vm.ctx) }

// Module is the wazero instance, for calls the VM does not wrap.
func (vm *VM) Module() api.Module { return vm.mod }

// MemorySize is the size of the guest's linear memory in bytes.
func (vm *VM) MemorySize() uint32 { return vm.mod.Memory().Size() }

// Timing splits the wall time of the VM's guest calls (the proxy_on_*
// callbacks proxytest drives) between the guest and the host functions it
// called. Host time includes the guest allocations made to return values
// (proxy_on_memory_allocate), as a real host's would; each host call adds
// about two clock reads (tens of ns) to the guest side.
type Timing struct {
	Calls     int           // guest exports called
	Total     time.Duration // wall time inside those calls
	HostCalls int           // host functions called by the guest
	Host      time.Duration // wall time inside those host functions
}

// Guest is the time spent in the guest itself.
func (t Timing) Guest() time.Duration { return t.Total - t.Host }

// Timing returns the accumulated timing since the VM started or since the
// last ResetTiming.
func (vm *VM) Timing() Timing { return vm.timing }

// ResetTiming starts a new measurement.
func (vm *VM) ResetTiming() { vm.timing = Timing{} }

// Delete delivers proxy_on_delete for a context, as Envoy does when it
// destroys a stream that never completed. Completed HTTP streams get it
// automatically.
func (vm *VM) Delete(contextID uint32) {
	vm.call(vm.fn.delete, uint64(contextID))
}

// call runs a guest export with the VM's reusable stack and returns the first
// result. A trap (a Go panic inside the guest ends as one) panics here with
// the guest error, because proxytest's interfaces have no error results; the
// Go runtime of that instance is dead afterwards, so the VM must not be used
// again.
func (vm *VM) call(fn api.Function, params ...uint64) uint64 {
	s := vm.stack[:]
	copy(s, params)
	start := time.Now()
	err := fn.CallWithStack(vm.ctx, s)
	vm.timing.Total += time.Since(start)
	vm.timing.Calls++
	if err != nil {
		// The module is stripped (no name section): name the export.
		name := fn.Definition().Name()
		if names := fn.Definition().ExportNames(); len(names) > 0 {
			name = names[0]
		}
		panic(fmt.Errorf("wasmtest: %s: %w", name, err))
	}
	return s[0]
}

func wasmBool(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// OnVMStart implements types.VMContext.
func (vm *VM) OnVMStart(vmConfigurationSize int) types.OnVMStartStatus {
	// The root context id is unused by the SDK's proxy_on_vm_start.
	return vm.call(vm.fn.vmStart, 0, uint64(vmConfigurationSize)) == 1
}

// NewPluginContext implements types.VMContext.
func (vm *VM) NewPluginContext(contextID uint32) types.PluginContext {
	vm.call(vm.fn.contextCreate, uint64(contextID), 0)
	return &pluginContext{vm: vm, id: uint64(contextID)}
}

type pluginContext struct {
	vm *VM
	id uint64
}

func (p *pluginContext) OnPluginStart(pluginConfigurationSize int) types.OnPluginStartStatus {
	return p.vm.call(p.vm.fn.configure, p.id, uint64(pluginConfigurationSize)) == 1
}

func (p *pluginContext) OnPluginDone() bool { return p.vm.call(p.vm.fn.done, p.id) == 1 }

func (p *pluginContext) OnQueueReady(queueID uint32) {
	p.vm.call(p.vm.fn.queueReady, p.id, uint64(queueID))
}

func (p *pluginContext) OnTick() { p.vm.call(p.vm.fn.tick, p.id) }

// NewTcpContext declines: proxy_on_context_create was already sent by
// NewHttpContext, which the SDK tries first, and the guest decided.
func (p *pluginContext) NewTcpContext(uint32) types.TcpContext { return nil }

func (p *pluginContext) NewHttpContext(contextID uint32) types.HttpContext {
	p.vm.call(p.vm.fn.contextCreate, uint64(contextID), p.id)
	return &httpContext{vm: p.vm, id: uint64(contextID)}
}

type httpContext struct {
	vm      *VM
	id      uint64
	deleted bool
}

func (h *httpContext) OnHttpRequestHeaders(numHeaders int, endOfStream bool) types.Action {
	return types.Action(h.vm.call(h.vm.fn.requestHeaders, h.id, uint64(numHeaders), wasmBool(endOfStream)))
}

func (h *httpContext) OnHttpRequestBody(bodySize int, endOfStream bool) types.Action {
	return types.Action(h.vm.call(h.vm.fn.requestBody, h.id, uint64(bodySize), wasmBool(endOfStream)))
}

func (h *httpContext) OnHttpRequestTrailers(numTrailers int) types.Action {
	return types.Action(h.vm.call(h.vm.fn.requestTrailers, h.id, uint64(numTrailers)))
}

func (h *httpContext) OnHttpResponseHeaders(numHeaders int, endOfStream bool) types.Action {
	return types.Action(h.vm.call(h.vm.fn.responseHeaders, h.id, uint64(numHeaders), wasmBool(endOfStream)))
}

func (h *httpContext) OnHttpResponseBody(bodySize int, endOfStream bool) types.Action {
	return types.Action(h.vm.call(h.vm.fn.responseBody, h.id, uint64(bodySize), wasmBool(endOfStream)))
}

func (h *httpContext) OnHttpResponseTrailers(numTrailers int) types.Action {
	return types.Action(h.vm.call(h.vm.fn.responseTrailers, h.id, uint64(numTrailers)))
}

// OnHttpStreamDone is proxytest's CompleteHttpContext: Envoy follows
// proxy_on_log with proxy_on_delete when it destroys the stream's context;
// proxytest drops its native record of the context but never tells the guest.
func (h *httpContext) OnHttpStreamDone() {
	h.vm.call(h.vm.fn.log, h.id)
	if !h.deleted && !h.vm.keep {
		h.deleted = true
		h.vm.call(h.vm.fn.delete, h.id)
	}
}
