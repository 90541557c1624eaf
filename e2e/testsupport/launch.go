package testsupport

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/tracebridge/tracebridge/e2e/sim/backend"
)

// Jaeger builds Jaeger v2 if needed (see [Tool]), starts it on free
// 127.0.0.1 ports (see [backend.StartJaeger]) and stops it when the test
// ends. On test failure the end of Jaeger's log is written to the test log.
func Jaeger(t testing.TB) *backend.JaegerInstance {
	t.Helper()
	bin := Tool(t, ToolJaeger)
	start := time.Now()
	j, err := backend.StartJaeger(bin, t.TempDir())
	if err != nil {
		t.Fatalf("testsupport: jaeger did not start: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testsupport: jaeger log (%s), last lines:\n%s", j.LogPath, backend.TailFile(j.LogPath, 40))
		}
		if err := j.Stop(); err != nil {
			t.Errorf("testsupport: stopping jaeger: %v", err)
		}
	})
	t.Logf("testsupport: jaeger ready in %s: zipkin %s, otlp grpc %s, otlp http %s, query %s",
		time.Since(start).Round(time.Millisecond), j.ZipkinURL, j.OTLPGRPCAddr, j.OTLPHTTPURL, j.QueryURL)
	return j
}

// redisInstallMu serialises installs within this test binary; apt-get's
// own lock (waited for, see aptGet) serialises them across binaries.
var redisInstallMu sync.Mutex

// Redis starts redis-server on a free 127.0.0.1 port (see
// [backend.StartRedis]) and stops it when the test ends. When redis-server
// is missing it installs Debian's redis-server package with apt-get
// (running apt-get update first if the install fails); if that is
// impossible the test fails (or skips, see [AllowSkipEnv]).
func Redis(t testing.TB) *backend.RedisInstance {
	t.Helper()
	bin, err := redisServer(t)
	if err != nil {
		unavailable(t, "redis-server: %v", err)
	}
	r, err := backend.StartRedis(bin, t.TempDir())
	if err != nil {
		t.Fatalf("testsupport: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testsupport: redis log (%s), last lines:\n%s", r.LogPath, backend.TailFile(r.LogPath, 20))
		}
		if err := r.Stop(); err != nil {
			t.Errorf("testsupport: stopping redis: %v", err)
		}
	})
	t.Logf("testsupport: redis %s ready at %s", bin, r.Addr)
	return r
}

// redisServer finds redis-server, installing it if needed.
func redisServer(t testing.TB) (string, error) {
	redisInstallMu.Lock()
	defer redisInstallMu.Unlock()
	if p, err := backend.LookRedis(); err == nil {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", errors.New("not installed, and installing it needs root (apt-get install redis-server)")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "", errors.New("not installed, and there is no apt-get to install it")
	}
	t.Logf("testsupport: installing redis-server with apt-get")
	start := time.Now()
	if out, err := aptGet("install", "-y", "--no-install-recommends", "redis-server"); err != nil {
		t.Logf("testsupport: apt-get install failed (%v), running apt-get update:\n%s", err, backend.Tail(out, 10))
		if out, err := aptGet("update"); err != nil {
			return "", fmt.Errorf("apt-get update: %v\n%s", err, backend.Tail(out, 20))
		}
		if out, err := aptGet("install", "-y", "--no-install-recommends", "redis-server"); err != nil {
			return "", fmt.Errorf("apt-get install redis-server: %v\n%s", err, backend.Tail(out, 20))
		}
	}
	t.Logf("testsupport: installed redis-server in %s", time.Since(start).Round(time.Second))
	return backend.LookRedis()
}

func aptGet(args ...string) (string, error) {
	// The dpkg lock timeout lets concurrent test binaries wait for each
	// other instead of failing.
	cmd := exec.Command("apt-get", append([]string{"-o", "DPkg::Lock::Timeout=600", "-q"}, args...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	return string(out), err
}
