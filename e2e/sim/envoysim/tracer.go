package envoysim

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"time"
)

// SpanKind is the Zipkin/OTLP kind of a span Envoy reports.
type SpanKind string

// Span kinds: an inbound (ingress) HCM reports SERVER spans, an outbound
// (egress) HCM CLIENT spans (source/common/tracing/http_tracer_impl.cc,
// operation name Ingress/Egress).
const (
	KindServer SpanKind = "SERVER"
	KindClient SpanKind = "CLIENT"
)

// Span is an Envoy span. A nil *Span is Envoy's NullSpan: it injects nothing
// and reports nothing.
type Span struct {
	TraceIDHigh uint64 // 0 for a 64-bit trace id
	TraceID     uint64
	SpanID      uint64
	ParentID    uint64 // 0: root
	Sampled     bool
	Kind        SpanKind
	Name        string
	Service     string
	Start       time.Time
	Duration    time.Duration
	TraceState  string // OpenTelemetry only

	mu   sync.Mutex
	Tags map[string]string
}

// TraceIDHex is the trace id as lower-case hex (32 digits when 128-bit).
func (s *Span) TraceIDHex() string {
	if s.TraceIDHigh != 0 {
		return hex64(s.TraceIDHigh) + hex64(s.TraceID)
	}
	return hex64(s.TraceID)
}

// SpanIDHex is the span id as 16 hex digits.
func (s *Span) SpanIDHex() string { return hex64(s.SpanID) }

// ParentIDHex is the parent id ("" for a root).
func (s *Span) ParentIDHex() string {
	if s.ParentID == 0 {
		return ""
	}
	return hex64(s.ParentID)
}

// SetTag sets a tag.
func (s *Span) SetTag(k, v string) {
	s.mu.Lock()
	if s.Tags == nil {
		s.Tags = map[string]string{}
	}
	s.Tags[k] = v
	s.mu.Unlock()
}

func hex64(v uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return hex.EncodeToString(b[:])
}

func randID() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:])
		if v := binary.BigEndian.Uint64(b[:]); v != 0 {
			return v
		}
	}
}

// errMalformed is an extraction failure: Envoy answers it with a NullSpan.
var errMalformed = errors.New("malformed trace context")

// Tracer is one of Envoy's tracer drivers.
type Tracer interface {
	// StartSpan creates the HCM's active span from the incoming headers, or
	// returns nil (NullSpan) when the context is malformed. traced is the
	// HCM's tracing decision, used when the headers carry no sampling flag.
	StartSpan(h *Headers, kind SpanKind, traced bool) *Span
	// Inject writes the span's context on the upstream request.
	Inject(s *Span, h *Headers)
	// Name is "zipkin" or "opentelemetry".
	Name() string
}

// ZipkinTracer models envoy.tracers.zipkin as Istio configures it
// (pilot/pkg/networking/core/tracing.go: trace_id_128bit true,
// shared_span_context false).
type ZipkinTracer struct {
	// SharedSpanContext: a server span reuses the caller's span id (Envoy's
	// default when unset; Istio sets false).
	SharedSpanContext bool
	// TraceID128 makes new root traces 128-bit (Istio: true).
	TraceID128 bool
	// W3C models trace_context_option USE_B3_WITH_W3C_PROPAGATION (Envoy >=
	// 1.36, envoy/config/trace/v3/zipkin.proto; Istio's Zipkin provider
	// traceContextOption, set for proxies >= 1.28 in
	// pilot/pkg/networking/core/tracing.go): B3 is read first, traceparent
	// only when no B3 context was found, and both are written.
	W3C bool
}

// Name implements Tracer.
func (z *ZipkinTracer) Name() string {
	if z.W3C {
		return "zipkin-w3c"
	}
	return "zipkin"
}

type zipkinContext struct {
	high, trace, span, parent uint64
	found                     bool
	sampled                   *bool
}

func parseHexID(s string, allow128 bool) (hi, lo uint64, err error) {
	switch {
	case len(s) == 16:
	case len(s) == 32 && allow128:
	default:
		return 0, 0, errMalformed
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return 0, 0, errMalformed
	}
	if len(b) == 16 {
		return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:]), nil
	}
	return 0, binary.BigEndian.Uint64(b), nil
}

