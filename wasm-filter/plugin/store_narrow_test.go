package plugin

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tracebridge/tracebridge/engine"
)

// TestNarrowed: each inbound request relays its own bearer token; an
// outbound call carrying one token is restored from the request with that
// token, a token shared by two in-flight requests is never guessed, and the
// shared data holds neither token.
func TestNarrowed(t *testing.T) {
	s := newSidecar(t, `{"correlation":{"strategies":["narrowed"]}}`)
	a, _ := s.request(engine.Inbound, [][2]string{{"traceparent", tpA}, {"authorization", "Bearer token-a"}})
	b, _ := s.request(engine.Inbound, [][2]string{{"traceparent", tpB}, {"authorization", "Bearer token-b"}})
	_, out := s.request(engine.Outbound, [][2]string{{":path", "/ratings"}, {"authorization", "Bearer token-b"}})
	if out["traceparent"] != tpB {
		t.Fatalf("token b: %v, want b's context", out)
	}
	_, out = s.request(engine.Outbound, [][2]string{{":path", "/ratings"}, {"authorization", "Bearer token-a"}})
	if out["traceparent"] != tpA {
		t.Fatalf("token a: %v, want a's context", out)
	}
	if s.counter(engine.DecisionNarrowed, engine.Outbound) != 2 || s.counter(engine.DecisionRestored, engine.Outbound) != 2 {
		t.Fatal("narrowed/restored not counted")
	}
	v, _, _ := getShared(narrowSetKey)
	if bytes.Contains(v, []byte("token-")) {
		t.Fatal("a token is stored in shared data")
	}
	c, _ := s.request(engine.Inbound, [][2]string{{"traceparent", tpA}, {"authorization", "Bearer token-b"}})
	_, out = s.request(engine.Outbound, [][2]string{{":path", "/ratings"}, {"authorization", "Bearer token-b"}})
	if strings.Contains(out["traceparent"], "4bf92f35") || strings.Contains(out["traceparent"], "11111111") {
		t.Fatalf("same token twice: guessed %v", out)
	}
	if s.counter(engine.DecisionAmbiguous, engine.Outbound) != 1 {
		t.Fatal("ambiguous not counted")
	}
	s.host.CompleteHttpContext(c)
	_, out = s.request(engine.Outbound, [][2]string{{":path", "/ratings"}, {"authorization", "Bearer token-b"}})
	if out["traceparent"] != tpB {
		t.Fatalf("after c ended: %v, want b's context", out)
	}
	s.host.CompleteHttpContext(a)
	s.host.CompleteHttpContext(b)
	v, _, _ = getShared(narrowSetKey)
	if set := engine.DecodeNarrowSet(v); len(set.Entries) != 0 || set.Overflow != 0 {
		t.Fatalf("after all ended: %+v", set)
	}
}

// TestNarrowKeyCreatedOnceAtStart: the fingerprint key exists before the
// first request and a later plugin start (another worker's VM, a config
// update) keeps it, so every VM fingerprints alike.
func TestNarrowKeyCreatedOnceAtStart(t *testing.T) {
	newSidecar(t, `{"correlation":{"strategies":["narrowed"]}}`)
	k1, _, err := getShared(narrowKeyKey)
	if err != nil || len(k1) != engine.NarrowKeySize {
		t.Fatalf("key after start: %x %v", k1, err)
	}
	k1 = bytes.Clone(k1)
	if err := (&sharedStore{}).initNarrow(); err != nil {
		t.Fatal(err)
	}
	k2, _, _ := getShared(narrowKeyKey)
	if !bytes.Equal(k1, k2) {
		t.Fatal("a second start replaced the key")
	}
	if v, cas, err := getShared(narrowSetKey); err != nil || cas == 0 || v == nil {
		t.Fatalf("narrowed set after start: %q cas=%d err=%v", v, cas, err)
	}
}
