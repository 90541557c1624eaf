package extproc

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/tracebridge/tracebridge/e2e/testsupport"
	"github.com/tracebridge/tracebridge/extproc/store"
)

// testClock is a clock the test moves by hand.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// TestInFlightTimeoutFromPolicy: an inbound stream left open lends its
// context to outbound calls (sole in flight) only for the policy's
// correlation.inFlightTimeout, for both stores, and a reload that changes
// only the timeout applies it to the store in use.
func TestInFlightTimeoutFromPolicy(t *testing.T) {
	policy := func(timeout string) string {
		return `{"correlation":{"strategies":["soleInFlight"],"inFlightTimeout":"` + timeout + `"}}`
	}
	cases := []struct {
		name string
		opts func(t *testing.T, clock *testClock) Options
	}{
		{"memory", func(t *testing.T, clock *testClock) Options { return Options{Now: clock.Now} }},
		{"redis", func(t *testing.T, clock *testClock) Options {
			rs := newRedisStore(t, testsupport.Redis(t), store.RedisOptions{Now: clock.Now})
			return Options{Stores: rs, Now: clock.Now}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := newTestClock()
			env := startServer(t, "bufconn", policy("10m"), tc.opts(t, clock))
			in, cancel := openStream(t, env.client)
			defer cancel()
			roundTrip(t, in, reqHeadersMsg(hmap("traceparent", validTP), attrs(attrListenerDirection, 1)))
			restored := func() bool {
				t.Helper()
				out, cancel := openStream(t, env.client)
				defer cancel()
				req := hmap(":path", "/")
				resp := roundTrip(t, out, reqHeadersMsg(req, attrs(attrListenerDirection, 2)))
				closeStream(t, out)
				got := applyMutation(t, headerPairs(req), resp.GetRequestHeaders().GetResponse().GetHeaderMutation())
				v, _ := headerValue(got, "traceparent")
				return v == validTP
			}
			// Past the engine's default timeout, within the policy's.
			clock.Advance(7 * time.Minute)
			if !restored() {
				t.Fatal("inbound stream open for 7m forgotten under inFlightTimeout 10m")
			}
			if err := env.srv.SetPolicy(mustPolicy(t, policy("1m"))); err != nil {
				t.Fatal(err)
			}
			if restored() {
				t.Fatal("inbound stream open for 7m still lent its context after a reload to inFlightTimeout 1m")
			}
			closeStream(t, in)
		})
	}
}
