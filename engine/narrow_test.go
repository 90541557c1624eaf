package engine

import (
	"bytes"
	"strconv"
	"testing"
	"time"
)

func narrowTP(i int) string {
	return "00-" + strconv.FormatInt(int64(0x1000+i), 16) + "4bf92f3577b34da6a3ce929d0e07" + "-00f067aa0ba902b7-01"
}

// TestNarrowedDecisionTable drives the narrowed strategy through its cases:
// each inbound request carries its headers, then one outbound request.
func TestNarrowedDecisionTable(t *testing.T) {
	type in struct {
		h    testHeaders
		done bool // ended before the outbound request
	}
	tp := func(i int) []string { return []string{narrowTP(i)} }
	cases := []struct {
		name     string
		policy   string
		inbound  []in
		outbound testHeaders
		want     string   // trace id prefix restored, "" for none
		decision Decision // DecisionKept: none required
		not      []Decision
	}{
		{"one match among many", `["narrowed"]`, []in{
			{h: testHeaders{"traceparent": tp(1), "authorization": {"Bearer a"}}},
			{h: testHeaders{"traceparent": tp(2), "authorization": {"Bearer b"}}},
			{h: testHeaders{"traceparent": tp(3), "authorization": {"Bearer c"}}},
		}, testHeaders{"authorization": {"Bearer b"}}, "1002", DecisionNarrowed, nil},
		{"same token twice is ambiguous", `["narrowed"]`, []in{
			{h: testHeaders{"traceparent": tp(1), "authorization": {"Bearer a"}}},
			{h: testHeaders{"traceparent": tp(2), "authorization": {"Bearer a"}}},
		}, testHeaders{"authorization": {"Bearer a"}}, "", DecisionAmbiguous, []Decision{DecisionRestored}},
		{"ended request is not a candidate", `["narrowed"]`, []in{
			{h: testHeaders{"traceparent": tp(1), "authorization": {"Bearer a"}}, done: true},
			{h: testHeaders{"traceparent": tp(2), "authorization": {"Bearer a"}}},
		}, testHeaders{"authorization": {"Bearer a"}}, "1002", DecisionNarrowed, nil},
		{"prefix of another token does not match", `["narrowed"]`, []in{
			{h: testHeaders{"traceparent": tp(1), "authorization": {"Bearer abc"}}},
			{h: testHeaders{"traceparent": tp(2), "authorization": {"Bearer abcdef"}}},
		}, testHeaders{"authorization": {"Bearer abc"}}, "1001", DecisionNarrowed, nil},
		{"no match, no sole: nothing", `["narrowed"]`, []in{
			{h: testHeaders{"traceparent": tp(1), "authorization": {"Bearer a"}}},
		}, testHeaders{"authorization": {"Bearer z"}}, "", DecisionInjected, []Decision{DecisionRestored, DecisionAmbiguous}},
		{"no match falls through to sole in flight", `["narrowed","soleInFlight"]`, []in{
			{h: testHeaders{"traceparent": tp(1), "authorization": {"Bearer a"}}},
		}, testHeaders{"authorization": {"Bearer z"}}, "1001", DecisionRestored, []Decision{DecisionNarrowed}},
		{"ambiguous does not fall through", `["narrowed","soleInFlight"]`, []in{
			{h: testHeaders{"traceparent": tp(1), "authorization": {"Bearer a"}}},
			{h: testHeaders{"traceparent": tp(2), "authorization": {"Bearer a"}}, done: true},
			{h: testHeaders{"traceparent": tp(3), "authorization": {"Bearer a"}}},
		}, testHeaders{"authorization": {"Bearer a"}}, "", DecisionAmbiguous, []Decision{DecisionRestored}},
		{"one header differs, another matches", `["narrowed"]`, []in{
			{h: testHeaders{"traceparent": tp(1), "cookie": {"sid=1"}, "x-tenant-id": {"acme"}}},
			{h: testHeaders{"traceparent": tp(2), "cookie": {"sid=2"}, "x-tenant-id": {"globex"}}},
		}, testHeaders{"x-tenant-id": {"globex"}}, "1002", DecisionNarrowed, nil},
		{"value under another header name does not match", `["narrowed"]`, []in{
			{h: testHeaders{"traceparent": tp(1), "x-user-id": {"42"}}},
		}, testHeaders{"x-tenant-id": {"42"}}, "", DecisionInjected, []Decision{DecisionRestored}},
		{"empty header is no candidate", `["narrowed"]`, []in{
			{h: testHeaders{"traceparent": tp(1), "authorization": {""}}},
		}, testHeaders{"authorization": {""}}, "", DecisionInjected, []Decision{DecisionRestored, DecisionAmbiguous}},
		{"repeated header matches its joined value only", `["narrowed"]`, []in{
			{h: testHeaders{"traceparent": tp(1), "cookie": {"a=1", "b=2"}}},
		}, testHeaders{"cookie": {"a=1"}}, "", DecisionInjected, []Decision{DecisionRestored}},
		{"repeated header relayed whole matches", `["narrowed"]`, []in{
			{h: testHeaders{"traceparent": tp(1), "cookie": {"a=1", "b=2"}}},
		}, testHeaders{"cookie": {"a=1", "b=2"}}, "1001", DecisionNarrowed, nil},
		{"match without a context restores nothing", `["narrowed","soleInFlight"]},"inject":{"enabled":false`, []in{
			{h: testHeaders{"authorization": {"Bearer a"}}},
		}, testHeaders{"authorization": {"Bearer a"}}, "", DecisionKept, []Decision{DecisionRestored, DecisionAmbiguous}},
		{"request without context still makes a match ambiguous", `["narrowed"]},"inject":{"enabled":false`, []in{
			{h: testHeaders{"traceparent": tp(1), "authorization": {"Bearer a"}}},
			{h: testHeaders{"authorization": {"Bearer a"}}},
		}, testHeaders{"authorization": {"Bearer a"}}, "", DecisionAmbiguous, []Decision{DecisionRestored}},
		{"key hit wins", `["key","narrowed"]`, []in{
			{h: testHeaders{"traceparent": tp(1), "authorization": {"Bearer a"}, "x-request-id": {"r1"}}},
			{h: testHeaders{"traceparent": tp(2), "authorization": {"Bearer b"}, "x-request-id": {"r2"}}},
		}, testHeaders{"authorization": {"Bearer b"}, "x-request-id": {"r1"}}, "1001", DecisionRestored, []Decision{DecisionNarrowed}},
		{"strategy off: no fingerprint lookup", `["soleInFlight"]`, []in{
			{h: testHeaders{"traceparent": tp(1), "authorization": {"Bearer a"}}},
			{h: testHeaders{"traceparent": tp(2), "authorization": {"Bearer b"}}},
		}, testHeaders{"authorization": {"Bearer b"}}, "", DecisionAmbiguous, []Decision{DecisionRestored, DecisionNarrowed}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := mustEngine(t, `{"correlation":{"strategies":`+c.policy+`}}`, NewMemoryStore(16, time.Minute, nil))
			var res Result
			streams := make([]Stream, len(c.inbound))
			for i, r := range c.inbound {
				e.OnRequest(&streams[i], &Request{Headers: r.h, Direction: Inbound}, &res)
				if r.done {
					e.OnDone(&streams[i])
				}
			}
			var o Stream
			e.OnRequest(&o, &Request{Headers: c.outbound, Direction: Outbound}, &res)
			got := ""
			if res.Decisions.Has(DecisionRestored) {
				got = res.Context.TraceID.String()[:4]
			}
			if got != c.want || c.decision != DecisionKept && !res.Decisions.Has(c.decision) {
				t.Fatalf("restored %q with %v, want %q and %v", got, res.Decisions, c.want, c.decision)
			}
			for _, d := range c.not {
				if res.Decisions.Has(d) {
					t.Fatalf("decisions %v include %v", res.Decisions, d)
				}
			}
		})
	}
}

