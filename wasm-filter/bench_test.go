package main

import (
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/tracebridge/tracebridge/engine"
	"github.com/tracebridge/tracebridge/wasm-filter/plugin"
	"github.com/tracebridge/tracebridge/wasm-filter/wasmtest"
)

// noopPackage is a module with the same bridge and SDK that does nothing: the
// baseline for the guest time of a request.
const noopPackage = "./wasm-filter/internal/noop"

// floorPackage records and restores with only the essential host calls and
// no engine, with the same bridge and SDK: the floor for any such plugin.
const floorPackage = "./wasm-filter/internal/floor"

// phases of one request, as Envoy drives them.
const (
	phaseCreate   = iota // proxy_on_context_create
	phaseRequest         // proxy_on_request_headers
	phaseResponse        // proxy_on_response_headers
	phaseDone            // proxy_on_log + proxy_on_delete
	numPhases
)

var phaseNames = [numPhases]string{"create", "reqhdr", "resphdr", "done"}

// cost accumulates the VM timing of requests of one kind, per phase.
type cost struct {
	n      int
	phase  [numPhases]wasmtest.Timing
	chunks []float64 // guest ns/req of each chunk (merge)
}

func (c *cost) add(p int, before, after wasmtest.Timing) {
	c.phase[p].Calls += after.Calls - before.Calls
	c.phase[p].Total += after.Total - before.Total
	c.phase[p].HostCalls += after.HostCalls - before.HostCalls
	c.phase[p].Host += after.Host - before.Host
}

// merge adds o's requests to c and remembers o's guest time per request as
// one chunk.
func (c *cost) merge(o *cost) {
	for p := range numPhases {
		c.phase[p].Calls += o.phase[p].Calls
		c.phase[p].Total += o.phase[p].Total
		c.phase[p].HostCalls += o.phase[p].HostCalls
		c.phase[p].Host += o.phase[p].Host
	}
	c.n += o.n
	c.chunks = append(c.chunks, perReq(o.sum().Guest(), o.n))
}

// quiet returns the lowest and the median guest ns/req of the chunks. Other
// work on the machine only ever adds time, so the lowest chunk is the best
// estimate of the module's own cost; the median shows the spread.
func (c *cost) quiet() (low, median float64) {
	s := slices.Clone(c.chunks)
	slices.Sort(s)
	return s[0], s[len(s)/2]
}

func (c *cost) sum() wasmtest.Timing {
	var t wasmtest.Timing
	for _, p := range c.phase {
		t.Calls += p.Calls
		t.Total += p.Total
		t.HostCalls += p.HostCalls
		t.Host += p.Host
	}
	return t
}

func perReq(d time.Duration, n int) float64 { return float64(d.Nanoseconds()) / float64(n) }

// exchange runs one request through host with every phase timed on vm.
func exchange(vm *wasmtest.VM, host proxytest.HostEmulator, c *cost, req, resp [][2]string) uint32 {
	t0 := vm.Timing()
	id := host.InitializeHttpContext()
	t1 := vm.Timing()
	host.CallOnRequestHeaders(id, req, false)
	t2 := vm.Timing()
	host.CallOnResponseHeaders(id, resp, false)
	t3 := vm.Timing()
	host.CompleteHttpContext(id)
	t4 := vm.Timing()
	if c != nil {
		c.add(phaseCreate, t0, t1)
		c.add(phaseRequest, t1, t2)
		c.add(phaseResponse, t2, t3)
		c.add(phaseDone, t3, t4)
		c.n++
	}
	return id
}

// benchHost starts an emulator on a fresh instance of a module ("" is the
// tracebridge module) with the default policy; release it when done.
func benchHost(b *testing.B, module string, o wasmtest.Options) (*wasmtest.VM, proxytest.HostEmulator, func()) {
	b.Helper()
	o.Module = module
	vm, err := wasmtest.New(o)
	if err != nil {
		b.Fatal(err)
	}
	host, release, err := wasmtest.StartHost(vm, nil)
	if err != nil {
		vm.Close()
		b.Fatal(err)
	}
	if host.StartVM() != types.OnVMStartStatusOK || host.StartPlugin() != types.OnPluginStartStatusOK {
		release()
		vm.Close()
		b.Fatalf("plugin did not start: %v", host.GetCriticalLogs())
	}
	return vm, host, func() { release(); vm.Close() }
}

