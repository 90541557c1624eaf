package image

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tracebridge/tracebridge/extproc/cmd/tracebridge-extproc/app"
)

var (
	staticBinOnce sync.Once
	staticBins    map[string]string // arch -> path
	staticBinErr  error
	staticBinDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if staticBinDir != "" {
		os.RemoveAll(staticBinDir)
	}
	os.Exit(code)
}

func writeFile(path, content string) error {
	return os.WriteFile(path, []byte(content), 0o644)
}

// staticBinary builds (once per test binary) a tiny statically linked Linux
// program for arch with the Go toolchain running the tests.
func staticBinary(t *testing.T, arch string) string {
	t.Helper()
	staticBinOnce.Do(func() {
		staticBins = map[string]string{}
		staticBinDir, staticBinErr = os.MkdirTemp("", "tracebridge-image-test")
		if staticBinErr != nil {
			return
		}
		src := filepath.Join(staticBinDir, "src")
		if staticBinErr = os.MkdirAll(src, 0o755); staticBinErr != nil {
			return
		}
		if staticBinErr = writeFile(filepath.Join(src, "go.mod"), "module extprocfake\n\ngo 1.26\n"); staticBinErr != nil {
			return
		}
		if staticBinErr = writeFile(filepath.Join(src, "main.go"), "package main\n\nfunc main() { println(\"extproc\") }\n"); staticBinErr != nil {
			return
		}
		var gobin string
		if gobin, staticBinErr = exec.LookPath("go"); staticBinErr != nil {
			return
		}
		for _, a := range []string{"amd64", "arm64"} {
			out := filepath.Join(staticBinDir, "extproc-"+a)
			cmd := exec.Command(gobin, "build", "-trimpath", "-o", out, ".")
			cmd.Dir = src
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+a, "GOFLAGS=", "GOWORK=off")
			if b, err := cmd.CombinedOutput(); err != nil {
				staticBinErr = fmt.Errorf("go build for %s: %v\n%s", a, err, b)
				return
			}
			staticBins[a] = out
		}
	})
	if staticBinErr != nil {
		t.Fatal(staticBinErr)
	}
	return staticBins[arch]
}

func TestParsePlatform(t *testing.T) {
	tests := []struct {
		in      string
		want    v1.Platform
		wantErr bool
	}{
		{in: "linux/amd64", want: v1.Platform{OS: "linux", Architecture: "amd64"}},
		{in: "linux/arm/v7", want: v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}},
		{in: "linux", wantErr: true},
		{in: "/amd64", wantErr: true},
		{in: "linux/arm64/v8/x", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParsePlatform(tt.in)
		if (err != nil) != tt.wantErr || (!tt.wantErr && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("ParsePlatform(%q) = %+v, %v", tt.in, got, err)
		}
	}
}

// checkExtprocImage verifies the ext_proc image's config and its only layer.
func checkExtprocImage(t *testing.T, img v1.Image, binary []byte, arch string) {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("media types: manifest %s, config %s", m.MediaType, m.Config.MediaType)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != types.OCILayer {
		t.Fatalf("layers %+v, want one %s", m.Layers, types.OCILayer)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != arch {
		t.Errorf("platform %s/%s, want linux/%s", cf.OS, cf.Architecture, arch)
	}
	c := cf.Config
	if c.User != "65532:65532" {
		t.Errorf("user %q", c.User)
	}
	if !reflect.DeepEqual(c.Entrypoint, []string{"/tracebridge-extproc"}) ||
		!reflect.DeepEqual(c.Cmd, []string{"--listen=0.0.0.0:9002", "--admin-listen=0.0.0.0:9003"}) {
		t.Errorf("entrypoint %q cmd %q", c.Entrypoint, c.Cmd)
	}
	if !reflect.DeepEqual(c.ExposedPorts, map[string]struct{}{"9002/tcp": {}, "9003/tcp": {}}) {
		t.Errorf("exposed ports %v", c.ExposedPorts)
	}
	if len(cf.RootFS.DiffIDs) != 1 {
		t.Errorf("rootfs diff ids %v", cf.RootFS.DiffIDs)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Name != "tracebridge-extproc" {
			continue
		}
		if h.Typeflag != tar.TypeReg || h.Mode != 0o555 || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("binary entry type %c mode %o owner %d:%d", h.Typeflag, h.Mode, h.Uid, h.Gid)
		}
		got, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, binary) {
			t.Errorf("binary in the layer differs from the input (%d vs %d bytes)", len(got), len(binary))
		}
	}
	// Exactly the binary: no shell, no passwd, nothing else.
	if !reflect.DeepEqual(names, []string{"tracebridge-extproc"}) {
		t.Errorf("layer entries %q, want only tracebridge-extproc", names)
	}
}

