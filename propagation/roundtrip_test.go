package propagation

import (
	"math/rand/v2"
	"testing"
	"testing/quick"
)

// Canonical forms: for each, format(parse(x)) == x.

func TestRoundTripTraceparent(t *testing.T) {
	for _, x := range []string{
		tp("00", tTrace, tSpan, "01"),
		tp("00", tTrace, tSpan, "00"),
		tp("00", zero16+tTrace64, tSpan, "01"),
		tp("00", "ffffffffffffffffffffffffffffffff", "ffffffffffffffff", "01"),
		tp("00", zero32[:31]+"1", zero16[:15]+"1", "00"),
	} {
		c, p := ParseTraceparent(x)
		if p != OK {
			t.Fatalf("%s: %v", x, p)
		}
		if got := string(AppendTraceparent(nil, &c)); got != x {
			t.Errorf("format(parse(%s)) = %s", x, got)
		}
	}
}

func TestRoundTripB3Single(t *testing.T) {
	for _, x := range []string{
		tTrace + "-" + tSpan,
		tTrace + "-" + tSpan + "-1",
		tTrace + "-" + tSpan + "-0",
		tTrace + "-" + tSpan + "-d",
		tTrace + "-" + tSpan + "-1-" + tParent,
		tTrace + "-" + tSpan + "-d-" + tParent,
		tTrace64 + "-" + tSpan,
		tTrace64 + "-" + tSpan + "-0-" + tParent,
		zero16 + tTrace64 + "-" + tSpan + "-1", // 128-bit with zero high half stays 32 digits
	} {
		c, hasIDs, p := ParseB3Single(x)
		if p != OK || !hasIDs {
			t.Fatalf("%s: %v %v", x, hasIDs, p)
		}
		if got := string(AppendB3Single(nil, &c)); got != x {
			t.Errorf("format(parse(%s)) = %s", x, got)
		}
	}
}

func TestRoundTripUberTraceID(t *testing.T) {
	for _, x := range []string{
		uber(tTrace64, tSpan, "0", "1"),
		uber(tTrace64, tSpan, "0", "0"),
		uber(tTrace64, tSpan, tParent, "3"),
		uber(tTrace, tSpan, "0", "1"),
		uber(tTrace, tSpan, tParent, "0"),
		uber(zero16+tTrace64, tSpan, "0", "1"),
	} {
		c, p := ParseUberTraceID(x)
		if p != OK {
			t.Fatalf("%s: %v", x, p)
		}
		if got := string(AppendUberTraceID(nil, &c)); got != x {
			t.Errorf("format(parse(%s)) = %s", x, got)
		}
	}
}

// formatB3Multi builds the x-b3-* values for c the way an injector does:
// ids with AppendB3TraceID/AppendHexSpanID, x-b3-sampled from B3SampledValue,
// x-b3-flags: 1 for debug (B3 "Debug Flag": then no x-b3-sampled).
func formatB3Multi(c *SpanContext) B3Multi {
	m := B3Multi{
		TraceID: string(AppendB3TraceID(nil, c)),
		SpanID:  string(AppendHexSpanID(nil, c.SpanID)),
		Sampled: B3SampledValue(c.Sampling),
	}
	if !c.ParentSpanID.IsZero() {
		m.ParentSpanID = string(AppendHexSpanID(nil, c.ParentSpanID))
	}
	if c.Sampling == SamplingDebug {
		m.Flags = "1"
	}
	return m
}

func TestRoundTripB3Multi(t *testing.T) {
	for _, x := range []B3Multi{
		{TraceID: tTrace, SpanID: tSpan, Sampled: "1"},
		{TraceID: tTrace, SpanID: tSpan, Sampled: "0", ParentSpanID: tParent},
		{TraceID: tTrace64, SpanID: tSpan},
		{TraceID: tTrace64, SpanID: tSpan, ParentSpanID: tParent, Flags: "1"},
		{TraceID: zero16 + tTrace64, SpanID: tSpan, Sampled: "1"},
	} {
		c, hasIDs, p := ParseB3Multi(x)
		if p != OK || !hasIDs {
			t.Fatalf("%+v: %v %v", x, hasIDs, p)
		}
		if got := formatB3Multi(&c); got != x {
			t.Errorf("format(parse(%+v)) = %+v", x, got)
		}
	}
}

// randContext draws a valid context: nonzero ids, 64- or 128-bit trace id,
// parent present or not, any sampling state.
func randContext(r *rand.Rand) SpanContext {
	var c SpanContext
	for c.TraceID.IsZero() {
		c.TraceID64 = false
		for i := range c.TraceID {
			c.TraceID[i] = byte(r.UintN(256))
		}
		if r.IntN(2) == 0 {
			c.TraceID64 = true
			clear(c.TraceID[:8])
		}
		if r.IntN(8) == 0 { // sparse ids exercise leading zeros
			for i := range c.TraceID[:15] {
				c.TraceID[i] = 0
			}
		}
	}
	for c.SpanID.IsZero() {
		for i := range c.SpanID {
			c.SpanID[i] = byte(r.UintN(256))
		}
		if r.IntN(8) == 0 {
			clear(c.SpanID[:7])
		}
	}
	if r.IntN(2) == 0 {
		for i := range c.ParentSpanID {
			c.ParentSpanID[i] = byte(r.UintN(256))
		}
	}
	c.Sampling = Sampling(r.IntN(4))
	return c
}

const propertyRuns = 20000

