package engine

import "testing"

func TestSanitizeTag(t *testing.T) {
	cases := []struct {
		in, want string
		max      int
		removed  bool
	}{
		{"plain", "plain", 256, false},
		{"café", "café", 256, false},
		{"a\tb\x01c\x7f", "abc", 256, true},
		{"a\u0085b", "ab", 256, true},                         // C1 (NEL)
		{"user\u202etxt.exe", "usertxt.exe", 256, true},       // RIGHT-TO-LEFT OVERRIDE
		{"\u2066a\u2067b\u2068c\u2069", "abc", 256, true},     // isolates
		{"\u202aa\u202bb\u202cc\u202dd", "abcd", 256, true},   // embeddings, overrides, pop
		{"x\u200ey\u200fz\u061c", "xyz", 256, true},           // LRM, RLM, ALM
		{"one\u2028two\u2029three", "onetwothree", 256, true}, // line and paragraph separators
		{"bad\xffutf8", "badutf8", 256, true},                 // invalid UTF-8
		{"\u200b\u00a0ok", "\u200b\u00a0ok", 256, false},      // zero-width space and NBSP are kept
		{"abcdef", "abc", 3, false},                           // the cap is not a removal
		{"éé", "é", 3, false},                                 // cut at a rune boundary
		{"\u202e" + "abcdef", "abc", 3, true},
	}
	for _, tc := range cases {
		got, removed := sanitizeTag(tc.in, tc.max)
		if got != tc.want || removed != tc.removed {
			t.Errorf("sanitizeTag(%q, %d) = %q, %v; want %q, %v", tc.in, tc.max, got, removed, tc.want, tc.removed)
		}
	}
}
