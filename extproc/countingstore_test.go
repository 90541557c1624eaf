package extproc

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/tracebridge/tracebridge/e2e/testsupport"
	"github.com/tracebridge/tracebridge/engine"
	"github.com/tracebridge/tracebridge/extproc/store"
)

// TestNarrowStoreContract runs the narrowed strategy's store operations
// against the memory store and a real redis-server, with the same answers.
func TestNarrowStoreContract(t *testing.T) {
	r := testsupport.Redis(t)
	cfg := compiled(t, `{"correlation":{"strategies":["narrowed"]}}`)
	stores := map[string]func(t *testing.T) engine.NarrowStore{
		"memory": func(t *testing.T) engine.NarrowStore {
			return &countingStore{s: (&store.Memory{}).StoreFor(cfg), m: NewMetrics(), log: newRateLimitedLog(slog.New(slog.NewTextHandler(io.Discard, nil)), time.Hour)}
		},
		"redis": func(t *testing.T) engine.NarrowStore {
			s := newRedisStore(t, r, store.RedisOptions{})
			redisClient(t, r).FlushDB(t.Context())
			return &countingStore{s: s.StoreFor(cfg), m: NewMetrics(), log: newRateLimitedLog(slog.New(slog.NewTextHandler(io.Discard, nil)), time.Hour)}
		},
	}
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			s := mk(t)
			k1, err := s.NarrowKey()
			if err != nil {
				t.Fatal(err)
			}
			if k2, _ := s.NarrowKey(); k1 != k2 || k1 == ([engine.NarrowKeySize]byte{}) {
				t.Fatal("the fingerprint key changed or is zero")
			}
			narrow := func(wantN int, wantRec string, prints ...uint64) {
				t.Helper()
				n, rec, ok, err := s.Narrow([]byte("p:"), prints)
				if err != nil {
					t.Fatal(err)
				}
				got := ""
				if ok {
					got = string(rec[2:])
				}
				if n != wantN || got != wantRec {
					t.Fatalf("Narrow(%v) = %d %q, want %d %q", prints, n, got, wantN, wantRec)
				}
			}
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(s.EnterNarrow(1, []byte("A"), []uint64{11, 12}))
			must(s.EnterNarrow(2, []byte("B"), []uint64{13}))
			narrow(1, "B", 13)
			narrow(1, "A", 99, 12)
			narrow(0, "", 99)
			must(s.EnterNarrow(3, nil, []uint64{13}))
			narrow(2, "", 13)
			must(s.LeaveNarrow(3))
			narrow(1, "B", 13)
			must(s.EnterNarrow(4, nil, []uint64{14}))
			narrow(1, "", 14) // the one match has no record
			must(s.LeaveNarrow(4))
			for i := uint64(100); i < 100+engine.MaxInFlightEntries; i++ {
				must(s.EnterNarrow(i, []byte("x"), []uint64{i}))
			}
			narrow(2, "", 13) // 66 in flight: the overflow may share 13
			last := uint64(100 + engine.MaxInFlightEntries - 1)
			must(s.LeaveNarrow(last)) // the two that did not fit leave
			must(s.LeaveNarrow(last - 1))
			narrow(1, "B", 13)
			for i := uint64(100); i < 100+engine.MaxInFlightEntries; i++ {
				must(s.LeaveNarrow(i))
			}
			must(s.LeaveNarrow(1))
			must(s.LeaveNarrow(2))
			must(s.LeaveNarrow(2)) // twice: ignored
			narrow(0, "", 11, 12, 13)
		})
	}
}
