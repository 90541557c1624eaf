package propagation

// Jaeger native propagation (Jaeger documentation, "Client Libraries" page,
// section "Propagation Format": "Trace/Span Identity" with "Key" and "Value",
// and "Baggage" with "Value Encoding"), referred to as "JG".

// ParseUberTraceID parses {trace-id}:{span-id}:{parent-span-id}:{flags} (JG
// "Value"). "%3A" (either case) stands for ':'. JG "Value Encoding" only
// says that baggage values are URL-encoded in the HTTP_HEADERS format, but
// jaeger-client-go's HTTP-header propagator URL-decodes uber-trace-id on
// extract too (its inject leaves it unencoded "to avoid accidental
// double-encoding" with older OpenTracing versions, which did encode it), so
// escaped colons occur in the wild. No other escape is decoded. Ids are variable-length hex, zero-padded on the left: receivers
// MUST accept shorter strings (JG "Value", {trace-id} and {span-id}).
func ParseUberTraceID(v string) (SpanContext, Problem) {
	var c SpanContext
	if v == "" {
		return c, ProblemEmpty
	}
	var fields [4]string
	n := 0
	start := 0
	for i := 0; i <= len(v); {
		sepLen := 0
		if i == len(v) {
			sepLen = -1
		} else if v[i] == ':' {
			sepLen = 1
		} else if v[i] == '%' && i+2 < len(v) && v[i+1] == '3' && (v[i+2] == 'A' || v[i+2] == 'a') {
			sepLen = 3
		}
		if sepLen == 0 {
			i++
			continue
		}
		if n == len(fields) {
			return c, ProblemDelimiter
		}
		fields[n] = v[start:i]
		n++
		if sepLen < 0 {
			break
		}
		i += sepLen
		start = i
	}
	if n != 4 {
		return c, ProblemDelimiter
	}
	// JG {trace-id}: 64 or 128 bits in base16, "Value of 0 is not valid".
	// "base16" does not fix a case; Jaeger clients parse either, so
	// tracebridge does too.
	if p := decodeHexPadded(c.TraceID[:], fields[0], true); p != OK {
		return c, p
	}
	if c.TraceID.IsZero() {
		return c, ProblemZeroTraceID
	}
	c.TraceID64 = len(fields[0]) <= 16
	if p := decodeHexPadded(c.SpanID[:], fields[1], true); p != OK {
		return c, p
	}
	if c.SpanID.IsZero() {
		return c, ProblemZeroSpanID
	}
	// JG {span-id}: "Value of 0 is not valid" (checked above).
	// JG {parent-span-id}: deprecated; "0 value is valid and means root span".
	if p := decodeHexPadded(c.ParentSpanID[:], fields[2], true); p != OK {
		return c, p
	}
	// JG {flags}: one byte as one or two hex digits; 0x01 sampled, 0x02
	// debug, 0x08 firehose (ignored), other bits unused. "Debug flag should
	// only be set when the sampled flag is set": the sampled bit decides, and
	// debug without it (flags 2) is not sampled, as in OpenTelemetry's Jaeger
	// propagator, so a stray debug bit cannot force sampling.
	var flags [1]byte
	if len(fields[3]) > 2 {
		return c, ProblemFlags
	}
	if p := decodeHexPadded(flags[:], fields[3], true); p != OK {
		return c, ProblemFlags
	}
	switch {
	case flags[0]&0x03 == 0x03:
		c.Sampling = SamplingDebug
	case flags[0]&0x01 != 0:
		c.Sampling = SamplingAccept
	default:
		c.Sampling = SamplingDeny
	}
	return c, OK
}

// AppendUberTraceID writes the canonical form: full-width lower-hex ids (16
// digits for a 64-bit trace id), parent "0" when absent, flags as one digit
// (JG {flags}: 1 sampled, 3 debug+sampled, 0 not sampled; a deferred
// decision is written as 0, since the format has no "defer"). Senders SHOULD
// write 16 or 32 digits (JG {trace-id}, {span-id}).
func AppendUberTraceID(dst []byte, c *SpanContext) []byte {
	dst = AppendB3TraceID(dst, c)
	dst = append(dst, ':')
	dst = appendHex(dst, c.SpanID[:])
	dst = append(dst, ':')
	if c.ParentSpanID.IsZero() {
		dst = append(dst, '0')
	} else {
		dst = appendHex(dst, c.ParentSpanID[:])
	}
	switch c.Sampling {
	case SamplingDebug:
		return append(dst, ':', '3')
	case SamplingAccept:
		return append(dst, ':', '1')
	}
	return append(dst, ':', '0')
}

// IsUberBaggageHeader reports whether name is a Jaeger baggage header
// (JG "Baggage": uberctx-{baggage-key}).
func IsUberBaggageHeader(name string) bool {
	return len(name) > len(UberBaggagePrefix) && name[:len(UberBaggagePrefix)] == UberBaggagePrefix
}
