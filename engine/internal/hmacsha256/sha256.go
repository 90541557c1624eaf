// Package hmacsha256 computes SHA-256 (FIPS 180-4) and HMAC-SHA-256 (RFC 2104)
// and compares MACs in constant time, for the engine's debug tokens and
// trusted-header check. It exists because crypto/sha256 links Go's FIPS 140
// module (AES, DRBG, SHA-3 and SHA-512 set-up code), about 0.2 MB of the
// proxy-wasm module for one small MAC per request that carries a token.
package hmacsha256

import "math/bits"

// Size is the length of a SHA-256 digest and of an HMAC-SHA-256 MAC.
const Size = 32

// BlockSize is SHA-256's block length in bytes (FIPS 180-4 §1, Figure 1).
const BlockSize = 64

// k holds the SHA-256 constants: the first 32 bits of the fractional parts of
// the cube roots of the first 64 primes (FIPS 180-4 §4.2.2).
var k = [64]uint32{
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5,
	0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
	0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
	0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
	0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5,
	0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

// digest is a SHA-256 computation in progress.
type digest struct {
	h     [8]uint32
	buf   [BlockSize]byte
	n     int    // bytes in buf
	total uint64 // message bytes so far
}

func (d *digest) reset() {
	// Initial hash value: the first 32 bits of the fractional parts of the
	// square roots of the first 8 primes (FIPS 180-4 §5.3.3).
	d.h = [8]uint32{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}
	d.n, d.total = 0, 0
}

func (d *digest) write(p []byte) {
	d.total += uint64(len(p))
	if d.n > 0 {
		c := copy(d.buf[d.n:], p)
		d.n += c
		p = p[c:]
		if d.n < BlockSize {
			return
		}
		d.block(d.buf[:])
		d.n = 0
	}
	for len(p) >= BlockSize {
		d.block(p[:BlockSize])
		p = p[BlockSize:]
	}
	d.n = copy(d.buf[:], p)
}

// sum pads the message and returns the digest (FIPS 180-4 §5.1.1: a 1 bit,
// zeros up to 56 bytes mod 64, the message length in bits as a big-endian
// 64-bit integer; §6.2.2 step 4: H0..H7 big-endian).
func (d *digest) sum() [Size]byte {
	bitLen := d.total << 3
	var pad [BlockSize + 8]byte
	pad[0] = 0x80
	padLen := 56 - d.n
	if d.n >= 56 {
		padLen += BlockSize
	}
	putUint64(pad[padLen:], bitLen)
	d.write(pad[:padLen+8])
	var out [Size]byte
	for i, v := range d.h {
		putUint32(out[4*i:], v)
	}
	return out
}

// block processes one 64-byte block (FIPS 180-4 §6.2.2).
func (d *digest) block(p []byte) {
	var w [64]uint32
	for t := 0; t < 16; t++ {
		w[t] = uint32(p[4*t])<<24 | uint32(p[4*t+1])<<16 | uint32(p[4*t+2])<<8 | uint32(p[4*t+3])
	}
	for t := 16; t < 64; t++ {
		s0 := bits.RotateLeft32(w[t-15], -7) ^ bits.RotateLeft32(w[t-15], -18) ^ w[t-15]>>3 // σ0, §4.1.2 (4.6)
		s1 := bits.RotateLeft32(w[t-2], -17) ^ bits.RotateLeft32(w[t-2], -19) ^ w[t-2]>>10  // σ1, (4.7)
		w[t] = s1 + w[t-7] + s0 + w[t-16]
	}
	a, b, c, dd, e, f, g, h := d.h[0], d.h[1], d.h[2], d.h[3], d.h[4], d.h[5], d.h[6], d.h[7]
	for t := 0; t < 64; t++ {
		S1 := bits.RotateLeft32(e, -6) ^ bits.RotateLeft32(e, -11) ^ bits.RotateLeft32(e, -25) // Σ1, (4.5)
		ch := e&f ^ ^e&g                                                                       // Ch, (4.2)
		t1 := h + S1 + ch + k[t] + w[t]
		S0 := bits.RotateLeft32(a, -2) ^ bits.RotateLeft32(a, -13) ^ bits.RotateLeft32(a, -22) // Σ0, (4.4)
		maj := a&b ^ a&c ^ b&c                                                                 // Maj, (4.3)
		t2 := S0 + maj
		h, g, f, e, dd, c, b, a = g, f, e, dd+t1, c, b, a, t1+t2
	}
	d.h[0] += a
	d.h[1] += b
	d.h[2] += c
	d.h[3] += dd
	d.h[4] += e
	d.h[5] += f
	d.h[6] += g
	d.h[7] += h
}

// Sum256 returns the SHA-256 digest of data.
func Sum256(data []byte) [Size]byte {
	var d digest
	d.reset()
	d.write(data)
	return d.sum()
}

func putUint32(b []byte, v uint32) {
	_ = b[3]
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

func putUint64(b []byte, v uint64) {
	putUint32(b, uint32(v>>32))
	putUint32(b[4:], uint32(v))
}
