package engine

import "github.com/tracebridge/tracebridge/propagation"

type formatState struct {
	present bool
	valid   bool // parsed without problem
	hasIDs  bool // valid and carries trace and span ids (not sampling-only)
	ctx     propagation.SpanContext
}

// extraction is everything read from a request's trace headers. It lives on
// the stack: no allocation.
type extraction struct {
	f            [propagation.FormatCount]formatState
	problemsBuf  [8]HeaderProblem
	nProblems    int
	traceProblem bool
	tracestate   propagation.Problem
	baggage      propagation.Problem
	staleB3      bool
	stripDebug   bool
	// w3cFuture: the traceparent is valid but of a version above 00, so it
	// is rewritten as 00 even when it names the context's span.
	w3cFuture bool
}

func (x *extraction) addProblem(header string, p propagation.Problem) {
	if x.nProblems < len(x.problemsBuf) {
		x.problemsBuf[x.nProblems] = HeaderProblem{Header: header, Problem: p}
		x.nProblems++
	}
}

func (x *extraction) problems() []HeaderProblem { return x.problemsBuf[:x.nProblems] }

// extract parses every format the policy reads.
func (x *extraction) extract(c *Config, h Headers) { x.extractFormats(c, h, c.read) }

// extractFormats parses the given formats (in that precedence), then the
// cross-format rules and baggage.
func (x *extraction) extractFormats(c *Config, h Headers, formats []propagation.Format) {
	for _, f := range formats {
		st := &x.f[f]
		switch f {
		case propagation.FormatW3C:
			v, n := h.Get(propagation.HeaderTraceparent)
			if n == 0 {
				continue
			}
			st.present = true
			ctx, p := propagation.ParseTraceparentHeader(v, n)
			if p != propagation.OK {
				x.addProblem(propagation.HeaderTraceparent, p)
				x.traceProblem = true
				continue
			}
			st.valid, st.hasIDs, st.ctx = true, true, ctx
			x.w3cFuture = !propagation.TraceparentVersion00(v)
			// TC §3.3.1.1: tracestate travels with a valid traceparent only;
			// a malformed one is dropped, the traceparent stays valid.
			if ts, tn := h.Get(propagation.HeaderTracestate); tn > 0 {
				if p := propagation.ValidateTracestate(ts); p != propagation.OK {
					x.tracestate = p
					x.addProblem(propagation.HeaderTracestate, p)
				} else {
					st.ctx.TraceState = ts
				}
			}
		case propagation.FormatB3Single:
			v, n := h.Get(propagation.HeaderB3)
			if n == 0 {
				continue
			}
			st.present = true
			p := propagation.ProblemDuplicate
			var ctx propagation.SpanContext
			var ids bool
			if n == 1 {
				ctx, ids, p = propagation.ParseB3Single(v)
			}
			if p != propagation.OK {
				x.addProblem(propagation.HeaderB3, p)
				x.traceProblem = true
				continue
			}
			st.valid, st.hasIDs, st.ctx = true, ids, ctx
		case propagation.FormatB3Multi:
			var m propagation.B3Multi
			var counts [5]int
			m.TraceID, counts[0] = h.Get(propagation.HeaderB3TraceID)
			m.SpanID, counts[1] = h.Get(propagation.HeaderB3SpanID)
			m.ParentSpanID, counts[2] = h.Get(propagation.HeaderB3ParentSpanID)
			m.Sampled, counts[3] = h.Get(propagation.HeaderB3Sampled)
			m.Flags, counts[4] = h.Get(propagation.HeaderB3Flags)
			dup := ""
			for i, n := range counts {
				if n > 0 {
					st.present = true
				}
				if n > 1 && dup == "" {
					dup = propagation.FormatHeaders(propagation.FormatB3Multi)[i]
				}
			}
			if !st.present {
				continue
			}
			if dup != "" {
				x.addProblem(dup, propagation.ProblemDuplicate)
				x.traceProblem = true
				continue
			}
			ctx, ids, p := propagation.ParseB3Multi(m)
			if p != propagation.OK {
				x.addProblem(b3MultiProblemHeader(&m, p), p)
				x.traceProblem = true
				continue
			}
			st.valid, st.hasIDs, st.ctx = true, ids, ctx
		case propagation.FormatJaeger:
			v, n := h.Get(propagation.HeaderUberTraceID)
			if n == 0 {
				continue
			}
			st.present = true
			p := propagation.ProblemDuplicate
			var ctx propagation.SpanContext
			if n == 1 {
				ctx, p = propagation.ParseUberTraceID(v)
			}
			if p != propagation.OK {
				x.addProblem(propagation.HeaderUberTraceID, p)
				x.traceProblem = true
				continue
			}
			st.valid, st.hasIDs, st.ctx = true, true, ctx
		}
	}
	// docs/ENVOY.md §2: Envoy's Zipkin extractor reads the single b3 header
	// before x-b3-* (source/extensions/tracers/zipkin/span_context_extractor.cc)
	// but its injector never rewrites b3, so a b3 that disagrees with x-b3-*
	// is a stale copy a client or app forwarded: x-b3-* is authoritative.
	b3, multi := &x.f[propagation.FormatB3Single], &x.f[propagation.FormatB3Multi]
	if b3.hasIDs && multi.hasIDs && !b3.ctx.SameSpan(&multi.ctx) {
		x.staleB3 = true
		x.addProblem(propagation.HeaderB3, propagation.ProblemStale)
	}
	if v, n := h.Get(propagation.HeaderBaggage); n > 0 {
		if p := propagation.ValidateBaggage(v, c.baggageMembers, c.baggageBytes); p != propagation.OK {
			x.baggage = p
			x.addProblem(propagation.HeaderBaggage, p)
		}
	}
}

