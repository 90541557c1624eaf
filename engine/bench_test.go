package engine

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/propagation"
)

// The engine per request, and beside it in the same run the equivalent
// extract+inject with OpenTelemetry-Go's TraceContext and contrib B3
// propagators (the baseline in BENCHMARKS.md). Both read a request's headers
// and produce the W3C + B3-multi headers to forward.

var benchRequests = map[string]HeaderList{
	"a_valid_w3c": {
		{":path", "/productpage"}, {"user-agent", "curl/8"}, {"x-request-id", "7f3e8b0c-1d2a-4c4b-9a55-0e6f1c2d3b4a"},
		{"traceparent", inboundTP},
	},
	"b_valid_b3multi": {
		{":path", "/productpage"}, {"user-agent", "curl/8"}, {"x-request-id", "7f3e8b0c-1d2a-4c4b-9a55-0e6f1c2d3b4a"},
		{"x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"}, {"x-b3-spanid", "e457b5a2e4d86bd1"},
		{"x-b3-parentspanid", "05e3ac9a4f6e3b90"}, {"x-b3-sampled", "1"},
	},
	"c_no_context_inject": {
		{":path", "/productpage"}, {"user-agent", "curl/8"}, {"x-request-id", "7f3e8b0c-1d2a-4c4b-9a55-0e6f1c2d3b4a"},
	},
	"d_invalid_repair": {
		{":path", "/productpage"}, {"user-agent", "curl/8"}, {"x-request-id", "7f3e8b0c-1d2a-4c4b-9a55-0e6f1c2d3b4a"},
		{"traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
		{"x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"}, {"x-b3-spanid", "e457b5a2e4d86bd1"}, {"x-b3-sampled", "1"},
	},
}

func BenchmarkEngine(b *testing.B) {
	// Correlation off: these cases measure parse/validate/translate, the
	// work the OpenTelemetry baseline also does. Recording and restoring are
	// measured by BenchmarkEngineRestoreByKey and BenchmarkEngineRecord.
	e := mustEngine(b, `{"correlation":{"strategies":[]}}`, nil)
	for _, name := range []string{"a_valid_w3c", "b_valid_b3multi", "c_no_context_inject", "d_invalid_repair"} {
		h := benchRequests[name]
		b.Run(name, func(b *testing.B) {
			var st Stream
			var res Result
			req := Request{Headers: h, Direction: Inbound}
			b.ReportAllocs()
			for b.Loop() {
				st = Stream{}
				e.OnRequest(&st, &req, &res)
			}
		})
	}
}

func BenchmarkEngineRestoreByKey(b *testing.B) {
	store := NewMemoryStore(4096, time.Minute, nil)
	e := mustEngine(b, `{}`, store)
	var st Stream
	var res Result
	e.OnRequest(&st, &Request{Headers: benchRequests["a_valid_w3c"], Direction: Inbound}, &res)
	out := HeaderList{{":path", "/details"}, {"user-agent", "Go-http-client/1.1"}, {"x-request-id", "7f3e8b0c-1d2a-4c4b-9a55-0e6f1c2d3b4a"}}
	req := Request{Headers: out, Direction: Outbound}
	b.ReportAllocs()
	for b.Loop() {
		st = Stream{}
		e.OnRequest(&st, &req, &res)
	}
	if !res.Decisions.Has(DecisionRestored) {
		b.Fatal("benchmark request was not restored")
	}
}

func BenchmarkEngineRecord(b *testing.B) {
	store := NewMemoryStore(4096, time.Minute, nil)
	e := mustEngine(b, `{}`, store)
	req := Request{Headers: benchRequests["a_valid_w3c"], Direction: Inbound}
	var st Stream
	var res Result
	b.ReportAllocs()
	for b.Loop() {
		st = Stream{}
		e.OnRequest(&st, &req, &res)
	}
}

// headerListCarrier lets the OpenTelemetry propagators read a HeaderList.
type headerListCarrier struct{ h HeaderList }

func (c headerListCarrier) Get(k string) string { v, _ := c.h.Get(k); return v }
func (c headerListCarrier) Set(string, string)  {}
func (c headerListCarrier) Keys() []string {
	keys := make([]string, len(c.h))
	for i, p := range c.h {
		keys[i] = p.Name
	}
	return keys
}

func BenchmarkOpenTelemetryBaseline(b *testing.B) {
	extract := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, b3.New(b3.WithInjectEncoding(b3.B3MultipleHeader)))
	inject := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, b3.New(b3.WithInjectEncoding(b3.B3MultipleHeader)))
	for _, name := range []string{"a_valid_w3c", "b_valid_b3multi", "d_invalid_repair"} {
		h := benchRequests[name]
		b.Run(name, func(b *testing.B) {
			in := headerListCarrier{h}
			b.ReportAllocs()
			for b.Loop() {
				ctx := extract.Extract(context.Background(), in)
				out := propagation.MapCarrier{}
				inject.Inject(ctx, out)
				if out["traceparent"] == "" {
					b.Fatal("baseline produced no traceparent")
				}
			}
		})
	}
}

