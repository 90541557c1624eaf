package engine

import "github.com/tracebridge/tracebridge/propagation"

// emit makes every format consistent with ctx: formats that agree are kept,
// formats that disagree or are malformed are rewritten (when emitted) or
// removed, and emitted formats that are absent are added.
//
// recorded is ctx before a client span of tracebridge's own took its span id:
// a format that agrees with it was not broken, only re-parented.
func (e *Engine) emit(x *extraction, view Headers, ctx, recorded *propagation.SpanContext, origin Origin, force bool, res *Result) {
	c := e.cfg
	targets := &c.emit
	var injectSet [propagation.FormatCount]bool
	if origin == OriginGenerated && !force {
		for _, f := range c.inject {
			injectSet[f] = true
		}
		targets = &injectSet
	}
	for _, f := range propagation.Formats {
		st := &x.f[f]
		if st.present {
			if !c.reads(f) && !targets[f] {
				continue // neither read nor written: not ours to touch.
			}
			if !force && st.hasIDs && !(f == propagation.FormatB3Single && x.staleB3) && agrees(&st.ctx, ctx, x.stripDebug) &&
				!(f == propagation.FormatW3C && (x.w3cFuture || st.ctx.Random != ctx.Random)) {
				continue
			}
			if !st.valid && c.invalid == InvalidPass {
				continue
			}
			if f == propagation.FormatB3Single && x.staleB3 && c.invalid == InvalidPass {
				continue
			}
			reparented := ctx.SpanID != recorded.SpanID && st.hasIDs && agrees(&st.ctx, recorded, x.stripDebug)
			if targets[f] {
				if reparented && st.ctx.Sampling == propagation.SamplingDefer && ctx.Sampling != propagation.SamplingDefer {
					// Only the span id changes: a format that deferred the
					// sampling decision (b3 without a sampled field) keeps
					// deferring, whatever the primary format (traceparent,
					// which cannot defer) says.
					wctx := *ctx
					wctx.Sampling = propagation.SamplingDefer
					e.write(f, x, view, &wctx, res)
				} else {
					e.write(f, x, view, ctx, res)
				}
			} else {
				removeFormat(f, view, res)
			}
			// A rewrite whose only reason is the debug downgrade is counted as
			// "stripped" (by the caller), not as a repair.
			debugOnly := x.stripDebug && st.hasIDs && agrees(&st.ctx, ctx, false)
			if (origin == OriginIncoming || origin == OriginRestored) && !debugOnly && !reparented {
				res.Decisions.add(DecisionRepaired)
			}
			continue
		}
		if targets[f] {
			e.write(f, x, view, ctx, res)
			if origin == OriginIncoming {
				res.Decisions.add(DecisionTranslated)
			}
		}
	}
	// A malformed tracestate next to a valid traceparent is dropped (TC
	// §3.3.1.1: an unparseable tracestate is discarded, the traceparent
	// stands).
	if x.tracestate != propagation.OK && c.invalid != InvalidPass {
		if _, set := res.Set(propagation.HeaderTracestate); !set {
			res.remove(propagation.HeaderTracestate)
			res.Decisions.add(DecisionRepaired)
		}
	}
}

// cleanInvalid removes malformed trace headers when no context is left to
// rewrite them from (and no new one was made).
func (e *Engine) cleanInvalid(x *extraction, h Headers, res *Result) {
	if e.cfg.invalid == InvalidPass {
		return
	}
	for _, f := range propagation.Formats {
		st := &x.f[f]
		if st.present && !st.valid {
			removeFormat(f, h, res)
			res.Decisions.add(DecisionRepaired)
		}
	}
}

// fixBaggage drops a baggage header that breaks the grammar or the limits
// (W3C Baggage §3.3.2 lets a hop drop baggage it cannot propagate whole).
func (e *Engine) fixBaggage(x *extraction, res *Result) {
	if x.baggage != propagation.OK && e.cfg.invalid != InvalidPass {
		res.remove(propagation.HeaderBaggage)
		res.Decisions.add(DecisionRepaired)
	}
}

