package propagation

import (
	"regexp"
	"strings"
	"testing"
)

// Fuzz targets for every parser. `go test` runs each seed corpus; see
// FUZZING.md for the long runs.

func FuzzParseTraceparent(f *testing.F) {
	for _, s := range []string{
		tp("00", tTrace, tSpan, "01"),
		tp("00", tTrace, tSpan, "00"),
		tp("00", tTrace, tSpan, "ff"),
		" " + tp("00", tTrace, tSpan, "01") + "\t",
		tp("cc", tTrace, tSpan, "01") + "-what-the-future-will-be-like",
		tp("cc", tTrace, tSpan, "01") + ".x",
		tp("ff", tTrace, tSpan, "01"),
		tp("00", zero32, tSpan, "01"),
		tp("00", tTrace, zero16, "01"),
		tp("00", strings.ToUpper(tTrace), tSpan, "01"),
		tp("00", tTrace, tSpan, "001"),
		tp("0", tTrace, tSpan, "01"),
		"", "-", "00-", "00-0-0-0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, p := ParseTraceparent(s)
		if p >= problemCount {
			t.Fatalf("problem out of range: %d", p)
		}
		if p != OK {
			if c.Sampling != SamplingDefer && c.Sampling != SamplingDeny && c.Sampling != SamplingAccept {
				t.Fatalf("bad sampling on error")
			}
			return
		}
		if !c.Valid() {
			t.Fatalf("%q: OK but invalid context %+v", s, c)
		}
		if c.Sampling != SamplingAccept && c.Sampling != SamplingDeny {
			t.Fatalf("%q: W3C sampling %v", s, c.Sampling)
		}
		if !c.ParentSpanID.IsZero() || c.TraceID64 || c.TraceState != "" {
			t.Fatalf("%q: W3C filled other fields %+v", s, c)
		}
		out := AppendTraceparent(nil, &c)
		c2, p2 := ParseTraceparent(string(out))
		if p2 != OK || c2 != c {
			t.Fatalf("%q -> %s -> %+v %v, want %+v", s, out, c2, p2, c)
		}
		// A version-00 value with flags 00-03 is canonical: written back as is.
		v := trimOWS(s)
		if v[:2] == "00" && v[53] == '0' && v[54] >= '0' && v[54] <= '3' && string(out) != v {
			t.Fatalf("canonical %q written as %s", v, out)
		}
		// The parsed ids are the text's ids.
		if c.TraceID.String() != v[3:35] || c.SpanID.String() != v[36:52] {
			t.Fatalf("%q: ids %s %s", s, c.TraceID, c.SpanID)
		}
	})
}

// tracestateKeyRE is the key ABNF of TC2 "Key" written as a regular
// expression (the W3C suite's test/tracecontext/tracestate.py uses the same
// one), an oracle independent of validTracestateKey.
var tracestateKeyRE = regexp.MustCompile(`^[0-9a-z][_0-9a-z\-*/@]{0,255}$`)

func FuzzValidateTracestate(f *testing.F) {
	for _, s := range []string{
		"", " ", ",", "foo=1", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
		"foo=1 \t , \t bar=2, \t baz=3", "foo=1,foo=2", "a@b=1,c@d=2",
		"t@" + strings.Repeat("v", 15) + "=1", strings.Repeat("z", 257) + "=1",
		repeatMembers(32, ","), repeatMembers(33, ","),
		"foo=bar=baz", "foo=,bar=3", "FOO=1", "foo =1", "foo= x", "1a@b=c",
		// Level 2 key grammar: "@" anywhere but first, digits first, 256 long.
		"foo@=1,bar=2", "@foo=1,bar=2", "foo@@bar=1,bar=2", "foo@bar@baz=1,bar=2",
		strings.Repeat("z", 256) + "=1", strings.Repeat("t", 242) + "@v=1", "foo=1,foo=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := ValidateTracestate(s)
		if p >= problemCount {
			t.Fatalf("problem out of range: %d", p)
		}
		if p != OK {
			return
		}
		if len(s) > TracestateMaxLen {
			t.Fatalf("%d chars accepted", len(s))
		}
		// Re-joining the non-empty members, trimmed, gives an equally valid
		// value with the same members.
		var members []string
		for _, m := range strings.Split(s, ",") {
			m = trimOWS(m)
			if m == "" {
				continue
			}
			k, v, ok := strings.Cut(m, "=")
			if !ok || !tracestateKeyRE.MatchString(k) || !validTracestateValue(v) {
				t.Fatalf("%q accepted with bad member %q", s, m)
			}
			members = append(members, m)
		}
		if len(members) > TracestateMaxMembers {
			t.Fatalf("%q: %d members", s, len(members))
		}
		if p := ValidateTracestate(strings.Join(members, ",")); p != OK {
			t.Fatalf("canonical form of %q: %v", s, p)
		}
	})
}

