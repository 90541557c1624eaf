package wasmtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/tracebridge/tracebridge/internal/repo"
)

// EnvModule names an environment variable that, when set, points the harness
// at a prebuilt module (e.g. the artifact of `make wasm` in CI); the harness
// then never builds.
const EnvModule = "TRACEBRIDGE_WASM"

// modulePath is bin/tracebridge.wasm relative to the repository root.
const modulePath = "bin/tracebridge.wasm"

// mainPackage is the package built into the module, relative to the root.
const mainPackage = "./wasm-filter"

// ModulePath returns the module the harness runs: $TRACEBRIDGE_WASM if set,
// else bin/tracebridge.wasm in the repository.
func ModulePath() (string, error) {
	if p := os.Getenv(EnvModule); p != "" {
		return filepath.Abs(p)
	}
	root, err := repo.Root()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, modulePath), nil
}

// EnsureModule returns the path of an up-to-date module, building
// bin/tracebridge.wasm first when it is missing or older than any source it is
// built from (the Go files of the repository's packages it links, go.mod and
// go.sum). The build uses the flags of `make wasm`. A file lock next to the
// module serialises builds of concurrent test binaries (go test ./... runs
// packages in parallel). With $TRACEBRIDGE_WASM set it only checks that the
// file exists.
func EnsureModule() (string, error) {
	if p := os.Getenv(EnvModule); p != "" {
		p, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("wasmtest: $%s: %w", EnvModule, err)
		}
		return p, nil
	}
	root, err := repo.Root()
	if err != nil {
		return "", err
	}
	out := filepath.Join(root, modulePath)
	return ensureBuilt(root, mainPackage, out)
}

// EnsurePackage is EnsureModule for another main package of the repository
// that uses the same bridge, e.g. a no-op module to compare against: pkg is
// relative to the repository root ("./wasm-filter/internal/noop") and the
// module is built into bin/<last element of pkg>.wasm with the same flags.
// $TRACEBRIDGE_WASM does not apply.
func EnsurePackage(pkg string) (string, error) {
	root, err := repo.Root()
	if err != nil {
		return "", err
	}
	return ensureBuilt(root, pkg, filepath.Join(root, "bin", filepath.Base(pkg)+".wasm"))
}

// ensureBuilt builds package pkg into out unless out is fresh.
func ensureBuilt(root, pkg, out string) (string, error) {
	if fresh, err := isFresh(root, pkg, out); err != nil {
		return "", err
	} else if fresh {
		return out, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(out + ".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	// Another test binary may have built it while we waited for the lock.
	if fresh, err := isFresh(root, pkg, out); err != nil {
		return "", err
	} else if fresh {
		return out, nil
	}
	if err := buildModule(root, pkg, out); err != nil {
		return "", err
	}
	return out, nil
}

// isFresh reports whether out exists and is at least as new as every source
// of pkg.
func isFresh(root, pkg, out string) (bool, error) {
	st, err := os.Stat(out)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	newest, err := newestSource(root, pkg)
	if err != nil {
		return false, err
	}
	return !st.ModTime().Before(newest), nil
}

// newestSource asks the go command which packages the wasip1 build of pkg
// links and returns the newest modification time among their files that live in the
// repository (dependencies outside it are pinned by go.sum, which counts too).
func newestSource(root, pkg string) (time.Time, error) {
	cmd := exec.Command(goTool(), "list", "-deps",
		"-f", `{{if not .Standard}}{{.Dir}}{{range .GoFiles}}|{{.}}{{end}}{{range .EmbedFiles}}|{{.}}{{end}}{{end}}`,
		pkg)
	cmd.Dir = root
	cmd.Env = wasmEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	listing, err := cmd.Output()
	if err != nil {
		return time.Time{}, fmt.Errorf("wasmtest: go list: %v: %s", err, stderr.Bytes())
	}
	files := []string{filepath.Join(root, "go.mod"), filepath.Join(root, "go.sum")}
	prefix := root + string(filepath.Separator)
	for _, line := range strings.Split(strings.TrimSpace(string(listing)), "\n") {
		fields := strings.Split(line, "|")
		if len(fields) < 2 || !strings.HasPrefix(fields[0]+string(filepath.Separator), prefix) {
			continue
		}
		for _, f := range fields[1:] {
			files = append(files, filepath.Join(fields[0], f))
		}
	}
	var newest time.Time
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // go.sum may be absent in a module without dependencies
			}
			return time.Time{}, err
		}
		if st.ModTime().After(newest) {
			newest = st.ModTime()
		}
	}
	return newest, nil
}

// buildModule runs the build of `make wasm` for pkg into a temporary file and
// renames it into place, so a reader never sees a half-written module.
func buildModule(root, pkg, out string) error {
	tmp, err := os.CreateTemp(filepath.Dir(out), ".tracebridge-*.wasm")
	if err != nil {
		return err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.Command(goTool(), "build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w",
		"-o", tmp.Name(), pkg)
	cmd.Dir = root
	cmd.Env = wasmEnv()
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("wasmtest: building %s: %v\n%s", out, err, output)
	}
	return os.Rename(tmp.Name(), out)
}

func wasmEnv() []string {
	return append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
}

// goTool is the go command that runs the tests when it can be found, so the
// module is built by the same toolchain.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}
