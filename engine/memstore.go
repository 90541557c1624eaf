package engine

import (
	"sync"
	"time"
)

// MemoryStore is a bounded in-process Store: at most capacity records, each
// living ttl; when full, the oldest record is overwritten. Every operation is
// O(1) (the in-flight set is bounded by MaxInFlightEntries) and safe for
// concurrent use.
type MemoryStore struct {
	mu    sync.Mutex
	ttl   time.Duration
	now   func() time.Time
	index map[string]int32 // key -> slot
	slots []memSlot
	next  int // ring position of the oldest slot

	inFlight        InFlightSet
	inFlightTimeout time.Duration
}

type memSlot struct {
	key     string
	rec     []byte
	expires int64 // unix nanoseconds
	used    bool
}

// NewMemoryStore makes a store; now may be nil (time.Now).
func NewMemoryStore(capacity int, ttl time.Duration, now func() time.Time) *MemoryStore {
	if capacity < 1 {
		capacity = 1
	}
	if now == nil {
		now = time.Now
	}
	return &MemoryStore{ttl: ttl, now: now, index: make(map[string]int32, capacity),
		slots: make([]memSlot, capacity), inFlightTimeout: DefaultInFlightTimeout}
}

// SetInFlightTimeout changes how long an unended request stays counted.
func (s *MemoryStore) SetInFlightTimeout(d time.Duration) {
	s.mu.Lock()
	s.inFlightTimeout = d
	s.mu.Unlock()
}

// Len is the number of slots in use (expired ones included until reused).
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.index)
}

func (s *MemoryStore) Put(key string, rec []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp := s.now().Add(s.ttl).UnixNano()
	if i, ok := s.index[key]; ok {
		sl := &s.slots[i]
		sl.rec = append(sl.rec[:0], rec...)
		sl.expires = exp
		return nil
	}
	i := s.next
	s.next = (s.next + 1) % len(s.slots)
	sl := &s.slots[i]
	if sl.used {
		delete(s.index, sl.key)
	}
	sl.key = key
	sl.rec = append(sl.rec[:0], rec...)
	sl.expires = exp
	sl.used = true
	s.index[key] = int32(i)
	return nil
}

func (s *MemoryStore) Get(dst []byte, key string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.index[key]
	if !ok {
		return dst, false, nil
	}
	sl := &s.slots[i]
	if s.now().UnixNano() >= sl.expires {
		return dst, false, nil
	}
	return append(dst, sl.rec...), true, nil
}

func (s *MemoryStore) Enter(owner uint64, rec []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UnixNano()
	s.inFlight.Expire(now, s.inFlightTimeout)
	s.inFlight.Enter(owner, rec, now)
	return nil
}

func (s *MemoryStore) Leave(owner uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight.Leave(owner, s.now().UnixNano())
	return nil
}

func (s *MemoryStore) Sole(dst []byte) (int, []byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight.Expire(s.now().UnixNano(), s.inFlightTimeout)
	n := s.inFlight.Count()
	if n != 1 || len(s.inFlight.Entries) != 1 || len(s.inFlight.Entries[0].Rec) == 0 {
		return n, dst, false, nil
	}
	return n, append(dst, s.inFlight.Entries[0].Rec...), true, nil
}
