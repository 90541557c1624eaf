package engine

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"
)

// refDebugToken builds a debug token with crypto/hmac, independently of
// MakeDebugToken: "<unix-expiry>.<hex HMAC-SHA256(secret, expiry digits)>".
func refDebugToken(secret string, expiry int64) string {
	exp := strconv.FormatInt(expiry, 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(exp))
	return exp + "." + hex.EncodeToString(m.Sum(nil))
}

// TestDebugToken: a valid token exempts an untrusted request from the trust
// action (here strip, seen as DecisionStripped); anything else does not, and
// the token header is never forwarded.
func TestDebugToken(t *testing.T) {
	const secret = "0123456789abcdef0123"
	now := time.Unix(1_700_000_000, 0)
	cfg, err := LoadPolicy([]byte(`{"trust":{"untrustedDirections":["inbound"],"action":"strip","debugToken":{"secret":"`+secret+`","maxTTL":"10m"}}}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := New(cfg, Options{Now: func() time.Time { return now }})
	valid := refDebugToken(secret, now.Unix()+60)
	exp, mac, _ := strings.Cut(valid, ".")
	cases := []struct {
		name   string
		tokens []string
		ok     bool
	}{
		{"valid", []string{valid}, true},
		{"upper-case hex", []string{exp + "." + strings.ToUpper(mac)}, true},
		{"at the longest TTL", []string{refDebugToken(secret, now.Unix()+600)}, true},
		{"beyond the longest TTL", []string{refDebugToken(secret, now.Unix()+601)}, false},
		{"expired now", []string{refDebugToken(secret, now.Unix())}, false},
		{"expired", []string{refDebugToken(secret, now.Unix()-1)}, false},
		{"other secret", []string{refDebugToken(secret+"x", now.Unix()+60)}, false},
		{"other expiry", []string{strconv.FormatInt(now.Unix()+61, 10) + "." + mac}, false},
		{"one bit flipped", []string{exp + "." + mac[:63] + string(mac[63]^1)}, false},
		{"truncated", []string{valid[:len(valid)-2]}, false},
		{"odd length", []string{valid[:len(valid)-1]}, false},
		{"extra byte", []string{valid + "00"}, false},
		{"not hex", []string{exp + "." + mac[:62] + "zz"}, false},
		{"no MAC", []string{exp + "."}, false},
		{"no dot", []string{exp + mac}, false},
		{"expiry not a number", []string{"x" + valid}, false},
		{"sent twice", []string{valid, valid}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := testHeaders{"traceparent": {inboundTP}, "x-envoy-force-trace": {"true"}, "x-tracebridge-debug": tc.tokens}
			var st Stream
			var res Result
			e.OnRequest(&st, &Request{Headers: h, Direction: Inbound}, &res)
			if stripped := res.Decisions.Has(DecisionStripped); stripped == tc.ok {
				t.Errorf("token %q: stripped=%v, want %v", tc.tokens, stripped, !tc.ok)
			}
			if _, kept := h.apply(&res)["x-tracebridge-debug"]; kept {
				t.Errorf("token %q forwarded", tc.tokens)
			}
		})
	}
}

func TestMakeDebugToken(t *testing.T) {
	for _, secret := range []string{"0123456789abcdef", strings.Repeat("k", 100)} {
		for _, exp := range []int64{0, 1_700_000_000, -5} {
			if got, want := MakeDebugToken([]byte(secret), exp), refDebugToken(secret, exp); got != want {
				t.Errorf("MakeDebugToken(%q, %d) = %s, want %s", secret, exp, got, want)
			}
		}
	}
}

// TestTrustedHeader: only the exact configured value, sent once, trusts a
// request.
func TestTrustedHeader(t *testing.T) {
	e := mustEngine(t, `{"trust":{"untrustedDirections":["inbound"],"action":"strip","trustedHeader":{"name":"X-Internal","value":"s3cret"}}}`, nil)
	cases := []struct {
		values  []string
		trusted bool
	}{
		{[]string{"s3cret"}, true},
		{nil, false},
		{[]string{""}, false},
		{[]string{"s3cre"}, false},
		{[]string{"s3cret "}, false},
		{[]string{"S3cret"}, false},
		{[]string{"s3cret", "s3cret"}, false},
	}
	for _, tc := range cases {
		h := testHeaders{"traceparent": {inboundTP}, "x-envoy-force-trace": {"true"}}
		if tc.values != nil {
			h["x-internal"] = tc.values
		}
		var st Stream
		var res Result
		e.OnRequest(&st, &Request{Headers: h, Direction: Inbound}, &res)
		if stripped := res.Decisions.Has(DecisionStripped); stripped == tc.trusted {
			t.Errorf("x-internal %q: stripped=%v, want %v", tc.values, stripped, !tc.trusted)
		}
	}
}

// TestDebugTokenReplayWindow: the same token is accepted again and again
// (nothing records its use), but only during the last maxTTL before its
// expiry, whatever TTL it was made with (docs/POLICY.md "Debug tokens").
func TestDebugTokenReplayWindow(t *testing.T) {
	const secret = "0123456789abcdef0123"
	cfg, err := LoadPolicy([]byte(`{"trust":{"untrustedDirections":["inbound"],"action":"strip","debugToken":{"secret":"`+secret+`","maxTTL":"10m"}}}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	const made = 1_700_000_000
	token := refDebugToken(secret, made+3600) // made with --ttl 1h
	for _, tc := range []struct {
		at int64
		ok bool
	}{
		{made, false}, {made + 2999, false}, {made + 3000, true}, {made + 3000, true},
		{made + 3300, true}, {made + 3599, true}, {made + 3600, false},
	} {
		now := time.Unix(tc.at, 0)
		e := New(cfg, Options{Now: func() time.Time { return now }})
		h := testHeaders{"traceparent": {inboundTP}, "x-envoy-force-trace": {"true"}, "x-tracebridge-debug": {token}}
		var st Stream
		var res Result
		e.OnRequest(&st, &Request{Headers: h, Direction: Inbound}, &res)
		if accepted := !res.Decisions.Has(DecisionStripped); accepted != tc.ok {
			t.Errorf("at made+%ds: accepted=%v, want %v", tc.at-made, accepted, tc.ok)
		}
	}
}
