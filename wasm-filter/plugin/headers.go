package plugin

import (
	"unsafe"

	"github.com/tracebridge/tracebridge/engine"
	"github.com/tracebridge/tracebridge/wasm-filter/abi"
)

// parseHeaderPairs appends the header lines of a serialized proxy-wasm header
// map (abi.ParseHeaderMap) to dst, without copying: names and values are
// strings over buf, which must stay unmodified for as long as they are used
// (the bridge hands out a fresh buffer per host call). Names are lower-cased
// (Envoy's maps are lower case already; proxytest and some hosts are not),
// which copies only then. A malformed map yields ok false and dst as it was.
func parseHeaderPairs(dst engine.HeaderList, buf []byte) (engine.HeaderList, bool) {
	start := len(dst)
	dst, ok := abi.ParseHeaderMap(dst, buf)
	for i := start; i < len(dst); i++ {
		dst[i].Name = engine.LowerName(dst[i].Name)
	}
	return dst, ok
}

// bytesString makes a string that aliases b.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// propertyPath is a host property path, kept both as segments (the SDK's
// form) and serialized (segments joined by NUL bytes, the ABI's form: the
// SDK's SerializePropertyPath, Envoy's getProperty splits on NUL) so that a
// read serializes nothing.
type propertyPath struct {
	segments []string
	wire     []byte
}

func newPropertyPath(segments ...string) *propertyPath {
	p := &propertyPath{segments: segments}
	for i, s := range segments {
		if i > 0 {
			p.wire = append(p.wire, 0)
		}
		p.wire = append(p.wire, s...)
	}
	return p
}
