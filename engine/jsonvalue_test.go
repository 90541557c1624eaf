package engine

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

var jsonSamples = []string{
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `1.5e3`, `-12.25E-2`, `1e400`, `01`, `1.`, `.5`, `-`, `1e`, `+1`,
	`"a"`, `"\u00e9\ud83d\ude00"`, `"\ud83d"`, `"\ud83dx"`, `"\ude00\ud83d\ude00"`, `"\ud83d\u0041"`, `"\x"`, `"\u12"`,
	"\"\xff\xfeok\"", "\"tab\there\"", `"\"\\\/\b\f\n\r\t"`,
	`{"a":1,"a":2}`, `{"a":[1,{"b":null}],"c":"d"}`, ` { "a" : [ 1 , 2 ] } `, `{"a":1,}`, `[1,]`, `[1 2]`, `{"a" 1}`,
	`{a:1}`, `{"a":1}x`, `{"a":1} `, `tru`, `nul`, `[`, `{"a":`, `"unterminated`, "\"ctl\x01\"",
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000), strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000), strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001),
}

// decodeJSON must agree with encoding/json on what it accepts and on the tree.
func checkDecodeJSON(t *testing.T, doc string) {
	t.Helper()
	short := doc
	if len(short) > 80 {
		short = short[:80] + "..."
	}
	got, err := decodeJSON([]byte(doc))
	var want any
	werr := json.Unmarshal([]byte(doc), &want)
	if (err == nil) != (werr == nil) {
		t.Fatalf("%q: decodeJSON error %v, encoding/json error %v", short, err, werr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: decodeJSON %#v, encoding/json %#v", short, got, want)
	}
}

func TestDecodeJSONMatchesEncodingJSON(t *testing.T) {
	for _, doc := range jsonSamples {
		checkDecodeJSON(t, doc)
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, doc := range jsonSamples {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, doc string) { checkDecodeJSON(t, doc) })
}

// checkDecodePolicyJSON: the policy decoder accepts a subset of what
// decodeJSON accepts, with the same tree, except that it keeps numbers out
// of range (BadNumber) and refuses keys given twice and deep nesting.
func checkDecodePolicyJSON(t *testing.T, doc string) {
	t.Helper()
	got, err := decodePolicyJSON([]byte(doc))
	if err != nil {
		if _, ok := err.(*jsonSyntaxError); !ok {
			t.Fatalf("%q: error of type %T", doc, err)
		}
		return
	}
	if hasBadNumber(got) {
		return
	}
	want, werr := decodeJSON([]byte(doc))
	if werr != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: policy decoder %#v, decodeJSON %#v (%v)", doc, got, want, werr)
	}
}

func hasBadNumber(v any) bool {
	switch x := v.(type) {
	case BadNumber:
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

func FuzzDecodePolicyJSON(f *testing.F) {
	for _, doc := range jsonSamples {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, doc string) { checkDecodePolicyJSON(t, doc) })
}