func TestBuildExtproc(t *testing.T) {
	tests := []struct {
		name     string
		arch     string
		platform v1.Platform
		wantArch string
		wantErr  string
	}{
		{name: "amd64 detected", arch: "amd64", wantArch: "amd64"},
		{name: "arm64 detected", arch: "arm64", wantArch: "arm64"},
		{name: "explicit platform", arch: "arm64", platform: v1.Platform{OS: "linux", Architecture: "arm64"}, wantArch: "arm64"},
		{name: "platform mismatch", arch: "amd64", platform: v1.Platform{OS: "linux", Architecture: "arm64"}, wantErr: "built for amd64"},
		{name: "not linux", arch: "amd64", platform: v1.Platform{OS: "windows", Architecture: "amd64"}, wantErr: "Linux image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := staticBinary(t, tt.arch)
			img, err := BuildExtproc(path, tt.platform)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("BuildExtproc error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			bin, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			checkExtprocImage(t, img, bin, tt.wantArch)
			again, err := BuildExtproc(path, tt.platform)
			if err != nil {
				t.Fatal(err)
			}
			d1, _ := img.Digest()
			d2, _ := again.Digest()
			if d1 != d2 {
				t.Errorf("not reproducible: %s then %s", d1, d2)
			}
		})
	}
}

func TestBuildExtprocRejects(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "run.sh")
	if err := writeFile(script, "#!/bin/sh\nexec true\n"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		wantErr string
	}{
		{"missing", filepath.Join(dir, "nope"), "no such file"},
		{"shell script", script, "not an ELF"},
	}
	// A dynamically linked executable from the host, when one is at hand.
	for _, p := range []string{"/bin/true", "/usr/bin/true", "/bin/ls"} {
		if isDynamicELF(p) {
			tests = append(tests, struct {
				name    string
				path    string
				wantErr string
			}{"dynamic " + p, p, "dynamically linked"})
			break
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := BuildExtproc(tt.path, v1.Platform{})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("BuildExtproc(%s) error = %v, want %q", tt.path, err, tt.wantErr)
			}
		})
	}
}

func isDynamicELF(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true
		}
	}
	return false
}

func TestExtprocRegistryRoundTrip(t *testing.T) {
	host := startRegistry(t)
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			path := staticBinary(t, arch)
			img, err := BuildExtproc(path, v1.Platform{})
			if err != nil {
				t.Fatal(err)
			}
			ref := host + "/tracebridge/extproc:" + arch
			digest, err := Push(context.Background(), ref, img, PushOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got := pull(t, ref)
			if d, _ := got.Digest(); d != digest {
				t.Errorf("pulled digest %s, pushed %s", d, digest)
			}
			bin, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			checkExtprocImage(t, got, bin, arch)
		})
	}
}

// TestExtprocDefaultArgsParse checks the image's Cmd against the service's
// own flag parser.
func TestExtprocDefaultArgsParse(t *testing.T) {
	cfg, err := app.ParseFlags(ExtprocDefaultArgs, io.Discard)
	if err != nil {
		t.Fatalf("tracebridge-extproc rejects the image's Cmd %q: %v", ExtprocDefaultArgs, err)
	}
	if cfg.Listen != "0.0.0.0:9002" || cfg.AdminListen != "0.0.0.0:9003" {
		t.Errorf("listen %q admin %q", cfg.Listen, cfg.AdminListen)
	}
}

// TestRealExtprocImage packages the real service binary (built here,
// statically, for the host), pushes and pulls it, then runs the binary taken
// out of the pulled layer.
func TestRealExtprocImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the ext_proc service; skipped with -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the image is a Linux image; running its binary needs a Linux host")
	}
	if _, err := os.Stat(filepath.Join("..", "..", "extproc", "cmd", "tracebridge-extproc")); err != nil {
		t.Skipf("no ext_proc command in this tree: %v", err)
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "tracebridge-extproc")
	cmd := exec.Command(gobin, "build", "-trimpath", "-o", bin, "./extproc/cmd/tracebridge-extproc")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building tracebridge-extproc: %v\n%s", err, out)
	}
	img, err := BuildExtproc(bin, v1.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	ref := startRegistry(t) + "/tracebridge/extproc:real"
	if _, err := Push(context.Background(), ref, img, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	pulled := pull(t, ref)
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	checkExtprocImage(t, pulled, data, runtime.GOARCH)

	// Run what came out of the registry, not the local file.
	layers, err := pulled.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	if _, err := tr.Next(); err != nil {
		t.Fatal(err)
	}
	extracted := filepath.Join(t.TempDir(), "from-image")
	f, err := os.OpenFile(extracted, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, tr); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(extracted, "-h").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "-admin-listen") {
		t.Fatalf("binary from the image: %v\n%s", err, out)
	}
}
