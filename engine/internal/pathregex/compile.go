package pathregex

// Compilation to a Thompson-style program. Which match wins under
// leftmost-first depends on the program's shape (the order of split
// branches, and which paths are pruned when two reach the same instruction
// at the same position), so the shapes below follow Go's regexp/syntax
// (Simplify and Compile) rule for rule; the comments name each rule.

type instOp uint8

const (
	instMatch    instOp = iota
	instRune            // one rune in runes
	instRune1           // exactly the rune r
	instAny             // any rune
	instAnyNotNL        // any rune but \n
	instAssert          // empty-width condition
	instSave            // record the position in capture slot arg
	instSplit           // try out, then arg
	instNop
)

type inst struct {
	op     instOp
	out    uint32
	arg    uint32 // split: the second branch; save: the slot
	r      rune   // instRune1
	assert assert // instAssert
	runes  []rune // instRune
}

// simplify rewrites repeats into stars, pluses, quests and copies, as Go's
// Regexp.Simplify: x{0} is empty (its groups never match), x{n,} is n-1
// copies then x+, x{n,m} is n copies then m-n nested quests
// x{2,5} = xx(x(x(x)?)?)?. Copies share the subtree.
func simplify(n *node) *node {
	switch n.op {
	case opCapture, opConcat, opAlternate:
		c := *n
		c.subs = make([]*node, len(n.subs))
		for i, sub := range n.subs {
			c.subs[i] = simplify(sub)
		}
		return &c
	case opStar, opPlus, opQuest:
		return simplify1(n.op, n.lazy, simplify(n.subs[0]))
	case opRepeat:
		if n.max == 0 {
			return &node{op: opEmpty}
		}
		sub := simplify(n.subs[0])
		if n.max < 0 {
			switch n.min {
			case 0:
				return simplify1(opStar, n.lazy, sub)
			case 1:
				return simplify1(opPlus, n.lazy, sub)
			}
			c := &node{op: opConcat}
			for i := 0; i < n.min-1; i++ {
				c.subs = append(c.subs, sub)
			}
			c.subs = append(c.subs, simplify1(opPlus, n.lazy, sub))
			return c
		}
		if n.min == 1 && n.max == 1 {
			return sub
		}
		c := &node{op: opConcat}
		for i := 0; i < n.min; i++ {
			c.subs = append(c.subs, sub)
		}
		if n.max > n.min {
			suffix := simplify1(opQuest, n.lazy, sub)
			for i := n.min + 1; i < n.max; i++ {
				suffix = simplify1(opQuest, n.lazy, &node{op: opConcat, subs: []*node{sub, suffix}})
			}
			if n.min == 0 {
				return suffix
			}
			c.subs = append(c.subs, suffix)
		}
		return c
	}
	return n
}

// simplify1 builds op(sub), except that a repeated empty string is the empty
// string and (?:x*)* is x* (same op, same greediness): Go's simplify1.
func simplify1(op nodeOp, lazy bool, sub *node) *node {
	if sub.op == opEmpty || sub.op == op && sub.lazy == lazy {
		return sub
	}
	return &node{op: op, lazy: lazy, subs: []*node{sub}}
}

// A frag is a compiled piece: its entry, the dangling exits still to be
// patched (encoded pc<<1, low bit set for a split's arg), and whether it can
// match the empty string (structurally, as Go's compiler judges it).
type frag struct {
	start    uint32
	out      []uint32
	nullable bool
}

type compiler struct {
	prog []inst
}

// errTooBig is panicked when the program outgrows maxInsts; compile
// recovers it.
var errTooBig = &Error{"unsupported: expression too large (more than 2000 instructions)", ""}

func compile(n *node) (prog []inst, start uint32, err error) {
	defer func() {
		if r := recover(); r != nil {
			if r != errTooBig {
				panic(r)
			}
			err = errTooBig
		}
	}()
	var c compiler
	f := c.compile(n)
	c.patch(f.out, c.emit(inst{op: instMatch}))
	return c.prog, f.start, nil
}

func (c *compiler) emit(i inst) uint32 {
	if len(c.prog) >= maxInsts {
		panic(errTooBig)
	}
	c.prog = append(c.prog, i)
	return uint32(len(c.prog) - 1)
}

