package extproc

import (
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/tracebridge/tracebridge/engine"
)

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

// The narrowed strategy's part (engine.NarrowStore).

var errNoNarrow = errors.New("correlation store does not keep the narrowed in-flight set")

// NarrowKey implements engine.NarrowStore.
func (c *countingStore) NarrowKey() ([engine.NarrowKeySize]byte, error) {
	ns, ok := c.s.(engine.NarrowStore)
	if !ok {
		return [engine.NarrowKeySize]byte{}, errNoNarrow
	}
	k, err := ns.NarrowKey()
	if err != nil {
		c.fail("narrow_key", err)
	}
	return k, err
}

// EnterNarrow implements engine.NarrowStore.
func (c *countingStore) EnterNarrow(owner uint64, rec []byte, prints []uint64) error {
	ns, ok := c.s.(engine.NarrowStore)
	if !ok {
		return errNoNarrow
	}
	err := ns.EnterNarrow(owner, rec, prints)
	if err != nil {
		c.fail("narrow_enter", err)
	}
	return err
}

// LeaveNarrow implements engine.NarrowStore.
func (c *countingStore) LeaveNarrow(owner uint64) error {
	ns, ok := c.s.(engine.NarrowStore)
	if !ok {
		return errNoNarrow
	}
	err := ns.LeaveNarrow(owner)
	if err != nil {
		c.fail("narrow_leave", err)
	}
	return err
}

// Narrow implements engine.NarrowStore.
func (c *countingStore) Narrow(dst []byte, prints []uint64) (int, []byte, bool, error) {
	ns, ok := c.s.(engine.NarrowStore)
	if !ok {
		return 0, dst, false, errNoNarrow
	}
	n, rec, found, err := ns.Narrow(dst, prints)
	if err != nil {
		c.fail("narrow", err)
	}
	return n, rec, found, err
}
