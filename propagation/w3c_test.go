package propagation

import (
	"fmt"
	"strings"
	"testing"
)

// Identifiers used across the tests (the W3C examples' values).
const (
	tTrace   = "4bf92f3577b34da6a3ce929d0e0e4736"
	tSpan    = "00f067aa0ba902b7"
	tParent  = "05e3ac9a4f6e3b90"
	tTrace64 = "463ac35c9f6413ad"
	zero32   = "00000000000000000000000000000000"
	zero16   = "0000000000000000"
)

func tp(version, trace, span, flags string) string {
	return version + "-" + trace + "-" + span + "-" + flags
}

func TestParseTraceparent(t *testing.T) {
	valid := tp("00", tTrace, tSpan, "01")
	tests := []struct {
		name string
		in   string
		want Problem
		samp Sampling // checked when want == OK
	}{
		// TC §3.2.3 examples.
		{"sampled", valid, OK, SamplingAccept},
		{"not sampled", tp("00", tTrace, tSpan, "00"), OK, SamplingDeny},
		// TC §3.2.2.5: only the sampled bit counts; other bits are ignored.
		{"flags 09", tp("00", tTrace, tSpan, "09"), OK, SamplingAccept},
		// TC2 "Random Trace ID Flag" (0x02), alone and with sampled.
		{"flags 02", tp("00", tTrace, tSpan, "02"), OK, SamplingDeny},
		{"flags 03", tp("00", tTrace, tSpan, "03"), OK, SamplingAccept},
		{"flags 08", tp("00", tTrace, tSpan, "08"), OK, SamplingDeny},
		{"flags ff", tp("00", tTrace, tSpan, "ff"), OK, SamplingAccept},
		{"flags fe", tp("00", tTrace, tSpan, "fe"), OK, SamplingDeny},
		// OWS around the value (TC test test_traceparent_ows_handling).
		{"leading space", " " + valid, OK, SamplingAccept},
		{"leading tab", "\t" + valid, OK, SamplingAccept},
		{"trailing space", valid + " ", OK, SamplingAccept},
		{"trailing tab", valid + "\t", OK, SamplingAccept},
		{"both OWS", "\t " + valid + " \t", OK, SamplingAccept},
		{"inner space", tp("00", tTrace, tSpan, " 1"), ProblemFlags, 0},
		{"newline is not OWS", valid + "\n", ProblemLength, 0},

		// Lengths.
		{"empty", "", ProblemEmpty, 0},
		{"only OWS", " \t ", ProblemEmpty, 0},
		{"one char", "0", ProblemLength, 0},
		{"54 chars", valid[:54], ProblemLength, 0},
		{"version 00 trailing char", valid + ".", ProblemLength, 0},
		{"version 00 trailing fields", valid + "-what-the-future-will-be-like", ProblemLength, 0},
		{"version 00 trailing dash", valid + "-", ProblemLength, 0},
		{"version too long", "0" + valid, ProblemDelimiter, 0},
		{"version four digits", "00" + valid, ProblemDelimiter, 0},
		{"version too short", valid[1:], ProblemLength, 0},
		{"trace id too long", tp("00", tTrace+"3", tSpan, "01"), ProblemDelimiter, 0},
		{"trace id too short", tp("00", tTrace[1:], tSpan, "01"), ProblemLength, 0},
		{"trace id short, padded by longer span", tp("00", tTrace[1:], tSpan+"a", "01"), ProblemDelimiter, 0},
		{"parent id too long", tp("00", tTrace, tSpan+"1", "01"), ProblemDelimiter, 0},
		{"parent id too short", tp("00", tTrace, tSpan[1:], "01"), ProblemLength, 0},
		{"flags too long", tp("00", tTrace, tSpan, "001"), ProblemLength, 0},
		{"flags too short", tp("00", tTrace, tSpan, "1"), ProblemLength, 0},

		// Delimiters (TC §3.2.2: "-" between fields).
		{"underscore after version", "00_" + valid[3:], ProblemDelimiter, 0},
		{"underscore after trace id", valid[:35] + "_" + valid[36:], ProblemDelimiter, 0},
		{"underscore after parent id", valid[:52] + "_" + valid[53:], ProblemDelimiter, 0},

		// Illegal characters in each field (TC §3.2.2.1-5: HEXDIGLC).
		{"version .0", "." + valid[1:], ProblemVersion, 0},
		{"version 0.", "0." + valid[2:], ProblemVersion, 0},
		{"version upper", "0A" + valid[2:], ProblemVersion, 0},
		{"version upper FF", "FF" + valid[2:], ProblemVersion, 0},
		{"trace id first char", tp("00", "."+tTrace[1:], tSpan, "01"), ProblemHex, 0},
		{"trace id last char", tp("00", tTrace[:31]+".", tSpan, "01"), ProblemHex, 0},
		{"trace id g", tp("00", "g"+tTrace[1:], tSpan, "01"), ProblemHex, 0},
		{"trace id upper", tp("00", strings.ToUpper(tTrace), tSpan, "01"), ProblemUppercase, 0},
		{"trace id one upper", tp("00", tTrace[:31]+"F", tSpan, "01"), ProblemUppercase, 0},
		{"parent id first char", tp("00", tTrace, "."+tSpan[1:], "01"), ProblemHex, 0},
		{"parent id last char", tp("00", tTrace, tSpan[:15]+".", "01"), ProblemHex, 0},
		{"parent id upper", tp("00", tTrace, "00F067AA0BA902B7", "01"), ProblemUppercase, 0},
		{"flags .0", tp("00", tTrace, tSpan, ".0"), ProblemFlags, 0},
		{"flags 0.", tp("00", tTrace, tSpan, "0."), ProblemFlags, 0},
		{"flags upper", tp("00", tTrace, tSpan, "0A"), ProblemFlags, 0},
		{"flags non-ascii", tp("00", tTrace, tSpan, "0\xff"), ProblemFlags, 0},

		// Versions (TC §3.2.2.1, §3.2.4).
		{"version ff", tp("ff", tTrace, tSpan, "01"), ProblemVersionFF, 0},
		{"version ff longer", tp("ff", tTrace, tSpan, "01") + "-x", ProblemVersionFF, 0},
		{"version 01", tp("01", tTrace, tSpan, "01"), OK, SamplingAccept},
		{"version cc", tp("cc", tTrace, tSpan, "01"), OK, SamplingAccept},
		{"version fe", tp("fe", tTrace, tSpan, "00"), OK, SamplingDeny},
		{"future with fields", tp("cc", tTrace, tSpan, "01") + "-what-the-future-will-be-like", OK, SamplingAccept},
		{"future with dash only", tp("cc", tTrace, tSpan, "01") + "-", OK, SamplingAccept},
		{"future flags 03", tp("cc", tTrace, tSpan, "03") + "-ab", OK, SamplingAccept},
		{"future with dot", tp("cc", tTrace, tSpan, "01") + ".what-the-future-will-be-like", ProblemDelimiter, 0},
		{"future longer flags", tp("cc", tTrace, tSpan, "011"), ProblemDelimiter, 0},
		{"future short", tp("cc", tTrace, tSpan, "01")[:54], ProblemLength, 0},
		{"future upper trace id", tp("cc", strings.ToUpper(tTrace), tSpan, "01"), ProblemUppercase, 0},
		{"future zero trace id", tp("cc", zero32, tSpan, "01") + "-x", ProblemZeroTraceID, 0},
		{"future zero parent id", tp("cc", tTrace, zero16, "01") + "-x", ProblemZeroSpanID, 0},
		{"future bad delimiter", "cc_" + tp("cc", tTrace, tSpan, "01")[3:], ProblemDelimiter, 0},

		// All-zero ids (TC §3.2.2.3, §3.2.2.4).
		{"zero trace id", tp("00", zero32, tSpan, "01"), ProblemZeroTraceID, 0},
		{"zero parent id", tp("00", tTrace, zero16, "01"), ProblemZeroSpanID, 0},
		{"both zero", tp("00", zero32, zero16, "00"), ProblemZeroTraceID, 0},
		{"trace id zero but last", tp("00", zero32[:31]+"1", tSpan, "01"), OK, SamplingAccept},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, p := ParseTraceparent(tt.in)
			if p != tt.want {
				t.Fatalf("ParseTraceparent(%q) = %v (%s), want %v (%s)", tt.in, p.Code(), p, tt.want.Code(), tt.want)
			}
			if p != OK {
				return
			}
			if !c.Valid() {
				t.Fatalf("valid parse gave invalid context %+v", c)
			}
			if c.Sampling != tt.samp {
				t.Errorf("sampling = %v, want %v", c.Sampling, tt.samp)
			}
			in := trimOWS(tt.in)
			if got := c.TraceID.String(); got != in[3:35] {
				t.Errorf("trace id = %s, want %s", got, in[3:35])
			}
			if got := c.SpanID.String(); got != in[36:52] {
				t.Errorf("span id = %s, want %s", got, in[36:52])
			}
			if !c.ParentSpanID.IsZero() || c.TraceID64 || c.TraceState != "" {
				t.Errorf("W3C carries no parent, 64-bit flag or tracestate: %+v", c)
			}
			// The random bit is read from version 00 only (TC2 "Versioning of
			// traceparent" reads only the sampled bit of a higher version).
			var flags byte
			fmt.Sscanf(in[53:55], "%02x", &flags)
			if want := in[:2] == "00" && flags&0x02 != 0; c.Random != want {
				t.Errorf("random = %v, want %v", c.Random, want)
			}
		})
	}
}

