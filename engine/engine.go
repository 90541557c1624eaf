package engine

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"github.com/tracebridge/tracebridge/propagation"
)

// Headers is the read side of a header map (lower-case names). When a header
// occurs more than once, Get returns the values joined with "," (RFC 9110
// §5.3) and the number of occurrences.
type Headers = propagation.Headers

// IDSource makes new identifiers; both must be non-zero, and trace ids must
// be random in at least their right-most 7 bytes (the engine sets the W3C
// random-trace-id flag on every context it makes).
type IDSource interface {
	TraceID() propagation.TraceID
	SpanID() propagation.SpanID
}

// RandomIDs draws identifiers from math/rand/v2's runtime-seeded generator:
// safe for concurrent use, no allocation, and seeded from the host's entropy
// (WASI random_get in the wasm module).
type RandomIDs struct{}

func (RandomIDs) TraceID() (t propagation.TraceID) {
	for t.IsZero() {
		hi, lo := rand.Uint64(), rand.Uint64()
		for i := 0; i < 8; i++ {
			t[i] = byte(hi >> (56 - 8*i))
			t[8+i] = byte(lo >> (56 - 8*i))
		}
	}
	return t
}

func (RandomIDs) SpanID() (s propagation.SpanID) {
	for s.IsZero() {
		v := rand.Uint64()
		for i := 0; i < 8; i++ {
			s[i] = byte(v >> (56 - 8*i))
		}
	}
	return s
}

// Options are the engine's host-provided parts.
type Options struct {
	// Store holds correlation records; nil disables recording and restoring.
	Store Store
	// IDs makes new trace and span ids (default RandomIDs).
	IDs IDSource
	// Now is the clock for debug-token expiry and client span start times
	// (default time.Now).
	Now func() time.Time
	// ReportsClientSpans: the adapter finishes and reports the client spans
	// the engine starts (policy clientSpans). Without it the engine starts
	// none, so that no request names a parent span nobody reports.
	ReportsClientSpans bool
}

// Engine applies a compiled policy to requests. It is safe for concurrent
// use: all per-request state lives in the caller's Stream and Result.
type Engine struct {
	cfg   *Config
	store Store
	ids   IDSource
	// unixNow is the clock in Unix seconds. Not a func() time.Time field:
	// a struct field of that type marks time.Time as used in an interface
	// (the plugin's context holds the engine), which keeps time's
	// formatting code in the wasm module.
	unixNow func() int64
	// nanoNow is the clock of client span start times, in Unix nanoseconds.
	nanoNow func() int64
	// narrow is the store's narrowed-strategy part (nil when it has none);
	// narrowKey its prepared fingerprint key.
	narrow    NarrowStore
	narrowKey narrowKeyCache
	// clientSpans: policy clientSpans is on and the adapter reports them.
	clientSpans bool
}

