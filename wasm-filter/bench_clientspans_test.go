package main

import (
	"os"
	"strconv"
	"testing"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/tracebridge/tracebridge/wasm-filter/plugin"
	"github.com/tracebridge/tracebridge/wasm-filter/wasmtest"
)

// clientSpansPolicy is the default policy with clientSpans on; the tick is
// driven by the benchmark.
const clientSpansPolicy = `{"clientSpans":{"enabled":true,"cluster":"zipkin","flushInterval":"1s"}}`

// spansPerTick: outbound requests between two ticks (a tick per second at
// 100 requests per second per worker).
const spansPerTick = 100

// restoreWithPolicy runs the record/restore requests of recordAndRestore
// through a fresh instance of the tracebridge module under policy and
// returns the cost of the outbound requests. With report, every
// spansPerTick requests a tick sends the batch and the collector's 202 is
// delivered; both are timed and charged to the requests of that batch.
func restoreWithPolicy(b *testing.B, policy string, report bool, done, n int) (restore cost, tick wasmtest.Timing) {
	var o wasmtest.Options
	if v := os.Getenv("TRACEBRIDGE_GUEST_GOGC"); v != "" {
		o.Env = map[string]string{"GOGC": v}
	}
	vm, err := wasmtest.New(o)
	if err != nil {
		b.Fatal(err)
	}
	defer vm.Close()
	host, release, err := wasmtest.StartHost(vm, proxytest.NewEmulatorOption().WithPluginConfiguration([]byte(policy)))
	if err != nil {
		b.Fatal(err)
	}
	defer release()
	if host.StartVM() != types.OnVMStartStatusOK || host.StartPlugin() != types.OnPluginStartStatusOK {
		b.Fatalf("plugin did not start: %v", host.GetCriticalLogs())
	}
	dir := func(d uint64) { host.SetProperty([]string{"xds", "listener_direction"}, directionProperty(d)) }
	seen := 0
	for i := 0; i < guestWarmup+n; i++ {
		c := &restore
		if i < guestWarmup {
			c = nil
		}
		in, out := benchRequest("req-" + strconv.Itoa(done) + "-" + strconv.Itoa(i))
		dir(1)
		exchange(vm, host, nil, in, benchResponse)
		dir(2)
		exchange(vm, host, c, out, benchResponse)
		if report && (i+1)%spansPerTick == 0 {
			t0 := vm.Timing()
			host.Tick()
			calls := host.GetCalloutAttributesFromContext(proxytest.PluginContextID)
			for _, call := range calls[seen:] {
				host.CallOnHttpCallResponse(call.CalloutID, [][2]string{{":status", "202"}}, nil, nil)
			}
			seen = len(calls)
			t1 := vm.Timing()
			if c != nil {
				restore.phase[phaseDone].Calls += t1.Calls - t0.Calls
				restore.phase[phaseDone].Total += t1.Total - t0.Total
				restore.phase[phaseDone].HostCalls += t1.HostCalls - t0.HostCalls
				restore.phase[phaseDone].Host += t1.Host - t0.Host
				tick.Total += t1.Total - t0.Total
				tick.Host += t1.Host - t0.Host
				tick.Calls++
			}
		}
	}
	if report {
		sent, _ := host.GetCounterMetric(plugin.SpanCounterName("sent"))
		if want := uint64((guestWarmup + n) / spansPerTick * spansPerTick); sent != want {
			b.Fatalf("%d client spans sent, want %d (failed or dropped: %v)", sent, want, host.GetCriticalLogs())
		}
	}
	return restore, tick
}

// BenchmarkGuestTimeClientSpans: the guest time of an outbound request the
// module restores, with clientSpans off (the default policy) and on (a
// CLIENT span started, finished, encoded into the batch, and its share of
// the tick that sends the batch every spansPerTick requests and of the
// response callback), interleaved in chunks as BenchmarkGuestTime.
func BenchmarkGuestTimeClientSpans(b *testing.B) {
	var off, on cost
	var ticks wasmtest.Timing
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(guestChunk, b.N-done)
		// Alternate which instance runs first in a chunk, so that neither
		// is always the second on a warmer or more loaded machine.
		var r0, r1 cost
		var tk wasmtest.Timing
		if (done/guestChunk)%2 == 0 {
			r0, _ = restoreWithPolicy(b, "{}", false, done, n)
			r1, tk = restoreWithPolicy(b, clientSpansPolicy, true, done, n)
		} else {
			r1, tk = restoreWithPolicy(b, clientSpansPolicy, true, done, n)
			r0, _ = restoreWithPolicy(b, "{}", false, done, n)
		}
		off.merge(&r0)
		on.merge(&r1)
		ticks.Total += tk.Total
		ticks.Host += tk.Host
		ticks.Calls += tk.Calls
		done += n
	}
	b.StopTimer()
	for _, k := range []struct {
		name string
		c    *cost
	}{{"restore-off", &off}, {"restore-clientspans", &on}} {
		low, median := k.c.quiet()
		b.ReportMetric(low, k.name+"-guest-lowest-chunk-ns/req")
		b.ReportMetric(median, k.name+"-guest-median-chunk-ns/req")
		b.ReportMetric(float64(k.c.sum().HostCalls)/float64(k.c.n), k.name+"-hostcalls/req")
		line := k.name + " guest ns/req by phase:"
		for p := range numPhases {
			line += " " + phaseNames[p] + " " + strconv.FormatFloat(perReq(k.c.phase[p].Guest(), k.c.n), 'f', 0, 64) +
				" (" + strconv.FormatFloat(float64(k.c.phase[p].HostCalls)/float64(k.c.n), 'f', 1, 64) + " calls)"
		}
		b.Log(line)
	}
	if ticks.Calls > 0 {
		b.ReportMetric(float64((ticks.Total-ticks.Host).Nanoseconds())/float64(ticks.Calls), "tick-and-callback-guest-ns/batch")
	}
}
