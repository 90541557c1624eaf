package manifests

import (
	"bytes"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

//go:generate go test -run TestShippedManifests -update .

var update = flag.Bool("update", false, "rewrite manifests/ from the sample policy")

// shippedDir is manifests/ at the repository root.
const shippedDir = "../../manifests"

func renderSample(t *testing.T) []File {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(shippedDir, "sample-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := Render(data, Options{})
	if err != nil {
		t.Fatalf("render sample policy: %v", err)
	}
	return files
}

// TestShippedManifests: the files in manifests/istio and manifests/envoy are
// exactly what the render command makes from manifests/sample-policy.json.
func TestShippedManifests(t *testing.T) {
	files := renderSample(t)
	want := map[string][]byte{}
	for _, f := range files {
		want[f.Path] = f.Data
	}
	if *update {
		for _, sub := range []string{"istio", "envoy", "mesh"} {
			if err := os.RemoveAll(filepath.Join(shippedDir, sub)); err != nil {
				t.Fatal(err)
			}
		}
		if err := WriteFiles(shippedDir, files); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string][]byte{}
	for _, sub := range []string{"istio", "envoy", "mesh"} {
		if _, err := os.Stat(filepath.Join(shippedDir, sub)); os.IsNotExist(err) {
			continue // mesh/: only for a zipkin-w3c policy
		}
		err := filepath.WalkDir(filepath.Join(shippedDir, sub), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(shippedDir, p)
			data, err := os.ReadFile(p)
			got[filepath.ToSlash(rel)] = data
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			t.Errorf("manifests/%s is missing (run go generate ./tools/manifests)", p)
		case !bytes.Equal(g, w):
			t.Errorf("manifests/%s differs from the render output (run go generate ./tools/manifests):\n%s", p, firstDiff(string(g), string(w)))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("manifests/%s is not rendered by the command: remove it or render it", p)
		}
	}
}

func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + strconv.Itoa(i+1) + ":\n  shipped:  " + gl + "\n  rendered: " + wl
		}
	}
	return ""
}
