package engine

import (
	"regexp/syntax"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
)

// utf16LE encodes s as UTF-16LE, with the byte-order mark when bom is set.
func utf16LE(s string, bom bool) []byte {
	var b []byte
	if bom {
		b = append(b, 0xff, 0xfe)
	}
	for _, u := range utf16.Encode([]rune(s)) {
		b = append(b, byte(u), byte(u>>8))
	}
	return b
}

func longRegexDoc(n int) []byte {
	return []byte(`{"tags":[{"name":"t","from":{"path":{"regex":"` + strings.Repeat("a", n) + `"}},"to":["header"]}]}`)
}

// TestPolicyDocumentRefusals: every refusal names the field path (or says it
// is about the whole document), including numbers out of range and syntax
// errors, and every bound is enforced.
func TestPolicyDocumentRefusals(t *testing.T) {
	cases := []struct {
		name string
		doc  []byte
		want string // the first error, exactly as reported
	}{
		{"number out of range", []byte(`{"correlation":{"capacity":1e400}}`), "correlation.capacity: must be a whole number, got number 1e400 (out of range)"},
		{"negative out of range in a list", []byte(`{"read":["w3c",-1e999]}`), "read[1]: must be a string, got number -1e999 (out of range)"},
		{"out of range in an unknown field", []byte(`{"inject":{"x":1e400}}`), "inject.x: unknown field (known: enabled, formats, sampling)"},
		{"syntax error names the value's path", []byte(`{"correlation":{"ttl":"30s","capacity":12x}}`), `correlation: not valid JSON at line 1, column 42: invalid character 'x' after object key:value pair`},
		{"syntax error in a list", []byte("{\"tags\":[{\"name\":\"a\"},\n {\"name\":tru}]}"), `tags[1].name: not valid JSON at line 2, column 13: invalid character '}' in literal true`},
		{"key given twice", []byte(`{"trust":{"action":"keep","action":"restart"}}`), "trust.action: not valid JSON at line 1, column 36: key given twice in one object"},
		{"nested too deep", []byte(`{"inject":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`), "inject" + strings.Repeat("[0]", 31) + ": not valid JSON at line 1, column 42: nested more than 32 deep"},
		{"string too long", []byte(`{"trust":{"debugToken":{"secret":"` + strings.Repeat("s", MaxStringBytes+1) + `"}}}`), "trust.debugToken.secret: must be at most 4096 bytes, got 4097"},
		{"list too long", []byte(`{"trust":{"untrustedCIDRs":[` + strings.Repeat(`"10.0.0.0/8",`, MaxListEntries) + `"10.0.0.0/8"]}}`), "trust.untrustedCIDRs: must have at most 1024 entries, got 1025"},
		{"regex too long", longRegexDoc(MaxRegexBytes + 1), "tags[0].from.path.regex: must be at most 1024 bytes, got 1025"},
		{"regex program too large", []byte(`{"tags":[{"name":"t","from":{"path":{"regex":"(abcd){600}"}},"to":["header"]}]}`), "tags[0].from.path.regex: compiles to more than 2000 instructions"},
		{"regex program too large, classes", []byte(`{"tags":[{"name":"t","from":{"path":{"regex":"[a-z]{1000}[a-z]{1000}x"}},"to":["header"]}]}`), "tags[0].from.path.regex: compiles to more than 2000 instructions"},
		{"document too large", longRegexDoc(4 << 20), "the policy document is 4194372 bytes; at most 262144 are accepted"},
		{"UTF-16 with byte-order mark", utf16LE(`{"invalid":"reject"}`, true), "the policy document is UTF-16 or UTF-32 (it starts with that byte-order mark); save it as UTF-8"},
		{"UTF-16 without byte-order mark", utf16LE(`{"invalid":"reject"}`, false), "the policy document has a NUL byte at line 1, column 2 (UTF-16 or UTF-32 text?); save it as UTF-8"},
		{"invalid UTF-8", []byte("{\"invalid\":\n\"rej\xffect\"}"), "the policy document is not UTF-8: invalid byte at line 2, column 5"},
		{"not an object", []byte(`"repair"`), `the policy must be an object, got "repair"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadPolicy(tc.doc, nil)
			ce, ok := err.(*ConfigError)
			if !ok || len(ce.Fields) == 0 {
				t.Fatalf("LoadPolicy: %v (%T), want a ConfigError", err, err)
			}
			if got := ce.Fields[0].Error(); got != tc.want {
				t.Errorf("first error\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestPolicyDocumentAccepted: what every adapter accepts besides a plain
// JSON object.
func TestPolicyDocumentAccepted(t *testing.T) {
	cases := []struct {
		name string
		doc  []byte
		want string // Policy.Invalid after loading
	}{
		{"null is the zero-config default", []byte(" null\n"), "repair"},
		{"white space only", []byte(" \n\t"), "repair"},
		{"UTF-8 byte-order mark", []byte("\xef\xbb\xbf{\"invalid\":\"reject\"}"), "reject"},
		{"limits exactly", []byte(`{"invalid":"reject","trust":{"trustedPrincipals":[` + strings.Repeat(`"p",`, MaxListEntries-1) + `"` + strings.Repeat("p", MaxStringBytes) + `"]}}`), "reject"},
		{"regex at its bound", longRegexDoc(MaxRegexBytes), ""},
		{"regex program near its bound", []byte(`{"tags":[{"name":"t","from":{"path":{"regex":"[a-z]{1000}x{0,400}"}},"to":["header"]}]}`), ""},
		{"Unicode classes (Go RE2 syntax)", []byte(`{"invalid":"pass","tags":[{"name":"t","from":{"path":{"regex":"^/(\\pL+)"}},"to":["header"]}]}`), "pass"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := LoadPolicy(tc.doc, nil)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if cfg.Policy.Invalid != tc.want {
				t.Errorf("invalid = %q, want %q", cfg.Policy.Invalid, tc.want)
			}
		})
	}
}

// TestOversizedPolicyRefusedCheaply: a 4 MiB document with one long regex
// is refused without parsing it, in far less time and memory than its size
// would cost to compile.
func TestOversizedPolicyRefusedCheaply(t *testing.T) {
	for _, doc := range [][]byte{longRegexDoc(4 << 20), longRegexDoc(MaxPolicyBytes - 200)} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		_, err := LoadPolicy(doc, nil)
		took := time.Since(start)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Fatalf("%d-byte document accepted", len(doc))
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4*uint64(MaxPolicyBytes) {
			t.Errorf("%d-byte document: refusing it allocated %d bytes", len(doc), alloc)
		}
		if took > time.Second {
			t.Errorf("%d-byte document: refusing it took %v", len(doc), took)
		}
	}
}

// TestConfigErrorsAreCapped: a document of many bad fields gives an error of
// bounded size.
func TestConfigErrorsAreCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"inject":{`)
	for i := range 5000 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + itoa(i) + `":1`)
	}
	b.WriteString(`}}`)
	_, err := LoadPolicy([]byte(b.String()), nil)
	ce, ok := err.(*ConfigError)
	if !ok {
		t.Fatalf("LoadPolicy: %v", err)
	}
	if len(ce.Fields) != maxConfigErrors || ce.Omitted != 5000-maxConfigErrors {
		t.Errorf("%d errors listed, %d omitted; want %d and %d", len(ce.Fields), ce.Omitted, maxConfigErrors, 5000-maxConfigErrors)
	}
	if !strings.HasSuffix(err.Error(), "; and 4900 more") {
		t.Errorf("error does not say how many were omitted: ...%s", err.Error()[len(err.Error())-40:])
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var d []byte
	for ; i > 0; i /= 10 {
		d = append([]byte{byte('0' + i%10)}, d...)
	}
	return string(d)
}

