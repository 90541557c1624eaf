package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/tracebridge/tracebridge/propagation"
)

// record builds a correlation record from name/value pairs, as a store
// shared with other writers may hold it.
func record(kv ...string) []byte {
	var rec []byte
	for i := 0; i+1 < len(kv); i += 2 {
		rec = AppendRecordEntry(rec, kv[i], kv[i+1])
	}
	return rec
}

const (
	otherTP   = "00-11111111111111111111111111111111-2222222222222222-01"
	ts33      = "a0=1,a1=1,a2=1,a3=1,a4=1,a5=1,a6=1,a7=1,a8=1,a9=1,a10=1,a11=1,a12=1,a13=1,a14=1,a15=1,a16=1,a17=1,a18=1,a19=1,a20=1,a21=1,a22=1,a23=1,a24=1,a25=1,a26=1,a27=1,a28=1,a29=1,a30=1,a31=1,a32=1"
	b3TraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	b3SpanID  = "00f067aa0ba902b7"
)

// TestRestoredRecordIsParsedLikeARequest plants records in the memory store
// directly (no inbound request wrote them) and checks that an outbound
// request only gets the restore headers that pass the incoming rules.
func TestRestoredRecordIsParsedLikeARequest(t *testing.T) {
	cases := []struct {
		name    string
		policy  string
		rec     []byte
		req     testHeaders
		want    map[string]string // header -> value ("" = absent)
		traceID string            // the context the request leaves with ("" = a new one)
		dropped bool
	}{{
		name:    "clean record",
		rec:     record("traceparent", inboundTP, "baggage", "k=v"),
		want:    map[string]string{"traceparent": inboundTP, "baggage": "k=v"},
		traceID: b3TraceID,
	}, {
		name:    "credentials outside restoreHeaders",
		rec:     record("traceparent", inboundTP, "authorization", "Bearer stolen", "cookie", "sid=1", "x-forwarded-for", "6.6.6.6"),
		want:    map[string]string{"traceparent": inboundTP, "authorization": "", "cookie": "", "x-forwarded-for": ""},
		traceID: b3TraceID,
		dropped: true,
	}, {
		name:    "header the policy does not restore",
		policy:  `{"correlation":{"restoreHeaders":["traceparent"]}}`,
		rec:     record("traceparent", inboundTP, "baggage", "k=v", "x-b3-traceid", "11111111111111111111111111111111", "x-b3-spanid", "2222222222222222"),
		want:    map[string]string{"traceparent": inboundTP, "baggage": "", "x-b3-spanid": b3SpanID},
		traceID: b3TraceID,
		dropped: true,
	}, {
		name:    "invalid traceparent, valid b3multi",
		rec:     record("traceparent", "00-zz-zz-01", "x-b3-traceid", b3TraceID, "x-b3-spanid", b3SpanID, "x-b3-sampled", "1"),
		want:    map[string]string{"traceparent": inboundTP, "x-b3-spanid": b3SpanID},
		traceID: b3TraceID,
		dropped: true,
	}, {
		name:    "only an invalid traceparent",
		rec:     record("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
		dropped: true,
	}, {
		name:    "tracestate of 33 members",
		rec:     record("traceparent", inboundTP, "tracestate", ts33),
		want:    map[string]string{"traceparent": inboundTP, "tracestate": ""},
		traceID: b3TraceID,
		dropped: true,
	}, {
		name:    "tracestate without traceparent",
		rec:     record("x-b3-traceid", b3TraceID, "x-b3-spanid", b3SpanID, "tracestate", "evil=1"),
		want:    map[string]string{"tracestate": "", "x-b3-traceid": b3TraceID},
		traceID: b3TraceID,
		dropped: true,
	}, {
		name:    "repeated traceparent",
		rec:     record("traceparent", inboundTP, "traceparent", otherTP),
		dropped: true,
	}, {
		name:    "same entry twice",
		rec:     record("traceparent", inboundTP, "traceparent", inboundTP),
		want:    map[string]string{"traceparent": inboundTP},
		traceID: b3TraceID,
	}, {
		name:    "invalid baggage",
		rec:     record("traceparent", inboundTP, "baggage", "=nokey"),
		want:    map[string]string{"traceparent": inboundTP, "baggage": ""},
		traceID: b3TraceID,
		dropped: true,
	}, {
		name:    "stale b3 next to x-b3",
		policy:  `{"emit":["w3c","b3multi"]}`,
		rec:     record("b3", "11111111111111111111111111111111-2222222222222222-1", "x-b3-traceid", b3TraceID, "x-b3-spanid", b3SpanID),
		want:    map[string]string{"b3": "", "x-b3-traceid": b3TraceID},
		traceID: b3TraceID,
		dropped: true,
	}, {
		name:    "malformed uber-trace-id the policy does not read",
		policy:  `{"read":["w3c"]}`,
		rec:     record("traceparent", inboundTP, "uber-trace-id", "not:valid"),
		want:    map[string]string{"traceparent": inboundTP, "uber-trace-id": ""},
		traceID: b3TraceID,
		dropped: true,
	}, {
		name:    "stray tracestate of the request goes with a restored traceparent",
		rec:     record("traceparent", inboundTP),
		req:     testHeaders{"tracestate": {"other=1"}},
		want:    map[string]string{"traceparent": inboundTP, "tracestate": ""},
		traceID: b3TraceID,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			policy := tc.policy
			if policy == "" {
				policy = `{}`
			}
			store := NewMemoryStore(16, time.Minute, nil)
			if err := store.Put("x-request-id=r1", tc.rec); err != nil {
				t.Fatal(err)
			}
			e := mustEngine(t, policy, store)
			req := testHeaders{"x-request-id": {"r1"}}
			for k, v := range tc.req {
				req[k] = v
			}
			var st Stream
			var res Result
			e.OnRequest(&st, &Request{Headers: req, Direction: Outbound}, &res)
			got := req.apply(&res)
			for name, want := range tc.want {
				if g := strings.Join(got[name], ","); g != want {
					t.Errorf("%s = %q, want %q", name, g, want)
				}
			}
			if res.Decisions.Has(DecisionDropped) != tc.dropped {
				t.Errorf("dropped = %v, want %v (%v)", !tc.dropped, tc.dropped, res.Decisions)
			}
			restored := tc.traceID != ""
			if res.Decisions.Has(DecisionRestored) != restored {
				t.Errorf("restored = %v, want %v (%v)", !restored, restored, res.Decisions)
			}
			if restored && res.Context.TraceID.String() != tc.traceID {
				t.Errorf("context trace %s, want %s", res.Context.TraceID, tc.traceID)
			}
			if !restored && !res.Decisions.Has(DecisionInjected) {
				t.Errorf("nothing usable restored, want a new context: %v", res.Decisions)
			}
			for _, m := range res.Mutations {
				if m.Op == OpSet && (strings.Contains(m.Value, "stolen") || strings.Contains(m.Value, "6.6.6.6") || strings.Contains(m.Value, "zz")) {
					t.Errorf("poisoned value applied: %s: %s", m.Name, m.Value)
				}
			}
		})
	}
}

