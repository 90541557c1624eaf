package propagation

// B3 propagation (openzipkin/b3-propagation README, referred to as "B3 §name"
// by its section headings: "Identifiers", "Sampling State", "Multiple
// Headers" with its "TraceId", "SpanId", "ParentSpanId", "Sampling State",
// "Debug Flag", and "Single Header" with the same sub-headings).
//
// The README does not say that all-zero ids are invalid; tracebridge rejects
// them as every format it translates to does (W3C TC §3.2.2.3, Jaeger).

// B3Multi holds the raw multi-header values; an empty string means absent.
type B3Multi struct {
	TraceID, SpanID, ParentSpanID, Sampled, Flags string
}

// Present reports whether any x-b3-* header was sent.
func (m *B3Multi) Present() bool {
	return m.TraceID != "" || m.SpanID != "" || m.ParentSpanID != "" || m.Sampled != "" || m.Flags != ""
}

// ParseB3Multi parses the x-b3-* headers. With neither trace id nor span id
// the result carries only a sampling decision (B3 §"Sampling State": a
// decision may be propagated without ids) and hasIDs is false. The caller
// passes the first value of each header (B3 §"Multiple Headers": "When
// extracting state headers, the first value wins"). B3 §"Multiple Headers"
// calls an empty x-b3-sampled or x-b3-parentspanid malformed; B3Multi cannot
// tell an empty header from an absent one, so both read as absent here.
func ParseB3Multi(m B3Multi) (c SpanContext, hasIDs bool, p Problem) {
	if m.TraceID != "" || m.SpanID != "" {
		if m.TraceID == "" {
			return c, false, ProblemMissingTraceID
		}
		if m.SpanID == "" {
			return c, false, ProblemMissingSpanID
		}
		if c.TraceID64, p = parseB3TraceID(&c.TraceID, m.TraceID); p != OK {
			return c, false, p
		}
		if p = parseB3SpanID(&c.SpanID, m.SpanID); p != OK {
			return c, false, p
		}
		if m.ParentSpanID != "" {
			// B3 §"ParentSpanId": 16 lower-hex, absent on a root span.
			if p = parseB3SpanID(&c.ParentSpanID, m.ParentSpanID); p != OK {
				return c, false, p
			}
		}
		hasIDs = true
	} else if m.ParentSpanID != "" {
		return c, false, ProblemMissingTraceID
	}
	switch m.Sampled {
	case "":
		c.Sampling = SamplingDefer
	case "1", "true":
		// B3 §"Sampling State": "1" accepts; "true" is the legacy spelling a
		// lenient implementation may accept.
		c.Sampling = SamplingAccept
	case "0", "false":
		c.Sampling = SamplingDeny
	default:
		return c, false, ProblemSampled
	}
	// B3 §"Debug Flag": x-b3-flags: 1 is debug, which implies accept (and
	// wins over x-b3-sampled); "Absent or any other value can be ignored".
	if m.Flags == "1" {
		c.Sampling = SamplingDebug
	}
	return c, hasIDs, OK
}

// B3 §"TraceId": 32 or 16 lower-hex characters.
func parseB3TraceID(dst *TraceID, s string) (short bool, p Problem) {
	switch len(s) {
	case 16:
		if p = decodeHex(dst[8:], s); p != OK {
			return false, p
		}
		short = true
	case 32:
		if p = decodeHex(dst[:], s); p != OK {
			return false, p
		}
	default:
		return false, ProblemLength
	}
	if dst.IsZero() {
		return false, ProblemZeroTraceID
	}
	return short, OK
}

// B3 §"SpanId": 16 lower-hex characters.
func parseB3SpanID(dst *SpanID, s string) Problem {
	if p := decodeHex(dst[:], s); p != OK {
		return p
	}
	if dst.IsZero() {
		return ProblemZeroSpanID
	}
	return OK
}

// ParseB3Single parses the single b3 header (B3 §"Single Header"):
// {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]], or a sampling state
// alone ("0", "1", "d": B3 §"Single Header" "Sampling State" — it "can also be
// sent on its own"). hasIDs is false for the sampling-only form. A parent
// needs a sampling state before it (the fields are positional).
func ParseB3Single(v string) (c SpanContext, hasIDs bool, p Problem) {
	switch v {
	case "":
		return c, false, ProblemEmpty
	case "0":
		c.Sampling = SamplingDeny
		return c, false, OK
	case "1":
		c.Sampling = SamplingAccept
		return c, false, OK
	case "d":
		c.Sampling = SamplingDebug
		return c, false, OK
	}
	field := 0
	for start := 0; start <= len(v); field++ {
		end := start
		for end < len(v) && v[end] != '-' {
			end++
		}
		f := v[start:end]
		start = end + 1
		switch field {
		case 0:
			if c.TraceID64, p = parseB3TraceID(&c.TraceID, f); p != OK {
				return c, false, p
			}
		case 1:
			if p = parseB3SpanID(&c.SpanID, f); p != OK {
				return c, false, p
			}
		case 2:
			switch f {
			case "1":
				c.Sampling = SamplingAccept
			case "0":
				c.Sampling = SamplingDeny
			case "d":
				c.Sampling = SamplingDebug
			default:
				return c, false, ProblemSampled
			}
		case 3:
			if p = parseB3SpanID(&c.ParentSpanID, f); p != OK {
				return c, false, p
			}
		default:
			return c, false, ProblemDelimiter
		}
	}
	if field < 2 {
		return c, false, ProblemMissingSpanID
	}
	return c, true, OK
}

// AppendB3TraceID writes the trace id as 16 hex digits when it arrived as 64
// bits and still fits, else as 32 (B3 §"TraceId").
func AppendB3TraceID(dst []byte, c *SpanContext) []byte {
	if c.TraceID64 && c.TraceID.High64Zero() {
		return appendHex(dst, c.TraceID[8:])
	}
	return appendHex(dst, c.TraceID[:])
}

// AppendHexSpanID writes a span id as 16 lower-hex digits.
func AppendHexSpanID(dst []byte, s SpanID) []byte { return appendHex(dst, s[:]) }

// AppendHexTraceID writes a trace id as 32 lower-hex digits.
func AppendHexTraceID(dst []byte, t TraceID) []byte { return appendHex(dst, t[:]) }

// B3SampledValue gives x-b3-sampled for a state, or "" when the header is
// not sent (defer; debug, where B3 §"Debug Flag" says not to send both).
func B3SampledValue(s Sampling) string {
	switch s {
	case SamplingAccept:
		return "1"
	case SamplingDeny:
		return "0"
	}
	return ""
}

// AppendB3Single writes the single header (B3 §"Single Header"). The parent
// is written only with a sampling state, since the field order requires it.
func AppendB3Single(dst []byte, c *SpanContext) []byte {
	dst = AppendB3TraceID(dst, c)
	dst = append(dst, '-')
	dst = appendHex(dst, c.SpanID[:])
	var s byte
	switch c.Sampling {
	case SamplingAccept:
		s = '1'
	case SamplingDeny:
		s = '0'
	case SamplingDebug:
		s = 'd'
	default:
		return dst
	}
	dst = append(dst, '-', s)
	if !c.ParentSpanID.IsZero() {
		dst = append(dst, '-')
		dst = appendHex(dst, c.ParentSpanID[:])
	}
	return dst
}
