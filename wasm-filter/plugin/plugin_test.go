package plugin

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/tracebridge/tracebridge/engine"
)

const (
	tpA = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tpB = "00-11111111111111111111111111111111-2222222222222222-01"
)

type sidecar struct {
	t    *testing.T
	host proxytest.HostEmulator
}

func newSidecar(t *testing.T, policy string) *sidecar {
	t.Helper()
	opt := proxytest.NewEmulatorOption().WithVMContext(NewVMContext()).WithPluginConfiguration([]byte(policy))
	host, reset := proxytest.NewHostEmulator(opt)
	t.Cleanup(reset)
	if st := host.StartPlugin(); st != types.OnPluginStartStatusOK {
		t.Fatalf("plugin refused policy %s: %v", policy, host.GetCriticalLogs())
	}
	return &sidecar{t: t, host: host}
}

func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// request runs the request phase in a direction; the stream stays open.
func (s *sidecar) request(dir engine.Direction, headers [][2]string) (uint32, map[string]string) {
	s.t.Helper()
	if err := s.host.SetProperty([]string{"xds", "listener_direction"}, le64(uint64(dir))); err != nil {
		s.t.Fatal(err)
	}
	id := s.host.InitializeHttpContext()
	if a := s.host.CallOnRequestHeaders(id, headers, false); a != types.ActionContinue && s.host.GetSentLocalResponse(id) == nil {
		s.t.Fatalf("request paused without a local reply")
	}
	out := map[string]string{}
	for _, kv := range s.host.GetCurrentRequestHeaders(id) {
		out[kv[0]] = kv[1]
	}
	return id, out
}

func (s *sidecar) counter(d engine.Decision, dir engine.Direction) uint64 {
	v, err := s.host.GetCounterMetric(CounterName(d, dir))
	if err != nil {
		s.t.Fatalf("counter %s: %v", CounterName(d, dir), err)
	}
	return v
}

func TestInboundRecordsOutboundRestoresByRequestID(t *testing.T) {
	s := newSidecar(t, `{}`)
	in, _ := s.request(engine.Inbound, [][2]string{{"traceparent", tpA}, {"x-request-id", "r-1"}, {"baggage", "tenant=acme"}})
	_, out := s.request(engine.Outbound, [][2]string{{":path", "/details"}, {"x-request-id", "r-1"}})
	if out["traceparent"] != tpA || out["baggage"] != "tenant=acme" || out["x-b3-traceid"] != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("outbound not restored: %v", out)
	}
	if s.counter(engine.DecisionRestored, engine.Outbound) != 1 || s.counter(engine.DecisionRecorded, engine.Inbound) != 1 {
		t.Fatal("restored/recorded counters not incremented")
	}
	// The server-timing trace metric on the inbound response, after the
	// app's own lines.
	s.host.CallOnResponseHeaders(in, [][2]string{{":status", "200"}, {"server-timing", "db;dur=53"}, {"server-timing", "app;dur=1"}}, false)
	var got []string
	for _, kv := range s.host.GetCurrentResponseHeaders(in) {
		if kv[0] == "server-timing" {
			got = append(got, kv[1])
		}
	}
	if len(got) != 1 || got[0] != "db;dur=53,app;dur=1, trace;desc="+tpA {
		t.Fatalf("server-timing: %q", got)
	}
	s.host.CompleteHttpContext(in)
	// An unknown request id is not restored: a fresh context is injected.
	_, out = s.request(engine.Outbound, [][2]string{{"x-request-id", "other"}})
	if strings.Contains(out["traceparent"], "4bf92f3577b34da6a3ce929d0e0e4736") || out["traceparent"] == "" {
		t.Fatalf("unknown key: %v", out)
	}
}

func TestSoleInFlight(t *testing.T) {
	s := newSidecar(t, `{"correlation":{"strategies":["soleInFlight"]}}`)
	a, _ := s.request(engine.Inbound, [][2]string{{"traceparent", tpA}})
	_, out := s.request(engine.Outbound, [][2]string{{":path", "/ratings"}})
	if out["traceparent"] != tpA {
		t.Fatalf("one in flight: not restored: %v", out)
	}
	b, _ := s.request(engine.Inbound, [][2]string{{"traceparent", tpB}})
	_, out = s.request(engine.Outbound, [][2]string{{":path", "/ratings"}})
	if strings.Contains(out["traceparent"], "4bf92f35") || strings.Contains(out["traceparent"], "11111111") {
		t.Fatalf("two in flight: guessed %v", out)
	}
	if s.counter(engine.DecisionAmbiguous, engine.Outbound) != 1 {
		t.Fatal("ambiguous not counted")
	}
	s.host.CompleteHttpContext(b)
	_, out = s.request(engine.Outbound, [][2]string{{":path", "/ratings"}})
	if out["traceparent"] != tpA {
		t.Fatalf("after b ended, a is the only one: %v", out)
	}
	s.host.CompleteHttpContext(a)
	_, out = s.request(engine.Outbound, [][2]string{{":path", "/ratings"}})
	if strings.Contains(out["traceparent"], "4bf92f35") {
		t.Fatalf("nothing in flight: restored %v", out)
	}
}

