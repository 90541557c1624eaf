package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/tracebridge/tracebridge/wasm-filter/probe"
	"github.com/tracebridge/tracebridge/wasm-filter/wasmtest"
)

// runner gives a fresh plugin root: the Go plugin itself, or an instance of
// the compiled bin/tracebridge.wasm.
type runner struct {
	name string
	vm   func(t *testing.T) types.VMContext
}

var runners = []runner{
	{"native", func(*testing.T) types.VMContext { return newVMContext() }},
	{"compiled", func(t *testing.T) types.VMContext { return wasmtest.NewVM(t, wasmtest.Options{}) }},
}

func directionProperty(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

// observation is everything the probe leaves on the host in one scenario,
// with the random nonce reduced to its shape.
type observation struct {
	VMStart, PluginStart bool
	Results              []wasmtest.Result
	Counter              uint64
	Info, Error, Crit    []string
}

var nonceShape = regexp.MustCompile(`^[0-9a-f]{16}$`)

func observe(t *testing.T, vm types.VMContext, opt *proxytest.EmulatorOption, reqs []wasmtest.Request) observation {
	t.Helper()
	// Each runner needs its own emulator in turn: release this one before
	// the next observation starts.
	host, release, err := wasmtest.StartHost(vm, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	var o observation
	o.VMStart = bool(host.StartVM())
	o.PluginStart = bool(host.StartPlugin())
	if o.PluginStart {
		for _, req := range reqs {
			res := wasmtest.Exchange(host, req)
			res.ContextID = 0 // proxytest numbers contexts process-wide
			for i, kv := range res.ResponseHeaders {
				if kv[0] == probe.NonceHeader {
					if !nonceShape.MatchString(kv[1]) {
						t.Errorf("nonce %q is not 16 hex digits", kv[1])
					}
					res.ResponseHeaders[i][1] = "<nonce>"
				}
			}
			o.Results = append(o.Results, res)
		}
		o.Counter, _ = host.GetCounterMetric(probe.RequestsMetric)
	}
	o.Info, o.Error, o.Crit = host.GetInfoLogs(), host.GetErrorLogs(), host.GetCriticalLogs()
	return o
}

func manyHeaders(n int) [][2]string {
	h := [][2]string{{":method", "GET"}, {":path", "/many"}}
	for i := len(h); i < n; i++ {
		h = append(h, [2]string{fmt.Sprintf("x-h-%02d", i), strconv.Itoa(i)})
	}
	return h
}

// TestProbeNativeAndCompiled runs the probe scenarios natively and through the
// compiled module and requires identical observations, plus the expected
// values, so the two cannot agree on a wrong answer.
func TestProbeNativeAndCompiled(t *testing.T) {
	reqs := []wasmtest.Request{
		{Headers: [][2]string{{":method", "GET"}, {":path", "/a"}, {"traceparent", tp}}},
		{Headers: [][2]string{{":path", "/b"}}, ResponseHeaders: [][2]string{{":status", "200"}}},
		{Headers: manyHeaders(40)},
	}
	cases := []struct {
		name      string
		opt       func() *proxytest.EmulatorOption
		direction string
		header    string
	}{
		{"inbound", func() *proxytest.EmulatorOption {
			return proxytest.NewEmulatorOption().WithProperty([]string{"xds", "listener_direction"}, directionProperty(1))
		}, "inbound", probe.DefaultProbeHeader},
		{"outbound-configured", func() *proxytest.EmulatorOption {
			return proxytest.NewEmulatorOption().
				WithProperty([]string{"xds", "listener_direction"}, directionProperty(2)).
				WithPluginConfiguration([]byte("x-probe-count"))
		}, "outbound", "x-probe-count"},
		{"no-direction", proxytest.NewEmulatorOption, "unknown", probe.DefaultProbeHeader},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []observation
			for _, r := range runners {
				got = append(got, observe(t, r.vm(t), c.opt(), reqs))
			}
			native, compiled := got[0], got[1]
			if !reflect.DeepEqual(native, compiled) {
				t.Fatalf("native and compiled runs differ\nnative:   %+v\ncompiled: %+v", native, compiled)
			}
			o := native
			if !o.VMStart || !o.PluginStart || len(o.Results) != len(reqs) {
				t.Fatalf("start %v/%v, %d results", o.VMStart, o.PluginStart, len(o.Results))
			}
			for i, res := range o.Results {
				req := reqs[i]
				want := map[string]string{
					c.header:              strconv.Itoa(len(req.Headers)),
					probe.DirectionHeader: c.direction,
					probe.SeqHeader:       strconv.Itoa(i + 1),
				}
				for name, v := range want {
					if got, _ := wasmtest.Header(res.RequestHeaders, name); got != v {
						t.Errorf("request %d: %s = %q, want %q", i, name, got, v)
					}
				}
				traceID := "00000000000000000000000000000000"
				if i == 0 {
					traceID = "0af7651916cd43dd8448eb211c80319c"
				}
				wantTR := fmt.Sprintf("00-%s-%016x-01", traceID, i+1)
				if got, _ := wasmtest.Header(res.ResponseHeaders, probe.TraceResponse); got != wantTR {
					t.Errorf("request %d: traceresponse = %q, want %q", i, got, wantTR)
				}
				if len(res.RequestHeaders) != len(req.Headers)+3 {
					t.Errorf("request %d: %d headers after the plugin, want %d", i, len(res.RequestHeaders), len(req.Headers)+3)
				}
			}
			if o.Counter != uint64(len(reqs)) {
				t.Errorf("counter %s = %d, want %d", probe.RequestsMetric, o.Counter, len(reqs))
			}
			if len(o.Info) != 1 || len(o.Error) != 0 || len(o.Crit) != 0 {
				t.Errorf("logs: info %q error %q critical %q", o.Info, o.Error, o.Crit)
			}
		})
	}
}

