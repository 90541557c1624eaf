package envoysim_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/tracebridge/tracebridge/e2e/sim/envoysim"
	"github.com/tracebridge/tracebridge/e2e/sim/sidecar"
	"github.com/tracebridge/tracebridge/internal/repo"
	"github.com/tracebridge/tracebridge/internal/wasmbin"
	"github.com/tracebridge/tracebridge/wasm-filter/wasmtest"
)

// shippedImports is every function bin/tracebridge.wasm imports. A new import
// fails TestShippedModuleImports by name: check it against each profile's set
// (docs/ENVOY.md §7) before changing this list.
var shippedImports = []string{
	"env.proxy_add_header_map_value", "env.proxy_call_foreign_function",
	"env.proxy_close_stream", "env.proxy_continue_stream", "env.proxy_define_metric",
	"env.proxy_dequeue_shared_queue", "env.proxy_done", "env.proxy_enqueue_shared_queue",
	"env.proxy_get_buffer_bytes", "env.proxy_get_header_map_pairs",
	"env.proxy_get_header_map_value", "env.proxy_get_metric", "env.proxy_get_property",
	"env.proxy_get_shared_data", "env.proxy_http_call", "env.proxy_increment_metric",
	"env.proxy_log", "env.proxy_record_metric", "env.proxy_register_shared_queue",
	"env.proxy_remove_header_map_value", "env.proxy_replace_header_map_value",
	"env.proxy_resolve_shared_queue", "env.proxy_send_local_response",
	"env.proxy_set_buffer_bytes", "env.proxy_set_effective_context",
	"env.proxy_set_header_map_pairs", "env.proxy_set_property",
	"env.proxy_set_shared_data", "env.proxy_set_tick_period_milliseconds",
	"wasi_snapshot_preview1.args_get", "wasi_snapshot_preview1.args_sizes_get",
	"wasi_snapshot_preview1.clock_time_get", "wasi_snapshot_preview1.environ_get",
	"wasi_snapshot_preview1.environ_sizes_get", "wasi_snapshot_preview1.fd_close",
	"wasi_snapshot_preview1.fd_fdstat_get", "wasi_snapshot_preview1.fd_fdstat_set_flags",
	"wasi_snapshot_preview1.fd_prestat_dir_name", "wasi_snapshot_preview1.fd_prestat_get",
	"wasi_snapshot_preview1.fd_write", "wasi_snapshot_preview1.poll_oneoff",
	"wasi_snapshot_preview1.proc_exit", "wasi_snapshot_preview1.random_get",
	"wasi_snapshot_preview1.sched_yield",
}