// TestSoleInFlightRecordIsParsed: the in-flight set is a record store too.
func TestSoleInFlightRecordIsParsed(t *testing.T) {
	store := NewMemoryStore(16, time.Minute, nil)
	if err := store.Enter(7, record("traceparent", "garbage", "authorization", "Bearer stolen")); err != nil {
		t.Fatal(err)
	}
	e := mustEngine(t, `{"correlation":{"strategies":["soleInFlight"]}}`, store)
	var st Stream
	var res Result
	req := testHeaders{}
	e.OnRequest(&st, &Request{Headers: req, Direction: Outbound}, &res)
	got := req.apply(&res)
	if res.Decisions.Has(DecisionRestored) || !res.Decisions.Has(DecisionDropped) || !res.Decisions.Has(DecisionInjected) {
		t.Fatalf("decisions %v, want dropped and injected, not restored", res.Decisions)
	}
	if got["authorization"] != nil || got["traceparent"][0] == "garbage" {
		t.Fatalf("poisoned record applied: %v", got)
	}
}

// FuzzRestoreRecord plants arbitrary bytes as a correlation record and
// restores them onto an outbound request. Invariants: no panic; the engine
// sets no header outside the policy's restore headers and the emitted
// formats; every trace header and baggage it leaves the request with, when
// it restored something, passes the parser an incoming one goes through.
func FuzzRestoreRecord(f *testing.F) {
	policies := []string{
		`{}`,
		`{"correlation":{"restoreHeaders":["traceparent","baggage","x-amzn-trace-id"]}}`,
		`{"read":["w3c"],"emit":["w3c","b3","jaeger"]}`,
		`{"correlation":{"strategies":["soleInFlight"],"restoreHeaders":["b3","tracestate","traceparent"]}}`,
	}
	for i, rec := range [][]byte{
		record("traceparent", inboundTP, "tracestate", "a=1", "baggage", "k=v"),
		record("traceparent", inboundTP, "authorization", "Bearer x", "cookie", "c=1"),
		record("traceparent", "00-zz", "x-b3-traceid", b3TraceID, "x-b3-spanid", b3SpanID),
		record("b3", "11111111111111111111111111111111-2222222222222222-1", "x-b3-traceid", b3TraceID, "x-b3-spanid", b3SpanID),
		record("traceparent", inboundTP, "traceparent", otherTP, "tracestate", ts33),
		record("uber-trace-id", "abc:1:0:3", "baggage", "=x"),
		{3, 'a', 'b'},
	} {
		f.Add(rec, uint8(i))
	}
	engines := make([]*Engine, len(policies))
	stores := make([]*MemoryStore, len(policies))
	for i, p := range policies {
		cfg, err := LoadPolicy([]byte(p), nil)
		if err != nil {
			f.Fatal(err)
		}
		stores[i] = NewMemoryStore(8, time.Minute, nil)
		engines[i] = New(cfg, Options{Store: stores[i]})
	}
	f.Fuzz(func(t *testing.T, rec []byte, policy uint8) {
		i := int(policy) % len(engines)
		e, store := engines[i], stores[i]
		if e.cfg.soleInFlight {
			if err := store.Enter(1, rec); err != nil {
				t.Fatal(err)
			}
			defer store.Leave(1)
		} else if err := store.Put("x-request-id=f", rec); err != nil {
			t.Fatal(err)
		}
		req := testHeaders{"x-request-id": {"f"}}
		var st Stream
		var res Result
		e.OnRequest(&st, &Request{Headers: req, Direction: Outbound}, &res)
		allowed := map[string]bool{}
		for _, h := range e.cfg.restoreHeaders {
			allowed[h] = true
		}
		for _, f := range e.cfg.emitList {
			for _, h := range propagation.FormatHeaders(f) {
				allowed[h] = true
			}
		}
		for _, m := range res.Mutations {
			if m.Op == OpSet && !allowed[m.Name] {
				t.Fatalf("set %q, outside the restore headers and the emitted formats: %+v", m.Name, res.Mutations)
			}
		}
		if !res.Decisions.Has(DecisionRestored) {
			return
		}
		out := req.apply(&res)
		var x extraction
		x.extractFormats(e.cfg, out, propagation.Formats[:])
		if x.nProblems > 0 {
			t.Fatalf("restored request has malformed headers %v: %v", x.problems(), out)
		}
		if _, n := out.Get(propagation.HeaderTracestate); n > 0 && !x.f[propagation.FormatW3C].valid {
			t.Fatalf("tracestate restored without a valid traceparent: %v", out)
		}
	})
}