func TestAppendTraceparentFlags(t *testing.T) {
	for _, tt := range []struct {
		samp   Sampling
		random bool
		want   string
	}{
		{SamplingDeny, false, "00"}, {SamplingAccept, false, "01"}, {SamplingDebug, false, "01"}, {SamplingDefer, false, "00"},
		{SamplingDeny, true, "02"}, {SamplingAccept, true, "03"}, {SamplingDebug, true, "03"}, {SamplingDefer, true, "02"},
	} {
		c := SpanContext{TraceID: TraceID{15: 1}, SpanID: SpanID{7: 1}, Sampling: tt.samp, Random: tt.random}
		got := string(AppendTraceparent(nil, &c))
		if got[53:] != tt.want {
			t.Errorf("%v random=%v: %s, want flags %s", tt.samp, tt.random, got, tt.want)
		}
	}
}

func TestTraceparentVersion00(t *testing.T) {
	for in, want := range map[string]bool{
		tp("00", tTrace, tSpan, "01"): true, " " + tp("00", tTrace, tSpan, "01"): true,
		tp("cc", tTrace, tSpan, "01"): false, "0": false, "": false, "0x": false,
	} {
		if got := TraceparentVersion00(in); got != want {
			t.Errorf("TraceparentVersion00(%q) = %v", in, got)
		}
	}
}

