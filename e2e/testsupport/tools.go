package testsupport

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracebridge/tracebridge/e2e/sim/backend"
	"github.com/tracebridge/tracebridge/internal/repo"
)

// AllowSkipEnv names the environment variable that turns a missing
// dependency from a test failure into a skip when set to "1".
const AllowSkipEnv = "TRACEBRIDGE_ALLOW_SKIP"

// unavailable fails the test, or skips it when TRACEBRIDGE_ALLOW_SKIP=1.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(AllowSkipEnv) == "1" {
		t.Skipf("testsupport: %s (skipped because %s=1)", msg, AllowSkipEnv)
	}
	t.Fatalf("testsupport: %s (set %s=1 to skip instead of failing)", msg, AllowSkipEnv)
}

// RepoRoot returns the root of the repository (see [repo.Root]) or fails
// the test.
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := repo.Root()
	if err != nil {
		t.Fatalf("testsupport: %v", err)
	}
	return root
}

// Tool names accepted by [Tool]; they match buildtools/build.sh.
const (
	ToolJaeger      = "jaeger"
	ToolStaticcheck = "staticcheck"
	ToolGhz         = "ghz"
	ToolHey         = "hey"
	ToolKubeconform = "kubeconform"
)

type toolResult struct {
	once sync.Once
	path string
	err  error
}

var tools sync.Map // name -> *toolResult

// Tool returns the path of the named tool from buildtools/go.mod, building it
// into bin/tools/ with buildtools/build.sh when its cached build is missing or
// stale. A binary named by $TRACEBRIDGE_<NAME>_BIN is used as is. The first
// build of jaeger takes minutes; later calls take milliseconds. If the tool
// cannot be built the test fails (or skips, see [AllowSkipEnv]).
func Tool(t testing.TB, name string) string {
	t.Helper()
	env := "TRACEBRIDGE_" + strings.ToUpper(name) + "_BIN"
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			unavailable(t, "%s=%s: %v", env, p, err)
		}
		return p
	}
	root := RepoRoot(t)
	v, _ := tools.LoadOrStore(name, &toolResult{})
	r := v.(*toolResult)
	r.once.Do(func() { r.path, r.err = buildTool(t, root, name) })
	if r.err != nil {
		unavailable(t, "cannot build tool %q: %v", name, r.err)
	}
	return r.path
}

func buildTool(t testing.TB, root, name string) (string, error) {
	start := time.Now()
	cmd := exec.Command("bash", filepath.Join(root, "buildtools", "build.sh"), name)
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if log := strings.TrimSpace(stderr.String()); log != "" {
		t.Logf("testsupport: buildtools/build.sh %s (%s):\n%s", name, time.Since(start).Round(time.Millisecond), backend.Tail(log, 60))
	}
	if err != nil {
		return "", fmt.Errorf("buildtools/build.sh %s: %v", name, err)
	}
	lines := strings.Fields(stdout.String())
	if len(lines) == 0 {
		return "", fmt.Errorf("buildtools/build.sh %s printed no path", name)
	}
	p := lines[len(lines)-1]
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

// Hey returns the path of the hey HTTP load generator.
func Hey(t testing.TB) string { t.Helper(); return Tool(t, ToolHey) }

// Ghz returns the path of the ghz gRPC load generator.
func Ghz(t testing.TB) string { t.Helper(); return Tool(t, ToolGhz) }

// Kubeconform returns the path of the kubeconform manifest validator.
func Kubeconform(t testing.TB) string { t.Helper(); return Tool(t, ToolKubeconform) }

// Staticcheck returns the path of staticcheck.
func Staticcheck(t testing.TB) string { t.Helper(); return Tool(t, ToolStaticcheck) }

// FreePorts returns n distinct TCP ports that were free on 127.0.0.1 a
// moment ago (see [backend.FreePorts]).
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports, err := backend.FreePorts(n)
	if err != nil {
		t.Fatalf("testsupport: free ports: %v", err)
	}
	return ports
}
