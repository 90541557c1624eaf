package hmacsha256

import "unsafe"

// MAC returns HMAC-SHA-256(key, msg) (RFC 2104 §2):
// H(K XOR opad, H(K XOR ipad, msg)), where a key longer than the block is
// first hashed and K is the key padded with zeros to the block length.
func MAC(key, msg []byte) [Size]byte {
	var k [BlockSize]byte
	if len(key) > BlockSize {
		sum := Sum256(key)
		copy(k[:], sum[:])
	} else {
		copy(k[:], key)
	}
	var pad [BlockSize]byte
	var d digest

	for i := range pad {
		pad[i] = k[i] ^ 0x36 // ipad
	}
	d.reset()
	d.write(pad[:])
	d.write(msg)
	inner := d.sum()

	for i := range pad {
		pad[i] = k[i] ^ 0x5c // opad
	}
	d.reset()
	d.write(pad[:])
	d.write(inner[:])
	return d.sum()
}

// Equal reports whether a and b are equal, in time that depends on their
// lengths only, not on where they differ, so that a client cannot find a MAC
// or a secret header value byte by byte by timing (RFC 2104 §5 leaves
// verification to the caller; this is the usual constant-time compare).
func Equal[T ~string | ~[]byte](a, b T) bool {
	if len(a) != len(b) {
		return false
	}
	var v byte
	for i := 0; i < len(a); i++ {
		v |= a[i] ^ b[i]
	}
	return v == 0
}

// Keyed is HMAC-SHA-256 under one key with the padded key blocks already
// hashed (RFC 2104 §4 "Implementation Note": the intermediate results for
// K XOR ipad and K XOR opad may be precomputed), so that a MAC of a short
// message costs two compressions instead of four. The zero value is not
// usable; a Keyed is read-only after NewKeyed and safe for concurrent use.
type Keyed struct {
	inner, outer digest
}

// NewKeyed prepares key.
func NewKeyed(key []byte) *Keyed {
	var k [BlockSize]byte
	if len(key) > BlockSize {
		sum := Sum256(key)
		copy(k[:], sum[:])
	} else {
		copy(k[:], key)
	}
	var pad [BlockSize]byte
	kd := &Keyed{}
	for i := range pad {
		pad[i] = k[i] ^ 0x36
	}
	kd.inner.reset()
	kd.inner.write(pad[:])
	for i := range pad {
		pad[i] = k[i] ^ 0x5c
	}
	kd.outer.reset()
	kd.outer.write(pad[:])
	return kd
}

// MAC returns HMAC-SHA-256(key, a || b).
func (k *Keyed) MAC(a, b string) [Size]byte {
	d := k.inner
	d.write(unsafe.Slice(unsafe.StringData(a), len(a)))
	d.write(unsafe.Slice(unsafe.StringData(b), len(b)))
	inner := d.sum()
	d = k.outer
	d.write(inner[:])
	return d.sum()
}