// TestNarrowedOverflowNeverGuesses: past MaxInFlightEntries, even a unique
// token is ambiguous (a request that did not fit may share it), and the
// answer becomes certain again once the overflow has left.
func TestNarrowedOverflowNeverGuesses(t *testing.T) {
	store := NewMemoryStore(16, time.Minute, nil)
	e := mustEngine(t, `{"correlation":{"strategies":["narrowed"]}}`, store)
	var res Result
	streams := make([]Stream, MaxInFlightEntries+1)
	for i := range streams {
		h := testHeaders{"traceparent": {narrowTP(i)}, "authorization": {"Bearer " + strconv.Itoa(i)}}
		e.OnRequest(&streams[i], &Request{Headers: h, Direction: Inbound}, &res)
	}
	outbound := func(tok string) *Result {
		var o Stream
		e.OnRequest(&o, &Request{Headers: testHeaders{"authorization": {tok}}, Direction: Outbound}, &res)
		return &res
	}
	if r := outbound("Bearer 5"); r.Decisions.Has(DecisionRestored) || !r.Decisions.Has(DecisionAmbiguous) {
		t.Fatalf("with overflow: %v, want ambiguous", r.Decisions)
	}
	if r := outbound("Bearer none"); !r.Decisions.Has(DecisionAmbiguous) {
		t.Fatalf("with overflow, unknown token: %v, want ambiguous", r.Decisions)
	}
	e.OnDone(&streams[len(streams)-1]) // the one that overflowed
	if r := outbound("Bearer 5"); !r.Decisions.Has(DecisionNarrowed) || r.Context.TraceID.String()[:4] != "1005" {
		t.Fatalf("64 in flight, unique token: %v %s", r.Decisions, r.Context.TraceID)
	}
	for i := range streams {
		e.OnDone(&streams[i])
	}
	if n, _, _, _ := store.Narrow(nil, []uint64{1}); n != 0 || len(store.narrow.set.Entries) != 0 {
		t.Fatalf("after all ended: %d matches, %d entries", n, len(store.narrow.set.Entries))
	}
}