// extractZipkin models source/extensions/tracers/zipkin/span_context_extractor.cc:
// the single b3 header is read first; only without it are x-b3-traceid and
// x-b3-spanid read (both required for a context). Malformed values throw
// ExtractorException, which Driver::startSpan turns into a NullSpan.
func extractZipkin(h *Headers) (zipkinContext, error) {
	var c zipkinContext
	if b3, ok := h.Lookup("b3"); ok {
		// extractSampled / extractSpanContextFromB3SingleFormat.
		switch b3 {
		case "0":
			f := false
			c.sampled = &f
			return c, nil
		case "1", "d":
			t := true
			c.sampled = &t
			return c, nil
		}
		parts := strings.Split(b3, "-")
		if len(parts) < 2 || len(parts) > 4 {
			return c, errMalformed
		}
		var err error
		if c.high, c.trace, err = parseHexID(parts[0], true); err != nil {
			return c, err
		}
		if _, c.span, err = parseHexID(parts[1], false); err != nil {
			return c, err
		}
		if len(parts) >= 3 {
			switch parts[2] {
			case "0":
				f := false
				c.sampled = &f
			case "1", "d":
				t := true
				c.sampled = &t
			default:
				if len(parts) == 3 && len(parts[2]) == 16 {
					// traceid-spanid-parentspanid is not a valid form.
					return c, errMalformed
				}
				return c, errMalformed
			}
		}
		if len(parts) == 4 {
			if _, c.parent, err = parseHexID(parts[3], false); err != nil {
				return c, err
			}
		}
		c.found = true
		return c, nil
	}
	if v, ok := h.Lookup("x-b3-sampled"); ok {
		t := v == "1" || v == "true"
		c.sampled = &t
	}
	if h.Get("x-b3-flags") == "1" {
		t := true
		c.sampled = &t
	}
	tid, tok := h.Lookup("x-b3-traceid")
	sid, sok := h.Lookup("x-b3-spanid")
	if !tok || !sok {
		return c, nil
	}
	var err error
	if c.high, c.trace, err = parseHexID(tid, true); err != nil {
		return c, err
	}
	if _, c.span, err = parseHexID(sid, false); err != nil {
		return c, err
	}
	if p, ok := h.Lookup("x-b3-parentspanid"); ok {
		if _, c.parent, err = parseHexID(p, false); err != nil {
			return c, err
		}
	}
	c.found = true
	return c, nil
}

// StartSpan models zipkin_tracer_impl.cc Driver::startSpan and
// tracer.cc Tracer::startSpan.
func (z *ZipkinTracer) StartSpan(h *Headers, kind SpanKind, traced bool) *Span {
	c, err := extractZipkin(h)
	if err != nil {
		return nil // NullSpan
	}
	if !c.found && z.W3C {
		// The W3C fallback of SpanContextExtractor
		// (source/extensions/tracers/zipkin/span_context_extractor.cc, Envoy
		// PR 40525): a valid traceparent gives trace id, parent span and
		// sampled flag; one that does not parse is ignored (no context).
		if w, ok := extractTraceparent(h); ok {
			c.high, c.trace, c.span, c.found = w.TraceIDHigh, w.TraceID, w.ParentID, true
			if c.sampled == nil {
				c.sampled = &w.Sampled
			}
		}
	}
	sampled := traced
	if c.sampled != nil {
		sampled = *c.sampled
	}
	s := &Span{Kind: kind, Sampled: sampled, Start: time.Now(), SpanID: randID()}
	if !c.found {
		s.TraceID = randID()
		if z.TraceID128 {
			s.TraceIDHigh = randID()
		}
		return s
	}
	s.TraceIDHigh, s.TraceID = c.high, c.trace
	if kind == KindServer && z.SharedSpanContext {
		s.SpanID, s.ParentID = c.span, c.parent
	} else {
		s.ParentID = c.span
	}
	return s
}

