package backend

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// JaegerInstance is a running Jaeger v2 (an OpenTelemetry Collector
// distribution) with in-memory storage. Every listener it opens is bound to
// 127.0.0.1: the Zipkin receiver, the OTLP gRPC and HTTP receivers, the query
// HTTP and gRPC servers and the health check. The collector's own metrics
// endpoint is disabled, and no pprof, zpages, expvar, remote-sampling or
// Jaeger-protocol receiver is configured.
type JaegerInstance struct {
	// ZipkinURL is where Zipkin v2 JSON (or proto) spans are POSTed:
	// http://127.0.0.1:PORT/api/v2/spans.
	ZipkinURL string
	// OTLPGRPCAddr is the OTLP/gRPC receiver, host:port (no scheme).
	OTLPGRPCAddr string
	// OTLPHTTPURL is the OTLP/HTTP receiver's base URL, http://127.0.0.1:PORT;
	// traces go to OTLPHTTPTracesURL.
	OTLPHTTPURL       string
	OTLPHTTPTracesURL string
	// QueryURL is the query service (UI and /api/...), http://127.0.0.1:PORT.
	QueryURL string
	// QueryGRPCAddr is the query service's gRPC API, host:port.
	QueryGRPCAddr string
	// HealthURL answers 200 once the collector is up.
	HealthURL string

	// Query reads traces back through the HTTP query API at QueryURL.
	Query *QueryClient

	// Dir holds ConfigPath (the YAML written for this instance) and LogPath
	// (Jaeger's stdout and stderr).
	Dir, ConfigPath, LogPath string

	proc     *process
	stopOnce sync.Once
	stopErr  error
}

// jaegerConfig is the collector configuration. Ports, in order: zipkin, OTLP
// gRPC, OTLP HTTP, query HTTP, query gRPC, health check.
//
// Defaults checked in Jaeger v1.76.0 / collector v0.140 sources and
// overridden here: zipkin receiver localhost:9411, OTLP localhost:4317/4318,
// jaeger_query ":16686"/":16685" (all interfaces!), healthcheck
// localhost:13133 (legacy mode: no gRPC health server on 13132), internal
// metrics Prometheus reader localhost:8888 (disabled by level: none). The
// query service's self-tracing (on by default in v2) would export OTLP to
// localhost:4317, which may be another test's receiver: turned off.
const jaegerConfig = `# written by tracebridge e2e/sim/backend
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp, zipkin]
      processors: []
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info

extensions:
  healthcheckv2:
    use_v2: false
    endpoint: 127.0.0.1:%[6]d
    path: /
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: memstore
    enable_tracing: false
    max_clock_skew_adjust: 0s
    http:
      endpoint: 127.0.0.1:%[4]d
    grpc:
      endpoint: 127.0.0.1:%[5]d

receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%[2]d
      http:
        endpoint: 127.0.0.1:%[3]d
  zipkin:
    endpoint: 127.0.0.1:%[1]d

exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// StartJaeger runs the Jaeger v2 binary bin on free 127.0.0.1 ports, its
// configuration and log in dir, and waits until every receiver and the
// query API answer. A port taken by another process meanwhile is retried
// with new ports. The caller stops it with Stop.
func StartJaeger(bin, dir string) (*JaegerInstance, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		var j *JaegerInstance
		if j, err = launchJaeger(bin, dir); err == nil {
			return j, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, err
}

// launchJaeger writes the configuration for fresh ports into dir, starts bin
// and waits until it is ready.
func launchJaeger(bin, dir string) (*JaegerInstance, error) {
	ports, err := FreePorts(6)
	if err != nil {
		return nil, err
	}
	j := &JaegerInstance{
		ZipkinURL:     fmt.Sprintf("http://127.0.0.1:%d/api/v2/spans", ports[0]),
		OTLPGRPCAddr:  fmt.Sprintf("127.0.0.1:%d", ports[1]),
		OTLPHTTPURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2]),
		QueryURL:      fmt.Sprintf("http://127.0.0.1:%d", ports[3]),
		QueryGRPCAddr: fmt.Sprintf("127.0.0.1:%d", ports[4]),
		HealthURL:     fmt.Sprintf("http://127.0.0.1:%d/", ports[5]),
		Dir:           dir,
		ConfigPath:    filepath.Join(dir, "jaeger.yaml"),
		LogPath:       filepath.Join(dir, "jaeger.log"),
	}
	j.OTLPHTTPTracesURL = j.OTLPHTTPURL + "/v1/traces"
	j.Query = NewQueryClient(j.QueryURL)
	cfg := fmt.Sprintf(jaegerConfig, ports[0], ports[1], ports[2], ports[3], ports[4], ports[5])
	if err := os.WriteFile(j.ConfigPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	j.proc, err = startProcess(j.LogPath, dir, bin, "--config", j.ConfigPath)
	if err != nil {
		return nil, err
	}
	if err := j.waitReady(90 * time.Second); err != nil {
		_ = j.proc.stop(5 * time.Second)
		return nil, fmt.Errorf("%v; log:\n%s", err, TailFile(j.LogPath, 30))
	}
	return j, nil
}

func (j *JaegerInstance) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for time.Now().Before(deadline) {
		if j.proc.exited() {
			return fmt.Errorf("jaeger exited during start-up: %v", j.proc.waitErr)
		}
		last = j.probe(client)
		if last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("jaeger not ready after %s: %v", timeout, last)
}

// probe checks the health endpoint, the query API and every receiver port.
func (j *JaegerInstance) probe(client *http.Client) error {
	for _, u := range []string{j.HealthURL, j.QueryURL + "/api/services"} {
		resp, err := client.Get(u)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", u, resp.Status)
		}
	}
	for _, addr := range []string{hostPort(j.ZipkinURL), j.OTLPGRPCAddr, hostPort(j.OTLPHTTPURL), j.QueryGRPCAddr} {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		c.Close()
	}
	return nil
}

func hostPort(u string) string {
	s := strings.TrimPrefix(u, "http://")
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	return s
}

// Pid returns the process id of the running Jaeger.
func (j *JaegerInstance) Pid() int { return j.proc.cmd.Process.Pid }

// Logs returns everything Jaeger has written so far.
func (j *JaegerInstance) Logs() string {
	b, _ := os.ReadFile(j.LogPath)
	return string(b)
}

// Stop stops Jaeger now (SIGTERM, then SIGKILL after 10s); calling it
// again does nothing.
func (j *JaegerInstance) Stop() error {
	j.stopOnce.Do(func() { j.stopErr = j.proc.stop(10 * time.Second) })
	return j.stopErr
}

// SendZipkin POSTs a Zipkin v2 JSON array of spans to the Zipkin receiver.
func (j *JaegerInstance) SendZipkin(ctx context.Context, spansJSON []byte) error {
	return post(ctx, j.ZipkinURL, "application/json", spansJSON)
}

// SendOTLPJSON POSTs an OTLP/HTTP JSON ExportTraceServiceRequest.
func (j *JaegerInstance) SendOTLPJSON(ctx context.Context, body []byte) error {
	return post(ctx, j.OTLPHTTPTracesURL, "application/json", body)
}

func post(ctx context.Context, url, contentType string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}