// TestUnknownKeysPrintedSafely: an unknown key with control characters or
// of great length is quoted and cut in the error.
func TestUnknownKeysPrintedSafely(t *testing.T) {
	_, err := LoadPolicy([]byte(`{"a\nb":1,"`+strings.Repeat("k", 5000)+`":2}`), nil)
	ce := err.(*ConfigError)
	want := []string{`"a\nb"`, `"` + strings.Repeat("k", 64) + `..."`}
	for i, w := range want {
		if ce.Fields[i].Path != w {
			t.Errorf("path %d = %.80q, want %q", i, ce.Fields[i].Path, w)
		}
	}
}

// TestProgSizeBoundsTheProgram: the estimate that refuses a regex before it
// is compiled is never below the size of the program Go compiles.
func TestProgSizeBoundsTheProgram(t *testing.T) {
	for _, expr := range []string{
		`a`, `abc`, `^/api/v1/orgs/([^/]+)`, `[a-z]{1000}`, `(a|bc|d){3,7}`, `x{0,5}y{2,}z*`, `(?i)k+s?`,
		`(abcd){600}`, `((a{10}){10}){10}`, `(?:a{2}b?){4,}`, `\b\d+\z`, `()`, `|`, `(?P<x>.)`, `[\p{Greek}\d]{20}`,
	} {
		parsed, err := syntax.Parse(expr, syntax.Perl)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		prog, err := syntax.Compile(parsed.Simplify())
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if est := progSize(parsed, 1<<30) + 2; est < len(prog.Inst) {
			t.Errorf("%s: estimated %d instructions, compiled %d", expr, est, len(prog.Inst))
		}
	}
}
