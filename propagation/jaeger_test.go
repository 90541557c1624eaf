package propagation

import (
	"strings"
	"testing"
)

func uber(trace, span, parent, flags string) string {
	return trace + ":" + span + ":" + parent + ":" + flags
}

func TestParseUberTraceID(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Problem
		ctx  ctxWant
	}{
		{"64-bit sampled", uber(tTrace64, tSpan, "0", "1"), OK, ctxWant{tTrace64, tSpan, "", SamplingAccept, true}},
		{"128-bit", uber(tTrace, tSpan, "0", "1"), OK, ctxWant{tTrace, tSpan, "", SamplingAccept, false}},
		{"with parent", uber(tTrace, tSpan, tParent, "1"), OK, ctxWant{tTrace, tSpan, tParent, SamplingAccept, false}},
		{"parent zeros", uber(tTrace, tSpan, zero16, "1"), OK, ctxWant{tTrace, tSpan, "", SamplingAccept, false}},

		// Flags (JG {flags}).
		{"flags 0", uber(tTrace64, tSpan, "0", "0"), OK, ctxWant{tTrace64, tSpan, "", SamplingDeny, true}},
		{"flags 00", uber(tTrace64, tSpan, "0", "00"), OK, ctxWant{tTrace64, tSpan, "", SamplingDeny, true}},
		{"flags 01", uber(tTrace64, tSpan, "0", "01"), OK, ctxWant{tTrace64, tSpan, "", SamplingAccept, true}},
		{"flags 3 debug", uber(tTrace64, tSpan, "0", "3"), OK, ctxWant{tTrace64, tSpan, "", SamplingDebug, true}},
		{"flags 03 debug", uber(tTrace64, tSpan, "0", "03"), OK, ctxWant{tTrace64, tSpan, "", SamplingDebug, true}},
		{"flags 2 debug without sampled", uber(tTrace64, tSpan, "0", "2"), OK, ctxWant{tTrace64, tSpan, "", SamplingDeny, true}},
		{"flags 8 firehose", uber(tTrace64, tSpan, "0", "8"), OK, ctxWant{tTrace64, tSpan, "", SamplingDeny, true}},
		{"flags 9 firehose sampled", uber(tTrace64, tSpan, "0", "9"), OK, ctxWant{tTrace64, tSpan, "", SamplingAccept, true}},
		{"flags f", uber(tTrace64, tSpan, "0", "f"), OK, ctxWant{tTrace64, tSpan, "", SamplingDebug, true}},
		{"flags FF", uber(tTrace64, tSpan, "0", "FF"), OK, ctxWant{tTrace64, tSpan, "", SamplingDebug, true}},
		{"flags fe", uber(tTrace64, tSpan, "0", "fe"), OK, ctxWant{tTrace64, tSpan, "", SamplingDeny, true}},

		// Short hex, zero-padded on the left (JG {trace-id}, {span-id}).
		{"short ids", uber("abc", "def", "0", "1"), OK, ctxWant{"0000000000000abc", "0000000000000def", "", SamplingAccept, true}},
		{"odd-length ids", uber("1", "1", "1", "1"), OK, ctxWant{"0000000000000001", "0000000000000001", "0000000000000001", SamplingAccept, true}},
		{"17-digit trace id", uber("1"+tTrace64, tSpan, "0", "1"), OK, ctxWant{"000000000000000" + "1" + tTrace64, tSpan, "", SamplingAccept, false}},
		{"leading zeros 16", uber("000000000000abcd", tSpan, "0", "1"), OK, ctxWant{"000000000000abcd", tSpan, "", SamplingAccept, true}},

		// Upper case accepted.
		{"upper ids", uber(strings.ToUpper(tTrace), strings.ToUpper(tSpan), strings.ToUpper(tParent), "1"), OK,
			ctxWant{tTrace, tSpan, tParent, SamplingAccept, false}},

		// Percent-encoded colons.
		{"%3A", tTrace64 + "%3A" + tSpan + "%3A0%3A1", OK, ctxWant{tTrace64, tSpan, "", SamplingAccept, true}},
		{"%3a", tTrace64 + "%3a" + tSpan + "%3a0%3a3", OK, ctxWant{tTrace64, tSpan, "", SamplingDebug, true}},
		{"mixed", tTrace64 + ":" + tSpan + "%3A" + tParent + ":0", OK, ctxWant{tTrace64, tSpan, tParent, SamplingDeny, true}},

		// Zero ids (JG: "Value of 0 is not valid").
		{"zero trace", uber("0", tSpan, "0", "1"), ProblemZeroTraceID, ctxWant{}},
		{"zero trace 32", uber(zero32, tSpan, "0", "1"), ProblemZeroTraceID, ctxWant{}},
		{"zero span", uber(tTrace, "0", "0", "1"), ProblemZeroSpanID, ctxWant{}},
		{"zero span 16", uber(tTrace, zero16, "0", "1"), ProblemZeroSpanID, ctxWant{}},

		// Bad forms.
		{"empty", "", ProblemEmpty, ctxWant{}},
		{"three fields", tTrace + ":" + tSpan + ":0", ProblemDelimiter, ctxWant{}},
		{"five fields", uber(tTrace, tSpan, "0", "1") + ":x", ProblemDelimiter, ctxWant{}},
		{"trailing colon", uber(tTrace, tSpan, "0", "1") + ":", ProblemDelimiter, ctxWant{}},
		{"only colons", ":::", ProblemEmpty, ctxWant{}},
		{"empty trace", uber("", tSpan, "0", "1"), ProblemEmpty, ctxWant{}},
		{"empty span", uber(tTrace, "", "0", "1"), ProblemEmpty, ctxWant{}},
		{"empty parent", uber(tTrace, tSpan, "", "1"), ProblemEmpty, ctxWant{}},
		{"empty flags", uber(tTrace, tSpan, "0", ""), ProblemFlags, ctxWant{}},
		{"flags 3 digits", uber(tTrace, tSpan, "0", "001"), ProblemFlags, ctxWant{}},
		{"flags non-hex", uber(tTrace, tSpan, "0", "x"), ProblemFlags, ctxWant{}},
		{"flags space", uber(tTrace, tSpan, "0", "1 "), ProblemFlags, ctxWant{}},
		{"trace 33", uber(tTrace+"1", tSpan, "0", "1"), ProblemLength, ctxWant{}},
		{"span 17", uber(tTrace, tSpan+"1", "0", "1"), ProblemLength, ctxWant{}},
		{"parent 17", uber(tTrace, tSpan, tParent+"1", "1"), ProblemLength, ctxWant{}},
		{"trace non-hex", uber("xyz", tSpan, "0", "1"), ProblemHex, ctxWant{}},
		{"span non-hex", uber(tTrace, "-1", "0", "1"), ProblemHex, ctxWant{}},
		{"partial escape", tTrace + "%3" + tSpan + ":0:1", ProblemDelimiter, ctxWant{}},
		{"other escape", "abc%3Bdef:" + tSpan + ":0:1", ProblemHex, ctxWant{}},
		{"escape at end", uber(tTrace, tSpan, "0", "1") + "%3", ProblemFlags, ctxWant{}},
		{"b3 form", tTrace + "-" + tSpan + "-1", ProblemDelimiter, ctxWant{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, p := ParseUberTraceID(tt.in)
			if p != tt.want {
				t.Fatalf("ParseUberTraceID(%q) = %v, want %v", tt.in, p, tt.want)
			}
			if p == OK {
				checkCtx(t, c, tt.ctx)
				if !c.Valid() {
					t.Error("valid parse, invalid context")
				}
			}
		})
	}
}

