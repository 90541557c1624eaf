package propagation

import "testing"

// These tests pin the translation rules between formats; TRANSLATION.md
// states them in prose.

func mustB3Single(t *testing.T, s string) SpanContext {
	t.Helper()
	c, hasIDs, p := ParseB3Single(s)
	if p != OK || !hasIDs {
		t.Fatalf("ParseB3Single(%q): %v %v", s, hasIDs, p)
	}
	return c
}

func mustB3Multi(t *testing.T, m B3Multi) SpanContext {
	t.Helper()
	c, hasIDs, p := ParseB3Multi(m)
	if p != OK || !hasIDs {
		t.Fatalf("ParseB3Multi(%+v): %v %v", m, hasIDs, p)
	}
	return c
}

func mustUber(t *testing.T, s string) SpanContext {
	t.Helper()
	c, p := ParseUberTraceID(s)
	if p != OK {
		t.Fatalf("ParseUberTraceID(%q): %v", s, p)
	}
	return c
}

func mustTP(t *testing.T, s string) SpanContext {
	t.Helper()
	c, p := ParseTraceparent(s)
	if p != OK {
		t.Fatalf("ParseTraceparent(%q): %v", s, p)
	}
	return c
}

func TestTranslateTraceIDWidth(t *testing.T) {
	padded := zero16 + tTrace64
	// 64-bit B3 and Jaeger ids are left-padded with zeros to 128 bits in W3C.
	for name, c := range map[string]SpanContext{
		"b3 single": mustB3Single(t, tTrace64+"-"+tSpan+"-1"),
		"b3 multi":  mustB3Multi(t, B3Multi{TraceID: tTrace64, SpanID: tSpan, Sampled: "1"}),
		"jaeger":    mustUber(t, uber(tTrace64, tSpan, "0", "1")),
	} {
		if got, want := string(AppendTraceparent(nil, &c)), tp("00", padded, tSpan, "01"); got != want {
			t.Errorf("%s -> traceparent = %s, want %s", name, got, want)
		}
	}
	// A short Jaeger id is padded to 16 digits in B3 and 32 in W3C.
	c := mustUber(t, uber("abc", "def", "0", "1"))
	if got := string(AppendB3Single(nil, &c)); got != "0000000000000abc-0000000000000def-1" {
		t.Errorf("short jaeger -> b3 = %s", got)
	}
	if got := string(AppendTraceparent(nil, &c)); got != tp("00", zero16+"0000000000000abc", "0000000000000def", "01") {
		t.Errorf("short jaeger -> traceparent = %s", got)
	}
	// 64-bit ids stay 64-bit between B3 and Jaeger.
	c = mustB3Single(t, tTrace64+"-"+tSpan+"-1")
	if got := string(AppendUberTraceID(nil, &c)); got != uber(tTrace64, tSpan, "0", "1") {
		t.Errorf("b3 64 -> jaeger = %s", got)
	}
	// A W3C id keeps 32 digits in B3 and Jaeger, even when its high half is
	// zero: tracebridge never shortens an id it did not receive short.
	c = mustTP(t, tp("00", padded, tSpan, "01"))
	if got := string(AppendB3Single(nil, &c)); got != padded+"-"+tSpan+"-1" {
		t.Errorf("w3c -> b3 = %s", got)
	}
	if got := string(AppendUberTraceID(nil, &c)); got != uber(padded, tSpan, "0", "1") {
		t.Errorf("w3c -> jaeger = %s", got)
	}
	// And the padded and short forms name the same span.
	b := mustB3Single(t, tTrace64+"-"+tSpan)
	if !c.SameSpan(&b) {
		t.Error("padded W3C id and 64-bit B3 id differ")
	}
}

