package policyfile

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/tracebridge/tracebridge/engine"
)

func utf16LE(s string) []byte {
	b := []byte{0xff, 0xfe}
	for _, u := range utf16.Encode([]rune(s)) {
		b = append(b, byte(u), byte(u>>8))
	}
	return b
}

// aliasBomb is a YAML document of a few hundred bytes whose aliases stand
// for 10^9 values.
var aliasBomb = func() string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 8; i++ {
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	return b.String()
}()

// documents are policy documents and what loading them gives: the policy's
// invalid action when accepted, else the first error exactly.
var documents = []struct {
	name    string
	doc     []byte
	invalid string
	err     string
}{
	{"JSON", []byte(`{"invalid":"reject"}`), "reject", ""},
	{"YAML", []byte("# a policy\ninvalid: reject\ncorrelation:\n  ttl: 1m\n"), "reject", ""},
	{"YAML, comments only", []byte("# nothing yet\n"), "repair", ""},
	{"empty", nil, "repair", ""},
	{"null", []byte("null\n"), "repair", ""},
	{"YAML null", []byte("~\n"), "repair", ""},
	{"UTF-8 byte-order mark, JSON", []byte("\xef\xbb\xbf{\"invalid\":\"pass\"}"), "pass", ""},
	{"UTF-8 byte-order mark, YAML", []byte("\xef\xbb\xbfinvalid: pass\n"), "pass", ""},
	{"YAML anchors within bounds", []byte("read: &f [w3c, b3multi]\nemit: *f\ninvalid: restart\n"), "restart", ""},
	{"YAML timestamp stays text", []byte("correlation:\n  ttl: 2001-12-14\n"), "", `correlation.ttl: must be a positive duration like "30s", got "2001-12-14"`},
	{"UTF-16 YAML", utf16LE("invalid: reject\n"), "", "the policy document is UTF-16 or UTF-32 (it starts with that byte-order mark); save it as UTF-8"},
	{"JSON number out of range", []byte(`{"correlation":{"capacity":1e400}}`), "", "correlation.capacity: must be a whole number, got number 1e400 (out of range)"},
	{"YAML .inf", []byte("correlation:\n  capacity: .inf\n"), "", "correlation.capacity: must be a whole number, got number .inf (out of range)"},
	{"YAML -.Inf", []byte("baggage:\n  maxBytes: -.Inf\n"), "", "baggage.maxBytes: must be a whole number, got number -.Inf (out of range)"},
	{"YAML .nan in a list", []byte("read: [w3c, .nan]\n"), "", "read[1]: must be a string, got number .nan (out of range)"},
	{"YAML key given twice", []byte("invalid: reject\ninvalid: pass\n"), "", "invalid: given twice (lines 1 and 2)"},
	{"JSON key given twice", []byte(`{"invalid":"reject","invalid":"pass"}`), "", "invalid: not valid JSON at line 1, column 31: key given twice in one object"},
	{"YAML merge key", []byte("base: &b {ttl: 1m}\ncorrelation:\n  <<: *b\n"), "", "correlation.<<: YAML merge keys (<<) are not supported; write the fields out"},
	{"YAML alias bomb", []byte(aliasBomb), "", "a4[7][0][7][0][8]: the document's aliases expand to more than 100000 values"},
	{"YAML two documents", []byte("invalid: reject\n---\ninvalid: pass\n"), "", "the policy document holds more than one YAML document"},
	{"YAML custom tag", []byte("invalid: !fix reject\n"), "", "invalid: line 1: YAML tag !fix is not supported"},
	{"YAML syntax", []byte("invalid: [reject\n"), "", "the policy document is not valid YAML: yaml: line 1: did not find expected ',' or ']'"},
	{"YAML list at the top", []byte("- invalid\n"), "", `the policy must be an object, got a list`},
	{"YAML unknown field", []byte("inject:\n  sampled: true\n"), "", "inject.sampled: unknown field (known: enabled, formats, sampling)"},
	{"document too large", []byte("invalid: reject\n" + strings.Repeat("# padding\n", engine.MaxPolicyBytes/10)), "", "the policy document is 262156 bytes; at most 262144 are accepted"},
}

