//go:build !linux

package main

import "time"

// pacer ticks every interval with time.Sleep (coarser than the Linux
// timerfd pacer: sub-millisecond sleeps may wait a millisecond).
type pacer struct {
	start    time.Time
	interval time.Duration
}

func newPacer(interval time.Duration) (*pacer, error) {
	return &pacer{start: time.Now(), interval: interval}, nil
}

// wait blocks until the next tick and returns the number of intervals
// elapsed since start.
func (p *pacer) wait() (int, error) {
	n := int(time.Since(p.start) / p.interval)
	time.Sleep(time.Until(p.start.Add(time.Duration(n+1) * p.interval)))
	return int(time.Since(p.start) / p.interval), nil
}

func (p *pacer) close() {}
