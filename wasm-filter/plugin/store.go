package plugin

import (
	"encoding/binary"
	"errors"
	"strconv"
	"time"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/tracebridge/tracebridge/engine"
)

// Shared-data keys. Istio's WasmPlugin sets no vm_id, so every plugin with an
// empty vm_id in the proxy shares one map (docs/ENVOY.md §4, proxy-wasm-cpp-host
// src/shared_data.cc): every key carries the tracebridge/ prefix.
const (
	slotKeyPrefix = "tracebridge/c/"
	inFlightKey   = "tracebridge/inflight"
	// casAttempts bounds compare-and-swap retries: workers on other threads
	// may win the race a few times in a row; past that the store fails open.
	casAttempts = 16
)

// errContention is returned when CAS retries run out.
var errContention = errors.New("shared data: compare-and-swap retries exhausted")

// errNoInFlightSet is returned when the in-flight set was never created.
var errNoInFlightSet = errors.New("shared data: in-flight set missing")

// now is the plugin's clock (store TTLs, debug-token expiry). In the module
// it is WASI clock_time_get; tests replace it with SetClock.
var now = time.Now

// SetClock replaces the plugin's clock (tests only; nil restores time.Now).
func SetClock(f func() time.Time) {
	if f == nil {
		f = time.Now
	}
	now = f
}

// sharedStore is engine.Store over proxy-wasm shared data. Shared data has no
// delete, so the key space is bounded by a fixed number of slots: a record
// lives in one of two slots chosen by a hash of its key (two choices keep
// collisions between live records rare), each slot holding expiry, key (as
// engine.StoredKey keeps it: at most engine.MaxKeyBytes, longer keys as
// their SHA-256) and record (at most engine.MaxRecordBytes), so a slot's
// value has at most 10 + 64 + 16,384 bytes; a Put takes the first candidate when it holds the key or is empty
// or expired, else the second when it holds the key or is free, else the one
// that expires first (the oldest). The in-flight
// set is one value updated by compare-and-swap.
type sharedStore struct {
	slots           uint64
	ttl             time.Duration
	inFlightTimeout time.Duration
	keyBuf          []byte
	valBuf          []byte
}

func newSharedStore(cfg *engine.Config) *sharedStore {
	return &sharedStore{slots: uint64(cfg.Capacity), ttl: cfg.TTL, inFlightTimeout: cfg.InFlightTimeout}
}

// slotKey returns the shared-data key of slot i. The string aliases keyBuf
// and is valid until the next slotKey call: the host copies keys it keeps.
func (s *sharedStore) slotKey(i uint64) string {
	s.keyBuf = append(s.keyBuf[:0], slotKeyPrefix...)
	s.keyBuf = strconv.AppendUint(s.keyBuf, i, 10)
	return bytesString(s.keyBuf)
}

// candidates returns the two slots a stored key may live in, from its 64-bit
// FNV-1a hash (written out: hash/fnv's interface allocates per call). A
// client can steer its keys into chosen slots, which only evicts records
// sooner: a record is found only under its exact stored key.
func (s *sharedStore) candidates(key string) [2]uint64 {
	const offset64, prime64 = 14695981039346656037, 1099511628211
	v := uint64(offset64)
	for i := 0; i < len(key); i++ {
		v ^= uint64(key[i])
		v *= prime64
	}
	a, b := v%s.slots, (v>>32^v*0x9e3779b97f4a7c15)%s.slots
	return [2]uint64{a, b}
}

// slot layout: [expires unix-nanos u64][key length u16, top bit: the key is
// a SHA-256 digest][key][record].
const hashedKeyFlag = 0x8000

func decodeSlot(v []byte) (expires int64, key []byte, hashed bool, rec []byte, ok bool) {
	if len(v) < 10 {
		return 0, nil, false, nil, false
	}
	expires = int64(binary.BigEndian.Uint64(v))
	kl := int(binary.BigEndian.Uint16(v[8:]))
	hashed = kl&hashedKeyFlag != 0
	kl &^= hashedKeyFlag
	if len(v) < 10+kl {
		return 0, nil, false, nil, false
	}
	return expires, v[10 : 10+kl], hashed, v[10+kl:], true
}

func getShared(key string) ([]byte, uint32, error) {
	v, cas, err := getSharedData(key)
	if errors.Is(err, types.ErrorStatusNotFound) {
		return nil, 0, nil
	}
	return v, cas, err
}

