package propagation

// W3C Trace Context Level 1 (W3C Recommendation, 23 November 2021), referred to
// below as "TC §x" with the section numbers of that Recommendation, and Trace
// Context Level 2 (Candidate Recommendation; the editor's draft as of 2026,
// w3c/trace-context spec/20-http_request_header_format.md and
// spec/21-http_response_header_format.md), cited as "TC2 <section title>".
// The W3C test suite (w3c/trace-context main, test/test.py) is cited as
// "TC test <name>" where it settles what the prose leaves open.
//
// The response header: the editor's draft specified a traceresponse header
// from 2020 (w3c/trace-context#365) until October 2025, when it was replaced
// by a Server-Timing "trace" metric (w3c/trace-context#560, TC2 "Trace
// Context Server Timing Metric Format"). tracebridge writes either
// (AppendTraceresponse, AppendServerTimingTrace).

const traceparentLen = 55 // TC §3.2.2: 2+1+32+1+16+1+2 for version 00.

// ParseTraceparent parses one traceparent value (TC §3.2). Leading and
// trailing optional white space is ignored: it is not part of an HTTP field
// value (RFC 9110 §5.5) and TC test test_traceparent_ows_handling expects
// " 00-…-01\t" to be accepted.
func ParseTraceparent(v string) (SpanContext, Problem) {
	var c SpanContext
	v = trimOWS(v)
	if v == "" {
		return c, ProblemEmpty
	}
	if len(v) < traceparentLen {
		// TC §3.2.4: a value shorter than the version-00 layout is invalid,
		// whatever its version.
		return c, ProblemLength
	}
	var ver [1]byte
	if p := decodeHex(ver[:], v[0:2]); p != OK {
		return c, ProblemVersion
	}
	if ver[0] == 0xff {
		// TC §3.2.2.1: version ff is invalid.
		return c, ProblemVersionFF
	}
	if v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return c, ProblemDelimiter
	}
	if ver[0] == 0 {
		// TC §3.2.2.2: version 00 has exactly these four fields.
		if len(v) != traceparentLen {
			return c, ProblemLength
		}
	} else if len(v) > traceparentLen && v[traceparentLen] != '-' {
		// TC §3.2.4: a future version is parsed as 00; anything past the
		// four fields must start with a dash and is ignored.
		return c, ProblemDelimiter
	}
	if p := decodeHex(c.TraceID[:], v[3:35]); p != OK {
		return c, p // TC §3.2.2.3: 32 HEXDIGLC.
	}
	if c.TraceID.IsZero() {
		return c, ProblemZeroTraceID // TC §3.2.2.3: all zeros is invalid.
	}
	if p := decodeHex(c.SpanID[:], v[36:52]); p != OK {
		return c, p // TC §3.2.2.4: 16 HEXDIGLC.
	}
	if c.SpanID.IsZero() {
		return c, ProblemZeroSpanID // TC §3.2.2.4: all zeros is invalid.
	}
	var flags [1]byte
	if p := decodeHex(flags[:], v[53:55]); p != OK {
		return c, ProblemFlags // TC §3.2.2.5: 2 HEXDIGLC.
	}
	// TC §3.2.2.5.1: the sampled bit (0x01). TC2 "Random Trace ID Flag": bit
	// 0x02 says the right-most 7 bytes of the trace id are random, and a
	// participant continuing the trace MUST keep it. TC2 "Other Flags": the
	// remaining bits are reserved, so they are ignored on input and never
	// written. TC2 "Versioning of traceparent": of a higher version only the
	// sampled bit is read ("MUST NOT parse or assume anything about unknown
	// fields"), so its random bit is not carried over.
	if flags[0]&FlagSampled != 0 {
		c.Sampling = SamplingAccept
	} else {
		c.Sampling = SamplingDeny
	}
	c.Random = ver[0] == 0 && flags[0]&FlagRandom != 0
	return c, OK
}

// Trace-flags bits (TC §3.2.2.5, TC2 "trace-flags").
const (
	FlagSampled = 0x01
	FlagRandom  = 0x02
)

// TraceFlags returns the trace-flags byte of c: sampled (debug counts as
// sampled, W3C has no debug state) and random.
func TraceFlags(c *SpanContext) byte {
	var f byte
	if c.Sampling.Sampled() {
		f |= FlagSampled
	}
	if c.Random {
		f |= FlagRandom
	}
	return f
}

// TraceparentVersion00 reports whether a traceparent value (valid or not)
// starts with version 00 after optional white space. A context read from a
// higher version must be rewritten before it is forwarded (TC2 "Mutating the
// traceparent Field": "Downgrade the version"; TC test
// test_traceparent_version_0xcc reads the forwarded value as version 00).
func TraceparentVersion00(v string) bool {
	v = trimOWS(v)
	return len(v) >= 2 && v[0] == '0' && v[1] == '0'
}

