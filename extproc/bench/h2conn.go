package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/encoding/protowire"
)

// h2conn is one client connection. Its reader goroutine owns the reading
// side; mu guards the writing side and the stream table, which the reader
// and the open loop's pacer share.
type h2conn struct {
	nc    net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	fr    *http2.Framer
	block []byte
	ci    int // position in a phase's per-connection results

	mu       sync.Mutex
	streams  map[uint32]*h2stream
	free     []*h2stream
	nextID   uint32
	sendWin  int64       // connection send window (RFC 9113 §6.9.1)
	blocked  []*h2stream // streams waiting for send window, in order
	received int64       // DATA bytes since the last WINDOW_UPDATE we sent
	err      error
	ph       *phase

	// Header block being decoded (reader goroutine only).
	dec        *hpack.Decoder
	hdrStream  uint32
	hdrEnd     bool
	hdrStatus  string // :status
	grpcStatus string
}

// h2stream is one ext_proc stream; pooled per connection.
type h2stream struct {
	id    uint32
	state int // 0: request headers sent; 1: response headers sent; 2: end of stream sent
	start time.Time
	index int // open loop: the request's number
	req   []byte
	out   []byte // message waiting for send window
	in    []byte // partial gRPC message received
	fail  bool
}

func dialH2(addr string, block []byte, ci int) (*h2conn, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &h2conn{nc: nc, br: bufio.NewReaderSize(nc, 64<<10), bw: bufio.NewWriterSize(nc, 64<<10), block: block, ci: ci,
		streams: map[uint32]*h2stream{}, nextID: 1, sendWin: 65535}
	c.fr = http2.NewFramer(c.bw, c.br)
	c.dec = hpack.NewDecoder(4096, c.onField)
	if _, err := c.bw.WriteString(http2.ClientPreface); err != nil {
		nc.Close()
		return nil, err
	}
	c.fr.WriteSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 0}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamRecvWindow})
	c.fr.WriteWindowUpdate(0, connRecvWindow)
	if err := c.bw.Flush(); err != nil {
		nc.Close()
		return nil, err
	}
	go c.readLoop()
	return c, nil
}

// startStream opens a stream and sends its first message. mu is held.
func (c *h2conn) startStream(ph *phase, index int, sched time.Time, seq uint64) {
	ph.wg.Add(1)
	if c.err != nil {
		c.finishLocked(ph, &h2stream{index: index, start: sched, fail: true})
		return
	}
	var s *h2stream
	if n := len(c.free); n > 0 {
		s, c.free = c.free[n-1], c.free[:n-1]
	} else {
		s = &h2stream{}
	}
	s.id, c.nextID = c.nextID, c.nextID+2
	s.state, s.start, s.index, s.in, s.fail = 0, sched, index, s.in[:0], false
	s.req = append(s.req[:0], reqTemplate...)
	for _, off := range idOffsets {
		putHex(s.req[off:off+idWidth], seq)
	}
	c.streams[s.id] = s
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: s.id, BlockFragment: c.block, EndHeaders: true}); err != nil {
		c.fail(err)
		return
	}
	c.sendMsg(s, s.req)
}

func putHex(dst []byte, v uint64) {
	const digits = "0123456789abcdef"
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = digits[v&15]
		v >>= 4
	}
}

// sendMsg sends one gRPC message on s, or queues it until the connection's
// send window allows it. mu is held.
func (c *h2conn) sendMsg(s *h2stream, msg []byte) {
	if len(c.blocked) > 0 || c.sendWin < int64(len(msg)) {
		s.out = msg
		c.blocked = append(c.blocked, s)
		return
	}
	c.sendWin -= int64(len(msg))
	if err := c.fr.WriteData(s.id, false, msg); err != nil {
		c.fail(err)
	}
}

// fail ends the connection: every open stream counts as an error. mu is held.
func (c *h2conn) fail(err error) {
	if c.err == nil {
		c.err = err
		c.nc.Close()
	}
	for id, s := range c.streams {
		delete(c.streams, id)
		s.fail = true
		c.finishLocked(c.ph, s)
	}
	c.blocked = nil
}

