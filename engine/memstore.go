package engine

import (
	"hash/maphash"
	"sync"
	"time"
)

// MemoryStore is a bounded in-process Store: at most capacity records, each
// living ttl; when full, the oldest record is overwritten. Every operation is
// O(1) (the in-flight set is bounded by MaxInFlightEntries) and safe for
// concurrent use.
//
// It sits on ext_proc's request path, so a Put costs no allocation once the
// slots have grown to the records' size: records live in a ring of slots
// that keep their key and record bytes in one reused buffer, found through
// an open-addressing table of slot numbers (no map of strings for the GC to
// scan and no string kept per request), and the default clock is the
// monotonic one (one clock read, and wall-clock steps cannot expire or
// revive records).
type MemoryStore struct {
	mu    sync.Mutex
	ttl   time.Duration
	clock func() int64 // nanoseconds; only differences matter
	seed  maphash.Seed
	hash  func(seed maphash.Seed, key string) uint64 // replaced in tests to force collisions
	table []tableEntry                               // power-of-two size ≥ 2 × capacity: probes stay short
	slots []memSlot
	next  int // ring position of the oldest slot
	used  int

	ifMu            sync.Mutex // the in-flight set has its own lock: Enter/Leave do not wait for Put/Get
	inFlight        InFlightSet
	inFlightTimeout time.Duration
	narrow          memNarrow // the narrowed strategy's set, under ifMu (memstore_narrow.go)
}

// tableEntry points at a slot; slot 0 means empty (slot numbers are 1-based
// here). tag is the low half of the key's hash: it places the entry and
// rules out most mismatches before the key bytes are compared.
type tableEntry struct {
	tag  uint32
	slot int32
}

type memSlot struct {
	buf     []byte // key bytes, then record bytes
	keyLen  int
	tag     uint32
	expires int64 // clock nanoseconds
	used    bool
}

// NewMemoryStore makes a store; now may be nil (the monotonic clock).
func NewMemoryStore(capacity int, ttl time.Duration, now func() time.Time) *MemoryStore {
	if capacity < 1 {
		capacity = 1
	}
	s := &MemoryStore{ttl: ttl, seed: maphash.MakeSeed(), hash: maphash.String,
		slots: make([]memSlot, capacity), inFlightTimeout: DefaultInFlightTimeout}
	size := 2
	for size < 2*capacity {
		size <<= 1
	}
	s.table = make([]tableEntry, size)
	if now == nil {
		base := time.Now()
		s.clock = func() int64 { return int64(time.Since(base)) } // reads only the monotonic clock
	} else {
		s.clock = func() int64 { return now().UnixNano() }
	}
	return s
}

// SetInFlightTimeout changes how long an unended request stays counted.
func (s *MemoryStore) SetInFlightTimeout(d time.Duration) {
	s.ifMu.Lock()
	s.inFlightTimeout = d
	s.ifMu.Unlock()
}

// Len is the number of slots in use (expired ones included until reused).
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

// find returns the table position holding key, or the empty position where
// it would go (found false). mu is held.
func (s *MemoryStore) find(key string, tag uint32) (pos int, found bool) {
	mask := len(s.table) - 1
	for i := int(tag) & mask; ; i = (i + 1) & mask {
		e := s.table[i]
		if e.slot == 0 {
			return i, false
		}
		if e.tag == tag {
			sl := &s.slots[e.slot-1]
			if string(sl.buf[:sl.keyLen]) == key {
				return i, true
			}
		}
	}
}

// position returns the table position that points at slot (1-based),
// which is in use. mu is held.
func (s *MemoryStore) position(tag uint32, slot int32) int {
	mask := len(s.table) - 1
	i := int(tag) & mask
	for s.table[i].slot != slot {
		i = (i + 1) & mask
	}
	return i
}

// remove empties a table position and shifts back the entries after it
// that could not sit in their home position (linear probing without
// tombstones: Knuth, TAOCP vol. 3, 6.4, Algorithm R). mu is held.
func (s *MemoryStore) remove(i int) {
	mask := len(s.table) - 1
	for j := (i + 1) & mask; s.table[j].slot != 0; j = (j + 1) & mask {
		home := int(s.table[j].tag) & mask
		// The entry at j may fill the hole at i unless its home lies
		// cyclically in (i, j].
		if i <= j && (home <= i || home > j) || i > j && home <= i && home > j {
			s.table[i] = s.table[j]
			i = j
		}
	}
	s.table[i] = tableEntry{}
}

func (s *MemoryStore) Put(key string, rec []byte) error {
	tag := uint32(s.hash(s.seed, key))
	s.mu.Lock()
	defer s.mu.Unlock()
	exp := s.clock() + int64(s.ttl)
	pos, found := s.find(key, tag)
	if found {
		sl := &s.slots[s.table[pos].slot-1]
		sl.buf = append(sl.buf[:sl.keyLen], rec...)
		sl.expires = exp
		return nil
	}
	i := s.next
	s.next = (s.next + 1) % len(s.slots)
	sl := &s.slots[i]
	if sl.used {
		s.remove(s.position(sl.tag, int32(i+1)))
		// The removal may have shifted the position where key goes.
		pos, _ = s.find(key, tag)
	} else {
		s.used++
	}
	sl.buf = append(append(sl.buf[:0], key...), rec...)
	sl.keyLen, sl.tag, sl.expires, sl.used = len(key), tag, exp, true
	s.table[pos] = tableEntry{tag: tag, slot: int32(i + 1)}
	return nil
}

func (s *MemoryStore) Get(dst []byte, key string) ([]byte, bool, error) {
	tag := uint32(s.hash(s.seed, key))
	s.mu.Lock()
	defer s.mu.Unlock()
	pos, found := s.find(key, tag)
	if !found {
		return dst, false, nil
	}
	sl := &s.slots[s.table[pos].slot-1]
	if s.clock() >= sl.expires {
		return dst, false, nil
	}
	return append(dst, sl.buf[sl.keyLen:]...), true, nil
}

func (s *MemoryStore) Enter(owner uint64, rec []byte) error {
	s.ifMu.Lock()
	defer s.ifMu.Unlock()
	now := s.clock()
	s.inFlight.Expire(now, s.inFlightTimeout)
	s.inFlight.Enter(owner, rec, now)
	return nil
}

func (s *MemoryStore) Leave(owner uint64) error {
	s.ifMu.Lock()
	defer s.ifMu.Unlock()
	s.inFlight.Leave(owner, s.clock())
	return nil
}

func (s *MemoryStore) Sole(dst []byte) (int, []byte, bool, error) {
	s.ifMu.Lock()
	defer s.ifMu.Unlock()
	s.inFlight.Expire(s.clock(), s.inFlightTimeout)
	n := s.inFlight.Count()
	if n != 1 || len(s.inFlight.Entries) != 1 || len(s.inFlight.Entries[0].Rec) == 0 {
		return n, dst, false, nil
	}
	return n, append(dst, s.inFlight.Entries[0].Rec...), true, nil
}
