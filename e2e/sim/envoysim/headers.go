package envoysim

import (
	"net/http"
	"strings"
)

// Headers is an Envoy header map: ordered (name, value) pairs with lower-case
// names, repeated names allowed, pseudo-headers (:method, :path, :authority,
// :scheme) first, as Envoy's HeaderMapImpl presents them to filters.
type Headers struct {
	kv [][2]string
}

// Get returns the first value of name ("" if absent).
func (h *Headers) Get(name string) string {
	v, _ := h.Lookup(name)
	return v
}

// Lookup returns the first value of name and whether it is present.
func (h *Headers) Lookup(name string) (string, bool) {
	for _, p := range h.kv {
		if p[0] == name {
			return p[1], true
		}
	}
	return "", false
}

// Values returns every value of name.
func (h *Headers) Values(name string) []string {
	var out []string
	for _, p := range h.kv {
		if p[0] == name {
			out = append(out, p[1])
		}
	}
	return out
}

// Count is the number of entries named name.
func (h *Headers) Count(name string) int {
	n := 0
	for _, p := range h.kv {
		if p[0] == name {
			n++
		}
	}
	return n
}

// Add appends an entry.
func (h *Headers) Add(name, value string) {
	h.kv = append(h.kv, [2]string{strings.ToLower(name), value})
}

// Set replaces every entry of name by one (setReferenceKey in Envoy): the
// first entry keeps its position.
func (h *Headers) Set(name, value string) {
	name = strings.ToLower(name)
	out := h.kv[:0]
	done := false
	for _, p := range h.kv {
		if p[0] == name {
			if done {
				continue
			}
			p[1] = value
			done = true
		}
		out = append(out, p)
	}
	h.kv = out
	if !done {
		h.kv = append(h.kv, [2]string{name, value})
	}
}

// Del removes every entry of name.
func (h *Headers) Del(name string) {
	name = strings.ToLower(name)
	out := h.kv[:0]
	for _, p := range h.kv {
		if p[0] != name {
			out = append(out, p)
		}
	}
	h.kv = out
}

// Pairs returns a copy of the entries.
func (h *Headers) Pairs() [][2]string { return append([][2]string(nil), h.kv...) }

// SetPairs replaces the whole map.
func (h *Headers) SetPairs(kv [][2]string) {
	h.kv = h.kv[:0]
	for _, p := range kv {
		h.kv = append(h.kv, [2]string{strings.ToLower(p[0]), p[1]})
	}
}

// Clone returns an independent copy.
func (h *Headers) Clone() *Headers { return &Headers{kv: h.Pairs()} }

// requestHeaders builds the request header map Envoy's codec would: pseudo
// headers then the regular headers, lower-cased.
func requestHeaders(r *http.Request) *Headers {
	h := &Headers{}
	// An absolute-form request (HTTP/1.1 forward proxy) is split into
	// :authority and :path, as Envoy's HTTP/1 codec does.
	h.Add(":authority", r.Host)
	h.Add(":path", r.URL.RequestURI())
	h.Add(":method", r.Method)
	h.Add(":scheme", "http")
	for name, vs := range r.Header {
		ln := strings.ToLower(name)
		if ln == "proxy-connection" || ln == "proxy-authorization" || ln == "connection" || ln == "keep-alive" || ln == "te" || ln == "trailer" || ln == "transfer-encoding" || ln == "upgrade" {
			continue // hop-by-hop: Envoy's HTTP/1 codec does not forward them
		}
		for _, v := range vs {
			h.Add(ln, v)
		}
	}
	return h
}

// responseHeaders converts a Go response header plus status into Envoy's map.
func responseHeaders(status int, hdr http.Header) *Headers {
	h := &Headers{}
	h.Add(":status", itoa(status))
	for name, vs := range hdr {
		ln := strings.ToLower(name)
		if ln == "connection" || ln == "keep-alive" || ln == "transfer-encoding" {
			continue
		}
		for _, v := range vs {
			h.Add(ln, v)
		}
	}
	return h
}

// toHTTP copies the regular (non-pseudo) headers into an http.Header.
func (h *Headers) toHTTP(dst http.Header) {
	for _, p := range h.kv {
		if strings.HasPrefix(p[0], ":") {
			continue
		}
		dst[http.CanonicalHeaderKey(p[0])] = append(dst[http.CanonicalHeaderKey(p[0])], p[1])
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