// finishLocked records a finished stream and, in a closed loop before the
// deadline, starts the next one. mu is held.
func (c *h2conn) finishLocked(ph *phase, s *h2stream) {
	if ph == nil {
		return
	}
	now := time.Now()
	switch {
	case ph.open && s.fail:
		ph.openLat[s.index] = -1
	case ph.open:
		ph.openLat[s.index] = now.Sub(s.start)
	case s.fail:
		ph.errs[c.ci]++
	default:
		ph.lat[c.ci] = append(ph.lat[c.ci], now.Sub(s.start))
	}
	if s.id != 0 {
		c.free = append(c.free, s)
	}
	if !ph.open && now.Before(ph.deadline) && c.err == nil {
		c.startStream(ph, 0, now, seq.Add(1))
	}
	ph.wg.Done()
}

var errProtocol = errors.New("bench: unexpected HTTP/2 frame from the server")

// readLoop reads the server's frames until the connection fails.
func (c *h2conn) readLoop() {
	for {
		f, err := c.fr.ReadFrame()
		c.mu.Lock()
		if err != nil {
			c.fail(err)
			c.mu.Unlock()
			return
		}
		c.handle(f)
		// Flush before the next read could block: replies written while
		// handling the frames at hand go out in one write.
		if c.err == nil && c.bw.Buffered() > 0 && !c.frameBuffered() {
			if err := c.bw.Flush(); err != nil {
				c.fail(err)
			}
		}
		c.mu.Unlock()
	}
}

// frameBuffered reports whether a whole frame is already in the read buffer.
func (c *h2conn) frameBuffered() bool {
	n := c.br.Buffered()
	if n < 9 {
		return false
	}
	h, _ := c.br.Peek(3)
	return n >= 9+int(h[0])<<16|int(h[1])<<8|int(h[2])
}

// handle processes one frame. mu is held.
func (c *h2conn) handle(f http2.Frame) {
	ph := c.ph
	switch f := f.(type) {
	case *http2.DataFrame:
		c.received += int64(f.Length)
		if c.received >= connRecvRefill {
			c.fr.WriteWindowUpdate(0, uint32(c.received))
			c.received = 0
		}
		s := c.streams[f.StreamID]
		if s == nil {
			return
		}
		c.onData(ph, s, f.Data())
		if f.StreamEnded() && c.streams[f.StreamID] == s { // DATA with END_STREAM: no trailers, so no grpc-status
			s.fail = true
			c.end(ph, s)
		}
	case *http2.HeadersFrame:
		c.hdrStream, c.hdrEnd, c.hdrStatus, c.grpcStatus = f.StreamID, f.StreamEnded(), "", ""
		c.headerBlock(ph, f.HeaderBlockFragment(), f.HeadersEnded())
	case *http2.ContinuationFrame:
		c.headerBlock(ph, f.HeaderBlockFragment(), f.HeadersEnded())
	case *http2.RSTStreamFrame:
		if s := c.streams[f.StreamID]; s != nil {
			s.fail = true
			c.end(ph, s)
		}
	case *http2.SettingsFrame:
		if f.IsAck() {
			return
		}
		if v, ok := f.Value(http2.SettingInitialWindowSize); ok && v < uint32(len(reqTemplate)+len(respHeadsMsg)) {
			// Streams send less than this; per-stream windows are not tracked.
			c.fail(fmt.Errorf("bench: server's initial stream window %d is too small for this client", v))
			return
		}
		c.fr.WriteSettingsAck()
	case *http2.PingFrame:
		if !f.IsAck() {
			c.fr.WritePing(true, f.Data)
		}
	case *http2.WindowUpdateFrame:
		if f.StreamID == 0 {
			c.sendWin += int64(f.Increment)
			c.unblock()
		}
	case *http2.GoAwayFrame:
		c.fail(fmt.Errorf("bench: server sent GOAWAY (%v)", f.ErrCode))
	default:
		c.fail(errProtocol)
	}
}

