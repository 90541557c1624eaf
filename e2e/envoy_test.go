package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tracebridge/tracebridge/e2e/sim/backend"
	"github.com/tracebridge/tracebridge/e2e/sim/demo"
	"github.com/tracebridge/tracebridge/e2e/testsupport"
	"github.com/tracebridge/tracebridge/internal/repo"
)

// TestRealEnvoy runs the shipped bootstrap manifests/envoy/envoy.yaml in a
// real Envoy (when an envoy binary is on PATH) with the compiled module and
// tracebridge-extproc, and checks through Jaeger what the harness tests check
// for one proxy: a request through the inbound listener reaches the app in
// a new trace (edge trust removed the client's context), the app's outbound
// call through the forward proxy is restored by x-request-id into that same
// trace, the inbound span carries the ext_proc metadata tags, and
// the response's server-timing trace metric names that trace.
func TestRealEnvoy(t *testing.T) {
	envoy, err := exec.LookPath("envoy")
	if err != nil {
		t.Skip("envoy binary not on PATH: real-Envoy e2e skipped")
	}
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	e := setup(t)

	// backend records what the app's outbound call carried.
	var mu sync.Mutex
	var backendSeen http.Header
	backendSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		backendSeen = r.Header.Clone()
		mu.Unlock()
		io.WriteString(w, "ok")
	})}
	bln := listen(t)
	go backendSrv.Serve(bln)
	t.Cleanup(func() { backendSrv.Close() })

	ports := freePorts(t, 3) // inbound, outbound, admin
	proxyURL, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", ports[1]))
	appClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Forwards x-request-id only (the manifest's policy restores by key).
		req, _ := http.NewRequest("GET", "http://"+bln.Addr().String()+"/downstream", nil)
		req.Header.Set("X-Request-Id", r.Header.Get("X-Request-Id"))
		resp, err := appClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		resp.Body.Close()
		io.WriteString(w, "app ok")
	})}
	aln := listen(t)
	go app.Serve(aln)
	t.Cleanup(func() { app.Close() })

	samplePolicy := filepath.Join(root, "manifests", "sample-policy.json")
	ext, err := demo.StartExtProc(e.extBin, samplePolicy, filepath.Join(t.TempDir(), "extproc.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ext.Stop)

	cfg, err := os.ReadFile(filepath.Join(root, "manifests", "envoy", "envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	zipkin, _ := url.Parse(e.jaeger.ZipkinURL)
	_, extPort, _ := net.SplitHostPort(ext.Addr)
	_, appPort, _ := net.SplitHostPort(aln.Addr().String())
	repl := strings.NewReplacer(
		"port_value: 8080", "port_value: "+appPort,
		"port_value: 9002", "port_value: "+extPort,
		"port_value: 9411", "port_value: "+zipkin.Port(),
		"port_value: 10000", fmt.Sprintf("port_value: %d", ports[0]),
		"port_value: 10001", fmt.Sprintf("port_value: %d", ports[1]),
		"port_value: 9901", fmt.Sprintf("port_value: %d", ports[2]),
		"/etc/tracebridge/tracebridge.wasm", e.wasm,
	)
	cfgPath := filepath.Join(t.TempDir(), "envoy.yaml")
	if err := os.WriteFile(cfgPath, []byte(repl.Replace(string(cfg))), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "envoy.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(envoy, "-c", cfgPath, "--concurrency", "2", "--base-id", fmt.Sprint(ports[2]), "-l", "warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("envoy log:\n%s", tail(string(data), 60))
		}
	})
	inbound := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/ready", ports[2]), 30*time.Second)

	const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest("GET", inbound+"/api/v1/products/envoy-1", nil)
	req.Header.Set("X-Tenant-Id", "acme")
	req.Header.Set("traceparent", "00-"+clientTrace+"-00f067aa0ba902b7-01")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	_, trv := demo.ResponseTraceContext(resp.Header)
	tr := strings.Split(trv, "-")
	mu.Lock()
	seen := backendSeen
	mu.Unlock()
	if seen == nil {
		t.Fatal("the backend was not called")
	}
	tp := strings.Split(seen.Get("Traceparent"), "-")
	if len(tp) != 4 || len(tr) != 4 || tp[1] != tr[1] {
		t.Errorf("outbound traceparent %q and the response's trace metric %q do not name the same trace", seen.Get("Traceparent"), trv)
	}
	if len(tr) == 4 && tr[1] == clientTrace {
		t.Errorf("the client's trace id survived the edge (early_header_mutation)")
	}
	// The inbound span in Jaeger: same trace, ext_proc metadata tag.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if len(tr) == 4 {
		trace, err := e.jaeger.Query.WaitForTrace(ctx, tr[1], func(*backend.Trace) bool { return true })
		if err != nil {
			t.Fatalf("trace %s not in Jaeger: %v", tr[1], err)
		}
		found := false
		for i := range trace.Spans {
			if trace.Spans[i].TagString("tenant") == "acme" {
				found = true
			}
		}
		if !found {
			b, _ := json.Marshal(trace)
			t.Errorf("no span with the ext_proc metadata tag tenant=acme: %s", b)
		}
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	return testsupport.FreePorts(t, n)
}

func waitHTTP(t *testing.T, u string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s not ready after %s", u, d)
}