// Inject models zipkin_core_types.cc Span::injectContext: x-b3-traceid,
// x-b3-spanid, x-b3-parentspanid only when the span has a parent (a stale one
// is never removed), x-b3-sampled 1/0. The single b3 header is never written
// nor removed.
func (z *ZipkinTracer) Inject(s *Span, h *Headers) {
	h.Set("x-b3-traceid", s.TraceIDHex())
	h.Set("x-b3-spanid", s.SpanIDHex())
	if s.ParentID != 0 {
		h.Set("x-b3-parentspanid", s.ParentIDHex())
	}
	if s.Sampled {
		h.Set("x-b3-sampled", "1")
	} else {
		h.Set("x-b3-sampled", "0")
	}
	if z.W3C {
		// USE_B3_WITH_W3C_PROPAGATION: a version-00 traceparent for the same
		// span next to x-b3-* (a 64-bit trace id is zero-padded to 128 bits);
		// no tracestate.
		injectTraceparent(s, h)
	}
}

// OTelTracer models envoy.tracers.opentelemetry
// (source/extensions/tracers/opentelemetry/span_context_extractor.cc and
// tracer.cc): W3C traceparent/tracestate only.
type OTelTracer struct{}

// Name implements Tracer.
func (*OTelTracer) Name() string { return "opentelemetry" }

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// w3cContext is what a traceparent carries.
type w3cContext struct {
	TraceIDHigh, TraceID, ParentID uint64
	Sampled                        bool
}

// extractTraceparent parses the first traceparent as
// SpanContextExtractor::extractSpanContext does (length, version 00, hex,
// all-zero ids): ok is false for an absent or malformed one. ParentID is the
// caller's span id.
func extractTraceparent(h *Headers) (s w3cContext, ok bool) {
	// TraceContext::getByKey returns the first value of a repeated header.
	tp, ok := h.Lookup("traceparent")
	if !ok {
		return s, false
	}
	if len(tp) != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' || !isLowerHex(tp[:2]+tp[3:35]+tp[36:52]+tp[53:]) || tp[:2] != "00" {
		return s, false
	}
	hi, lo, err := parseHexID(tp[3:35], true)
	if err != nil || hi == 0 && lo == 0 {
		return s, false
	}
	_, parent, err := parseHexID(tp[36:52], false)
	if err != nil || parent == 0 {
		return s, false
	}
	flags, _ := hex.DecodeString(tp[53:])
	s.TraceIDHigh, s.TraceID, s.ParentID = hi, lo, parent
	s.Sampled = flags[0]&1 == 1
	return s, true
}

// StartSpan models Driver::startSpan: a traceparent that fails
// SpanContextExtractor::extractSpanContext (length, version 00, hex, all-zero
// ids) yields a NullSpan; the sampled flag of a valid parent wins.
func (*OTelTracer) StartSpan(h *Headers, kind SpanKind, traced bool) *Span {
	s := &Span{Kind: kind, Sampled: traced, Start: time.Now(), SpanID: randID()}
	if _, present := h.Lookup("traceparent"); !present {
		s.TraceIDHigh, s.TraceID = randID(), randID()
		return s
	}
	w, ok := extractTraceparent(h)
	if !ok {
		return nil
	}
	s.TraceIDHigh, s.TraceID, s.ParentID, s.Sampled = w.TraceIDHigh, w.TraceID, w.ParentID, w.Sampled
	s.TraceState = strings.Join(h.Values("tracestate"), ",")
	return s
}

// Inject writes traceparent (and tracestate when non-empty); x-b3-* are never
// touched.
func (*OTelTracer) Inject(s *Span, h *Headers) {
	injectTraceparent(s, h)
	if s.TraceState != "" {
		h.Set("tracestate", s.TraceState)
	}
}

// injectTraceparent writes the span's context as a version-00 traceparent.
func injectTraceparent(s *Span, h *Headers) {
	flags := "00"
	if s.Sampled {
		flags = "01"
	}
	h.Set("traceparent", "00-"+hex64(s.TraceIDHigh)+hex64(s.TraceID)+"-"+s.SpanIDHex()+"-"+flags)
}
