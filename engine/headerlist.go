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
