package wasmhost

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// CacheDir is where wazero keeps compiled code between runs:
// <user cache dir>/tracebridge/wazero. Empty if the user has no cache dir.
func CacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "tracebridge", "wazero")
}

// shared is the process runtime: the env and WASI host modules and every
// module compiled by Load, compiled once per path whatever the profile
// (compiling costs seconds, instantiating milliseconds).
var shared struct {
	once sync.Once
	err  error
	r    wazero.Runtime

	mu       sync.Mutex
	compiled map[string]*compiledFile
}

type compiledFile struct {
	once     sync.Once
	err      error
	compiled wazero.CompiledModule
	took     time.Duration
}

// newRuntime creates a runtime with the host modules; cache may be nil.
func newRuntime(ctx context.Context, cache wazero.CompilationCache) (wazero.Runtime, error) {
	cfg := wazero.NewRuntimeConfig()
	if cache != nil {
		cfg = cfg.WithCompilationCache(cache)
	}
	r := wazero.NewRuntimeWithConfig(ctx, cfg)
	if err := instantiateWASI(ctx, r); err != nil {
		_ = r.Close(ctx)
		return nil, err
	}
	if err := instantiateEnv(ctx, r); err != nil {
		_ = r.Close(ctx)
		return nil, err
	}
	return r, nil
}

func processRuntime() (wazero.Runtime, error) {
	shared.once.Do(func() {
		var cache wazero.CompilationCache
		if dir := CacheDir(); dir != "" {
			// A broken cache dir only costs speed: compile without it.
			if c, err := wazero.NewCompilationCacheWithDir(dir); err == nil {
				cache = c
			}
		}
		shared.r, shared.err = newRuntime(context.Background(), cache)
		shared.compiled = map[string]*compiledFile{}
	})
	return shared.r, shared.err
}

// Module is a compiled module that loads in a profile's host.
type Module struct {
	Path    string
	Profile Profile
	// Compile is how long compiling took (or loading it from the cache).
	Compile  time.Duration
	spec     *profileSpec
	r        wazero.Runtime
	compiled wazero.CompiledModule
}

// Load compiles the module at path in the process runtime (once per path,
// cached on disk in CacheDir) and links it as proxy-wasm-cpp-host of the
// profile would: an import the profile does not register, or registers
// with another signature, fails the load ("missing import").
func Load(path string, profile Profile) (*Module, error) {
	spec, err := profileOf(profile)
	if err != nil {
		return nil, err
	}
	if profile == "" {
		profile = DefaultProfile
	}
	r, err := processRuntime()
	if err != nil {
		return nil, err
	}
	shared.mu.Lock()
	c := shared.compiled[path]
	if c == nil {
		c = &compiledFile{}
		shared.compiled[path] = c
	}
	shared.mu.Unlock()
	c.once.Do(func() {
		wasm, err := os.ReadFile(path)
		if err != nil {
			c.err = err
			return
		}
		start := time.Now()
		c.compiled, c.err = r.CompileModule(context.Background(), wasm)
		c.took = time.Since(start)
		if c.err != nil {
			c.err = fmt.Errorf("compiling %s: %w", path, c.err)
		}
	})
	if c.err != nil {
		return nil, c.err
	}
	if err := checkImports(path, c.compiled, profile, spec); err != nil {
		return nil, err
	}
	return &Module{Path: path, Profile: profile, Compile: c.took, spec: spec, r: r, compiled: c.compiled}, nil
}

// LoadContext is Load in a runtime of its own compiled with ctx, which may
// carry wazero experimental options such as a function listener factory
// (for tests that watch the guest runtime); nothing is shared or cached.
func LoadContext(ctx context.Context, path string, profile Profile) (*Module, error) {
	spec, err := profileOf(profile)
	if err != nil {
		return nil, err
	}
	if profile == "" {
		profile = DefaultProfile
	}
	wasm, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r, err := newRuntime(ctx, nil)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	compiled, err := r.CompileModule(ctx, wasm)
	if err != nil {
		_ = r.Close(ctx)
		return nil, fmt.Errorf("compiling %s: %w", path, err)
	}
	if err := checkImports(path, compiled, profile, spec); err != nil {
		_ = r.Close(ctx)
		return nil, err
	}
	return &Module{Path: path, Profile: profile, Compile: time.Since(start), spec: spec, r: r, compiled: compiled}, nil
}