func modulePath(t testing.TB) string {
	t.Helper()
	p, err := wasmtest.EnsureModule()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestShippedModuleImports loads bin/tracebridge.wasm under every host
// profile and asserts its import list: exactly shippedImports, each one
// registered by the profile.
func TestShippedModuleImports(t *testing.T) {
	path := modulePath(t)
	for _, p := range envoysim.HostProfiles() {
		t.Run(string(p), func(t *testing.T) {
			mod, err := envoysim.LoadWasmModule(path, p)
			if err != nil {
				t.Fatalf("the shipped module does not load under %s: %v", p, err)
			}
			have := map[string]bool{}
			for _, n := range mod.Imports() {
				have[n] = true
			}
			want := map[string]bool{}
			for _, n := range shippedImports {
				want[n] = true
			}
			for n := range have {
				if !want[n] {
					t.Errorf("new import %s: check it against cpp-host's exports.h for every profile, then add it to shippedImports", n)
				}
			}
			for n := range want {
				if !have[n] {
					t.Errorf("import %s is gone: remove it from shippedImports", n)
				}
			}
			provided, err := envoysim.ProfileImports(p)
			if err != nil {
				t.Fatal(err)
			}
			set := map[string]bool{}
			for _, n := range provided {
				set[n] = true
			}
			for n := range have {
				if !set[n] {
					t.Errorf("%s does not provide %s (Envoy: missing import)", p, n)
				}
			}
			px, err := envoysim.NewWasmProxyWith(mod, envoysim.ProxyOptions{Workers: 1})
			if err != nil {
				t.Fatalf("_initialize under %s: %v", p, err)
			}
			px.Close()
		})
	}
}

// TestShippedModuleBefore427 shows why Envoy up to 1.32 (Istio 1.24) cannot
// run the module: its cpp-host lacks three WASI functions the Go runtime
// imports, and a missing import fails the load.
func TestShippedModuleBefore427(t *testing.T) {
	_, err := envoysim.LoadWasmModule(modulePath(t), envoysim.ProfileCppHostPre427)
	if err == nil || !strings.Contains(err.Error(), "missing import") {
		t.Fatalf("want a missing-import failure, got %v", err)
	}
	t.Log(err)
}

// TestProfileRules checks the host's cpp-host rules on hand-made modules.
func TestProfileRules(t *testing.T) {
	const i32, i64 = wasmbin.I32, wasmbin.I64
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name+".wasm")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// fd_readdir exists from 94091cd on only.
	readdir := write("readdir", wasmbin.Module(
		[]wasmbin.Import{wasmbin.Imp("wasi_snapshot_preview1", "fd_readdir", []byte{i32, i32, i32, i64, i32}, []byte{i32})},
		[]wasmbin.Func{wasmbin.Fn("_initialize", nil, nil, nil)}))
	// _initialize calls sched_yield: allowed during start-up by neither.
	yield := write("yield", wasmbin.Module(
		[]wasmbin.Import{wasmbin.Imp("wasi_snapshot_preview1", "sched_yield", nil, []byte{i32})},
		[]wasmbin.Func{wasmbin.Fn("_initialize", nil, nil, []byte{0x10, 0, 0x1a})}))
	// _initialize calls poll_oneoff: a trap at c4d7bb0, allowed at 94091cd.
	pollStart := write("pollstart", wasmbin.Module(
		[]wasmbin.Import{wasmbin.Imp("wasi_snapshot_preview1", "poll_oneoff", []byte{i32, i32, i32, i32}, []byte{i32})},
		[]wasmbin.Func{wasmbin.Fn("_initialize", nil, nil, wasmbin.Concat(wasmbin.I32Const(0), wasmbin.I32Const(0), wasmbin.I32Const(0), wasmbin.I32Const(64), []byte{0x10, 0, 0x1a}))}))
	// _initialize calls fd_fdstat_set_flags (allowed, ENOSYS at both)
	// and stores the result at 16.
	setFlags := write("setflags", wasmbin.Module(
		[]wasmbin.Import{wasmbin.Imp("wasi_snapshot_preview1", "fd_fdstat_set_flags", []byte{i32, i32}, []byte{i32})},
		[]wasmbin.Func{wasmbin.Fn("_initialize", nil, nil, wasmbin.Concat(wasmbin.I32Const(16), wasmbin.I32Const(1), wasmbin.I32Const(4), []byte{0x10, 0, 0x36, 2, 0}))}))
	// proxy_on_memory_allocate calls poll_oneoff; proxy_on_vm_start reads
	// the plugin configuration, so the host allocates.
	pollAlloc := write("pollalloc", wasmbin.Module(
		[]wasmbin.Import{
			wasmbin.Imp("wasi_snapshot_preview1", "poll_oneoff", []byte{i32, i32, i32, i32}, []byte{i32}),
			wasmbin.Imp("env", "proxy_get_buffer_bytes", []byte{i32, i32, i32, i32, i32}, []byte{i32}),
		},
		[]wasmbin.Func{
			wasmbin.Fn("_initialize", nil, nil, nil),
			wasmbin.Fn("proxy_on_memory_allocate", []byte{i32}, []byte{i32}, wasmbin.Concat(wasmbin.I32Const(0), wasmbin.I32Const(0), wasmbin.I32Const(0), wasmbin.I32Const(64), []byte{0x10, 0, 0x1a}, wasmbin.I32Const(1024))),
			wasmbin.Fn("proxy_on_context_create", []byte{i32, i32}, nil, nil),
			wasmbin.Fn("proxy_on_vm_start", []byte{i32, i32}, []byte{i32}, wasmbin.Concat(wasmbin.I32Const(7), wasmbin.I32Const(0), wasmbin.I32Const(100), wasmbin.I32Const(128), wasmbin.I32Const(132), []byte{0x10, 1, 0x1a}, wasmbin.I32Const(1))),
			wasmbin.Fn("proxy_on_configure", []byte{i32, i32}, []byte{i32}, wasmbin.I32Const(1)),
		}))

	start := func(path string, p envoysim.HostProfile) (*envoysim.WasmProxy, error) {
		mod, err := envoysim.LoadWasmModule(path, p)
		if err != nil {
			return nil, err
		}
		return envoysim.NewWasmProxyWith(mod, envoysim.ProxyOptions{Workers: 1})
	}
	expect := func(what string, err error, want string) {
		t.Helper()
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", what, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: got %v, want an error containing %q", what, err, want)
		}
	}
	c533, c427 := envoysim.ProfileCppHost533, envoysim.ProfileCppHost427

	_, err := start(readdir, c427)
	expect("fd_readdir import under 427", err, "missing import: wasi_snapshot_preview1.fd_readdir")
	_, err = start(readdir, c533)
	expect("fd_readdir import under 533", err, "")

	for _, p := range []envoysim.HostProfile{c533, c427} {
		_, err = start(yield, p)
		expect("sched_yield in _initialize under "+string(p), err, "restricted_callback")
	}
	_, err = start(pollStart, c427)
	expect("poll_oneoff in _initialize under 427", err, "restricted_callback")
	_, err = start(pollStart, c533)
	expect("poll_oneoff in _initialize under 533", err, "")

	for _, p := range []envoysim.HostProfile{c533, c427} {
		px, err := start(setFlags, p)
		expect("fd_fdstat_set_flags in _initialize under "+string(p), err, "")
		if px != nil {
			if got := px.Uint32At(16); got != 52 {
				t.Errorf("%s: fd_fdstat_set_flags returned %d, want ENOSYS (52)", p, got)
			}
		}
	}

	for _, p := range []envoysim.HostProfile{c533, c427} {
		px, err := start(pollAlloc, p)
		if err != nil {
			t.Fatal(err)
		}
		_, err = envoysim.NewWasmFilter(px, "x", []byte("{}"), true)
		want := ""
		if p == c427 {
			want = "restricted_callback"
		}
		expect("poll_oneoff in proxy_on_memory_allocate under "+string(p), err, want)
	}
}

