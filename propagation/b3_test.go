package propagation

import (
	"strings"
	"testing"
)

// ctxWant describes an expected parse result in hex.
type ctxWant struct {
	trace, span, parent string // hex as written by String(); "" = zero
	samp                Sampling
	trace64             bool
}

func checkCtx(t *testing.T, c SpanContext, w ctxWant) {
	t.Helper()
	trace := w.trace
	if len(trace) == 16 {
		trace = zero16 + trace
	}
	if trace == "" {
		trace = zero32
	}
	span, parent := w.span, w.parent
	if span == "" {
		span = zero16
	}
	if parent == "" {
		parent = zero16
	}
	if c.TraceID.String() != trace || c.SpanID.String() != span || c.ParentSpanID.String() != parent ||
		c.Sampling != w.samp || c.TraceID64 != w.trace64 {
		t.Errorf("got trace=%s span=%s parent=%s samp=%v trace64=%v\nwant trace=%s span=%s parent=%s samp=%v trace64=%v",
			c.TraceID, c.SpanID, c.ParentSpanID, c.Sampling, c.TraceID64, trace, span, parent, w.samp, w.trace64)
	}
}

func TestParseB3Multi(t *testing.T) {
	tests := []struct {
		name   string
		in     B3Multi
		want   Problem
		hasIDs bool
		ctx    ctxWant
	}{
		{"128-bit sampled", B3Multi{TraceID: tTrace, SpanID: tSpan, Sampled: "1"}, OK, true,
			ctxWant{tTrace, tSpan, "", SamplingAccept, false}},
		{"64-bit sampled", B3Multi{TraceID: tTrace64, SpanID: tSpan, Sampled: "1"}, OK, true,
			ctxWant{tTrace64, tSpan, "", SamplingAccept, true}},
		{"with parent", B3Multi{TraceID: tTrace, SpanID: tSpan, ParentSpanID: tParent, Sampled: "0"}, OK, true,
			ctxWant{tTrace, tSpan, tParent, SamplingDeny, false}},
		{"ids only: defer", B3Multi{TraceID: tTrace, SpanID: tSpan}, OK, true,
			ctxWant{tTrace, tSpan, "", SamplingDefer, false}},
		{"legacy true", B3Multi{TraceID: tTrace, SpanID: tSpan, Sampled: "true"}, OK, true,
			ctxWant{tTrace, tSpan, "", SamplingAccept, false}},
		{"legacy false", B3Multi{TraceID: tTrace, SpanID: tSpan, Sampled: "false"}, OK, true,
			ctxWant{tTrace, tSpan, "", SamplingDeny, false}},
		{"debug", B3Multi{TraceID: tTrace, SpanID: tSpan, Flags: "1"}, OK, true,
			ctxWant{tTrace, tSpan, "", SamplingDebug, false}},
		{"debug wins over sampled 0", B3Multi{TraceID: tTrace, SpanID: tSpan, Sampled: "0", Flags: "1"}, OK, true,
			ctxWant{tTrace, tSpan, "", SamplingDebug, false}},
		{"debug with sampled 1", B3Multi{TraceID: tTrace, SpanID: tSpan, Sampled: "1", Flags: "1"}, OK, true,
			ctxWant{tTrace, tSpan, "", SamplingDebug, false}},
		// B3 "Debug Flag": "Absent or any other value can be ignored".
		{"flags 0 ignored", B3Multi{TraceID: tTrace, SpanID: tSpan, Sampled: "1", Flags: "0"}, OK, true,
			ctxWant{tTrace, tSpan, "", SamplingAccept, false}},
		{"flags 2 ignored", B3Multi{TraceID: tTrace, SpanID: tSpan, Flags: "2"}, OK, true,
			ctxWant{tTrace, tSpan, "", SamplingDefer, false}},
		{"flags true ignored", B3Multi{TraceID: tTrace, SpanID: tSpan, Sampled: "0", Flags: "true"}, OK, true,
			ctxWant{tTrace, tSpan, "", SamplingDeny, false}},

		// Sampling state alone (B3 "Sampling State").
		{"nothing", B3Multi{}, OK, false, ctxWant{"", "", "", SamplingDefer, false}},
		{"sampled 0 only", B3Multi{Sampled: "0"}, OK, false, ctxWant{"", "", "", SamplingDeny, false}},
		{"sampled 1 only", B3Multi{Sampled: "1"}, OK, false, ctxWant{"", "", "", SamplingAccept, false}},
		{"debug only", B3Multi{Flags: "1"}, OK, false, ctxWant{"", "", "", SamplingDebug, false}},

		// Missing ids.
		{"trace id only", B3Multi{TraceID: tTrace, Sampled: "1"}, ProblemMissingSpanID, false, ctxWant{}},
		{"span id only", B3Multi{SpanID: tSpan, Sampled: "1"}, ProblemMissingTraceID, false, ctxWant{}},
		{"parent only", B3Multi{ParentSpanID: tParent}, ProblemMissingTraceID, false, ctxWant{}},
		{"span and parent", B3Multi{SpanID: tSpan, ParentSpanID: tParent}, ProblemMissingTraceID, false, ctxWant{}},

		// Bad sampling values.
		{"sampled 2", B3Multi{TraceID: tTrace, SpanID: tSpan, Sampled: "2"}, ProblemSampled, false, ctxWant{}},
		{"sampled d", B3Multi{TraceID: tTrace, SpanID: tSpan, Sampled: "d"}, ProblemSampled, false, ctxWant{}},
		{"sampled True", B3Multi{Sampled: "True"}, ProblemSampled, false, ctxWant{}},
		{"sampled space", B3Multi{Sampled: " 1"}, ProblemSampled, false, ctxWant{}},

		// Bad ids (B3 "TraceId", "SpanId", "ParentSpanId": lower-hex, fixed widths).
		{"trace id 15", B3Multi{TraceID: tTrace64[1:], SpanID: tSpan}, ProblemLength, false, ctxWant{}},
		{"trace id 17", B3Multi{TraceID: tTrace64 + "a", SpanID: tSpan}, ProblemLength, false, ctxWant{}},
		{"trace id 31", B3Multi{TraceID: tTrace[1:], SpanID: tSpan}, ProblemLength, false, ctxWant{}},
		{"trace id 33", B3Multi{TraceID: tTrace + "a", SpanID: tSpan}, ProblemLength, false, ctxWant{}},
		{"trace id upper", B3Multi{TraceID: strings.ToUpper(tTrace), SpanID: tSpan}, ProblemUppercase, false, ctxWant{}},
		{"trace id non-hex", B3Multi{TraceID: "x" + tTrace64[1:], SpanID: tSpan}, ProblemHex, false, ctxWant{}},
		{"trace id zero 64", B3Multi{TraceID: zero16, SpanID: tSpan}, ProblemZeroTraceID, false, ctxWant{}},
		{"trace id zero 128", B3Multi{TraceID: zero32, SpanID: tSpan}, ProblemZeroTraceID, false, ctxWant{}},
		{"span id 15", B3Multi{TraceID: tTrace, SpanID: tSpan[1:]}, ProblemLength, false, ctxWant{}},
		{"span id 32", B3Multi{TraceID: tTrace, SpanID: tTrace}, ProblemLength, false, ctxWant{}},
		{"span id upper", B3Multi{TraceID: tTrace, SpanID: "A2FB4A1D1A96D312"}, ProblemUppercase, false, ctxWant{}},
		{"span id zero", B3Multi{TraceID: tTrace, SpanID: zero16}, ProblemZeroSpanID, false, ctxWant{}},
		{"parent dash", B3Multi{TraceID: tTrace, SpanID: tSpan, ParentSpanID: "-"}, ProblemLength, false, ctxWant{}},
		{"parent upper", B3Multi{TraceID: tTrace, SpanID: tSpan, ParentSpanID: "05E3AC9A4F6E3B90"}, ProblemUppercase, false, ctxWant{}},
		{"parent zero", B3Multi{TraceID: tTrace, SpanID: tSpan, ParentSpanID: zero16}, ProblemZeroSpanID, false, ctxWant{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, hasIDs, p := ParseB3Multi(tt.in)
			if p != tt.want || hasIDs != tt.hasIDs {
				t.Fatalf("ParseB3Multi(%+v) = hasIDs %v, %v; want %v, %v", tt.in, hasIDs, p, tt.hasIDs, tt.want)
			}
			if p == OK {
				checkCtx(t, c, tt.ctx)
				if hasIDs != c.Valid() {
					t.Errorf("hasIDs %v but Valid %v", hasIDs, c.Valid())
				}
			}
		})
	}
}

