package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

func mustEngine(t testing.TB, doc string, store Store) *Engine {
	t.Helper()
	cfg, err := LoadPolicy([]byte(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	return New(cfg, Options{Store: store})
}

const inboundTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestRestoreByKeyAcrossTTL(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	store := NewMemoryStore(16, 30*time.Second, clk.Now)
	e := mustEngine(t, `{}`, store)
	var st Stream
	var res Result
	e.OnRequest(&st, &Request{Headers: testHeaders{"traceparent": {inboundTP}, "x-request-id": {"r1"}, "baggage": {"tenant=acme"}}, Direction: Inbound}, &res)
	if !res.Decisions.Has(DecisionRecorded) {
		t.Fatalf("inbound not recorded: %v", res.Decisions)
	}
	out := testHeaders{"x-request-id": {"r1"}}
	var st2 Stream
	e.OnRequest(&st2, &Request{Headers: out, Direction: Outbound}, &res)
	got := out.apply(&res)
	if got["traceparent"][0] != inboundTP || got["baggage"][0] != "tenant=acme" || !res.Decisions.Has(DecisionRestored) {
		t.Fatalf("not restored: %v %v", got, res.Decisions)
	}
	clk.Advance(31 * time.Second)
	e.OnRequest(&st2, &Request{Headers: out, Direction: Outbound}, &res)
	if res.Decisions.Has(DecisionRestored) {
		t.Fatal("restored after the TTL")
	}
	if !res.Decisions.Has(DecisionInjected) {
		t.Fatalf("expected a fresh injection after TTL, got %v", res.Decisions)
	}
}

func TestSoleInFlightLifecycle(t *testing.T) {
	store := NewMemoryStore(16, time.Minute, nil)
	e := mustEngine(t, `{"correlation":{"strategies":["soleInFlight"]}}`, store)
	var a, b, o Stream
	var res Result
	inA := testHeaders{"traceparent": {inboundTP}}
	inB := testHeaders{"traceparent": {"00-11111111111111111111111111111111-2222222222222222-01"}}
	outbound := func() Decisions {
		o.Reset()
		e.OnRequest(&o, &Request{Headers: testHeaders{}, Direction: Outbound}, &res)
		return res.Decisions
	}
	e.OnRequest(&a, &Request{Headers: inA, Direction: Inbound}, &res)
	if d := outbound(); !d.Has(DecisionRestored) || res.Context.TraceID.String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("one in flight: %v %s", d, res.Context.TraceID)
	}
	e.OnRequest(&b, &Request{Headers: inB, Direction: Inbound}, &res)
	if d := outbound(); !d.Has(DecisionAmbiguous) || d.Has(DecisionRestored) {
		t.Fatalf("two in flight: %v", d)
	}
	e.OnDone(&b) // the newest ends: a is the only one left, with its own record
	if d := outbound(); !d.Has(DecisionRestored) || res.Context.TraceID.String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("after the newest ended: %v %s, want a's context", d, res.Context.TraceID)
	}
	e.OnDone(&a)
	e.OnDone(&a) // a second done must not leave twice
	if n, _, _, _ := store.Sole(nil); n != 0 {
		t.Fatalf("in flight = %d, want 0", n)
	}
	if d := outbound(); d.Has(DecisionRestored) || d.Has(DecisionAmbiguous) {
		t.Fatalf("nothing in flight: %v", d)
	}
}

// failingStore fails every call, to show the engine fails open.
type failingStore struct{}

var errDown = errors.New("store down")

func (failingStore) Put(string, []byte) error { return errDown }
func (failingStore) Get(dst []byte, _ string) ([]byte, bool, error) {
	return dst, false, errDown
}
func (failingStore) Enter(uint64, []byte) error { return errDown }
func (failingStore) Leave(uint64) error         { return errDown }
func (failingStore) Sole(dst []byte) (int, []byte, bool, error) {
	return 0, dst, false, errDown
}

