package main

import (
	"encoding/binary"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/tracebridge/tracebridge/conformance"
	"github.com/tracebridge/tracebridge/engine"
	"github.com/tracebridge/tracebridge/wasm-filter/plugin"
	"github.com/tracebridge/tracebridge/wasm-filter/wasmtest"
)

// runner gives a fresh plugin root: the Go plugin itself, or an instance of
// the compiled bin/tracebridge.wasm.
type runner struct {
	name string
	vm   func(t testing.TB, o wasmtest.Options) types.VMContext
}

var runners = []runner{
	{"native", func(testing.TB, wasmtest.Options) types.VMContext { return newVMContext() }},
	{"compiled", func(t testing.TB, o wasmtest.Options) types.VMContext { return wasmtest.NewVM(t, o) }},
}

func directionProperty(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// unset marks a property as absent: proxytest cannot delete properties or set
// empty ones, and the plugin treats this value like a missing one.
const unset = "\x00unset"

// TestConformance runs the conformance vectors through the plugin natively
// (proxytest) and through the compiled module (wazero), observing only what
// Envoy observes: the request and response header maps, local replies,
// filter state and the decision counters.
func TestConformance(t *testing.T) {
	f, err := conformance.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	clock := f.Clock()
	for _, r := range runners {
		t.Run(r.name, func(t *testing.T) {
			if r.name == "native" {
				plugin.SetClock(func() time.Time { return clock })
				defer plugin.SetClock(nil)
				for k, v := range f.Env() {
					t.Setenv(k, v)
				}
			}
			conformance.Run(t, f, func(t *testing.T, policy string) conformance.Host {
				vm := r.vm(t, wasmtest.Options{
					Env:      f.Env(),
					Walltime: func() (int64, int32) { return clock.Unix(), int32(clock.Nanosecond()) },
				})
				doc := f.Policy(policy)
				opt := proxytest.NewEmulatorOption().WithPluginConfiguration(doc)
				host, release, err := wasmtest.StartHost(vm, opt)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(release)
				if host.StartVM() != types.OnVMStartStatusOK || host.StartPlugin() != types.OnPluginStartStatusOK {
					t.Fatalf("plugin refused policy %q: %v", policy, host.GetCriticalLogs())
				}
				p, err := engine.ParsePolicy(doc)
				if err != nil {
					t.Fatal(err)
				}
				return &wasmHost{t: t, host: host, tags: p.Tags, streams: map[string]uint32{}}
			})
		})
	}
}

// wasmHost is a conformance.Host over the proxy-wasm host emulator.
type wasmHost struct {
	t       *testing.T
	host    proxytest.HostEmulator
	tags    []engine.TagRule
	streams map[string]uint32
	// callouts: report calls seen so far.
	callouts int
}

// ReportsClientSpans: the filter reports its client spans to the
// collector cluster, where ReportedClientSpan reads them.
func (h *wasmHost) ReportsClientSpans() bool { return true }

// ReportedClientSpan delivers a tick after a stream ended, answers the
// report call it makes with 202 and returns the one span it holds (nil:
// no call, no span). A tick after every stream end sends exactly the spans
// of that stream.
func (h *wasmHost) ReportedClientSpan(string) (*conformance.ClientSpan, error) {
	h.host.Tick()
	calls := h.host.GetCalloutAttributesFromContext(proxytest.PluginContextID)
	fresh := calls[h.callouts:]
	h.callouts = len(calls)
	var bodies [][]byte
	for _, c := range fresh {
		bodies = append(bodies, c.Body)
		h.host.CallOnHttpCallResponse(c.CalloutID, [][2]string{{":status", "202"}}, nil, nil)
	}
	return conformance.OneZipkinSpan(bodies)
}

func (h *wasmHost) counters() map[string]uint64 {
	out := map[string]uint64{}
	for d := 0; d < engine.DecisionCount; d++ {
		for _, dir := range []engine.Direction{engine.DirectionUnknown, engine.Inbound, engine.Outbound} {
			v, _ := h.host.GetCounterMetric(plugin.CounterName(engine.Decision(d), dir))
			out[engine.Decision(d).String()] += v
		}
	}
	return out
}

func (h *wasmHost) tagNames() []string {
	names := []string{engine.UntrustedTraceIDTag}
	for _, r := range h.tags {
		names = append(names, r.Name)
	}
	return names
}

func (h *wasmHost) Request(stream, direction string, peer conformance.Peer, headers []conformance.Header) (conformance.RequestOutcome, error) {
	var out conformance.RequestOutcome
	dir := uint64(0)
	switch direction {
	case "inbound":
		dir = 1
	case "outbound":
		dir = 2
	}
	h.host.SetProperty([]string{"xds", "listener_direction"}, directionProperty(dir))
	source := peer.Address
	if source == "" {
		source = unset
	}
	h.host.SetProperty([]string{"source", "address"}, []byte(source))
	// No mTLS peer: Envoy has no value for the attribute; an empty one reads the same.
	h.host.SetProperty([]string{"connection", "uri_san_peer_certificate"}, []byte(peer.Principal))
	for _, n := range h.tagNames() {
		h.host.SetProperty([]string{engine.FilterStateProperty + n}, []byte(unset))
	}
	before := h.counters()
	id := h.host.InitializeHttpContext()
	h.streams[stream] = id
	in := make([][2]string, len(headers))
	for i, kv := range headers {
		in[i] = [2]string{kv[0], kv[1]} // the plugin lower-cases, as Envoy does
	}
	h.host.CallOnRequestHeaders(id, in, false)
	for name, v := range h.counters() {
		if v > before[name] {
			out.Decisions = append(out.Decisions, name)
		}
	}
	if r := h.host.GetSentLocalResponse(id); r != nil {
		out.Reply = &conformance.Reply{Status: int(r.StatusCode), Body: string(r.Data)}
		return out, nil
	}
	got := h.host.GetCurrentRequestHeaders(id)
	for _, kv := range got {
		// Copied: natively the emulator keeps the strings the plugin gave
		// it, which alias the plugin's result buffer (BorrowValues) and
		// change with the next request; bindings must keep this one's.
		out.Headers = append(out.Headers, conformance.Header{strings.Clone(kv[0]), strings.Clone(kv[1])})
	}
	out.Tags = h.observeTags(got)
	return out, nil
}

// observeTags reads every tag where the wasm filter puts it: filter state
// (filterState and metadata sinks), else the header or baggage sink.
func (h *wasmHost) observeTags(req [][2]string) map[string]string {
	tags := map[string]string{}
	for _, n := range h.tagNames() {
		if v, err := h.host.GetProperty([]string{engine.FilterStateProperty + n}); err == nil && string(v) != unset {
			tags[n] = string(v)
		}
	}
	for _, r := range h.tags {
		if _, ok := tags[r.Name]; ok {
			continue
		}
		for _, sink := range r.To {
			switch sink {
			case "header":
				name := strings.ToLower(r.Header)
				if name == "" {
					name = engine.TagHeaderPrefix + strings.ToLower(r.Name)
				}
				if v, ok := wasmtest.Header(req, name); ok {
					tags[r.Name] = v
				}
			case "baggage":
				if v, ok := baggageMember(req, r.Name); ok {
					tags[r.Name] = v
				}
			}
		}
	}
	return tags
}

func baggageMember(req [][2]string, key string) (string, bool) {
	b, ok := wasmtest.Header(req, "baggage")
	if !ok {
		return "", false
	}
	for _, m := range strings.Split(b, ",") {
		k, v, _ := strings.Cut(m, "=")
		if strings.TrimSpace(k) == key {
			v, _, _ = strings.Cut(v, ";")
			d, err := url.PathUnescape(strings.TrimSpace(v))
			return d, err == nil
		}
	}
	return "", false
}

func (h *wasmHost) Response(stream string, headers []conformance.Header) ([]conformance.Header, error) {
	id := h.streams[stream]
	in := make([][2]string, len(headers))
	for i, kv := range headers {
		in[i] = [2]string{kv[0], kv[1]}
	}
	h.host.CallOnResponseHeaders(id, in, false)
	var out []conformance.Header
	for _, kv := range h.host.GetCurrentResponseHeaders(id) {
		out = append(out, conformance.Header{kv[0], kv[1]})
	}
	return out, nil
}

func (h *wasmHost) End(stream string) error {
	if id, ok := h.streams[stream]; ok {
		h.host.CompleteHttpContext(id)
		delete(h.streams, stream)
	}
	return nil
}

// fixedBytes is a reproducible random source. Not all zeros: Go's runtime
// treats an all-zero seed as a failed read and falls back to the clock
// (runtime/rand.go randinit).
type fixedBytes struct{}

func (fixedBytes) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i*31 + 7)
	}
	return len(p), nil
}

