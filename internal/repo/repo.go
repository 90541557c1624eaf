// Package repo finds the root of the tracebridge repository, for the tests,
// the demo and the harness that read or build files of the checkout
// (bin/tracebridge.wasm, manifests/sample-policy.json, buildtools/build.sh,
// conformance/vectors.json).
package repo

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// ModulePath is the Go module the repository root declares.
const ModulePath = "github.com/tracebridge/tracebridge"

// EnvRoot names the environment variable that, when set, is the root.
const EnvRoot = "TRACEBRIDGE_ROOT"

// Root returns $TRACEBRIDGE_ROOT when set, else the nearest directory at or
// above the working directory whose go.mod declares ModulePath. Tests run in
// their package directory, so this works from any package of the module.
func Root() (string, error) {
	if r := os.Getenv(EnvRoot); r != "" {
		return filepath.Abs(r)
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return find(dir)
}

func find(dir string) (string, error) {
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && declares(data) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod declaring module " + ModulePath + " at or above the working directory; run from the repository or set " + EnvRoot)
		}
		dir = parent
	}
}

// declares reports whether a go.mod's module directive names ModulePath
// (https://go.dev/ref/mod#go-mod-file-module: `module path`, the path
// optionally quoted, comments allowed).
func declares(gomod []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], "\"`") == ModulePath
		}
	}
	return false
}
