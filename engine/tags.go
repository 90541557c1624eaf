package engine

import (
	"encoding/base64"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tracebridge/tracebridge/propagation"
)

// DefaultTagMaxLength caps tag values unless a rule says otherwise.
const DefaultTagMaxLength = 256

// TagHeaderPrefix prefixes the request header a tag is written to by default.
const TagHeaderPrefix = "x-tracebridge-"

// MetadataNamespace is the Envoy dynamic-metadata namespace of the metadata
// sink: the ext_proc service returns tags under it, the ext_proc filter must
// list it in metadata_options.receiving_namespaces, and span tags read it as
// %DYNAMIC_METADATA(tracebridge:<tag>)%.
const MetadataNamespace = "tracebridge"

// FilterStateProperty prefixes the proxy-wasm property path the wasm filter
// sets for the filter-state sink; Envoy stores proxy_set_property values
// under the filter-state key "wasm.<path>" (docs/ENVOY.md §5), which
// FilterStateKeyPrefix names: tag "tenant" is filter state
// "wasm.tracebridge.tenant".
const (
	FilterStateProperty  = "tracebridge."
	FilterStateKeyPrefix = "wasm." + FilterStateProperty
)

func compileTag(e *ConfigError, path string, r *TagRule, env func(string) string) compiledTag {
	t := compiledTag{name: r.Name, maxLen: r.MaxLength}
	if r.Name == "" || !propagation.IsBaggageKey(r.Name) || strings.ContainsAny(r.Name, "%") {
		e.add(path+".name", "must be a non-empty token (letters, digits, - _ .), got "+strconv.Quote(r.Name))
	}
	if t.maxLen == 0 {
		t.maxLen = DefaultTagMaxLength
	} else if t.maxLen < 1 || t.maxLen > 4096 {
		e.add(path+".maxLength", "must be between 1 and 4096, got "+strconv.Itoa(r.MaxLength))
	}
	t.allDirs = len(r.Directions) == 0
	for i, d := range r.Directions {
		dir, ok := parseDirection(d)
		if !ok {
			e.add(path+".directions["+strconv.Itoa(i)+"]", `must be "inbound" or "outbound", got `+strconv.Quote(d))
		}
		t.dirs[dir] = true
	}
	if len(r.To) == 0 {
		e.add(path+".to", "must list at least one sink: header, baggage, filterState, metadata")
	}
	for i, s := range r.To {
		switch s {
		case "header":
			t.sinks |= SinkHeader
		case "baggage":
			t.sinks |= SinkBaggage
		case "filterState":
			t.sinks |= SinkFilterState
		case "metadata":
			t.sinks |= SinkMetadata
		default:
			e.add(path+".to["+strconv.Itoa(i)+"]", `must be "header", "baggage", "filterState" or "metadata", got `+strconv.Quote(s))
		}
	}
	t.header = strings.ToLower(r.Header)
	if t.header == "" {
		t.header = TagHeaderPrefix + strings.ToLower(r.Name)
	} else if !validHeaderName(t.header) || t.header[0] == ':' {
		e.add(path+".header", "must be a valid HTTP header name, got "+strconv.Quote(r.Header))
	}

	src := &r.From
	set := 0
	if src.Literal != nil {
		set++
		t.literal, t.isLiteral = *src.Literal, true
	}
	if src.Env != "" {
		set++
		// Environment variables are read once, at start: the wasm VM's
		// environment (WasmPlugin vmConfig.env) does not change afterwards.
		t.literal, t.isLiteral = env(src.Env), true
	}
	if src.Header != "" {
		set++
		t.header2 = strings.ToLower(src.Header)
		if !validHeaderName(t.header2) && t.header2 != ":path" && t.header2 != ":authority" && t.header2 != ":method" {
			e.add(path+".from.header", "must be a valid HTTP header name, got "+strconv.Quote(src.Header))
		}
	}
	if src.Path != nil {
		set++
		re, err := compilePathRegex(src.Path.Regex)
		if err != nil {
			e.add(path+".from.path.regex", err.Error())
		} else if src.Path.Group < 0 || src.Path.Group > re.NumSubexp() {
			e.add(path+".from.path.group", "must be between 0 and "+strconv.Itoa(re.NumSubexp())+" (the regex's groups), got "+strconv.Itoa(src.Path.Group))
		}
		t.path, t.group = re, src.Path.Group
	}
	if src.Query != "" {
		set++
		t.query = src.Query
	}
	if src.JWT != nil {
		set++
		t.jwtHeader = strings.ToLower(src.JWT.Header)
		if t.jwtHeader == "" {
			t.jwtHeader = "authorization"
		}
		if src.JWT.Claim == "" {
			e.add(path+".from.jwt.claim", "must name a claim, e.g. \"tenant\" or \"org.plan\"")
		}
		t.jwtClaim = strings.Split(src.JWT.Claim, ".")
	}
	if set != 1 {
		e.add(path+".from", "must set exactly one of literal, env, header, path, query, jwt (got "+strconv.Itoa(set)+")")
	}
	return t
}

