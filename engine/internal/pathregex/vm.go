package pathregex

import (
	"strings"
	"unicode/utf8"
)

// The matcher is a Pike VM: a list of threads in priority order advances one
// rune at a time, each thread a program counter plus capture positions. A
// thread that reaches an instruction already taken at this position by a
// higher-priority thread is dropped, so the list never holds more threads
// than the program has instructions and the work is O(len(input) *
// len(program)). The highest-priority thread to reach Match wins, which is
// leftmost-first (Perl) semantics, Go's for regexp.Regexp.

// assert is a set of empty-width conditions.
type assert uint8

const (
	assertBeginLine assert = 1 << iota
	assertEndLine
	assertBeginText
	assertEndText
	assertWordBoundary
	assertNoWordBoundary
)

// context returns the conditions that hold between rune before and rune
// after (-1 at either end of the text). \b is ASCII-only, as in Go.
func context(before, after rune) assert {
	var a assert
	switch {
	case before < 0:
		a |= assertBeginText | assertBeginLine
	case before == '\n':
		a |= assertBeginLine
	}
	switch {
	case after < 0:
		a |= assertEndText | assertEndLine
	case after == '\n':
		a |= assertEndLine
	}
	if isWordRune(before) != isWordRune(after) {
		a |= assertWordBoundary
	} else {
		a |= assertNoWordBoundary
	}
	return a
}

func isWordRune(r rune) bool {
	return r >= 0 && r < utf8.RuneSelf && (isAlnum(byte(r)) || r == '_')
}

// queue is the thread list of one position: a sparse set of program
// counters (every instruction visited while following empty transitions is
// recorded, so each is entered once per position) and the capture slots of
// each entry.
type queue struct {
	sparse []uint32
	dense  []uint32
	caps   []int // entry i's slots at [i*ncap, (i+1)*ncap)
}

func (q *queue) has(pc uint32) bool {
	i := q.sparse[pc]
	return int(i) < len(q.dense) && q.dense[i] == pc
}

// machine is the reusable state of one match.
type machine struct {
	prog         []inst
	ncap         int
	queues       [2]queue
	stack        []frame
	matchCaps    []int
	matched      bool
	steps        int      // instructions visited, for tests of the linear bound
	visited      []uint32 // backtracker: one bit per (instruction, position)
	startingCaps []int
}

// frame is a work item of the closure: follow pc, or (slot >= 0) put back
// the slot's old value when the branch that set it is done.
type frame struct {
	pc   uint32
	slot int32
	val  int
}

func newMachine(prog []inst) *machine {
	n := len(prog)
	m := &machine{prog: prog, stack: make([]frame, 0, n)}
	for i := range m.queues {
		m.queues[i].sparse = make([]uint32, n)
		m.queues[i].dense = make([]uint32, 0, n)
	}
	return m
}

// reset prepares for a match tracking ncap capture slots.
func (m *machine) reset(ncap int) {
	m.ncap = ncap
	if cap(m.queues[0].caps) < len(m.prog)*ncap {
		m.queues[0].caps = make([]int, len(m.prog)*ncap)
		m.queues[1].caps = make([]int, len(m.prog)*ncap)
		m.matchCaps = make([]int, ncap)
		m.startingCaps = make([]int, ncap)
	}
	m.matchCaps = m.matchCaps[:ncap]
	m.startingCaps = m.startingCaps[:ncap]
	for i := range m.matchCaps {
		m.matchCaps[i] = -1
		m.startingCaps[i] = -1
	}
	m.queues[0].dense = m.queues[0].dense[:0]
	m.queues[1].dense = m.queues[1].dense[:0]
	m.matched = false
	m.steps = 0
}

