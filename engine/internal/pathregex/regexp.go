package pathregex

import (
	"strings"
	"sync"
	"unicode/utf8"
)

// Regexp is a compiled expression. It is safe for concurrent use.
type Regexp struct {
	expr      string
	prog      []inst
	numSubexp int
	facts     startFacts
	machines  sync.Pool
}

// startFacts are what the matchers need to know besides the program.
type startFacts struct {
	start    uint32
	anchored bool   // every match starts at 0 (a leading ^ or \A)
	prefix   string // every match starts with this literal
	asserts  bool   // the program has empty-width assertions
}

// Compile parses expr (RE2 syntax, the subset described in the package
// documentation). Any expression it accepts, Go's regexp.Compile accepts and
// matches the same way; anything else is an *Error.
func Compile(expr string) (*Regexp, error) {
	tree, groups, err := parse(expr)
	if err != nil {
		return nil, err
	}
	prog, start, err := compile(simplify(tree))
	if err != nil {
		return nil, &Error{err.(*Error).Msg, expr}
	}
	re := &Regexp{expr: expr, prog: prog, numSubexp: groups}
	re.facts = analyze(prog, start)
	return re, nil
}

// analyze finds what every path from start goes through first: a
// begin-text assertion (anchored) and literal runes (prefix). Captures and
// no-ops in between do not consume input.
func analyze(prog []inst, start uint32) startFacts {
	f := startFacts{start: start}
	for i := range prog {
		f.asserts = f.asserts || prog[i].op == instAssert
	}
	pc := start
	for {
		in := &prog[pc]
		switch in.op {
		case instNop, instSave:
		case instAssert:
			f.anchored = f.anchored || in.assert&assertBeginText != 0
		default:
			var b strings.Builder
			// U+FFFD is left out: it also stands for invalid bytes, which a
			// substring search would not find.
			for in.op == instRune1 && in.r != utf8.RuneError && utf8.ValidRune(in.r) {
				b.WriteRune(in.r)
				in = &prog[in.out]
			}
			f.prefix = b.String()
			return f
		}
		pc = in.out
	}
}

// String returns the source text.
func (re *Regexp) String() string { return re.expr }

// NumSubexp returns the number of capture groups.
func (re *Regexp) NumSubexp() int { return re.numSubexp }

// FindStringSubmatchIndex returns the leftmost-first match of s as
// regexp.Regexp.FindStringSubmatchIndex does: pairs of byte offsets for the
// match and each group, -1 for a group that took no part, nil for no match.
func (re *Regexp) FindStringSubmatchIndex(s string) []int {
	return re.index(s, auto)
}

// matcher chooses the algorithm; tests force each.
type matcher uint8

const (
	auto matcher = iota
	pikeVM
	backtracker
)

func (re *Regexp) index(s string, how matcher) []int {
	m := re.get(2 * (re.numSubexp + 1))
	defer re.machines.Put(m)
	if !re.exec(m, s, how) {
		return nil
	}
	return append([]int(nil), m.matchCaps...)
}

// exec runs the backtracker when its bitmap is small enough, else the Pike
// VM; both give the same answer.
func (re *Regexp) exec(m *machine, s string, how matcher) bool {
	if how == backtracker || how == auto && canBacktrack(re.prog, s) {
		return m.backtrack(s, &re.facts)
	}
	return m.pike(s, &re.facts)
}

// FindGroup returns the text of capture group n (0: the whole match) of the
// leftmost-first match in s. ok is false when nothing matches, when the
// group takes no part in the match, or when n is out of range. It tracks
// only the groups up to n and does not allocate once warm.
func (re *Regexp) FindGroup(s string, n int) (text string, ok bool) {
	if n < 0 || n > re.numSubexp {
		return "", false
	}
	m := re.get(2 * (n + 1))
	defer re.machines.Put(m)
	if !re.exec(m, s, auto) {
		return "", false
	}
	lo, hi := m.matchCaps[2*n], m.matchCaps[2*n+1]
	if lo < 0 || hi < 0 {
		return "", false
	}
	return s[lo:hi], true
}

func (re *Regexp) get(ncap int) *machine {
	m, _ := re.machines.Get().(*machine)
	if m == nil {
		m = newMachine(re.prog)
	}
	m.reset(ncap)
	return m
}
