package app

import (
	"flag"
	"fmt"
	"runtime"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Limits bound what one client connection can make the gRPC server hold.
// Without them a client that grants no flow-control window keeps each of an
// unbounded number of streams open with a dynamically grown receive window
// and its queued replies.
//
// Per connection the server holds at most about
//
//	MaxConcurrentStreams × (MaxMessageBytes + StreamWindowBytes + MaxHeaderListBytes + 64 KiB)
//
// (the request being handled, the data received behind it, the stream's
// headers, and gRPC's per-stream write quota for replies; the connection
// window is shared by the streams' windows); with the defaults 100 × 1.19 MiB
// ≈ 119 MiB, and about 20 MiB for clients that send headers-sized messages.
type Limits struct {
	// MaxMessageBytes is the largest ProcessingRequest accepted.
	MaxMessageBytes int
	// MaxConcurrentStreams is advertised as SETTINGS_MAX_CONCURRENT_STREAMS;
	// streams beyond it are reset with REFUSED_STREAM (RFC 9113 §5.1.2).
	MaxConcurrentStreams uint32
	// StreamWindowBytes and ConnWindowBytes are static HTTP/2 receive
	// windows (RFC 9113 §6.9.2): gRPC's dynamic window growth is off.
	StreamWindowBytes int32
	ConnWindowBytes   int32
	// MaxHeaderListBytes bounds a stream's request headers (gRPC metadata),
	// advertised as SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113 §6.5.2).
	MaxHeaderListBytes uint32
	// KeepaliveTime is how long a connection may be silent before the
	// server pings it; KeepaliveTimeout how long the ping may go unanswered
	// before the connection is closed (with every stream it holds).
	KeepaliveTime    time.Duration
	KeepaliveTimeout time.Duration
	// KeepaliveMinTime is the shortest interval between a client's pings;
	// a client pinging faster is sent GOAWAY (ENHANCE_YOUR_CALM).
	KeepaliveMinTime time.Duration
}

// DefaultLimits are tracebridge-extproc's defaults. Envoy's HTTP/2
// connection pool opens another connection when the peer's stream limit is
// reached (source/common/http/http2/conn_pool.cc; since Envoy 1.17.4), so the
// stream limit bounds memory without capping the request rate; 100 is the
// smallest limit RFC 9113 §6.5.2 recommends. 1 MiB per message is 17 times
// Envoy's default limit on request headers (max_request_headers_kb, 60 KiB,
// api/envoy/config/core/v3/protocol.proto).
func DefaultLimits() Limits {
	return Limits{
		MaxMessageBytes:      1 << 20,
		MaxConcurrentStreams: 100,
		StreamWindowBytes:    64 << 10,
		ConnWindowBytes:      1 << 20,
		MaxHeaderListBytes:   64 << 10,
		KeepaliveTime:        30 * time.Second,
		KeepaliveTimeout:     10 * time.Second,
		KeepaliveMinTime:     5 * time.Second,
	}
}

// limitFlags registers the flags of l (defaults: the current values).
func (l *Limits) flags(fs *flag.FlagSet) *limitFlagValues {
	v := &limitFlagValues{}
	fs.IntVar(&l.MaxMessageBytes, "max-message-bytes", l.MaxMessageBytes, "largest ProcessingRequest accepted (bytes); larger ones end the stream with RESOURCE_EXHAUSTED")
	fs.Uint64Var(&v.streams, "max-concurrent-streams", uint64(l.MaxConcurrentStreams), "streams one client connection may have open; more are refused (REFUSED_STREAM)")
	fs.Int64Var(&v.streamWindow, "stream-window-bytes", int64(l.StreamWindowBytes), "HTTP/2 receive window of each stream (bytes, static)")
	fs.Int64Var(&v.connWindow, "conn-window-bytes", int64(l.ConnWindowBytes), "HTTP/2 receive window of each connection (bytes, static)")
	fs.Uint64Var(&v.headerList, "max-header-list-bytes", uint64(l.MaxHeaderListBytes), "largest header list (gRPC metadata) of a stream (bytes)")
	fs.DurationVar(&l.KeepaliveTime, "keepalive-time", l.KeepaliveTime, "ping a connection silent for this long")
	fs.DurationVar(&l.KeepaliveTimeout, "keepalive-timeout", l.KeepaliveTimeout, "close a connection whose ping is unanswered for this long")
	fs.DurationVar(&l.KeepaliveMinTime, "keepalive-min-time", l.KeepaliveMinTime, "shortest interval allowed between a client's pings; faster clients are sent GOAWAY")
	return v
}

// limitFlagValues holds the flags whose types the flag package lacks.
type limitFlagValues struct {
	streams, headerList      uint64
	streamWindow, connWindow int64
}

type limitRange struct {
	flag     string
	val      int64
	min, max int64
}

// apply checks the ranges and copies the values into l. The error names the
// flag.
func (v *limitFlagValues) apply(l *Limits) error {
	ranges := []limitRange{
		{"--max-message-bytes", int64(l.MaxMessageBytes), 1 << 10, 64 << 20},
		{"--max-concurrent-streams", clampInt64(v.streams), 1, 10000},
		// gRPC ignores windows below 64 KiB; RFC 9113 §6.9.1 caps them at 2^31-1.
		{"--stream-window-bytes", v.streamWindow, 64 << 10, 16 << 20},
		{"--conn-window-bytes", v.connWindow, 64 << 10, 256 << 20},
		{"--max-header-list-bytes", clampInt64(v.headerList), 4 << 10, 16 << 20},
		{"--keepalive-time", int64(l.KeepaliveTime), int64(time.Second), int64(24 * time.Hour)},
		{"--keepalive-timeout", int64(l.KeepaliveTimeout), int64(time.Second), int64(10 * time.Minute)},
		{"--keepalive-min-time", int64(l.KeepaliveMinTime), int64(time.Second), int64(time.Hour)},
	}
	for _, r := range ranges {
		if r.val < r.min || r.val > r.max {
			return fmt.Errorf("%s must be between %s and %s, got %s", r.flag, r.format(r.min), r.format(r.max), r.format(r.val))
		}
	}
	l.MaxConcurrentStreams = uint32(v.streams)
	l.StreamWindowBytes = int32(v.streamWindow)
	l.ConnWindowBytes = int32(v.connWindow)
	l.MaxHeaderListBytes = uint32(v.headerList)
	return nil
}

func (r limitRange) format(n int64) string {
	switch r.flag {
	case "--keepalive-time", "--keepalive-timeout", "--keepalive-min-time":
		return time.Duration(n).String()
	}
	return fmt.Sprint(n)
}

func clampInt64(u uint64) int64 { return int64(min(u, 1<<62)) }

// ServerOptions are the gRPC server options of these limits (TLS aside).
//
// NumStreamWorkers runs streams on long-lived goroutines instead of one new
// goroutine per stream (one per HTTP request): a fresh goroutine starts with
// a 2 KiB stack and grows it by copying, several times per stream, which cost
// about a tenth of the server's CPU under load. When every worker is busy,
// gRPC falls back to a new goroutine, so the count is no limit on streams.
func (l Limits) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(l.MaxMessageBytes),
		grpc.MaxConcurrentStreams(l.MaxConcurrentStreams),
		grpc.StaticStreamWindowSize(l.StreamWindowBytes),
		grpc.StaticConnWindowSize(l.ConnWindowBytes),
		grpc.MaxHeaderListSize(l.MaxHeaderListBytes),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: l.KeepaliveTime, Timeout: l.KeepaliveTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: l.KeepaliveMinTime, PermitWithoutStream: true}),
		grpc.NumStreamWorkers(uint32(max(64, 32*runtime.GOMAXPROCS(0)))),
	}
}

// ServerOptions are the gRPC server options of tracebridge-extproc with the
// default limits and the given message limit. benchtools/extproc gives its no-op
// baseline server the same ones, so that the comparison measures
// tracebridge's work and nothing else.
func ServerOptions(maxMessageBytes int) []grpc.ServerOption {
	l := DefaultLimits()
	l.MaxMessageBytes = maxMessageBytes
	return l.ServerOptions()
}
