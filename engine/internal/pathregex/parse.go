package pathregex

import (
	"strings"
	"unicode/utf8"
)

// Limits. Go's own limits are far larger (1000 for repeat counts, a parse
// tree height of 1000, ~3.3M instructions), so anything refused by Go is
// also refused here; ours keep the matcher's memory small.
const (
	maxRepeat = 1000 // RE2 and Go: {n,m} counts above 1000 are an error
	maxDepth  = 100  // group nesting
	maxGroups = 100  // capture groups
	maxInsts  = 2000 // compiled program
)

// Error is a refused expression: a syntax error (also refused by Go's
// regexp) or a construct this package does not support.
type Error struct {
	Msg  string // what is wrong
	Expr string // the offending part of the expression
}

func (e *Error) Error() string { return e.Msg + ": `" + e.Expr + "`" }

type nodeOp uint8

const (
	opEmpty   nodeOp = iota // matches the empty string
	opRunes                 // one rune from a set
	opAssert                // empty-width assertion
	opCapture               // numbered group
	opStar
	opPlus
	opQuest
	opRepeat // {min,max}, max -1 for no upper bound
	opConcat
	opAlternate
)

type node struct {
	op       nodeOp
	lazy     bool   // repetitions: prefer fewer
	min, max int    // opRepeat
	cap      int    // opCapture: group number
	assert   assert // opAssert
	runes    []rune // opRunes: normalized set
	subs     []*node
}

// Flags of the (?flags) syntax; they last to the end of the enclosing group.
type flags uint8

const (
	flagFold      flags = 1 << iota // i: ASCII case-insensitive
	flagMultiLine                   // m: ^ and $ match at line ends
	flagDotNL                       // s: . matches \n
	flagUngreedy                    // U: swap the meaning of x* and x*?
)

type parser struct {
	flags  flags
	groups int
	depth  int
}

// parse returns the tree of expr and its number of capture groups.
func parse(expr string) (*node, int, error) {
	if !utf8.ValidString(expr) {
		return nil, 0, &Error{"invalid UTF-8", expr}
	}
	var p parser
	n, rest, err := p.alternation(expr)
	if err != nil {
		return nil, 0, err
	}
	if rest != "" {
		return nil, 0, &Error{"unexpected )", expr}
	}
	return n, p.groups, nil
}

// alternation parses up to an unmatched ")" or the end; rest starts there.
func (p *parser) alternation(s string) (n *node, rest string, err error) {
	var alts []*node
	for {
		var c *node
		if c, s, err = p.concat(s); err != nil {
			return nil, "", err
		}
		alts = append(alts, c)
		if s == "" || s[0] == ')' {
			break
		}
		s = s[1:] // |
	}
	if len(alts) == 1 {
		return alts[0], s, nil
	}
	return &node{op: opAlternate, subs: alts}, s, nil
}

func (p *parser) concat(s string) (n *node, rest string, err error) {
	var items []*node
	// canRepeat: the last item may take a repetition operator. It is false
	// after a flag group or an empty \Q\E, where Go would apply the operator
	// to an earlier item; that corner is refused rather than copied.
	canRepeat, afterRepeat := false, false
	for s != "" && s[0] != '|' && s[0] != ')' {
		if op, min, max, size, ok, err := repeatOp(s); err != nil {
			return nil, "", err
		} else if ok {
			lazy := p.flags&flagUngreedy != 0
			if len(s) > size && s[size] == '?' {
				size++
				lazy = !lazy
			}
			switch {
			case afterRepeat:
				// Go (Perl syntax): a** and a++ are errors.
				return nil, "", &Error{"invalid nested repetition operator", s[:size]}
			case len(items) == 0:
				return nil, "", &Error{"missing argument to repetition operator", s[:size]}
			case !canRepeat:
				return nil, "", &Error{"unsupported: repetition operator after a flag group or empty \\Q\\E", s[:size]}
			}
			last := len(items) - 1
			r := &node{op: op, lazy: lazy, min: min, max: max, subs: []*node{items[last]}}
			// Go's parser: nested repeats may multiply to at most 1000 copies.
			if op == opRepeat && (min >= 2 || max >= 2) && !repeatIsValid(r, maxRepeat) {
				return nil, "", &Error{"invalid repeat count", s[:size]}
			}
			items[last] = r
			s = s[size:]
			afterRepeat = true
			continue
		}
		afterRepeat = false
		var atoms []*node
		if atoms, s, err = p.atom(s); err != nil {
			return nil, "", err
		}
		items = append(items, atoms...)
		canRepeat = len(atoms) > 0
	}
	switch len(items) {
	case 0:
		return &node{op: opEmpty}, s, nil
	case 1:
		return items[0], s, nil
	}
	return &node{op: opConcat, subs: items}, s, nil
}