// ---- soak ----

// soakResult is what a soak observed.
type soakResult struct {
	Profile     envoysim.HostProfile
	Env         string
	Requests    int // requests whose every wasm callback succeeded
	Restored    int // outbound requests the module restored
	GCCycles    int // highest "gc N @" line the guest wrote (GODEBUG=gctrace=1)
	Poll        int64
	Yield       int64
	Restricted  int64
	MemStart    uint32
	MemEnd      uint32
	Elapsed     time.Duration
	Failure     string // the VM failure, if any
	FailedAt    int
	StderrTail  string
	HeaderBytes int64 // request header bytes sent
	// ScavBg: scavtrace lines (GODEBUG=scavtrace=1) in which the
	// background scavenger released memory, i.e. ran and then armed its
	// sleep timer; ScavBgKiB is what it released in total.
	ScavBg, ScavBgKiB int
}

func (r soakResult) String() string {
	s := fmt.Sprintf("%s env[%s]: %d requests survived (%d restored) in %s; %d GC cycles; poll_oneoff %d, sched_yield %d, restricted traps %d; guest memory %.1f → %.1f MiB; %.1f GiB of request headers",
		r.Profile, r.Env, r.Requests, r.Restored, r.Elapsed.Round(time.Second), r.GCCycles, r.Poll, r.Yield, r.Restricted,
		float64(r.MemStart)/(1<<20), float64(r.MemEnd)/(1<<20), float64(r.HeaderBytes)/(1<<30))
	if r.ScavBg > 0 {
		s += fmt.Sprintf("; background scavenger ran and armed its timer in %d cycles (%d KiB released)", r.ScavBg, r.ScavBgKiB)
	}
	if r.Failure != "" {
		s += fmt.Sprintf("\nVM FAILED at request %d: %s\nguest stderr tail:\n%s", r.FailedAt, r.Failure, r.StderrTail)
	}
	return s
}

