package plugin

import (
	"encoding/binary"
	"unsafe"

	"github.com/tracebridge/tracebridge/engine"
)

// parseHeaderPairs appends the header lines of a serialized proxy-wasm header
// map to dst, without copying: names and values are strings over buf, which
// must stay unmodified for as long as they are used (the bridge hands out a
// fresh buffer per host call). Names are lower-cased (Envoy's maps are lower
// case already; proxytest and some hosts are not), which copies only then.
//
// Encoding (proxy-wasm ABI 0.2.x, the SDK's proxywasm/internal
// SerializeMap and cpp-host src/pairs_util.cc): a little-endian u32 pair
// count, then a u32 name length and a u32 value length per pair, then each
// name and each value followed by a NUL byte. A malformed map yields ok false
// and dst as it was.
func parseHeaderPairs(dst engine.HeaderList, buf []byte) (engine.HeaderList, bool) {
	if len(buf) == 0 {
		return dst, true // an empty map may come as no buffer at all
	}
	if len(buf) < 4 {
		return dst, false
	}
	n := uint64(binary.LittleEndian.Uint32(buf))
	if n > uint64(len(buf)-4)/8 {
		return dst, false
	}
	sizes := buf[4 : 4+8*n]
	data := buf[4+8*n:]
	start := len(dst)
	for i := uint64(0); i < n; i++ {
		nl := uint64(binary.LittleEndian.Uint32(sizes[8*i:]))
		vl := uint64(binary.LittleEndian.Uint32(sizes[8*i+4:]))
		if nl+vl+2 > uint64(len(data)) || data[nl] != 0 || data[nl+1+vl] != 0 {
			return dst[:start], false
		}
		name := bytesString(data[:nl])
		value := bytesString(data[nl+1 : nl+1+vl])
		data = data[nl+vl+2:]
		dst = append(dst, engine.HeaderPair{Name: engine.LowerName(name), Value: value})
	}
	return dst, true
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