func TestProbeRefusesBadConfiguration(t *testing.T) {
	for _, r := range runners {
		t.Run(r.name, func(t *testing.T) {
			opt := proxytest.NewEmulatorOption().WithPluginConfiguration([]byte("Not A Header"))
			o := observe(t, r.vm(t), opt, nil)
			if !o.VMStart || o.PluginStart {
				t.Fatalf("start %v/%v, want the plugin refused", o.VMStart, o.PluginStart)
			}
			if len(o.Crit) != 1 || !regexp.MustCompile(`invalid header name "Not A Header"`).MatchString(o.Crit[0]) {
				t.Fatalf("critical logs %q", o.Crit)
			}
		})
	}
}

// nonce runs one exchange on a fresh compiled instance and returns the probe's
// random nonce.
func nonce(t *testing.T, o wasmtest.Options) string {
	t.Helper()
	host, release, err := wasmtest.StartHost(wasmtest.NewVM(t, o), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	host.StartVM()
	host.StartPlugin()
	res := wasmtest.Exchange(host, wasmtest.Request{Headers: [][2]string{{":path", "/"}}})
	v, _ := wasmtest.Header(res.ResponseHeaders, probe.NonceHeader)
	return v
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

var _ io.Reader = zeros{}

// TestCompiledRandomSource checks that the guest's randomness comes from the
// harness: a real source by default (fresh instances differ; wazero's default
// would repeat), the given reader otherwise.
func TestCompiledRandomSource(t *testing.T) {
	a, b := nonce(t, wasmtest.Options{}), nonce(t, wasmtest.Options{})
	if a == b || !nonceShape.MatchString(a) {
		t.Errorf("two fresh instances drew nonces %q and %q", a, b)
	}
	if z := nonce(t, wasmtest.Options{Rand: zeros{}}); z != "0000000000000000" {
		t.Errorf("with an all-zero source the nonce is %q", z)
	}
}

var memoryRequest = wasmtest.Request{
	Headers: [][2]string{
		{":method", "GET"}, {":path", "/memory"}, {":authority", "svc.ns"},
		{"traceparent", tp}, {"x-request-id", "5e1f1c1e-8a3b-4b1c-9d2e-1f2a3b4c5d6e"},
	},
	ResponseHeaders: [][2]string{{":status", "200"}},
}

// sendRequests runs requests [from, to) on host, calling at(i) after each.
func sendRequests(host proxytest.HostEmulator, from, to int, at func(i int)) {
	for i := from; i < to; i++ {
		id := host.InitializeHttpContext()
		host.CallOnRequestHeaders(id, memoryRequest.Headers, false)
		host.CallOnResponseHeaders(id, memoryRequest.ResponseHeaders, false)
		host.CompleteHttpContext(id)
		if at != nil {
			at(i + 1)
		}
	}
}

func startMemoryHost(t *testing.T, o wasmtest.Options) (*wasmtest.VM, proxytest.HostEmulator) {
	t.Helper()
	vm := wasmtest.NewVM(t, o)
	opt := proxytest.NewEmulatorOption().WithProperty([]string{"xds", "listener_direction"}, directionProperty(1))
	host := wasmtest.NewHost(t, vm, opt)
	if !bool(host.StartVM()) || !bool(host.StartPlugin()) {
		t.Fatal("probe did not start")
	}
	return vm, host
}

// TestCompiledMemoryFlat sends 200k requests through one instance of the
// compiled module, each completed with proxy_on_log and proxy_on_delete, and
// requires the guest's linear memory not to grow after warm-up: the bridge
// and the SDK must not keep per-request state.
func TestCompiledMemoryFlat(t *testing.T) {
	const warmup, total = 20_000, 200_000
	if testing.Short() {
		t.Skip("200k requests; skipped with -short")
	}
	vm, host := startMemoryHost(t, wasmtest.Options{})
	initial := vm.MemorySize()
	var atWarmup uint32
	start := time.Now()
	sendRequests(host, 0, total, func(i int) {
		if i == warmup {
			atWarmup = vm.MemorySize()
		}
	})
	elapsed := time.Since(start)
	end := vm.MemorySize()
	t.Logf("%d requests in %v: %v per request with the emulator, of which guest %v, host functions %v; guest memory %d KiB after start, %d KiB after warm-up, %d KiB at the end",
		total, elapsed.Round(time.Millisecond), elapsed/total, vm.Timing().Guest()/total, vm.Timing().Host/total,
		initial>>10, atWarmup>>10, end>>10)
	if end != atWarmup {
		t.Fatalf("guest linear memory grew from %d to %d bytes after warm-up", atWarmup, end)
	}
	if got, _ := host.GetCounterMetric(probe.RequestsMetric); got != total {
		t.Fatalf("counter = %d, want %d", got, total)
	}
}

// TestCompiledMemoryLeaksWithoutDelete shows that the flat-memory test can
// fail: without proxy_on_delete (proxytest's behaviour) the SDK keeps every
// stream context and the guest grows.
func TestCompiledMemoryLeaksWithoutDelete(t *testing.T) {
	const warmup, total = 5_000, 30_000
	if testing.Short() {
		t.Skip("30k requests; skipped with -short")
	}
	vm, host := startMemoryHost(t, wasmtest.Options{KeepContexts: true})
	var atWarmup uint32
	sendRequests(host, 0, total, func(i int) {
		if i == warmup {
			atWarmup = vm.MemorySize()
		}
	})
	end := vm.MemorySize()
	t.Logf("without proxy_on_delete: %d KiB after warm-up, %d KiB after %d requests", atWarmup>>10, end>>10, total)
	if end <= atWarmup {
		t.Fatalf("guest memory did not grow without proxy_on_delete (%d bytes): the memory test would not see a leak", end)
	}
}

// BenchmarkCompiledRequest is one request (headers both ways, completion)
// through the compiled module and proxytest's emulator. Most of the time is
// the emulator's; compare with BenchmarkNativeRequest.
func BenchmarkCompiledRequest(b *testing.B) {
	benchRequest(b, func(tb testing.TB) types.VMContext { return wasmtest.NewVM(tb, wasmtest.Options{}) })
}

// BenchmarkNativeRequest is the same request through the plugin under plain Go.
func BenchmarkNativeRequest(b *testing.B) {
	benchRequest(b, func(testing.TB) types.VMContext { return newVMContext() })
}

// benchRequest reports, for the compiled module, the guest's own time per
// request (guest-ns/req) apart from the time in host functions
// (host-ns/req); the rest of ns/op is proxytest's emulator.
func benchRequest(b *testing.B, newVM func(testing.TB) types.VMContext) {
	vm := newVM(b)
	host := wasmtest.NewHost(b, vm, nil)
	host.StartVM()
	host.StartPlugin()
	headers := [][2]string{{":method", "GET"}, {":path", "/bench"}, {"traceparent", tp}}
	resp := [][2]string{{":status", "200"}}
	compiled, _ := vm.(*wasmtest.VM)
	if compiled != nil {
		compiled.ResetTiming()
	}
	b.ResetTimer()
	for range b.N {
		id := host.InitializeHttpContext()
		host.CallOnRequestHeaders(id, headers, false)
		host.CallOnResponseHeaders(id, resp, false)
		host.CompleteHttpContext(id)
	}
	b.StopTimer()
	if compiled != nil {
		t := compiled.Timing()
		b.ReportMetric(float64(t.Guest().Nanoseconds())/float64(b.N), "guest-ns/req")
		b.ReportMetric(float64(t.Host.Nanoseconds())/float64(b.N), "host-ns/req")
	}
}
