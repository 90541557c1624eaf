package abi

import (
	"slices"
	"testing"
)

func TestHeaderPairs(t *testing.T) {
	full := AppendHeaderMap(nil, [][2]string{{":path", "/"}, {"x-request-id", "r-1"}, {"empty", ""}})
	noNUL := AppendHeaderMap(nil, [][2]string{{"a", "b"}})
	noNUL[13] = 'x' // the NUL after the name "a"
	for _, c := range []struct {
		name string
		buf  []byte
		want [][2]string
		ok   bool
	}{
		{"pairs", full, [][2]string{{":path", "/"}, {"x-request-id", "r-1"}, {"empty", ""}}, true},
		{"no buffer", nil, nil, true},
		{"zero pairs", AppendHeaderMap(nil, nil), nil, true},
		{"short", []byte{1, 0}, nil, false},
		{"count beyond buffer", []byte{9, 0, 0, 0, 1, 0, 0, 0}, nil, false},
		{"lengths beyond data", full[:len(full)-3], nil, false},
		{"missing NUL", noNUL, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			kept := []Pair{{"kept", "1"}}
			got, ok := ParseHeaderMap(slices.Clone(kept), c.buf)
			want := kept
			if ok {
				for _, p := range c.want {
					want = append(want, Pair{p[0], p[1]})
				}
			}
			if ok != c.ok || !slices.Equal(got, want) {
				t.Errorf("got %q, %v; want %q, %v", got, ok, c.want, c.ok)
			}
		})
	}
}

// FuzzHeaderPairs: any buffer is read without panicking, and what a host
// serializes reads back unchanged.
func FuzzHeaderPairs(f *testing.F) {
	f.Add([]byte{}, "a", "b")
	f.Add([]byte{1, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 0}, "x-request-id", "")
	f.Fuzz(func(t *testing.T, raw []byte, name, value string) {
		if got, ok := ParseHeaderMap([]Pair(nil), raw); !ok && len(got) != 0 {
			t.Fatalf("a malformed map left %d pairs", len(got))
		}
		got, ok := ParseHeaderMap([]Pair(nil), AppendHeaderMap(nil, [][2]string{{name, value}, {":path", "/"}}))
		want := []Pair{{name, value}, {":path", "/"}}
		if !ok || !slices.Equal(got, want) {
			t.Fatalf("got %q, %v; want %q", got, ok, want)
		}
	})
}
