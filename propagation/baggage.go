package propagation

// W3C Baggage (W3C Propagation format for distributed context: Baggage,
// Candidate Recommendation; w3c/baggage baggage/HTTP_HEADER_FORMAT.md),
// referred to as "BG §x": §3.3.1 Definition (ABNF), §3.3.1.1 baggage-string,
// §3.3.1.2 key, §3.3.1.3 value, §3.3.1.4 property, §3.3.2 Limits,
// §4 Mutating baggage.

// Default limits: BG §3.3.2 says a platform MUST propagate all list-members
// while the baggage-string has at most 64 of them and at most 8192 bytes, and
// MAY drop members beyond that. These are minimums, not a validity rule (the
// ABNF of BG §3.3.1 allows up to 180 list-members: 0*179 after the first);
// tracebridge uses them as its default ceiling.
const (
	BaggageMaxMembers = 64
	BaggageMaxBytes   = 8192
)

// ValidateBaggage checks a combined baggage value against the grammar of BG
// §3.3.1 and the given limits (zero means the BG §3.3.2 defaults).
func ValidateBaggage(v string, maxMembers, maxBytes int) Problem {
	if maxMembers <= 0 {
		maxMembers = BaggageMaxMembers
	}
	if maxBytes <= 0 {
		maxBytes = BaggageMaxBytes
	}
	if len(v) > maxBytes {
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
			// BG §3.3.1 has no empty list-members (unlike tracestate); an
			// empty value (no members at all) is tolerated as "no baggage".
			if len(trimOWS(v)) == 0 {
				return OK
			}
			return ProblemValue
		}
		members++
		if members > maxMembers {
			return ProblemTooManyMembers
		}
		if p := validBaggageMember(m); p != OK {
			return p
		}
	}
	return OK
}

// BG §3.3.1: list-member = key OWS "=" OWS value *( OWS ";" OWS property ).
func validBaggageMember(m string) Problem {
	// Split off properties first; they follow the first ';'.
	kv, props, hasProps := cutByte(m, ';')
	eq := indexByte(kv, '=')
	if eq < 0 {
		return ProblemValue
	}
	if !isToken(trimOWS(kv[:eq])) {
		return ProblemKey
	}
	if !isBaggageValue(trimOWS(kv[eq+1:])) {
		return ProblemValue
	}
	// Every ';' must be followed by a property: "k=v;" and "k=v;;p" have an
	// empty one, which the grammar does not allow (a property key is a token).
	for hasProps {
		var p string
		p, props, hasProps = cutByte(props, ';')
		p = trimOWS(p)
		// BG §3.3.1, §3.3.1.4: property = key OWS "=" OWS value / key OWS.
		if i := indexByte(p, '='); i >= 0 {
			if !isToken(trimOWS(p[:i])) {
				return ProblemKey
			}
			if !isBaggageValue(trimOWS(p[i+1:])) {
				return ProblemValue
			}
		} else if !isToken(p) {
			return ProblemKey
		}
	}
	return OK
}

// BG §3.3.1: value = *baggage-octet (so an empty value is valid);
// baggage-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E (printable
// US-ASCII without DQUOTE, comma, semicolon and backslash; '=' is allowed,
// BG §3.3.1.3).
func isBaggageOctet(c byte) bool {
	return c >= 0x21 && c <= 0x7e && c != '"' && c != ',' && c != ';' && c != '\\'
}

func isBaggageValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if !isBaggageOctet(v[i]) {
			return false
		}
	}
	return true
}

// isToken checks an RFC 9110 §5.6.2 token (RFC 7230 §3.2.6 in BG §3.3.1.2,
// the baggage key grammar).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTChar(s[i]) {
			return false
		}
	}
	return true
}

func isTChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// IsBaggageKey reports whether k can be used as a baggage key (BG §3.3.1.2).
func IsBaggageKey(k string) bool { return isToken(k) }

// AppendBaggageValue percent-encodes v for a baggage value: BG §3.3.1.3 says
// code points outside baggage-octet MUST be percent-encoded and so MUST '%'
// itself (RFC 3986 §2.1; upper-case hex digits, which RFC 3986 §2.1 says
// producers SHOULD use). Bytes of a UTF-8 sequence are encoded one by one.
func AppendBaggageValue(dst []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if isBaggageOctet(c) && c != '%' {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', "0123456789ABCDEF"[c>>4], "0123456789ABCDEF"[c&0x0f])
	}
	return dst
}

// SetBaggageMember returns existing with key set to value: the first member
// of that key is replaced in place (its properties go with the old value),
// later members of the same key are removed (BG §4 allows updating a value
// and deduplicating keys; BG §3.3.1.1 asks producers not to send duplicate
// keys), otherwise the member is appended. Empty list-members are dropped and
// members are rejoined with a bare comma. value is percent-encoded with
// AppendBaggageValue; key must satisfy IsBaggageKey.
func SetBaggageMember(existing, key, value string) string {
	out := make([]byte, 0, len(existing)+len(key)+3*len(value)+2)
	replaced := false
	for start := 0; start < len(existing); {
		end := start
		for end < len(existing) && existing[end] != ',' {
			end++
		}
		m := trimOWS(existing[start:end])
		start = end + 1
		if m == "" {
			continue
		}
		k, _, _ := cutByte(m, '=')
		if trimOWS(k) == key {
			if replaced {
				continue // a later duplicate of the key being set
			}
			if len(out) > 0 {
				out = append(out, ',')
			}
			out = append(out, key...)
			out = append(out, '=')
			out = AppendBaggageValue(out, value)
			replaced = true
			continue
		}
		if len(out) > 0 {
			out = append(out, ',')
		}
		out = append(out, m...)
	}
	if !replaced {
		if len(out) > 0 {
			out = append(out, ',')
		}
		out = append(out, key...)
		out = append(out, '=')
		out = AppendBaggageValue(out, value)
	}
	return string(out)
}

func cutByte(s string, c byte) (before, after string, found bool) {
	if i := indexByte(s, c); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}
