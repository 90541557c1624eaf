package plugin

import (
	"errors"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/tracebridge/tracebridge/engine"
)

// The narrowed strategy in shared data. Shared data is one map for every VM
// of the proxy (all workers, both directions; proxy-wasm-cpp-host
// src/shared_data.cc), so the fingerprint key must be one value there too: a
// fingerprint written by the inbound listener's VM on one worker is compared
// by the outbound listener's VM on another.
//
// Proxy-wasm has no create-if-absent (a set with cas 0, or with any cas on a
// missing key, writes unconditionally: src/shared_data.cc), so two VMs
// starting at once may both write a key; the later write wins. Every lookup
// therefore reads the key from shared data rather than a copy taken at start:
// after the race all VMs use the surviving key, and fingerprints made with
// the lost one simply match nothing (a miss, never a wrong restore).
const (
	narrowKeyKey = "tracebridge/narrow/key"
	narrowSetKey = "tracebridge/narrow/inflight"
)

var errNoNarrowKey = errors.New("shared data: fingerprint key missing")

// initNarrow creates the fingerprint key and the narrowed in-flight set when
// the proxy has none yet (at plugin start, like initInFlight).
func (s *sharedStore) initNarrow() error {
	v, _, err := getShared(narrowKeyKey)
	if err != nil {
		return err
	}
	if len(v) != engine.NarrowKeySize {
		k, err := engine.NewNarrowKey()
		if err != nil {
			return err
		}
		if err := setSharedData(narrowKeyKey, k[:], 0); err != nil {
			return err
		}
	}
	v, _, err = getShared(narrowSetKey)
	if err != nil || len(v) > 0 {
		return err
	}
	var empty engine.NarrowSet
	return setSharedData(narrowSetKey, empty.AppendBinary(nil), 0)
}

// NarrowKey implements engine.NarrowStore.
func (s *sharedStore) NarrowKey() (k [engine.NarrowKeySize]byte, err error) {
	v, _, err := getShared(narrowKeyKey)
	if err != nil {
		return k, err
	}
	if len(v) != engine.NarrowKeySize {
		return k, errNoNarrowKey
	}
	copy(k[:], v)
	return k, nil
}

// updateNarrow applies fn to the narrowed set under compare-and-swap.
func (s *sharedStore) updateNarrow(fn func(set *engine.NarrowSet, t int64)) error {
	for attempt := 0; attempt < casAttempts; attempt++ {
		v, cas, err := getShared(narrowSetKey)
		if err != nil {
			return err
		}
		if cas == 0 {
			return errNoInFlightSet // see updateInFlight
		}
		t := now().UnixNano()
		set := engine.DecodeNarrowSet(v)
		set.Expire(t, s.inFlightTimeout)
		fn(&set, t)
		s.valBuf = set.AppendBinary(s.valBuf[:0])
		err = setSharedData(narrowSetKey, s.valBuf, cas)
		if err == nil {
			return nil
		}
		if !errors.Is(err, types.ErrorStatusCasMismatch) {
			return err
		}
	}
	return errContention
}

// EnterNarrow implements engine.NarrowStore.
func (s *sharedStore) EnterNarrow(owner uint64, rec []byte, prints []uint64) error {
	return s.updateNarrow(func(set *engine.NarrowSet, t int64) { set.Enter(owner, rec, prints, t) })
}

// LeaveNarrow implements engine.NarrowStore.
func (s *sharedStore) LeaveNarrow(owner uint64) error {
	return s.updateNarrow(func(set *engine.NarrowSet, t int64) { set.Leave(owner, t) })
}

// Narrow implements engine.NarrowStore.
func (s *sharedStore) Narrow(dst []byte, prints []uint64) (int, []byte, bool, error) {
	v, _, err := getShared(narrowSetKey)
	if err != nil {
		return 0, dst, false, err
	}
	set := engine.DecodeNarrowSet(v)
	set.Expire(now().UnixNano(), s.inFlightTimeout)
	n, rec := set.Match(prints)
	if n != 1 || len(rec) == 0 {
		return n, dst, false, nil
	}
	return n, append(dst, rec...), true, nil
}