// agrees: same trace and span, and no contradicting sampling decision (a
// deferred decision contradicts nothing).
func agrees(a, b *propagation.SpanContext, stripDebug bool) bool {
	if !a.SameSpan(b) {
		return false
	}
	if stripDebug && a.Sampling == propagation.SamplingDebug {
		return false
	}
	if a.Sampling == propagation.SamplingDefer || b.Sampling == propagation.SamplingDefer {
		return true
	}
	return a.Sampling.Sampled() == b.Sampling.Sampled()
}

// ReadsFormat reports whether the policy reads the named format.
func (c *Config) ReadsFormat(name string) bool {
	f, ok := propagation.ParseFormat(name)
	return ok && c.reads(f)
}

func (c *Config) reads(f propagation.Format) bool {
	for _, r := range c.read {
		if r == f {
			return true
		}
	}
	return false
}

// write sets format f from ctx, removing the format's headers that ctx does
// not fill (a stale x-b3-parentspanid, x-b3-flags on a non-debug context).
func (e *Engine) write(f propagation.Format, x *extraction, view Headers, ctx *propagation.SpanContext, res *Result) {
	var off int
	switch f {
	case propagation.FormatW3C:
		off = len(res.buf)
		res.buf = propagation.AppendTraceparent(res.buf, ctx)
		res.setBuf(propagation.HeaderTraceparent, off)
		if ctx.TraceState != "" {
			if cur, _ := view.Get(propagation.HeaderTracestate); cur != ctx.TraceState {
				res.set(propagation.HeaderTracestate, ctx.TraceState)
			}
		} else {
			// W3C Trace Context §3.3: tracestate describes the traceparent it
			// accompanies. ctx carries none, so whatever tracestate the
			// request has came with no traceparent, an invalid one or one
			// that lost to another format: another trace's vendor state.
			removeIfPresent(view, res, propagation.HeaderTracestate)
		}
	case propagation.FormatB3Single:
		off = len(res.buf)
		res.buf = propagation.AppendB3Single(res.buf, ctx)
		res.setBuf(propagation.HeaderB3, off)
	case propagation.FormatB3Multi:
		off = len(res.buf)
		res.buf = propagation.AppendB3TraceID(res.buf, ctx)
		res.setBuf(propagation.HeaderB3TraceID, off)
		off = len(res.buf)
		res.buf = propagation.AppendHexSpanID(res.buf, ctx.SpanID)
		res.setBuf(propagation.HeaderB3SpanID, off)
		if !ctx.ParentSpanID.IsZero() {
			off = len(res.buf)
			res.buf = propagation.AppendHexSpanID(res.buf, ctx.ParentSpanID)
			res.setBuf(propagation.HeaderB3ParentSpanID, off)
		} else {
			removeIfPresent(view, res, propagation.HeaderB3ParentSpanID)
		}
		if s := propagation.B3SampledValue(ctx.Sampling); s != "" {
			res.set(propagation.HeaderB3Sampled, s)
		} else {
			removeIfPresent(view, res, propagation.HeaderB3Sampled)
		}
		if ctx.Sampling == propagation.SamplingDebug {
			res.set(propagation.HeaderB3Flags, "1")
		} else {
			removeIfPresent(view, res, propagation.HeaderB3Flags)
		}
	case propagation.FormatJaeger:
		off = len(res.buf)
		res.buf = propagation.AppendUberTraceID(res.buf, ctx)
		res.setBuf(propagation.HeaderUberTraceID, off)
	}
}

func removeFormat(f propagation.Format, view Headers, res *Result) {
	for _, name := range propagation.FormatHeaders(f) {
		removeIfPresent(view, res, name)
	}
}

func removeIfPresent(view Headers, res *Result, name string) {
	if _, n := view.Get(name); n > 0 {
		res.remove(name)
	}
}
