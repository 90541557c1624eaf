package hmacsha256

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSum256Vectors: the SHA-256 examples of FIPS 180-4's example document
// (NIST CSRC "Examples with Intermediate Values": one block, two blocks) and
// the long-message test (one million "a").
func TestSum256Vectors(t *testing.T) {
	cases := []struct{ name, msg, want string }{
		{"empty", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"one block", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"two blocks", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
		{"million a", strings.Repeat("a", 1000000), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Sum256([]byte(c.msg))
			if !bytes.Equal(got[:], unhex(t, c.want)) {
				t.Fatalf("Sum256 = %x, want %s", got, c.want)
			}
		})
	}
}

// TestMACVectors: the HMAC-SHA-256 test cases of RFC 4231 §4.2-4.8 (case 5
// checks the first 128 bits, as the RFC does).
func TestMACVectors(t *testing.T) {
	rep := func(b byte, n int) string { return string(bytes.Repeat([]byte{b}, n)) }
	seq := func(from, to byte) string {
		var b []byte
		for c := from; c <= to; c++ {
			b = append(b, c)
		}
		return string(b)
	}
	cases := []struct{ name, key, data, want string }{
		{"1", rep(0x0b, 20), "Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
		{"2", "Jefe", "what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
		{"3", rep(0xaa, 20), rep(0xdd, 50), "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
		{"4", seq(0x01, 0x19), rep(0xcd, 50), "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
		{"5", rep(0x0c, 20), "Test With Truncation", "a3b6167473100ee06e0c796c2955552b"},
		{"6", rep(0xaa, 131), "Test Using Larger Than Block-Size Key - Hash Key First", "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
		{"7", rep(0xaa, 131), "This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.", "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
	}
	for _, c := range cases {
		t.Run("RFC4231 case "+c.name, func(t *testing.T) {
			want := unhex(t, c.want)
			got := MAC([]byte(c.key), []byte(c.data))
			if !bytes.Equal(got[:len(want)], want) {
				t.Fatalf("MAC = %x, want %s", got, c.want)
			}
		})
	}
}

func checkAgainstCrypto(t *testing.T, key, msg []byte) {
	t.Helper()
	if got, want := Sum256(msg), sha256.Sum256(msg); got != want {
		t.Fatalf("Sum256(%d bytes) = %x, crypto/sha256 %x", len(msg), got, want)
	}
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	if got, want := MAC(key, msg), m.Sum(nil); !bytes.Equal(got[:], want) {
		t.Fatalf("MAC(%d-byte key, %d bytes) = %x, crypto/hmac %x", len(key), len(msg), got, want)
	}
}

// TestAgainstCrypto covers every message length 0..300 (all padding cases
// around one to four blocks) with keys shorter than, equal to and longer
// than the block.
func TestAgainstCrypto(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	for n := 0; n <= 300; n++ {
		for _, kl := range []int{0, 1, 16, 32, 63, 64, 65, 131} {
			checkAgainstCrypto(t, random(kl), random(n))
		}
	}
}

// TestWriteInPieces: the digest is the same however the message is split
// across writes (the buffering paths of write).
func TestWriteInPieces(t *testing.T) {
	msg := []byte(strings.Repeat("0123456789", 30))
	want := sha256.Sum256(msg)
	for step := 1; step <= 130; step++ {
		var d digest
		d.reset()
		for i := 0; i < len(msg); i += step {
			d.write(msg[i:min(i+step, len(msg))])
		}
		if got := d.sum(); got != want {
			t.Fatalf("writes of %d bytes: %x, want %x", step, got, want)
		}
	}
}

func TestEqual(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{"", "", true},
		{"a", "a", true},
		{"secret-value", "secret-value", true},
		{"secret-value", "secret-valuf", false},
		{"secret-value", "Secret-value", false},
		{"secret-value", "secret-valu", false},
		{"", "a", false},
		{"\x00", "", false},
		{"\x80\xff", "\x80\xff", true},
		{"\x80\xff", "\x80\xfe", false},
	}
	for _, c := range cases {
		if got := Equal(c.a, c.b); got != c.want {
			t.Errorf("Equal(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
		if got := Equal([]byte(c.a), []byte(c.b)); got != c.want {
			t.Errorf("Equal([]byte %q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
		if got, want := Equal(c.a, c.b), hmac.Equal([]byte(c.a), []byte(c.b)); got != want {
			t.Errorf("Equal(%q, %q) = %v, crypto/hmac.Equal %v", c.a, c.b, got, want)
		}
	}
}

func FuzzAgainstCrypto(f *testing.F) {
	f.Add([]byte("key"), []byte("The quick brown fox jumps over the lazy dog"))
	f.Add([]byte{}, []byte{})
	f.Add(bytes.Repeat([]byte{0xaa}, 131), bytes.Repeat([]byte{0xdd}, 119))
	f.Fuzz(func(t *testing.T, key, msg []byte) {
		checkAgainstCrypto(t, key, msg)
		if Equal(key, msg) != hmac.Equal(key, msg) {
			t.Fatalf("Equal(%x, %x) disagrees with crypto/hmac", key, msg)
		}
	})
}

// TestKeyedMatchesCryptoHMAC: the precomputed-pad MAC equals crypto/hmac on
// the concatenation, for keys shorter than, equal to and longer than a block
// and messages across block boundaries.
func TestKeyedMatchesCryptoHMAC(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, kl := range []int{0, 16, 32, 64, 65, 100} {
		key := make([]byte, kl)
		for i := range key {
			key[i] = byte(r.Uint32())
		}
		k := NewKeyed(key)
		for _, ml := range [][2]int{{0, 0}, {1, 0}, {0, 1}, {13, 50}, {55, 1}, {63, 1}, {64, 64}, {200, 9}} {
			a, b := make([]byte, ml[0]), make([]byte, ml[1])
			for i := range a {
				a[i] = byte(r.Uint32())
			}
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			m := hmac.New(sha256.New, key)
			m.Write(a)
			m.Write(b)
			if got := k.MAC(string(a), string(b)); !bytes.Equal(got[:], m.Sum(nil)) {
				t.Fatalf("key %d bytes, message %d+%d bytes: MAC differs from crypto/hmac", kl, ml[0], ml[1])
			}
		}
	}
}