var (
	gcLine   = regexp.MustCompile(`(?m)^gc (\d+) @`)
	scavLine = regexp.MustCompile(`(?m)^scav (\d+) KiB work \(bg\)`)
)

// gcCounter follows the guest's stderr: the highest gctrace cycle number
// and the last bytes written.
type gcCounter struct {
	mu      sync.Mutex
	pending []byte
	max     int
	tail    []byte
	scavBg  int
	scavKiB int
}

func (c *gcCounter) write(fd int, b []byte) {
	if fd != 2 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tail = append(c.tail, b...)
	if len(c.tail) > 4096 {
		c.tail = c.tail[len(c.tail)-4096:]
	}
	c.pending = append(c.pending, b...)
	i := bytes.LastIndexByte(c.pending, '\n')
	if i < 0 {
		return
	}
	for _, m := range gcLine.FindAllSubmatch(c.pending[:i+1], -1) {
		if n, _ := strconv.Atoi(string(m[1])); n > c.max {
			c.max = n
		}
	}
	for _, m := range scavLine.FindAllSubmatch(c.pending[:i+1], -1) {
		if n, _ := strconv.Atoi(string(m[1])); n > 0 {
			c.scavBg++
			c.scavKiB += n
		}
	}
	c.pending = append(c.pending[:0], c.pending[i+1:]...)
}

// soak sends n requests through one worker VM the way a sidecar does: the
// inbound stream records its trace context, the app's outbound call (same
// x-request-id, no trace headers) is restored from it, then both complete.
// Header counts and value sizes vary per request so that the guest
// allocates and collects garbage many times.
func soak(t testing.TB, path string, profile envoysim.HostProfile, n int, env map[string]string) soakResult {
	return soakWith(t, path, profile, soakOpts{N: n, Env: env})
}

// soakOpts shapes a soak. SpikeEvery > 0 adds, every SpikeEvery requests, one
// request whose header map is SpikeBytes large (Envoy allows up to 8 MiB with
// max_request_headers_kb): the guest heap jumps, then shrinks back, which
// gives the background scavenger work and makes it sleep on a timer.
type soakOpts struct {
	N                      int
	Env                    map[string]string
	SpikeEvery, SpikeBytes int
	// Ctx, when set, compiles the module with it (function listeners).
	Ctx context.Context
	// Started, when set, is called once the VM is up and configured,
	// before the first request.
	Started func()
}

