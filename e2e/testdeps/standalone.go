package testdeps

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// StartJaegerIn runs the Jaeger binary bin like [Jaeger] does, outside a
// test: its configuration and log go to dir, and the caller stops it with
// Stop. Used by `tracebridge demo` (make demo JAEGER=1). Added by the e2e
// helper.
func StartJaegerIn(bin, dir string) (*JaegerInstance, error) {
	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
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
		return nil, fmt.Errorf("%v; log:\n%s", err, readTail(j.LogPath, 30))
	}
	return j, nil
}