// repeatOp recognizes * + ? {n} {n,} {n,m} at the start of s. A "{" that
// does not form a count is a literal, as in Go.
func repeatOp(s string) (op nodeOp, min, max, size int, ok bool, err error) {
	switch s[0] {
	case '*':
		return opStar, 0, 0, 1, true, nil
	case '+':
		return opPlus, 0, 0, 1, true, nil
	case '?':
		return opQuest, 0, 0, 1, true, nil
	case '{':
		min, max, size, ok = parseCount(s)
		if !ok {
			return 0, 0, 0, 0, false, nil
		}
		if min < 0 || min > maxRepeat || max > maxRepeat || max >= 0 && min > max {
			return 0, 0, 0, 0, false, &Error{"invalid repeat count", s[:size]}
		}
		return opRepeat, min, max, size, true, nil
	}
	return 0, 0, 0, 0, false, nil
}

// parseCount parses {n}, {n,} (max -1) or {n,m}. Numbers have no leading
// zeros; one too large to read gives min -1 (an error for the caller).
func parseCount(s string) (min, max, size int, ok bool) {
	t := s[1:]
	if min, t, ok = decimal(t); !ok || t == "" {
		return 0, 0, 0, false
	}
	switch {
	case t[0] == '}':
		max = min
	case t[0] == ',' && len(t) > 1 && t[1] == '}':
		max, t = -1, t[1:]
	case t[0] == ',':
		if max, t, ok = decimal(t[1:]); !ok || t == "" {
			return 0, 0, 0, false
		}
		if max < 0 {
			min = -1
		}
	default:
		return 0, 0, 0, false
	}
	if t == "" || t[0] != '}' {
		return 0, 0, 0, false
	}
	return min, max, len(s) - len(t) + 1, true
}

func decimal(s string) (n int, rest string, ok bool) {
	i := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 1 && s[0] == '0' {
		return 0, s, false
	}
	for _, c := range s[:i] {
		if n >= 1e8 {
			return -1, s[i:], true
		}
		n = n*10 + int(c-'0')
	}
	return n, s[i:], true
}

// repeatIsValid reports whether the nested {n,m} repeats in n multiply to at
// most limit copies of the innermost item (Go's regexp/syntax rule of the
// same name; a {0} repeat makes its subtree free).
func repeatIsValid(n *node, limit int) bool {
	if n.op == opRepeat {
		m := n.max
		if m == 0 {
			return true
		}
		if m < 0 {
			m = n.min
		}
		if m > limit {
			return false
		}
		if m > 0 {
			limit /= m
		}
	}
	for _, sub := range n.subs {
		if !repeatIsValid(sub, limit) {
			return false
		}
	}
	return true
}

// atom parses one item: a group, class, escape, assertion or literal. It
// returns no node for a flag group (?i) and one node per rune of \Q...\E.
func (p *parser) atom(s string) (atoms []*node, rest string, err error) {
	switch s[0] {
	case '(':
		return p.group(s)
	case '[':
		n, rest, err := p.class(s)
		return one(n, rest, err)
	case '.':
		if p.flags&flagDotNL != 0 {
			return one(&node{op: opRunes, runes: []rune{0, maxRune}}, s[1:], nil)
		}
		return one(&node{op: opRunes, runes: []rune{0, '\n' - 1, '\n' + 1, maxRune}}, s[1:], nil)
	case '^':
		if p.flags&flagMultiLine != 0 {
			return one(&node{op: opAssert, assert: assertBeginLine}, s[1:], nil)
		}
		return one(&node{op: opAssert, assert: assertBeginText}, s[1:], nil)
	case '$':
		if p.flags&flagMultiLine != 0 {
			return one(&node{op: opAssert, assert: assertEndLine}, s[1:], nil)
		}
		return one(&node{op: opAssert, assert: assertEndText}, s[1:], nil)
	case '\\':
		return p.escapeAtom(s)
	}
	c, size := utf8.DecodeRuneInString(s)
	n, err := p.literal(c, s[:size])
	return one(n, s[size:], err)
}

