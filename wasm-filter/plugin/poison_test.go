package plugin

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm"

	"github.com/tracebridge/tracebridge/engine"
)

func poisonRecord(kv ...string) []byte {
	var b []byte
	for i := 0; i+1 < len(kv); i += 2 {
		b = engine.AppendRecordEntry(b, kv[i], kv[i+1])
	}
	return b
}

// TestPoisonedSharedDataNotApplied: proxy-wasm shared data is one map per
// proxy that every plugin with an empty vm_id reads and writes
// (proxy-wasm-cpp-host src/shared_data.cc). Records planted there by another
// writer, as a key slot and as the in-flight set, are parsed like incoming
// headers: nothing outside correlation.restoreHeaders and no malformed
// trace header reaches the outbound request, and the drop is counted.
func TestPoisonedSharedDataNotApplied(t *testing.T) {
	const policy = `{"correlation":{"strategies":["key","soleInFlight"]}}`
	cfg, err := engine.LoadPolicy([]byte(policy), nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		rec      []byte
		wantTP   string // "" = a new context
		restored bool
	}{
		{"credentials", poisonRecord("traceparent", tpA, "authorization", "Bearer stolen", "cookie", "sid=stolen", "x-forwarded-for", "6.6.6.6"), tpA, true},
		{"invalid traceparent", poisonRecord("traceparent", "00-zz-stolen-01"), "", false},
		{"33-member tracestate", poisonRecord("traceparent", tpA, "tracestate", strings.Repeat("k=stolen,", 32)+"k33=stolen"), tpA, true},
	}
	plants := map[string]func(t *testing.T, rec []byte) [][2]string{
		"key slot": func(t *testing.T, rec []byte) [][2]string {
			const key = "x-request-id=poisoned"
			st := newSharedStore(cfg)
			val := binary.BigEndian.AppendUint64(nil, uint64(now().Add(time.Minute).UnixNano()))
			val = binary.BigEndian.AppendUint16(val, uint16(len(key)))
			val = append(append(val, key...), rec...)
			if err := proxywasm.SetSharedData(st.slotKey(st.candidates(key)[0]), val, 0); err != nil {
				t.Fatal(err)
			}
			return [][2]string{{"x-request-id", "poisoned"}}
		},
		"in-flight set": func(t *testing.T, rec []byte) [][2]string {
			_, cas, err := proxywasm.GetSharedData(inFlightKey)
			if err != nil {
				t.Fatal(err)
			}
			var set engine.InFlightSet
			set.Enter(42, rec, now().UnixNano())
			if err := proxywasm.SetSharedData(inFlightKey, set.AppendBinary(nil), cas); err != nil {
				t.Fatal(err)
			}
			return [][2]string{{":path", "/ratings"}}
		},
	}
	for where, plant := range plants {
		for _, tc := range cases {
			t.Run(where+"/"+tc.name, func(t *testing.T) {
				s := newSidecar(t, policy)
				req := plant(t, tc.rec)
				_, out := s.request(engine.Outbound, req)
				for name, v := range out {
					if strings.Contains(v, "stolen") || v == "6.6.6.6" {
						t.Errorf("poisoned header applied: %s: %s", name, v)
					}
				}
				if tc.wantTP != "" && out["traceparent"] != tc.wantTP {
					t.Errorf("traceparent %q, want %q from the record", out["traceparent"], tc.wantTP)
				}
				if tc.wantTP == "" && (out["traceparent"] == "" || strings.Contains(out["traceparent"], "zz")) {
					t.Errorf("traceparent %q, want a new context", out["traceparent"])
				}
				if s.counter(engine.DecisionDropped, engine.Outbound) != 1 {
					t.Errorf("dropped not counted")
				}
				if got := s.counter(engine.DecisionRestored, engine.Outbound) == 1; got != tc.restored {
					t.Errorf("restored = %v, want %v", got, tc.restored)
				}
			})
		}
	}
}
