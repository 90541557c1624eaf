package main

import (
	"encoding/binary"
	"testing"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/tracebridge/tracebridge/wasm-filter/abi"
)

const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// TestRecordRestore checks natively (proxytest) that the floor does what its
// benchmark counts: an outbound request gets the traceparent its inbound
// request carried under the same x-request-id, and nothing else does.
func TestRecordRestore(t *testing.T) {
	tests := []struct {
		name               string
		inbound            [][2]string // recorded first
		outboundID         string
		wantTP             string // "" for untouched
		recorded, restored uint64
	}{
		{"same id restores", [][2]string{{"traceparent", tp}, {"x-request-id", "r-1"}}, "r-1", tp, 1, 1},
		{"other id untouched", [][2]string{{"traceparent", tp}, {"x-request-id", "r-1"}}, "r-2", "", 1, 0},
		{"no traceparent records nothing", [][2]string{{"x-request-id", "r-1"}}, "r-1", "", 0, 0},
		{"no request id records nothing", [][2]string{{"traceparent", tp}}, "r-1", "", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, reset := proxytest.NewHostEmulator(proxytest.NewEmulatorOption().WithVMContext(&vmContext{}))
			defer reset()
			if host.StartPlugin() != types.OnPluginStartStatusOK {
				t.Fatal("plugin did not start")
			}
			send := func(dir uint64, headers [][2]string) [][2]string {
				if err := host.SetProperty([]string{"xds", "listener_direction"}, binary.LittleEndian.AppendUint64(nil, dir)); err != nil {
					t.Fatal(err)
				}
				id := host.InitializeHttpContext()
				host.CallOnRequestHeaders(id, headers, false)
				return host.GetCurrentRequestHeaders(id)
			}
			send(inbound, tt.inbound)
			var got string
			for _, kv := range send(outbound, [][2]string{{":path", "/"}, {"x-request-id", tt.outboundID}}) {
				if kv[0] == "traceparent" {
					got = kv[1]
				}
			}
			if got != tt.wantTP {
				t.Errorf("outbound traceparent %q, want %q", got, tt.wantTP)
			}
			for _, c := range []struct {
				name string
				want uint64
			}{{recordedInbound, tt.recorded}, {restoredOutbound, tt.restored}} {
				if n, _ := host.GetCounterMetric(c.name); n != c.want {
					t.Errorf("%s = %d, want %d", c.name, n, c.want)
				}
			}
		})
	}
}

// serialize encodes pairs as the ABI's header map.
func serialize(pairs [][2]string) []byte { return abi.AppendHeaderMap(nil, pairs) }

func TestFindTraceHeaders(t *testing.T) {
	tests := []struct {
		name      string
		buf       []byte
		rid, tp   string
		wantValid bool
	}{
		{"both", serialize([][2]string{{":path", "/"}, {"traceparent", tp}, {"x-request-id", "r-1"}}), "r-1", tp, true},
		{"none", serialize([][2]string{{":path", "/"}}), "", "", true},
		{"empty buffer", nil, "", "", true},
		{"short", []byte{1, 0}, "", "", false},
		{"count beyond buffer", []byte{9, 0, 0, 0, 1, 0, 0, 0}, "", "", false},
		{"lengths beyond data", serialize([][2]string{{"x-request-id", "r-1"}})[:20], "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rid, tp, ok := findTraceHeaders(tt.buf)
			if rid != tt.rid || tp != tt.tp || ok != tt.wantValid {
				t.Errorf("got %q %q %v, want %q %q %v", rid, tp, ok, tt.rid, tt.tp, tt.wantValid)
			}
		})
	}
}

// FuzzFindTraceHeaders: any buffer decodes without panicking, and a
// serialized map yields the values it carries.
func FuzzFindTraceHeaders(f *testing.F) {
	f.Add([]byte{}, "r-1", tp)
	f.Add(serialize([][2]string{{"a", "b"}}), "", "")
	f.Fuzz(func(t *testing.T, raw []byte, rid, tparent string) {
		findTraceHeaders(raw)
		pairs := [][2]string{{":path", "/"}}
		if rid != "" {
			pairs = append(pairs, [2]string{"x-request-id", rid})
		}
		if tparent != "" {
			pairs = append(pairs, [2]string{"traceparent", tparent})
		}
		gotRID, gotTP, ok := findTraceHeaders(serialize(pairs))
		if !ok || gotRID != rid || gotTP != tparent {
			t.Fatalf("serialized %q: got %q %q %v", pairs, gotRID, gotTP, ok)
		}
	})
}