// TestNarrowedInFlightTimeout: an entry whose end is never seen stops being
// a candidate after the in-flight timeout.
func TestNarrowedInFlightTimeout(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	store := NewMemoryStore(16, time.Minute, clk.Now)
	e := mustEngine(t, `{"correlation":{"strategies":["narrowed"],"inFlightTimeout":"10s"}}`, store)
	store.SetInFlightTimeout(e.Config().InFlightTimeout)
	var a, b, o Stream
	var res Result
	e.OnRequest(&a, &Request{Headers: testHeaders{"traceparent": {narrowTP(1)}, "authorization": {"t"}}, Direction: Inbound}, &res)
	clk.Advance(11 * time.Second)
	e.OnRequest(&b, &Request{Headers: testHeaders{"traceparent": {narrowTP(2)}, "authorization": {"t"}}, Direction: Inbound}, &res)
	e.OnRequest(&o, &Request{Headers: testHeaders{"authorization": {"t"}}, Direction: Outbound}, &res)
	if !res.Decisions.Has(DecisionNarrowed) || res.Context.TraceID.String()[:4] != "1002" {
		t.Fatalf("stale entry still a candidate: %v %s", res.Decisions, res.Context.TraceID)
	}
}

// TestNarrowedKeepsNoValue: the set holds fingerprints, never a candidate
// header's value, and fingerprints differ between keys.
func TestNarrowedKeepsNoValue(t *testing.T) {
	store := NewMemoryStore(16, time.Minute, nil)
	e := mustEngine(t, `{"correlation":{"strategies":["narrowed"]}}`, store)
	var st Stream
	var res Result
	tok := "Bearer eyJhbGciOiJIUzI1NiJ9.secret-token-value"
	e.OnRequest(&st, &Request{Headers: testHeaders{"traceparent": {inboundTP}, "authorization": {tok}}, Direction: Inbound}, &res)
	enc := store.narrow.set.AppendBinary(nil)
	if bytes.Contains(enc, []byte("secret-token")) {
		t.Fatal("the token is stored in the in-flight set")
	}
	key, _ := store.NarrowKey()
	if len(store.narrow.set.Entries) != 1 || store.narrow.set.Entries[0].Print(0) != Fingerprint(key, "authorization", tok) {
		t.Fatalf("entry prints %v", store.narrow.set.Entries)
	}
	other, _ := NewNarrowKey()
	if Fingerprint(other, "authorization", tok) == Fingerprint(key, "authorization", tok) {
		t.Fatal("fingerprint independent of the key")
	}
}