func TestParseTraceparentHeader(t *testing.T) {
	valid := tp("00", tTrace, tSpan, "01")
	tests := []struct {
		name  string
		in    string
		count int
		want  Problem
	}{
		{"once", valid, 1, OK},
		{"twice", valid, 2, ProblemDuplicate},
		{"three times", valid, 3, ProblemDuplicate},
		{"twice, first invalid", tp("00", zero32, tSpan, "01"), 2, ProblemDuplicate},
		{"once invalid", tp("ff", tTrace, tSpan, "01"), 1, ProblemVersionFF},
		{"absent", "", 0, ProblemEmpty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, p := ParseTraceparentHeader(tt.in, tt.count)
			if p != tt.want {
				t.Fatalf("got %v, want %v", p, tt.want)
			}
			if p == ProblemDuplicate && c != (SpanContext{}) {
				t.Errorf("duplicate must not yield a context: %+v", c)
			}
		})
	}
}

func TestAppendTraceparentAndResponse(t *testing.T) {
	c, p := ParseTraceparent(tp("00", tTrace, tSpan, "01"))
	if p != OK {
		t.Fatal(p)
	}
	for _, tt := range []struct {
		s    Sampling
		want string
	}{
		{SamplingAccept, "01"}, {SamplingDebug, "01"}, {SamplingDeny, "00"}, {SamplingDefer, "00"},
	} {
		c.Sampling = tt.s
		want := tp("00", tTrace, tSpan, tt.want)
		if got := string(AppendTraceparent(nil, &c)); got != want {
			t.Errorf("AppendTraceparent(%v) = %s, want %s", tt.s, got, want)
		}
		if got := string(AppendTraceresponse(nil, &c)); got != want {
			t.Errorf("AppendTraceresponse(%v) = %s, want %s", tt.s, got, want)
		}
	}
	// Appends to the caller's buffer.
	if got := string(AppendTraceparent([]byte("x:"), &c)); got != "x:"+tp("00", tTrace, tSpan, "00") {
		t.Errorf("append to prefix: %s", got)
	}
}

func repeatMembers(n int, sep string) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		if i > 1 {
			b.WriteString(sep)
		}
		b.WriteString("bar")
		b.WriteByte(byte('a' + i/26))
		b.WriteByte(byte('a' + i%26))
		b.WriteString("=0")
	}
	return b.String()
}

