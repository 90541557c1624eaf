package propagation

import (
	"strconv"
	"strings"
	"testing"
)

func baggageMembers(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("k")
		b.WriteString(strconv.Itoa(i))
		b.WriteString("=v")
	}
	return b.String()
}

func TestValidateBaggage(t *testing.T) {
	tchars := "!#$%&'*+-.^_`|~09azAZ"
	var octets strings.Builder // every baggage-octet, BG §3.3.1
	for c := 0x21; c <= 0x7e; c++ {
		if c != '"' && c != ',' && c != ';' && c != '\\' {
			octets.WriteByte(byte(c))
		}
	}
	tests := []struct {
		name       string
		in         string
		maxM, maxB int
		want       Problem
	}{
		{"empty", "", 0, 0, OK},
		{"whitespace only", "  \t", 0, 0, OK},
		{"one", "userId=alice", 0, 0, OK},
		// BG §3.3.1 example and BG "Examples of HTTP headers".
		{"spec example", "key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue", 0, 0, OK},
		{"percent-encoded", "userId=Am%C3%A9lie,serverNode=DF%2028,isProduction=false", 0, 0, OK},
		{"spaces around", "userId =   alice", 0, 0, OK},
		{"empty value", "k=", 0, 0, OK},
		{"empty value OWS", "k = ", 0, 0, OK},
		{"equals in value", "k=a=b==", 0, 0, OK},
		{"all tchars key", tchars + "=1", 0, 0, OK},
		{"all octets value", "k=" + octets.String(), 0, 0, OK},
		{"duplicate keys allowed", "k=1,k=2", 0, 0, OK},
		{"property without value", "k=v;p", 0, 0, OK},
		{"property empty value", "k=v;p=", 0, 0, OK},
		{"properties with OWS", "k=v ; p = 1 ;q", 0, 0, OK},

		{"no equals", "k", 0, 0, ProblemValue},
		{"empty key", "=v", 0, 0, ProblemKey},
		{"key with space", "k k=v", 0, 0, ProblemKey},
		{"key with at", "a@b=v", 0, 0, ProblemKey},
		{"key with slash", "a/b=v", 0, 0, ProblemKey},
		{"key non-ascii", "caf\xc3\xa9=v", 0, 0, ProblemKey},
		{"value with space", "k=a b", 0, 0, ProblemValue},
		{"value with dquote", "k=a\"b", 0, 0, ProblemValue},
		{"value with backslash", "k=a\\b", 0, 0, ProblemValue},
		{"value with tab", "k=a\tb", 0, 0, ProblemValue},
		{"value non-ascii", "k=Am\xc3\xa9lie", 0, 0, ProblemValue},
		{"value DEL", "k=\x7f", 0, 0, ProblemValue},
		{"empty member", "a=1,,b=2", 0, 0, ProblemValue},
		{"trailing comma", "a=1,", 0, 0, ProblemValue},
		{"leading comma", ",a=1", 0, 0, ProblemValue},
		{"whitespace member", "a=1, ,b=2", 0, 0, ProblemValue},
		{"trailing semicolon", "k=v;", 0, 0, ProblemKey},
		{"empty property", "k=v;;p", 0, 0, ProblemKey},
		{"property empty key", "k=v;=x", 0, 0, ProblemKey},
		{"property bad key", "k=v;p q", 0, 0, ProblemKey},
		{"property bad value", "k=v;p=a b", 0, 0, ProblemValue},

		// Limits (BG §3.3.2): defaults 64 members, 8192 bytes.
		{"64 members", baggageMembers(64), 0, 0, OK},
		{"65 members", baggageMembers(65), 0, 0, ProblemTooManyMembers},
		{"custom 2 members ok", baggageMembers(2), 2, 0, OK},
		{"custom 2 members", baggageMembers(3), 2, 0, ProblemTooManyMembers},
		{"custom 180 members", baggageMembers(180), 1000, 0, OK},
		{"8192 bytes", "k=" + strings.Repeat("v", 8190), 0, 0, OK},
		{"8193 bytes", "k=" + strings.Repeat("v", 8191), 0, 0, ProblemTooLong},
		{"custom 10 bytes", "k=12345678", 0, 10, OK},
		{"custom 10 bytes over", "k=123456789", 0, 10, ProblemTooLong},
		{"custom larger than default", "k=" + strings.Repeat("v", 10000), 0, 20000, OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidateBaggage(tt.in, tt.maxM, tt.maxB); got != tt.want {
				t.Fatalf("ValidateBaggage(%q, %d, %d) = %v, want %v", tt.in, tt.maxM, tt.maxB, got, tt.want)
			}
		})
	}
}