func one(n *node, rest string, err error) ([]*node, string, error) {
	if err != nil {
		return nil, "", err
	}
	return []*node{n}, rest, nil
}

func (p *parser) literal(c rune, src string) (*node, error) {
	if p.flags&flagFold == 0 {
		return &node{op: opRunes, runes: []rune{c, c}}, nil
	}
	if c > 0x7f {
		return nil, &Error{"unsupported: (?i) with a non-ASCII character", src}
	}
	return &node{op: opRunes, runes: normalize(appendFolded(nil, c, c))}, nil
}

// escapeAtom parses an escape outside a class.
func (p *parser) escapeAtom(s string) ([]*node, string, error) {
	if len(s) >= 2 {
		switch s[1] {
		case 'A':
			return one(&node{op: opAssert, assert: assertBeginText}, s[2:], nil)
		case 'z':
			return one(&node{op: opAssert, assert: assertEndText}, s[2:], nil)
		case 'b':
			return one(&node{op: opAssert, assert: assertWordBoundary}, s[2:], nil)
		case 'B':
			return one(&node{op: opAssert, assert: assertNoWordBoundary}, s[2:], nil)
		case 'C':
			return nil, "", &Error{"invalid escape sequence (\\C, any byte, is not supported)", s[:2]}
		case 'p', 'P':
			return nil, "", &Error{"unsupported: Unicode character class", s[:2]}
		case 'Q':
			// \Q...\E: everything up to \E (or the end) is literal.
			lit, rest, _ := strings.Cut(s[2:], `\E`)
			var atoms []*node
			for _, c := range lit {
				n, err := p.literal(c, lit)
				if err != nil {
					return nil, "", err
				}
				atoms = append(atoms, n)
			}
			return atoms, rest, nil
		}
		if set, negated, ok := perlSet(s[1]); ok {
			r := normalize(appendSet(nil, set, negated, p.flags&flagFold != 0))
			return one(&node{op: opRunes, runes: r}, s[2:], nil)
		}
	}
	c, rest, err := parseEscape(s)
	if err != nil {
		return nil, "", err
	}
	n, err := p.literal(c, s[:len(s)-len(rest)])
	return one(n, rest, err)
}

// parseEscape parses a single-character escape: octal \0 \012 (a lone
// \1-\7 would be a backreference), \xHH, \x{H...}, \a \f \n \r \t \v, and a
// backslash before any ASCII punctuation. Rules of Go's parseEscape.
func parseEscape(s string) (r rune, rest string, err error) {
	if len(s) < 2 {
		return 0, "", &Error{"trailing backslash at end of expression", ""}
	}
	c, size := utf8.DecodeRuneInString(s[1:])
	t := s[1+size:]
	bad := func(t string) (rune, string, error) {
		return 0, "", &Error{"invalid escape sequence", s[:len(s)-len(t)]}
	}
	switch {
	case c == '0' || '1' <= c && c <= '7' && t != "" && isOctal(t[0]):
		r = c - '0'
		for i := 1; i < 3 && t != "" && isOctal(t[0]); i++ {
			r = r*8 + rune(t[0]-'0')
			t = t[1:]
		}
		return r, t, nil
	case c == 'x':
		if strings.HasPrefix(t, "{") {
			end := strings.IndexByte(t, '}')
			if end < 2 {
				return bad(t)
			}
			for i := 1; i < end; i++ {
				v := unhex(t[i])
				if v < 0 {
					return bad(t[i:])
				}
				if r = r*16 + v; r > maxRune {
					return bad(t[i:])
				}
			}
			return r, t[end+1:], nil
		}
		if len(t) < 2 || unhex(t[0]) < 0 || unhex(t[1]) < 0 {
			return bad(t)
		}
		return unhex(t[0])*16 + unhex(t[1]), t[2:], nil
	}
	switch c {
	case 'a':
		return '\a', t, nil
	case 'f':
		return '\f', t, nil
	case 'n':
		return '\n', t, nil
	case 'r':
		return '\r', t, nil
	case 't':
		return '\t', t, nil
	case 'v':
		return '\v', t, nil
	}
	if c < utf8.RuneSelf && !isAlnum(byte(c)) {
		return c, t, nil
	}
	return bad(t)
}

func isOctal(c byte) bool { return '0' <= c && c <= '7' }

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
}

func unhex(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return rune(c-'A') + 10
	}
	return -1
}
