package wasmtest

import (
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/tracebridge/tracebridge/internal/repo"
	"github.com/tracebridge/tracebridge/wasm-filter/wasmhost"
)

// wasiImports is the exact WASI surface of the module: the 15 calls
// docs/ENVOY.md §7 lists for a standard-Go wasip1 module that links os (the
// SDK's fmt does). (The temporary probe plugin also imported fd_read, through
// crypto/rand; the engine plugin does not.) Envoy refuses a module importing
// anything it does not provide, so a change here is a change of the
// supported Envoy floor: check it before updating the list.
var wasiImports = []string{
	"args_get", "args_sizes_get", "clock_time_get", "environ_get", "environ_sizes_get",
	"fd_close", "fd_fdstat_get", "fd_fdstat_set_flags", "fd_prestat_dir_name", "fd_prestat_get",
	"fd_write", "poll_oneoff", "proc_exit", "random_get", "sched_yield",
}

func compiled(t *testing.T) wazero.CompiledModule {
	t.Helper()
	c, took, err := Compiled()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("module compiled (or loaded from the cache) in %v", took.Round(time.Millisecond))
	return c
}

func TestModuleImports(t *testing.T) {
	mod := compiled(t)
	var wasi, proxy []string
	for _, def := range mod.ImportedFunctions() {
		mod, name, _ := def.Import()
		switch mod {
		case "wasi_snapshot_preview1":
			wasi = append(wasi, name)
		case "env":
			proxy = append(proxy, name)
			params, results, ok := wasmhost.HostFunction(name)
			if !ok {
				t.Errorf("env.%s is not a proxy-wasm host function", name)
				continue
			}
			if !slices.Equal(def.ParamTypes(), params) || !slices.Equal(def.ResultTypes(), results) {
				t.Errorf("env.%s: module imports %v -> %v, the ABI has %v -> %v",
					name, types2(def.ParamTypes()), types2(def.ResultTypes()), types2(params), types2(results))
			}
		default:
			t.Errorf("import from module %q: %s", mod, name)
		}
	}
	if n := len(mod.ImportedMemories()); n != 0 {
		t.Errorf("module imports %d memories", n)
	}
	// The Go linker imports a function once per Go declaration (runtime and
	// syscall both declare some): compare the set.
	sort.Strings(wasi)
	wasi = slices.Compact(wasi)
	sort.Strings(proxy)
	t.Logf("wasi_snapshot_preview1 (%d): %s", len(wasi), strings.Join(wasi, " "))
	t.Logf("env (%d): %s", len(proxy), strings.Join(proxy, " "))
	if !slices.Equal(wasi, wasiImports) {
		t.Errorf("WASI imports changed:\n got  %v\n want %v", wasi, wasiImports)
	}
}

func types2(ts []api.ValueType) string {
	var s []string
	for _, t := range ts {
		s = append(s, api.ValueTypeName(t))
	}
	return "(" + strings.Join(s, ",") + ")"
}

func TestModuleExports(t *testing.T) {
	mod := compiled(t)
	i32 := api.ValueTypeI32
	want := map[string][2][]api.ValueType{
		"_initialize":                          {nil, nil},
		"proxy_abi_version_0_2_1":              {nil, nil},
		"proxy_on_memory_allocate":             {{i32}, {i32}},
		"proxy_on_vm_start":                    {{i32, i32}, {i32}},
		"proxy_on_configure":                   {{i32, i32}, {i32}},
		"proxy_on_context_create":              {{i32, i32}, nil},
		"proxy_on_new_connection":              {{i32}, {i32}},
		"proxy_on_downstream_data":             {{i32, i32, i32}, {i32}},
		"proxy_on_downstream_connection_close": {{i32, i32}, nil},
		"proxy_on_upstream_data":               {{i32, i32, i32}, {i32}},
		"proxy_on_upstream_connection_close":   {{i32, i32}, nil},
		"proxy_on_request_headers":             {{i32, i32, i32}, {i32}},
		"proxy_on_request_body":                {{i32, i32, i32}, {i32}},
		"proxy_on_request_trailers":            {{i32, i32}, {i32}},
		"proxy_on_response_headers":            {{i32, i32, i32}, {i32}},
		"proxy_on_response_body":               {{i32, i32, i32}, {i32}},
		"proxy_on_response_trailers":           {{i32, i32}, {i32}},
		"proxy_on_http_call_response":          {{i32, i32, i32, i32, i32}, nil},
		"proxy_on_done":                        {{i32}, {i32}},
		"proxy_on_log":                         {{i32}, nil},
		"proxy_on_delete":                      {{i32}, nil},
		"proxy_on_queue_ready":                 {{i32, i32}, nil},
		"proxy_on_tick":                        {{i32}, nil},
	}
	exports := mod.ExportedFunctions()
	var names []string
	for name := range exports {
		names = append(names, name)
	}
	sort.Strings(names)
	t.Logf("exports: %s", strings.Join(names, " "))
	for name, sig := range want {
		def, ok := exports[name]
		if !ok {
			t.Errorf("missing export %s", name)
			continue
		}
		if !slices.Equal(def.ParamTypes(), sig[0]) || !slices.Equal(def.ResultTypes(), sig[1]) {
			t.Errorf("%s: %v -> %v, want %v -> %v", name,
				types2(def.ParamTypes()), types2(def.ResultTypes()), types2(sig[0]), types2(sig[1]))
		}
	}
	// A reactor only: a _start would make hosts run main as a command.
	if _, ok := exports["_start"]; ok {
		t.Error("module exports _start: it must be a reactor")
	}
	for name := range exports {
		if _, ok := want[name]; !ok && strings.HasPrefix(name, "proxy_") {
			t.Errorf("unexpected proxy-wasm export %s", name)
		}
	}
	if _, ok := mod.ExportedMemories()["memory"]; !ok {
		t.Error("module does not export its memory")
	}
}

