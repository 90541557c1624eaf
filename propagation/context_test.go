package propagation

import (
	"strings"
	"testing"
)

func TestSamplingAndFormatNames(t *testing.T) {
	for s, want := range map[Sampling]string{SamplingDefer: "defer", SamplingDeny: "deny", SamplingAccept: "accept", SamplingDebug: "debug", 99: "defer"} {
		if s.String() != want {
			t.Errorf("%d.String() = %s, want %s", s, s, want)
		}
	}
	for s, want := range map[Sampling]bool{SamplingDefer: false, SamplingDeny: false, SamplingAccept: true, SamplingDebug: true} {
		if s.Sampled() != want {
			t.Errorf("%v.Sampled() = %v", s, !want)
		}
	}
	for _, f := range Formats {
		g, ok := ParseFormat(f.String())
		if !ok || g != f {
			t.Errorf("ParseFormat(%q) = %v, %v", f, g, ok)
		}
		if len(FormatHeaders(f)) == 0 {
			t.Errorf("FormatHeaders(%v) empty", f)
		}
	}
	if _, ok := ParseFormat("none"); ok {
		t.Error("ParseFormat(none) ok")
	}
	if FormatHeaders(FormatNone) != nil {
		t.Error("FormatHeaders(none) not nil")
	}
	if FormatCount != len(Formats)+1 {
		t.Errorf("FormatCount = %d", FormatCount)
	}
}

func TestProblemText(t *testing.T) {
	seen := map[string]Problem{}
	for p := OK; p < problemCount; p++ {
		code := p.Code()
		if code == "" || p.String() == "" || strings.ToLower(code) != code || strings.Contains(code, " ") {
			t.Errorf("problem %d: code %q text %q", p, code, p.String())
		}
		if q, dup := seen[code]; dup {
			t.Errorf("problems %d and %d share code %q", q, p, code)
		}
		seen[code] = p
	}
	if problemCount.String() != "unknown problem" || problemCount.Code() != "unknown" {
		t.Error("out-of-range problem")
	}
}

func TestIDs(t *testing.T) {
	var tid TraceID
	if !tid.IsZero() || !tid.High64Zero() || tid.String() != zero32 {
		t.Error("zero trace id")
	}
	tid[15] = 1
	if tid.IsZero() || !tid.High64Zero() {
		t.Error("low byte")
	}
	tid[7] = 1
	if tid.High64Zero() {
		t.Error("byte 7 is in the high half")
	}
	var sid SpanID
	if !sid.IsZero() || sid.String() != zero16 {
		t.Error("zero span id")
	}
	a, _ := ParseTraceparent(tp("00", zero16+tTrace64, tSpan, "01"))
	b, _, _ := ParseB3Single(tTrace64 + "-" + tSpan)
	if !a.SameSpan(&b) || !b.SameSpan(&a) {
		t.Error("64-bit B3 id and its padded W3C form are the same span")
	}
	b.SpanID[0] ^= 1
	if a.SameSpan(&b) {
		t.Error("different span ids")
	}
}