func TestValidateTracestate(t *testing.T) {
	lc := "abcdefghijklmnopqrstuvwxyz"
	keyChars := lc + "0123456789_-*/"
	var val strings.Builder // every allowed value character, TC §3.3.1.3.2
	for c := 0x20; c <= 0x7e; c++ {
		if c != ',' && c != '=' {
			val.WriteByte(byte(c))
		}
	}
	allValue := val.String()
	tests := []struct {
		name string
		in   string
		want Problem
	}{
		{"empty", "", OK},
		{"whitespace only", " \t ", OK},
		{"only commas", ",,,", OK},
		{"one member", "foo=1", OK},
		{"two members", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", OK},
		{"OWS around members", "foo=1 \t , \t bar=2, \t baz=3", OK},
		{"OWS around single", "\t foo=1 \t", OK},
		{"empty members between", "foo=1,,  ,\t,bar=2", OK},
		{"trailing comma", "foo=1,", OK},
		{"leading comma", ",foo=1", OK},

		// 32 members (TC §3.3.1.1).
		{"32 members", repeatMembers(32, ","), OK},
		{"33 members", repeatMembers(33, ","), ProblemTooManyMembers},
		{"32 members and empties", ",," + repeatMembers(32, ", ,") + ",", OK},

		// 512 characters (TC §3.3.1.5, tracebridge's ceiling).
		{"512 chars", "k=" + strings.Repeat("v", 254) + ",l=" + strings.Repeat("v", 253), OK},
		{"513 chars", "k=" + strings.Repeat("v", 254) + ",l=" + strings.Repeat("v", 254), ProblemTooLong},

		// Keys (TC2 "Key": key = ( lcalpha / DIGIT ) 0*255( keychar ),
		// keychar includes "@"; TC tests test_tracestate_key_illegal_vendor_format
		// and test_tracestate_key_length_limit).
		{"all key chars", "a" + keyChars + "=1", OK},
		{"all key chars multi-tenant", "a" + keyChars + "@a" + keyChars[:13] + "=1", OK},
		{"key starts with digit", "1foo=1", OK},
		{"tenant starts with digit", "1foo@bar=1", OK},
		{"key space before =", "foo =1", ProblemKey},
		{"key upper", "FOO=1", ProblemKey},
		{"key dot", "foo.bar=1", ProblemKey},
		{"key starts with _", "_foo=1", ProblemKey},
		{"empty key", "=1", ProblemKey},
		{"no equals", "foo", ProblemKey},
		{"simple key 256", strings.Repeat("z", 256) + "=1", OK},
		{"simple key 257", strings.Repeat("z", 257) + "=1", ProblemKey},
		{"tenant 241 system 14", strings.Repeat("t", 241) + "@" + strings.Repeat("v", 14) + "=1", OK},
		{"tenant 242", strings.Repeat("t", 242) + "@v=1", OK},
		{"system 15", "t@" + strings.Repeat("v", 15) + "=1", OK},
		{"at key 257", strings.Repeat("t", 242) + "@" + strings.Repeat("v", 14) + "=1", ProblemKey},
		{"ends with at", "foo@=1,bar=2", OK},
		{"starts with at", "@foo=1,bar=2", ProblemKey},
		{"double at", "foo@@bar=1,bar=2", OK},
		{"two ats", "foo@bar@baz=1,bar=2", OK},
		{"at then digit", "t@1v=1", OK},
		{"at then upper", "t@V=1", ProblemKey},
		{"bad key after good", "foo=1,Bar=2", ProblemKey},

		// Values (TC §3.3.1.3.2).
		{"all value chars", "foo=" + allValue, OK},
		{"all value chars multi-tenant", "a" + keyChars + "@a=" + allValue, OK},
		{"value leading space", "foo= bar", OK},
		{"value inner space", "foo=b r", OK},
		{"value equals", "foo=bar=baz", ProblemValue},
		{"empty value", "foo=", ProblemValue},
		{"empty value then member", "foo=,bar=3", ProblemValue},
		{"value only spaces", "foo=   ,bar=3", ProblemValue},
		{"value tab", "foo=a\tb", ProblemValue},
		{"value newline", "foo=a\nb", ProblemValue},
		{"value DEL", "foo=a\x7fb", ProblemValue},
		{"value non-ascii", "foo=caf\xc3\xa9", ProblemValue},
		{"value 256", "foo=" + strings.Repeat("v", 256), OK},
		{"value 257", "foo=" + strings.Repeat("v", 257), ProblemValue},

		// Duplicate keys are forwarded (TC2 "Mutating the tracestate Field":
		// a vendor MAY discard them; TC test test_tracestate_duplicated_keys).
		{"duplicate same value", "foo=1,foo=1", OK},
		{"duplicate other value", "foo=1,foo=2", OK},
		{"duplicate combined headers", "foo=1, foo=2", OK},
		{"duplicate multi-tenant", "a@b=1,c=2,a@b=3", OK},
		{"same tenant other system", "a@b=1,a@c=2", OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidateTracestate(tt.in); got != tt.want {
				t.Fatalf("ValidateTracestate(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
