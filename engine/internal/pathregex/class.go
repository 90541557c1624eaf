package pathregex

// A rune set is a slice of inclusive [lo, hi] pairs. Sets are built
// unordered and normalized once (sorted, overlapping and adjacent pairs
// merged) before use.

const maxRune = 0x10FFFF // unicode.MaxRune, without importing the unicode tables

// Named ASCII classes. Perl classes per RE2 syntax (\d \s \w) and POSIX
// bracket classes per RE2 syntax; Go's regexp/syntax perl_groups.go has the
// same ranges. Note \s has no \v while [[:space:]] has it.
var (
	digitSet = []rune{'0', '9'}
	spaceSet = []rune{'\t', '\n', '\f', '\r', ' ', ' '}
	wordSet  = []rune{'0', '9', 'A', 'Z', '_', '_', 'a', 'z'}
)

// posixSet returns the set of a POSIX class name such as "alpha" (a switch,
// not a map: a map literal costs its initializer in the wasm module).
func posixSet(name string) []rune {
	switch name {
	case "alnum":
		return []rune{'0', '9', 'A', 'Z', 'a', 'z'}
	case "alpha":
		return []rune{'A', 'Z', 'a', 'z'}
	case "ascii":
		return []rune{0, 0x7f}
	case "blank":
		return []rune{'\t', '\t', ' ', ' '}
	case "cntrl":
		return []rune{0, 0x1f, 0x7f, 0x7f}
	case "digit":
		return digitSet
	case "graph":
		return []rune{'!', '~'}
	case "lower":
		return []rune{'a', 'z'}
	case "print":
		return []rune{' ', '~'}
	case "punct":
		return []rune{'!', '/', ':', '@', '[', '`', '{', '~'}
	case "space":
		return []rune{'\t', '\r', ' ', ' '}
	case "upper":
		return []rune{'A', 'Z'}
	case "word":
		return wordSet
	case "xdigit":
		return []rune{'0', '9', 'A', 'F', 'a', 'f'}
	}
	return nil
}

// perlSet returns the set of a Perl class escape letter (d s w, upper case
// negated) and whether c is one.
func perlSet(c byte) (set []rune, negated, ok bool) {
	switch c {
	case 'd', 'D':
		set = digitSet
	case 's', 'S':
		set = spaceSet
	case 'w', 'W':
		set = wordSet
	default:
		return nil, false, false
	}
	return set, c < 'a', true
}

// normalize sorts and merges the pairs of r in place.
func normalize(r []rune) []rune {
	if len(r) <= 2 {
		return r
	}
	sortPairs(r)
	out := r[:2]
	for i := 2; i < len(r); i += 2 {
		lo, hi := r[i], r[i+1]
		last := len(out) - 1
		if lo <= out[last]+1 {
			out[last] = max(out[last], hi)
			continue
		}
		out = append(out, lo, hi)
	}
	return out
}

// sortPairs orders the pairs by lo: a Shell sort, a few lines instead of
// package sort's ~12 KB of wasm; sets are short.
func sortPairs(r []rune) {
	n := len(r) / 2
	for gap := n / 2; gap > 0; gap /= 2 {
		for i := gap; i < n; i++ {
			lo, hi := r[2*i], r[2*i+1]
			j := i
			for ; j >= gap && r[2*(j-gap)] > lo; j -= gap {
				r[2*j], r[2*j+1] = r[2*(j-gap)], r[2*(j-gap)+1]
			}
			r[2*j], r[2*j+1] = lo, hi
		}
	}
}

// negate returns the complement of the normalized set r over [0, maxRune],
// surrogates included, as Go's negateClass does.
func negate(r []rune) []rune {
	out := make([]rune, 0, len(r)+2)
	next := rune(0)
	for i := 0; i < len(r); i += 2 {
		if r[i] > next {
			out = append(out, next, r[i]-1)
		}
		next = r[i+1] + 1
	}
	if next <= maxRune {
		out = append(out, next, maxRune)
	}
	return out
}

// appendFolded appends [lo, hi] and every rune case-equivalent to one in it.
// Only ASCII is supported (the caller refuses hi > 0x7f): Go folds with
// unicode.SimpleFold, and for ASCII letters that orbit is both cases plus
// U+212A KELVIN SIGN for k and U+017F LATIN SMALL LETTER LONG S for s (Go's
// regexp/syntax asciiFoldTable lists exactly those two).
func appendFolded(r []rune, lo, hi rune) []rune {
	r = append(r, lo, hi)
	for c := lo; c <= hi; c++ {
		var other rune
		switch {
		case 'a' <= c && c <= 'z':
			other = c - 'a' + 'A'
		case 'A' <= c && c <= 'Z':
			other = c - 'A' + 'a'
		default:
			continue
		}
		r = append(r, other, other)
		switch c {
		case 'k', 'K':
			r = append(r, 0x212A, 0x212A)
		case 's', 'S':
			r = append(r, 0x17F, 0x17F)
		}
	}
	return r
}

// appendSet appends a named class (normalized), folded when fold is set and
// complemented when negated; the fold is taken before the complement, as Go's
// parser does, so (?i)\W excludes U+212A and U+017F.
func appendSet(r, set []rune, negated, fold bool) []rune {
	if fold {
		var f []rune
		for i := 0; i < len(set); i += 2 {
			f = appendFolded(f, set[i], set[i+1])
		}
		set = normalize(f)
	}
	if negated {
		set = negate(set)
	}
	return append(r, set...)
}

// contains reports whether the normalized set r holds c.
func contains(r []rune, c rune) bool {
	if len(r) <= 16 {
		for i := 0; i < len(r); i += 2 {
			if c < r[i] {
				return false
			}
			if c <= r[i+1] {
				return true
			}
		}
		return false
	}
	// Binary search over the pairs.
	lo, hi := 0, len(r)/2
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		switch {
		case c < r[2*m]:
			hi = m
		case c > r[2*m+1]:
			lo = m + 1
		default:
			return true
		}
	}
	return false
}
