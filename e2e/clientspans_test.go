package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/tracebridge/tracebridge/e2e/sim/demo"
)

// spanOf returns the one span of service and kind in tr whose URL contains
// url ("" matches any), failing when there is not exactly one.
func spanOf(t *testing.T, tr demo.Trace, service, kind, url string) demo.SpanView {
	t.Helper()
	var out []demo.SpanView
	for _, s := range tr.Spans {
		if s.Service == service && s.Kind == kind && strings.Contains(s.Tags["http.url"], url) {
			out = append(out, s)
		}
	}
	if len(out) != 1 {
		t.Fatalf("trace %s: %d %s %s spans for %q, want 1:\n%s", tr.ID, len(out), service, kind, url, dump([]demo.Trace{tr}))
	}
	return out[0]
}

// TestClientSpansWithJaeger: in auto-forward mode with clientSpans on, every
// outbound call has tracebridge's CLIENT span in real Jaeger, and every span
// has the parent, kind and service Envoy's client tracing would give it if
// the apps propagated (the server spans of details, reviews and ratings
// under the caller's client span).
func TestClientSpansWithJaeger(t *testing.T) {
	e := setup(t)
	ext := e.extproc(t)
	for _, mode := range []demo.Mode{demo.AutoForward, demo.Precise} {
		t.Run(mode.String(), func(t *testing.T) {
			m, _ := e.mesh(t, demo.MeshOptions{Mode: mode, ExtProc: ext.Addr, EdgeTrust: true, ClientSpans: true})
			from := time.Now()
			toks := tokens("client-"+mode.String(), 3)
			send(t, m, toks, nil)
			m.Flush()
			got := e.traces(t, from, toks, allHave(8))
			for tok, ts := range got {
				if len(ts) != 1 || len(ts[0].Spans) != 8 {
					t.Errorf("%s: %d traces, %d spans; want 1 trace of 8 (5 SERVER, 3 CLIENT):\n%s", tok, len(ts), spanCount(ts), dump(ts))
					continue
				}
				tr := ts[0]
				gw := spanOf(t, tr, demo.GatewayService, "SERVER", "")
				pp := spanOf(t, tr, "productpage", "SERVER", "")
				ppDetails := spanOf(t, tr, "productpage", "CLIENT", "details:9080")
				ppReviews := spanOf(t, tr, "productpage", "CLIENT", "reviews:9080")
				details := spanOf(t, tr, "details", "SERVER", "")
				reviews := spanOf(t, tr, "reviews", "SERVER", "")
				rvRatings := spanOf(t, tr, "reviews", "CLIENT", "ratings:9080")
				ratings := spanOf(t, tr, "ratings", "SERVER", "")
				// The client spans' parent: in auto-forward mode the context
				// the sidecar received (the caller's span), with precise
				// parenting this hop's server span.
				ppParent, rvParent := gw, ppReviews
				if mode == demo.Precise {
					ppParent, rvParent = pp, reviews
				}
				for _, c := range []struct {
					name         string
					span, parent demo.SpanView
				}{
					{"productpage SERVER", pp, gw},
					{"productpage CLIENT → details", ppDetails, ppParent},
					{"productpage CLIENT → reviews", ppReviews, ppParent},
					{"details SERVER", details, ppDetails},
					{"reviews SERVER", reviews, ppReviews},
					{"reviews CLIENT → ratings", rvRatings, rvParent},
					{"ratings SERVER", ratings, rvRatings},
				} {
					if c.span.ParentID != c.parent.SpanID {
						t.Errorf("%s: %s's parent is %s, want %s %s %s:\n%s", tok, c.name, c.span.ParentID, c.parent.Service, c.parent.Kind, c.parent.SpanID, dump(ts))
					}
				}
				if gw.ParentID != "" {
					t.Errorf("%s: gateway span has a parent", tok)
				}
				// A client span covers the server span it called.
				for _, pair := range [][2]demo.SpanView{{ppDetails, details}, {ppReviews, reviews}, {rvRatings, ratings}} {
					c, s := pair[0], pair[1]
					if s.Start.Before(c.Start) || s.Start.Add(s.Duration).After(c.Start.Add(c.Duration).Add(time.Millisecond)) {
						t.Errorf("%s: %s server span [%v +%v] not within the client span [%v +%v]", tok, s.Service, s.Start, s.Duration, c.Start, c.Duration)
					}
				}
				// The apps of this mesh forward nothing and requests are
				// sent one at a time: every call is restored by sole-in-flight.
				for _, c := range []demo.SpanView{ppDetails, ppReviews, rvRatings} {
					if s := c.Tags["tracebridge.strategy"]; s != "soleInFlight" {
						t.Errorf("%s: %s CLIENT %s strategy %q, want soleInFlight", tok, c.Service, c.Tags["http.url"], s)
					}
				}
			}
		})
	}

	t.Run("collector-away-requests-unaffected", func(t *testing.T) {
		// The collector's port is closed: server spans (the harness's
		// reporter) and client spans (the module's proxy_http_call) fail;
		// the requests do not notice.
		m, _ := e.mesh(t, demo.MeshOptions{Mode: demo.AutoForward, ExtProc: ext.Addr, EdgeTrust: true, ClientSpans: true,
			Collector: "http://127.0.0.1:1/api/v2/spans"})
		start := time.Now()
		send(t, m, tokens("client-away", 3), nil)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("3 requests took %v with the collector away", d)
		}
		m.Flush()
		var failed, sent int64
		for _, sc := range m.Sidecars {
			c := sc.Wasm.Counters()
			failed += c["outcome=.=failed;.;tracebridge_client_spans_total"]
			sent += c["outcome=.=sent;.;tracebridge_client_spans_total"]
		}
		if failed != 9 || sent != 0 {
			t.Errorf("client spans failed %d sent %d, want 9 failed (3 calls per request) and none sent", failed, sent)
		}
	})
}
