package engine

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// The narrowed strategy: an app that forwards no trace header often relays
// something of its caller's request (the bearer token, the session cookie, a
// tenant or user id). Each inbound request in flight keeps a fingerprint of
// each candidate header's value; an outbound request without context is
// restored from the only in-flight inbound request that shares one of its
// fingerprints. Two or more such requests (or an overflowing set) are
// ambiguous: nothing is guessed.
//
// A fingerprint is the first 8 bytes of HMAC-SHA-256 (RFC 2104) under a
// random key of the store, over "<header name>:" and the value: never the
// value itself, so a token cannot be read back from shared data, Redis or a
// dump. The key is shared by everyone who reads the same store (every VM of a
// proxy, every replica on one Redis), because fingerprints written by one
// are compared by another.

// NarrowKeySize is the length of a fingerprint key.
const NarrowKeySize = 32

// MaxNarrowHeaders bounds correlation.narrowHeaders, and so the fingerprints
// an in-flight entry keeps.
const MaxNarrowHeaders = 8

// DefaultNarrowHeaders are the candidate headers when the policy lists none.
var DefaultNarrowHeaders = []string{"authorization", "cookie", "x-user-id", "x-tenant-id", "x-session-id", "x-api-key"}

// NarrowStore is the part of a Store that keeps the narrowed strategy's
// in-flight set. Every store of the project implements it; with a store that
// does not, the strategy does nothing.
type NarrowStore interface {
	// NarrowKey returns the fingerprint key, the same for every reader of
	// the store (created once, on first use or at start).
	NarrowKey() ([NarrowKeySize]byte, error)
	// EnterNarrow counts an inbound request in flight with its fingerprints
	// and record (which may be empty). owner is unique per stream, never zero.
	EnterNarrow(owner uint64, rec []byte, prints []uint64) error
	// LeaveNarrow ends what EnterNarrow started; unknown owners are ignored.
	LeaveNarrow(owner uint64) error
	// Narrow reports how many in-flight requests share at least one
	// fingerprint with prints (at least 2 while requests that did not fit
	// in the set are in flight) and, when exactly one does, appends its
	// record to dst (ok false when it has none).
	Narrow(dst []byte, prints []uint64) (matches int, rec []byte, ok bool, err error)
}

// NewNarrowKey draws a fingerprint key. math/rand/v2's global generator is
// the runtime's ChaCha8 (C2SP chacha8rand), seeded from the system's entropy
// at start (runtime/rand.go, Go 1.26; WASI random_get in the wasm module), so
// the key is unpredictable without it. crypto/rand would add an import
// (fd_read, for its /dev/urandom fallback) that the module does not need.
func NewNarrowKey() ([NarrowKeySize]byte, error) {
	var k [NarrowKeySize]byte
	for i := 0; i < NarrowKeySize; i += 8 {
		v := rand.Uint64()
		for j := 0; j < 8; j++ {
			k[i+j] = byte(v >> (8 * j))
		}
	}
	return k, nil
}

// narrowMAC is a prepared fingerprint key; the engine keeps the last one it
// saw and prepares a new one only when the store's key changes.
type narrowMAC struct {
	raw [NarrowKeySize]byte
	mac *keyedMAC
}

// keyedMAC is HMAC-SHA-256 under one key, safe for concurrent use: each
// caller takes a prepared hash from the pool (hmac's Reset returns it to the
// state after the key, without hashing the key again).
type keyedMAC struct{ pool sync.Pool }

func newKeyedMAC(key []byte) *keyedMAC {
	k := append([]byte(nil), key...)
	m := &keyedMAC{}
	m.pool.New = func() any { return hmac.New(sha256.New, k) }
	return m
}

// sum64 is the first 8 bytes of the MAC of a followed by b.
func (m *keyedMAC) sum64(a, b string) uint64 {
	h := m.pool.Get().(hash.Hash)
	h.Reset()
	h.Write(unsafe.Slice(unsafe.StringData(a), len(a)))
	h.Write(unsafe.Slice(unsafe.StringData(b), len(b)))
	var buf [sha256.Size]byte
	s := h.Sum(buf[:0])
	m.pool.Put(h)
	return readU64(s[:8])
}

