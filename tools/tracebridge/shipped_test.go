package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/tracebridge/tracebridge/internal/repo"
)

// shipped is every binary an operator runs, with the GOOS/GOARCH it is
// built for (see the Makefile).
var shipped = []struct {
	pkg  string
	goos string
	arch string
}{
	{"./tools/tracebridge", "", ""},
	{"./extproc/cmd/tracebridge-extproc", "", ""},
	{"./wasm-filter", "wasip1", "wasm"},
}

// testOnly reports whether a package in a binary's dependency list is test
// code: the standard testing packages, net/http/httptest, and any other
// package whose path has an element naming it a test helper (proxytest,
// wasmtest, testsupport, grpc's test/bufconn, …). The standard library's
// internal/testlog and internal/synctest are hooks os and sync always link,
// not test code.
func testOnly(pkg string) bool {
	if pkg == "testing" || strings.HasPrefix(pkg, "testing/") || pkg == "net/http/httptest" {
		return true
	}
	if !strings.Contains(strings.SplitN(pkg, "/", 2)[0], ".") {
		return false // the rest of the standard library
	}
	for _, el := range strings.Split(pkg, "/") {
		if el == "test" || el == "testdata" || strings.HasSuffix(el, "test") ||
			strings.HasPrefix(el, "testsupport") || strings.HasPrefix(el, "testutil") {
			return true
		}
	}
	return false
}

func TestTestOnly(t *testing.T) {
	for pkg, want := range map[string]bool{
		"testing":           true,
		"testing/fstest":    true,
		"net/http/httptest": true,
		"internal/testlog":  false,
		"internal/synctest": false,
		"net/http":          false,
		"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/proxytest": true,
		"github.com/tracebridge/tracebridge/wasm-filter/wasmtest":      true,
		"github.com/tracebridge/tracebridge/e2e/testsupport":           true,
		"google.golang.org/grpc/test/bufconn":                          true,
		"github.com/tracebridge/tracebridge/e2e/sim/envoysim":          false,
		"github.com/tracebridge/tracebridge/wasm-filter/wasmhost":      false,
		"github.com/tracebridge/tracebridge/engine":                    false,
	} {
		if got := testOnly(pkg); got != want {
			t.Errorf("testOnly(%q) = %v, want %v", pkg, got, want)
		}
	}
}

// TestShippedBinariesLinkNoTestCode lists what each shipped binary links
// (go list -deps, as the build resolves it) and fails on test code.
func TestShippedBinariesLinkNoTestCode(t *testing.T) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range shipped {
		t.Run(strings.TrimPrefix(b.pkg, "./"), func(t *testing.T) {
			cmd := exec.Command("go", "list", "-deps", b.pkg)
			cmd.Dir = root
			if b.goos != "" {
				cmd.Env = append(cmd.Environ(), "GOOS="+b.goos, "GOARCH="+b.arch)
			}
			out, err := cmd.Output()
			if err != nil {
				if ee, ok := err.(*exec.ExitError); ok {
					t.Fatalf("go list -deps %s: %v\n%s", b.pkg, err, ee.Stderr)
				}
				t.Fatal(err)
			}
			deps := strings.Fields(string(out))
			if len(deps) < 10 {
				t.Fatalf("go list -deps %s listed only %v", b.pkg, deps)
			}
			for _, d := range deps {
				if testOnly(d) {
					t.Errorf("%s links test code: %s", b.pkg, d)
				}
			}
		})
	}
}