// add follows pc and its empty transitions at pos (where the conditions ctx
// hold) in priority order, appending the threads it reaches to q with caps
// (restored to its old contents on return).
func (m *machine) add(q *queue, pc uint32, pos int, caps []int, ctx assert) {
	stack := append(m.stack[:0], frame{pc: pc, slot: -1})
	for len(stack) > 0 {
		f := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if f.slot >= 0 {
			caps[f.slot] = f.val
			continue
		}
		pc := f.pc
	follow:
		for !q.has(pc) {
			m.steps++
			i := len(q.dense)
			q.sparse[pc] = uint32(i)
			q.dense = append(q.dense, pc)
			in := &m.prog[pc]
			switch in.op {
			case instSplit:
				stack = append(stack, frame{pc: in.arg, slot: -1})
				pc = in.out
			case instNop:
				pc = in.out
			case instSave:
				if int(in.arg) < len(caps) {
					stack = append(stack, frame{slot: int32(in.arg), val: caps[in.arg]})
					caps[in.arg] = pos
				}
				pc = in.out
			case instAssert:
				if in.assert&^ctx != 0 {
					break follow
				}
				pc = in.out
			default: // a thread waits here for the next rune, or matches
				copy(q.caps[i*m.ncap:(i+1)*m.ncap], caps)
				break follow
			}
		}
	}
	m.stack = stack[:0]
}

// step advances every thread of run over rune r at pos (width w) into next,
// where the conditions nextCtx hold. A thread reaching Match records its
// captures and drops the lower-priority threads after it.
func (m *machine) step(run, next *queue, pos int, r rune, w int, nextCtx assert) {
	for i, pc := range run.dense {
		in := &m.prog[pc]
		var ok bool
		switch in.op {
		case instMatch:
			caps := run.caps[i*m.ncap : (i+1)*m.ncap]
			copy(m.matchCaps, caps)
			m.matchCaps[1] = pos
			m.matched = true
			return
		case instRune1:
			ok = r == in.r
		case instRune:
			ok = r >= 0 && contains(in.runes, r)
		case instAny:
			ok = r >= 0
		case instAnyNotNL:
			ok = r >= 0 && r != '\n'
		default:
			continue // visited on the way, not a thread
		}
		m.steps++
		if ok {
			m.add(next, in.out, pos+w, run.caps[i*m.ncap:(i+1)*m.ncap], nextCtx)
		}
	}
}

// pike runs the leftmost-first search of s; on success m.matchCaps holds
// the positions of the tracked slots.
func (m *machine) pike(s string, f *startFacts) bool {
	anchored, prefix := f.anchored, f.prefix
	run, next := &m.queues[0], &m.queues[1]
	pos := 0
	r, w := decode(s, 0)
	before := rune(-1)
	for {
		if len(run.dense) == 0 {
			if m.matched || anchored && pos > 0 {
				break
			}
			if prefix != "" && !anchored {
				// No thread is alive: skip to where a match can start.
				i := indexFrom(s, pos, prefix)
				if i < 0 {
					break
				}
				if i > pos {
					pos = i
					r, w = decode(s, pos)
					before = runeBefore(s, pos)
				}
			}
		}
		// A new thread starting here, lowest priority; none where the
		// prefix cannot begin (it would die at its first rune).
		if !m.matched && (pos == 0 || !anchored) && (prefix == "" || pos < len(s) && s[pos] == prefix[0]) {
			m.startingCaps[0] = pos
			m.add(run, f.start, pos, m.startingCaps, m.context(f, before, r))
		}
		r1, w1 := decode(s, pos+w)
		m.step(run, next, pos, r, w, m.context(f, r, r1))
		if w == 0 {
			break
		}
		pos += w
		before, r, w = r, r1, w1
		run, next = next, run
		next.dense = next.dense[:0]
	}
	return m.matched
}

// indexFrom returns the first index at or after pos where lit occurs in s,
// or -1.
func indexFrom(s string, pos int, lit string) int {
	i := strings.Index(s[pos:], lit)
	if i < 0 {
		return -1
	}
	return pos + i
}

// context is the conditions between two runes, if the program tests any.
func (m *machine) context(f *startFacts, before, after rune) assert {
	if !f.asserts {
		return 0
	}
	return context(before, after)
}

// decode returns the rune at i, with invalid UTF-8 as U+FFFD of width 1
// (utf8.DecodeRuneInString, as Go's matchers read input), or -1 at the end.
func decode(s string, i int) (rune, int) {
	if i >= len(s) {
		return -1, 0
	}
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// runeBefore returns a stand-in for the rune before i for context: only
// ASCII matters there (\n and word characters), so any non-ASCII byte is
// reported as U+FFFD.
func runeBefore(s string, i int) rune {
	if i == 0 {
		return -1
	}
	if c := s[i-1]; c < utf8.RuneSelf {
		return rune(c)
	}
	return utf8.RuneError
}
