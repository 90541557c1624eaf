package pathregex

import (
	"math/rand/v2"
	"testing"
)

// TestNormalizeNegate checks normalized sets against plain membership of
// the pairs they came from, on random sets of small runes.
func TestNormalizeNegate(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for iter := 0; iter < 2000; iter++ {
		var r []rune
		for n := rng.IntN(12); n > 0; n-- {
			lo := rune(rng.IntN(200))
			r = append(r, lo, lo+rune(rng.IntN(20)))
		}
		in := func(c rune) bool {
			for i := 0; i < len(r); i += 2 {
				if r[i] <= c && c <= r[i+1] {
					return true
				}
			}
			return false
		}
		want := make([]bool, 260)
		for c := range want {
			want[c] = in(rune(c))
		}
		set := normalize(append([]rune(nil), r...))
		for i := 2; i < len(set); i += 2 {
			if set[i] <= set[i-1]+1 || set[i] > set[i+1] {
				t.Fatalf("normalize(%v) = %v: not sorted, disjoint and non-adjacent", r, set)
			}
		}
		neg := negate(set)
		for c := range want {
			if contains(set, rune(c)) != want[c] || contains(neg, rune(c)) == want[c] {
				t.Fatalf("pairs %v: normalized %v, negated %v disagree at %d", r, set, neg, c)
			}
		}
		if !contains(neg, maxRune) || len(neg) > 0 && neg[len(neg)-1] != maxRune {
			t.Fatalf("negate(%v) = %v does not reach U+10FFFF", set, neg)
		}
	}
}