func TestRecordExpiresAfterTTL(t *testing.T) {
	clock := time.Unix(1_700_000_000, 0)
	now = func() time.Time { return clock }
	defer func() { now = time.Now }()
	s := newSidecar(t, `{"correlation":{"ttl":"10s"}}`)
	s.request(engine.Inbound, [][2]string{{"traceparent", tpA}, {"x-request-id", "r-ttl"}})
	clock = clock.Add(9 * time.Second)
	if _, out := s.request(engine.Outbound, [][2]string{{"x-request-id", "r-ttl"}}); out["traceparent"] != tpA {
		t.Fatalf("restored within TTL: %v", out)
	}
	clock = clock.Add(2 * time.Second)
	if _, out := s.request(engine.Outbound, [][2]string{{"x-request-id", "r-ttl"}}); out["traceparent"] == tpA {
		t.Fatal("restored after TTL")
	}
}

func TestStoreFullStaysBounded(t *testing.T) {
	s := newSidecar(t, `{"correlation":{"capacity":8}}`)
	for i := 0; i < 200; i++ {
		tp := fmt.Sprintf("00-%032x-%016x-01", i+1, i+1)
		s.request(engine.Inbound, [][2]string{{"traceparent", tp}, {"x-request-id", fmt.Sprintf("r-%d", i)}})
	}
	// The newest record is always restorable: a Put never fails for lack of room.
	if _, out := s.request(engine.Outbound, [][2]string{{"x-request-id", "r-199"}}); out["traceparent"] != fmt.Sprintf("00-%032x-%016x-01", 200, 200) {
		t.Fatalf("newest record lost: %v", out)
	}
	// Only slots 0..capacity-1 exist: shared data did not grow.
	restorable := 0
	for i := 0; i < 200; i++ {
		if _, out := s.request(engine.Outbound, [][2]string{{"x-request-id", fmt.Sprintf("r-%d", i)}}); out["traceparent"] == fmt.Sprintf("00-%032x-%016x-01", i+1, i+1) {
			restorable++
		}
	}
	if restorable > 8 || restorable < 4 {
		t.Fatalf("%d records restorable with 8 slots", restorable)
	}
	if v, _, err := getSharedForTest(s, 8); err == nil && v != nil {
		t.Fatal("a slot beyond the capacity exists")
	}
}

func getSharedForTest(_ *sidecar, slot int) ([]byte, uint32, error) {
	return getShared(fmt.Sprintf("%s%d", slotKeyPrefix, slot))
}

func TestPanicFailsOpenAndIsCounted(t *testing.T) {
	s := newSidecar(t, `{}`)
	faultHook = func(kind string) { panic("injected fault in " + kind) }
	defer func() { faultHook = nil }()
	for i := 0; i < 2; i++ {
		id, out := s.request(engine.Inbound, [][2]string{{"traceparent", "garbage"}})
		if out["traceparent"] != "garbage" || s.host.GetCurrentHttpStreamAction(id) != types.ActionContinue {
			t.Fatalf("request changed or stopped by a panicking filter: %v", out)
		}
		s.host.CompleteHttpContext(id)
	}
	logs := s.host.GetCriticalLogs()
	perKind := map[string]int{}
	for _, l := range logs {
		for _, k := range []string{"request headers", "stream done"} {
			if strings.Contains(l, k+" panicked") {
				perKind[k]++
			}
		}
	}
	if perKind["request headers"] != 1 || perKind["stream done"] != 1 {
		t.Fatalf("want one log line per kind, got %v: %q", perKind, logs)
	}
	if got := s.counter(engine.DecisionError, engine.Inbound) + s.counter(engine.DecisionError, engine.DirectionUnknown); got != 4 {
		t.Fatalf("error count = %d, want 4 (2 requests x request+done)", got)
	}
}

func TestBadPolicyRefused(t *testing.T) {
	opt := proxytest.NewEmulatorOption().WithVMContext(NewVMContext()).WithPluginConfiguration([]byte(`{"correlation":{"ttl":"thirty"}}`))
	host, reset := proxytest.NewHostEmulator(opt)
	defer reset()
	if st := host.StartPlugin(); st != types.OnPluginStartStatusFailed {
		t.Fatalf("bad policy started: %v", st)
	}
	logs := strings.Join(host.GetCriticalLogs(), "\n")
	if !strings.Contains(logs, `correlation.ttl: must be a positive duration like "30s", got "thirty"`) {
		t.Fatalf("refusal does not name the field: %q", logs)
	}
}

