package envoysim_test

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tracebridge/tracebridge/e2e/sim/envoysim"
)

// BenchmarkClientSpansCollector: the time of one inbound request and its
// three outbound calls through the compiled module (one worker VM), with
// clientSpans off, and on with the collector answering 202, answering 500,
// slower than the report timeout, or away. A request never waits for the
// report, so the figures should not move with the collector; the worker's
// memory after the run shows the batch bound holds.
func BenchmarkClientSpansCollector(b *testing.B) {
	path := modulePath(b)
	mod, err := envoysim.LoadWasmModule(path, envoysim.DefaultHostProfile)
	if err != nil {
		b.Fatal(err)
	}
	const cluster = "outbound|9411||zipkin.istio-system.svc.cluster.local"
	for _, c := range []struct {
		name   string
		on     bool
		status int
		delay  time.Duration
		away   bool
	}{
		{"off", false, 202, 0, false},
		{"on-202", true, 202, 0, false},
		{"on-500", true, 500, 0, false},
		{"on-slow", true, 202, 300 * time.Millisecond, false},
		{"on-away", true, 0, 0, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			col := &collector{status: c.status, delay: c.delay}
			srv := httptest.NewServer(col)
			addr := strings.TrimPrefix(srv.URL, "http://")
			if c.away {
				srv.Close()
			} else {
				defer srv.Close()
			}
			px, err := envoysim.NewWasmProxyWith(mod, envoysim.ProxyOptions{Workers: 1,
				Clusters: map[string]string{cluster: addr}, NodeMetadata: map[string]string{"WORKLOAD_NAME": "productpage"}})
			if err != nil {
				b.Fatal(err)
			}
			defer px.Close()
			policy := `{"correlation":{"strategies":["soleInFlight"]}}`
			if c.on {
				policy = `{"correlation":{"strategies":["soleInFlight"]},"clientSpans":{"enabled":true,"cluster":"` + cluster + `","flushInterval":"50ms","timeout":"100ms"}}`
			}
			f, err := envoysim.NewWasmFilter(px, "tracebridge", []byte(policy), false)
			if err != nil {
				b.Fatal(err)
			}
			resp := &envoysim.Headers{}
			resp.Add(":status", "200")
			b.ResetTimer()
			for b.Loop() {
				in := &envoysim.Headers{}
				in.Add(":method", "GET")
				in.Add(":path", "/productpage")
				in.Add(":authority", "productpage:9080")
				in.Add("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
				inS := f.NewStream(&envoysim.StreamInfo{Listener: "inbound", Direction: envoysim.Inbound})
				inS.DecodeHeaders(in)
				for i := 0; i < 3; i++ {
					out := &envoysim.Headers{}
					out.Add(":method", "GET")
					out.Add(":path", "/reviews/0")
					out.Add(":authority", "reviews:9080")
					s := f.NewStream(&envoysim.StreamInfo{Listener: "outbound", Direction: envoysim.Outbound})
					s.DecodeHeaders(out)
					s.EncodeHeaders(resp)
					s.OnDone()
				}
				inS.EncodeHeaders(resp)
				inS.OnDone()
			}
			b.StopTimer()
			cs := px.Counters()
			for _, o := range []string{"sent", "full", "failed"} {
				b.ReportMetric(float64(cs["outcome=.="+o+";.;tracebridge_client_spans_total"]), "spans-"+o)
			}
			b.ReportMetric(float64(px.MemoryBytes()[0])/(1<<20), "vm-MiB")
		})
	}
}
