package extproc

import (
	"strings"
	"testing"

	"github.com/tracebridge/tracebridge/e2e/testsupport"
	"github.com/tracebridge/tracebridge/engine"
	"github.com/tracebridge/tracebridge/extproc/store"
)

// TestPoisonedRecordsNotApplied plants records straight into each store
// kind the service uses (its memory store, and Redis, which every replica
// and anything else with access can write) and checks, over gRPC, that an
// outbound request gets neither headers outside correlation.restoreHeaders
// nor malformed trace headers from them, and that the drop is counted.
func TestPoisonedRecordsNotApplied(t *testing.T) {
	r := testsupport.Redis(t)
	const policy = `{"direction":"outbound"}`
	cfg := compiled(t, policy)
	rec := func(kv ...string) []byte {
		var b []byte
		for i := 0; i+1 < len(kv); i += 2 {
			b = engine.AppendRecordEntry(b, kv[i], kv[i+1])
		}
		return b
	}
	records := []struct {
		name     string
		rec      []byte
		wantTP   string // "" = a new context, not from the record
		restored bool
	}{
		{"credentials", rec("traceparent", validTP, "authorization", "Bearer stolen", "cookie", "sid=stolen", "x-forwarded-for", "6.6.6.6"), validTP, true},
		{"invalid traceparent", rec("traceparent", "00-zz-stolen-01"), "", false},
		{"invalid tracestate", rec("traceparent", validTP, "tracestate", "Bad=stolen"), validTP, true},
	}
	kinds := map[string]func(t *testing.T, key string, rec []byte) store.Provider{
		"memory": func(t *testing.T, key string, rec []byte) store.Provider {
			p := &store.Memory{}
			if err := p.StoreFor(cfg).Put(key, rec); err != nil {
				t.Fatal(err)
			}
			return p
		},
		"redis": func(t *testing.T, key string, rec []byte) store.Provider {
			s := newRedisStore(t, r, store.RedisOptions{})
			redisClient(t, r).FlushDB(t.Context())
			// Written with the plain client, as another writer would.
			if err := redisClient(t, r).Set(t.Context(), store.RedisKeyPrefix+"rec:"+key, rec, 0).Err(); err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
	for kind, plant := range kinds {
		for _, tc := range records {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				env := startServer(t, "bufconn", policy, Options{Stores: plant(t, "x-request-id=poisoned", tc.rec)})
				s, cancel := openStream(t, env.client)
				defer cancel()
				before := decisionCounts(t, env.m)
				resp := roundTrip(t, s, reqHeadersMsg(hmap("x-request-id", "poisoned"), nil))
				d := decisionDelta(before, decisionCounts(t, env.m))
				got := applyMutation(t, headerPairs(hmap("x-request-id", "poisoned")), resp.GetRequestHeaders().GetResponse().GetHeaderMutation())
				closeStream(t, s)
				for _, p := range got {
					if strings.Contains(p[1], "stolen") || p[1] == "6.6.6.6" {
						t.Errorf("poisoned header applied: %s: %s", p[0], p[1])
					}
				}
				tp, _ := headerValue(got, "traceparent")
				if tc.wantTP != "" && tp != tc.wantTP {
					t.Errorf("traceparent %q, want %q from the record", tp, tc.wantTP)
				}
				if tc.wantTP == "" && (tp == "" || strings.Contains(tp, "zz")) {
					t.Errorf("traceparent %q, want a new context", tp)
				}
				if !strings.Contains(","+strings.Join(d, ",")+",", ",dropped,") {
					t.Errorf("decisions %v, want dropped counted", d)
				}
				if has := strings.Contains(","+strings.Join(d, ",")+",", ",restored,"); has != tc.restored {
					t.Errorf("decisions %v: restored = %v, want %v", d, has, tc.restored)
				}
			})
		}
	}
}
