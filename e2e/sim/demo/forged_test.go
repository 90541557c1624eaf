package demo

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tracebridge/tracebridge/e2e/sim/sidecar"
	"github.com/tracebridge/tracebridge/internal/repo"
	"github.com/tracebridge/tracebridge/wasm-filter/wasmtest"
)

// TestForgedTagHeadersNeverBecomeSpanTags runs the demo mesh (edge trust at
// the gateway, ext_proc upstream of it, the module in every sidecar) and
// sends a client request carrying its own x-tracebridge-plan with no token
// the plan tag could be read from: no span may carry the forged plan, while
// the tags the gateway computes still reach productpage's span.
func TestForgedTagHeadersNeverBecomeSpanTags(t *testing.T) {
	wasm := os.Getenv("TRACEBRIDGE_WASM")
	if wasm == "" {
		p, err := wasmtest.EnsureModule()
		if err != nil {
			t.Fatal(err)
		}
		wasm = p
	}
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	bin, err := BuildExtProc(root, work)
	if err != nil {
		t.Fatal(err)
	}
	policy, err := DemoPolicy(root)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := sidecar.GatewayPolicy(policy, "upstream", "zipkin")
	if err != nil {
		t.Fatal(err)
	}
	gwFile := filepath.Join(work, "gateway-policy.json")
	if err := os.WriteFile(gwFile, gw, 0o644); err != nil {
		t.Fatal(err)
	}
	ext, err := StartExtProc(bin, gwFile, filepath.Join(work, "extproc.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer ext.Stop()
	sink, err := StartSink()
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	m, err := StartMesh(MeshOptions{Mode: AutoForward, Tracer: "zipkin", Collector: sink.URL(), Wasm: wasm, SidecarPolicy: policy,
		ExtProc: ext.Addr, EdgeTrust: true, ReportInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	client := &http.Client{Timeout: 10 * time.Second}
	forged := map[string]string{"Authorization": "Bearer not-a-jwt", "X-Tracebridge-Plan": "platinum"}
	if _, err := SendRequest(context.Background(), client, m.URL(), "forged-1", forged); err != nil {
		t.Fatal(err)
	}
	if _, err := SendRequest(context.Background(), client, m.URL(), "honest-1", nil); err != nil {
		t.Fatal(err)
	}
	m.Flush()
	traces := GroupTraces(sink.Spans())
	check := func(tok string, want map[string]string) {
		t.Helper()
		ts := TracesOf(traces, tok)
		if len(ts) != 1 {
			t.Fatalf("%s: %d traces, want 1", tok, len(ts))
		}
		seen := false
		for _, s := range ts[0].Spans {
			if s.Tags["plan"] == "platinum" {
				t.Errorf("%s: %s span carries the forged plan tag", tok, s.Service)
			}
			if s.Service != "productpage" {
				continue
			}
			seen = true
			for k, v := range want {
				if s.Tags[k] != v {
					t.Errorf("%s: productpage tag %s = %q, want %q", tok, k, s.Tags[k], v)
				}
			}
		}
		if !seen {
			t.Errorf("%s: no productpage span", tok)
		}
	}
	check("forged-1", map[string]string{"tenant": "acme", "route": "products", "plan": ""})
	check("honest-1", map[string]string{"tenant": "acme", "route": "products", "plan": "gold"})
}