func soakWith(t testing.TB, path string, profile envoysim.HostProfile, o soakOpts) soakResult {
	t.Helper()
	n, env := o.N, o.Env
	var mod *envoysim.WasmModule
	var err error
	if o.Ctx != nil {
		mod, err = envoysim.LoadWasmModuleContext(o.Ctx, path, profile)
	} else {
		mod, err = envoysim.LoadWasmModule(path, profile)
	}
	if err != nil {
		t.Fatal(err)
	}
	gc := &gcCounter{}
	px, err := envoysim.NewWasmProxyWith(mod, envoysim.ProxyOptions{Workers: 1, Env: env, Stdio: gc.write})
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	policy, err := sidecar.Adapt(nil, sidecar.SidecarDownstream, true, "zipkin")
	if err != nil {
		t.Fatal(err)
	}
	in, err := envoysim.NewWasmFilter(px, "tracebridge-inbound", policy, false)
	if err != nil {
		t.Fatal(err)
	}
	outPolicy, err := sidecar.Adapt(nil, sidecar.SidecarDownstream, false, "zipkin")
	if err != nil {
		t.Fatal(err)
	}
	out, err := envoysim.NewWasmFilter(px, "tracebridge-outbound", outPolicy, false)
	if err != nil {
		t.Fatal(err)
	}
	if o.Started != nil {
		o.Started()
	}
	var envs []string
	for k, v := range env {
		envs = append(envs, k+"="+v)
	}
	res := soakResult{Profile: profile, Env: strings.Join(envs, " "), MemStart: px.MemoryBytes()[0], FailedAt: -1}
	filler := strings.Repeat("abcdefghijklmnopqrstuvwxyz0123456789", 256) // 9 KiB
	start := time.Now()
	for i := 0; i < n; i++ {
		rid := fmt.Sprintf("%08x-soak-4%03x-a000-%012x", i, i%4096, i)
		tid := fmt.Sprintf("%032x", uint64(i)*0x9e3779b97f4a7c15+1)
		req := &envoysim.Headers{}
		req.Add(":method", "GET")
		req.Add(":path", "/api/v1/items/"+strconv.Itoa(i))
		req.Add(":authority", "app:8080")
		req.Add("x-request-id", rid)
		req.Add("x-b3-traceid", tid)
		req.Add("x-b3-spanid", tid[16:])
		req.Add("x-b3-sampled", "1")
		req.Add("traceparent", "00-"+tid+"-"+tid[16:]+"-01")
		// 0–23 extra headers of 0–4 KiB each, and a baggage of 0–8 KiB.
		extra, size := i%24, (i*131)%4096
		for k := 0; k < extra; k++ {
			req.Add("x-filler-"+strconv.Itoa(k), filler[:(size+k*97)%4096])
		}
		req.Add("baggage", "k="+filler[:(i*977)%8192])
		if o.SpikeEvery > 0 && i%o.SpikeEvery == o.SpikeEvery-1 {
			for k := 0; k*8192 < o.SpikeBytes; k++ {
				req.Add("x-spike-"+strconv.Itoa(k), filler[:8192])
			}
		}
		for _, kv := range req.Pairs() {
			res.HeaderBytes += int64(len(kv[0]) + len(kv[1]))
		}
		inInfo := &envoysim.StreamInfo{Listener: "inbound", Direction: envoysim.Inbound, Source: "10.1.2.3:40000"}
		inS := in.NewStream(inInfo)
		if lr := inS.DecodeHeaders(req); lr != nil {
			t.Fatalf("request %d: local reply %+v", i, lr)
		}
		// The app's outbound call: the same request id, no trace context.
		oreq := &envoysim.Headers{}
		oreq.Add(":method", "GET")
		oreq.Add(":path", "/details/"+strconv.Itoa(i))
		oreq.Add(":authority", "details:9080")
		oreq.Add("x-request-id", rid)
		for k := 0; k < extra/3; k++ {
			oreq.Add("x-app-"+strconv.Itoa(k), filler[:(size*3+k)%2048])
		}
		outInfo := &envoysim.StreamInfo{Listener: "outbound", Direction: envoysim.Outbound, Source: "127.0.0.1:50000"}
		outS := out.NewStream(outInfo)
		outS.DecodeHeaders(oreq)
		oresp := &envoysim.Headers{}
		oresp.Add(":status", "200")
		oresp.Add("content-type", "application/json")
		outS.EncodeHeaders(oresp)
		outS.OnDone()
		resp := &envoysim.Headers{}
		resp.Add(":status", "200")
		resp.Add("x-resp", filler[:size/4])
		inS.EncodeHeaders(resp)
		inS.OnDone()
		if err := px.Failed(); err != nil {
			res.Failure, res.FailedAt = err.Error(), i
			break
		}
		for _, d := range outInfo.Decisions() {
			if d == "wasm:restored" {
				res.Restored++
			}
		}
		res.Requests++
	}
	res.Elapsed = time.Since(start)
	res.MemEnd = px.MemoryBytes()[0]
	res.Poll, res.Yield, res.Restricted = px.WASICalls()
	gc.mu.Lock()
	res.GCCycles, res.StderrTail = gc.max, string(gc.tail)
	res.ScavBg, res.ScavBgKiB = gc.scavBg, gc.scavKiB
	gc.mu.Unlock()
	return res
}

