package app

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binary builds the command (the parent directory) once per test run.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tracebridge-extproc-test")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "tracebridge-extproc")
		out, err := exec.Command("go", "build", "-o", binPath, "..").CombinedOutput()
		if err != nil {
			binErr = errors.New(string(out))
		}
	})
	if binErr != nil {
		t.Fatalf("building the command: %v", binErr)
	}
	return binPath
}

// proc is the command running as a subprocess.
type proc struct {
	cmd         *exec.Cmd
	grpc, admin string
	log         *syncBuffer
	exited      chan struct{}
	err         error
}

func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{log: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(binary(t), append([]string{"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, args...)...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := sync.OnceFunc(func() { close(ready) })
		for sc.Scan() {
			line := sc.Text()
			p.log.Write([]byte(line + "\n"))
			var rec struct{ Msg, Listen, Admin string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving" {
				p.grpc, p.admin = rec.Listen, rec.Admin
				once()
			}
		}
		p.err = p.cmd.Wait()
		close(p.exited)
		once()
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		t.Fatalf("the command did not start:\n%s", p.log.String())
	}
	if p.grpc == "" {
		t.Fatalf("the command exited before serving: %v\n%s", p.err, p.log.String())
	}
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("command log:\n%s", p.log.String())
		}
	})
	return p
}

func (p *proc) signal(t *testing.T, s syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(s); err != nil {
		t.Fatal(err)
	}
}

// wait returns the exit code, failing the test after the timeout.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		t.Fatalf("the command did not exit within %s", timeout)
	}
	return p.cmd.ProcessState.ExitCode()
}

// TestSIGTERMDrain: after SIGTERM the health check says NOT_SERVING, new
// streams are refused, every stream already open gets its response-phase
// reply, and the process exits 0.
func TestSIGTERMDrain(t *testing.T) {
	p := startProc(t, "--drain-timeout", "20s")
	cc := dial(t, p.grpc, nil)
	client := extprocv3.NewExternalProcessorClient(cc)
	const open = 50
	streams := make([]extprocv3.ExternalProcessor_ProcessClient, open)
	for i := range streams {
		s, cancel := openStream(t, client)
		defer cancel()
		roundTrip(t, s, reqHeadersMsg(hmap("traceparent", validTP), nil))
		streams[i] = s
	}
	p.signal(t, syscall.SIGTERM)
	waitFor(t, func() bool { code, _ := httpGet(t, "http://"+p.admin+"/readyz"); return code == 503 })
	hr, err := healthpb.NewHealthClient(dial(t, p.grpc, nil)).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err == nil && hr.Status == healthpb.HealthCheckResponse_SERVING {
		t.Error("gRPC health still SERVING while draining")
	}
	// A new stream on the existing connection is refused.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s, err := client.Process(ctx); err == nil {
		if err := s.Send(reqHeadersMsg(hmap(), nil)); err == nil {
			if _, err := s.Recv(); err == nil {
				t.Error("a new stream was served while draining")
			} else if c := status.Code(err); c != codes.Unavailable {
				t.Errorf("new stream while draining: %v, want UNAVAILABLE", err)
			}
		}
	}
	// Every open stream completes.
	for i, s := range streams {
		r := roundTrip(t, s, respHeadersMsg(hmap(":status", "200")))
		sets := r.GetResponseHeaders().GetResponse().GetHeaderMutation().GetSetHeaders()
		if len(sets) != 1 || sets[0].Header.Key != "server-timing" {
			t.Errorf("stream %d: response reply %v", i, r)
		}
		closeStream(t, s)
	}
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if !strings.Contains(p.log.String(), `"msg":"drained"`) {
		t.Errorf("no drained log line")
	}
}

// TestDrainTimeout: a stream that never ends does not hold the process past
// --drain-timeout, and the exit is still 0.
func TestDrainTimeout(t *testing.T) {
	p := startProc(t, "--drain-timeout", "300ms")
	s, cancel := openStream(t, extprocv3.NewExternalProcessorClient(dial(t, p.grpc, nil)))
	defer cancel()
	roundTrip(t, s, reqHeadersMsg(hmap("traceparent", validTP), nil))
	start := time.Now()
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("exit took %s with a 300ms drain timeout", d)
	}
	if _, err := s.Recv(); err == nil {
		t.Error("the abandoned stream got a message after the forced stop")
	}
	if !strings.Contains(p.log.String(), "drain timeout") {
		t.Error("no drain-timeout log line")
	}
}

// TestSIGHUPReload: SIGHUP rereads the policy; an invalid one is logged
// with its field path and the process keeps serving the old one.
func TestSIGHUPReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.json")
	os.WriteFile(path, []byte(`{"emit":["w3c"]}`), 0o644)
	p := startProc(t, "--config", path)
	cc := dial(t, p.grpc, nil)
	b3 := func() bool {
		v, err := oneExchange(t, cc, "traceparent", validTP)
		if err != nil {
			t.Fatal(err)
		}
		return v != ""
	}
	os.WriteFile(path, []byte(`{"emit":["w3c","b3multi"],"inject":{"sampling":"often"}}`), 0o644)
	p.signal(t, syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(p.log.String(), `"trigger":"SIGHUP"`) })
	waitFor(t, func() bool { return strings.Contains(p.log.String(), `"field":"inject.sampling"`) })
	if b3() {
		t.Error("invalid policy applied")
	}
	os.WriteFile(path, []byte(`{"emit":["w3c","b3multi"]}`), 0o644)
	p.signal(t, syscall.SIGHUP)
	waitFor(t, b3)
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// TestInvalidPolicyAtStart: the process refuses to start, naming the field.
func TestInvalidPolicyAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.json")
	os.WriteFile(path, []byte(`{"emmit":["w3c"]}`), 0o644)
	out, err := exec.Command(binary(t), "--listen", "127.0.0.1:0", "--admin-listen", "", "--config", path).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1", err)
	}
	if !strings.Contains(string(out), `"field":"emmit"`) {
		t.Errorf("output does not name the field:\n%s", out)
	}
}