func TestIsBaggageKey(t *testing.T) {
	for _, k := range []string{"k", "userId", "a.b", "x-y_z", "!#$%&'*+-.^_`|~"} {
		if !IsBaggageKey(k) {
			t.Errorf("IsBaggageKey(%q) = false", k)
		}
	}
	for _, k := range []string{"", "a b", "a=b", "a,b", "a;b", "a\"b", "a(b)", "a@b", "é"} {
		if IsBaggageKey(k) {
			t.Errorf("IsBaggageKey(%q) = true", k)
		}
	}
}

// percentDecode is the test's own RFC 3986 §2.1 decoder.
func percentDecode(s string) (string, bool) {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b = append(b, byte(n))
		i += 2
	}
	return string(b), true
}

func TestAppendBaggageValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"alice", "alice"},
		{"DF 28", "DF%2028"}, // BG "Examples of HTTP headers"
		{"Amélie", "Am%C3%A9lie"},
		{"50%", "50%25"},
		{"a=b", "a=b"},
		{`,;"\`, "%2C%3B%22%5C"},
		{"\x00\t\n\x7f\xff", "%00%09%0A%7F%FF"},
		{"value 1 / blah", "value%201%20/%20blah"},
	}
	for _, tt := range tests {
		got := string(AppendBaggageValue(nil, tt.in))
		if got != tt.want {
			t.Errorf("AppendBaggageValue(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if ValidateBaggage("k="+got, 0, 1<<20) != OK {
			t.Errorf("encoded %q is not a valid baggage value", got)
		}
		if dec, ok := percentDecode(got); !ok || dec != tt.in {
			t.Errorf("decode(%q) = %q, %v; want %q", got, dec, ok, tt.in)
		}
	}
	// Every byte value round-trips.
	var all []byte
	for c := 0; c < 256; c++ {
		all = append(all, byte(c))
	}
	enc := string(AppendBaggageValue([]byte("k="), string(all)))
	if ValidateBaggage(enc, 0, 1<<20) != OK {
		t.Fatalf("all bytes: invalid %q", enc)
	}
	if dec, _ := percentDecode(enc[2:]); dec != string(all) {
		t.Fatalf("all bytes: round trip failed")
	}
}

func TestSetBaggageMember(t *testing.T) {
	tests := []struct {
		name, existing, key, value, want string
	}{
		{"append to empty", "", "k", "v", "k=v"},
		{"append to whitespace", "  ", "k", "v", "k=v"},
		{"append", "a=1", "k", "v", "a=1,k=v"},
		{"append two", "a=1,b=2", "k", "v", "a=1,b=2,k=v"},
		{"replace first", "k=old,a=1", "k", "new", "k=new,a=1"},
		{"replace middle", "a=1,k=old,b=2", "k", "new", "a=1,k=new,b=2"},
		{"replace last", "a=1,k=old", "k", "new", "a=1,k=new"},
		{"replace drops properties", "a=1,k=old;p;q=1,b=2", "k", "new", "a=1,k=new,b=2"},
		{"replace with OWS", " a=1 , k = old ", "k", "new", "a=1,k=new"},
		{"keeps other properties", "a=1;p,k=old", "k", "new", "a=1;p,k=new"},
		{"removes later duplicates", "k=1,a=2,k=3,k=4", "k", "9", "k=9,a=2"},
		{"drops empty members", "a=1,,b=2", "c", "3", "a=1,b=2,c=3"},
		{"encodes value", "a=1", "k", "x y%", "a=1,k=x%20y%25"},
		{"empty value", "a=1", "k", "", "a=1,k="},
		{"prefix key is another key", "kk=1", "k", "v", "kk=1,k=v"},
		{"case-sensitive keys", "K=1", "k", "v", "K=1,k=v"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SetBaggageMember(tt.existing, tt.key, tt.value)
			if got != tt.want {
				t.Fatalf("SetBaggageMember(%q, %q, %q) = %q, want %q", tt.existing, tt.key, tt.value, got, tt.want)
			}
			if ValidateBaggage(got, 0, 0) != OK {
				t.Fatalf("result %q is not valid baggage", got)
			}
		})
	}
}