// Fingerprint is the fingerprint of one header value under key (exported for
// stores' tests and tools; the engine uses a prepared key).
func Fingerprint(key [NarrowKeySize]byte, name, value string) uint64 {
	return fingerprint(newKeyedMAC(key[:]), name+":", value)
}

func fingerprint(k *keyedMAC, prefix, value string) uint64 {
	return k.sum64(prefix, value)
}

// narrowKeyed returns the prepared key of the store.
func (e *Engine) narrowKeyed(ns NarrowStore) (*keyedMAC, error) {
	raw, err := ns.NarrowKey()
	if err != nil {
		return nil, err
	}
	if m := e.narrowKey.Load(); m != nil && m.raw == raw {
		return m.mac, nil
	}
	m := &narrowMAC{raw: raw, mac: newKeyedMAC(raw[:])}
	e.narrowKey.Store(m)
	return m.mac, nil
}

// narrowPrints fingerprints the candidate headers present in h into res's
// buffer. A header sent more than once is fingerprinted as its joined value
// (Headers.Get), on both sides alike; an empty value is skipped.
func (e *Engine) narrowPrints(ns NarrowStore, h Headers, res *Result) ([]uint64, error) {
	c := e.cfg
	var k *keyedMAC
	prints := res.prints[:0]
	for i, name := range c.narrowHeaders {
		v, n := h.Get(name)
		if n == 0 || v == "" {
			continue
		}
		if k == nil {
			var err error
			if k, err = e.narrowKeyed(ns); err != nil {
				return nil, err
			}
		}
		prints = append(prints, fingerprint(k, c.narrowPrefixes[i], v))
	}
	return prints, nil
}

// NarrowSet is the narrowed strategy's bookkeeping for stores that keep it
// in one value: up to MaxInFlightEntries requests with start time,
// fingerprints and record, plus an overflow count of requests that did not
// fit (while any is counted every lookup is ambiguous).
type NarrowSet struct {
	Entries  []NarrowEntry
	Overflow int
	// OverflowSince is when the overflow count last changed (unix nanos).
	OverflowSince int64
	// Sticky is set when an entry expired while requests overflowed: that
	// entry's late end would look like an overflowed request's, so ends of
	// unknown owners no longer lower the count, which then only heals by
	// the timeout (more lookups ambiguous, never a guess).
	Sticky bool
}

// NarrowEntry is one inbound request in flight.
type NarrowEntry struct {
	Owner   uint64
	Started int64 // unix nanoseconds
	// Prints holds the fingerprints, 8 bytes each, big-endian: decoding a
	// set then needs no allocation per entry (each costs about a
	// microsecond in the wasm module).
	Prints []byte
	Rec    []byte
}

// Print returns the i-th fingerprint.
func (e *NarrowEntry) Print(i int) uint64 { return readU64(e.Prints[8*i : 8*i+8]) }

// Enter adds a request (or counts an overflow). It copies prints and rec.
func (s *NarrowSet) Enter(owner uint64, rec []byte, prints []uint64, now int64) {
	if len(s.Entries) >= MaxInFlightEntries {
		s.Overflow++
		s.OverflowSince = now
		return
	}
	if len(prints) > MaxNarrowHeaders {
		prints = prints[:MaxNarrowHeaders]
	}
	b := make([]byte, 0, 8*len(prints)+len(rec))
	for _, p := range prints {
		b = appendU64(b, p, 8)
	}
	b = append(b, rec...)
	s.Entries = append(s.Entries, NarrowEntry{Owner: owner, Started: now,
		Prints: b[: 8*len(prints) : 8*len(prints)], Rec: b[8*len(prints):]})
}

