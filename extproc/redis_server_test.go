package extproc

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tracebridge/tracebridge/e2e/sim/backend"
	"github.com/tracebridge/tracebridge/e2e/testsupport"
	"github.com/tracebridge/tracebridge/extproc/store"
)

func newRedisStore(t *testing.T, r *backend.RedisInstance, o store.RedisOptions) *store.Redis {
	t.Helper()
	s, err := store.NewRedis("redis://"+r.Addr+"/0", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// redisClient is a client of its own, to empty the database or plant keys.
func redisClient(t *testing.T, r *backend.RedisInstance) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRedisReplicas: two ext_proc replicas sharing Redis: the gateway
// replica records an inbound request, the waypoint replica restores its
// context on an outbound call carrying the same x-request-id.
func TestRedisReplicas(t *testing.T) {
	r := testsupport.Redis(t)
	a := startServer(t, "tcp", `{"direction":"inbound"}`, Options{Stores: newRedisStore(t, r, store.RedisOptions{})})
	b := startServer(t, "tcp", `{"direction":"outbound"}`, Options{Stores: newRedisStore(t, r, store.RedisOptions{})})
	in, cancel := openStream(t, a.client)
	defer cancel()
	roundTrip(t, in, reqHeadersMsg(hmap("traceparent", validTP, "x-request-id", "shared-1"), nil))
	closeStream(t, in)
	out, cancel2 := openStream(t, b.client)
	defer cancel2()
	resp := roundTrip(t, out, reqHeadersMsg(hmap("x-request-id", "shared-1"), nil))
	got := applyMutation(t, headerPairs(hmap("x-request-id", "shared-1")), resp.GetRequestHeaders().GetResponse().GetHeaderMutation())
	if v, _ := headerValue(got, "traceparent"); v != validTP {
		t.Errorf("replica b restored traceparent %q, want %q", v, validTP)
	}
	closeStream(t, out)
}

// TestRedisGoesAway: with Redis stopped, requests still get their answer
// quickly (fail open), errors are counted; when Redis is back, correlation
// works again.
func TestRedisGoesAway(t *testing.T) {
	r := testsupport.Redis(t)
	rs := newRedisStore(t, r, store.RedisOptions{Timeout: 50 * time.Millisecond, Backoff: 200 * time.Millisecond})
	env := startServer(t, "tcp", `{"correlation":{"strategies":["key","soleInFlight"]}}`, Options{Stores: rs})
	exchange := func(dir int, rid string, kv ...string) (traceparent string, took time.Duration) {
		t.Helper()
		start := time.Now()
		s, cancel := openStream(t, env.client)
		defer cancel()
		in := hmap(append([]string{"x-request-id", rid}, kv...)...)
		resp := roundTrip(t, s, reqHeadersMsg(in, attrs(attrListenerDirection, dir)))
		if resp.GetRequestHeaders() == nil {
			t.Fatalf("reply %T", resp.Response)
		}
		closeStream(t, s)
		out := applyMutation(t, headerPairs(in), resp.GetRequestHeaders().GetResponse().GetHeaderMutation())
		v, _ := headerValue(out, "traceparent")
		return v, time.Since(start)
	}
	exchange(1, "before", "traceparent", validTP)
	if v, _ := exchange(2, "before"); v != validTP {
		t.Fatalf("restore with Redis up: %q", v)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, took := exchange(1, "down", "traceparent", validTP); took > 500*time.Millisecond {
			t.Errorf("request %d took %s with Redis down", i, took)
		}
	}
	if v, _ := exchange(2, "down"); v == validTP {
		t.Error("restored from a Redis that is down")
	}
	errs := counterByLabel(t, env.m, "tracebridge_extproc_store_errors_total", "op")
	if errs["put"]+errs["enter"] == 0 {
		t.Errorf("store errors not counted: %v", errs)
	}
	if d := decisionCounts(t, env.m); d["error"] == 0 {
		t.Errorf("error decision not counted: %v", d)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		exchange(1, "after", "traceparent", validTP)
		v, _ := exchange(2, "after")
		return v == validTP
	})
}