func TestB3MultiPresent(t *testing.T) {
	if (&B3Multi{}).Present() {
		t.Error("empty B3Multi is present")
	}
	for _, m := range []B3Multi{{TraceID: "x"}, {SpanID: "x"}, {ParentSpanID: "x"}, {Sampled: "x"}, {Flags: "x"}} {
		if !m.Present() {
			t.Errorf("%+v not present", m)
		}
	}
}

func TestParseB3Single(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   Problem
		hasIDs bool
		ctx    ctxWant
	}{
		// Sampling state alone (B3 "Single Header", "Sampling State").
		{"deny only", "0", OK, false, ctxWant{"", "", "", SamplingDeny, false}},
		{"accept only", "1", OK, false, ctxWant{"", "", "", SamplingAccept, false}},
		{"debug only", "d", OK, false, ctxWant{"", "", "", SamplingDebug, false}},

		{"ids only 128", tTrace + "-" + tSpan, OK, true, ctxWant{tTrace, tSpan, "", SamplingDefer, false}},
		{"ids only 64", tTrace64 + "-" + tSpan, OK, true, ctxWant{tTrace64, tSpan, "", SamplingDefer, true}},
		{"accept", tTrace + "-" + tSpan + "-1", OK, true, ctxWant{tTrace, tSpan, "", SamplingAccept, false}},
		{"deny", tTrace + "-" + tSpan + "-0", OK, true, ctxWant{tTrace, tSpan, "", SamplingDeny, false}},
		{"debug", tTrace + "-" + tSpan + "-d", OK, true, ctxWant{tTrace, tSpan, "", SamplingDebug, false}},
		{"accept parent", tTrace + "-" + tSpan + "-1-" + tParent, OK, true, ctxWant{tTrace, tSpan, tParent, SamplingAccept, false}},
		{"deny parent 64", tTrace64 + "-" + tSpan + "-0-" + tParent, OK, true, ctxWant{tTrace64, tSpan, tParent, SamplingDeny, true}},
		{"debug parent", tTrace + "-" + tSpan + "-d-" + tParent, OK, true, ctxWant{tTrace, tSpan, tParent, SamplingDebug, false}},

		{"empty", "", ProblemEmpty, false, ctxWant{}},
		{"sampling 2 alone", "2", ProblemLength, false, ctxWant{}},
		{"sampling D alone", "D", ProblemLength, false, ctxWant{}},
		{"sampling true alone", "true", ProblemLength, false, ctxWant{}},
		{"trace only", tTrace, ProblemMissingSpanID, false, ctxWant{}},
		{"trace and dash", tTrace + "-", ProblemLength, false, ctxWant{}},
		{"empty sampling", tTrace + "-" + tSpan + "-", ProblemSampled, false, ctxWant{}},
		{"empty parent", tTrace + "-" + tSpan + "-1-", ProblemLength, false, ctxWant{}},
		{"sampling 2", tTrace + "-" + tSpan + "-2", ProblemSampled, false, ctxWant{}},
		{"sampling true", tTrace + "-" + tSpan + "-true", ProblemSampled, false, ctxWant{}},
		{"sampling D", tTrace + "-" + tSpan + "-D", ProblemSampled, false, ctxWant{}},
		{"parent without sampling", tTrace + "-" + tSpan + "-" + tParent, ProblemSampled, false, ctxWant{}},
		{"too many fields", tTrace + "-" + tSpan + "-1-" + tParent + "-x", ProblemDelimiter, false, ctxWant{}},
		{"too many fields empty", tTrace + "-" + tSpan + "-1-" + tParent + "-", ProblemDelimiter, false, ctxWant{}},
		{"leading dash", "-" + tSpan + "-1", ProblemLength, false, ctxWant{}},
		{"trace 31", tTrace[1:] + "-" + tSpan, ProblemLength, false, ctxWant{}},
		{"trace upper", strings.ToUpper(tTrace) + "-" + tSpan, ProblemUppercase, false, ctxWant{}},
		{"trace non-hex", "z" + tTrace[1:] + "-" + tSpan, ProblemHex, false, ctxWant{}},
		{"span upper", tTrace + "-" + strings.ToUpper(tSpan), ProblemUppercase, false, ctxWant{}},
		{"span 17", tTrace + "-" + tSpan + "0", ProblemLength, false, ctxWant{}},
		{"zero trace", zero32 + "-" + tSpan + "-1", ProblemZeroTraceID, false, ctxWant{}},
		{"zero trace 64", zero16 + "-" + tSpan + "-1", ProblemZeroTraceID, false, ctxWant{}},
		{"zero span", tTrace + "-" + zero16 + "-1", ProblemZeroSpanID, false, ctxWant{}},
		{"zero parent", tTrace + "-" + tSpan + "-1-" + zero16, ProblemZeroSpanID, false, ctxWant{}},
		{"bad parent", tTrace + "-" + tSpan + "-1-" + tParent[1:], ProblemLength, false, ctxWant{}},
		{"space", " " + tTrace + "-" + tSpan, ProblemLength, false, ctxWant{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, hasIDs, p := ParseB3Single(tt.in)
			if p != tt.want || hasIDs != tt.hasIDs {
				t.Fatalf("ParseB3Single(%q) = hasIDs %v, %v; want %v, %v", tt.in, hasIDs, p, tt.hasIDs, tt.want)
			}
			if p == OK {
				checkCtx(t, c, tt.ctx)
			}
		})
	}
}

