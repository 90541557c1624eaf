package propagation

// Server-Timing (W3C Server Timing, Working Draft 2026-03-09, §3 "The
// Server-Timing Header Field", cited as "ST §3") carries the trace context
// response metric of Trace Context Level 2 (TC2 "Trace Context Server Timing
// Metric Format"): server-timing: trace;desc=00-{trace-id}-{span-id}-{flags}.

// HeaderServerTiming is the Server-Timing response header, lower case.
const HeaderServerTiming = "server-timing"

// ServerTimingTraceMetric is the metric name of TC2 "Metric Name" (ASCII
// case-insensitive, written lower case).
const ServerTimingTraceMetric = "trace"

// AppendServerTimingTrace writes the trace context metric: the metric name
// and a desc parameter whose value is the traceparent layout with the span
// that served the request as child-id (TC2 "Metric Description Format"). The
// value is made of token characters (RFC 9110 §5.6.2: digits, lower-case
// letters, "-"), so it is written unquoted (ST §3: server-timing-param-value
// = token / quoted-string).
func AppendServerTimingTrace(dst []byte, c *SpanContext) []byte {
	dst = append(dst, ServerTimingTraceMetric+";desc="...)
	return AppendTraceparent(dst, c)
}

// FindServerTimingMetric looks for a metric called name (ASCII
// case-insensitive) in a Server-Timing field value, several field lines
// joined with commas. It follows the user agent's reading: the value is split
// at commas outside quoted strings (Fetch "get, decode, and split"), and each
// part is read by ST §3 "parse a server-timing header field" (the name is
// what precedes the first ";", without surrounding white space; a desc
// parameter's value may be a quoted string; the first occurrence of a
// parameter wins). desc is the first matching metric's desc value without
// its quotes (escapes are left in place). open reports a value that ends
// inside a quoted string, which would swallow anything appended to it.
// Nothing is allocated.
func FindServerTimingMetric(v, name string) (desc string, found, open bool) {
	for pos := 0; pos <= len(v); {
		// One list element: up to a comma outside quoted strings.
		start := pos
		for pos < len(v) && v[pos] != ',' {
			if v[pos] == '"' {
				var closed bool
				pos, closed = skipQuoted(v, pos)
				if !closed {
					open = true
				}
				continue
			}
			pos++
		}
		elem := v[start:pos]
		pos++ // past the comma (or beyond the end)
		if found {
			continue // keep scanning only to learn whether the value ends open
		}
		semi := indexByte(elem, ';')
		metric, params := elem, ""
		if semi >= 0 {
			metric, params = elem[:semi], elem[semi:]
		}
		if !equalFoldASCII(trimASCIISpace(metric), name) {
			continue
		}
		found = true
		desc = serverTimingDesc(params)
	}
	return desc, found, open
}

// serverTimingDesc reads the parameters of one metric (from its first ";")
// by ST §3's algorithm and returns the first desc value.
func serverTimingDesc(p string) string {
	for pos := 0; pos < len(p); {
		pos++ // past ";"
		eq := pos
		for eq < len(p) && p[eq] != '=' {
			eq++
		}
		pname := trimASCIISpace(p[pos:eq])
		pos = eq + 1
		for pos < len(p) && isASCIISpace(p[pos]) {
			pos++
		}
		var value string
		if pos < len(p) && p[pos] == '"' {
			end, closed := skipQuoted(p, pos)
			if closed {
				value = p[pos+1 : end-1]
			} else {
				value = p[pos+1 : end]
			}
			pos = end
			for pos < len(p) && p[pos] != ';' {
				pos++
			}
		} else {
			start := pos
			for pos < len(p) && p[pos] != ';' {
				pos++
			}
			if start < len(p) {
				value = trimASCIISpace(p[start:pos])
			}
		}
		if pname == "desc" {
			return value // the first occurrence wins
		}
	}
	return ""
}

// skipQuoted moves past a quoted string starting at v[pos] == '"' (Fetch
// "collect an HTTP quoted string": a backslash escapes the next character) and
// reports whether it was closed.
func skipQuoted(v string, pos int) (int, bool) {
	pos++
	for pos < len(v) {
		switch v[pos] {
		case '\\':
			if pos+1 >= len(v) {
				return len(v), false
			}
			pos += 2
		case '"':
			return pos + 1, true
		default:
			pos++
		}
	}
	return len(v), false
}

func isASCIISpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
}

// trimASCIISpace strips ASCII white space (Infra "strip leading and trailing
// ASCII whitespace", which ST §3 uses).
func trimASCIISpace(s string) string {
	for len(s) > 0 && isASCIISpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isASCIISpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
