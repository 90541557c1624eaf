//go:build linux

package main

import (
	"encoding/binary"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pairSock is one end of a socket pair whose other end takes, unread, the
// replies of the connection under test (a few hundred bytes at most).
func pairSock(t *testing.T) *sock {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	s := &sock{fd: fds[0]}
	t.Cleanup(func() { s.Close(); unix.Close(fds[1]) })
	return s
}

// feedAndFail starts two open-loop streams on c, feeds it b in two reads
// cut at cut, then fails the connection; it returns the phase to check.
func feedAndFail(c loadConn, b []byte, cut int) *phase {
	ph := &phase{open: true, openLat: make([]time.Duration, 2), errs: make([]int64, 1), lat: make([][]time.Duration, 1)}
	c.setPhase(ph)
	c.startStream(ph, 0, time.Now(), 1)
	c.startStream(ph, 1, time.Now(), 2)
	cut = min(max(cut, 0), len(b))
	c.feed(b[:cut])
	c.feed(b[cut:])
	c.fail(errProtocol)
	return ph
}

// FuzzH2Feed: whatever bytes a server sends, cut anywhere, the HTTP/2
// connection neither panics nor loses count of its streams: each stream
// started ends exactly once (completed or failed) once the connection fails.
func FuzzH2Feed(f *testing.F) {
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0}, 3)                         // empty SETTINGS
	f.Add([]byte{0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}, 9) // PING
	f.Add([]byte{0, 0, 5, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0}, 7)          // empty gRPC message on stream 1
	f.Add([]byte{0, 0, 2, 1, 5, 0, 0, 0, 1, 0x88, 0x40}, 4)             // HEADERS, END_STREAM
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		c, err := newH2Conn(pairSock(t), []byte{0x82}, 0)
		if err != nil {
			t.Skip(err)
		}
		ph := feedAndFail(c, b, cut)
		if ph.inflight != 0 || len(c.streams) != 0 {
			t.Fatalf("after the connection failed: %d streams in flight, %d in the table", ph.inflight, len(c.streams))
		}
	})
}

// FuzzTCPFeed: the floor's connection takes any echo, cut anywhere,
// without panicking, and ends every request exactly once.
func FuzzTCPFeed(f *testing.F) {
	var m [floorMsgSize]byte
	binary.LittleEndian.PutUint64(m[:], 1)
	f.Add(m[:], 100)
	f.Add([]byte("short"), 2)
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		c := &tcpconn{sock: pairSock(t), open: map[uint64]floorReq{}}
		ph := feedAndFail(c, b, cut)
		if ph.inflight != 0 || len(c.open) != 0 {
			t.Fatalf("after the connection failed: %d requests in flight, %d open", ph.inflight, len(c.open))
		}
	})
}
