package main

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"time"

	"golang.org/x/net/http2/hpack"
)

// loadGen is the default load generator: a minimal gRPC-over-HTTP/2 client
// written for this benchmark, event-driven like Envoy's own client: one
// thread waits on all its connections and the pacing timer at once (one
// epoll instance on Linux, like an Envoy worker) and, from the replies,
// sends each stream's next message; nothing runs per stream and the request
// bytes are built from a template. grpc-go's client (-client grpc) starts a
// goroutine, a context and a few dozen allocations per stream, and a
// goroutine per connection hands every reply to another thread: either way
// the generator's own cost and scheduling delays would show up in the
// latencies it reports, on the same cores as the server it measures. One
// loop for all connections also beat one loop per connection, in latency
// and in the generator's CPU per stream.
type loadGen struct {
	conns []loadConn
	poll  *poller
}

// The two messages of a stream, framed for gRPC (RFC-less gRPC framing:
// 1 byte compressed flag, 4 bytes big-endian length, then the message;
// https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md).
var (
	reqTemplate  []byte // request headers message, id placeholder at idOffsets
	idOffsets    []int
	respHeadsMsg []byte
)

// idWidth is the fixed width of the per-request id (hex), so that the
// request template's length never changes.
const idWidth = 16

func init() {
	placeholder := string(bytes.Repeat([]byte{'#'}, idWidth))
	b, err := marshalGRPC(requestHeadersMsg(placeholder))
	if err != nil {
		panic(err)
	}
	reqTemplate = b
	for off := 0; ; {
		i := bytes.Index(reqTemplate[off:], []byte(placeholder))
		if i < 0 {
			break
		}
		idOffsets = append(idOffsets, off+i)
		off += i + idWidth
	}
	if len(idOffsets) != 2 { // :path and x-request-id
		panic(fmt.Sprintf("request template: %d id placeholders, want 2", len(idOffsets)))
	}
	if respHeadsMsg, err = marshalGRPC(responseHeaders); err != nil {
		panic(err)
	}
}

// The reply's ProcessingResponse field numbers (envoy/service/ext_proc/v3/
// external_processor.proto: request_headers = 1, response_headers = 2).
const (
	fieldRequestHeaders  = 1
	fieldResponseHeaders = 2
)

// Client settings. Receive windows are large so the server never waits for
// a WINDOW_UPDATE (RFC 9113 §6.9); the client replenishes the connection
// window in large steps.
const (
	streamRecvWindow = 1 << 24
	connRecvWindow   = 1 << 30
	connRecvRefill   = 1 << 28
)

func newH2Load(addr string, n int) (*loadGen, error) {
	block, err := requestHeaderBlock(addr)
	if err != nil {
		return nil, err
	}
	return dialLoad(addr, n, func(s *sock, i int) (loadConn, error) { return newH2Conn(s, block, i) })
}

