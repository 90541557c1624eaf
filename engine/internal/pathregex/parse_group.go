package pathregex

import (
	"strings"
	"unicode/utf8"
)

// group parses "(...)", "(?:...)", "(?P<name>...)", "(?<name>...)",
// "(?flags:...)" and "(?flags)"; the last returns no node.
func (p *parser) group(s string) ([]*node, string, error) {
	outer := p.flags // flags set inside a group end with it
	capIndex := 0
	body := s[1:]
	switch {
	case strings.HasPrefix(s, "(?P<") || strings.HasPrefix(s, "(?<"):
		nameStart := strings.IndexByte(s, '<') + 1
		end := strings.IndexByte(s, '>')
		if end < 0 || !validGroupName(s[nameStart:end]) {
			if end < 0 {
				end = len(s) - 1
			}
			return nil, "", &Error{"invalid named capture", s[:end+1]}
		}
		capIndex, body = p.groups+1, s[end+1:]
	case strings.HasPrefix(s, "(?"):
		f, rest, open, err := parseFlags(s, p.flags)
		if err != nil {
			return nil, "", err
		}
		if !open {
			p.flags = f
			return nil, rest, nil
		}
		p.flags, body = f, rest
	default:
		capIndex = p.groups + 1
	}
	if capIndex > 0 {
		if capIndex > maxGroups {
			return nil, "", &Error{"unsupported: more than 100 capture groups", s[:len(s)-len(body)]}
		}
		p.groups = capIndex
	}
	if p.depth++; p.depth > maxDepth {
		return nil, "", &Error{"unsupported: groups nested more than 100 deep", s[:len(s)-len(body)]}
	}
	n, rest, err := p.alternation(body)
	if err != nil {
		return nil, "", err
	}
	if rest == "" {
		return nil, "", &Error{"missing closing )", s}
	}
	p.depth--
	p.flags = outer
	if capIndex > 0 {
		n = &node{op: opCapture, cap: capIndex, subs: []*node{n}}
	}
	return []*node{n}, rest[1:], nil
}

// validGroupName: [A-Za-z0-9_]+, as Go accepts.
func validGroupName(name string) bool {
	for i := 0; i < len(name); i++ {
		if name[i] != '_' && !isAlnum(name[i]) {
			return false
		}
	}
	return name != ""
}

// parseFlags parses "(?flags)" or "(?flags:" with flags from i m s U and at
// most one "-" that must be followed by a flag; "(?)" is an accepted no-op
// as in Go. open reports the ":" form.
func parseFlags(s string, f flags) (out flags, rest string, open bool, err error) {
	t := s[2:]
	negated, sawFlag := false, false
	for t != "" {
		c, size := utf8.DecodeRuneInString(t)
		t = t[size:]
		var bit flags
		switch c {
		case 'i':
			bit = flagFold
		case 'm':
			bit = flagMultiLine
		case 's':
			bit = flagDotNL
		case 'U':
			bit = flagUngreedy
		case '-':
			if negated {
				return 0, "", false, &Error{"invalid or unsupported Perl syntax", s[:len(s)-len(t)]}
			}
			negated, sawFlag = true, false
			continue
		case ':', ')':
			if negated && !sawFlag {
				return 0, "", false, &Error{"invalid or unsupported Perl syntax", s[:len(s)-len(t)]}
			}
			return f, t, c == ':', nil
		default:
			return 0, "", false, &Error{"invalid or unsupported Perl syntax", s[:len(s)-len(t)]}
		}
		if negated {
			f &^= bit
		} else {
			f |= bit
		}
		sawFlag = true
	}
	return 0, "", false, &Error{"invalid or unsupported Perl syntax", s}
}

// class parses a bracket expression "[...]". "]" first is a literal, "-" is
// a literal where it cannot form a range, [:name:] is a POSIX class.
func (p *parser) class(s string) (*node, string, error) {
	fold := p.flags&flagFold != 0
	t := s[1:]
	negated := strings.HasPrefix(t, "^")
	if negated {
		t = t[1:]
	}
	var r []rune
	for first := true; t == "" || t[0] != ']' || first; first = false {
		if t == "" {
			return nil, "", &Error{"missing closing ]", s}
		}
		if len(t) > 2 && t[0] == '[' && t[1] == ':' {
			if i := strings.Index(t[2:], ":]"); i >= 0 {
				name := t[2 : i+2]
				set := posixSet(strings.TrimPrefix(name, "^"))
				if set == nil {
					return nil, "", &Error{"invalid character class range", t[:i+4]}
				}
				r = appendSet(r, set, strings.HasPrefix(name, "^"), fold)
				t = t[i+4:]
				continue
			}
		}
		if len(t) >= 2 && t[0] == '\\' {
			if t[1] == 'p' || t[1] == 'P' {
				return nil, "", &Error{"unsupported: Unicode character class", t[:2]}
			}
			if set, neg, ok := perlSet(t[1]); ok {
				r = appendSet(r, set, neg, fold)
				t = t[2:]
				continue
			}
		}
		lo, rest, err := classChar(t)
		if err != nil {
			return nil, "", err
		}
		hi := lo
		if len(rest) >= 2 && rest[0] == '-' && rest[1] != ']' {
			if hi, rest, err = classChar(rest[1:]); err != nil {
				return nil, "", err
			}
			if hi < lo {
				return nil, "", &Error{"invalid character class range", t[:len(t)-len(rest)]}
			}
		}
		if fold {
			if hi > 0x7f {
				return nil, "", &Error{"unsupported: (?i) with a non-ASCII character", t[:len(t)-len(rest)]}
			}
			r = appendFolded(r, lo, hi)
		} else {
			r = append(r, lo, hi)
		}
		t = rest
	}
	r = normalize(r)
	if negated {
		r = negate(r)
	}
	return &node{op: opRunes, runes: r}, t[1:], nil
}

func classChar(t string) (rune, string, error) {
	if t[0] == '\\' {
		return parseEscape(t)
	}
	c, size := utf8.DecodeRuneInString(t)
	return c, t[size:], nil
}