func benchRequest(id string) (inbound, outbound [][2]string) {
	inbound = [][2]string{
		{":method", "GET"}, {":path", "/orders/42"}, {":authority", "orders.shop"}, {":scheme", "http"},
		{"user-agent", "curl/8.5.0"}, {"accept", "*/*"},
		{"traceparent", tp}, {"x-request-id", id},
	}
	outbound = [][2]string{
		{":method", "GET"}, {":path", "/stock/42"}, {":authority", "stock.shop"}, {":scheme", "http"},
		{"user-agent", "orders/1.0"}, {"accept", "*/*"},
		{"x-request-id", id},
	}
	return inbound, outbound
}

var benchResponse = [][2]string{{":status", "200"}, {"content-type", "application/json"}, {"content-length", "42"}}

// guestChunk and guestWarmup: requests measured per fresh instance, after
// warm-up requests that are not.
const guestChunk, guestWarmup = 1000, 300

// recordAndRestore runs n inbound (record) and n outbound (restore) requests
// through a fresh instance of module ("" is the tracebridge module) after a
// warm-up, and returns their costs.
func recordAndRestore(b *testing.B, module string, o wasmtest.Options, done, n int) (record, restore cost) {
	vm, host, release := benchHost(b, module, o)
	defer release()
	dir := func(d uint64) { host.SetProperty([]string{"xds", "listener_direction"}, directionProperty(d)) }
	for i := 0; i < guestWarmup+n; i++ {
		c1, c2 := &record, &restore
		if i < guestWarmup {
			c1, c2 = nil, nil
		}
		in, out := benchRequest("req-" + strconv.Itoa(done) + "-" + strconv.Itoa(i))
		dir(1)
		exchange(vm, host, c1, in, benchResponse)
		dir(2)
		id := exchange(vm, host, c2, out, benchResponse)
		if i == 0 {
			if v, ok := wasmtest.Header(host.GetCurrentRequestHeaders(id), "traceparent"); !ok || v[3:35] != tp[3:35] {
				b.Fatalf("outbound request not restored: %v", host.GetCurrentRequestHeaders(id))
			}
		}
	}
	if got, _ := host.GetCounterMetric(plugin.CounterName(engine.DecisionRestored, engine.Outbound)); got != uint64(guestWarmup+n) {
		b.Fatalf("restored %d of %d outbound requests", got, guestWarmup+n)
	}
	return record, restore
}

