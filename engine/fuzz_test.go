package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/tracebridge/tracebridge/propagation"
)

var fuzzPolicies = []string{
	`{}`,
	`{"invalid":"reject"}`,
	`{"invalid":"restart","emit":["w3c","b3","b3multi","jaeger"]}`,
	`{"invalid":"pass","read":["jaeger","b3multi"],"emit":["b3"]}`,
	`{"trust":{"untrustedDirections":["inbound"],"action":"restart"},"tags":[{"name":"t","from":{"header":"x-t"},"to":["header","baggage"]},{"name":"q","from":{"query":"q"},"to":["metadata"]},{"name":"j","from":{"jwt":{"claim":"a.b"}},"to":["filterState"]}]}`,
	`{"trust":{"untrustedDirections":["inbound"],"action":"strip"},"correlation":{"strategies":["key","soleInFlight"]}}`,
	`{"responseHeader":{"format":"traceresponse","name":"x-trace"},"host":{"tracing":false}}`,
	`{"responseHeader":{"format":"serverTiming"},"host":{"placement":"upstream"}}`,
	`{"correlation":{"strategies":["key","narrowed","soleInFlight"],"narrowHeaders":["authorization","cookie","x-t"]}}`,
}

// FuzzOnRequest feeds arbitrary header lists to the engine under several
// policies. Invariants: no panic; at most one mutation per header; a reply
// is a 400 with no mutations; when the request leaves with a context, every
// emitted format it carries parses back to that context.
func FuzzOnRequest(f *testing.F) {
	seeds := []string{
		"traceparent:" + inboundTP,
		"traceparent:00-00000000000000000000000000000000-00f067aa0ba902b7-01\nx-b3-traceid:463ac35c9f6413ad\nx-b3-spanid:a2fb4a1d1a96d312",
		"b3:80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90\nx-b3-traceid:80f198ee56343ba864fe8b2a57d3eff7\nx-b3-spanid:0000000000000001",
		"uber-trace-id:abc%3A1%3A0%3A3\nbaggage:a=b,c=d;p",
		"b3:0\nx-envoy-force-trace:true\nx-request-id:r1",
		"tracestate:a=b,a=c\ntraceparent:" + inboundTP + "\ntraceparent:" + inboundTP,
		"x-t:v\u0001al\n:path:/a?q=1&q=2\nauthorization:Bearer e30.eyJhIjp7ImIiOiJ4In19.x",
		"traceparent:cc-" + inboundTP[3:] + "-x\ntracestate:foo@=1,1a=2,foo@=3\nserver-timing:db;dur=1\nserver-timing:TRACE;desc=\"a,b\"",
		"traceparent:" + inboundTP + "\nserver-timing:db;desc=\"open",
	}
	for i, s := range seeds {
		f.Add(s, uint8(i), uint8(i%3))
	}
	engines := make([]*Engine, len(fuzzPolicies))
	for i, p := range fuzzPolicies {
		cfg, err := LoadPolicy([]byte(p), nil)
		if err != nil {
			f.Fatal(err)
		}
		engines[i] = New(cfg, Options{Store: NewMemoryStore(64, time.Minute, nil)})
	}
	f.Fuzz(func(t *testing.T, blob string, policy, dir uint8) {
		e := engines[int(policy)%len(engines)]
		var h HeaderList
		for _, line := range strings.Split(blob, "\n") {
			name, value, ok := strings.Cut(line[min(1, len(line)):], ":")
			if !ok {
				continue
			}
			name = strings.ToLower(line[:min(1, len(line))] + name)
			h = append(h, HeaderPair{Name: name, Value: value})
		}
		var st Stream
		var res Result
		e.OnRequest(&st, &Request{Headers: h, Direction: Direction(dir % 3)}, &res)
		defer e.OnDone(&st)
		// The response, with the blob's headers as the app's: the app's
		// server-timing text is kept and never gets a second trace metric.
		var rres Result
		e.OnResponse(&st, h, &rres)
		if v, set := rres.Set(propagation.HeaderServerTiming); set {
			app, _ := h.Get(propagation.HeaderServerTiming)
			_, had, _ := propagation.FindServerTimingMetric(app, propagation.ServerTimingTraceMetric)
			_, has, open := propagation.FindServerTimingMetric(v, propagation.ServerTimingTraceMetric)
			if had || !has || open || !strings.HasPrefix(v, strings.TrimRight(app, " \t")) {
				t.Fatalf("server-timing %q -> %q", app, v)
			}
		}
		seen := map[string]bool{}
		for _, m := range res.Mutations {
			if seen[m.Name] {
				t.Fatalf("two mutations of %q: %+v", m.Name, res.Mutations)
			}
			seen[m.Name] = true
			if strings.HasPrefix(m.Name, ":") {
				t.Fatalf("pseudo-header mutated: %+v", m)
			}
		}
		if res.Reply != nil {
			if res.Reply.Status != 400 || len(res.Mutations) != 0 {
				t.Fatalf("bad reply %+v with %d mutations", res.Reply, len(res.Mutations))
			}
			return
		}
		ctx := res.Context
		if !ctx.Valid() {
			return
		}
		out := testHeaders{}
		for _, p := range h {
			out[p.Name] = append(out[p.Name], p.Value)
		}
		out = out.apply(&res)
		for _, fm := range e.cfg.emitList {
			var got propagation.SpanContext
			var p propagation.Problem
			switch fm {
			case propagation.FormatW3C:
				v, n := out.Get(propagation.HeaderTraceparent)
				got, p = propagation.ParseTraceparentHeader(v, n)
			case propagation.FormatB3Single:
				var ids bool
				got, ids, p = propagation.ParseB3Single(out["b3"][0])
				if !ids {
					t.Fatalf("b3 without ids: %q", out["b3"])
				}
			case propagation.FormatB3Multi:
				got, _, p = propagation.ParseB3Multi(propagation.B3Multi{
					TraceID: first(out, "x-b3-traceid"), SpanID: first(out, "x-b3-spanid"),
					ParentSpanID: first(out, "x-b3-parentspanid"), Sampled: first(out, "x-b3-sampled"), Flags: first(out, "x-b3-flags")})
			case propagation.FormatJaeger:
				got, p = propagation.ParseUberTraceID(first(out, "uber-trace-id"))
			}
			if e.cfg.invalid == InvalidPass && p != propagation.OK {
				continue // pass leaves malformed headers alone by design
			}
			if p != propagation.OK || !got.SameSpan(&ctx) {
				t.Fatalf("emitted %v does not carry the context %s/%s: %v %s/%s\nin=%v\nout=%v", fm, ctx.TraceID, ctx.SpanID, p, got.TraceID, got.SpanID, h, out)
			}
		}
	})
}

func first(h testHeaders, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}
