//go:build !linux

package main

import (
	"time"
)

// poller is the portable event loop's wait: a goroutine per connection
// reads it and hands the bytes over to the loop, and a time.Ticker paces
// the open loop (coarser than Linux's timerfd: sub-millisecond ticks may
// come a millisecond late).
type poller struct {
	conns  []loadConn
	chunks chan chunk
	ticker *time.Ticker
	tick   <-chan time.Time
}

// chunk is what one read of connection ci returned; the reader waits for
// done before it reads again into the same buffer.
type chunk struct {
	ci   int
	b    []byte
	err  error
	done chan struct{}
}

func newPoller(conns []loadConn) (*poller, error) {
	p := &poller{conns: conns, chunks: make(chan chunk, len(conns))}
	for i, c := range conns {
		go p.read(i, c.socket())
	}
	return p, nil
}

func (p *poller) read(ci int, s *sock) {
	buf := make([]byte, 64<<10)
	done := make(chan struct{})
	for {
		n, err := s.Read(buf)
		p.chunks <- chunk{ci: ci, b: buf[:n], err: err, done: done}
		if err != nil {
			return
		}
		<-done
	}
}

// pace starts ticking every interval (0: stops) and returns the time the
// ticks count from.
func (p *poller) pace(interval time.Duration) (time.Time, error) {
	if p.ticker != nil {
		p.ticker.Stop()
		p.ticker, p.tick = nil, nil
	}
	if interval == 0 {
		return time.Time{}, nil
	}
	start := time.Now()
	p.ticker = time.NewTicker(interval)
	p.tick = p.ticker.C
	return start, nil
}

// wait blocks until a connection delivered bytes, the ticker ticked or
// timeout passed, and hands what arrived to the connection.
func (p *poller) wait(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case ch := <-p.chunks:
		c := p.conns[ch.ci]
		if len(ch.b) > 0 {
			c.feed(ch.b)
		}
		if ch.err != nil {
			c.fail(ch.err)
			return nil
		}
		ch.done <- struct{}{}
	case <-p.tick:
	case <-t.C:
	}
	return nil
}

// stalls is not counted here: net.Conn's Write blocks.
func (p *poller) stalls() int { return 0 }

func (p *poller) close() { p.pace(0) }
