package testdeps

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// RedisInstance is a redis-server listening on 127.0.0.1 only, with no
// persistence, in a temporary directory.
type RedisInstance struct {
	// Addr is host:port, e.g. 127.0.0.1:43121. It stays the same across
	// Stop and Start.
	Addr string
	Port int
	// Dir is the working directory; LogPath collects the server's output
	// across restarts.
	Dir, LogPath string

	bin  string
	mu   sync.Mutex
	proc *process
}

// redisInstallMu serialises installs within this test binary; apt-get's
// own lock (waited for, see aptGet) serialises them across binaries.
var redisInstallMu sync.Mutex

// Redis starts redis-server on a free 127.0.0.1 port and stops it when the
// test ends. When redis-server is missing it installs Debian's redis-server
// package with apt-get (running apt-get update first if the install fails);
// if that is impossible the test fails (or skips, see [AllowSkipEnv]).
func Redis(t testing.TB) *RedisInstance {
	t.Helper()
	bin, err := redisServer(t)
	if err != nil {
		unavailable(t, "redis-server: %v", err)
	}
	dir := t.TempDir()
	r := &RedisInstance{Dir: dir, LogPath: filepath.Join(dir, "redis.log"), bin: bin}
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(1)
		if err != nil {
			t.Fatalf("testdeps: %v", err)
		}
		r.Port = ports[0]
		r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(r.Port))
		err = r.Start()
		if err == nil {
			break
		}
		if attempt < 3 && strings.Contains(strings.ToLower(err.Error()), "address already in use") {
			t.Logf("testdeps: redis attempt %d: port taken meanwhile, retrying", attempt)
			continue
		}
		t.Fatalf("testdeps: redis did not start: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testdeps: redis log (%s), last lines:\n%s", r.LogPath, readTail(r.LogPath, 20))
		}
		if err := r.Stop(); err != nil {
			t.Errorf("testdeps: stopping redis: %v", err)
		}
	})
	t.Logf("testdeps: redis %s ready at %s", bin, r.Addr)
	return r
}

// redisServer finds redis-server, installing it if needed.
func redisServer(t testing.TB) (string, error) {
	if p := os.Getenv("TRACEBRIDGE_REDIS_SERVER"); p != "" {
		return p, nil
	}
	redisInstallMu.Lock()
	defer redisInstallMu.Unlock()
	if p, err := lookRedis(); err == nil {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("not installed, and installing it needs root (apt-get install redis-server)")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "", fmt.Errorf("not installed, and there is no apt-get to install it")
	}
	t.Logf("testdeps: installing redis-server with apt-get")
	start := time.Now()
	if out, err := aptGet("install", "-y", "--no-install-recommends", "redis-server"); err != nil {
		t.Logf("testdeps: apt-get install failed (%v), running apt-get update:\n%s", err, tail(out, 10))
		if out, err := aptGet("update"); err != nil {
			return "", fmt.Errorf("apt-get update: %v\n%s", err, tail(out, 20))
		}
		if out, err := aptGet("install", "-y", "--no-install-recommends", "redis-server"); err != nil {
			return "", fmt.Errorf("apt-get install redis-server: %v\n%s", err, tail(out, 20))
		}
	}
	t.Logf("testdeps: installed redis-server in %s", time.Since(start).Round(time.Second))
	return lookRedis()
}

func lookRedis() (string, error) {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	const deb = "/usr/bin/redis-server"
	if _, err := os.Stat(deb); err == nil {
		return deb, nil
	}
	return "", fmt.Errorf("redis-server not found")
}

func aptGet(args ...string) (string, error) {
	// The dpkg lock timeout lets concurrent test binaries wait for each
	// other instead of failing.
	cmd := exec.Command("apt-get", append([]string{"-o", "DPkg::Lock::Timeout=600", "-q"}, args...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Start starts the server on r.Addr if it is not running and waits until it
// answers PING. After [RedisInstance.Stop] it brings Redis back on the same
// port (empty: nothing is persisted).
func (r *RedisInstance) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil && !r.proc.exited() {
		return nil
	}
	p, err := startProcess(r.LogPath, r.Dir, r.bin,
		"--port", strconv.Itoa(r.Port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", r.Dir,
		"--daemonize", "no",
		"--logfile", "",
	)
	if err != nil {
		return err
	}
	r.proc = p
	deadline := time.Now().Add(20 * time.Second)
	for {
		if p.exited() {
			return fmt.Errorf("redis-server exited: %v; log:\n%s", p.waitErr, readTail(r.LogPath, 15))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := pingRedis(ctx, r.Addr)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			_ = p.stop(5 * time.Second)
			return fmt.Errorf("redis-server not ready after 20s: %v; log:\n%s", err, readTail(r.LogPath, 15))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 5s), to simulate Redis
// going away; clients then get "connection refused". [RedisInstance.Start]
// brings it back on the same port. Stopping a stopped server does nothing.
func (r *RedisInstance) Stop() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		return nil
	}
	return r.proc.stop(5 * time.Second)
}

// Running reports whether the server process is running.
func (r *RedisInstance) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.proc != nil && !r.proc.exited()
}

// Ping sends PING over a new connection and expects +PONG.
func (r *RedisInstance) Ping(ctx context.Context) error { return pingRedis(ctx, r.Addr) }

func pingRedis(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("redis %s answered PING with %q", addr, strings.TrimSpace(line))
	}
	return nil
}