// ParseTraceparentHeader applies the header-level rules to a traceparent that
// occurs count times. The field value is a single traceparent, not a list
// (TC §3.2.2 ABNF), so two fields cannot be combined; TC test
// test_traceparent_duplicated expects the receiver to restart the trace, so
// a repeated header is invalid rather than guessed at.
func ParseTraceparentHeader(v string, count int) (SpanContext, Problem) {
	if count > 1 {
		return SpanContext{}, ProblemDuplicate
	}
	return ParseTraceparent(v)
}

// AppendTraceparent writes a version-00 traceparent (TC §3.2.2; a context read
// from a higher version leaves as 00, TC2 "Versioning of traceparent": "MUST
// use these fields to construct the new traceparent field according to the
// highest version ... known"). A 64-bit trace id is left-padded with zeros to
// 128 bits (TC §3.2.2.3 gives no other way to carry it; OpenTelemetry's B3
// propagator does the same).
func AppendTraceparent(dst []byte, c *SpanContext) []byte {
	dst = append(dst, '0', '0', '-')
	dst = appendHex(dst, c.TraceID[:])
	dst = append(dst, '-')
	dst = appendHex(dst, c.SpanID[:])
	f := TraceFlags(c)
	return append(dst, '-', hexDigits[f>>4], hexDigits[f&0x0f])
}

// AppendTraceresponse writes a traceresponse value (Trace Context editor's
// draft 2020-2025, "Traceresponse Header": the traceparent layout with the
// child-id, the span that served the request, in place of the parent-id).
func AppendTraceresponse(dst []byte, c *SpanContext) []byte {
	return AppendTraceparent(dst, c)
}

// Tracestate limits: TC §3.3.1.1 ("There can be a maximum of 32
// list-members") and the list ABNF of TC §3.3.1.2 (list-member 0*31(...)).
// TC §3.3.1.5 asks vendors to propagate at least 512 characters of the
// combined header (commas and OWS included); it does not make a longer value
// invalid. tracebridge uses 512 as its ceiling: ValidateTracestate reports a
// longer value as ProblemTooLong and the caller decides (drop, or truncate
// whole entries as TC §3.3.1.5 prescribes).
const (
	TracestateMaxMembers = 32
	TracestateMaxLen     = 512
)

// ValidateTracestate checks a combined tracestate value (TC §3.3). Repeated
// tracestate headers are combined with commas before the call (TC §3.3.1.1,
// which defers to RFC 7230 §3.2.2, now RFC 9110 §5.3). A repeated key is not
// an error: TC2 "Mutating the tracestate Field" lets a vendor "discard
// duplicate keys that were not generated by them" (MAY), and TC test
// test_tracestate_duplicated_keys expects the tracestate to be inherited, so
// tracebridge forwards it as it came.
func ValidateTracestate(v string) Problem {
	if len(v) > TracestateMaxLen {
		return ProblemTooLong
	}
	members := 0
	for start := 0; start <= len(v); {
		end := start
		for end < len(v) && v[end] != ',' {
			end++
		}
		m := trimOWS(v[start:end])
		start = end + 1
		if m == "" {
			// TC §3.3.1.1: empty and whitespace-only list-members are allowed
			// (list-member = ... / OWS in TC §3.3.1.2) and do not count.
			continue
		}
		if members == TracestateMaxMembers {
			return ProblemTooManyMembers
		}
		eq := indexByte(m, '=')
		if eq <= 0 {
			return ProblemKey
		}
		if !validTracestateKey(m[:eq]) {
			return ProblemKey
		}
		if !validTracestateValue(m[eq+1:]) {
			return ProblemValue
		}
		members++
	}
	return OK
}

// TC2 "Key": key = ( lcalpha / DIGIT ) 0*255( keychar ); keychar = lcalpha /
// DIGIT / "_" / "-" / "*" / "/" / "@". Level 1's simple-key and
// tenant@system forms are subsets of it; keys such as "foo@", "foo@@bar" and
// "1foo" that Level 1 refused are legal (TC tests
// test_tracestate_key_illegal_vendor_format, test_tracestate_key_length_limit).
func validTracestateKey(k string) bool {
	if len(k) == 0 || len(k) > 256 || !isLCAlpha(k[0]) && !isDigit(k[0]) {
		return false
	}
	for i := 1; i < len(k); i++ {
		c := k[i]
		if !isLCAlpha(c) && !isDigit(c) && c != '_' && c != '-' && c != '*' && c != '/' && c != '@' {
			return false
		}
	}
	return true
}

// TC §3.3.1.3.2: value = 0*255(chr) nblk-chr; nblk-chr = %x21-2B / %x2D-3C /
// %x3E-7E; chr = %x20 / nblk-chr. So 1 to 256 characters, leading spaces
// allowed, no trailing space, and an empty value is invalid (the grammar
// requires the final nblk-chr; TC test test_tracestate_value_illegal_characters
// discards "foo=,bar=3").
func validTracestateValue(v string) bool {
	if len(v) == 0 || len(v) > 256 || v[len(v)-1] == ' ' {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 || c > 0x7e || c == ',' || c == '=' {
			return false
		}
	}
	return true
}

func isLCAlpha(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool   { return c >= '0' && c <= '9' }

// trimOWS removes optional white space (RFC 9110 §5.6.3: SP / HTAB).
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}