func TestStoreErrorsFailOpen(t *testing.T) {
	e := mustEngine(t, `{"correlation":{"strategies":["key","soleInFlight"]}}`, failingStore{})
	var st Stream
	var res Result
	in := testHeaders{"traceparent": {inboundTP}, "x-request-id": {"r1"}}
	e.OnRequest(&st, &Request{Headers: in, Direction: Inbound}, &res)
	if !res.Decisions.Has(DecisionError) || res.Reply != nil {
		t.Fatalf("inbound with a failing store: %v reply=%v", res.Decisions, res.Reply)
	}
	if got := in.apply(&res); got["traceparent"][0] != inboundTP {
		t.Fatalf("context changed by a store failure: %v", got)
	}
	var o Stream
	e.OnRequest(&o, &Request{Headers: testHeaders{"x-request-id": {"r1"}}, Direction: Outbound}, &res)
	if !res.Decisions.Has(DecisionError) || !res.Decisions.Has(DecisionInjected) {
		t.Fatalf("outbound with a failing store: %v", res.Decisions)
	}
	if d := e.OnDone(&st); d != 0 {
		t.Fatalf("stream that never entered the in-flight set reported %v at done", d)
	}
}

func TestInFlightTimeoutHealsLostStreams(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	store := NewMemoryStore(16, time.Minute, clk.Now)
	store.SetInFlightTimeout(time.Minute)
	e := mustEngine(t, `{"correlation":{"strategies":["soleInFlight"]}}`, store)
	var lost, live, o Stream
	var res Result
	e.OnRequest(&lost, &Request{Headers: testHeaders{"traceparent": {"00-11111111111111111111111111111111-2222222222222222-01"}}, Direction: Inbound}, &res)
	clk.Advance(2 * time.Minute) // the host never reported the end of "lost"
	e.OnRequest(&live, &Request{Headers: testHeaders{"traceparent": {inboundTP}}, Direction: Inbound}, &res)
	e.OnRequest(&o, &Request{Headers: testHeaders{}, Direction: Outbound}, &res)
	if !res.Decisions.Has(DecisionRestored) || res.Context.TraceID.String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("lost stream still counted: %v %s", res.Decisions, res.Context.TraceID)
	}
}

func TestDecodeRecordNeverPanics(t *testing.T) {
	rec := appendRecordEntry(nil, "traceparent", inboundTP)
	rec = appendRecordEntry(rec, "baggage", "a=b")
	for cut := 0; cut <= len(rec); cut++ {
		n := 0
		decodeRecord(string(rec[:cut]), func(string, string) { n++ })
		if cut == len(rec) && n != 2 {
			t.Fatalf("full record decoded %d entries", n)
		}
	}
}

// TestRecordLayout pins the record bytes (replicas of different versions read
// each other's records from a shared store): [u8 name length][name][big-endian
// u16 value length][value].
func TestRecordLayout(t *testing.T) {
	cases := []struct{ name, value string }{
		{"traceparent", inboundTP},
		{"baggage", ""},
		{"x", strings.Repeat("v", 255)},
		{"x", strings.Repeat("v", 256)},
		{"x", strings.Repeat("v", 0x1234)},
		{strings.Repeat("n", 255), strings.Repeat("v", maxRecordValue)},
	}
	var rec, want []byte
	for _, c := range cases {
		rec = appendRecordEntry(rec, c.name, c.value)
		want = append(want, byte(len(c.name)))
		want = append(want, c.name...)
		want = binary.BigEndian.AppendUint16(want, uint16(len(c.value)))
		want = append(want, c.value...)
	}
	if !bytes.Equal(rec, want) {
		t.Fatalf("record layout differs from [u8][name][u16 BE][value]")
	}
	i := 0
	decodeRecord(string(rec), func(name, value string) {
		if i >= len(cases) || name != cases[i].name || value != cases[i].value {
			t.Fatalf("entry %d decoded as %q (%d bytes)", i, name, len(value))
		}
		i++
	})
	if i != len(cases) {
		t.Fatalf("decoded %d entries, want %d", i, len(cases))
	}
}