func FuzzValidateBaggage(f *testing.F) {
	for _, s := range []string{
		"", " ", "k=v", "k=", "key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue",
		"userId=Am%C3%A9lie,serverNode=DF%2028", "k=v;", "k=v;;p", "a=1,,b=2", "=v", "k=a b",
		baggageMembers(65), "k=" + strings.Repeat("v", 8191),
	} {
		f.Add(s, 0, 0)
	}
	f.Add("a=1,b=2,c=3", 2, 0)
	f.Add("a=1,b=2,c=3", 0, 5)
	f.Fuzz(func(t *testing.T, s string, maxMembers, maxBytes int) {
		p := ValidateBaggage(s, maxMembers, maxBytes)
		if p >= problemCount {
			t.Fatalf("problem out of range: %d", p)
		}
		if p != OK {
			return
		}
		if maxBytes <= 0 {
			maxBytes = BaggageMaxBytes
		}
		if maxMembers <= 0 {
			maxMembers = BaggageMaxMembers
		}
		if len(s) > maxBytes {
			t.Fatalf("%d bytes accepted, max %d", len(s), maxBytes)
		}
		if trimOWS(s) == "" {
			return
		}
		members := strings.Split(s, ",")
		if len(members) > maxMembers {
			t.Fatalf("%d members accepted, max %d", len(members), maxMembers)
		}
		for _, m := range members {
			if strings.ContainsAny(m, "\"\\") {
				t.Fatalf("%q accepted with forbidden characters", s)
			}
			k, _, ok := strings.Cut(m, "=")
			if !ok || !IsBaggageKey(trimOWS(k)) {
				t.Fatalf("%q accepted with bad member %q", s, m)
			}
		}
	})
}

func FuzzParseB3Multi(f *testing.F) {
	f.Add(tTrace, tSpan, "", "1", "")
	f.Add(tTrace64, tSpan, tParent, "0", "")
	f.Add(tTrace, tSpan, "", "", "1")
	f.Add("", "", "", "0", "")
	f.Add("", "", "", "", "1")
	f.Add(tTrace, "", "", "1", "")
	f.Add("", tSpan, tParent, "", "")
	f.Add(tTrace, tSpan, "", "true", "0")
	f.Add(zero16, tSpan, "", "1", "")
	f.Add(strings.ToUpper(tTrace), tSpan, "-", "2", "x")
	f.Fuzz(func(t *testing.T, trace, span, parent, sampled, flags string) {
		m := B3Multi{TraceID: trace, SpanID: span, ParentSpanID: parent, Sampled: sampled, Flags: flags}
		c, hasIDs, p := ParseB3Multi(m)
		if p >= problemCount {
			t.Fatalf("problem out of range: %d", p)
		}
		if p != OK {
			if hasIDs {
				t.Fatal("hasIDs with a problem")
			}
			return
		}
		if hasIDs != c.Valid() {
			t.Fatalf("%+v: hasIDs %v, Valid %v", m, hasIDs, c.Valid())
		}
		if !hasIDs {
			if !c.TraceID.IsZero() || !c.SpanID.IsZero() || !c.ParentSpanID.IsZero() || trace != "" || span != "" || parent != "" {
				t.Fatalf("%+v: sampling-only result carries ids %+v", m, c)
			}
			return
		}
		out := formatB3Multi(&c)
		c2, hasIDs2, p2 := ParseB3Multi(out)
		if p2 != OK || !hasIDs2 || c2 != c {
			t.Fatalf("%+v -> %+v -> %+v %v, want %+v", m, out, c2, p2, c)
		}
		// Ids are canonical on input, so they are written back unchanged.
		if out.TraceID != trace || out.SpanID != span || out.ParentSpanID != parent {
			t.Fatalf("%+v written as %+v", m, out)
		}
	})
}

func FuzzParseB3Single(f *testing.F) {
	for _, s := range []string{
		"0", "1", "d", "", "2",
		tTrace + "-" + tSpan, tTrace64 + "-" + tSpan + "-1",
		tTrace + "-" + tSpan + "-d-" + tParent, tTrace + "-" + tSpan + "-0-" + tParent,
		tTrace + "-" + tSpan + "-1-" + tParent + "-x", tTrace + "-" + tSpan + "-" + tParent,
		tTrace + "-" + tSpan + "-", zero32 + "-" + tSpan, "-", "--", "---",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, hasIDs, p := ParseB3Single(s)
		if p >= problemCount {
			t.Fatalf("problem out of range: %d", p)
		}
		if p != OK {
			if hasIDs {
				t.Fatal("hasIDs with a problem")
			}
			return
		}
		if !hasIDs {
			if s != "0" && s != "1" && s != "d" {
				t.Fatalf("%q: sampling-only form", s)
			}
			return
		}
		if !c.Valid() {
			t.Fatalf("%q: invalid context %+v", s, c)
		}
		out := AppendB3Single(nil, &c)
		// Every accepted value with ids is in canonical form.
		if string(out) != s {
			t.Fatalf("%q written as %s", s, out)
		}
		c2, _, p2 := ParseB3Single(string(out))
		if p2 != OK || c2 != c {
			t.Fatalf("%q -> %s -> %+v %v", s, out, c2, p2)
		}
	})
}

