package propagation

// TraceID is a 128-bit trace identifier. A 64-bit identifier (B3, Jaeger) is
// held in the low eight bytes with the high eight bytes zero.
type TraceID [16]byte

// SpanID is a 64-bit span identifier.
type SpanID [8]byte

// IsZero reports whether every byte is zero (invalid in every format).
func (t TraceID) IsZero() bool { return t == TraceID{} }

// High64Zero reports whether the identifier fits in 64 bits.
func (t TraceID) High64Zero() bool { return [8]byte(t[:8]) == [8]byte{} }

// String returns the 32-digit lower-case hex form.
func (t TraceID) String() string { return string(appendHex(nil, t[:])) }

// IsZero reports whether every byte is zero.
func (s SpanID) IsZero() bool { return s == SpanID{} }

// String returns the 16-digit lower-case hex form.
func (s SpanID) String() string { return string(appendHex(nil, s[:])) }

// Sampling is the sampling state a context carries.
type Sampling uint8

const (
	// SamplingDefer: the caller made no decision; the receiver decides
	// (B3 multi without x-b3-sampled, B3 single without the sampling field).
	SamplingDefer Sampling = iota
	// SamplingDeny: not sampled (W3C flags 00, B3 0, Jaeger flags without bit 1).
	SamplingDeny
	// SamplingAccept: sampled (W3C flags 01, B3 1, Jaeger flag bit 1).
	SamplingAccept
	// SamplingDebug: sampled and forced through every downstream sampler
	// (B3 x-b3-flags: 1 or "d", Jaeger flags with both the sampled and the
	// debug bit). W3C has no debug state and carries it as sampled.
	SamplingDebug
)

// Sampled reports whether the state asks for the trace to be recorded.
func (s Sampling) Sampled() bool { return s == SamplingAccept || s == SamplingDebug }

func (s Sampling) String() string {
	switch s {
	case SamplingDeny:
		return "deny"
	case SamplingAccept:
		return "accept"
	case SamplingDebug:
		return "debug"
	}
	return "defer"
}

// SpanContext is the format-independent trace context of one request.
type SpanContext struct {
	TraceID TraceID
	SpanID  SpanID
	// ParentSpanID is zero when the format carried no parent (W3C never does).
	ParentSpanID SpanID
	Sampling     Sampling
	// TraceID64 records that the trace id arrived as 64 bits (B3, Jaeger); it
	// is written back as 16 hex digits in those formats and padded to 32 for W3C.
	TraceID64 bool
	// TraceState is a validated W3C tracestate value, or empty.
	TraceState string
	// Random is the W3C Level 2 random-trace-id flag (trace-flags 0x02): at
	// least the right-most 7 bytes of the trace id are random. Only W3C
	// carries it; see TRANSLATION.md for what the other formats do.
	Random bool
}

// Valid reports whether the context has a usable trace id and span id.
func (c *SpanContext) Valid() bool { return !c.TraceID.IsZero() && !c.SpanID.IsZero() }

// SameSpan reports whether both contexts name the same span of the same trace.
// A 64-bit trace id equals its zero-padded 128-bit form: tracebridge stores a
// 64-bit id in the low eight bytes, the convention of OpenTelemetry's B3 and
// Jaeger propagators, which left-pad 16-digit ids with zeros (the B3 README
// itself only says trace ids are "64 or 128-bit").
func (c *SpanContext) SameSpan(o *SpanContext) bool {
	return c.TraceID == o.TraceID && c.SpanID == o.SpanID
}

// Format names one wire format.
type Format uint8

const (
	FormatNone Format = iota
	FormatW3C
	FormatB3Single
	FormatB3Multi
	FormatJaeger
	formatCount
)

// Formats lists every real format, in the zero-config read precedence.
var Formats = [...]Format{FormatW3C, FormatB3Single, FormatB3Multi, FormatJaeger}

// FormatCount is the number of real formats plus one (index by Format).
const FormatCount = int(formatCount)

func (f Format) String() string {
	switch f {
	case FormatW3C:
		return "w3c"
	case FormatB3Single:
		return "b3"
	case FormatB3Multi:
		return "b3multi"
	case FormatJaeger:
		return "jaeger"
	}
	return "none"
}

// ParseFormat reads a format name as used in the policy document.
func ParseFormat(s string) (Format, bool) {
	for _, f := range Formats {
		if f.String() == s {
			return f, true
		}
	}
	return FormatNone, false
}

// Header names, lower case as HTTP/2 and Envoy's header maps carry them.
const (
	HeaderTraceparent    = "traceparent"
	HeaderTracestate     = "tracestate"
	HeaderTraceresponse  = "traceresponse"
	HeaderBaggage        = "baggage"
	HeaderB3             = "b3"
	HeaderB3TraceID      = "x-b3-traceid"
	HeaderB3SpanID       = "x-b3-spanid"
	HeaderB3ParentSpanID = "x-b3-parentspanid"
	HeaderB3Sampled      = "x-b3-sampled"
	HeaderB3Flags        = "x-b3-flags"
	HeaderUberTraceID    = "uber-trace-id"
	UberBaggagePrefix    = "uberctx-"
	HeaderRequestID      = "x-request-id"
	HeaderOTSpanContext  = "x-ot-span-context"
	HeaderAmznTraceID    = "x-amzn-trace-id"
	HeaderEnvoyForce     = "x-envoy-force-trace"
	HeaderClientTraceID  = "x-client-trace-id"
)

// FormatHeaders lists the headers a format owns; removing a format removes these.
func FormatHeaders(f Format) []string {
	switch f {
	case FormatW3C:
		return w3cHeaders[:]
	case FormatB3Single:
		return b3SingleHeaders[:]
	case FormatB3Multi:
		return b3MultiHeaders[:]
	case FormatJaeger:
		return jaegerHeaders[:]
	}
	return nil
}

var (
	w3cHeaders      = [...]string{HeaderTraceparent, HeaderTracestate}
	b3SingleHeaders = [...]string{HeaderB3}
	b3MultiHeaders  = [...]string{HeaderB3TraceID, HeaderB3SpanID, HeaderB3ParentSpanID, HeaderB3Sampled, HeaderB3Flags}
	jaegerHeaders   = [...]string{HeaderUberTraceID}
)

// Headers is the read side of a request's header map: the lower-case name,
// the first value, and how many times the header occurs (a repeated
// traceparent makes the context invalid, see ParseTraceparentHeader).
type Headers interface {
	Get(name string) (value string, count int)
}

const hexDigits = "0123456789abcdef"

func appendHex(dst []byte, b []byte) []byte {
	for _, c := range b {
		dst = append(dst, hexDigits[c>>4], hexDigits[c&0x0f])
	}
	return dst
}