func TestAppendUberTraceID(t *testing.T) {
	c, p := ParseUberTraceID(uber(tTrace64, tSpan, tParent, "1"))
	if p != OK {
		t.Fatal(p)
	}
	for _, tt := range []struct {
		s    Sampling
		want string
	}{
		{SamplingAccept, "1"}, {SamplingDeny, "0"}, {SamplingDebug, "3"},
		{SamplingDefer, "0"}, // Jaeger has no defer
	} {
		c.Sampling = tt.s
		if got, want := string(AppendUberTraceID(nil, &c)), uber(tTrace64, tSpan, tParent, tt.want); got != want {
			t.Errorf("AppendUberTraceID(%v) = %s, want %s", tt.s, got, want)
		}
	}
	c.ParentSpanID = SpanID{}
	if got, want := string(AppendUberTraceID(nil, &c)), uber(tTrace64, tSpan, "0", "0"); got != want {
		t.Errorf("no parent: %s, want %s", got, want)
	}
	// Short input is written back full width.
	c, _ = ParseUberTraceID(uber("abc", "def", "0", "1"))
	if got, want := string(AppendUberTraceID(nil, &c)), uber("0000000000000abc", "0000000000000def", "0", "1"); got != want {
		t.Errorf("short ids: %s, want %s", got, want)
	}
}

func TestIsUberBaggageHeader(t *testing.T) {
	for name, want := range map[string]bool{
		"uberctx-key1": true, "uberctx-a": true, "uberctx-": false, "uberctx": false,
		"x-uberctx-a": false, "uber-trace-id": false, "": false,
	} {
		if got := IsUberBaggageHeader(name); got != want {
			t.Errorf("IsUberBaggageHeader(%q) = %v, want %v", name, got, want)
		}
	}
}
