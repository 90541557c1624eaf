package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracebridge/tracebridge/e2e/sim/demo"
)

// TestNarrowedWithJaeger: apps that forward no trace header but relay their
// caller's authorization header, each client request with its own token.
// The narrowed strategy must make at least 95 % of the requests one complete
// trace with the right parents at every concurrency, and never put a span in
// another request's trace; sole in flight alone runs the same load beside it
// for comparison (same never-wrong rule, no completeness bound).
func TestNarrowedWithJaeger(t *testing.T) {
	e := setup(t)
	ext := e.extproc(t)
	const requests = 100
	for _, run := range []struct {
		name       string
		strategies []string
		minShare   float64
	}{
		{"narrowed", []string{"narrowed"}, 0.95},
		{"sole-in-flight", []string{"soleInFlight"}, 0},
	} {
		for _, conc := range []int{1, 8, 32} {
			t.Run(fmt.Sprintf("%s/concurrency-%d", run.name, conc), func(t *testing.T) {
				pol := policyWith(t, e.policy, run.strategies)
				m, log := e.mesh(t, demo.MeshOptions{Mode: demo.AutoForward, ExtProc: ext.Addr, EdgeTrust: true,
					SidecarPolicy: pol, RelayHeaders: []string{"authorization"}})
				from := time.Now()
				toks := tokens(fmt.Sprintf("%s%d", run.name[:4], conc), requests)
				concurrently(t, m, toks, conc, bearer)
				m.Flush()
				got := e.traces(t, from, toks, allHave(5))
				good, wrong := scoreTraces(t, got, autoParents)
				l := log.String()
				t.Logf("%s, %d requests at concurrency %d: %d (%.0f %%) one complete trace with the right parents, %d spans in a wrong trace; outbound decisions: %d restored (%d narrowed), %d ambiguous",
					run.name, len(toks), conc, good, 100*float64(good)/float64(len(toks)), wrong,
					strings.Count(l, "wasm:restored"), strings.Count(l, "wasm:narrowed"), strings.Count(l, "wasm:ambiguous"))
				if wrong != 0 {
					t.Errorf("%d spans in another request's trace", wrong)
				}
				if share := float64(good) / float64(len(toks)); share < run.minShare {
					t.Errorf("%.1f %% of requests one complete trace, want at least %.0f %%", 100*share, 100*run.minShare)
				}
			})
		}
	}

	// Two concurrent requests with the same token (one user's parallel
	// calls): never a wrong parent, whatever the timing.
	t.Run("narrowed/same-token-never-a-wrong-parent", func(t *testing.T) {
		pol := policyWith(t, e.policy, []string{"narrowed"})
		m, log := e.mesh(t, demo.MeshOptions{Mode: demo.AutoForward, ExtProc: ext.Addr, EdgeTrust: true,
			SidecarPolicy: pol, RelayHeaders: []string{"authorization"}})
		from := time.Now()
		toks := tokens("same", 40)
		// Pairs of requests share a token: the pair's two requests run at
		// the same time.
		var wg sync.WaitGroup
		errs := make(chan error, len(toks))
		for i := 0; i < len(toks); i += 2 {
			for _, tok := range toks[i : i+2] {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := demo.SendRequest(context.Background(), client, m.URL(), tok, map[string]string{"Authorization": fmt.Sprintf("Bearer pair-%d", i)})
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("%s: status %d", tok, resp.StatusCode)
					}
					errs <- err
				}()
			}
			wg.Wait()
		}
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		m.Flush()
		got := e.traces(t, from, toks, allHave(5))
		good, wrong := scoreTraces(t, got, autoParents)
		t.Logf("same token in pairs: %d of %d requests one complete trace, %d spans in a wrong trace, %d ambiguous outbound decisions",
			good, len(toks), wrong, strings.Count(log.String(), "wasm:ambiguous"))
		if wrong != 0 {
			t.Errorf("%d spans in another request's trace", wrong)
		}
		if !strings.Contains(log.String(), "wasm:ambiguous") {
			t.Errorf("no ambiguous decision: the pairs did not overlap")
		}
	})
}

// scoreTraces checks every trace holding a span of each token: a span of
// another request in it counts as wrong; a token whose spans form exactly one
// trace of five spans with the given parents counts as good.
func scoreTraces(t *testing.T, got map[string][]demo.Trace, parents map[string]string) (good, wrong int) {
	t.Helper()
	for tok, ts := range got {
		for _, tr := range ts {
			for _, s := range tr.Spans {
				if u := s.Tags["http.url"]; !strings.HasSuffix(u, "/"+tok) {
					wrong++
					t.Errorf("trace %s of %s holds a span of another request: %s %s", tr.ID, tok, s.Service, u)
				}
			}
		}
		if len(ts) != 1 || len(ts[0].Spans) != 5 {
			continue
		}
		ok := true
		spans := map[string][]demo.SpanView{}
		for _, s := range ts[0].Spans {
			spans[s.Service] = append(spans[s.Service], s)
		}
		if gw := spans[demo.GatewayService]; len(gw) != 1 || gw[0].ParentID != "" {
			ok = false
		}
		for svc, parent := range parents {
			s, p := spans[svc], spans[parent]
			if len(s) != 1 || len(p) != 1 || s[0].ParentID != p[0].SpanID {
				ok = false
			}
		}
		if ok {
			good++
		}
	}
	return good, wrong
}

// bearer gives each request its own bearer token, derived from the
// request's token.
func bearer(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer user-" + tok}
}
