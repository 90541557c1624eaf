package testsupport

import (
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

// Redis starts redis-server on a free 127.0.0.1 port (see
// [backend.StartRedis]) and stops it when the test ends. Tests install
// nothing: without redis-server the test fails, naming `make test-deps`,
// which installs it (make test depends on it), or skips, see [AllowSkipEnv].
func Redis(t testing.TB) *backend.RedisInstance {
	t.Helper()
	bin, err := backend.LookRedis()
	if err != nil {
		unavailable(t, "%v: run `make test-deps` (it apt-get installs redis-server; make test runs it first)", err)
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
