package backend

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

// StartRedis runs the redis-server binary bin on a free 127.0.0.1 port,
// with its working directory and log in dir, and waits until it answers
// PING. A port taken by another process meanwhile is retried with a new
// one. The caller stops it with Stop.
func StartRedis(bin, dir string) (*RedisInstance, error) {
	r := &RedisInstance{Dir: dir, LogPath: filepath.Join(dir, "redis.log"), bin: bin}
	for attempt := 1; ; attempt++ {
		ports, err := FreePorts(1)
		if err != nil {
			return nil, err
		}
		r.Port = ports[0]
		r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(r.Port))
		err = r.Start()
		if err == nil {
			return r, nil
		}
		if attempt < 3 && strings.Contains(strings.ToLower(err.Error()), "address already in use") {
			continue
		}
		return nil, fmt.Errorf("redis did not start: %w", err)
	}
}

// LookRedis finds redis-server: $TRACEBRIDGE_REDIS_SERVER, else on PATH,
// else Debian's /usr/bin/redis-server.
func LookRedis() (string, error) {
	if p := os.Getenv("TRACEBRIDGE_REDIS_SERVER"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("$TRACEBRIDGE_REDIS_SERVER: %w", err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	const deb = "/usr/bin/redis-server"
	if _, err := os.Stat(deb); err == nil {
		return deb, nil
	}
	return "", fmt.Errorf("redis-server not found")
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
			return fmt.Errorf("redis-server exited: %v; log:\n%s", p.waitErr, TailFile(r.LogPath, 15))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := pingRedis(ctx, r.Addr)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			_ = p.stop(5 * time.Second)
			return fmt.Errorf("redis-server not ready after 20s: %v; log:\n%s", err, TailFile(r.LogPath, 15))
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

// Pid returns the process id of the running server (0 when stopped).
func (r *RedisInstance) Pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil || r.proc.exited() {
		return 0
	}
	return r.proc.cmd.Process.Pid
}
