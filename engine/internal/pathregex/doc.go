// Package pathregex matches the regular expressions of path tags
// (tags[i].from.path) in time linear in the input, without Go's regexp
// package, whose parser, three matchers and Unicode tables cost about half
// a megabyte of the proxy-wasm module.
//
// It accepts a subset of RE2 syntax and, for every expression it accepts,
// finds the same leftmost-first match and capture groups as Go's
// regexp.Compile(expr).FindStringSubmatchIndex; the tests check this
// against regexp on generated expressions and inputs. Accepted:
//
//   - literals; escapes \a \f \t \n \r \v, octal \0 \012, \x41, \x{263a},
//     a backslash before any ASCII punctuation (\. \/ \\ \-), \Q...\E
//   - . (any character but \n; with (?s) any character)
//   - classes [abc] [^a-z] [-a] []a] with escapes, \d \w \s \D \W \S inside
//     or outside classes, and ASCII classes [[:alpha:]] [[:^digit:]]
//   - anchors ^ $ \A \z, word boundaries \b \B (ASCII word characters)
//   - groups ( ), (?: ), (?P<name> ), (?<name> ); alternation |
//   - repetition * + ? {n} {n,} {n,m} (counts up to 1000) and the lazy forms
//     *? +? ?? {n,m}?
//   - flags (?i) (ASCII letters only), (?m), (?s), (?U) with the (?flags)
//     and (?flags:re) forms and - to clear
//
// Refused with an *Error naming the construct: Unicode classes \p \P,
// (?i) applied to a non-ASCII character, a repetition operator right after a
// flag group or an empty \Q\E, more than 100 groups, nesting deeper than
// 100 groups, and programs above 2000 instructions; plus everything Go's
// regexp refuses (\C, backreferences, a** ...).
//
// Text is read as UTF-8; an invalid byte is one U+FFFD, as in Go.
package pathregex
