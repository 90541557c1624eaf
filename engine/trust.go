package engine

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"net/netip"
	"strconv"
	"strings"

	"github.com/tracebridge/tracebridge/propagation"
)

// UntrustedTraceIDTag names the tag that keeps a discarded client trace id.
const UntrustedTraceIDTag = "untrusted_trace_id"

// UntrustedTraceIDHeader is the request header the tag is written to.
const UntrustedTraceIDHeader = TagHeaderPrefix + "untrusted-trace-id"

// untrusted applies the policy's trust rules: a request is untrusted when its
// direction or source address is listed, unless its mTLS peer is a trusted
// principal or it carries the trusted header.
func (e *Engine) untrusted(dir Direction, src netip.Addr, principal string, h Headers) bool {
	c := e.cfg
	u := c.untrustedDirs[dir]
	if !u && src.IsValid() {
		src = src.Unmap()
		for _, p := range c.untrustedCIDRs {
			if p.Contains(src) {
				u = true
				break
			}
		}
	}
	if u && principal != "" {
		for _, p := range c.trustedPrincipals {
			if p == principal || strings.HasSuffix(p, "*") && strings.HasPrefix(principal, p[:len(p)-1]) {
				return false
			}
		}
	}
	if u && c.trustedHeader != nil {
		if v, n := h.Get(c.trustedHeader.Name); n == 1 && subtle.ConstantTimeCompare([]byte(v), []byte(c.trustedHeader.Value)) == 1 {
			return false
		}
	}
	return u
}

// debugTokenValid checks the debug-token header, if the request carries one
// (v, n from Headers.Get): "<unix-expiry>.<hex HMAC-SHA256(secret, expiry)>",
// unexpired, not further ahead than maxTTL, with a correct MAC.
func (e *Engine) debugTokenValid(v string, n int) bool {
	c := e.cfg
	if n != 1 {
		return false
	}
	exp, mac, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return false
	}
	now := e.unixNow()
	if unix <= now || unix-now > int64(c.debugMaxTTL.Seconds()) {
		return false
	}
	var got [sha256.Size]byte
	if len(mac) != 2*len(got) {
		return false
	}
	for i := range got {
		hi, lo := unhex(mac[2*i]), unhex(mac[2*i+1])
		if hi < 0 || lo < 0 {
			return false
		}
		got[i] = byte(hi<<4 | lo)
	}
	return hmac.Equal(got[:], DebugTokenMAC(c.debugSecret, exp))
}

// DebugTokenMAC computes the MAC of a debug token's expiry digits.
func DebugTokenMAC(secret []byte, expiry string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(expiry))
	return m.Sum(nil)
}

// MakeDebugToken builds a token valid until the given unix time.
func MakeDebugToken(secret []byte, expiryUnix int64) string {
	exp := strconv.FormatInt(expiryUnix, 10)
	const digits = "0123456789abcdef"
	b := []byte(exp + ".")
	for _, c := range DebugTokenMAC(secret, exp) {
		b = append(b, digits[c>>4], digits[c&15])
	}
	return string(b)
}

// untrustedTag keeps the client's trace id when the trace is restarted, so an
// operator can still find what the client claimed.
func (e *Engine) untrustedTag(res *Result, id propagation.TraceID) {
	v := id.String()
	res.Tags = append(res.Tags, Tag{Name: UntrustedTraceIDTag, Value: v, Sinks: SinkHeader | SinkMetadata | SinkFilterState})
	res.set(UntrustedTraceIDHeader, v)
	res.Decisions.add(DecisionTagged)
}

// stripOwned removes the headers only tracebridge writes from an untrusted
// request: a client could otherwise set span tags (Telemetry customTags read
// these headers) whenever a rule computes no value of its own.
func (e *Engine) stripOwned(h Headers, res *Result) {
	for _, name := range e.cfg.ownedHeaders {
		if _, n := h.Get(name); n > 0 {
			res.remove(name)
			res.Decisions.add(DecisionStripped)
		}
	}
}
