package store

import (
	"testing"
	"time"

	"github.com/tracebridge/tracebridge/e2e/testsupport"
	"github.com/tracebridge/tracebridge/engine"
)

// TestRedisNarrowReplicas: replicas on one database share the fingerprint
// key and see each other's in-flight requests; entries expire after the
// in-flight timeout.
func TestRedisNarrowReplicas(t *testing.T) {
	r := testsupport.Redis(t)
	a := newRedis(t, r, RedisOptions{})
	a.c.FlushDB(t.Context())
	b := newRedis(t, r, RedisOptions{})
	a.timeout.Store(int64(300 * time.Millisecond))
	b.timeout.Store(int64(300 * time.Millisecond))
	ka, err := a.NarrowKey()
	if err != nil {
		t.Fatal(err)
	}
	if kb, err := b.NarrowKey(); err != nil || kb != ka {
		t.Fatalf("replicas use different keys (%v)", err)
	}
	if err := a.EnterNarrow(1, []byte("rec"), []uint64{engine.Fingerprint(ka, "authorization", "Bearer t")}); err != nil {
		t.Fatal(err)
	}
	n, rec, ok, err := b.Narrow(nil, []uint64{engine.Fingerprint(ka, "authorization", "Bearer t")})
	if err != nil || n != 1 || !ok || string(rec) != "rec" {
		t.Fatalf("other replica: %d %q %v %v", n, rec, ok, err)
	}
	time.Sleep(400 * time.Millisecond)
	if n, _, _, _ := b.Narrow(nil, []uint64{engine.Fingerprint(ka, "authorization", "Bearer t")}); n != 0 {
		t.Fatalf("after the in-flight timeout: %d matches", n)
	}
}
