package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tracebridge/tracebridge/e2e/sim/backend"
	"github.com/tracebridge/tracebridge/e2e/sim/demo"
	"github.com/tracebridge/tracebridge/e2e/sim/sidecar"
	"github.com/tracebridge/tracebridge/tools/manifests"
)

// tracerAndTagScenarios are the scenarios of Envoy's Zipkin tracer with B3
// and W3C propagation (host.tracer zipkin-w3c) and of span tags through
// Telemetry formatter tags. ext is the gateway's ext_proc for the zipkin
// tracer.
func tracerAndTagScenarios(t *testing.T, e *env, ext *demo.ExtProc) {
	// A W3C-instrumented client (a browser, an OpenTelemetry SDK) sends only
	// traceparent. The plain Zipkin tracer reads B3 only: the gateway span
	// is a new root and the client's trace ends at the edge (the filters
	// then follow the fresh x-b3-*, docs/POLICY.md host.tracer). With
	// trace_context_option USE_B3_WITH_W3C_PROPAGATION the tracer falls back
	// to traceparent (docs/ENVOY.md §2): the gateway span is the client
	// span's child and the whole request is in the client's trace.
	t.Run("zipkin-w3c/client-traceparent-joins-at-the-gateway", func(t *testing.T) {
		for _, tracer := range []string{"zipkin", "zipkin-w3c"} {
			t.Run(tracer, func(t *testing.T) {
				addr := ext.Addr
				if tracer != "zipkin" {
					addr = e.extprocFor(t, tracer).Addr
				}
				m, _ := e.mesh(t, demo.MeshOptions{Mode: demo.AutoForward, Tracer: tracer, ExtProc: addr})
				from := time.Now()
				toks := tokens(tracer, 3)
				client := map[string][2]string{}
				for _, tok := range toks {
					trace, span := randHex(16), randHex(8)
					client[tok] = [2]string{trace, span}
					send(t, m, []string{tok}, map[string]string{"traceparent": "00-" + trace + "-" + span + "-01"})
				}
				m.Flush()
				got := e.traces(t, from, toks, allHave(5))
				for tok, ts := range got {
					if len(ts) != 1 || len(ts[0].Spans) != 5 {
						t.Errorf("%s: want one trace of 5 spans:\n%s", tok, dump(ts))
						continue
					}
					tr, gw := ts[0], only(t, ts[0], demo.GatewayService)
					joined := backend.TraceIDEqual(tr.ID, client[tok][0]) && backend.TraceIDEqual(gw.ParentID, client[tok][1])
					if want := tracer == "zipkin-w3c"; joined != want {
						t.Errorf("%s: trace %s, gateway parent %q; client traceparent %s-%s; joined %v, want %v",
							tok, tr.ID, gw.ParentID, client[tok][0], client[tok][1], joined, want)
					}
					if tracer == "zipkin" && gw.ParentID != "" {
						t.Errorf("%s: gateway span has parent %s, want a root", tok, gw.ParentID)
					}
					for svc, parent := range autoParents {
						if s, p := only(t, tr, svc), only(t, tr, parent); s.ParentID != p.SpanID {
							t.Errorf("%s: %s's parent is %s, want %s's span %s", tok, svc, s.ParentID, parent, p.SpanID)
						}
					}
				}
			})
		}
	})

	// The tags the gateway's ext_proc returns as dynamic metadata and the
	// tag the sidecars' module puts in filter state reach Jaeger's spans
	// through Telemetry customTags of type formatter (Envoy CustomTag.value,
	// what tools/manifests renders by default), and the same tags through
	// the EnvoyFilter fallback (custom tags of type metadata).
	for _, style := range []string{manifests.CustomTagsTelemetry, manifests.CustomTagsEnvoyFilter} {
		t.Run("span-tags/"+style, func(t *testing.T) {
			m, _ := e.mesh(t, demo.MeshOptions{Mode: demo.AutoForward, ExtProc: ext.Addr, GatewayTagStyle: style})
			from := time.Now()
			toks := tokens("tags-"+style, 2)
			send(t, m, toks, nil)
			m.Flush()
			got := e.traces(t, from, toks, allHave(5))
			for tok, ts := range got {
				if len(ts) != 1 {
					t.Errorf("%s: %d traces:\n%s", tok, len(ts), dump(ts))
					continue
				}
				gw := only(t, ts[0], demo.GatewayService)
				for k, want := range map[string]string{"tenant": "acme", "route": "products", "plan": "gold"} {
					if gw.Tags[k] != want {
						t.Errorf("%s: gateway tag %s = %q, want %q", tok, k, gw.Tags[k], want)
					}
				}
				for _, svc := range demo.Services {
					if s := only(t, ts[0], svc); s.Tags["mesh"] != "bookinfo-demo" {
						t.Errorf("%s: %s tag mesh = %q, want bookinfo-demo (%%FILTER_STATE(wasm.tracebridge.mesh:PLAIN)%%)", tok, svc, s.Tags["mesh"])
					}
				}
			}
		})
	}
}

// extprocFor starts a gateway ext_proc whose policy is adapted to tracer.
func (e *env) extprocFor(t *testing.T, tracer string) *demo.ExtProc {
	t.Helper()
	doc, err := sidecar.GatewayPolicy(e.policy, "upstream", tracer)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pf := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(pf, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := demo.StartExtProc(e.extBin, pf, filepath.Join(dir, "extproc.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