func TestPropertyTraceparent(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < propertyRuns; i++ {
		c := randContext(r)
		s := AppendTraceparent(nil, &c)
		got, p := ParseTraceparent(string(s))
		if p != OK {
			t.Fatalf("%+v -> %s: %v", c, s, p)
		}
		// W3C keeps the ids; the parent and the 64-bit width are dropped,
		// and the sampling state collapses to the sampled bit.
		want := SpanContext{TraceID: c.TraceID, SpanID: c.SpanID, Sampling: SamplingDeny}
		if c.Sampling.Sampled() {
			want.Sampling = SamplingAccept
		}
		if got != want {
			t.Fatalf("%+v -> %s -> %+v, want %+v", c, s, got, want)
		}
		if s2 := AppendTraceparent(nil, &got); string(s2) != string(s) {
			t.Fatalf("not idempotent: %s then %s", s, s2)
		}
	}
}

func TestPropertyB3Single(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < propertyRuns; i++ {
		c := randContext(r)
		s := AppendB3Single(nil, &c)
		got, hasIDs, p := ParseB3Single(string(s))
		if p != OK || !hasIDs {
			t.Fatalf("%+v -> %s: %v", c, s, p)
		}
		want := c
		if c.Sampling == SamplingDefer {
			want.ParentSpanID = SpanID{} // positional: no parent without sampling
		}
		if got != want {
			t.Fatalf("%+v -> %s -> %+v", c, s, got)
		}
	}
}

func TestPropertyB3Multi(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < propertyRuns; i++ {
		c := randContext(r)
		m := formatB3Multi(&c)
		got, hasIDs, p := ParseB3Multi(m)
		if p != OK || !hasIDs || got != c {
			t.Fatalf("%+v -> %+v -> %+v %v %v", c, m, got, hasIDs, p)
		}
	}
}

func TestPropertyUberTraceID(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < propertyRuns; i++ {
		c := randContext(r)
		s := AppendUberTraceID(nil, &c)
		got, p := ParseUberTraceID(string(s))
		if p != OK {
			t.Fatalf("%+v -> %s: %v", c, s, p)
		}
		want := c
		if c.Sampling == SamplingDefer {
			want.Sampling = SamplingDeny // Jaeger has no defer
		}
		if got != want {
			t.Fatalf("%+v -> %s -> %+v", c, s, got)
		}
	}
}

// Jaeger receivers accept any shortened id: strip leading zeros and escape
// the colons, and the parse still gives the same context.
func TestPropertyUberTraceIDShortAndEscaped(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	trim := func(s string) string {
		for len(s) > 1 && s[0] == '0' {
			s = s[1:]
		}
		return s
	}
	for i := 0; i < propertyRuns; i++ {
		c := randContext(r)
		c.TraceID64 = true
		clear(c.TraceID[:8])
		if c.TraceID.IsZero() {
			continue
		}
		if c.Sampling == SamplingDefer {
			c.Sampling = SamplingDeny
		}
		sep := ":"
		if r.IntN(2) == 0 {
			sep = "%3A"
		}
		flags := map[Sampling]string{SamplingDeny: "0", SamplingAccept: "1", SamplingDebug: "3"}[c.Sampling]
		s := trim(c.TraceID.String()[16:]) + sep + trim(c.SpanID.String()) + sep + trim(c.ParentSpanID.String()) + sep + flags
		got, p := ParseUberTraceID(s)
		if p != OK || got != c {
			t.Fatalf("%+v -> %s -> %+v %v", c, s, got, p)
		}
	}
}

// Percent-encoded baggage values always validate and decode back.
func TestPropertyBaggageValue(t *testing.T) {
	f := func(v string) bool {
		enc := string(AppendBaggageValue(nil, v))
		dec, ok := percentDecode(enc)
		return ok && dec == v && isBaggageValue(enc)
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 5000, Rand: nil}); err != nil {
		t.Fatal(err)
	}
}

// SetBaggageMember on valid baggage gives valid baggage holding key=value once.
func TestPropertySetBaggageMember(t *testing.T) {
	keys := []string{"a", "b", "k", "user.id", "x-y"}
	r := rand.New(rand.NewPCG(11, 12))
	for i := 0; i < 5000; i++ {
		existing := ""
		for n := r.IntN(6); n > 0; n-- {
			if existing != "" {
				existing += []string{",", " , ", ",\t"}[r.IntN(3)]
			}
			existing += keys[r.IntN(len(keys))] + "=" + string(AppendBaggageValue(nil, randString(r)))
			if r.IntN(3) == 0 {
				existing += ";p=1"
			}
		}
		key, value := keys[r.IntN(len(keys))], randString(r)
		out := SetBaggageMember(existing, key, value)
		if p := ValidateBaggage(out, 1000, 1<<20); p != OK {
			t.Fatalf("SetBaggageMember(%q, %q, %q) = %q: %v", existing, key, value, out, p)
		}
		if vals := baggageValues(out, key); len(vals) != 1 || vals[0] != value {
			t.Fatalf("SetBaggageMember(%q, %q, %q) = %q: values %q", existing, key, value, out, vals)
		}
	}
}

func randString(r *rand.Rand) string {
	b := make([]byte, r.IntN(8))
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return string(b)
}

// baggageValues returns the decoded values of every member named key.
func baggageValues(s, key string) []string {
	var out []string
	for start := 0; start < len(s); {
		end := start
		for end < len(s) && s[end] != ',' {
			end++
		}
		m := trimOWS(s[start:end])
		start = end + 1
		kv, _, _ := cutByte(m, ';')
		k, v, _ := cutByte(kv, '=')
		if trimOWS(k) == key {
			d, _ := percentDecode(trimOWS(v))
			out = append(out, d)
		}
	}
	return out
}