// BenchmarkEngineInFlight: one inbound request (recorded), its outbound call
// (restored when the strategy can) and its end, with 8 other requests in
// flight, per in-flight strategy. The inbound request carries a bearer token
// the app relays on its call; "key" has no in-flight set (the strategy off).
func BenchmarkEngineInFlight(b *testing.B) {
	const token = "Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTQyIiwidGVuYW50IjoiYWNtZSIsImV4cCI6MTk5OTk5OTk5OX0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbi1ub3QtY2hlY2tlZA"
	for _, strategies := range []string{`["key"]`, `["soleInFlight"]`, `["narrowed"]`, `["narrowed","soleInFlight"]`} {
		b.Run(strategies, func(b *testing.B) {
			store := NewMemoryStore(4096, time.Minute, nil)
			e := mustEngine(b, `{"correlation":{"strategies":`+strategies+`}}`, store)
			var res Result
			others := make([]Stream, 8)
			for i := range others {
				h := HeaderList{{"traceparent", inboundTP}, {"authorization", token + string(rune('a'+i))}}
				e.OnRequest(&others[i], &Request{Headers: h, Direction: Inbound}, &res)
			}
			in := Request{Headers: append(HeaderList{{"authorization", token}}, benchRequests["a_valid_w3c"]...), Direction: Inbound}
			out := Request{Headers: HeaderList{{":path", "/details"}, {"user-agent", "Go-http-client/1.1"}, {"authorization", token}}, Direction: Outbound}
			var st, ost Stream
			b.ReportAllocs()
			for b.Loop() {
				st, ost = Stream{}, Stream{}
				e.OnRequest(&st, &in, &res)
				e.OnRequest(&ost, &out, &res)
				e.OnDone(&ost)
				e.OnDone(&st)
			}
			if strings.Contains(strategies, "narrowed") && !res.Decisions.Has(DecisionNarrowed) {
				b.Fatalf("outbound call not restored by narrowed: %v", res.Decisions)
			}
		})
	}
}

// BenchmarkEngineRestoreClientSpan is BenchmarkEngineRestoreByKey with a
// client span started, and its encoding into a report batch.
func BenchmarkEngineRestoreClientSpan(b *testing.B) {
	store := NewMemoryStore(4096, time.Minute, nil)
	cfg, err := LoadPolicy([]byte(`{"clientSpans":{"enabled":true,"cluster":"zipkin"}}`), nil)
	if err != nil {
		b.Fatal(err)
	}
	e := New(cfg, Options{Store: store, ReportsClientSpans: true})
	var st Stream
	var res Result
	e.OnRequest(&st, &Request{Headers: benchRequests["a_valid_w3c"], Direction: Inbound}, &res)
	out := HeaderList{{":method", "GET"}, {":authority", "details:9080"}, {":path", "/details"}, {"x-request-id", "7f3e8b0c-1d2a-4c4b-9a55-0e6f1c2d3b4a"}}
	req := Request{Headers: out, Direction: Outbound}
	batch := NewSpanBatch(cfg.ClientSpans())
	var body []byte
	b.Run("restore", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			st = Stream{}
			e.OnRequest(&st, &req, &res)
		}
		if !res.ClientSpan.Valid() {
			b.Fatal("no client span")
		}
	})
	b.Run("encode", func(b *testing.B) {
		fs := FinishedSpan{ClientSpan: res.ClientSpan, EndUnixNano: res.ClientSpan.StartUnixNano + 1e6, Service: "productpage",
			Method: "GET", Authority: "details:9080", Path: "/details", Status: 200}
		b.ReportAllocs()
		for b.Loop() {
			if !batch.Add(&fs) {
				body, _ = batch.Take(body[:0], "productpage")
			}
		}
	})
}
