package conformance

import (
	"strings"
	"testing"
)

func TestMatchValue(t *testing.T) {
	b := Bindings{}
	const tr = "4bf92f3577b34da6a3ce929d0e0e4736"
	const sp = "00f067aa0ba902b7"
	if err := MatchValue("00-{{t:trace}}-{{s:span}}-01", "00-"+tr+"-"+sp+"-01", b); err != nil {
		t.Fatal(err)
	}
	if b["t"] != tr || b["s"] != sp {
		t.Fatalf("bindings %v", b)
	}
	if err := MatchValue("{{t}}", tr, b); err != nil {
		t.Fatal(err)
	}
	bad := []struct{ want, got string }{
		{"{{t}}", sp},                            // wrong bound value
		{"{{u}}", tr},                            // unbound
		{"{{x:trace}}", strings.Repeat("0", 32)}, // all zero
		{"{{x:span}}", strings.Repeat("0", 16)},  // all zero
		{"{{x:trace}}", strings.ToUpper(tr)},     // upper case
		{"{{x:span}}", sp + "0"},                 // trailing
		{"{{t:trace}}", "5" + tr[1:]},            // rebinding differently
		{"a{{x:trace16}}", "a" + sp[:15]},        // too short
		{"literal", "literal2"},                  // plain mismatch
		{"{{x:nope}}", sp},                       // unknown kind
		{"{{x", sp},                              // unterminated
	}
	for _, c := range bad {
		nb := Bindings{"t": tr}
		if err := MatchValue(c.want, c.got, nb); err == nil {
			t.Errorf("MatchValue(%q, %q) matched", c.want, c.got)
		}
		if _, ok := nb["x"]; ok {
			t.Errorf("MatchValue(%q, %q) bound x on failure", c.want, c.got)
		}
	}
	if err := MatchValue("{{z:trace16}}", "0000000000000000", Bindings{}); err != nil {
		t.Errorf("trace16 may be zero: %v", err)
	}
	// newspan: a value no other name holds.
	nb := Bindings{"s": sp}
	if err := MatchValue("{{n:newspan}}", sp, nb); err == nil {
		t.Errorf("newspan matched a value bound to another name")
	}
	if err := MatchValue("{{n:newspan}}-{{m:newspan}}", "1111111111111111-1111111111111111", Bindings{}); err == nil {
		t.Errorf("two newspans matched one value")
	}
	if err := MatchValue("{{n:newspan}}", "1111111111111111", nb); err != nil {
		t.Errorf("newspan: %v", err)
	}
	if err := MatchValue("{{n:newspan}}", "1111111111111111", nb); err != nil {
		t.Errorf("newspan bound again to its own value: %v", err)
	}
}

func TestMatchHeaders(t *testing.T) {
	const tr = "4bf92f3577b34da6a3ce929d0e0e4736"
	const sp = "00f067aa0ba902b7"
	got := []Header{{"x-b3-traceid", tr}, {"traceparent", "00-" + tr + "-" + sp + "-00"}, {"x-b3-spanid", sp}, {"a", "1"}, {"a", "2"}}
	// References before the binding entry, repeated names in another order,
	// name case ignored.
	want := []Header{{"X-B3-TraceId", "{{t}}"}, {"a", "2"}, {"x-b3-spanid", "{{s}}"}, {"traceparent", "00-{{t:trace}}-{{s:span}}-00"}, {"a", "1"}}
	b := Bindings{}
	if err := MatchHeaders(want, got, b); err != nil {
		t.Fatal(err)
	}
	if b["t"] != tr {
		t.Fatalf("bindings %v", b)
	}
	err := MatchHeaders([]Header{{"a", "1"}, {"b", "2"}}, []Header{{"a", "1"}, {"b", "3"}, {"c", "4"}}, Bindings{})
	if err == nil || !strings.Contains(err.Error(), `b: got "3", want "2"`) || !strings.Contains(err.Error(), "c: 4") {
		t.Fatalf("diff: %v", err)
	}
	// Backtracking: the first candidate binds a value a later entry cannot use.
	got2 := []Header{{"h", "1111111111111111"}, {"h", "2222222222222222"}, {"k", "2222222222222222"}}
	want2 := []Header{{"h", "{{x:span}}"}, {"h", "{{y:span}}"}, {"k", "{{x}}"}}
	if err := MatchHeaders(want2, got2, Bindings{}); err != nil {
		t.Fatal(err)
	}
}

func TestEmbeddedVectorsParse(t *testing.T) {
	f, err := Parse(embedded)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) < 220 {
		t.Errorf("%d vectors, want at least 220", len(f.Vectors))
	}
	for _, name := range f.PolicyNames() {
		if f.Policy(name) == nil {
			t.Errorf("policy %q empty", name)
		}
	}
}