// dialLoad opens n connections to addr, each driven by the loadConn conn
// makes of its socket, under one poller.
func dialLoad(addr string, n int, conn func(s *sock, i int) (loadConn, error)) (*loadGen, error) {
	l := &loadGen{}
	for i := 0; i < n; i++ {
		s, err := dialSock(addr)
		if err != nil {
			l.close()
			return nil, err
		}
		c, err := conn(s, i)
		if err != nil {
			l.close()
			return nil, err
		}
		l.conns = append(l.conns, c)
	}
	var err error
	if l.poll, err = newPoller(l.conns); err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

// loadConn is one connection the event loop drives: gRPC over HTTP/2
// (h2conn) or, for the floor, plain TCP to an echo server (tcpconn).
type loadConn interface {
	socket() *sock
	setPhase(ph *phase)
	// startStream starts request index (open loop; 0 in a closed loop)
	// scheduled at sched; seq is unique across phases.
	startStream(ph *phase, index int, sched time.Time, seq uint64)
	feed(p []byte) // bytes the socket delivered
	flush()
	fail(err error)
}

func (l *loadGen) close() {
	for _, c := range l.conns {
		c.socket().Close()
	}
	if l.poll != nil {
		l.poll.close()
	}
}

// requestHeaderBlock is the HPACK block of every stream's request headers.
// It is encoded once with a dynamic table of size 0 (the block starts with
// a size update to 0 and indexes nothing), so the same bytes are valid on
// every stream (RFC 7541 §4.2, §6.3).
func requestHeaderBlock(authority string) ([]byte, error) {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	enc.SetMaxDynamicTableSizeLimit(0)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", "/envoy.service.ext_proc.v3.ExternalProcessor/Process"},
		{":authority", authority}, {"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// phase collects the results of one closed- or open-loop run over all
// connections.
type phase struct {
	deadline  time.Time // closed loop: no stream starts after it
	open      bool
	lat       [][]time.Duration // closed loop: per connection
	openLat   []time.Duration   // open loop: per request, -1 on error
	errs      []int64           // per connection
	inflight  int               // streams started and not finished
	gcPercent int               // the generator's GOGC, off during the phase
}

// begin makes ph the phase every connection reports to. The generator's
// garbage collector is off until drive returns (a phase allocates little),
// so that no collection delays a stream.
func (l *loadGen) begin(ph *phase) {
	runtime.GC()
	ph.gcPercent = debug.SetGCPercent(-1)
	ph.lat = make([][]time.Duration, len(l.conns))
	ph.errs = make([]int64, len(l.conns))
	for i, c := range l.conns {
		if !ph.open {
			ph.lat[i] = make([]time.Duration, 0, 1<<16)
		}
		c.setPhase(ph)
	}
}

// finish records a finished stream of connection ci; again reports whether
// a closed loop goes on (its deadline has not passed).
func (ph *phase) finish(ci, index int, start time.Time, failed bool) (now time.Time, again bool) {
	now = time.Now()
	switch {
	case ph.open && failed:
		ph.openLat[index] = -1
	case ph.open:
		ph.openLat[index] = now.Sub(start)
	case failed:
		ph.errs[ci]++
	default:
		ph.lat[ci] = append(ph.lat[ci], now.Sub(start))
	}
	ph.inflight--
	return now, !ph.open && now.Before(ph.deadline)
}

// drive runs the event loop on this goroutine until the phase is
// over: more returns false (no stream left to start) and no stream is in
// flight. more is called after every wake-up, so the open loop starts its
// streams from the same loop; streams still open at giveUp fail with their
// connection.
func (l *loadGen) drive(ph *phase, more func() bool, giveUp time.Time) {
	defer debug.SetGCPercent(ph.gcPercent)
	for more() || ph.inflight > 0 {
		if time.Now().After(giveUp) {
			for _, c := range l.conns {
				c.fail(errors.New("bench: streams did not finish"))
			}
			more = func() bool { return false }
			continue
		}
		if err := l.poll.wait(100 * time.Millisecond); err != nil {
			for _, c := range l.conns {
				c.fail(err)
			}
		}
	}
}

// closedLoop keeps workers streams in flight for d: each finished stream
// starts the next on its connection.
func (l *loadGen) closedLoop(workers int, d time.Duration) result {
	start := time.Now()
	ph := &phase{deadline: start.Add(d)}
	l.begin(ph)
	for w := 0; w < workers; w++ {
		c := l.conns[w%len(l.conns)]
		c.startStream(ph, 0, time.Now(), seq.Add(1))
		c.flush()
	}
	l.drive(ph, func() bool { return false }, start.Add(d+30*time.Second))
	r := result{elapsed: time.Since(start)}
	for i := range ph.lat {
		r.lat = append(r.lat, ph.lat[i]...)
		r.errors += ph.errs[i]
	}
	r.n = len(r.lat)
	return r
}

// openLoop starts rate streams per second for d on a fixed schedule
// (round-robin over the connections); latency counts from each stream's
// scheduled start, so the generator's own lateness counts against it too,
// and is reported apart as the dispatch lag.
func (l *loadGen) openLoop(rate int, d time.Duration) result {
	total := int(d.Seconds() * float64(rate))
	interval := time.Second / time.Duration(rate)
	ph := &phase{open: true, openLat: make([]time.Duration, total)}
	l.begin(ph)
	lag := make([]time.Duration, total)
	start, err := l.poll.pace(interval)
	if err != nil {
		debug.SetGCPercent(ph.gcPercent)
		return result{errors: int64(total)}
	}
	defer l.poll.pace(0)
	i := 0
	// Every stream due by now starts, each on its scheduled time's account.
	startDue := func() bool {
		for due := int(time.Since(start) / interval); i < total && i <= due; i++ {
			sched := start.Add(time.Duration(i) * interval)
			c := l.conns[i%len(l.conns)]
			c.startStream(ph, i, sched, seq.Add(1))
			c.flush()
			lag[i] = time.Since(sched)
		}
		return i < total
	}
	l.drive(ph, startDue, start.Add(2*d+30*time.Second))
	r := result{elapsed: time.Since(start), lag: lag}
	for _, v := range ph.openLat {
		if v < 0 {
			r.errors++
			continue
		}
		r.lat = append(r.lat, v)
	}
	r.n = len(r.lat)
	return r
}