// Bounds on a path regex, checked before it is compiled: a policy is
// refused at start rather than making the proxy spend memory and time on an
// expression no path tag needs.
const (
	// MaxRegexBytes caps the length of tags[].from.path.regex.
	MaxRegexBytes = 1024
	// MaxRegexInsts caps the size of its compiled program, counted as
	// regexp/syntax would compile it (repetitions expanded).
	MaxRegexInsts = 2000
)

// compilePathRegex compiles a path-tag expression with Go's regexp (RE2
// syntax, matching in time linear in the path). The program size is
// estimated from the parse tree before compiling, so an expression like
// a{1000}{1000} is refused without building its program.
func compilePathRegex(expr string) (*regexp.Regexp, error) {
	if len(expr) > MaxRegexBytes {
		return nil, errorString("must be at most " + strconv.Itoa(MaxRegexBytes) + " bytes, got " + strconv.Itoa(len(expr)))
	}
	parsed, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, errorString("does not compile: " + err.Error())
	}
	// +2: the program's fail and match instructions.
	if n := progSize(parsed, MaxRegexInsts+1) + 2; n > MaxRegexInsts {
		return nil, errorString("compiles to more than " + strconv.Itoa(MaxRegexInsts) + " instructions")
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, errorString("does not compile: " + err.Error())
	}
	return re, nil
}

// progSize is about the number of instructions syntax.Compile makes for re
// after Simplify (which expands x{n,m} into n copies of x and m-n optional
// ones), never less than it, or limit once it passes limit.
func progSize(re *syntax.Regexp, limit int) int {
	sat := func(n int) int { return min(n, limit) }
	switch re.Op {
	case syntax.OpLiteral:
		return sat(len(re.Rune))
	case syntax.OpCapture:
		return sat(progSize(re.Sub[0], limit) + 2)
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
		return sat(progSize(re.Sub[0], limit) + 1)
	case syntax.OpRepeat:
		// Min copies, then Max-Min optional ones (or one starred copy when
		// Max is -1), each optional one with its own branch instruction.
		sub := progSize(re.Sub[0], limit)
		extra := re.Max - re.Min
		if re.Max < 0 {
			extra = 1
		}
		copies := re.Min + extra
		if copies > 0 && sub+1 > limit/copies {
			return limit
		}
		return sat(re.Min*sub + extra*(sub+1))
	case syntax.OpConcat, syntax.OpAlternate:
		n := 0
		for _, s := range re.Sub {
			n = sat(n + progSize(s, limit) + 1)
		}
		return n
	}
	return 1
}

type errorString string

func (e errorString) Error() string { return string(e) }

// applyTags computes every tag rule for the request and writes the header
// and baggage sinks as mutations.
func (e *Engine) applyTags(dir Direction, h Headers, untrusted bool, res *Result) {
	var bag string
	bagSet := false
	for i := range e.cfg.tags {
		t := &e.cfg.tags[i]
		if !t.allDirs && !t.dirs[dir] || untrusted && t.srcOwned {
			continue
		}
		v, ok := t.value(h)
		if !ok {
			continue
		}
		v, removed := sanitizeTag(v, t.maxLen)
		if removed {
			res.Decisions.add(DecisionSanitized)
		}
		if v == "" {
			continue
		}
		res.Tags = append(res.Tags, Tag{Name: t.name, Value: v, Sinks: t.sinks})
		res.Decisions.add(DecisionTagged)
		if t.sinks&SinkHeader != 0 {
			res.set(t.header, v)
		}
		if t.sinks&SinkBaggage != 0 {
			if !bagSet {
				// Tags join whatever baggage the request leaves with.
				res.finish()
				bag, _ = finalValue(h, res, propagation.HeaderBaggage)
				bagSet = true
			}
			bag = propagation.SetBaggageMember(bag, t.name, v)
		}
	}
	if bagSet {
		if propagation.ValidateBaggage(bag, e.cfg.baggageMembers, e.cfg.baggageBytes) == propagation.OK {
			res.set(propagation.HeaderBaggage, bag)
		} else {
			res.Decisions.add(DecisionError) // the limits leave no room for the tags
		}
	}
}

