package store

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tracebridge/tracebridge/e2e/sim/backend"
	"github.com/tracebridge/tracebridge/e2e/testsupport"
	"github.com/tracebridge/tracebridge/engine"
	"github.com/tracebridge/tracebridge/extproc/internal/extproctest"
)

func newRedis(t *testing.T, r *backend.RedisInstance, o RedisOptions) *Redis {
	t.Helper()
	s, err := NewRedis("redis://"+r.Addr+"/0", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestStoreContract runs the same sequence against the memory store and the
// Redis store (a real redis-server): what the engine relies on holds for both.
func TestStoreContract(t *testing.T) {
	r := testsupport.Redis(t)
	cfg := compiled(t, `{"correlation":{"ttl":"300ms","capacity":64,"inFlightTimeout":"400ms"}}`)
	stores := map[string]func(t *testing.T) engine.Store{
		"memory": func(t *testing.T) engine.Store { return (&Memory{}).StoreFor(cfg) },
		"redis": func(t *testing.T) engine.Store {
			s := newRedis(t, r, RedisOptions{})
			s.c.FlushDB(t.Context())
			return s.StoreFor(cfg)
		},
	}
	long := strings.Repeat("k", 4096)
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			s := mk(t)
			get := func(key string) (string, bool) {
				t.Helper()
				rec, ok, err := s.Get([]byte("prefix:"), key)
				if err != nil {
					t.Fatalf("Get(%q): %v", key, err)
				}
				if !bytes.HasPrefix(rec, []byte("prefix:")) {
					t.Fatalf("Get did not append to dst: %q", rec)
				}
				return string(rec[len("prefix:"):]), ok
			}
			sole := func(wantN int, wantRec string) {
				t.Helper()
				n, rec, ok, err := s.Sole(nil)
				if err != nil {
					t.Fatalf("Sole: %v", err)
				}
				if n != wantN || string(rec) != wantRec || ok != (wantRec != "") {
					t.Fatalf("Sole = %d %q %v, want %d %q", n, rec, ok, wantN, wantRec)
				}
			}
			steps := []struct {
				name string
				do   func()
			}{
				{"missing key", func() {
					if _, ok := get("x-request-id=none"); ok {
						t.Error("found a record never stored")
					}
				}},
				{"put/get", func() {
					s.Put("x-request-id=a", []byte("rec-a"))
					if v, ok := get("x-request-id=a"); !ok || v != "rec-a" {
						t.Errorf("got %q %v", v, ok)
					}
				}},
				{"overwrite", func() {
					s.Put("x-request-id=a", []byte("rec-a2"))
					if v, _ := get("x-request-id=a"); v != "rec-a2" {
						t.Errorf("got %q", v)
					}
				}},
				{"long key", func() {
					s.Put("x-request-id="+long, []byte("rec-long"))
					if v, ok := get("x-request-id=" + long); !ok || v != "rec-long" {
						t.Errorf("got %q %v", v, ok)
					}
				}},
				{"record over MaxRecordBytes refused", func() {
					if err := s.Put("x-request-id=big", make([]byte, engine.MaxRecordBytes+1)); err != engine.ErrRecordTooLarge {
						t.Errorf("Put: %v, want ErrRecordTooLarge", err)
					}
					if _, ok := get("x-request-id=big"); ok {
						t.Error("oversized record stored")
					}
				}},
				{"ttl", func() {
					time.Sleep(450 * time.Millisecond)
					if _, ok := get("x-request-id=a"); ok {
						t.Error("record outlived its 300ms TTL")
					}
				}},
				{"sole: none", func() { sole(0, "") }},
				{"sole: one", func() { s.Enter(1, []byte("one")); sole(1, "one") }},
				{"sole: two", func() { s.Enter(2, []byte("two")); sole(2, "") }},
				{"sole: first leaves", func() { s.Leave(1); sole(1, "two") }},
				{"sole: unknown leave ignored", func() { s.Leave(99); sole(1, "two") }},
				{"sole: all left", func() { s.Leave(2); sole(0, "") }},
				{"sole: one without record", func() { s.Enter(3, nil); sole(1, "") }},
				{"sole: forgotten after the policy's in-flight timeout", func() {
					time.Sleep(500 * time.Millisecond)
					sole(0, "")
				}},
			}
			for _, st := range steps {
				st.do()
				if t.Failed() {
					t.Fatalf("after step %q", st.name)
				}
			}
		})
	}
}

// TestRedisKeyBytes: record keys in Redis are bounded whatever the
// x-request-id: keys over engine.MaxKeyBytes go under their SHA-256, and
// still restore.
func TestRedisKeyBytes(t *testing.T) {
	r := testsupport.Redis(t)
	s := newRedis(t, r, RedisOptions{})
	s.c.FlushDB(t.Context())
	s.StoreFor(compiled(t, `{}`))
	maxKey := len(RedisKeyPrefix + "rech:" + strings.Repeat("0", 64))
	for _, n := range []int{1, engine.MaxKeyBytes, engine.MaxKeyBytes + 1, 200, 60 << 10} {
		key := strings.Repeat("r", n)
		if err := s.Put(key, []byte(key[:1])); err != nil {
			t.Fatal(err)
		}
		if rec, ok, err := s.Get(nil, key); err != nil || !ok || string(rec) != key[:1] {
			t.Errorf("%d-byte key: %q %v %v", n, rec, ok, err)
		}
	}
	keys, err := s.c.Keys(t.Context(), RedisKeyPrefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 5 {
		t.Errorf("%d keys in Redis, want 5", len(keys))
	}
	for _, k := range keys {
		if len(k) > maxKey {
			t.Errorf("Redis key of %d bytes (%.40q...), want at most %d", len(k), k, maxKey)
		}
	}
}

// compiled is shared with the other ext_proc packages' tests.
var compiled = extproctest.Compiled
