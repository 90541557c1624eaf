package wasmtest

import (
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/tracebridge/tracebridge/wasm-filter/wasmhost"
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
	// Profile is the proxy-wasm-cpp-host version the host reproduces
	// (WASI, restricted callbacks); default the newest.
	Profile wasmhost.Profile
}

// Compiled returns the tracebridge module compiled in wasmhost's process
// runtime, building it first when needed (see EnsureModule), and the time
// the compilation (or loading it from the cache) took.
func Compiled() (wazero.CompiledModule, time.Duration, error) {
	m, err := load("", "")
	if err != nil {
		return nil, 0, err
	}
	return m.Compiled(), m.Compile, nil
}

// load returns the module at path ("" is the tracebridge module) linked
// under profile.
func load(path string, profile wasmhost.Profile) (*wasmhost.Module, error) {
	if path == "" {
		p, err := EnsureModule()
		if err != nil {
			return nil, err
		}
		path = p
	}
	return wasmhost.Load(path, profile)
}

// VM is one instance of the compiled module, usable wherever the SDK expects a
// types.VMContext: pass it to proxytest (see NewHost) to drive the module with
// the SDK's host emulator. Only HTTP contexts are supported (as in proxytest's
// own wasm runner). Unlike proxytest, a completed HTTP stream also gets
// proxy_on_delete, as in Envoy, so long runs do not grow the guest.
//
// A VM is not safe for concurrent use; the emulator serialises tests anyway.
type VM struct {
	in   *wasmhost.Instance
	keep bool
	fn   struct {
		vmStart, contextCreate, configure, done, log, delete, queueReady, tick,
		requestHeaders, requestBody, requestTrailers,
		responseHeaders, responseBody, responseTrailers api.Function
	}
}

// New instantiates the compiled module in wasmhost (with the emulator as its
// Handler) and runs its _initialize. Close the VM when done.
func New(o Options) (*VM, error) {
	m, err := load(o.Module, o.Profile)
	if err != nil {
		return nil, err
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	vm := &VM{keep: o.KeepContexts}
	cfg := wasmhost.Config{
		Handler: emulatorHandler{vm},
		Env:     o.Env,
		Rand:    o.Rand,
		Stdio:   func(_ int, b []byte) { _, _ = o.Stderr.Write(b) },
		Timing:  true,
	}
	if o.Walltime != nil {
		cfg.Walltime = func() int64 { sec, nsec := o.Walltime(); return sec*1e9 + int64(nsec) }
	}
	if o.Nanotime != nil {
		cfg.Nanotime = o.Nanotime
	}
	if vm.in, err = m.Instantiate(cfg); err != nil {
		return nil, fmt.Errorf("wasmtest: %w", err)
	}
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
		if *e.fn = vm.in.Export(e.name); *e.fn == nil {
			vm.in.Close()
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
func (vm *VM) Close() error { return vm.in.Close() }

// Module is the wazero instance, for calls the VM does not wrap.
func (vm *VM) Module() api.Module { return vm.in.Module() }

// MemorySize is the size of the guest's linear memory in bytes.
func (vm *VM) MemorySize() uint32 { return vm.in.MemorySize() }

// Timing splits the wall time of the VM's guest calls (the proxy_on_*
// callbacks proxytest drives) between the guest and the host functions it
// called (see wasmhost.Timing).
type Timing = wasmhost.Timing

// Timing returns the accumulated timing since the VM started or since the
// last ResetTiming.
func (vm *VM) Timing() Timing { return vm.in.Timing() }

// ResetTiming starts a new measurement.
func (vm *VM) ResetTiming() { vm.in.ResetTiming() }

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
	res, err := vm.in.CallFunc(fn, params...)
	if err != nil {
		panic(fmt.Errorf("wasmtest: %w", err))
	}
	return res
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
