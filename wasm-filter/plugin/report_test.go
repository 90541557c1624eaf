package plugin

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/proxytest"

	"github.com/tracebridge/tracebridge/engine"
)

const clientSpansPolicy = `{"correlation":{"strategies":["key","soleInFlight"]},
 "clientSpans":{"enabled":true,"cluster":"zipkin-cluster","authority":"zipkin:9411","serviceName":"productpage.default","flushInterval":"50ms","timeout":"500ms"}}`

func (s *sidecar) spanCounter(outcome string) uint64 {
	s.t.Helper()
	v, err := s.host.GetCounterMetric(SpanCounterName(outcome))
	if err != nil {
		s.t.Fatal(err)
	}
	return v
}

// callouts returns the report calls made since the last look.
func (s *sidecar) callouts(seen *int) []proxytest.HttpCalloutAttribute {
	all := s.host.GetCalloutAttributesFromContext(proxytest.PluginContextID)
	out := all[*seen:]
	*seen = len(all)
	return out
}

// outboundCall runs an outbound call with a response status, to its end.
func (s *sidecar) outboundCall(status string) map[string]string {
	id, out := s.request(engine.Outbound, [][2]string{{":method", "GET"}, {":authority", "reviews:9080"}, {":path", "/reviews/0?u=1"}})
	s.host.CallOnResponseHeaders(id, [][2]string{{":status", status}}, false)
	s.host.CompleteHttpContext(id)
	// The emulator keeps the strings the filter gave it, which alias the
	// filter's result buffer (BorrowValues): copy them before the next call.
	for k, v := range out {
		out[k] = strings.Clone(v)
	}
	return out
}

type zipkinSpan struct {
	TraceID, ID, ParentID, Kind, Name string
	Duration                          int64
	LocalEndpoint                     struct{ ServiceName string }
	Tags                              map[string]string
}

func TestClientSpansReportedOnTick(t *testing.T) {
	cases := []struct {
		name     string
		answer   [][2]string
		sent     uint64
		failed   uint64
		inFlight bool
	}{
		{"collector 202", [][2]string{{":status", "202"}}, 2, 0, false},
		{"collector 500", [][2]string{{":status", "500"}}, 0, 2, false},
		{"call failed or timed out", nil, 0, 2, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSidecar(t, clientSpansPolicy)
			if p := s.host.GetTickPeriod(); p != 50 {
				t.Fatalf("tick period %d, want 50", p)
			}
			in, _ := s.request(engine.Inbound, [][2]string{{"traceparent", tpA}})
			a := s.outboundCall("200")
			b := s.outboundCall("503")
			if a["traceparent"] == tpA || a["traceparent"] == b["traceparent"] || a["x-b3-parentspanid"] != "00f067aa0ba902b7" {
				t.Fatalf("outbound calls not re-parented: %v / %v", a, b)
			}
			seen := 0
			if got := s.callouts(&seen); len(got) != 0 {
				t.Fatalf("a report was sent before the tick: %v", got)
			}
			s.host.Tick()
			calls := s.callouts(&seen)
			if len(calls) != 1 {
				t.Fatalf("%d report calls on the tick, want 1", len(calls))
			}
			call := calls[0]
			hdr := map[string]string{}
			for _, h := range call.Headers {
				hdr[h[0]] = h[1]
			}
			if call.Upstream != "zipkin-cluster" || hdr[":path"] != "/api/v2/spans" || hdr[":method"] != "POST" || hdr[":authority"] != "zipkin:9411" {
				t.Fatalf("report call %s %v", call.Upstream, hdr)
			}
			var spans []zipkinSpan
			if err := json.Unmarshal(call.Body, &spans); err != nil || len(spans) != 2 {
				t.Fatalf("body %s: %v", call.Body, err)
			}
			for i, want := range []struct{ tp, status string }{{a["traceparent"], "200"}, {b["traceparent"], "503"}} {
				sp := spans[i]
				if !strings.Contains(want.tp, "-"+sp.ID+"-") || sp.ParentID != "00f067aa0ba902b7" || sp.Kind != "CLIENT" ||
					sp.LocalEndpoint.ServiceName != "productpage.default" || sp.Tags["http.status_code"] != want.status ||
					sp.Tags["http.url"] != "http://reviews:9080/reviews/0" || sp.Tags["tracebridge.strategy"] != "soleInFlight" {
					t.Errorf("span %d %+v for %s", i, sp, want.tp)
				}
			}
			// No second call while one is under way.
			s.outboundCall("200")
			s.host.Tick()
			if got := s.callouts(&seen); len(got) != 0 {
				t.Fatalf("second report while the first is under way")
			}
			s.host.CallOnHttpCallResponse(call.CalloutID, c.answer, nil, nil)
			if s.spanCounter("sent") != c.sent || s.spanCounter("failed") != c.failed {
				t.Fatalf("sent %d failed %d, want %d %d", s.spanCounter("sent"), s.spanCounter("failed"), c.sent, c.failed)
			}
			s.host.Tick()
			if got := s.callouts(&seen); len(got) != 1 {
				t.Fatalf("the span left waiting was not sent on the next tick")
			}
			s.host.CompleteHttpContext(in)
		})
	}
}

