package engine

import "strings"

// HeaderPair is one header line as a host delivers it.
type HeaderPair struct{ Name, Value string }

// HeaderList adapts a host's ordered header lines (proxy-wasm header map
// pairs, ext_proc HeaderMap) to Headers. Names must already be lower case, as
// Envoy delivers them. Lookups scan linearly: a request has tens of headers,
// and a map would cost more to build than the scans it saves.
type HeaderList []HeaderPair

// Get returns the first value and the count; repeated headers are joined
// with "," (RFC 9110 §5.3), which allocates only in that rare case.
func (l HeaderList) Get(name string) (string, int) {
	first := -1
	n := 0
	for i := range l {
		if l[i].Name == name {
			if first < 0 {
				first = i
			}
			n++
		}
	}
	if n <= 1 {
		if first < 0 {
			return "", 0
		}
		return l[first].Value, 1
	}
	var b strings.Builder
	for i := first; i < len(l); i++ {
		if l[i].Name == name {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(l[i].Value)
		}
	}
	return b.String(), n
}

// IndexedHeaders is a HeaderList with a 64-bit presence filter over each
// name's length and two of its bytes. Most of the engine's lookups ask for trace
// headers a request does not carry (about fifty lookups per request against
// ten-odd lines); the filter answers those without scanning, which matters
// most in the wasm module, where every string comparison is a call.
type IndexedHeaders struct {
	List    HeaderList
	present uint64
}

// Reset indexes list (names lower case, as for HeaderList).
func (h *IndexedHeaders) Reset(list HeaderList) {
	h.List, h.present = list, 0
	for i := range list {
		h.present |= presenceBit(list[i].Name)
	}
}

// Get is HeaderList.Get.
func (h *IndexedHeaders) Get(name string) (string, int) {
	if h.present&presenceBit(name) == 0 {
		return "", 0
	}
	return h.List.Get(name)
}

func presenceBit(name string) uint64 {
	if name == "" {
		return 1
	}
	// Length, last and middle byte: chosen so that the trace headers the
	// engine looks up fall on bits that common request headers leave clear.
	return 1 << ((uint(len(name))*2 + uint(name[len(name)-1]) + 3*uint(name[len(name)/2])) & 63)
}

// LowerName returns a header name lower-cased, as HeaderList requires,
// allocating only when it has an upper-case letter (Envoy's maps are lower
// case already; proxytest and older ext_proc clients are not).
func LowerName(name string) string {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(name)
		}
	}
	return name
}