var _ io.Reader = fixedBytes{}

// injectedTraceID runs one request without context through a fresh compiled
// instance and returns the trace id the module injected.
func injectedTraceID(t *testing.T, o wasmtest.Options) string {
	t.Helper()
	// One emulator per process at a time: release it before the next call.
	host, release, err := wasmtest.StartHost(wasmtest.NewVM(t, o), proxytest.NewEmulatorOption().WithPluginConfiguration([]byte(`{"correlation":{"strategies":[]}}`)))
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if host.StartVM() != types.OnVMStartStatusOK || host.StartPlugin() != types.OnPluginStartStatusOK {
		t.Fatalf("plugin did not start: %v", host.GetCriticalLogs())
	}
	res := wasmtest.Exchange(host, wasmtest.Request{Headers: [][2]string{{":path", "/"}}})
	tp, ok := wasmtest.Header(res.RequestHeaders, "traceparent")
	if !ok || len(tp) != 55 {
		t.Fatalf("no traceparent injected: %v", res.RequestHeaders)
	}
	return tp[3:35]
}

// TestCompiledRandomSource: the guest's trace ids come from the host's
// entropy (wazero's default source is deterministic and would repeat ids
// across restarts); with a fixed source they are reproducible.
func TestCompiledRandomSource(t *testing.T) {
	a, b := injectedTraceID(t, wasmtest.Options{}), injectedTraceID(t, wasmtest.Options{})
	if a == b {
		t.Errorf("two fresh instances injected the same trace id %s", a)
	}
	z1, z2 := injectedTraceID(t, wasmtest.Options{Rand: fixedBytes{}}), injectedTraceID(t, wasmtest.Options{Rand: fixedBytes{}})
	if z1 != z2 {
		t.Errorf("with a fixed source the ids differ (%s, %s): the harness's source is not the guest's", z1, z2)
	}
}

const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

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
	if host.StartVM() != types.OnVMStartStatusOK || host.StartPlugin() != types.OnPluginStartStatusOK {
		t.Fatalf("plugin did not start: %v", host.GetCriticalLogs())
	}
	return vm, host
}

// TestCompiledMemoryFlat sends 250k requests through one instance of the
// compiled module (inbound: parse, translate, record in shared data), each
// completed with proxy_on_log and proxy_on_delete, and requires the guest's
// linear memory not to grow after warm-up. The module allocates about four
// objects per request, so the Go heap reaches its plateau only after some
// tens of thousands of requests (seen between 20k and 60k): the warm-up is
// 100k.
func TestCompiledMemoryFlat(t *testing.T) {
	const warmup, total = 100_000, 250_000
	if testing.Short() {
		t.Skip("250k requests; skipped with -short")
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
	got, _ := host.GetCounterMetric(plugin.CounterName(engine.DecisionRecorded, engine.Inbound))
	if got != total {
		t.Fatalf("recorded counter = %d, want %d", got, total)
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