// Leave removes an owner; an unknown owner is taken from the overflow.
func (s *NarrowSet) Leave(owner uint64, now int64) {
	for i := range s.Entries {
		if s.Entries[i].Owner == owner {
			s.Entries = append(s.Entries[:i], s.Entries[i+1:]...)
			return
		}
	}
	if s.Overflow > 0 && !s.Sticky {
		s.Overflow--
		s.OverflowSince = now
	}
}

// Expire forgets entries older than timeout, and an overflow count that has
// not moved for that long.
func (s *NarrowSet) Expire(now int64, timeout time.Duration) {
	cut := now - int64(timeout)
	kept := s.Entries[:0]
	for _, e := range s.Entries {
		if e.Started > cut {
			kept = append(kept, e)
		}
	}
	if len(kept) < len(s.Entries) && s.Overflow > 0 {
		s.Sticky = true
	}
	s.Entries = kept
	if s.Overflow > 0 && s.OverflowSince <= cut {
		s.Overflow = 0
	}
	if s.Overflow == 0 {
		s.Sticky = false
	}
}

// Match counts the entries sharing at least one fingerprint with prints and
// returns the record of the match when there is exactly one. While an
// overflow is counted the answer is at least 2: a request that did not fit
// may share the value.
func (s *NarrowSet) Match(prints []uint64) (matches int, rec []byte) {
	if len(prints) == 0 {
		return 0, nil
	}
	for i := range s.Entries {
		if sharesPrint(s.Entries[i].Prints, prints) {
			matches++
			rec = s.Entries[i].Rec
		}
	}
	if s.Overflow > 0 {
		return max(matches, 2), nil
	}
	if matches != 1 {
		rec = nil
	}
	return matches, rec
}

func sharesPrint(a []byte, b []uint64) bool {
	for ; len(a) >= 8; a = a[8:] {
		x := readU64(a[:8])
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

// AppendBinary encodes the set: [overflow u32][overflowSince i64][sticky u8]
// then per entry [owner u64][started i64][n u8][n × print u64][len u16][rec].
func (s *NarrowSet) AppendBinary(dst []byte) []byte {
	dst = appendU64(dst, uint64(s.Overflow), 4)
	dst = appendU64(dst, uint64(s.OverflowSince), 8)
	sticky := byte(0)
	if s.Sticky {
		sticky = 1
	}
	dst = append(dst, sticky)
	for _, e := range s.Entries {
		dst = appendU64(dst, e.Owner, 8)
		dst = appendU64(dst, uint64(e.Started), 8)
		np := min(len(e.Prints)/8, MaxNarrowHeaders)
		dst = append(dst, byte(np))
		dst = append(dst, e.Prints[:8*np]...)
		n := min(len(e.Rec), 0xffff)
		dst = appendU64(dst, uint64(n), 2)
		dst = append(dst, e.Rec[:n]...)
	}
	return dst
}

// DecodeNarrowSet reads what AppendBinary wrote; a truncated or corrupted
// value yields the entries read so far, never a panic. Prints and records
// alias b.
func DecodeNarrowSet(b []byte) NarrowSet {
	var s NarrowSet
	if len(b) < 13 {
		return s
	}
	s.Overflow = int(readU64(b[0:4]))
	s.OverflowSince = int64(readU64(b[4:12]))
	s.Sticky = b[12] != 0
	b = b[13:]
	for len(b) >= 17 && len(s.Entries) < MaxInFlightEntries {
		owner, started, np := readU64(b[0:8]), int64(readU64(b[8:16])), int(b[16])
		if np > MaxNarrowHeaders || len(b) < 17+8*np+2 {
			break
		}
		prints := b[17 : 17+8*np : 17+8*np]
		b = b[17+8*np:]
		n := int(readU64(b[0:2]))
		if len(b) < 2+n {
			break
		}
		s.Entries = append(s.Entries, NarrowEntry{Owner: owner, Started: started, Prints: prints, Rec: b[2 : 2+n]})
		b = b[2+n:]
	}
	return s
}

// narrowKeyCache is the engine's prepared key (atomic: the engine is used
// from many goroutines in ext_proc).
type narrowKeyCache = atomic.Pointer[narrowMAC]
