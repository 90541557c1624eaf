package engine

// memNarrow is MemoryStore's part of the narrowed strategy: its in-flight
// set (under the store's in-flight lock, with the same bound and timeout as
// the sole-in-flight set) and the fingerprint key, drawn at first use and
// private to the process.
type memNarrow struct {
	set    NarrowSet
	key    [NarrowKeySize]byte
	keySet bool
}

// NarrowKey implements NarrowStore.
func (s *MemoryStore) NarrowKey() ([NarrowKeySize]byte, error) {
	s.ifMu.Lock()
	defer s.ifMu.Unlock()
	if !s.narrow.keySet {
		k, err := NewNarrowKey()
		if err != nil {
			return k, err
		}
		s.narrow.key, s.narrow.keySet = k, true
	}
	return s.narrow.key, nil
}

// EnterNarrow implements NarrowStore.
func (s *MemoryStore) EnterNarrow(owner uint64, rec []byte, prints []uint64) error {
	s.ifMu.Lock()
	defer s.ifMu.Unlock()
	now := s.clock()
	s.narrow.set.Expire(now, s.inFlightTimeout)
	s.narrow.set.Enter(owner, rec, prints, now)
	return nil
}

// LeaveNarrow implements NarrowStore.
func (s *MemoryStore) LeaveNarrow(owner uint64) error {
	s.ifMu.Lock()
	defer s.ifMu.Unlock()
	s.narrow.set.Leave(owner, s.clock())
	return nil
}

// Narrow implements NarrowStore.
func (s *MemoryStore) Narrow(dst []byte, prints []uint64) (int, []byte, bool, error) {
	s.ifMu.Lock()
	defer s.ifMu.Unlock()
	s.narrow.set.Expire(s.clock(), s.inFlightTimeout)
	n, rec := s.narrow.set.Match(prints)
	if n != 1 || len(rec) == 0 {
		return n, dst, false, nil
	}
	return n, append(dst, rec...), true, nil
}
