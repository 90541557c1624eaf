package repo

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDeclares(t *testing.T) {
	for _, c := range []struct {
		gomod string
		want  bool
	}{
		{"module github.com/tracebridge/tracebridge\n\ngo 1.26\n", true},
		{"// comment\nmodule \"github.com/tracebridge/tracebridge\" // the product\n", true},
		{"module github.com/tracebridge/tracebridge/buildtools\n", false},
		{"module example.com/other\n", false},
		{"go 1.26\n", false},
		{"", false},
	} {
		if got := declares([]byte(c.gomod)); got != c.want {
			t.Errorf("declares(%q) = %v, want %v", c.gomod, got, c.want)
		}
	}
}

// TestRoot finds the module from a nested directory and skips go.mod files
// of other modules on the way up (buildtools has its own).
func TestRoot(t *testing.T) {
	dir := t.TempDir()
	nested := filepath.Join(dir, "buildtools", "sub")
	if err := os.MkdirAll(nested, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "go.mod"), "module "+ModulePath+"\n")
	write(filepath.Join(dir, "buildtools", "go.mod"), "module "+ModulePath+"/buildtools\n")
	got, err := find(nested)
	if err != nil || got != dir {
		t.Fatalf("find(%s) = %q, %v; want %q", nested, got, err, dir)
	}
	if _, err := find(t.TempDir()); err == nil {
		t.Fatal("find outside any module: no error")
	}
	t.Setenv(EnvRoot, nested)
	if got, err := Root(); err != nil || got != nested {
		t.Fatalf("Root with %s set = %q, %v", EnvRoot, got, err)
	}
}

func TestRootOfThisCheckout(t *testing.T) {
	t.Setenv(EnvRoot, "")
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "internal", "repo", "repo.go")); err != nil {
		t.Fatalf("root %s does not hold this package: %v", root, err)
	}
}
