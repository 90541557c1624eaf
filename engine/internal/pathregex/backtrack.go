package pathregex

// A bit-state backtracker for small inputs, as RE2 and Go use one: a
// depth-first search of the program in priority order that marks each
// (instruction, position) pair the first time it is explored. A pair seen
// again can only fail again (or would have matched already), so the search
// does at most len(prog)*(len(s)+1) visits: linear, like the Pike VM, but
// with no thread list or capture copies per position, so much cheaper per
// rune. The first path to reach Match is the highest-priority one, the
// Pike VM's answer.

// maxBacktrackBits bounds the visited bitmap (8 KB; Go allows 32 KB) and so
// the job stack, at most one 16-byte frame per bit (1 MB): beyond it the
// Pike VM runs instead. A typical 30-instruction path regex backtracks over
// paths up to about 2 KB.
const maxBacktrackBits = 64 * 1024

func canBacktrack(prog []inst, s string) bool {
	return len(prog)*(len(s)+1) <= maxBacktrackBits
}

// backtrack searches s like match; the result is in m.matchCaps.
func (m *machine) backtrack(s string, f *startFacts) bool {
	anchored, prefix := f.anchored, f.prefix
	bits := len(m.prog) * (len(s) + 1)
	words := (bits + 31) / 32
	if cap(m.visited) < words {
		m.visited = make([]uint32, words)
	}
	m.visited = m.visited[:words]
	clear(m.visited)
	for pos := 0; pos <= len(s); {
		if prefix != "" && !anchored {
			i := indexFrom(s, pos, prefix)
			if i < 0 {
				return false
			}
			pos = i
		}
		copy(m.matchCaps, m.startingCaps)
		m.matchCaps[0] = pos
		if m.try(s, f.start, pos) {
			return true
		}
		if anchored || pos == len(s) {
			return false
		}
		_, w := decode(s, pos)
		pos += w
	}
	return false
}

// try explores from (start, pos) in priority order with the captures in
// m.matchCaps, leaving the winning path's captures there.
func (m *machine) try(s string, start uint32, pos int) bool {
	caps := m.matchCaps
	stack := append(m.stack[:0], frame{pc: start, slot: -1, val: pos})
	defer func() { m.stack = stack[:0] }()
	width := len(s) + 1
	for len(stack) > 0 {
		f := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if f.slot >= 0 {
			caps[f.slot] = f.val
			continue
		}
		pc, pos := f.pc, f.val
	follow:
		for {
			bit := int(pc)*width + pos
			if m.visited[bit/32]&(1<<(bit%32)) != 0 {
				break
			}
			m.visited[bit/32] |= 1 << (bit % 32)
			m.steps++
			in := &m.prog[pc]
			switch in.op {
			case instSplit:
				stack = append(stack, frame{pc: in.arg, slot: -1, val: pos})
				pc = in.out
				continue
			case instNop:
				pc = in.out
				continue
			case instSave:
				if int(in.arg) < len(caps) {
					stack = append(stack, frame{slot: int32(in.arg), val: caps[in.arg]})
					caps[in.arg] = pos
				}
				pc = in.out
				continue
			case instAssert:
				r, _ := decode(s, pos)
				if in.assert&^context(runeBefore(s, pos), r) != 0 {
					break follow
				}
				pc = in.out
				continue
			case instMatch:
				caps[1] = pos
				m.matched = true
				return true
			}
			r, w := decode(s, pos)
			if r < 0 || !runeMatches(in, r) {
				break
			}
			pc, pos = in.out, pos+w
		}
	}
	return false
}

// runeMatches reports whether the rune instruction in accepts r (r >= 0).
func runeMatches(in *inst, r rune) bool {
	switch in.op {
	case instRune1:
		return r == in.r
	case instRune:
		return contains(in.runes, r)
	case instAny:
		return true
	case instAnyNotNL:
		return r != '\n'
	}
	return false
}
