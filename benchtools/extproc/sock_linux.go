package main

import (
	"errors"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// sock is a TCP socket kept out of Go's network poller: the event loop
// waits on it with its own epoll instance from its own thread, and reads
// it there. (A socket in both would wake an idle runtime thread in the
// runtime's epoll_wait for every reply as well.)
type sock struct {
	fd int // -1 once closed
	// Bytes the kernel would not take yet: the loop never blocks on one
	// connection (a stalled server must not delay the others' schedule);
	// the poller writes them when the socket is writable again.
	pending []byte
	epfd    int   // the poller's, to ask for EPOLLOUT meanwhile
	tag     int32 // the socket's tag in that epoll set
	stalls  int   // writes that found the socket buffer full
}

func dialSock(addr string) (*sock, error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, err
	}
	var sa unix.Sockaddr
	family := unix.AF_INET
	if ip4 := ta.IP.To4(); ip4 != nil {
		sa = &unix.SockaddrInet4{Port: ta.Port, Addr: [4]byte(ip4)}
	} else {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: ta.Port, Addr: [16]byte(ta.IP.To16())}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	s := &sock{fd: fd}
	// A blocking connect bounded by the send timeout (socket(7): SO_SNDTIMEO
	// applies to connect), then non-blocking for the event loop. Nagle off,
	// as Go's net package and Envoy do.
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		s.Close()
		return nil, err
	}
	for {
		err = unix.Connect(fd, sa)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err == nil {
		err = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Write writes p, or keeps what the kernel would not take for drain.
func (s *sock) Write(p []byte) (int, error) {
	if s.fd < 0 {
		return 0, net.ErrClosed
	}
	if len(s.pending) > 0 {
		s.pending = append(s.pending, p...)
		return len(p), nil
	}
	n := 0
	for n < len(p) {
		m, err := unix.Write(s.fd, p[n:])
		switch {
		case errors.Is(err, unix.EAGAIN):
			s.stalls++
			s.pending = append(s.pending, p[n:]...)
			return len(p), s.watchOut(true)
		case errors.Is(err, unix.EINTR):
		case err != nil:
			return n, err
		default:
			n += m
		}
	}
	return n, nil
}

// drain writes the pending bytes once the socket is writable.
func (s *sock) drain() error {
	for len(s.pending) > 0 {
		m, err := unix.Write(s.fd, s.pending)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return nil
		case errors.Is(err, unix.EINTR):
		case err != nil:
			return err
		default:
			s.pending = s.pending[:copy(s.pending, s.pending[m:])]
		}
	}
	return s.watchOut(false)
}

// watchOut asks the poller to report the socket writable, or stops.
func (s *sock) watchOut(on bool) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: s.tag}
	if on {
		ev.Events |= unix.EPOLLOUT
	}
	return unix.EpollCtl(s.epfd, unix.EPOLL_CTL_MOD, s.fd, &ev)
}

func (s *sock) Close() error {
	if s.fd < 0 {
		return nil
	}
	fd := s.fd
	s.fd = -1
	return unix.Close(fd)
}