// TestNarrowSetExpiredEndKeepsOverflow: an entry that expired while
// requests overflowed ends late; its end must not be taken for an
// overflowed request's, or the count could reach zero while one that shares
// a token is still in flight.
func TestNarrowSetExpiredEndKeepsOverflow(t *testing.T) {
	var s NarrowSet
	for i := 0; i < MaxInFlightEntries; i++ {
		s.Enter(uint64(i+1), []byte("r"), []uint64{uint64(i + 1)}, 100)
	}
	s.Enter(1000, []byte("x"), []uint64{7}, 200)  // overflows; shares print 7 with owner 7
	s.Expire(100+int64(time.Minute), time.Minute) // the 64 entries expire, the overflow not
	if len(s.Entries) != 0 || s.Overflow != 1 || !s.Sticky {
		t.Fatalf("after expiry: %d entries, overflow %d, sticky %v", len(s.Entries), s.Overflow, s.Sticky)
	}
	s.Enter(7, []byte("r7"), []uint64{7}, 300)
	s.Leave(1, 300) // a late end of an expired entry
	if n, rec := s.Match([]uint64{7}); n < 2 || rec != nil {
		t.Fatalf("match with an overflowed request sharing the print: %d %q", n, rec)
	}
	d := DecodeNarrowSet(s.AppendBinary(nil))
	if !d.Sticky || d.Overflow != 1 {
		t.Fatalf("encoding lost the state: %+v", d)
	}
	s.Expire(200+int64(time.Minute), time.Minute) // the overflow heals by the timeout
	if s.Overflow != 0 || s.Sticky {
		t.Fatalf("after the overflow timed out: overflow %d, sticky %v", s.Overflow, s.Sticky)
	}
}

func TestNarrowSetEncoding(t *testing.T) {
	var s NarrowSet
	s.Enter(7, []byte("rec-a"), []uint64{1, 2}, 100)
	s.Enter(9, nil, []uint64{3}, 200)
	s.Overflow, s.OverflowSince, s.Sticky = 2, 300, true
	enc := s.AppendBinary(nil)
	d := DecodeNarrowSet(enc)
	if d.Overflow != 2 || d.OverflowSince != 300 || !d.Sticky || len(d.Entries) != 2 ||
		d.Entries[0].Owner != 7 || string(d.Entries[0].Rec) != "rec-a" || d.Entries[0].Print(1) != 2 ||
		d.Entries[1].Started != 200 || d.Entries[1].Print(0) != 3 || len(d.Entries[1].Rec) != 0 {
		t.Fatalf("round trip: %+v", d)
	}
	for i := range enc { // every truncation decodes to a prefix without panicking
		p := DecodeNarrowSet(enc[:i])
		if len(p.Entries) > 2 {
			t.Fatalf("truncated at %d: %d entries", i, len(p.Entries))
		}
	}
}

// FuzzNarrowSet feeds arbitrary bytes to the decoder and arbitrary header
// values to the fingerprint path: no panic, a re-encoded set decodes to the
// same set, and an entry entered with a value's fingerprint is found by it.
func FuzzNarrowSet(f *testing.F) {
	var s NarrowSet
	s.Enter(1, []byte("r"), []uint64{5, 6}, 10)
	f.Add(s.AppendBinary(nil), "Bearer abc", "Bearer abcd")
	f.Add([]byte{}, "", "")
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff}, "sid=1; sid=2", "sid=1")
	key, _ := NewNarrowKey()
	f.Fuzz(func(t *testing.T, b []byte, v1, v2 string) {
		d := DecodeNarrowSet(b)
		again := DecodeNarrowSet(d.AppendBinary(nil))
		if len(again.Entries) != len(d.Entries) || again.Overflow != d.Overflow || again.Sticky != d.Sticky {
			t.Fatalf("re-encoding changed the set: %d/%d entries", len(again.Entries), len(d.Entries))
		}
		p1, p2 := Fingerprint(key, "authorization", v1), Fingerprint(key, "authorization", v2)
		var n NarrowSet
		n.Enter(1, []byte("one"), []uint64{p1}, 1)
		m, rec := n.Match([]uint64{p1})
		if m != 1 || string(rec) != "one" {
			t.Fatalf("own fingerprint not found: %d %q", m, rec)
		}
		if v1 != v2 && p1 == p2 {
			t.Fatalf("fingerprint collision for %q and %q", v1, v2)
		}
	})
}