func (t *compiledTag) value(h Headers) (string, bool) {
	switch {
	case t.isLiteral:
		return t.literal, t.literal != ""
	case t.header2 != "":
		v, n := h.Get(t.header2)
		return v, n > 0
	case t.path != nil:
		p, _ := h.Get(":path")
		if i := strings.IndexByte(p, '?'); i >= 0 {
			p = p[:i]
		}
		m := t.path.FindStringSubmatchIndex(p)
		if m == nil || m[2*t.group] < 0 {
			return "", false
		}
		v := p[m[2*t.group]:m[2*t.group+1]]
		return v, v != ""
	case t.query != "":
		p, _ := h.Get(":path")
		_, q, ok := strings.Cut(p, "?")
		if !ok {
			return "", false
		}
		v := queryParam(q, t.query)
		return v, v != ""
	case t.jwtHeader != "":
		return jwtClaim(h, t.jwtHeader, t.jwtClaim)
	}
	return "", false
}

// queryParam returns the first value of the query parameter name, decoded as
// url.ParseQuery does: pairs separated by "&", "+" is a space, pairs with a
// ";" or a bad percent-escape are skipped. "" if absent.
func queryParam(q, name string) string {
	for q != "" {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		if pair == "" || strings.IndexByte(pair, ';') >= 0 {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, ok := unescapeQuery(k)
		if !ok || k != name {
			continue
		}
		if v, ok = unescapeQuery(v); ok {
			return v
		}
	}
	return ""
}

// unescapeQuery decodes a query component like url.QueryUnescape; it
// allocates only when there is something to decode.
func unescapeQuery(s string) (string, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '%':
			if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
				return "", false
			}
			n++
			i += 2
		case '+':
			n++
		}
	}
	if n == 0 {
		return s, true
	}
	b := make([]byte, 0, len(s)-2*strings.Count(s, "%"))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '%':
			b = append(b, byte(unhex(s[i+1])<<4|unhex(s[i+2])))
			i += 2
		case '+':
			b = append(b, ' ')
		default:
			b = append(b, s[i])
		}
	}
	return string(b), true
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// jwtClaim decodes a JWT payload and reads a claim. The signature is NOT
// verified (Istio's RequestAuthentication does that before this filter);
// never use such a tag for a security decision.
func jwtClaim(h Headers, header string, path []string) (string, bool) {
	v, n := h.Get(header)
	if n != 1 {
		return "", false
	}
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		v = v[7:]
	}
	if len(v) > 16384 {
		return "", false
	}
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return "", false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return "", false
	}
	claims, err := decodeJSON(payload)
	if err != nil {
		return "", false
	}
	cur := claims
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		if cur, ok = m[k]; !ok {
			return "", false
		}
	}
	switch x := cur.(type) {
	case string:
		return x, true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// sanitizeTag drops control characters (C0, DEL, C1), invalid UTF-8, the
// Unicode bidirectional controls and the line and paragraph separators, and
// caps the length at a rune boundary, so that a client cannot smuggle header
// or log injection through a tag, nor text that displays otherwise than it
// reads (in a trace UI, a log viewer, a terminal) or that splits a line in a
// JSON or JavaScript consumer. removed reports whether characters were
// dropped (not counting the cap).
func sanitizeTag(v string, max int) (clean string, removed bool) {
	plain := true
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f || c >= 0x80 {
			plain = false
			break
		}
	}
	if plain && len(v) <= max {
		return v, false
	}
	var b strings.Builder
	for _, r := range v {
		if r == utf8.RuneError || r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || invisibleFormat(r) {
			removed = true
			continue
		}
		if b.Len()+utf8.RuneLen(r) > max {
			break
		}
		b.WriteRune(r)
	}
	return b.String(), removed
}

// invisibleFormat reports the bidirectional controls of Unicode's UAX #9
// (§2, "Explicit Directional Formatting Characters", and the implicit marks
// ALM, LRM, RLM), which reorder the text around them, and U+2028 LINE
// SEPARATOR and U+2029 PARAGRAPH SEPARATOR, which end a line for many
// readers but are not JSON escapes.
func invisibleFormat(r rune) bool {
	switch {
	case r == 0x061c, r == 0x200e, r == 0x200f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	case r == 0x2028, r == 0x2029:
		return true
	}
	return false
}
