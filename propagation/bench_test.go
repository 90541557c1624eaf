package propagation

import "testing"

var (
	benchTP       = tp("00", tTrace, tSpan, "01")
	benchTS       = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,a@b=c,d=e f"
	benchBaggage  = "userId=alice,serverNode=DF%2028,isProduction=false;p;q=1"
	benchB3Multi  = B3Multi{TraceID: tTrace, SpanID: tSpan, ParentSpanID: tParent, Sampled: "1"}
	benchB3Single = tTrace + "-" + tSpan + "-1-" + tParent
	benchUber     = uber(tTrace64, tSpan, tParent, "1")
	benchUberEsc  = tTrace64 + "%3A" + tSpan + "%3A0%3A1"
	benchUUID     = "968ea8f8-3806-45c9-8228-8d3dde5df3b4"

	sinkCtx     SpanContext
	sinkProblem Problem
	sinkBool    bool
	sinkBytes   []byte
	sinkString  string
)

// TestParsersDoNotAllocate pins the zero-allocation parse paths.
func TestParsersDoNotAllocate(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	for name, f := range map[string]func(){
		"ParseTraceparent":       func() { sinkCtx, sinkProblem = ParseTraceparent(benchTP) },
		"ParseTraceparentHeader": func() { sinkCtx, sinkProblem = ParseTraceparentHeader(benchTP, 1) },
		"ValidateTracestate":     func() { sinkProblem = ValidateTracestate(benchTS) },
		"ValidateTracestate32":   func() { sinkProblem = ValidateTracestate(repeat32) },
		"ValidateBaggage":        func() { sinkProblem = ValidateBaggage(benchBaggage, 0, 0) },
		"ParseB3Multi":           func() { sinkCtx, sinkBool, sinkProblem = ParseB3Multi(benchB3Multi) },
		"ParseB3Single":          func() { sinkCtx, sinkBool, sinkProblem = ParseB3Single(benchB3Single) },
		"ParseUberTraceID":       func() { sinkCtx, sinkProblem = ParseUberTraceID(benchUberEsc) },
		"IsEnvoyUUID":            func() { sinkBool = IsEnvoyUUID(benchUUID) && IsUUIDShape(benchUUID) },
		"AppendTraceparent": func() {
			sinkBytes = AppendTraceparent(sinkBytes[:0], &sinkCtx)
		},
		"FindServerTimingMetric": func() {
			var desc string
			desc, sinkBool, _ = FindServerTimingMetric(benchServerTiming, ServerTimingTraceMetric)
			sinkBool = sinkBool && desc != ""
		},
		"AppendServerTimingTrace": func() {
			sinkBytes = AppendServerTimingTrace(sinkBytes[:0], &sinkCtx)
		},
	} {
		sinkBytes = make([]byte, 0, 128)
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocs/op", name, n)
		}
	}
}

var repeat32 = repeatMembers(32, ",")

var benchServerTiming = `db;dur=53, cache;desc="Cache Read";dur=23.2, trace;desc=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`

func BenchmarkParseTraceparent(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkCtx, sinkProblem = ParseTraceparent(benchTP)
	}
}

func BenchmarkParseTraceparentInvalid(b *testing.B) {
	v := tp("00", tTrace, zero16, "01")
	b.ReportAllocs()
	for b.Loop() {
		sinkCtx, sinkProblem = ParseTraceparent(v)
	}
}

func BenchmarkValidateTracestate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkProblem = ValidateTracestate(benchTS)
	}
}

func BenchmarkValidateTracestate32Members(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkProblem = ValidateTracestate(repeat32)
	}
}

func BenchmarkValidateBaggage(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkProblem = ValidateBaggage(benchBaggage, 0, 0)
	}
}

func BenchmarkParseB3Multi(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkCtx, sinkBool, sinkProblem = ParseB3Multi(benchB3Multi)
	}
}

func BenchmarkParseB3Single(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkCtx, sinkBool, sinkProblem = ParseB3Single(benchB3Single)
	}
}

func BenchmarkParseUberTraceID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkCtx, sinkProblem = ParseUberTraceID(benchUber)
	}
}

func BenchmarkParseUberTraceIDEscaped(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkCtx, sinkProblem = ParseUberTraceID(benchUberEsc)
	}
}

func BenchmarkIsEnvoyUUID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkBool = IsEnvoyUUID(benchUUID)
	}
}

func BenchmarkIsUUIDShape(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkBool = IsUUIDShape(benchUUID)
	}
}

func BenchmarkAppendTraceparent(b *testing.B) {
	c, _ := ParseTraceparent(benchTP)
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendTraceparent(buf[:0], &c)
	}
	sinkBytes = buf
}

func BenchmarkAppendB3Single(b *testing.B) {
	c, _, _ := ParseB3Single(benchB3Single)
	buf := make([]byte, 0, 96)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendB3Single(buf[:0], &c)
	}
	sinkBytes = buf
}

func BenchmarkAppendUberTraceID(b *testing.B) {
	c, _ := ParseUberTraceID(benchUber)
	buf := make([]byte, 0, 96)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendUberTraceID(buf[:0], &c)
	}
	sinkBytes = buf
}

func BenchmarkSetBaggageMember(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkString = SetBaggageMember(benchBaggage, "serverNode", "DF 29")
	}
}
