package demo

import (
	"os"
	"strings"
	"testing"

	"github.com/tracebridge/tracebridge/internal/repo"
	"github.com/tracebridge/tracebridge/wasm-filter/wasmtest"
)

// TestDemoCommand runs `tracebridge demo` with the embedded span sink and
// checks its summary: one trace per hop without tracebridge, one trace per
// request with it, in both modes.
func TestDemoCommand(t *testing.T) {
	if os.Getenv("TRACEBRIDGE_WASM") == "" {
		p, err := wasmtest.EnsureModule()
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("TRACEBRIDGE_WASM", p)
	}
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := BuildExtProc(root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("TRACEBRIDGE_EXTPROC_BIN", bin)
	t.Setenv("JAEGER", "")
	var out, errOut strings.Builder
	if code := RunDemoCommand([]string{"--requests", "2"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut.String(), out.String())
	}
	for _, want := range []string{
		"control:      2 requests → 8 traces",
		"auto-forward: 2 requests → 2 traces",
		"precise:      2 requests → 2 traces",
		"tenant=acme route=products plan=gold",
		"server-timing trace;desc=00-",
		"productpage → details:9080  restored by narrowed (the relayed authorization header)",
		"productpage → reviews:9080  restored by narrowed (the relayed authorization header)",
		"reviews     → ratings:9080  restored by key (x-request-id)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}
