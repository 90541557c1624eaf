package propagation

// W3C Trace Context Level 1 (W3C Recommendation, 23 November 2021), referred to
// below as "TC §x" with the section numbers of that Recommendation. The W3C
// test suite (w3c/trace-context, branch level-1, test/test.py) is cited as
// "TC test <name>" where it settles what the prose leaves open.
//
// traceresponse is not part of Level 1. It was specified in the Trace Context
// editor's draft from 2020 (w3c/trace-context#365, section "Trace Context
// HTTP Response Headers Format" of that draft) until October 2025, when the
// editor's draft replaced it with a Server-Timing "trace" metric
// (w3c/trace-context#560). tracebridge keeps the traceresponse layout.

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
	// TC §3.2.2.5.1: only the sampled bit (0x01) is defined. TC §3.2.2.5.2:
	// the other bits are reserved and vendors MUST set them to zero, so they
	// are ignored on input and never written (TC §3.2.4 likewise reads only
	// the sampled bit of a future version).
	if flags[0]&0x01 != 0 {
		c.Sampling = SamplingAccept
	} else {
		c.Sampling = SamplingDeny
	}
	return c, OK
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

// AppendTraceparent writes a version-00 traceparent (TC §3.2.2). A 64-bit trace
// id is left-padded with zeros to 128 bits (TC §3.2.2.3 gives no other way to
// carry it; OpenTelemetry's B3 propagator does the same).
func AppendTraceparent(dst []byte, c *SpanContext) []byte {
	dst = append(dst, '0', '0', '-')
	dst = appendHex(dst, c.TraceID[:])
	dst = append(dst, '-')
	dst = appendHex(dst, c.SpanID[:])
	if c.Sampling.Sampled() {
		return append(dst, '-', '0', '1')
	}
	return append(dst, '-', '0', '0')
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
// which defers to RFC 7230 §3.2.2, now RFC 9110 §5.3).
func ValidateTracestate(v string) Problem {
	if len(v) > TracestateMaxLen {
		return ProblemTooLong
	}
	members := 0
	// Keys seen so far, to detect duplicates (TC §3.3.1.4: "Only one entry per
	// key is allowed"; TC test test_tracestate_duplicated_keys expects the
	// whole tracestate to be discarded). 32 members keep the quadratic scan
	// trivially small.
	var keys [TracestateMaxMembers]string
	var sums [TracestateMaxMembers]uint32 // cheap key hashes: compare strings only on a match
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
		key, val := m[:eq], m[eq+1:]
		if !validTracestateKey(key) {
			return ProblemKey
		}
		if !validTracestateValue(val) {
			return ProblemValue
		}
		sum := keySum(key)
		for i, k := range keys[:members] {
			if sums[i] == sum && k == key {
				return ProblemDuplicateKey
			}
		}
		keys[members], sums[members] = key, sum
		members++
	}
	return OK
}

// TC §3.3.1.3.1: key = simple-key / multi-tenant-key;
// simple-key = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" );
// multi-tenant-key = tenant-id "@" system-id, tenant-id = ( lcalpha / DIGIT )
// 0*240(...), system-id = lcalpha 0*13(...).
func validTracestateKey(k string) bool {
	at := indexByte(k, '@')
	if at < 0 {
		return len(k) <= 256 && isLCAlpha(k[0]) && allKeyChars(k[1:])
	}
	tenant, system := k[:at], k[at+1:]
	if len(tenant) == 0 || len(tenant) > 241 || len(system) == 0 || len(system) > 14 {
		return false
	}
	if !isLCAlpha(tenant[0]) && !isDigit(tenant[0]) {
		return false
	}
	return allKeyChars(tenant[1:]) && isLCAlpha(system[0]) && allKeyChars(system[1:])
}

func allKeyChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLCAlpha(c) && !isDigit(c) && c != '_' && c != '-' && c != '*' && c != '/' {
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

// keySum is FNV-1a over the key, used only to skip most string comparisons.
func keySum(k string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(k); i++ {
		h = (h ^ uint32(k[i])) * 16777619
	}
	return h
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
