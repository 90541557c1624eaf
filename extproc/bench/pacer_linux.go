package main

import (
	"encoding/binary"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// pacer ticks every interval from a timerfd read through Go's network
// poller: the timer fires with the kernel's high-resolution timers, whereas
// a time.Sleep shorter than a millisecond waits a whole millisecond
// whenever the runtime is idle in epoll_wait (runtime/netpoll_epoll.go
// rounds its timeout up to 1 ms), which bunched the open loop's streams
// into bursts.
type pacer struct {
	start time.Time
	f     *os.File
	ticks int
	buf   [8]byte
}

func newPacer(interval time.Duration) (*pacer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	ts := unix.NsecToTimespec(int64(interval))
	p := &pacer{start: time.Now()}
	if err := unix.TimerfdSettime(fd, 0, &unix.ItimerSpec{Interval: ts, Value: ts}, nil); err != nil {
		unix.Close(fd)
		return nil, err
	}
	p.f = os.NewFile(uintptr(fd), "timerfd") // non-blocking: read through the poller
	return p, nil
}

// wait blocks until the next tick and returns the number of intervals
// elapsed since start.
func (p *pacer) wait() (int, error) {
	if _, err := io.ReadFull(p.f, p.buf[:]); err != nil {
		return p.ticks, err
	}
	p.ticks += int(binary.NativeEndian.Uint64(p.buf[:])) // expirations since the last read
	return p.ticks, nil
}

func (p *pacer) close() { p.f.Close() }