func TestTranslateSampling(t *testing.T) {
	tests := []struct {
		name   string
		from   SpanContext
		w3c    string // flags
		b3     string // single-header sampling field ("" = absent)
		b3s    string // x-b3-sampled
		b3f    string // x-b3-flags
		jaeger string // flags
	}{
		{"b3 accept", mustB3Single(t, tTrace+"-"+tSpan+"-1"), "01", "1", "1", "", "1"},
		{"b3 deny", mustB3Single(t, tTrace+"-"+tSpan+"-0"), "00", "0", "0", "", "0"},
		// Debug: W3C has no debug state, so it is carried as sampled.
		{"b3 debug", mustB3Single(t, tTrace+"-"+tSpan+"-d"), "01", "d", "", "1", "3"},
		{"b3 multi debug", mustB3Multi(t, B3Multi{TraceID: tTrace, SpanID: tSpan, Flags: "1"}), "01", "d", "", "1", "3"},
		{"jaeger debug", mustUber(t, uber(tTrace, tSpan, "0", "3")), "01", "d", "", "1", "3"},
		{"jaeger debug bit alone", mustUber(t, uber(tTrace, tSpan, "0", "2")), "00", "0", "0", "", "0"},
		// Defer: W3C and Jaeger have no defer and write "not sampled".
		{"b3 defer", mustB3Single(t, tTrace+"-"+tSpan), "00", "", "", "", "0"},
		{"b3 multi defer", mustB3Multi(t, B3Multi{TraceID: tTrace, SpanID: tSpan}), "00", "", "", "", "0"},
		{"w3c sampled", mustTP(t, tp("00", tTrace, tSpan, "01")), "01", "1", "1", "", "1"},
		{"w3c not sampled", mustTP(t, tp("00", tTrace, tSpan, "00")), "00", "0", "0", "", "0"},
		// The random flag (0x02) stays on W3C and is lost in B3 and Jaeger,
		// which have no field for it; reserved bits are dropped everywhere.
		{"w3c random sampled", mustTP(t, tp("00", tTrace, tSpan, "03")), "03", "1", "1", "", "1"},
		{"w3c random", mustTP(t, tp("00", tTrace, tSpan, "02")), "02", "0", "0", "", "0"},
		{"w3c reserved flags", mustTP(t, tp("00", tTrace, tSpan, "fd")), "01", "1", "1", "", "1"},
		{"w3c all flags", mustTP(t, tp("00", tTrace, tSpan, "ff")), "03", "1", "1", "", "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.from
			c.ParentSpanID = SpanID{}
			if got := string(AppendTraceparent(nil, &c)); got != tp("00", tTrace, tSpan, tt.w3c) {
				t.Errorf("traceparent = %s, want flags %s", got, tt.w3c)
			}
			wantB3 := tTrace + "-" + tSpan
			if tt.b3 != "" {
				wantB3 += "-" + tt.b3
			}
			if got := string(AppendB3Single(nil, &c)); got != wantB3 {
				t.Errorf("b3 = %s, want %s", got, wantB3)
			}
			if m := formatB3Multi(&c); m.Sampled != tt.b3s || m.Flags != tt.b3f {
				t.Errorf("x-b3-sampled %q x-b3-flags %q, want %q %q", m.Sampled, m.Flags, tt.b3s, tt.b3f)
			}
			if got := string(AppendUberTraceID(nil, &c)); got != uber(tTrace, tSpan, "0", tt.jaeger) {
				t.Errorf("uber-trace-id = %s, want flags %s", got, tt.jaeger)
			}
		})
	}
}

func TestTranslateParentDroppedInW3C(t *testing.T) {
	for name, c := range map[string]SpanContext{
		"b3 single": mustB3Single(t, tTrace+"-"+tSpan+"-1-"+tParent),
		"b3 multi":  mustB3Multi(t, B3Multi{TraceID: tTrace, SpanID: tSpan, ParentSpanID: tParent, Sampled: "1"}),
		"jaeger":    mustUber(t, uber(tTrace, tSpan, tParent, "1")),
	} {
		s := AppendTraceparent(nil, &c)
		if string(s) != tp("00", tTrace, tSpan, "01") {
			t.Errorf("%s -> traceparent %s", name, s)
		}
		back := mustTP(t, string(s))
		if !back.ParentSpanID.IsZero() {
			t.Errorf("%s: parent survived W3C", name)
		}
		// The parent does travel between B3 and Jaeger.
		if got := string(AppendB3Single(nil, &c)); got != tTrace+"-"+tSpan+"-1-"+tParent {
			t.Errorf("%s -> b3 %s", name, got)
		}
		if got := string(AppendUberTraceID(nil, &c)); got != uber(tTrace, tSpan, tParent, "1") {
			t.Errorf("%s -> jaeger %s", name, got)
		}
	}
	// B3 single drops the parent when the decision is deferred.
	c := mustB3Multi(t, B3Multi{TraceID: tTrace, SpanID: tSpan, ParentSpanID: tParent})
	if got := string(AppendB3Single(nil, &c)); got != tTrace+"-"+tSpan {
		t.Errorf("deferred with parent -> b3 %s", got)
	}
}

func TestTranslateTracestateNotCarried(t *testing.T) {
	c := mustTP(t, tp("00", tTrace, tSpan, "01"))
	without := c
	c.TraceState = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
	if ValidateTracestate(c.TraceState) != OK {
		t.Fatal("bad tracestate")
	}
	for name, f := range map[string]func([]byte, *SpanContext) []byte{
		"b3": AppendB3Single, "jaeger": AppendUberTraceID, "traceparent": AppendTraceparent,
	} {
		if got, want := string(f(nil, &c)), string(f(nil, &without)); got != want {
			t.Errorf("%s carries tracestate: %s", name, got)
		}
	}
	if m, w := formatB3Multi(&c), formatB3Multi(&without); m != w {
		t.Errorf("b3 multi carries tracestate: %+v", m)
	}
	// And no parser fills it in.
	for _, x := range []SpanContext{
		mustB3Single(t, string(AppendB3Single(nil, &c))),
		mustUber(t, string(AppendUberTraceID(nil, &c))),
		mustTP(t, string(AppendTraceparent(nil, &c))),
	} {
		if x.TraceState != "" {
			t.Errorf("parser set TraceState %q", x.TraceState)
		}
	}
}
