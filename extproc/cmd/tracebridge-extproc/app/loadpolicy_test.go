package app

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestLoadPolicyFile: --config reads YAML as well as JSON, and a file over
// the document bound is refused without being read whole or compiled (a
// reload of such a file once took the server's memory from tens of MiB to
// hundreds).
func TestLoadPolicyFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	p, _, err := LoadPolicy(write("policy.yaml", "# edge\nemit: [w3c]\ncorrelation:\n  ttl: 1m\n"))
	if err != nil || len(p.Emit) != 1 || p.Emit[0] != "w3c" || p.Correlation.TTL != "1m" {
		t.Fatalf("YAML policy: %+v, %v", p, err)
	}

	big := write("big.json", `{"tags":[{"name":"t","from":{"path":{"regex":"`+strings.Repeat("a", 4<<20)+`"}},"to":["header"]}]}`)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err = LoadPolicy(big)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "the policy document is more than 262144 bytes") {
		t.Fatalf("4 MiB policy: %v", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2<<20 {
		t.Errorf("refusing a 4 MiB policy allocated %d bytes", alloc)
	}
}