func TestB3Formatters(t *testing.T) {
	c := SpanContext{TraceID64: true}
	copy(c.TraceID[8:], []byte{0x46, 0x3a, 0xc3, 0x5c, 0x9f, 0x64, 0x13, 0xad})
	if got := string(AppendB3TraceID(nil, &c)); got != tTrace64 {
		t.Errorf("64-bit trace id: %s", got)
	}
	c.TraceID[0] = 1 // no longer fits in 64 bits: written in full
	if got := string(AppendB3TraceID(nil, &c)); got != "01000000000000004"+tTrace64[1:] {
		t.Errorf("overflowing 64-bit trace id: %s", got)
	}
	c.TraceID[0], c.TraceID64 = 0, false
	if got := string(AppendB3TraceID(nil, &c)); got != zero16+tTrace64 {
		t.Errorf("128-bit trace id with zero high half: %s", got)
	}
	if got := string(AppendHexTraceID(nil, c.TraceID)); got != zero16+tTrace64 {
		t.Errorf("AppendHexTraceID: %s", got)
	}
	if got := string(AppendHexSpanID(nil, SpanID{0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7})); got != tSpan {
		t.Errorf("AppendHexSpanID: %s", got)
	}
	for s, want := range map[Sampling]string{SamplingAccept: "1", SamplingDeny: "0", SamplingDefer: "", SamplingDebug: ""} {
		if got := B3SampledValue(s); got != want {
			t.Errorf("B3SampledValue(%v) = %q, want %q", s, got, want)
		}
	}
}

func TestAppendB3Single(t *testing.T) {
	base, _, _ := ParseB3Single(tTrace + "-" + tSpan + "-1-" + tParent)
	tests := []struct {
		samp Sampling
		want string
	}{
		{SamplingAccept, tTrace + "-" + tSpan + "-1-" + tParent},
		{SamplingDeny, tTrace + "-" + tSpan + "-0-" + tParent},
		{SamplingDebug, tTrace + "-" + tSpan + "-d-" + tParent},
		// Defer has no sampling field, so the positional parent cannot follow.
		{SamplingDefer, tTrace + "-" + tSpan},
	}
	for _, tt := range tests {
		c := base
		c.Sampling = tt.samp
		if got := string(AppendB3Single(nil, &c)); got != tt.want {
			t.Errorf("AppendB3Single(%v) = %s, want %s", tt.samp, got, tt.want)
		}
	}
	c := base
	c.ParentSpanID = SpanID{}
	if got := string(AppendB3Single(nil, &c)); got != tTrace+"-"+tSpan+"-1" {
		t.Errorf("no parent: %s", got)
	}
}
