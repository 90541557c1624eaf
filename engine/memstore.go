package engine

import (
	"sync"
	"time"
)

// MemoryStore is a bounded in-process Store: at most capacity records, each
// living ttl; when full, the oldest record is overwritten. Every operation is
// O(1) and safe for concurrent use.
type MemoryStore struct {
	mu    sync.Mutex
	ttl   time.Duration
	now   func() time.Time
	index map[string]int32 // key -> slot
	slots []memSlot
	next  int // ring position of the oldest slot

	inFlight  int64
	soleOwner uint64
	sole      []byte
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
	return &MemoryStore{ttl: ttl, now: now, index: make(map[string]int32, capacity), slots: make([]memSlot, capacity)}
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

func (s *MemoryStore) AddInFlight(delta int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight += delta
	if s.inFlight < 0 {
		s.inFlight = 0
	}
	return s.inFlight, nil
}

func (s *MemoryStore) PutSole(owner uint64, rec []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.soleOwner = owner
	s.sole = append(s.sole[:0], rec...)
	return nil
}

func (s *MemoryStore) Sole(dst []byte) (uint64, []byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.soleOwner == 0 {
		return 0, dst, false, nil
	}
	return s.soleOwner, append(dst, s.sole...), true, nil
}

func (s *MemoryStore) ClearSole(owner uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.soleOwner == owner {
		s.soleOwner = 0
		s.sole = s.sole[:0]
	}
	return nil
}