func (s *sharedStore) Put(key string, rec []byte) error {
	if len(rec) > engine.MaxRecordBytes {
		return engine.ErrRecordTooLarge
	}
	key, hashed := engine.StoredKey(key)
	t := now().UnixNano()
	exp := t + int64(s.ttl)
	for attempt := 0; attempt < casAttempts; attempt++ {
		var (
			bestSlot   uint64
			bestCas    uint32
			bestExpiry int64 = 1<<63 - 1
			chosen     bool
		)
		for _, i := range s.candidates(key) {
			v, cas, err := getShared(s.slotKey(i))
			if err != nil {
				return err
			}
			e, k, h, _, ok := decodeSlot(v)
			switch {
			case ok && h == hashed && string(k) == key:
				bestSlot, bestCas, bestExpiry, chosen = i, cas, -1, true
			case !ok || e <= t:
				if bestExpiry > 0 {
					bestSlot, bestCas, bestExpiry = i, cas, 0
				}
			case e < bestExpiry:
				bestSlot, bestCas, bestExpiry = i, cas, e
			}
			// The key's own slot, or a free one, ends the search: Get reads
			// the candidates in the same order, so the first candidate's
			// record is always the newest (one shared-data read saved).
			if chosen || bestExpiry == 0 {
				break
			}
		}
		val := binary.BigEndian.AppendUint64(s.valBuf[:0], uint64(exp))
		kl := uint16(len(key))
		if hashed {
			kl |= hashedKeyFlag
		}
		val = binary.BigEndian.AppendUint16(val, kl)
		val = append(val, key...)
		val = append(val, rec...)
		s.valBuf = val
		err := setSharedData(s.slotKey(bestSlot), val, bestCas)
		if err == nil {
			return nil
		}
		if !errors.Is(err, types.ErrorStatusCasMismatch) {
			return err
		}
	}
	return errContention
}

func (s *sharedStore) Get(dst []byte, key string) ([]byte, bool, error) {
	key, hashed := engine.StoredKey(key)
	t := now().UnixNano()
	for _, i := range s.candidates(key) {
		v, _, err := getShared(s.slotKey(i))
		if err != nil {
			return dst, false, err
		}
		if e, k, h, rec, ok := decodeSlot(v); ok && h == hashed && string(k) == key && e > t {
			return append(dst, rec...), true, nil
		}
	}
	return dst, false, nil
}

// initInFlight creates the in-flight set when the proxy has none yet. It runs
// at plugin start, before the plugin sees requests: proxy-wasm has no
// create-if-absent, and a set written with cas 0 on the request path could
// overwrite another worker's concurrent first entry (cpp-host
// src/shared_data.cc: cas 0 means unconditional), losing a request from the
// count and letting sole-in-flight guess wrong. Later plugin instances
// (config updates, new workers) find the set and leave it alone.
func (s *sharedStore) initInFlight() error {
	v, _, err := proxywasm.GetSharedData(inFlightKey)
	if err == nil && len(v) > 0 {
		return nil
	}
	if err != nil && !errors.Is(err, types.ErrorStatusNotFound) {
		return err
	}
	var empty engine.InFlightSet
	return proxywasm.SetSharedData(inFlightKey, empty.AppendBinary(nil), 0)
}

// updateInFlight applies fn to the in-flight set under compare-and-swap.
func (s *sharedStore) updateInFlight(fn func(set *engine.InFlightSet, t int64)) error {
	for attempt := 0; attempt < casAttempts; attempt++ {
		v, cas, err := getShared(inFlightKey)
		if err != nil {
			return err
		}
		if cas == 0 {
			// No set: plugin start did not create it (or the host lost it).
			// Writing one here could drop a concurrent entry; refuse, and
			// the engine fails open (no sole-in-flight restore).
			return errNoInFlightSet
		}
		t := now().UnixNano()
		set := engine.DecodeInFlightSet(v)
		set.Expire(t, s.inFlightTimeout)
		fn(&set, t)
		s.valBuf = set.AppendBinary(s.valBuf[:0])
		err = setSharedData(inFlightKey, s.valBuf, cas)
		if err == nil {
			return nil
		}
		if !errors.Is(err, types.ErrorStatusCasMismatch) {
			return err
		}
	}
	return errContention
}

func (s *sharedStore) Enter(owner uint64, rec []byte) error {
	return s.updateInFlight(func(set *engine.InFlightSet, t int64) { set.Enter(owner, rec, t) })
}

func (s *sharedStore) Leave(owner uint64) error {
	return s.updateInFlight(func(set *engine.InFlightSet, t int64) { set.Leave(owner, t) })
}

func (s *sharedStore) Sole(dst []byte) (int, []byte, bool, error) {
	v, _, err := getShared(inFlightKey)
	if err != nil {
		return 0, dst, false, err
	}
	set := engine.DecodeInFlightSet(v)
	set.Expire(now().UnixNano(), s.inFlightTimeout)
	n := set.Count()
	if n != 1 || len(set.Entries) != 1 || len(set.Entries[0].Rec) == 0 {
		return n, dst, false, nil
	}
	return n, append(dst, set.Entries[0].Rec...), true, nil
}
