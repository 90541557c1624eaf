package engine

// Store keeps correlation records: an inbound request's trace headers, keyed
// by a header the app forwards (x-request-id), and the sole-in-flight state.
// Implementations: MemoryStore here, proxy-wasm shared data in the wasm
// filter, Redis in the ext_proc service. Errors make the engine fail open.
type Store interface {
	// Put stores rec under key until the store's TTL passes. The store copies
	// both; the caller reuses them.
	Put(key string, rec []byte) error
	// Get appends the record stored under key to dst.
	Get(dst []byte, key string) (rec []byte, found bool, err error)
	// AddInFlight adds delta to the count of inbound requests in flight and
	// returns the new count (delta 0 reads it).
	AddInFlight(delta int64) (int64, error)
	// PutSole stores the record of the newest inbound request and its owner.
	PutSole(owner uint64, rec []byte) error
	// Sole appends the sole record to dst; ok is false when none is held.
	Sole(dst []byte) (owner uint64, rec []byte, ok bool, err error)
	// ClearSole forgets the sole record if owner still holds it.
	ClearSole(owner uint64) error
}
