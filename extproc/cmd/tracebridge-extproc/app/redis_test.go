package app

import (
	"bytes"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tracebridge/tracebridge/e2e/testsupport"
	"github.com/tracebridge/tracebridge/extproc/store"
)

// TestRunRedisStore: --store redis:// wires the Redis store into the
// command: an inbound request leaves its record under the tracebridge: prefix.
func TestRunRedisStore(t *testing.T) {
	r := testsupport.Redis(t)
	g, _, _ := runInProcess(t, "--store", "redis://"+r.Addr+"/0")
	if _, err := oneExchange(t, dial(t, g, nil), "traceparent", validTP, "x-request-id", "via-run"); err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rc.Close()
	v, err := rc.Get(t.Context(), store.RedisKeyPrefix+"rec:x-request-id=via-run").Bytes()
	if err != nil {
		t.Fatalf("record not in Redis: %v", err)
	}
	if !bytes.Contains(v, []byte(validTP)) {
		t.Errorf("record %q lacks the traceparent", v)
	}
}
