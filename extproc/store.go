package extproc

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tracebridge/tracebridge/engine"
)

// StoreProvider hands the engine a correlation store for each compiled
// policy, so a reload that keeps the store's shape keeps its records.
type StoreProvider interface {
	// StoreFor returns the store to use with cfg (TTL and capacity come from
	// cfg.TTL and cfg.Capacity).
	StoreFor(cfg *engine.Config) engine.Store
	// Close releases the provider's resources.
	Close() error
}

// MemoryStores provides engine.MemoryStore instances: the same one as long as
// the policy's TTL and capacity do not change, a fresh one when they do
// (streams opened before the reload finish on the old one). Either way the
// store gets the policy's correlation.inFlightTimeout.
type MemoryStores struct {
	// Now is the stores' clock (nil: the monotonic clock).
	Now func() time.Time

	mu       sync.Mutex
	cur      *engine.MemoryStore
	ttl      time.Duration
	capacity int
}

// StoreFor implements StoreProvider.
func (p *MemoryStores) StoreFor(cfg *engine.Config) engine.Store {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil || p.ttl != cfg.TTL || p.capacity != cfg.Capacity {
		p.cur = engine.NewMemoryStore(cfg.Capacity, cfg.TTL, p.Now)
		p.ttl, p.capacity = cfg.TTL, cfg.Capacity
	}
	if cfg.InFlightTimeout > 0 {
		p.cur.SetInFlightTimeout(cfg.InFlightTimeout)
	}
	return p.cur
}

// Close implements StoreProvider.
func (p *MemoryStores) Close() error { return nil }

// countingStore counts and logs (rate-limited) the errors of the store it
// wraps; the engine itself fails open on them.
type countingStore struct {
	s   engine.Store
	m   *Metrics
	log *rateLimitedLog
}

func (c *countingStore) fail(op string, err error) {
	c.m.storeErrors.WithLabelValues(op).Inc()
	c.log.Warn("correlation store error; request continues unchanged", "op", op, "err", err.Error())
}

func (c *countingStore) Put(key string, rec []byte) error {
	err := c.s.Put(key, rec)
	if err != nil {
		c.fail("put", err)
	}
	return err
}

func (c *countingStore) Get(dst []byte, key string) ([]byte, bool, error) {
	rec, ok, err := c.s.Get(dst, key)
	if err != nil {
		c.fail("get", err)
	}
	return rec, ok, err
}

func (c *countingStore) Enter(owner uint64, rec []byte) error {
	err := c.s.Enter(owner, rec)
	if err != nil {
		c.fail("enter", err)
	}
	return err
}

func (c *countingStore) Leave(owner uint64) error {
	err := c.s.Leave(owner)
	if err != nil {
		c.fail("leave", err)
	}
	return err
}

func (c *countingStore) Sole(dst []byte) (int, []byte, bool, error) {
	n, rec, ok, err := c.s.Sole(dst)
	if err != nil {
		c.fail("sole", err)
	}
	return n, rec, ok, err
}

// rateLimitedLog writes at most one record per interval; the next record
// written says how many were suppressed in between.
type rateLimitedLog struct {
	log        *slog.Logger
	interval   time.Duration
	next       atomic.Int64 // unix nanoseconds before which records are suppressed
	suppressed atomic.Int64
}

func newRateLimitedLog(l *slog.Logger, interval time.Duration) *rateLimitedLog {
	return &rateLimitedLog{log: l, interval: interval}
}

// Warn logs msg unless a record was written less than interval ago.
func (r *rateLimitedLog) Warn(msg string, args ...any) {
	now := time.Now().UnixNano()
	next := r.next.Load()
	if now < next || !r.next.CompareAndSwap(next, now+int64(r.interval)) {
		r.suppressed.Add(1)
		return
	}
	if n := r.suppressed.Swap(0); n > 0 {
		args = append(args, "suppressed", n)
	}
	r.log.Warn(msg, args...)
}
