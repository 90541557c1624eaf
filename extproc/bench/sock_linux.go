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

// Write writes all of p, waiting for room in the socket buffer if needed.
func (s *sock) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if s.fd < 0 {
			return n, net.ErrClosed
		}
		m, err := unix.Write(s.fd, p[n:])
		switch {
		case errors.Is(err, unix.EAGAIN):
			if _, err := unix.Poll([]unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLOUT}}, 5000); err != nil && !errors.Is(err, unix.EINTR) {
				return n, err
			}
		case errors.Is(err, unix.EINTR):
		case err != nil:
			return n, err
		default:
			n += m
		}
	}
	return n, nil
}

func (s *sock) Close() error {
	if s.fd < 0 {
		return nil
	}
	fd := s.fd
	s.fd = -1
	return unix.Close(fd)
}
