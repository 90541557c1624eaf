package engine

import (
	"hash/maphash"
	"sync"
	"time"
)

// MemoryStore is a bounded in-process Store: at most capacity records, each
// living ttl, and at most Budget bytes of keys and records (keys longer than
// MaxKeyBytes kept as their SHA-256 digest, records up to MaxRecordBytes).
// When either bound is reached the records written longest ago go first.
// Every operation is O(1) but for the evictions a Put makes room with (the
// in-flight set is bounded by MaxInFlightEntries) and safe for concurrent
// use.
//
// It sits on ext_proc's request path, so a Put costs no allocation once the
// slots have grown to the records' size: records live in slots that keep
// their key and record bytes in one reused buffer, found through an
// open-addressing table of slot numbers and ordered by a list of slot
// numbers (no map of strings for the GC to scan and no string kept per
// request), and the default clock is the monotonic one (one clock read, and
// wall-clock steps cannot expire or revive records).
type MemoryStore struct {
	mu     sync.Mutex
	ttl    time.Duration
	clock  func() int64 // nanoseconds; only differences matter
	seed   maphash.Seed
	hash   func(seed maphash.Seed, key string) uint64 // replaced in tests to force collisions
	table  []tableEntry                               // power-of-two size ≥ 2 × capacity: probes stay short
	slots  []memSlot
	oldest int32 // 1-based slot numbers of the list in write order; 0: none
	newest int32
	free   int32 // first unused slot, chained through next
	used   int
	bytes  int // sum of the slots' buffer capacities
	budget int

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
	buf        []byte // stored key bytes, then record bytes
	keyLen     int
	tag        uint32
	hashed     bool // the key bytes are a SHA-256 digest (StoredKey)
	used       bool
	prev, next int32 // write-order list (next also chains unused slots)
	expires    int64 // clock nanoseconds
}

// MemoryBudget is the byte budget of a MemoryStore of the given capacity:
// capacity × MemoryBytesPerRecord, and room for at least one record of the
// largest size.
func MemoryBudget(capacity int) int {
	return max(max(capacity, 1)*MemoryBytesPerRecord, MaxKeyBytes+MaxRecordBytes)
}

// NewMemoryStore makes a store; now may be nil (the monotonic clock).
func NewMemoryStore(capacity int, ttl time.Duration, now func() time.Time) *MemoryStore {
	if capacity < 1 {
		capacity = 1
	}
	s := &MemoryStore{ttl: ttl, seed: maphash.MakeSeed(), hash: maphash.String,
		slots: make([]memSlot, capacity), budget: MemoryBudget(capacity), inFlightTimeout: DefaultInFlightTimeout}
	for i := range s.slots {
		s.slots[i].next = int32(i + 2)
	}
	s.slots[capacity-1].next = 0
	s.free = 1
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

// Budget is the most bytes of keys and records the store keeps.
func (s *MemoryStore) Budget() int { return s.budget }

// Bytes is the capacity of the buffers holding keys and records now.
func (s *MemoryStore) Bytes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
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
func (s *MemoryStore) find(key string, hashed bool, tag uint32) (pos int, found bool) {
	mask := len(s.table) - 1
	for i := int(tag) & mask; ; i = (i + 1) & mask {
		e := s.table[i]
		if e.slot == 0 {
			return i, false
		}
		if e.tag == tag {
			sl := &s.slots[e.slot-1]
			if sl.hashed == hashed && string(sl.buf[:sl.keyLen]) == key {
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

// unlink takes slot n (1-based) out of the write-order list. mu is held.
func (s *MemoryStore) unlink(n int32) {
	sl := &s.slots[n-1]
	if sl.prev != 0 {
		s.slots[sl.prev-1].next = sl.next
	} else {
		s.oldest = sl.next
	}
	if sl.next != 0 {
		s.slots[sl.next-1].prev = sl.prev
	} else {
		s.newest = sl.prev
	}
	sl.prev, sl.next = 0, 0
}

// append makes slot n the newest of the write-order list. mu is held.
func (s *MemoryStore) append(n int32) {
	sl := &s.slots[n-1]
	sl.prev, sl.next = s.newest, 0
	if s.newest != 0 {
		s.slots[s.newest-1].next = n
	} else {
		s.oldest = n
	}
	s.newest = n
}

// evictOldest forgets the oldest record. keep keeps its buffer (the slot is
// reused at once; its bytes are counted again when written), else the buffer
// is released and the slot joins the unused ones. It returns the slot.
// mu is held.
func (s *MemoryStore) evictOldest(keep bool) int32 {
	n := s.oldest
	sl := &s.slots[n-1]
	s.remove(s.position(sl.tag, n))
	s.unlink(n)
	s.bytes -= cap(sl.buf)
	sl.used = false
	s.used--
	if !keep {
		sl.buf = nil
		sl.next = s.free
		s.free = n
	}
	return n
}

// write fills slot n, which is in use and out of the list, with key and rec
// as the newest record, first evicting the oldest records while the bytes
// would exceed the budget. mu is held.
func (s *MemoryStore) write(n int32, key string, hashed bool, rec []byte, exp int64) {
	sl := &s.slots[n-1]
	need := len(key) + len(rec)
	if cap(sl.buf) < need || cap(sl.buf) > 2*need+64 {
		sl.buf = nil // reallocated below to the size needed: a grown buffer does not outlive its record by much
	}
	size := max(cap(sl.buf), need)
	for s.bytes+size > s.budget && s.oldest != 0 {
		s.evictOldest(false)
	}
	if s.bytes+size > s.budget { // the list is empty: only a reused buffer's slack can be over
		sl.buf, size = nil, need
	}
	if sl.buf == nil {
		sl.buf = make([]byte, 0, need)
	}
	sl.buf = append(append(sl.buf[:0], key...), rec...)
	sl.keyLen, sl.hashed, sl.expires = len(key), hashed, exp
	s.bytes += cap(sl.buf)
	s.append(n)
}

func (s *MemoryStore) Put(key string, rec []byte) error {
	if len(rec) > MaxRecordBytes {
		return ErrRecordTooLarge
	}
	key, hashed := StoredKey(key)
	tag := uint32(s.hash(s.seed, key))
	s.mu.Lock()
	defer s.mu.Unlock()
	exp := s.clock() + int64(s.ttl)
	if pos, found := s.find(key, hashed, tag); found {
		n := s.table[pos].slot
		s.unlink(n)
		s.bytes -= cap(s.slots[n-1].buf)
		s.write(n, key, hashed, rec, exp)
		return nil
	}
	var n int32
	if s.free != 0 {
		n = s.free
		s.free = s.slots[n-1].next
	} else {
		n = s.evictOldest(true) // full: the oldest record's slot and buffer are reused
	}
	sl := &s.slots[n-1]
	sl.used, sl.tag = true, tag
	s.used++
	s.write(n, key, hashed, rec, exp)
	// Evictions may have shifted the position where key goes.
	pos, _ := s.find(key, hashed, tag)
	s.table[pos] = tableEntry{tag: tag, slot: n}
	return nil
}

func (s *MemoryStore) Get(dst []byte, key string) ([]byte, bool, error) {
	key, hashed := StoredKey(key)
	tag := uint32(s.hash(s.seed, key))
	s.mu.Lock()
	defer s.mu.Unlock()
	pos, found := s.find(key, hashed, tag)
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
