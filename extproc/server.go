package extproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tracebridge/tracebridge/engine"
	"github.com/tracebridge/tracebridge/extproc/store"
)

// Options configure a Server. The zero value works: JSON logs discarded,
// fresh metrics, the memory store, inbound direction.
type Options struct {
	Logger  *slog.Logger
	Metrics *Metrics
	// Stores provides the correlation store (default store.Memory).
	Stores store.Provider
	// Direction is given to the engine when the policy's direction is "auto"
	// and Envoy did not send the xds.listener_direction attribute (default
	// engine.Inbound: ext_proc usually sits beside a gateway or waypoint,
	// where requests arrive from clients).
	Direction engine.Direction
	// Env resolves environment variables named by the policy (default os.Getenv).
	Env func(string) string
	// AllowEnvoyHeaders lets mutations of x-envoy-* headers through (the
	// engine removes x-envoy-force-trace from untrusted requests). Envoy
	// ignores them unless the filter's mutation_rules has allow_envoy: true;
	// set both or neither. Pseudo-headers and host are never sent.
	AllowEnvoyHeaders bool
	// Now is the engine's clock (default time.Now); with the default
	// store.Memory it is the store's clock too.
	Now func() time.Time
	// Spans reports the client spans of a policy with clientSpans on; nil:
	// the engine starts none (and changes no parent-id).
	Spans *SpanReporter
}

// Server implements envoy.service.ext_proc.v3.ExternalProcessor.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer

	log    *slog.Logger
	m      *Metrics
	stores store.Provider
	dir    engine.Direction
	env    func(string) string
	now    func() time.Time
	envoyH bool
	spans  *SpanReporter

	eng      atomic.Pointer[engine.Engine]
	gen      atomic.Int64
	draining atomic.Bool
	active   atomic.Int64
	panicLog *rateLimitedLog
	storeLog *rateLimitedLog
	pool     sync.Pool
}

// NewServer compiles p (nil: the zero-config default) and returns a server
// ready to register on a grpc.Server.
func NewServer(p *engine.Policy, o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	if o.Stores == nil {
		o.Stores = &store.Memory{Now: o.Now}
	}
	if o.Direction == engine.DirectionUnknown {
		o.Direction = engine.Inbound
	}
	if o.Env == nil {
		o.Env = os.Getenv
	}
	s := &Server{log: o.Logger, m: o.Metrics, stores: o.Stores, dir: o.Direction, env: o.Env, now: o.Now, envoyH: o.AllowEnvoyHeaders, spans: o.Spans}
	s.panicLog = newRateLimitedLog(s.log, time.Second)
	s.storeLog = newRateLimitedLog(s.log, time.Second)
	s.pool.New = func() any { return new(procStream) }
	if err := s.SetPolicy(p); err != nil {
		return nil, err
	}
	return s, nil
}

// SetPolicy compiles p and makes it the policy of every stream opened from
// now on; open streams finish with the engine they started with. On error
// the current policy stays.
func (s *Server) SetPolicy(p *engine.Policy) error {
	cfg, err := engine.Compile(p, s.env)
	if err != nil {
		return err
	}
	counted := &countingStore{s: s.stores.StoreFor(cfg), m: s.m, log: s.storeLog}
	s.eng.Store(engine.New(cfg, engine.Options{Store: counted, Now: s.now, ReportsClientSpans: s.spans != nil}))
	s.m.policyInfo.Set(float64(s.gen.Add(1)))
	return nil
}

func (s *Server) nowTime() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

// Engine returns the engine new streams use.
func (s *Server) Engine() *engine.Engine { return s.eng.Load() }

// Generation counts successful SetPolicy calls (1 after NewServer).
func (s *Server) Generation() int64 { return s.gen.Load() }

// OpenStreams is the number of streams being served.
func (s *Server) OpenStreams() int64 { return s.active.Load() }

// Drain makes the server refuse new streams with UNAVAILABLE; open streams
// continue. (grpc.Server.GracefulStop does the same at the transport level.)
func (s *Server) Drain() { s.draining.Store(true) }

// Draining reports whether Drain was called.
func (s *Server) Draining() bool { return s.draining.Load() }

// errEmptyRequest ends a stream whose ProcessingRequest carries no message at
// all: there is no reply kind that could answer it.
var errEmptyRequest = status.Error(codes.InvalidArgument, "tracebridge: ProcessingRequest with no request, response or flow-control message")

// Process serves one ext_proc stream (one HTTP request).
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) (err error) {
	if s.draining.Load() {
		s.m.streamsRefused.Inc()
		return status.Error(codes.Unavailable, "tracebridge-extproc is draining")
	}
	s.m.streamsActive.Add(1)
	s.active.Add(1)
	ps := s.pool.Get().(*procStream)
	ps.begin(s)
	defer func() {
		ps.end()
		s.pool.Put(ps)
		s.m.streamsActive.Add(-1)
		s.active.Add(-1)
		if r := recover(); r != nil {
			s.recovered("stream", r)
			err = status.Error(codes.Internal, "tracebridge: internal error")
		}
	}()
	ctx := stream.Context()
	for {
		req, rerr := stream.Recv()
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return nil
			}
			if ctx.Err() != nil {
				return status.FromContextError(ctx.Err()).Err()
			}
			return rerr
		}
		start := time.Now()
		resp, kind, herr := ps.safeHandle(req)
		if herr != nil {
			return herr
		}
		if resp != nil && !req.ObservabilityMode {
			if serr := stream.Send(resp); serr != nil {
				return serr
			}
		}
		s.m.duration[kind].Observe(time.Since(start).Seconds())
	}
}

// recovered counts and logs a recovered panic (rate-limited, with a stack).
func (s *Server) recovered(where string, r any) {
	s.m.panics.Inc()
	s.m.decisions[engine.DecisionError].Inc()
	s.panicLog.Warn("recovered panic; request continues unchanged", "where", where, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
}

// debugEnabled avoids building debug records nobody reads.
func (s *Server) debugEnabled() bool {
	return s.log.Enabled(context.Background(), slog.LevelDebug)
}