func TestClientSpansBatchFullDropsAndCounts(t *testing.T) {
	s := newSidecar(t, `{"correlation":{"strategies":["soleInFlight"]},"clientSpans":{"enabled":true,"cluster":"z","maxBatchBytes":1024}}`)
	in, _ := s.request(engine.Inbound, [][2]string{{"traceparent", tpA}})
	for i := 0; i < 20; i++ {
		s.outboundCall("200")
	}
	full := s.spanCounter("full")
	if full == 0 || full == 20 {
		t.Fatalf("full drops %d of 20", full)
	}
	s.host.Tick()
	seen := 0
	calls := s.callouts(&seen)
	if len(calls) != 1 || len(calls[0].Body) > 1024 {
		t.Fatalf("report %d calls, body %d bytes", len(calls), len(calls[0].Body))
	}
	var spans []zipkinSpan
	if err := json.Unmarshal(calls[0].Body, &spans); err != nil || uint64(len(spans))+full != 20 {
		t.Fatalf("%d spans reported + %d dropped != 20 (%v)", len(spans), full, err)
	}
	s.host.CompleteHttpContext(in)
}

func TestClientSpansOffSendsNothing(t *testing.T) {
	s := newSidecar(t, `{"correlation":{"strategies":["soleInFlight"]}}`)
	in, _ := s.request(engine.Inbound, [][2]string{{"traceparent", tpA}})
	a := s.outboundCall("200")
	b := s.outboundCall("200")
	if a["traceparent"] != tpA || b["traceparent"] != tpA {
		t.Fatalf("default policy changed the restored context: %v %v", a, b)
	}
	if s.host.GetTickPeriod() != 0 {
		t.Fatal("tick period set with clientSpans off")
	}
	s.host.Tick()
	seen := 0
	if len(s.callouts(&seen)) != 0 {
		t.Fatal("report sent with clientSpans off")
	}
	s.host.CompleteHttpContext(in)
}

func TestClientSpansOTLP(t *testing.T) {
	s := newSidecar(t, `{"correlation":{"strategies":["soleInFlight"]},"clientSpans":{"enabled":true,"cluster":"otel","format":"otlp","serviceName":"productpage"}}`)
	in, _ := s.request(engine.Inbound, [][2]string{{"traceparent", tpA}})
	a := s.outboundCall("200")
	s.host.Tick()
	seen := 0
	calls := s.callouts(&seen)
	if len(calls) != 1 {
		t.Fatalf("%d report calls", len(calls))
	}
	hdr := map[string]string{}
	for _, h := range calls[0].Headers {
		hdr[h[0]] = h[1]
	}
	if calls[0].Upstream != "otel" || hdr[":path"] != "/v1/traces" || hdr[":authority"] != "otel" {
		t.Fatalf("report call %s %v", calls[0].Upstream, hdr)
	}
	var req struct {
		ResourceSpans []struct {
			Resource struct {
				Attributes []struct {
					Key   string
					Value struct{ StringValue string }
				}
			}
			ScopeSpans []struct {
				Spans []struct {
					TraceID, SpanID, ParentSpanID string
					Kind                          int
				}
			}
		}
	}
	if err := json.Unmarshal(calls[0].Body, &req); err != nil || len(req.ResourceSpans) != 1 {
		t.Fatalf("body %s: %v", calls[0].Body, err)
	}
	rs := req.ResourceSpans[0]
	sp := rs.ScopeSpans[0].Spans[0]
	if rs.Resource.Attributes[0].Value.StringValue != "productpage" || sp.Kind != 3 || sp.ParentSpanID != "00f067aa0ba902b7" ||
		!strings.Contains(a["traceparent"], "-"+sp.SpanID+"-") {
		t.Fatalf("span %+v, resource %+v, forwarded %s", sp, rs.Resource, a["traceparent"])
	}
	s.host.CallOnHttpCallResponse(calls[0].CalloutID, [][2]string{{":status", "200"}}, nil, nil)
	if s.spanCounter("sent") != 1 {
		t.Fatal("OTLP report not counted as sent")
	}
	s.host.CompleteHttpContext(in)
}

func TestClientSpansLostCallbackWrittenOff(t *testing.T) {
	clock := time.Unix(1_800_000_000, 0)
	SetClock(func() time.Time { return clock })
	t.Cleanup(func() { SetClock(nil) })
	s := newSidecar(t, `{"correlation":{"strategies":["soleInFlight"]},"clientSpans":{"enabled":true,"cluster":"z","flushInterval":"1s","timeout":"2s"}}`)
	in, _ := s.request(engine.Inbound, [][2]string{{"traceparent", tpA}})
	s.outboundCall("200")
	s.host.Tick()
	seen := 0
	first := s.callouts(&seen)
	if len(first) != 1 {
		t.Fatalf("%d report calls", len(first))
	}
	// No answer. Within timeout + one tick the call is still awaited.
	s.outboundCall("200")
	clock = clock.Add(2900 * time.Millisecond)
	s.host.Tick()
	if len(s.callouts(&seen)) != 0 || s.spanCounter("failed") != 0 {
		t.Fatal("call written off before its timeout and a tick had passed")
	}
	clock = clock.Add(200 * time.Millisecond)
	s.host.Tick()
	second := s.callouts(&seen)
	if s.spanCounter("failed") != 1 || len(second) != 1 {
		t.Fatalf("lost call: failed %d, new calls %d; want 1 and 1", s.spanCounter("failed"), len(second))
	}
	// The lost call's late answer changes nothing; the new call's counts.
	s.host.CallOnHttpCallResponse(first[0].CalloutID, [][2]string{{":status", "200"}}, nil, nil)
	if s.spanCounter("sent") != 0 || s.spanCounter("failed") != 1 {
		t.Fatalf("late answer counted: sent %d failed %d", s.spanCounter("sent"), s.spanCounter("failed"))
	}
	s.host.CallOnHttpCallResponse(second[0].CalloutID, [][2]string{{":status", "200"}}, nil, nil)
	if s.spanCounter("sent") != 1 {
		t.Fatalf("sent %d, want 1", s.spanCounter("sent"))
	}
	s.host.CompleteHttpContext(in)
}