// BenchmarkGuestTime measures the guest's own time per request in the
// compiled module, separated from the host's: the same requests go through
// the tracebridge module and through a no-op module built with the same
// bridge and SDK, on the same host (proxytest's emulator behind wasmhost's
// host functions), interleaved in chunks so that both see the same machine
// load. Per iteration: the tracebridge module records an inbound request
// (traceparent + x-request-id: extract, emit, record in shared data) and
// restores an outbound one by its x-request-id; the no-op module sees the
// inbound request; the floor module (wasm-filter/internal/floor: the same
// host calls' essentials without the engine) records and restores the same
// requests as the tracebridge module. Each chunk runs on fresh instances
// after a warm-up.
//
// Metrics (ns per request unless noted): record/restore/noop/floor guest time,
// their differences to the no-op, host time, host calls per request, and
// the request-headers phase of each.
//
// GOGC for the guests: $TRACEBRIDGE_GUEST_GOGC (default: the Go default).
// $TRACEBRIDGE_GUEST_BASELINE names another build of the module (e.g. an
// earlier commit's) to run the same record/restore requests through in the
// same chunks: reported as baseline-record and baseline-restore.
func BenchmarkGuestTime(b *testing.B) {
	noop, err := wasmtest.EnsurePackage(noopPackage)
	if err != nil {
		b.Fatal(err)
	}
	floor, err := wasmtest.EnsurePackage(floorPackage)
	if err != nil {
		b.Fatal(err)
	}
	var o wasmtest.Options
	if v := os.Getenv("TRACEBRIDGE_GUEST_GOGC"); v != "" {
		o.Env = map[string]string{"GOGC": v}
	}
	// An earlier build of the module to compare with in the same run.
	baseline := os.Getenv("TRACEBRIDGE_GUEST_BASELINE")
	var allRecord, allRestore, allNone, allBaseRecord, allBaseRestore, allFloorRecord, allFloorRestore cost
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(guestChunk, b.N-done)
		var none cost // this chunk's
		record, restore := recordAndRestore(b, "", o, done, n)
		if baseline != "" {
			br, bs := recordAndRestore(b, baseline, o, done, n)
			allBaseRecord.merge(&br)
			allBaseRestore.merge(&bs)
		}
		fr, fs := recordAndRestore(b, floor, o, done, n)
		allFloorRecord.merge(&fr)
		allFloorRestore.merge(&fs)

		vm, host, release := benchHost(b, noop, o)
		for i := 0; i < guestWarmup+n; i++ {
			c := &none
			if i < guestWarmup {
				c = nil
			}
			in, _ := benchRequest("req-" + strconv.Itoa(done) + "-" + strconv.Itoa(i))
			exchange(vm, host, c, in, benchResponse)
		}
		release()
		done += n
		allRecord.merge(&record)
		allRestore.merge(&restore)
		allNone.merge(&none)
	}
	b.StopTimer()
	record, restore, none := allRecord, allRestore, allNone
	rec, res, nop := record.sum(), restore.sum(), none.sum()
	b.ReportMetric(perReq(rec.Guest(), record.n), "record-guest-ns/req")
	b.ReportMetric(perReq(res.Guest(), restore.n), "restore-guest-ns/req")
	b.ReportMetric(perReq(nop.Guest(), none.n), "noop-guest-ns/req")
	b.ReportMetric(perReq(rec.Guest(), record.n)-perReq(nop.Guest(), none.n), "record-over-noop-ns/req")
	b.ReportMetric(perReq(res.Guest(), restore.n)-perReq(nop.Guest(), none.n), "restore-over-noop-ns/req")
	for _, k := range []struct {
		name string
		c    *cost
	}{{"record", &record}, {"restore", &restore}, {"noop", &none}, {"floor-record", &allFloorRecord}, {"floor-restore", &allFloorRestore}, {"baseline-record", &allBaseRecord}, {"baseline-restore", &allBaseRestore}} {
		if len(k.c.chunks) == 0 {
			continue
		}
		low, median := k.c.quiet()
		b.ReportMetric(low, k.name+"-guest-lowest-chunk-ns/req")
		b.ReportMetric(median, k.name+"-guest-median-chunk-ns/req")
	}
	b.ReportMetric(perReq(rec.Host, record.n), "record-host-ns/req")
	b.ReportMetric(perReq(res.Host, restore.n), "restore-host-ns/req")
	b.ReportMetric(perReq(nop.Host, none.n), "noop-host-ns/req")
	b.ReportMetric(float64(rec.HostCalls)/float64(record.n), "record-hostcalls/req")
	b.ReportMetric(float64(res.HostCalls)/float64(restore.n), "restore-hostcalls/req")
	b.ReportMetric(float64(nop.HostCalls)/float64(none.n), "noop-hostcalls/req")
	b.ReportMetric(float64(allFloorRecord.sum().HostCalls)/float64(allFloorRecord.n), "floor-record-hostcalls/req")
	b.ReportMetric(float64(allFloorRestore.sum().HostCalls)/float64(allFloorRestore.n), "floor-restore-hostcalls/req")
	for _, k := range []struct {
		name string
		c    *cost
	}{{"record", &record}, {"restore", &restore}, {"noop", &none}, {"floor-record", &allFloorRecord}, {"floor-restore", &allFloorRestore}} {
		line := k.name + " guest ns/req by phase:"
		for p := range numPhases {
			line += " " + phaseNames[p] + " " + strconv.FormatFloat(perReq(k.c.phase[p].Guest(), k.c.n), 'f', 0, 64) +
				" (host " + strconv.FormatFloat(perReq(k.c.phase[p].Host, k.c.n), 'f', 0, 64) +
				", " + strconv.FormatFloat(float64(k.c.phase[p].HostCalls)/float64(k.c.n), 'f', 1, 64) + " calls)"
		}
		b.Log(line)
	}
}
