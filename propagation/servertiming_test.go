package propagation

import (
	"strings"
	"testing"
)

func TestAppendServerTimingTrace(t *testing.T) {
	c := mustTP(t, tp("00", tTrace, tSpan, "03"))
	// TC2 "Trace Context Metric" example layout.
	if got, want := string(AppendServerTimingTrace(nil, &c)), "trace;desc="+tp("00", tTrace, tSpan, "03"); got != want {
		t.Fatalf("AppendServerTimingTrace = %s, want %s", got, want)
	}
}

func TestFindServerTimingMetric(t *testing.T) {
	d := tp("00", tTrace, tSpan, "01")
	tests := []struct {
		name, in    string
		desc        string
		found, open bool
	}{
		{"empty", "", "", false, false},
		{"only commas", " , ,", "", false, false},
		{"ours alone", "trace;desc=" + d, d, true, false},
		{"ours after app metrics", "db;dur=53, cache;desc=\"Cache Read\";dur=23.2, trace;desc=" + d, d, true, false},
		{"ours first", "trace;desc=" + d + ",db;dur=53", d, true, false},
		{"upper case name", "TRACE;desc=" + d, d, true, false},
		{"mixed case name", " Trace ;desc=" + d, d, true, false},
		{"white space around params", "trace ; desc = " + d + " ;dur=1", d, true, false},
		{"quoted desc", "trace;desc=\"" + d + "\"", d, true, false},
		{"no desc", "trace", "", true, false},
		{"first desc wins", "trace;desc=a;desc=b", "a", true, false},
		{"first trace metric wins", "trace;desc=a, trace;desc=b", "a", true, false},
		{"prefix is another metric", "tracer;desc=x, traces", "", false, false},
		{"name inside a quoted desc", "db;desc=\"a, trace;desc=x\"", "", false, false},
		{"escaped quote inside", "db;desc=\"a\\\", trace\", x", "", false, false},
		{"param named trace", "db;trace=1", "", false, false},
		{"unterminated quote", "db;desc=\"abc", "", false, true},
		{"unterminated after trace", "trace;desc=a, db;desc=\"abc", "a", true, true},
		{"trailing backslash in quote", "db;desc=\"abc\\", "", false, true},
		{"empty name", ";desc=x", "", false, false},
		{"metric with dur only", "db;dur=1.5", "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			desc, found, open := FindServerTimingMetric(tt.in, ServerTimingTraceMetric)
			if desc != tt.desc || found != tt.found || open != tt.open {
				t.Fatalf("FindServerTimingMetric(%q) = %q %v %v, want %q %v %v", tt.in, desc, found, open, tt.desc, tt.found, tt.open)
			}
		})
	}
}

// serverTimingSeeds are Server-Timing values for the fuzz target.
var serverTimingSeeds = []string{
	"", "trace;desc=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	"db;dur=53, cache;desc=\"Cache Read\";dur=23.2", "miss, db;dur=53, app;dur=47.2",
	"TRACE;desc=x", "db;desc=\"a, trace;desc=x\"", "db;desc=\"abc", "db;desc=\"a\\\"b\"",
	"trace;desc=a;desc=b", " ; = , ", "trace;;=;desc", "\"", "\\", strings.Repeat("a;", 50),
}

func FuzzFindServerTimingMetric(f *testing.F) {
	for _, s := range serverTimingSeeds {
		f.Add(s)
	}
	ours := "trace;desc=" + tp("00", tTrace, tSpan, "01")
	f.Fuzz(func(t *testing.T, s string) {
		desc, found, open := FindServerTimingMetric(s, ServerTimingTraceMetric)
		if found && !strings.Contains(strings.ToLower(s), ServerTimingTraceMetric) {
			t.Fatalf("%q: found a trace metric that is not there", s)
		}
		if !strings.Contains(s, desc) {
			t.Fatalf("%q: desc %q is not part of the value", s, desc)
		}
		if open && !strings.Contains(s, `"`) {
			t.Fatalf("%q: open without a quote", s)
		}
		// What the engine does: append its metric to a value that is not
		// open. A reader must then find a trace metric, and ours when the
		// value had none; the app's metrics read the same as before.
		if open {
			return
		}
		joined := s + ", " + ours
		d2, f2, o2 := FindServerTimingMetric(joined, ServerTimingTraceMetric)
		if !f2 || o2 {
			t.Fatalf("%q + ours: found %v open %v", s, f2, o2)
		}
		if found && d2 != desc || !found && d2 != ours[len("trace;desc="):] {
			t.Fatalf("%q + ours: desc %q (app's: %v %q)", s, d2, found, desc)
		}
		for _, name := range []string{"db", "cache", "x"} {
			a, fa, _ := FindServerTimingMetric(s, name)
			b, fb, _ := FindServerTimingMetric(joined, name)
			if a != b || fa != fb {
				t.Fatalf("%q: appending changed metric %s: %q %v -> %q %v", s, name, a, fa, b, fb)
			}
		}
	})
}
