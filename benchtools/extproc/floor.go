package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// The floor: what a request costs on this machine without gRPC. The same
// event loop drives plain TCP connections to an echo server (a subprocess,
// one goroutine per connection, as Go servers are written) with the same
// pattern as an ext_proc stream: three round trips of a message about the
// size of the request headers message. Whatever latency the floor shows in
// a run, the ext_proc servers cannot beat in that run.

// floorMsgSize is about the size of the request headers message (the
// largest of the three).
const floorMsgSize = 320

// floorRounds is the round trips per request: request headers, response
// headers, end of stream.
const floorRounds = 3

// serveEcho serves the floor's echo server on 127.0.0.1:0.
func serveEcho() {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf(`{"msg":"serving","listen":%q}`+"\n", lis.Addr().String())
	fmt.Fprintln(os.Stderr, echoServe(lis))
	os.Exit(1)
}

// echoServe echoes every connection lis accepts until lis fails, and
// returns why.
func echoServe(lis net.Listener) error {
	for {
		nc, err := lis.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer nc.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := nc.Read(buf)
				if err != nil {
					return
				}
				if _, err := nc.Write(buf[:n]); err != nil {
					return
				}
			}
		}()
	}
}

// newTCPLoad is the floor's load generator: n connections to an echo server.
func newTCPLoad(addr string, n int) (*loadGen, error) {
	return dialLoad(addr, n, func(s *sock, i int) (loadConn, error) {
		return &tcpconn{sock: s, ci: i, open: map[uint64]floorReq{}}, nil
	})
}

// tcpconn is one floor connection. Each message carries its request's
// number and round; the echo returns them in order.
type tcpconn struct {
	sock *sock
	ci   int
	ph   *phase
	open map[uint64]floorReq // requests in flight, by number
	in   []byte              // partial message received
	out  []byte              // messages to write
	err  error
}

type floorReq struct {
	index int
	start time.Time
}

func (c *tcpconn) socket() *sock      { return c.sock }
func (c *tcpconn) setPhase(ph *phase) { c.ph = ph }

func (c *tcpconn) startStream(ph *phase, index int, sched time.Time, id uint64) {
	ph.inflight++
	if c.err != nil {
		ph.finish(c.ci, index, sched, true)
		return
	}
	c.open[id] = floorReq{index, sched}
	c.send(id, 0)
}

func (c *tcpconn) send(id uint64, round int) {
	var m [floorMsgSize]byte
	binary.LittleEndian.PutUint64(m[0:], id)
	m[8] = byte(round)
	c.out = append(c.out, m[:]...)
}

func (c *tcpconn) feed(p []byte) {
	c.in = append(c.in, p...)
	n := 0
	for ; len(c.in)-n >= floorMsgSize && c.err == nil; n += floorMsgSize {
		m := c.in[n : n+floorMsgSize]
		id, round := binary.LittleEndian.Uint64(m), int(m[8])
		r, ok := c.open[id]
		if !ok {
			c.fail(fmt.Errorf("bench: echo of request %d, which is not in flight", id))
			break
		}
		if round+1 < floorRounds {
			c.send(id, round+1)
			continue
		}
		delete(c.open, id)
		if now, again := c.ph.finish(c.ci, r.index, r.start, false); again {
			c.startStream(c.ph, 0, now, seq.Add(1))
		}
	}
	c.in = append(c.in[:0], c.in[n:]...)
	c.flush()
}

func (c *tcpconn) flush() {
	if c.err != nil || len(c.out) == 0 {
		return
	}
	if _, err := c.sock.Write(c.out); err != nil {
		c.fail(err)
		return
	}
	c.out = c.out[:0]
}

// fail ends the connection: its requests in flight count as errors.
func (c *tcpconn) fail(err error) {
	if c.err == nil {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		c.err = err
		c.sock.Close()
	}
	for id, r := range c.open {
		delete(c.open, id)
		c.ph.finish(c.ci, r.index, r.start, true)
	}
}
