package plugin

import (
	"slices"
	"testing"

	"github.com/tracebridge/tracebridge/engine"
	"github.com/tracebridge/tracebridge/wasm-filter/abi"
)

// serializePairs encodes header pairs as a host does.
func serializePairs(pairs [][2]string) []byte { return abi.AppendHeaderMap(nil, pairs) }

func TestParseHeaderPairs(t *testing.T) {
	for _, c := range []struct {
		name  string
		buf   []byte
		want  engine.HeaderList
		valid bool
	}{
		{"empty buffer", nil, nil, true},
		{"no pairs", serializePairs(nil), nil, true},
		{"pairs", serializePairs([][2]string{{":path", "/a"}, {"x-request-id", "r1"}, {"empty", ""}}),
			engine.HeaderList{{Name: ":path", Value: "/a"}, {Name: "x-request-id", Value: "r1"}, {Name: "empty", Value: ""}}, true},
		{"upper-case names lowered", serializePairs([][2]string{{"X-Request-Id", "R1"}}),
			engine.HeaderList{{Name: "x-request-id", Value: "R1"}}, true},
		{"short count", []byte{1, 0}, nil, false},
		{"count past the buffer", []byte{0x40, 0x42, 0x0f, 0x00} /* 1,000,000 pairs */, nil, false},
		{"truncated data", serializePairs([][2]string{{"a", "b"}})[:15], nil, false},
		{"missing NUL", func() []byte { b := serializePairs([][2]string{{"a", "b"}}); b[13] = 'x'; return b }(), nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			prefix := engine.HeaderList{{Name: "kept", Value: "1"}}
			got, ok := parseHeaderPairs(slices.Clone(prefix), c.buf)
			if ok != c.valid {
				t.Fatalf("ok = %v, want %v", ok, c.valid)
			}
			if want := append(slices.Clone(prefix), c.want...); !slices.Equal(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
}

func FuzzParseHeaderPairs(f *testing.F) {
	f.Add(serializePairs([][2]string{{":path", "/"}, {"traceparent", "00-x"}}))
	f.Add([]byte{2, 0, 0, 0, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, buf []byte) {
		got, ok := parseHeaderPairs(nil, buf)
		if !ok {
			if len(got) != 0 {
				t.Fatalf("a malformed map left %d lines", len(got))
			}
			return
		}
		// A map that parses re-encodes to the same bytes once names are
		// lower case (names already lower case in the input round-trip).
		pairs := make([][2]string, len(got))
		for i, p := range got {
			pairs[i] = [2]string{p.Name, p.Value}
		}
		again, ok := parseHeaderPairs(nil, serializePairs(pairs))
		if !ok || !slices.Equal(again, got) {
			t.Fatalf("round trip: %v then %v (%v)", got, again, ok)
		}
	})
}

func TestPropertyPathWire(t *testing.T) {
	if got := string(newPropertyPath("xds", "listener_direction").wire); got != "xds\x00listener_direction" {
		t.Fatalf("wire %q", got)
	}
	if got := string(newPropertyPath("plugin_name").wire); got != "plugin_name" {
		t.Fatalf("wire %q", got)
	}
}
