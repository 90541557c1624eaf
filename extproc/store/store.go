// Package store holds the correlation stores of tracebridge-extproc: a
// Provider hands the engine its store for each compiled policy, either the
// engine's memory store (Memory) or Redis shared by every replica (Redis).
package store

import (
	"sync"
	"time"

	"github.com/tracebridge/tracebridge/engine"
)

// Provider hands the engine a correlation store for each compiled
// policy, so a reload that keeps the store's shape keeps its records.
type Provider interface {
	// StoreFor returns the store to use with cfg (TTL and capacity come from
	// cfg.TTL and cfg.Capacity).
	StoreFor(cfg *engine.Config) engine.Store
	// Close releases the provider's resources.
	Close() error
}

// Memory provides engine.MemoryStore instances: the same one as long as
// the policy's TTL and capacity do not change, a fresh one when they do
// (streams opened before the reload finish on the old one). Either way the
// store gets the policy's correlation.inFlightTimeout.
type Memory struct {
	// Now is the stores' clock (nil: the monotonic clock).
	Now func() time.Time

	mu       sync.Mutex
	cur      *engine.MemoryStore
	ttl      time.Duration
	capacity int
}

// StoreFor implements Provider.
func (p *Memory) StoreFor(cfg *engine.Config) engine.Store {
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

// Close implements Provider.
func (p *Memory) Close() error { return nil }