// b3MultiProblemHeader names the x-b3-* header a problem belongs to.
func b3MultiProblemHeader(m *propagation.B3Multi, p propagation.Problem) string {
	switch p {
	case propagation.ProblemSampled:
		return propagation.HeaderB3Sampled
	case propagation.ProblemFlags:
		return propagation.HeaderB3Flags
	case propagation.ProblemMissingSpanID:
		return propagation.HeaderB3SpanID
	case propagation.ProblemMissingTraceID:
		return propagation.HeaderB3TraceID
	}
	// An id problem: report the first id that does not parse on its own.
	var t propagation.B3Multi
	t.TraceID, t.SpanID = m.TraceID, "0000000000000001"
	if _, _, q := propagation.ParseB3Multi(t); q != propagation.OK {
		return propagation.HeaderB3TraceID
	}
	t.TraceID, t.SpanID = "0000000000000001", m.SpanID
	if _, _, q := propagation.ParseB3Multi(t); q != propagation.OK {
		return propagation.HeaderB3SpanID
	}
	return propagation.HeaderB3ParentSpanID
}

// primary is the first valid context with ids in read precedence; a stale
// single b3 never wins.
func (x *extraction) primary(c *Config) *formatState {
	// The host tracer's own formats are rewritten by Envoy on every hop
	// (docs/ENVOY.md §2: router injectContext): when present they are the
	// fresh context, whatever the read precedence says; the tracer's own
	// extraction order decides between them.
	if c.hostTracing {
		for _, tf := range c.tracerFormats {
			if x.f[tf].hasIDs {
				return &x.f[tf]
			}
		}
	}
	for _, f := range c.read {
		st := &x.f[f]
		if st.hasIDs && !(f == propagation.FormatB3Single && x.staleB3) {
			return st
		}
	}
	return nil
}

// hasTraceProblem reports a malformed trace header (tracestate and baggage
// problems never restart a trace).
func (x *extraction) hasTraceProblem() bool { return x.traceProblem }

// samplingOnly returns a sampling decision sent without ids (b3: 0,
// x-b3-sampled alone), which a new context inherits.
func (x *extraction) samplingOnly() (propagation.Sampling, bool) {
	for _, f := range [...]propagation.Format{propagation.FormatB3Single, propagation.FormatB3Multi} {
		st := &x.f[f]
		if st.valid && !st.hasIDs && st.ctx.Sampling != propagation.SamplingDefer {
			return st.ctx.Sampling, true
		}
	}
	return propagation.SamplingDefer, false
}

// forget marks every present format as not agreeing with anything, so that
// a restart rewrites or removes it.
func (x *extraction) forget() {
	for i := range x.f {
		x.f[i].valid, x.f[i].hasIDs = false, false
	}
	x.staleB3 = false
}

// passBlocksInjection: under invalid=pass a new context must not overwrite a
// malformed header the policy leaves alone, so injection is skipped when one
// of the formats it would write is present and malformed.
func (x *extraction) passBlocksInjection(c *Config) bool {
	if c.invalid != InvalidPass {
		return false
	}
	for _, f := range c.inject {
		if st := &x.f[f]; st.present && !st.valid {
			return true
		}
	}
	return false
}
