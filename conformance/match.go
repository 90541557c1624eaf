package conformance

import (
	"fmt"
	"sort"
	"strings"
)

// Bindings holds the values placeholders have bound so far in one vector.
type Bindings map[string]string

func (b Bindings) clone() Bindings {
	c := make(Bindings, len(b))
	for k, v := range b {
		c[k] = v
	}
	return c
}

// Placeholder kinds: what a binding placeholder accepts.
var placeholderKinds = map[string]struct {
	n       int
	nonZero bool
}{
	"trace":   {32, true},  // a W3C / 128-bit trace id
	"trace16": {16, false}, // a 64-bit trace id
	"span":    {16, true},  // a span id
	// a span id bound to no other name of the vector yet: a span made for
	// this value alone (e.g. a fresh parent-id per outbound call)
	"newspan": {16, true},
}

// segment is a literal (name == "") or a placeholder.
type segment struct {
	lit  string
	name string
	kind string // "" for a reference to a bound name
}

func parsePattern(want string) ([]segment, error) {
	var out []segment
	for {
		i := strings.Index(want, "{{")
		if i < 0 {
			if want != "" {
				out = append(out, segment{lit: want})
			}
			return out, nil
		}
		if i > 0 {
			out = append(out, segment{lit: want[:i]})
		}
		j := strings.Index(want[i:], "}}")
		if j < 0 {
			return nil, fmt.Errorf("unterminated placeholder in %q", want)
		}
		body := want[i+2 : i+j]
		name, kind, _ := strings.Cut(body, ":")
		if name == "" || strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" {
			return nil, fmt.Errorf("bad placeholder name %q", body)
		}
		if kind != "" {
			if _, ok := placeholderKinds[kind]; !ok {
				return nil, fmt.Errorf("unknown placeholder kind %q (trace, trace16, span, newspan)", kind)
			}
		}
		out = append(out, segment{name: name, kind: kind})
		want = want[i+j+2:]
	}
}

// MatchValue matches got against want. want is a literal with optional
// placeholders:
//
//   - {{name:trace}} binds name to 32 lower-hex digits, not all zero;
//   - {{name:trace16}} binds name to 16 lower-hex digits;
//   - {{name:span}} binds name to 16 lower-hex digits, not all zero;
//   - {{name:newspan}} is {{name:span}} whose value no other name of the
//     vector is bound to;
//   - {{name}} stands for the value name is bound to (in this or an earlier
//     value of the vector).
//
// A name bound twice must bind the same value. New bindings are added to b
// only when the whole value matches.
func MatchValue(want, got string, b Bindings) error {
	segs, err := parsePattern(want)
	if err != nil {
		return err
	}
	nb, err := matchSegments(segs, got, b)
	if err != nil {
		return fmt.Errorf("got %q, want %q: %v", got, want, err)
	}
	for k, v := range nb {
		b[k] = v
	}
	return nil
}

// matchSegments returns the new bindings.
func matchSegments(segs []segment, got string, b Bindings) (Bindings, error) {
	nb := Bindings{}
	rest := got
	for _, s := range segs {
		switch {
		case s.name == "":
			if !strings.HasPrefix(rest, s.lit) {
				return nil, fmt.Errorf("mismatch at byte %d", len(got)-len(rest))
			}
			rest = rest[len(s.lit):]
		case s.kind == "":
			v, ok := nb[s.name]
			if !ok {
				v, ok = b[s.name]
			}
			if !ok {
				return nil, fmt.Errorf("{{%s}} is not bound yet", s.name)
			}
			if !strings.HasPrefix(rest, v) {
				return nil, fmt.Errorf("{{%s}} is %q, not found at byte %d", s.name, v, len(got)-len(rest))
			}
			rest = rest[len(v):]
		default:
			k := placeholderKinds[s.kind]
			if len(rest) < k.n {
				return nil, fmt.Errorf("{{%s:%s}}: too short at byte %d", s.name, s.kind, len(got)-len(rest))
			}
			v := rest[:k.n]
			if strings.Trim(v, "0123456789abcdef") != "" {
				return nil, fmt.Errorf("{{%s:%s}}: %q is not lower-case hex", s.name, s.kind, v)
			}
			if k.nonZero && strings.Trim(v, "0") == "" {
				return nil, fmt.Errorf("{{%s:%s}}: all zero", s.name, s.kind)
			}
			prev, ok := nb[s.name]
			if !ok {
				prev, ok = b[s.name]
			}
			if ok && prev != v {
				return nil, fmt.Errorf("{{%s}} already bound to %q, got %q", s.name, prev, v)
			}
			if s.kind == "newspan" && !ok {
				for _, bs := range []Bindings{b, nb} {
					for other, ov := range bs {
						if other != s.name && ov == v {
							return nil, fmt.Errorf("{{%s:newspan}}: %q is already bound to {{%s}}", s.name, v, other)
						}
					}
				}
			}
			nb[s.name] = v
			rest = rest[k.n:]
		}
	}
	if rest != "" {
		return nil, fmt.Errorf("unexpected trailing %q", rest)
	}
	return nb, nil
}