// Compiled is the wazero module, for inspecting its imports and exports.
func (m *Module) Compiled() wazero.CompiledModule { return m.compiled }

// Imports returns the module's imported functions as "module.name", sorted.
func (m *Module) Imports() []string {
	var out []string
	for _, f := range m.compiled.ImportedFunctions() {
		mod, name, _ := f.Import()
		out = append(out, mod+"."+name)
	}
	sort.Strings(out)
	return out
}

// Config configures one instance. Zero values are Envoy's: no environment,
// the host's clocks and entropy, WASI output only logged.
type Config struct {
	// Handler answers the instance's proxy-wasm host calls.
	Handler Handler
	// Env is vm_config.environment_variables (what WASI environ_get
	// returns), e.g. GOGC or GODEBUG for the guest's Go runtime.
	Env map[string]string
	// Rand is the guest's entropy (WASI random_get); default crypto/rand.
	Rand io.Reader
	// Walltime (Unix ns) and Nanotime (monotonic ns) are the guest's
	// clocks (WASI clock_time_get); default the host's.
	Walltime func() int64
	Nanotime func() int64
	// Log receives the log lines cpp-host writes for WASI calls (level: 0
	// trace … 5 critical): fd_write to fd 1 (info) and 2 (error), the
	// errors of fd_seek, fd_close and proc_exit.
	Log func(level int, msg string)
	// Stdio receives every fd_write to fd 1 or 2, unmodified.
	Stdio func(fd int, b []byte)
	// Timing splits the wall time of calls between guest and host (see
	// Instance.Timing); it costs two clock reads per host call.
	Timing bool
}

// Instance is one VM of a module: a wazero instance whose host calls go to
// its Handler, under the profile's restrictions. Calls into it must not
// overlap (as one Envoy worker thread runs one callback at a time).
type Instance struct {
	mod     *Module
	cfg     Config
	handler Handler
	api     api.Module
	ctx     context.Context
	malloc  api.Function
	stack   [8]uint64
	timed   bool
	timing  Timing
	// allowed is the restricted-callback allowlist ("module.name") while
	// the VM is restricted, nil otherwise (cpp-host keeps it per VM).
	allowed map[string]bool

	pollCalls, yieldCalls, procExits, restrictedTraps atomic.Int64
}

type instanceKey struct{}

func instanceOf(ctx context.Context) *Instance {
	in, _ := ctx.Value(instanceKey{}).(*Instance)
	return in
}

// Instantiate creates an instance and runs the module's _initialize (a WASI
// reactor: Go runtime and package init) under the profile's start-up
// restriction (src/wasm.cc startVm); a trap there is an error, as it fails
// the VM in Envoy.
func (m *Module) Instantiate(cfg Config) (*Instance, error) {
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Walltime == nil {
		cfg.Walltime = func() int64 { return time.Now().UnixNano() }
	}
	if cfg.Nanotime == nil {
		cfg.Nanotime = func() int64 { return time.Since(monoEpoch).Nanoseconds() + 1 }
	}
	in := &Instance{mod: m, cfg: cfg, handler: cfg.Handler, timed: cfg.Timing}
	in.ctx = context.WithValue(context.Background(), instanceKey{}, in)
	in.allowed = m.spec.start
	mc := wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize")
	mod, err := m.r.InstantiateModule(in.ctx, m.compiled, mc)
	in.allowed = nil
	if err != nil {
		return nil, fmt.Errorf("instantiating %s (host %s): %w", m.Path, m.Profile, err)
	}
	in.api = mod
	// src/wasm.cc getFunctions: malloc, or its alias proxy_on_memory_allocate.
	if in.malloc = mod.ExportedFunction("malloc"); in.malloc == nil {
		in.malloc = mod.ExportedFunction("proxy_on_memory_allocate")
	}
	return in, nil
}

// Module is the wazero instance, for calls and reads the Instance does not
// wrap.
func (in *Instance) Module() api.Module { return in.api }

// Profile is the host profile the instance runs under.
func (in *Instance) Profile() Profile { return in.mod.Profile }

// MemorySize is the size of the guest's linear memory in bytes.
func (in *Instance) MemorySize() uint32 { return in.api.Memory().Size() }

// Close releases the instance (the compiled module stays).
func (in *Instance) Close() error { return in.api.Close(context.Background()) }

// Export returns an exported function to call with CallFunc (looking one up
// builds a new function object: keep it).
func (in *Instance) Export(name string) api.Function { return in.api.ExportedFunction(name) }

