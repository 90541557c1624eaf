package main

import (
	"errors"
	"io"
	"time"

	"golang.org/x/sys/unix"
)

// poller is the event loop's wait: one epoll instance holding every
// connection's socket and, during an open loop, a timerfd that ticks on
// the kernel's high-resolution timers. Both are waited on by the loop's
// own thread in one epoll_wait, so a reply or a tick wakes exactly one
// thread, which does all the work itself.
type poller struct {
	epfd   int
	tfd    int // pacing timer, -1 when not pacing
	conns  []loadConn
	events []unix.EpollEvent
	buf    []byte
}

// timerTag marks the timer's events; connections are tagged by index.
const timerTag = -1

func newPoller(conns []loadConn) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &poller{epfd: epfd, tfd: -1, conns: conns, events: make([]unix.EpollEvent, len(conns)+1), buf: make([]byte, 64<<10)}
	for i, c := range conns {
		s := c.socket()
		s.epfd, s.tag = epfd, int32(i)
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: s.tag}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
			unix.Close(epfd)
			return nil, err
		}
	}
	return p, nil
}

// pace starts ticking every interval (0: stops) and returns the time the
// ticks count from: the timer is armed after it, so no tick comes early.
func (p *poller) pace(interval time.Duration) (time.Time, error) {
	if p.tfd >= 0 {
		unix.Close(p.tfd) // also leaves the epoll set
		p.tfd = -1
	}
	if interval == 0 {
		return time.Time{}, nil
	}
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return time.Time{}, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: timerTag}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		unix.Close(fd)
		return time.Time{}, err
	}
	p.tfd = fd
	start := time.Now()
	ts := unix.NsecToTimespec(int64(interval))
	if err := unix.TimerfdSettime(fd, 0, &unix.ItimerSpec{Interval: ts, Value: ts}, nil); err != nil {
		return time.Time{}, err
	}
	return start, nil
}

// wait blocks until a socket has bytes, the timer ticked or timeout passed,
// and hands what arrived to the connections.
func (p *poller) wait(timeout time.Duration) error {
	n, err := unix.EpollWait(p.epfd, p.events, int(timeout/time.Millisecond))
	if errors.Is(err, unix.EINTR) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, ev := range p.events[:n] {
		if ev.Fd == timerTag {
			unix.Read(p.tfd, p.buf[:8]) // clears the expirations; the loop reads the clock
			continue
		}
		c := p.conns[ev.Fd]
		fd := c.socket().fd
		if fd < 0 {
			continue
		}
		if ev.Events&unix.EPOLLOUT != 0 {
			if err := c.socket().drain(); err != nil {
				c.fail(err)
				continue
			}
		}
		if ev.Events&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
			continue
		}
		// One read per wake-up: the set is level-triggered, so what does
		// not fit comes at the next wait, without a read that finds nothing.
		m, err := unix.Read(fd, p.buf)
		switch {
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
		case err != nil:
			unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
			c.fail(err)
		case m == 0:
			unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
			c.fail(io.ErrUnexpectedEOF)
		default:
			c.feed(p.buf[:m])
		}
	}
	return nil
}

// stalls counts the writes that found a socket's buffer full.
func (p *poller) stalls() int {
	n := 0
	for _, c := range p.conns {
		n += c.socket().stalls
	}
	return n
}

func (p *poller) close() {
	p.pace(0)
	unix.Close(p.epfd)
}
