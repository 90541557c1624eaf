package engine

import (
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// forbiddenDeps are packages the engine must not link into the proxy-wasm
// module (module size; sizes measured on the stripped module). An entry
// ending in "/" forbids the package of that name and everything under it.
// regexp and crypto/hmac + crypto/sha256 are linked on purpose: the module's
// size budget has room for them, and hand-written replacements of standard
// packages on a security path are not worth the bytes.
var forbiddenDeps = []struct{ pkg, why string }{
	{"fmt", "≈0.35 MB with what it brings (reflect, internal/fmtsort, time formatting): build messages with strconv"},
	{"reflect", "comes with fmt, encoding/json and encoding/binary: decode the policy by hand (policydecode.go)"},
	{"encoding/json", "the engine reads JSON with its own decoder (jsonvalue.go)"},
}

func forbidden(pkg, rule string) bool {
	if dir, ok := strings.CutSuffix(rule, "/"); ok {
		return pkg == dir || strings.HasPrefix(pkg, rule)
	}
	return pkg == rule
}

// TestEngineDepsForWasm lists what the engine imports when built for the
// proxy-wasm module (GOOS=wasip1 GOARCH=wasm) and fails on a forbidden
// package, naming the packages that import it.
func TestEngineDepsForWasm(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, ".")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	importers := map[string][]string{} // package -> packages of the graph importing it
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if _, ok := importers[f[0]]; !ok {
			importers[f[0]] = nil
		}
		for _, imp := range f[1:] {
			importers[imp] = append(importers[imp], f[0])
		}
	}
	// The listing must be real for the checks below to mean anything.
	for _, want := range []string{"github.com/tracebridge/tracebridge/engine", "github.com/tracebridge/tracebridge/propagation", "strconv"} {
		if _, ok := importers[want]; !ok {
			t.Fatalf("go list -deps does not list %s:\n%s", want, out)
		}
	}
	for _, pkg := range slices.Sorted(maps.Keys(importers)) {
		for _, f := range forbiddenDeps {
			if forbidden(pkg, f.pkg) {
				t.Errorf("the engine links %s for wasip1 (imported by %s): %s", pkg, strings.Join(importers[pkg], ", "), f.why)
			}
		}
	}
}