// Call calls the named export and returns its first result (0 if none).
func (in *Instance) Call(name string, params ...uint64) (uint64, error) {
	fn := in.api.ExportedFunction(name)
	if fn == nil {
		return 0, fmt.Errorf("module does not export %s", name)
	}
	return in.CallFunc(fn, params...)
}

// CallFunc calls fn with at most 8 parameters and returns its first result.
// A trap (a Go panic in the guest ends as one; so does a restricted host
// call) is returned as an error naming the export; the guest's runtime is
// dead afterwards, as a VM in Envoy's fail state.
func (in *Instance) CallFunc(fn api.Function, params ...uint64) (uint64, error) {
	s := in.stack[:]
	copy(s, params)
	var start time.Time
	if in.timed {
		start = time.Now()
	}
	err := fn.CallWithStack(in.ctx, s)
	if in.timed {
		in.timing.Total += time.Since(start)
		in.timing.Calls++
	}
	if err != nil {
		// A stripped module has no name section: name the export.
		name := fn.Definition().Name()
		if names := fn.Definition().ExportNames(); len(names) > 0 {
			name = names[0]
		}
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if len(fn.Definition().ResultTypes()) == 0 {
		return 0, nil
	}
	return s[0], nil
}

// give hands a host-owned result to the guest the way cpp-host does: the
// guest allocates (include/proxy-wasm/wasm.h allocMemory: restricted to the
// allocation allowlist, then the restriction lifted altogether), the host
// fills the buffer and writes its address and size into the guest's return
// slots. An empty result is address 0, size 0, without allocating. A status
// other than OK is returned as is.
func (in *Instance) give(ctx context.Context, m api.Module, st uint32, data []byte, retPtr, retSize uint64) uint32 {
	if st != StatusOK {
		return st
	}
	var addr uint32
	if len(data) > 0 {
		if in.malloc == nil {
			panic(errors.New("module exports neither malloc nor proxy_on_memory_allocate"))
		}
		in.allowed = in.mod.spec.alloc
		res, err := in.malloc.Call(ctx, uint64(len(data)))
		in.allowed = nil
		if err != nil {
			panic(fmt.Errorf("proxy_on_memory_allocate(%d): %w", len(data), err))
		}
		addr = u32(res[0])
		if addr == 0 || !m.Memory().Write(addr, data) {
			panic(fmt.Errorf("proxy_on_memory_allocate(%d) returned an unusable address %#x", len(data), addr))
		}
	}
	writeU32(m, retPtr, addr)
	writeU32(m, retSize, uint32(len(data)))
	return StatusOK
}

// Timing splits the wall time of an instance's guest calls between the
// guest and the host functions it called (Config.Timing). Host time
// includes the guest allocations made to return values, as a real host's
// would.
type Timing struct {
	Calls     int           // guest exports called
	Total     time.Duration // wall time inside those calls
	HostCalls int           // host functions called by the guest
	Host      time.Duration // wall time inside those host functions
}

// Guest is the time spent in the guest itself.
func (t Timing) Guest() time.Duration { return t.Total - t.Host }

// Timing returns the accumulated timing since the instance started or the
// last ResetTiming.
func (in *Instance) Timing() Timing { return in.timing }

// ResetTiming starts a new measurement.
func (in *Instance) ResetTiming() { in.timing = Timing{} }

// WASICalls reports how often the guest called poll_oneoff and sched_yield
// and how many host calls trapped as restricted_callback.
func (in *Instance) WASICalls() (poll, yield, restricted int64) {
	return in.pollCalls.Load(), in.yieldCalls.Load(), in.restrictedTraps.Load()
}

// envList is vm_config.environment_variables as "K=V", in a stable order.
func (in *Instance) envList() []string {
	keys := make([]string, 0, len(in.cfg.Env))
	for k := range in.cfg.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+in.cfg.Env[k])
	}
	return out
}

// wasiWrite is fd_write to stdout/stderr: Envoy logs it (info / error) with
// one trailing newline removed.
func (in *Instance) wasiWrite(fd, level int, b []byte) {
	if in.cfg.Stdio != nil {
		in.cfg.Stdio(fd, b)
	}
	in.log(level, strings.TrimSuffix(string(b), "\n"))
}

func (in *Instance) log(level int, msg string) {
	if in.cfg.Log != nil {
		in.cfg.Log(level, msg)
	}
}