// refs returns the names a pattern binds and the names it only references.
func refs(want string) (binds, uses []string) {
	segs, err := parsePattern(want)
	if err != nil {
		return nil, nil
	}
	for _, s := range segs {
		if s.name == "" {
			continue
		}
		if s.kind != "" {
			binds = append(binds, s.name)
		} else {
			uses = append(uses, s.name)
		}
	}
	return binds, uses
}

// MatchHeaders checks that got is exactly the header list want, ignoring
// order and the case of names (repeated names must repeat as often). Values
// in want may hold placeholders (MatchValue); entries are matched so that
// a placeholder is bound before it is referenced, whatever the list order.
// On success the new bindings are added to b; on failure the error lists
// what is missing and what is unexpected.
func MatchHeaders(want, got []Header, b Bindings) error {
	order := matchOrder(want, b)
	used := make([]bool, len(got))
	trial := b.clone()
	if len(want) == len(got) && matchFrom(want, order, 0, got, used, trial) {
		for k, v := range trial {
			b[k] = v
		}
		return nil
	}
	return headerDiff(want, got, order, b)
}

// matchOrder puts entries that bind placeholders before those that use them.
func matchOrder(want []Header, b Bindings) []int {
	bound := map[string]bool{}
	for k := range b {
		bound[k] = true
	}
	order := make([]int, 0, len(want))
	done := make([]bool, len(want))
	for len(order) < len(want) {
		progress := false
		for i, w := range want {
			if done[i] {
				continue
			}
			binds, uses := refs(w[1])
			ready := true
			for _, u := range uses {
				if !bound[u] {
					ready = false
				}
			}
			if !ready {
				continue
			}
			for _, n := range binds {
				bound[n] = true
			}
			order = append(order, i)
			done[i] = true
			progress = true
		}
		if !progress { // unresolvable references: keep list order, MatchValue reports them.
			for i := range want {
				if !done[i] {
					order = append(order, i)
					done[i] = true
				}
			}
		}
	}
	return order
}

func matchFrom(want []Header, order []int, k int, got []Header, used []bool, b Bindings) bool {
	if k == len(order) {
		return true
	}
	w := want[order[k]]
	for i, g := range got {
		if used[i] || !strings.EqualFold(w[0], g[0]) {
			continue
		}
		segs, err := parsePattern(w[1])
		if err != nil {
			return false
		}
		nb, err := matchSegments(segs, g[1], b)
		if err != nil {
			continue
		}
		for n, v := range nb {
			b[n] = v
		}
		used[i] = true
		if matchFrom(want, order, k+1, got, used, b) {
			return true
		}
		used[i] = false
		for n := range nb {
			delete(b, n)
		}
	}
	return false
}

// headerDiff explains a failed match: a greedy pairing of equal names, then
// the leftovers.
func headerDiff(want, got []Header, order []int, b Bindings) error {
	trial := b.clone()
	used := make([]bool, len(got))
	var missing, mismatched []string
	for _, wi := range order {
		w := want[wi]
		found := false
		for i, g := range got {
			if used[i] || !strings.EqualFold(w[0], g[0]) {
				continue
			}
			if MatchValue(w[1], g[1], trial) == nil {
				used[i], found = true, true
				break
			}
		}
		if !found {
			missing = append(missing, w[0]+": "+w[1])
		}
	}
	var unexpected []string
	for i, g := range got {
		if !used[i] {
			unexpected = append(unexpected, g[0]+": "+g[1])
		}
	}
	// Name the value mismatches of headers present on both sides.
	for _, m := range missing {
		name, wv, _ := strings.Cut(m, ": ")
		for _, u := range unexpected {
			if n, gv, _ := strings.Cut(u, ": "); strings.EqualFold(n, name) {
				mismatched = append(mismatched, fmt.Sprintf("%s: got %q, want %q", name, gv, wv))
			}
		}
	}
	var sb strings.Builder
	sb.WriteString("header lists differ")
	writeList := func(title string, l []string) {
		if len(l) == 0 {
			return
		}
		sb.WriteString("\n    " + title + ":")
		for _, s := range l {
			sb.WriteString("\n      " + s)
		}
	}
	writeList("missing", missing)
	writeList("unexpected", unexpected)
	writeList("value mismatches", mismatched)
	writeList("want (complete)", formatHeaders(want))
	writeList("got (complete)", formatHeaders(got))
	return fmt.Errorf("%s", sb.String())
}

func formatHeaders(l []Header) []string {
	out := make([]string, len(l))
	for i, h := range l {
		out[i] = fmt.Sprintf("%s: %q", h[0], h[1])
	}
	sort.Strings(out)
	return out
}
