package engine

import (
	"crypto/sha256"
	"errors"
	"time"
	"unsafe"
)

// Store keeps correlation records: an inbound request's trace headers, keyed
// by a header the app forwards (x-request-id), and the set of inbound
// requests in flight (sole-in-flight strategy). Implementations: MemoryStore
// here, proxy-wasm shared data in the wasm filter, Redis in the ext_proc
// service. Errors make the engine fail open.
type Store interface {
	// Put stores rec under key until the store's TTL passes. The store copies
	// both; the caller reuses them (key may alias a buffer the engine
	// rewrites for the next request).
	Put(key string, rec []byte) error
	// Get appends the record stored under key to dst. It keeps no reference
	// to key after returning.
	Get(dst []byte, key string) (rec []byte, found bool, err error)
	// Enter counts an inbound request as in flight, with its record (which may
	// be empty). owner is unique per stream and never zero.
	Enter(owner uint64, rec []byte) error
	// Leave ends what Enter started; unknown owners are ignored.
	Leave(owner uint64) error
	// Sole reports how many inbound requests are in flight and, when exactly
	// one is, appends its record to dst (ok false when it has none).
	Sole(dst []byte) (inFlight int, rec []byte, ok bool, err error)
}

// Byte bounds shared by every store, so that what a store holds is a number
// the docs state whatever the requests carry.
const (
	// MaxKeyBytes is the longest key a store keeps as it is; longer keys
	// (a client chooses its x-request-id) are kept as their SHA-256 digest,
	// which no other key can be made to match.
	MaxKeyBytes = 64
	// MaxRecordBytes bounds a record: stores refuse longer ones, and the
	// engine builds none (restore headers that would not fit are left out).
	MaxRecordBytes = 16 << 10
	// MemoryBytesPerRecord is the memory store's byte budget per record of
	// capacity: keys and records together stay within capacity × this (and
	// at least one largest record); past it the oldest records go first.
	MemoryBytesPerRecord = 1 << 10
)

// ErrRecordTooLarge is returned by a store asked to keep a record longer
// than MaxRecordBytes.
var ErrRecordTooLarge = errors.New("correlation record longer than engine.MaxRecordBytes")

// StoredKey returns the form of key a store keeps: key itself when it is at
// most MaxKeyBytes long, else its SHA-256 digest with hashed true. A store
// must keep hashed beside the key: a short key may have the digest's bytes.
func StoredKey(key string) (stored string, hashed bool) {
	if len(key) <= MaxKeyBytes {
		return key, false
	}
	d := sha256.Sum256(unsafe.Slice(unsafe.StringData(key), len(key)))
	return string(d[:]), true
}

// DefaultInFlightTimeout bounds how long a request stays counted in flight
// when its end is never seen (a host that lost the stream-done callback):
// after it, the entry is forgotten so the count heals.
const DefaultInFlightTimeout = 5 * time.Minute

// InFlightSet is the sole-in-flight bookkeeping shared by stores that keep it
// in one value: up to MaxInFlightEntries owners with their start time and
// record, plus an overflow count of requests that did not fit (while any
// overflow is counted the answer is "two or more", so nothing is guessed).
type InFlightSet struct {
	Entries  []InFlightEntry
	Overflow int
	// OverflowSince is when the overflow count last changed (unix nanos).
	OverflowSince int64
}

// InFlightEntry is one request in flight.
type InFlightEntry struct {
	Owner   uint64
	Started int64 // unix nanoseconds
	Rec     []byte
}

// MaxInFlightEntries bounds the set; beyond it only a count is kept.
const MaxInFlightEntries = 64

// Enter adds an owner (or counts an overflow).
func (s *InFlightSet) Enter(owner uint64, rec []byte, now int64) {
	if len(rec) > MaxRecordBytes {
		rec = nil // counted without a record: the set stays within its byte bound
	}
	if len(s.Entries) >= MaxInFlightEntries {
		s.Overflow++
		s.OverflowSince = now
		return
	}
	s.Entries = append(s.Entries, InFlightEntry{Owner: owner, Started: now, Rec: append([]byte(nil), rec...)})
}

// Leave removes an owner; an unknown owner is taken from the overflow.
func (s *InFlightSet) Leave(owner uint64, now int64) {
	for i := range s.Entries {
		if s.Entries[i].Owner == owner {
			s.Entries = append(s.Entries[:i], s.Entries[i+1:]...)
			return
		}
	}
	if s.Overflow > 0 {
		s.Overflow--
		s.OverflowSince = now
	}
}

// Expire forgets entries older than timeout, and an overflow count that has
// not moved for that long.
func (s *InFlightSet) Expire(now int64, timeout time.Duration) {
	cut := now - int64(timeout)
	kept := s.Entries[:0]
	for _, e := range s.Entries {
		if e.Started > cut {
			kept = append(kept, e)
		}
	}
	s.Entries = kept
	if s.Overflow > 0 && s.OverflowSince <= cut {
		s.Overflow = 0
	}
}

// Count is the number of requests in flight.
func (s *InFlightSet) Count() int { return len(s.Entries) + s.Overflow }

// AppendBinary encodes the set: [overflow u32][overflowSince i64] then per
// entry [owner u64][started i64][len u16][rec].
func (s *InFlightSet) AppendBinary(dst []byte) []byte {
	dst = appendU64(dst, uint64(s.Overflow), 4)
	dst = appendU64(dst, uint64(s.OverflowSince), 8)
	for _, e := range s.Entries {
		dst = appendU64(dst, e.Owner, 8)
		dst = appendU64(dst, uint64(e.Started), 8)
		n := min(len(e.Rec), 0xffff)
		dst = appendU64(dst, uint64(n), 2)
		dst = append(dst, e.Rec[:n]...)
	}
	return dst
}

// DecodeInFlightSet reads what AppendBinary wrote; a truncated or corrupted
// value yields the entries read so far, never a panic.
func DecodeInFlightSet(b []byte) InFlightSet {
	var s InFlightSet
	if len(b) < 12 {
		return s
	}
	s.Overflow = int(readU64(b[0:4]))
	s.OverflowSince = int64(readU64(b[4:12]))
	b = b[12:]
	for len(b) >= 18 && len(s.Entries) < MaxInFlightEntries {
		owner, started, n := readU64(b[0:8]), int64(readU64(b[8:16])), int(readU64(b[16:18]))
		if len(b) < 18+n {
			break
		}
		s.Entries = append(s.Entries, InFlightEntry{Owner: owner, Started: started, Rec: b[18 : 18+n]})
		b = b[18+n:]
	}
	return s
}

func appendU64(dst []byte, v uint64, size int) []byte {
	for i := size - 1; i >= 0; i-- {
		dst = append(dst, byte(v>>(8*i)))
	}
	return dst
}

func readU64(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}