func FuzzParseUberTraceID(f *testing.F) {
	for _, s := range []string{
		uber(tTrace64, tSpan, "0", "1"), uber(tTrace, tSpan, tParent, "3"), uber("abc", "def", "0", "2"),
		tTrace64 + "%3A" + tSpan + "%3a0%3A1", uber(strings.ToUpper(tTrace), tSpan, "0", "FF"),
		uber("0", tSpan, "0", "1"), uber(tTrace, "0", "0", "1"), ":::", "a:b:c", "a:b:c:d:e",
		uber(tTrace+"1", tSpan, "0", "1"), uber(tTrace, tSpan, "0", "100"), "%3A%3A%3A", "%3",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, p := ParseUberTraceID(s)
		if p >= problemCount {
			t.Fatalf("problem out of range: %d", p)
		}
		if p != OK {
			return
		}
		if !c.Valid() {
			t.Fatalf("%q: invalid context %+v", s, c)
		}
		if c.Sampling == SamplingDefer {
			t.Fatalf("%q: Jaeger has no defer", s)
		}
		if c.TraceID64 && !c.TraceID.High64Zero() {
			t.Fatalf("%q: 64-bit id with high bits", s)
		}
		out := AppendUberTraceID(nil, &c)
		c2, p2 := ParseUberTraceID(string(out))
		if p2 != OK || c2 != c {
			t.Fatalf("%q -> %s -> %+v %v, want %+v", s, out, c2, p2, c)
		}
		// The canonical form is a fixed point.
		if out2 := AppendUberTraceID(nil, &c2); string(out2) != string(out) {
			t.Fatalf("%s -> %s", out, out2)
		}
	})
}

func FuzzIsEnvoyUUID(f *testing.F) {
	for _, s := range []string{
		"968ea8f8-3806-45c9-8228-8d3dde5df3b4", "950284c4-3c92-9062-b836-57996687deda",
		"968ea8f8-3806-a5c9-8228-8d3dde5df3b4", "968ea8f8-3806-b5c9-8228-8d3dde5df3b4",
		"60e82827a270070cfbda38c6f30f478a", "xxxxxxxx-xxxx-9xxx-xxxx-xxxxxxxxxxxx", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		envoy, shape, reason := IsEnvoyUUID(s), IsUUIDShape(s), EnvoyTraceReason(s)
		if envoy != (len(s) == 36) {
			t.Fatalf("%q: IsEnvoyUUID %v", s, envoy)
		}
		if shape && !envoy {
			t.Fatalf("%q: UUID shape but not Envoy length", s)
		}
		if reason != "" && !envoy {
			t.Fatalf("%q: reason %q without UUID length", s, reason)
		}
		switch reason {
		case "":
			if envoy && (s[14] == '9' || s[14] == 'a' || s[14] == 'b') {
				t.Fatalf("%q: missed reason", s)
			}
		case "sampled", "forced", "client":
		default:
			t.Fatalf("%q: unknown reason %q", s, reason)
		}
	})
}

func FuzzSetBaggageMember(f *testing.F) {
	f.Add("", "k", "v")
	f.Add("a=1,k=old;p,b=2", "k", "new value%")
	f.Add("k=1,a=2,k=3", "k", "")
	f.Add(" a = 1 , b=2;x", "c", "Amélie")
	f.Add("a=1,,b=2", "a", ",;\"\\")
	f.Add("not baggage", "k", "v")
	f.Add("a=1", "bad key", "v")
	f.Fuzz(func(t *testing.T, existing, key, value string) {
		out := SetBaggageMember(existing, key, value)
		const lots = 1 << 30
		if !IsBaggageKey(key) || ValidateBaggage(existing, lots, lots) != OK {
			return // garbage in: only "no panic" is promised
		}
		if p := ValidateBaggage(out, lots, lots); p != OK {
			t.Fatalf("SetBaggageMember(%q, %q, %q) = %q: %v", existing, key, value, out, p)
		}
		if vals := baggageValues(out, key); len(vals) != 1 || vals[0] != value {
			t.Fatalf("SetBaggageMember(%q, %q, %q) = %q: values %q", existing, key, value, out, vals)
		}
		// Other members keep their order and content.
		var before, after []string
		for _, m := range strings.Split(existing, ",") {
			if m = trimOWS(m); m != "" {
				if k, _, _ := strings.Cut(m, "="); trimOWS(k) != key {
					before = append(before, m)
				}
			}
		}
		for _, m := range strings.Split(out, ",") {
			if k, _, _ := strings.Cut(m, "="); k != key {
				after = append(after, m)
			}
		}
		if strings.Join(before, ",") != strings.Join(after, ",") {
			t.Fatalf("SetBaggageMember(%q, %q, %q) = %q changed other members", existing, key, value, out)
		}
	})
}
