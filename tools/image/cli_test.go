package image

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

func run(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = RunImageCommand(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestRunImageCommandUsage(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(wasm, wasmHeader, 0o644); err != nil {
		t.Fatal(err)
	}
	notWasm := filepath.Join(dir, "x.txt")
	if err := writeFile(notWasm, "hello"); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no command", nil, 2, "usage: tracebridge image"},
		{"unknown command", []string{"bake"}, 2, `unknown command "bake"`},
		{"build without --wasm", []string{"build", "--out", out}, 2, "--wasm FILE is required"},
		{"build without destination", []string{"build", "--wasm", wasm}, 2, "--out DIR or --push REF"},
		{"build bad format", []string{"build", "--wasm", wasm, "--out", out, "--format", "tgz"}, 2, "unknown wasm image format"},
		{"build unknown flag", []string{"build", "--wasm", wasm, "--out", out, "--sign"}, 2, "flag provided but not defined"},
		{"build positional", []string{"build", "--wasm", wasm, "--out", out, "extra"}, 2, "unexpected arguments"},
		{"build missing file", []string{"build", "--wasm", filepath.Join(dir, "nope.wasm"), "--out", out}, 1, "no such file"},
		{"build not wasm", []string{"build", "--wasm", notWasm, "--out", out}, 1, "not a wasm module"},
		{"build bad ref", []string{"build", "--wasm", wasm, "--push", "UPPER/Case::x"}, 1, "parsing reference"},
		{"extproc without --binary", []string{"extproc", "--out", out}, 2, "--binary FILE is required"},
		{"extproc without destination", []string{"extproc", "--binary", wasm}, 2, "--out DIR or --push REF"},
		{"extproc bad platform", []string{"extproc", "--binary", wasm, "--out", out, "--platform", "linux"}, 2, "os/arch"},
		{"extproc not elf", []string{"extproc", "--binary", wasm, "--out", out}, 1, "not an ELF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.wantCode, stderr)
			}
			if !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("stderr %q does not mention %q", stderr, tt.wantErr)
			}
			if stdout != "" {
				t.Errorf("stdout %q on failure", stdout)
			}
		})
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a failed command created %s", out)
	}
	if code, stdout, _ := run("help"); code != 0 || !strings.Contains(stdout, "image build --wasm FILE") {
		t.Errorf("help: code %d, stdout %q", code, stdout)
	}
}

// TestRunImageBuild drives `image build` to an OCI layout and to a registry
// for each format, and checks that stdout is the sha256 istio-agent will
// compare with WasmPlugin.sha256.
func TestRunImageBuild(t *testing.T) {
	host := startRegistry(t)
	dir := t.TempDir()
	module := fakeProxyWasm(t, "proxy_abi_version_0_2_1")
	wasm := filepath.Join(dir, "tracebridge.wasm")
	if err := os.WriteFile(wasm, module, 0o644); err != nil {
		t.Fatal(err)
	}
	formats := append([]Format{""}, Formats...) // "" = default flag value
	for _, format := range formats {
		name := string(format)
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(dir, "layout-"+name)
			ref := host + "/tracebridge/cli-" + name + ":v1"
			args := []string{"build", "--wasm", wasm, "--out", out, "--push", ref, "--tag", "v1"}
			want := format
			if format != "" {
				args = append(args, "--format", string(format))
			} else {
				want = FormatOCIWasm
			}
			code, stdout, stderr := run(args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			sha := strings.TrimSuffix(stdout, "\n")
			if !wasmPluginSHA256.MatchString(sha) || strings.Count(stdout, "\n") != 1 {
				t.Fatalf("stdout %q is not one line of 64 hex characters", stdout)
			}
			f, err := istioFetch(ref)
			if err != nil {
				t.Fatal(err)
			}
			if f.checksum != sha || f.variant != want || !bytes.Equal(f.wasm, module) {
				t.Errorf("fetched %s (%s, %d bytes), printed %s", f.checksum, f.variant, len(f.wasm), sha)
			}
			if got := layoutDigest(t, out, "v1"); got.Hex != sha {
				t.Errorf("layout holds %s, printed %s", got, sha)
			}
		})
	}
}

func TestRunImageExtproc(t *testing.T) {
	host := startRegistry(t)
	bin := staticBinary(t, "arm64")
	out := filepath.Join(t.TempDir(), "extproc")
	ref := host + "/tracebridge/extproc:cli"
	code, stdout, stderr := run("extproc", "--binary", bin, "--out", out, "--push", ref, "--platform", "linux/arm64")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	digest, err := v1.NewHash(strings.TrimSpace(stdout))
	if err != nil {
		t.Fatalf("stdout %q is not a digest: %v", stdout, err)
	}
	if got := layoutDigest(t, out, "latest"); got != digest {
		t.Errorf("layout holds %s, printed %s", got, digest)
	}
	img := pull(t, ref)
	if d, _ := img.Digest(); d != digest {
		t.Errorf("registry holds %s, printed %s", d, digest)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	checkExtprocImage(t, img, data, "arm64")

	code, _, stderr = run("extproc", "--binary", bin, "--out", out, "--platform", "linux/amd64")
	if code != 1 || !strings.Contains(stderr, "built for arm64") {
		t.Errorf("platform mismatch: exit %d, stderr %q", code, stderr)
	}
}

// layoutDigest returns the digest stored under tag in the OCI layout dir.
func layoutDigest(t *testing.T, dir, tag string) v1.Hash {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		if d.Annotations[annotationRefName] == tag {
			return d.Digest
		}
	}
	t.Fatalf("no image tagged %q in %s", tag, dir)
	return v1.Hash{}
}