type panickingVM struct{ types.DefaultVMContext }

func (panickingVM) NewPluginContext(uint32) types.PluginContext { panic("plugin root exploded") }

// TestStartHostRecovers checks that a plugin panicking while the emulator is
// created fails only that attempt: the next emulator starts instead of
// waiting forever for proxytest's lock.
func TestStartHostRecovers(t *testing.T) {
	_, _, err := StartHost(&panickingVM{}, nil)
	if err == nil || !strings.Contains(err.Error(), "plugin root exploded") {
		t.Fatalf("StartHost returned %v, want the panic as an error", err)
	}
	done := make(chan error, 1)
	go func() {
		_, release, err := StartHost(&types.DefaultVMContext{}, nil)
		if err == nil {
			release()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the next emulator is still waiting for proxytest's lock")
	}
}

// TestCompiledTrapSurfaces checks that a trap in the guest reaches the test as
// a panic naming the export, and that the emulator is not left locked.
func TestCompiledTrapSurfaces(t *testing.T) {
	var stderr strings.Builder
	vm := NewVM(t, Options{Stderr: &stderr})
	host, release, err := StartHost(vm, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	host.StartVM()
	host.StartPlugin()
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(fmtAny(r), "proxy_on_request_headers") {
			t.Fatalf("recovered %v, want a trap in proxy_on_request_headers", r)
		}
		// The guest's Go runtime reports its panic on stderr before trapping.
		if !strings.Contains(stderr.String(), "panic: invalid context on proxy_on_request_headers") {
			t.Fatalf("guest stderr: %q", stderr.String())
		}
	}()
	// An HTTP context the guest never saw: the SDK panics inside the guest.
	vm.call(vm.fn.requestHeaders, 999, 0, 0)
}

func fmtAny(v any) string {
	if err, ok := v.(error); ok {
		return err.Error()
	}
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

func TestModuleIsFresh(t *testing.T) {
	path, err := EnsureModule()
	if err != nil {
		t.Fatal(err)
	}
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := ModulePath(); p != path {
		t.Fatalf("EnsureModule gave %s, ModulePath %s", path, p)
	}
	fresh, err := isFresh(root, mainPackage, path)
	if err != nil || !fresh {
		t.Fatalf("after EnsureModule the module is not fresh (%v)", err)
	}
	newest, err := newestSource(root, mainPackage)
	if err != nil || newest.IsZero() {
		t.Fatalf("newest source %v, %v", newest, err)
	}
}

// BenchmarkInstantiate is the cost of a fresh VM from the compiled module:
// instantiation and _initialize (Go runtime start, package init).
func BenchmarkInstantiate(b *testing.B) {
	if _, _, err := Compiled(); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		vm, err := New(Options{})
		if err != nil {
			b.Fatal(err)
		}
		vm.Close()
	}
}

// maxModuleBytes is the size goal for the stripped module (4.5 MB).
const maxModuleBytes = 4_500_000

// TestModuleSize keeps the shipped module within the size goal: a new
// dependency (fmt through an SDK wrapper, regexp, crypto) shows up here
// before it ships. BENCHMARKS.md has what each dependency costs.
func TestModuleSize(t *testing.T) {
	path, err := EnsureModule()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d bytes", path, fi.Size())
	if fi.Size() > maxModuleBytes {
		t.Fatalf("module is %d bytes, over the %d-byte goal", fi.Size(), maxModuleBytes)
	}
}