func TestRejectSendsLocalReply(t *testing.T) {
	s := newSidecar(t, `{"invalid":"reject"}`)
	id, _ := s.request(engine.Inbound, [][2]string{{"traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}})
	r := s.host.GetSentLocalResponse(id)
	if r == nil || r.StatusCode != 400 || !strings.Contains(string(r.Data), `"code":"zero_trace_id"`) {
		t.Fatalf("reply = %+v", r)
	}
	if s.counter(engine.DecisionRejected, engine.Inbound) != 1 {
		t.Fatal("rejected not counted")
	}
}

func TestFilterStateTag(t *testing.T) {
	s := newSidecar(t, `{"tags":[{"name":"tenant","from":{"header":"x-tenant"},"to":["filterState","header"]}]}`)
	_, out := s.request(engine.Inbound, [][2]string{{"traceparent", tpA}, {"x-tenant", "acme"}})
	if out["x-tracebridge-tenant"] != "acme" {
		t.Fatalf("header sink: %v", out)
	}
	v, err := s.host.GetProperty([]string{engine.FilterStateProperty + "tenant"})
	if err != nil || string(v) != "acme" {
		t.Fatalf("filter state = %q, %v", v, err)
	}
}

// TestInFlightSetCreatedAtStart: the set exists before the first request, so
// no request ever creates it with an unconditional write (which could drop a
// concurrent worker's entry and make sole-in-flight guess wrong).
func TestInFlightSetCreatedAtStart(t *testing.T) {
	newSidecar(t, `{"correlation":{"strategies":["soleInFlight"]}}`)
	v, cas, err := getShared(inFlightKey)
	if err != nil || cas == 0 || v == nil {
		t.Fatalf("in-flight set after plugin start: %q cas=%d err=%v", v, cas, err)
	}
}

// TestRecycledContextsStartClean checks that a stream's context, reused
// after the stream is done, carries nothing into the next stream, and that
// the pool of finished contexts stays bounded.
func TestRecycledContextsStartClean(t *testing.T) {
	s := newSidecar(t, `{}`)
	a, _ := s.request(engine.Inbound, [][2]string{{"traceparent", tpA}, {"x-request-id", "r-a"}})
	s.host.CallOnResponseHeaders(a, [][2]string{{":status", "200"}}, false)
	s.host.CompleteHttpContext(a)
	b, _ := s.request(engine.Inbound, [][2]string{{":path", "/"}})
	s.host.CallOnResponseHeaders(b, [][2]string{{":status", "200"}}, false)
	for _, kv := range s.host.GetCurrentResponseHeaders(b) {
		if strings.Contains(kv[1], "4bf92f3577b34da6a3ce929d0e0e4736") {
			t.Fatalf("the next stream's response carries the previous stream's context: %v", kv)
		}
	}
	s.host.CompleteHttpContext(b)

	p := &pluginContext{}
	first := p.NewHttpContext(1).(*httpContext)
	first.stream.Direction = engine.Inbound
	p.recycle(first)
	if again := p.NewHttpContext(2).(*httpContext); again != first || again.stream != (engine.Stream{}) {
		t.Fatalf("recycled context not reused clean: %+v", again.stream)
	}
	for i := 0; i < 2*maxFreeContexts; i++ {
		p.recycle(&httpContext{p: p})
	}
	if len(p.free) != maxFreeContexts {
		t.Fatalf("%d contexts kept, want at most %d", len(p.free), maxFreeContexts)
	}
}

// TestLongKeysBoundedInSharedData: 60 KiB x-request-id values still restore
// their own record, never another's, and every slot's value stays within
// 10 + engine.MaxKeyBytes + engine.MaxRecordBytes bytes (long keys are kept
// as their SHA-256).
func TestLongKeysBoundedInSharedData(t *testing.T) {
	s := newSidecar(t, `{"correlation":{"capacity":8}}`)
	long := strings.Repeat("r", 60<<10)
	rid := func(i int) string { return fmt.Sprintf("%d-%s-%d", i, long, i) }
	tp := func(i int) string { return fmt.Sprintf("00-%032x-%016x-01", i+1, i+1) }
	for i := 0; i < 3; i++ {
		s.request(engine.Inbound, [][2]string{{"traceparent", tp(i)}, {"x-request-id", rid(i)}})
	}
	for i := 0; i < 3; i++ {
		if _, out := s.request(engine.Outbound, [][2]string{{"x-request-id", rid(i)}}); out["traceparent"] != tp(i) {
			t.Errorf("request %d: restored %q, want %q", i, out["traceparent"], tp(i))
		}
	}
	other := rid(0)[:30<<10] + "s" + rid(0)[30<<10+1:]
	if _, out := s.request(engine.Outbound, [][2]string{{"x-request-id", other}}); out["traceparent"] == tp(0) {
		t.Error("a key differing in one byte restored another request's record")
	}
	for slot := 0; slot < 8; slot++ {
		v, _, err := getSharedForTest(s, slot)
		if err != nil {
			t.Fatal(err)
		}
		if len(v) > 10+engine.MaxKeyBytes+engine.MaxRecordBytes {
			t.Errorf("slot %d holds %d bytes, bound %d", slot, len(v), 10+engine.MaxKeyBytes+engine.MaxRecordBytes)
		}
	}
}