func (c *compiler) patch(holes []uint32, to uint32) {
	for _, h := range holes {
		if h&1 == 0 {
			c.prog[h>>1].out = to
		} else {
			c.prog[h>>1].arg = to
		}
	}
}

// single emits an instruction with one exit.
func (c *compiler) single(i inst, nullable bool) frag {
	pc := c.emit(i)
	return frag{start: pc, out: []uint32{pc << 1}, nullable: nullable}
}

func (c *compiler) compile(n *node) frag {
	switch n.op {
	case opEmpty:
		return c.single(inst{op: instNop}, true)
	case opRunes:
		return c.single(runeInst(n.runes), false)
	case opAssert:
		return c.single(inst{op: instAssert, assert: n.assert}, true)
	case opCapture:
		open := c.single(inst{op: instSave, arg: uint32(2 * n.cap)}, true)
		body := c.compile(n.subs[0])
		closing := c.single(inst{op: instSave, arg: uint32(2*n.cap + 1)}, true)
		return c.cat(c.cat(open, body), closing)
	case opStar:
		return c.star(c.compile(n.subs[0]), n.lazy)
	case opPlus:
		return c.plus(c.compile(n.subs[0]), n.lazy)
	case opQuest:
		return c.quest(c.compile(n.subs[0]), n.lazy)
	case opConcat:
		f := c.compile(n.subs[0])
		for _, sub := range n.subs[1:] {
			f = c.cat(f, c.compile(sub))
		}
		return f
	case opAlternate:
		// Left-nested: ((a|b)|c), as Go compiles an alternation.
		f := c.compile(n.subs[0])
		for _, sub := range n.subs[1:] {
			f = c.alt(f, c.compile(sub))
		}
		return f
	}
	panic("pathregex: compile of an unsimplified node")
}

func runeInst(r []rune) inst {
	switch {
	case len(r) == 2 && r[0] == r[1]:
		return inst{op: instRune1, r: r[0]}
	case len(r) == 2 && r[0] == 0 && r[1] == maxRune:
		return inst{op: instAny}
	case len(r) == 4 && r[0] == 0 && r[1] == '\n'-1 && r[2] == '\n'+1 && r[3] == maxRune:
		return inst{op: instAnyNotNL}
	}
	return inst{op: instRune, runes: r}
}

func (c *compiler) cat(f1, f2 frag) frag {
	c.patch(f1.out, f2.start)
	return frag{start: f1.start, out: f2.out, nullable: f1.nullable && f2.nullable}
}

func (c *compiler) alt(f1, f2 frag) frag {
	pc := c.emit(inst{op: instSplit, out: f1.start, arg: f2.start})
	return frag{start: pc, out: append(f1.out[:len(f1.out):len(f1.out)], f2.out...), nullable: f1.nullable || f2.nullable}
}

// quest: a split preferring f1 (greedy) or skipping it (lazy).
func (c *compiler) quest(f1 frag, lazy bool) frag {
	pc := c.emit(inst{op: instSplit})
	f := frag{start: pc, nullable: true}
	if lazy {
		c.prog[pc].arg = f1.start
		f.out = []uint32{pc << 1}
	} else {
		c.prog[pc].out = f1.start
		f.out = []uint32{pc<<1 | 1}
	}
	f.out = append(f.out, f1.out...)
	return f
}

// loop: f1 then a split back to f1 or out; entered at the split for x*
// and at f1 for x+.
func (c *compiler) loop(f1 frag, lazy bool) frag {
	f := c.quest(frag{start: f1.start}, lazy)
	c.patch(f1.out, f.start)
	return f
}

// star of a nullable x is compiled as (x+)? so that an empty iteration
// cannot take priority over a real one (golang.org/issue/46123).
func (c *compiler) star(f1 frag, lazy bool) frag {
	if f1.nullable {
		return c.quest(c.plus(f1, lazy), lazy)
	}
	return c.loop(f1, lazy)
}

func (c *compiler) plus(f1 frag, lazy bool) frag {
	return frag{start: f1.start, out: c.loop(f1, lazy).out, nullable: f1.nullable}
}
