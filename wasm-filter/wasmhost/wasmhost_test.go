package wasmhost_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracebridge/tracebridge/internal/wasmbin"
	"github.com/tracebridge/tracebridge/wasm-filter/wasmhost"
)

const i32 = wasmbin.I32

// logHandler keeps what proxy_log hands it.
type logHandler struct {
	wasmhost.Unimplemented
	msgs [][]byte
}

func (h *logHandler) Log(_ uint32, msg []byte) uint32 {
	h.msgs = append(h.msgs, msg)
	return wasmhost.StatusOK
}

func write(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "m.wasm")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// logModule's export "run" calls proxy_log(2, 16, 4).
var logModule = wasmbin.Module(
	[]wasmbin.Import{wasmbin.Imp("env", "proxy_log", []byte{i32, i32, i32}, []byte{i32})},
	[]wasmbin.Func{
		wasmbin.Fn("_initialize", nil, nil, nil),
		wasmbin.Fn("run", nil, nil, wasmbin.Concat(wasmbin.I32Const(2), wasmbin.I32Const(16), wasmbin.I32Const(4), []byte{0x10, 0, 0x1a})),
	})

// TestGuestMemoryCopiedOut: what a handler is given stays as it was when the
// guest later reuses its memory (the SDK's emulator keeps header values,
// log lines and metric names).
func TestGuestMemoryCopiedOut(t *testing.T) {
	for _, p := range wasmhost.Profiles() {
		t.Run(string(p), func(t *testing.T) {
			m, err := wasmhost.Load(write(t, logModule), p)
			if err != nil {
				t.Fatal(err)
			}
			h := &logHandler{}
			in, err := m.Instantiate(wasmhost.Config{Handler: h})
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			mem := in.Module().Memory()
			mem.Write(16, []byte("ping"))
			if _, err := in.Call("run"); err != nil {
				t.Fatal(err)
			}
			mem.Write(16, []byte("pong"))
			if len(h.msgs) != 1 || string(h.msgs[0]) != "ping" {
				t.Fatalf("handler holds %q, want [ping]", h.msgs)
			}
		})
	}
}

// TestLoadRefusesUnknownImports: an import the profile does not register,
// or registers with another signature, fails the load, as cpp-host's link
// step does.
func TestLoadRefusesUnknownImports(t *testing.T) {
	for _, c := range []struct {
		name string
		imp  wasmbin.Import
		want string
	}{
		{"unknown env", wasmbin.Imp("env", "proxy_nonexistent", nil, []byte{i32}), "missing import: env.proxy_nonexistent"},
		{"unmodelled env", wasmbin.Imp("env", "proxy_grpc_call", nil, []byte{i32}), "does not model"},
		{"mistyped env", wasmbin.Imp("env", "proxy_log", []byte{i32}, []byte{i32}), "import type mismatch: env.proxy_log"},
		{"other module", wasmbin.Imp("wasi", "x", nil, nil), "missing import: wasi.x"},
		{"mistyped wasi", wasmbin.Imp("wasi_snapshot_preview1", "sched_yield", []byte{i32}, []byte{i32}), "import type mismatch"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := write(t, wasmbin.Module([]wasmbin.Import{c.imp}, []wasmbin.Func{wasmbin.Fn("_initialize", nil, nil, nil)}))
			_, err := wasmhost.Load(path, wasmhost.DefaultProfile)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// TestUnknownProfile: a profile that is not modelled is refused by name.
func TestUnknownProfile(t *testing.T) {
	if _, err := wasmhost.Load(write(t, logModule), "cpp-host-1"); err == nil {
		t.Fatal("unknown profile accepted")
	}
}