// soakRequests: TRACEBRIDGE_SOAK=1 runs the README's 1M; =N runs N; the
// default keeps make test short.
func soakRequests(t testing.TB) int {
	switch v := os.Getenv("TRACEBRIDGE_SOAK"); v {
	case "":
		if testing.Short() || raceEnabled {
			return 5000
		}
		return 30_000
	case "1":
		return 1_000_000
	default:
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TRACEBRIDGE_SOAK=%q: want 1 (one million) or a request count", v)
		}
		return n
	}
}

// TestSoak runs the compiled module under each host profile with the
// guest's gctrace on (vm_config.environment_variables GODEBUG=gctrace=1;
// the trace lines arrive through fd_write on fd 2, as Envoy logs them).
func TestSoak(t *testing.T) {
	path := modulePath(t)
	n := soakRequests(t)
	for _, p := range envoysim.HostProfiles() {
		t.Run(string(p), func(t *testing.T) {
			r := soak(t, path, p, n, map[string]string{"GODEBUG": "gctrace=1"})
			t.Log(r)
			if r.Failure != "" {
				t.Fatalf("the module died under %s", p)
			}
			if r.Requests != n || r.Restored != n {
				t.Errorf("%d of %d requests, %d restored", r.Requests, n, r.Restored)
			}
			if r.GCCycles < 10 {
				t.Errorf("only %d GC cycles: the soak does not exercise the collector", r.GCCycles)
			}
		})
	}
}

// buildProbe builds a tiny standard-Go reactor whose export sleeps with
// time.Sleep: a pending timer while the scheduler has nothing to run, the
// path of golang/go#78513 (runtime/netpoll_wasip1.go netpoll → poll_oneoff).
func buildProbe(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a Go module")
	}
	dir := t.TempDir()
	src := map[string]string{
		"go.mod": "module probe\n\ngo 1.26\n",
		"main.go": `package main

import "time"

//go:wasmexport sleep_ms
func sleepMs(ms int32) { time.Sleep(time.Duration(ms) * time.Millisecond) }

func main() {}
`,
	}
	for n, s := range src {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "probe.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the probe: %v\n%s", err, b)
	}
	return out
}