// unblock sends the messages that waited for send window. mu is held.
func (c *h2conn) unblock() {
	for len(c.blocked) > 0 && c.err == nil {
		s := c.blocked[0]
		if c.sendWin < int64(len(s.out)) {
			return
		}
		c.blocked = c.blocked[1:]
		c.sendWin -= int64(len(s.out))
		if err := c.fr.WriteData(s.id, false, s.out); err != nil {
			c.fail(err)
		}
		s.out = nil
	}
}

func (c *h2conn) onField(f hpack.HeaderField) {
	switch f.Name {
	case ":status":
		c.hdrStatus = f.Value
	case "grpc-status":
		c.grpcStatus = f.Value
	}
}

// headerBlock decodes a header block fragment; the block's end decides the
// stream's fate: response headers must be :status 200, trailers (END_STREAM)
// grpc-status 0 after the whole exchange.
func (c *h2conn) headerBlock(ph *phase, frag []byte, last bool) {
	if _, err := c.dec.Write(frag); err != nil {
		c.fail(err)
		return
	}
	if !last {
		return
	}
	if err := c.dec.Close(); err != nil {
		c.fail(err)
		return
	}
	s := c.streams[c.hdrStream]
	if s == nil {
		return
	}
	if c.hdrStatus != "" && c.hdrStatus != "200" {
		s.fail = true
	}
	if c.hdrEnd {
		s.fail = s.fail || s.state != 2 || c.grpcStatus != "0"
		c.end(ph, s)
	}
}

// onData takes the gRPC messages out of a DATA frame's payload.
func (c *h2conn) onData(ph *phase, s *h2stream, p []byte) {
	if len(s.in) > 0 {
		s.in = append(s.in, p...)
		p = s.in
	}
	for len(p) >= 5 {
		n := int(binary.BigEndian.Uint32(p[1:5]))
		if len(p) < 5+n {
			break
		}
		if !c.onMessage(s, p[5:5+n]) {
			c.abort(ph, s)
			return
		}
		p = p[5+n:]
	}
	s.in = append(s.in[:0], p...)
}

// onMessage checks a reply and sends the stream's next message: response
// headers after the request headers' reply, then the end of the stream. It
// reports false when the reply is not the one expected.
func (c *h2conn) onMessage(s *h2stream, msg []byte) bool {
	want := protowire.Number(fieldRequestHeaders)
	if s.state == 1 {
		want = fieldResponseHeaders
	}
	if s.state > 1 || !hasField(msg, want) {
		return false
	}
	s.state++
	if s.state == 1 {
		c.sendMsg(s, respHeadsMsg)
		return true
	}
	if err := c.fr.WriteData(s.id, true, nil); err != nil {
		c.fail(err)
	}
	return true
}

// abort cancels a stream the server answered wrongly (RFC 9113 §8.4: the
// server must not wait for more from it). mu is held.
func (c *h2conn) abort(ph *phase, s *h2stream) {
	if err := c.fr.WriteRSTStream(s.id, http2.ErrCodeCancel); err != nil {
		c.fail(err)
		return
	}
	s.fail = true
	c.end(ph, s)
}

// hasField reports whether a protobuf message has a top-level field with
// this number: enough to tell a reply's kind without decoding it (the
// generator should not spend more on a richer reply than Envoy's own
// decoding would).
func hasField(b []byte, num protowire.Number) bool {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return false
		}
		if n == num {
			return true
		}
		b = b[l:]
		if l = protowire.ConsumeFieldValue(n, typ, b); l < 0 {
			return false
		}
		b = b[l:]
	}
	return false
}

// end removes a finished stream. mu is held.
func (c *h2conn) end(ph *phase, s *h2stream) {
	delete(c.streams, s.id)
	c.finishLocked(ph, s)
}

// flush writes out what is buffered. mu is held.
func (c *h2conn) flush() {
	if c.err == nil && c.bw.Buffered() > 0 {
		if err := c.bw.Flush(); err != nil {
			c.fail(err)
		}
	}
}
