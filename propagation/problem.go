package propagation

// Problem says why a header value is invalid. It is a small enum rather than
// an error so that parsing allocates nothing; String gives the reason shown in
// reject bodies and logs.
type Problem uint8

const (
	OK Problem = iota
	ProblemEmpty
	ProblemLength
	ProblemDelimiter
	ProblemHex
	ProblemUppercase
	ProblemVersion
	ProblemVersionFF
	ProblemZeroTraceID
	ProblemZeroSpanID
	ProblemFlags
	ProblemDuplicate
	ProblemSampled
	ProblemMissingSpanID
	ProblemMissingTraceID
	ProblemTooManyMembers
	ProblemTooLong
	ProblemKey
	ProblemValue
	ProblemParentEqualsSpan
	// ProblemStale: a valid header that names another span than the
	// authoritative one (a client's stale single b3 next to fresh x-b3-*).
	ProblemStale
	// ProblemUnterminated: a quoted string that is never closed
	// (server-timing).
	ProblemUnterminated
	problemCount
)

var problemText = [problemCount]string{
	OK:                      "ok",
	ProblemEmpty:            "empty value",
	ProblemLength:           "wrong length",
	ProblemDelimiter:        "missing or misplaced delimiter",
	ProblemHex:              "not hexadecimal",
	ProblemUppercase:        "upper-case hex digits are not allowed",
	ProblemVersion:          "unsupported version format",
	ProblemVersionFF:        "version ff is forbidden",
	ProblemZeroTraceID:      "all-zero trace id",
	ProblemZeroSpanID:       "all-zero span id",
	ProblemFlags:            "invalid flags",
	ProblemDuplicate:        "header sent more than once",
	ProblemSampled:          "invalid sampling state",
	ProblemMissingSpanID:    "span id missing",
	ProblemMissingTraceID:   "trace id missing",
	ProblemTooManyMembers:   "too many list members",
	ProblemTooLong:          "value too long",
	ProblemKey:              "invalid key",
	ProblemValue:            "invalid value",
	ProblemParentEqualsSpan: "parent span id equals span id",
	ProblemStale:            "stale: disagrees with the context the proxy propagates",
	ProblemUnterminated:     "unterminated quoted string",
}

func (p Problem) String() string {
	if p < problemCount {
		return problemText[p]
	}
	return "unknown problem"
}

// Code is a stable snake_case identifier for metrics and JSON bodies.
func (p Problem) Code() string {
	if p < problemCount {
		return problemCode[p]
	}
	return "unknown"
}

var problemCode = [problemCount]string{
	OK:                      "ok",
	ProblemEmpty:            "empty",
	ProblemLength:           "length",
	ProblemDelimiter:        "delimiter",
	ProblemHex:              "hex",
	ProblemUppercase:        "uppercase",
	ProblemVersion:          "version",
	ProblemVersionFF:        "version_ff",
	ProblemZeroTraceID:      "zero_trace_id",
	ProblemZeroSpanID:       "zero_span_id",
	ProblemFlags:            "flags",
	ProblemDuplicate:        "duplicate",
	ProblemSampled:          "sampled",
	ProblemMissingSpanID:    "missing_span_id",
	ProblemMissingTraceID:   "missing_trace_id",
	ProblemTooManyMembers:   "too_many_members",
	ProblemTooLong:          "too_long",
	ProblemKey:              "key",
	ProblemValue:            "value",
	ProblemParentEqualsSpan: "parent_equals_span",
	ProblemStale:            "stale",
	ProblemUnterminated:     "unterminated",
}

// hexTable maps a byte to its hex value (0-15) for 0-9 and a-f, to 0x10|value
// for A-F, and to 0xff for anything else: one lookup classifies a digit.
var hexTable = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c-'a') + 10
		t[c-'a'+'A'] = 0x10 | (byte(c-'a') + 10)
	}
	return t
}()

// decodeHex reads exactly len(dst)*2 lower-case hex digits from s. On error
// it reports the first bad digit: ProblemUppercase for A-F, else ProblemHex.
func decodeHex(dst []byte, s string) Problem {
	if len(s) != len(dst)*2 {
		return ProblemLength
	}
	for i := range dst {
		hi, lo := hexTable[s[2*i]], hexTable[s[2*i+1]]
		if hi|lo >= 0x10 {
			if _, p := hexVal(s[2*i]); p != OK {
				return p
			}
			_, p := hexVal(s[2*i+1])
			return p
		}
		dst[i] = hi<<4 | lo
	}
	return OK
}

// decodeHexPadded reads 1..len(dst)*2 hex digits right-aligned into dst,
// zero-padding on the left (Jaeger allows short ids).
func decodeHexPadded(dst []byte, s string, allowUpper bool) Problem {
	if len(s) == 0 {
		return ProblemEmpty
	}
	if len(s) > len(dst)*2 {
		return ProblemLength
	}
	clear(dst)
	// Walk from the right, two digits per byte.
	bi := len(dst) - 1
	for i := len(s) - 1; i >= 0; i -= 2 {
		lo, p := hexValCase(s[i], allowUpper)
		if p != OK {
			return p
		}
		var hi byte
		if i > 0 {
			hi, p = hexValCase(s[i-1], allowUpper)
			if p != OK {
				return p
			}
		}
		dst[bi] = hi<<4 | lo
		bi--
	}
	return OK
}

func hexVal(c byte) (byte, Problem) { return hexValCase(c, false) }

func hexValCase(c byte, allowUpper bool) (byte, Problem) {
	v := hexTable[c]
	switch {
	case v < 0x10:
		return v, OK
	case v == 0xff:
		return 0, ProblemHex
	case allowUpper:
		return v & 0x0f, OK
	}
	return 0, ProblemUppercase
}
