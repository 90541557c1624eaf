package abi

import (
	"encoding/binary"
	"unsafe"
)

// The serialized header map of proxy-wasm ABI 0.2.x (the SDK's
// proxywasm/internal SerializeMap, cpp-host src/pairs_util.cc): a
// little-endian u32 pair count, then a u32 name length and a u32 value
// length per pair, then each name and each value followed by a NUL byte.

// Pair is one header line. Plugins may decode into their own pair type of
// the same shape (engine.HeaderPair), without a copy per line.
type Pair struct{ Name, Value string }

// PairShape is a struct type with Pair's layout.
type PairShape interface{ ~struct{ Name, Value string } }

// ParseHeaderMap appends the pairs of a serialized header map to dst,
// without copying: names and values are strings over buf, which must stay
// unmodified while they are used. An empty buffer is an empty map (hosts
// may send none for one). A malformed map (count or lengths past the
// buffer, a missing NUL) yields ok false and dst as it was.
func ParseHeaderMap[P PairShape](dst []P, buf []byte) ([]P, bool) {
	if len(buf) == 0 {
		return dst, true
	}
	if len(buf) < 4 {
		return dst, false
	}
	n := uint64(binary.LittleEndian.Uint32(buf))
	if n > uint64(len(buf)-4)/8 {
		return dst, false
	}
	sizes, data := buf[4:4+8*n], buf[4+8*n:]
	start := len(dst)
	for i := uint64(0); i < n; i++ {
		nl := uint64(binary.LittleEndian.Uint32(sizes[8*i:]))
		vl := uint64(binary.LittleEndian.Uint32(sizes[8*i+4:]))
		if nl+vl+2 > uint64(len(data)) || data[nl] != 0 || data[nl+1+vl] != 0 {
			return dst[:start], false
		}
		dst = append(dst, P(struct{ Name, Value string }{bytesString(data[:nl]), bytesString(data[nl+1 : nl+1+vl])}))
		data = data[nl+vl+2:]
	}
	return dst, true
}

// AppendHeaderMap appends pairs in the serialized form to dst (what a host
// writes; tests build header maps with it).
func AppendHeaderMap(dst []byte, pairs [][2]string) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(pairs)))
	for _, p := range pairs {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(p[0])))
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(p[1])))
	}
	for _, p := range pairs {
		dst = append(append(append(append(dst, p[0]...), 0), p[1]...), 0)
	}
	return dst
}

// bytesString makes a string that aliases b.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}