// TestGoTimerPath shows that the profiles reproduce golang/go#78513: a Go
// guest that idles with a pending timer calls poll_oneoff; under
// cpp-host-533 it gets 0 events and keeps polling until the timer is due,
// under cpp-host-427 ENOSYS makes the runtime throw "poll_oneoff failed" and
// the call traps.
func TestGoTimerPath(t *testing.T) {
	probe := buildProbe(t)
	for _, p := range envoysim.HostProfiles() {
		t.Run(string(p), func(t *testing.T) {
			mod, err := envoysim.LoadWasmModule(probe, p)
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			var mu sync.Mutex
			px, err := envoysim.NewWasmProxyWith(mod, envoysim.ProxyOptions{Workers: 1, Stdio: func(_ int, b []byte) {
				mu.Lock()
				stderr.Write(b)
				mu.Unlock()
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer px.Close()
			_, err = px.CallExport("sleep_ms", 2)
			poll, _, _ := px.WASICalls()
			mu.Lock()
			out := stderr.String()
			mu.Unlock()
			t.Logf("%s: time.Sleep(2ms) in an export: err=%v, poll_oneoff calls %d, guest stderr %q", p, err, poll, firstLines(out, 3))
			if poll == 0 {
				t.Errorf("the guest never called poll_oneoff")
			}
			switch p {
			case envoysim.ProfileCppHost533:
				if err != nil {
					t.Errorf("under %s the sleep should return: %v", p, err)
				}
			case envoysim.ProfileCppHost427:
				if err == nil || !strings.Contains(out, "poll_oneoff failed") {
					t.Errorf("under %s want the runtime's \"poll_oneoff failed\" throw and a trap; err=%v stderr=%q", p, err, out)
				}
			}
		})
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

// watched are the guest runtime functions on the way to poll_oneoff
// (Go 1.26 runtime/proc.go findRunnable → runtime/netpoll_wasip1.go
// netpoll) and what could arm a timer.
var watched = []string{
	"runtime.gopark", "runtime.findRunnable", "runtime.netpoll", "runtime.usleep",
	"runtime.gcParkAssist", "runtime.gcStart", "runtime.netpollGenericInit",
	"runtime.(*timers).addHeap", "runtime.(*scavengerState).sleep", "runtime.(*scavengerState).run",
	"runtime.notetsleepg", "runtime.Gosched",
}

// gcInMalloc counts GC cycles the guest started inside
// proxy_on_memory_allocate, where cpp-host restricts host calls.
const gcInMalloc = "gcStart inside proxy_on_memory_allocate"

type callCounter struct {
	mu     sync.Mutex
	n      map[string]int
	malloc int // depth of proxy_on_memory_allocate calls
}

// mallocListener tracks when the guest is inside proxy_on_memory_allocate.
type mallocListener struct{ c *callCounter }

func (l mallocListener) Before(context.Context, api.Module, api.FunctionDefinition, []uint64, experimental.StackIterator) {
	l.c.mu.Lock()
	l.c.malloc++
	l.c.mu.Unlock()
}

func (l mallocListener) After(context.Context, api.Module, api.FunctionDefinition, []uint64) {
	l.c.mu.Lock()
	l.c.malloc--
	l.c.mu.Unlock()
}

func (l mallocListener) Abort(context.Context, api.Module, api.FunctionDefinition, error) {
	l.After(context.TODO(), nil, nil, nil)
}

func (c *callCounter) factory() experimental.FunctionListenerFactory {
	return experimental.FunctionListenerFactoryFunc(func(def api.FunctionDefinition) experimental.FunctionListener {
		for _, e := range def.ExportNames() {
			if e == "proxy_on_memory_allocate" {
				return mallocListener{c}
			}
		}
		name := def.Name()
		for _, w := range watched {
			if w == name {
				return experimental.FunctionListenerFunc(func(context.Context, api.Module, api.FunctionDefinition, []uint64, experimental.StackIterator) {
					c.mu.Lock()
					c.n[name]++
					if name == "runtime.gcStart" && c.malloc > 0 {
						c.n[gcInMalloc]++
					}
					c.mu.Unlock()
				})
			}
		}
		return nil
	})
}

func (c *callCounter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for _, w := range watched {
		parts = append(parts, fmt.Sprintf("%s=%d", strings.TrimPrefix(w, "runtime."), c.n[w]))
	}
	parts = append(parts, fmt.Sprintf("(%s: %d)", gcInMalloc, c.n[gcInMalloc]))
	return strings.Join(parts, " ")
}

// buildNamed builds the module with make wasm's flags except -s -w, so the
// guest keeps its function names (the same code: stripping removes only
// symbols and DWARF).
func buildNamed(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the module")
	}
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "tracebridge-named.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", out, "./wasm-filter")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the named module: %v\n%s", err, b)
	}
	return out
}

// TestGuestSchedulerPath watches the guest runtime while requests flow
// under cpp-host-427: poll_oneoff is only reachable when the Go scheduler
// runs out of goroutines with a timer pending, which needs the export's
// goroutine to park. The probe (time.Sleep in an export) is the positive
// control: the same listener sees findRunnable → netpoll there.
func TestGuestSchedulerPath(t *testing.T) {
	if raceEnabled {
		t.Skip("guest runtime analysis: run without -race")
	}
	named := buildNamed(t)
	probe := buildProbe(t)
	p := envoysim.ProfileCppHost427

	pc := &callCounter{n: map[string]int{}}
	mod, err := envoysim.LoadWasmModuleContext(experimental.WithFunctionListenerFactory(context.Background(), pc.factory()), probe, p)
	if err != nil {
		t.Fatal(err)
	}
	px, err := envoysim.NewWasmProxyWith(mod, envoysim.ProxyOptions{Workers: 1, Stdio: func(int, []byte) {}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = px.CallExport("sleep_ms", 2)
	px.Close()
	t.Logf("probe, time.Sleep in an export: %v; %s", err, pc)
	if pc.n["runtime.netpoll"] == 0 {
		t.Errorf("the listener did not see the probe reach netpoll")
	}

	n := 10_000
	if s := soakRequests(t); s < n {
		n = s
	}
	for _, shape := range []struct {
		what string
		o    soakOpts
		env  map[string]string
	}{
		{"steady", soakOpts{N: n}, nil},
		{"8 MiB header maps every 500 requests", soakOpts{N: n / 2, SpikeEvery: 500, SpikeBytes: 8 << 20}, nil},
		// What an operator could set through vm_config.environment_variables:
		// a collector under pressure (assists) and a memory limit (scavenger
		// goal), with 8 MiB header maps every 100 requests.
		{"GOGC=5 GOMEMLIMIT=16MiB, 8 MiB header maps every 100 requests", soakOpts{N: n / 2, SpikeEvery: 100, SpikeBytes: 8 << 20},
			map[string]string{"GOGC": "5", "GOMEMLIMIT": "16MiB"}},
	} {
		c := &callCounter{n: map[string]int{}}
		var atStart map[string]int
		shape.o.Ctx = experimental.WithFunctionListenerFactory(context.Background(), c.factory())
		shape.o.Env = map[string]string{"GODEBUG": "gctrace=1,scavtrace=1"}
		for k, v := range shape.env {
			shape.o.Env[k] = v
		}
		shape.o.Started = func() {
			c.mu.Lock()
			atStart = maps.Clone(c.n)
			c.mu.Unlock()
		}
		r := soakWith(t, named, p, shape.o)
		t.Logf("%s: %s\nguest runtime calls (start-up included): %s", shape.what, r, c)
		if r.Failure != "" {
			t.Errorf("%s: the module died", shape.what)
		}
		if c.n["runtime.netpoll"] != 0 || r.Poll != 0 {
			t.Errorf("%s: the guest reached netpoll / poll_oneoff", shape.what)
		}
		// findRunnable calls netpoll only once netpoll is initialised,
		// which a timer added to a heap or a pollable file does. Neither
		// happened: no timer was armed while requests flowed.
		for _, f := range []string{"runtime.(*timers).addHeap", "runtime.netpollGenericInit", "runtime.(*scavengerState).sleep"} {
			if c.n[f] != atStart[f] {
				t.Errorf("%s: %s called %d times during requests", shape.what, f, c.n[f]-atStart[f])
			}
		}
		t.Logf("%s: during requests the scheduler ran %d times (gopark %d), always finding a goroutine to run",
			shape.what, c.n["runtime.findRunnable"]-atStart["runtime.findRunnable"], c.n["runtime.gopark"]-atStart["runtime.gopark"])
	}
}