func TestLoad(t *testing.T) {
	for _, tc := range documents {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Load(tc.doc, nil)
			p, perr := Parse(tc.doc)
			checkResult(t, "Load", tc.invalid, tc.err, func() string { return cfg.Policy.Invalid }, err)
			if perr == nil {
				// Parse does not compile; only shape errors surface.
				if tc.err == "" && p.Invalid != tc.invalid {
					t.Errorf("Parse: invalid = %q, want %q", p.Invalid, tc.invalid)
				}
			} else if msg := firstError(perr); msg != tc.err {
				t.Errorf("Parse: first error\n got %s\nwant %s", msg, tc.err)
			}
		})
	}
}

func checkResult(t *testing.T, what, invalid, wantErr string, got func() string, err error) {
	t.Helper()
	if wantErr == "" {
		if err != nil {
			t.Fatalf("%s: refused: %v", what, err)
		}
		if g := got(); g != invalid {
			t.Errorf("%s: invalid = %q, want %q", what, g, invalid)
		}
		return
	}
	if err == nil {
		t.Fatalf("%s: accepted, want %s", what, wantErr)
	}
	if msg := firstError(err); msg != wantErr {
		t.Errorf("%s: first error\n got %s\nwant %s", what, msg, wantErr)
	}
}

func firstError(err error) string {
	if ce, ok := err.(*engine.ConfigError); ok && len(ce.Fields) > 0 {
		return ce.Fields[0].Error()
	}
	return "not a ConfigError: " + err.Error()
}

func TestReadFileStopsAtTheBound(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(path)
	if want := "the policy document is more than 262144 bytes"; err == nil || firstError(err) != want {
		t.Fatalf("ReadFile: %v, want %s", err, want)
	}
}

// FuzzParse: any document is a policy or a ConfigError whose every entry
// names a field path or the whole document, never a panic; and a YAML
// document means what the same tree written as JSON means to the engine's
// JSON reader (the one the wasm filter uses).
func FuzzParse(f *testing.F) {
	for _, tc := range documents {
		if len(tc.doc) < 4096 {
			f.Add(tc.doc)
		}
	}
	f.Add([]byte("tags:\n- name: t\n  from: {path: {regex: '^/(\\d+)', group: 1}}\n  to: [header]\n"))
	f.Add([]byte("trust: {debugToken: {secret: 0123456789abcdef, maxTTL: 10m}, untrustedCIDRs: [10.0.0.0/8]}\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		p, err := Parse(doc)
		if err != nil {
			ce, ok := err.(*engine.ConfigError)
			if !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			for _, fe := range ce.Fields {
				if fe.Path == "" && !strings.HasPrefix(fe.Msg, "the policy ") {
					t.Fatalf("error names no field path: %v", fe)
				}
			}
		}
		text, terr := engine.PolicyText(doc)
		if terr != nil || text == nil || text[0] == '{' {
			return
		}
		tree, yerr := decodeYAML(text)
		if yerr != nil || hasBadNumber(tree) {
			return
		}
		js, jerr := json.Marshal(tree)
		if jerr != nil {
			t.Fatalf("tree %#v does not marshal: %v", tree, jerr)
		}
		jp, jperr := engine.ParsePolicy(js)
		if (err == nil) != (jperr == nil) {
			t.Fatalf("YAML %q: %v; as JSON %s: %v", doc, err, js, jperr)
		}
		if err == nil && !reflect.DeepEqual(p, jp) {
			t.Fatalf("YAML %q and JSON %s give different policies:\n%#v\n%#v", doc, js, p, jp)
		}
	})
}

func hasBadNumber(v any) bool {
	switch x := v.(type) {
	case engine.BadNumber:
		return true
	case []any:
		for _, e := range x {
			if hasBadNumber(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range x {
			if hasBadNumber(e) {
				return true
			}
		}
	}
	return false
}