// New builds an engine for a compiled policy.
func New(cfg *Config, opts Options) *Engine {
	e := &Engine{cfg: cfg, store: opts.Store, ids: opts.IDs, clientSpans: cfg.clientSpans != nil && opts.ReportsClientSpans}
	if ns, ok := opts.Store.(NarrowStore); ok && cfg.narrowed {
		e.narrow = ns
	}
	if e.ids == nil {
		e.ids = RandomIDs{}
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	e.unixNow = func() int64 { return now().Unix() }
	e.nanoNow = func() int64 { return now().UnixNano() }
	return e
}

// Config returns the engine's compiled policy.
func (e *Engine) Config() *Config { return e.cfg }

// Request is one request as the adapter sees it.
type Request struct {
	Headers Headers
	// Direction from the host (ignored when the policy pins one).
	Direction Direction
	// Source is the downstream peer address, when the host knows it.
	Source netip.Addr
	// PeerPrincipal is the downstream mTLS peer's URI SAN, when known
	// (Envoy attribute connection.uri_san_peer_certificate).
	PeerPrincipal string
}

// Origin says where a request's outgoing context came from.
type Origin uint8

const (
	OriginNone      Origin = iota
	OriginIncoming         // the request carried it
	OriginRestored         // restored from the correlation store
	OriginGenerated        // injected or restarted here
)

// Stream is the per-stream state an adapter keeps between OnRequest,
// OnResponse and OnDone. The zero value is ready to use.
type Stream struct {
	Direction Direction
	Context   propagation.SpanContext
	Origin    Origin
	respond   bool
	inFlight  bool
	owner     uint64
	// narrowIn: the request is in the narrowed strategy's in-flight set.
	narrowIn bool
	// ClientSpan is the span started for this outbound request, which the
	// adapter finishes when the stream ends (Valid() false: none).
	ClientSpan ClientSpan
}

// Reset makes the stream reusable.
func (s *Stream) Reset() { *s = Stream{} }

// effectiveDirection applies the policy's pin.
// ReadsDirection, ReadsSource and ReadsPeerPrincipal say whether OnRequest
// uses the Request field of that name under this policy, so that an adapter
// can skip fetching the others (in the wasm filter each is a host call).
func (c *Config) ReadsDirection() bool { return c.pinned == DirectionUnknown }

// ReadsSource: see ReadsDirection.
func (c *Config) ReadsSource() bool { return len(c.untrustedCIDRs) > 0 }

// ReadsPeerPrincipal: see ReadsDirection.
func (c *Config) ReadsPeerPrincipal() bool { return len(c.trustedPrincipals) > 0 }

func (e *Engine) effectiveDirection(d Direction) Direction {
	if e.cfg.pinned != DirectionUnknown {
		return e.cfg.pinned
	}
	return d
}

// OnRequest decides what to do with a request's headers.
func (e *Engine) OnRequest(st *Stream, req *Request, res *Result) {
	res.Reset()
	defer res.finish()
	c := e.cfg
	dir := e.effectiveDirection(req.Direction)
	st.Direction = dir
	h := req.Headers

	var x extraction
	x.extract(c, h)

	// Trust first: it decides whether a client may steer sampling at all.
	debug := false
	if c.debugHeader != "" {
		if v, n := h.Get(c.debugHeader); n > 0 {
			debug = e.debugTokenValid(v, n)
			res.remove(c.debugHeader) // valid, expired or forged: never forwarded
		}
	}
	untrusted := !debug && e.untrusted(dir, req.Source, req.PeerPrincipal, h)
	restart := false
	if untrusted {
		e.stripOwned(h, res)
		switch c.trustAction {
		case TrustStrip:
			stripForcing(h, res)
			x.stripDebug = true
		case TrustRestart:
			if p := x.primary(c); p != nil {
				e.untrustedTag(res, p.ctx.TraceID)
			}
			restart = true
			res.Decisions.add(DecisionRestarted)
			stripForcing(h, res)
		}
	}

	// Malformed headers, per policy.
	if !restart && x.nProblems > 0 {
		switch c.invalid {
		case InvalidReject:
			e.reject(res, x.problemsBuf[0])
			return
		case InvalidRestart:
			if x.hasTraceProblem() {
				restart = true
				res.Decisions.add(DecisionRestarted)
			}
		}
	}
	for _, p := range x.problems() {
		res.problem(p.Header, p.Problem)
	}

	var ctx propagation.SpanContext
	var view Headers = h
	origin := OriginNone
	if !restart {
		if p := x.primary(c); p != nil {
			ctx = p.ctx
			origin = OriginIncoming
		}
	}
	// TC2 "Random Trace ID Flag": an outgoing traceparent that keeps the
	// incoming trace id keeps its random flag, also when another format
	// (the host tracer's, or a higher-precedence one) is the context.
	if w := &x.f[propagation.FormatW3C]; origin == OriginIncoming && w.hasIDs && w.ctx.TraceID == ctx.TraceID {
		ctx.Random = w.ctx.Random
	}
	if origin == OriginNone && !restart && dir == Outbound {
		if ov, ok := e.restore(h, res); ok {
			var rx extraction
			rx.extract(c, ov)
			if p := rx.primary(c); p != nil {
				ctx, origin, view, x = p.ctx, OriginRestored, ov, rx
			}
		}
		if origin != OriginRestored {
			res.Strategy = StrategyNone
		}
	}
	traceProblem := x.hasTraceProblem() && c.invalid != InvalidPass
	if origin == OriginNone && (restart || traceProblem || c.injectOn && !x.passBlocksInjection(c)) {
		// Every trace id tracebridge makes is random (IDSource), so the new
		// context carries the random flag (TC2 "Random Trace ID Flag": SHOULD
		// be set when the right-most 7 bytes are random).
		ctx = propagation.SpanContext{TraceID: e.ids.TraceID(), SpanID: e.ids.SpanID(), Sampling: c.injectSample, Random: true}
		if s, ok := x.samplingOnly(); ok && !restart {
			ctx.Sampling = s
		}
		origin = OriginGenerated
		if restart {
			x.forget()
		} else if traceProblem {
			res.Decisions.add(DecisionRestarted)
		} else {
			res.Decisions.add(DecisionInjected)
		}
	}
	if untrusted && c.trustAction == TrustStrip && ctx.Sampling == propagation.SamplingDebug {
		ctx.Sampling = propagation.SamplingAccept
		res.Decisions.add(DecisionStripped)
	}
	if debug && ctx.Valid() {
		ctx.Sampling = propagation.SamplingDebug
	}

	recorded := ctx
	if e.clientSpans && dir == Outbound && (origin == OriginRestored || origin == OriginGenerated) {
		e.startClientSpan(&ctx, origin, res)
	}
	if ctx.Valid() {
		e.emit(&x, view, &ctx, &recorded, origin, restart || debug, res)
	} else {
		e.cleanInvalid(&x, h, res)
	}
	e.fixBaggage(&x, res)

	res.Context = ctx
	st.Context, st.Origin = ctx, origin
	st.ClientSpan = res.ClientSpan
	st.respond = c.responseOn && ctx.Valid() && (origin == OriginIncoming || c.upstream || !c.hostTracing)

	if len(c.tags) > 0 {
		e.applyTags(dir, h, untrusted, res)
	}
	if dir == Inbound && e.store != nil {
		res.finish()
		e.record(st, h, res, ctx.Valid())
	}
	if origin == OriginIncoming && res.Decisions&(1<<DecisionRepaired|1<<DecisionTranslated|1<<DecisionRestarted) == 0 {
		res.Decisions.add(DecisionKept)
	}
}

// OnResponse adds the trace context to the response: a "trace" metric in
// server-timing, or a traceresponse header, by policy.
func (e *Engine) OnResponse(st *Stream, h Headers, res *Result) {
	res.Reset()
	if !st.respond {
		return
	}
	if name := e.cfg.responseName; name != "" {
		if _, n := h.Get(name); n > 0 {
			return // the app answered with its own, more precise span
		}
		off := len(res.buf)
		res.buf = propagation.AppendTraceresponse(res.buf, &st.Context)
		res.setBuf(name, off)
		res.finish()
		return
	}
	// TC2 "Trace Context Server Timing Metric Format". The app's own
	// server-timing metrics are kept byte for byte: the trace metric is
	// appended to the list (one field line with the app's lines joined by
	// commas, which RFC 9110 §5.3 makes equivalent).
	cur, n := h.Get(propagation.HeaderServerTiming)
	off := len(res.buf)
	if n > 0 {
		_, found, open := propagation.FindServerTimingMetric(cur, propagation.ServerTimingTraceMetric)
		if found {
			return // the app's own trace metric, more precise; never two
		}
		if open {
			// A quoted string left open would swallow anything appended:
			// the header is left as the app sent it.
			res.problem(propagation.HeaderServerTiming, propagation.ProblemUnterminated)
			return
		}
		if trimmed := strings.TrimRight(cur, " \t"); trimmed != "" {
			res.buf = append(res.buf, trimmed...)
			res.buf = append(res.buf, ", "...)
		}
	}
	res.buf = propagation.AppendServerTimingTrace(res.buf, &st.Context)
	res.setBuf(propagation.HeaderServerTiming, off)
	res.finish()
}

// OnDone ends a stream: the sole-in-flight counter is decremented exactly
// once, however the stream ended. It returns DecisionError in the set when
// the store failed.
func (e *Engine) OnDone(st *Stream) Decisions {
	var d Decisions
	if st.inFlight && e.store != nil {
		st.inFlight = false
		if err := e.store.Leave(st.owner); err != nil {
			d.add(DecisionError)
		}
	}
	if st.narrowIn && e.narrow != nil {
		st.narrowIn = false
		if err := e.narrow.LeaveNarrow(st.owner); err != nil {
			d.add(DecisionError)
		}
	}
	return d
}

func stripForcing(h Headers, res *Result) {
	for _, name := range propagation.ForcingHeaders {
		if _, n := h.Get(name); n > 0 {
			res.remove(name)
			res.Decisions.add(DecisionStripped)
		}
	}
}

func (e *Engine) reject(res *Result, p HeaderProblem) {
	res.Decisions.add(DecisionRejected)
	res.problem(p.Header, p.Problem)
	res.reply = Reply{
		Status:      400,
		ContentType: "application/json",
		Body: `{"error":"invalid_trace_context","header":"` + p.Header +
			`","reason":"` + p.Problem.String() + `","code":"` + p.Problem.Code() + `"}`,
	}
	res.Reply = &res.reply
	res.Mutations = res.Mutations[:0]
}
