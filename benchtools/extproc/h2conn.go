package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/encoding/protowire"
)

// h2conn is one client connection. Only the event loop (loadGen.drive in h2load.go,
// waiting in poller_linux.go) touches
// it: the loop feeds it the bytes the socket delivered and it answers
// through bw, so that no lock and no goroutine handoff sits on a stream's
// path.
type h2conn struct {
	sock  *sock    // sock_linux.go, sock_other.go
	rb    frameBuf // bytes read from the socket, not yet framed
	bw    *bufio.Writer
	fr    *http2.Framer
	block []byte
	ci    int // position in a phase's per-connection results

	streams  map[uint32]*h2stream
	free     []*h2stream
	nextID   uint32
	sendWin  int64       // connection send window (RFC 9113 §6.9.1)
	blocked  []*h2stream // streams waiting for send window, in order
	received int64       // DATA bytes since the last WINDOW_UPDATE we sent
	err      error
	ph       *phase

	// Header block being decoded (event loop only, like the rest).
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

// newH2Conn sends the client preface and settings on sock.
func newH2Conn(sock *sock, block []byte, ci int) (*h2conn, error) {
	c := &h2conn{sock: sock, bw: bufio.NewWriterSize(sock, 64<<10), block: block, ci: ci,
		streams: map[uint32]*h2stream{}, nextID: 1, sendWin: 65535}
	c.fr = http2.NewFramer(c.bw, &c.rb)
	c.fr.SetReuseFrames() // a frame is done with before the next is read
	c.dec = hpack.NewDecoder(4096, c.onField)
	c.bw.WriteString(http2.ClientPreface)
	c.fr.WriteSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 0}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamRecvWindow})
	c.fr.WriteWindowUpdate(0, connRecvWindow)
	if err := c.bw.Flush(); err != nil {
		sock.Close()
		return nil, err
	}
	return c, nil
}

// startStream opens a stream and sends its first message.
func (c *h2conn) startStream(ph *phase, index int, sched time.Time, seq uint64) {
	ph.inflight++
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
// send window allows it.
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

// fail ends the connection: every open stream counts as an error.
func (c *h2conn) fail(err error) {
	if c.err == nil {
		c.err = err
		c.sock.Close()
	}
	for id, s := range c.streams {
		delete(c.streams, id)
		s.fail = true
		c.finishLocked(c.ph, s)
	}
	c.blocked = nil
}

func (c *h2conn) socket() *sock      { return c.sock }
func (c *h2conn) setPhase(ph *phase) { c.ph = ph }

// finishLocked records a finished stream and, in a closed loop before the
// deadline, starts the next one.
func (c *h2conn) finishLocked(ph *phase, s *h2stream) {
	if ph == nil {
		return
	}
	if s.id != 0 {
		c.free = append(c.free, s)
	}
	if now, again := ph.finish(c.ci, s.index, s.start, s.fail); again && c.err == nil {
		c.startStream(ph, 0, now, seq.Add(1))
	}
}

var errProtocol = errors.New("bench: unexpected HTTP/2 frame from the server")

// feed takes the bytes the socket delivered: it handles every whole
// frame among them and writes the replies out in one write.
func (c *h2conn) feed(p []byte) {
	c.rb.buf = append(c.rb.buf, p...)
	for c.err == nil && c.rb.frameReady() {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.fail(err)
			break
		}
		c.handle(f)
	}
	c.rb.compact()
	c.flush()
}

// frameBuf is the read side of the framer: the bytes received so far. The
// framer only reads from it when a whole frame is there, so it never waits.
type frameBuf struct {
	buf []byte
	off int
}

func (b *frameBuf) Read(p []byte) (int, error) {
	if b.off == len(b.buf) {
		return 0, io.ErrUnexpectedEOF // unreachable: frameReady comes first
	}
	n := copy(p, b.buf[b.off:])
	b.off += n
	return n, nil
}

// frameReady reports whether a whole frame is buffered (RFC 9113 §4.1: a
// 9-byte header whose first 3 bytes are the payload length).
func (b *frameBuf) frameReady() bool {
	p := b.buf[b.off:]
	return len(p) >= 9 && len(p) >= 9+int(p[0])<<16|int(p[1])<<8|int(p[2])
}

func (b *frameBuf) compact() {
	n := copy(b.buf, b.buf[b.off:])
	b.buf, b.off = b.buf[:n], 0
}

// handle processes one frame.
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

// unblock sends the messages that waited for send window.
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
// server must not wait for more from it).
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

// end removes a finished stream.
func (c *h2conn) end(ph *phase, s *h2stream) {
	delete(c.streams, s.id)
	c.finishLocked(ph, s)
}

// flush writes out what is buffered.
func (c *h2conn) flush() {
	if c.err == nil && c.bw.Buffered() > 0 {
		if err := c.bw.Flush(); err != nil {
			c.fail(err)
		}
	}
}
