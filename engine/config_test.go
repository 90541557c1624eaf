package engine

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestLoadPolicyErrorsNameTheField(t *testing.T) {
	env := func(k string) string {
		if k == "SECRET_OK" {
			return "0123456789abcdef0123"
		}
		return ""
	}
	cases := []struct {
		name string
		doc  string
		want []string // substrings, each must appear
	}{
		{"ttl not a duration", `{"correlation":{"ttl":"thirty"}}`, []string{`correlation.ttl: must be a positive duration like "30s", got "thirty"`}},
		{"unknown top-level field", `{"reed":["w3c"]}`, []string{"reed: unknown field"}},
		{"unknown nested field", `{"inject":{"sampled":true}}`, []string{"inject.sampled: unknown field"}},
		{"wrong type", `{"correlation":{"capacity":"big"}}`, []string{`correlation.capacity: must be a whole number, got "big"`}},
		{"fractional int", `{"correlation":{"capacity":1.5}}`, []string{"correlation.capacity: must be a whole number"}},
		{"list expected", `{"read":"w3c"}`, []string{`read: must be a list, got "w3c"`}},
		{"unknown format", `{"emit":["w3c","zipkin"]}`, []string{`emit[1]: unknown format "zipkin"`}},
		{"duplicate format", `{"read":["w3c","w3c"]}`, []string{`read[1]: format "w3c" listed twice`}},
		{"bad invalid action", `{"invalid":"fix"}`, []string{`invalid: must be "repair", "restart", "reject" or "pass", got "fix"`}},
		{"bad direction", `{"direction":"east"}`, []string{"direction: must be"}},
		{"bad sampling", `{"inject":{"sampling":"maybe"}}`, []string{"inject.sampling: must be"}},
		{"bad cidr", `{"trust":{"untrustedCIDRs":["10.0.0.0/33"]}}`, []string{"trust.untrustedCIDRs[0]: must be a CIDR"}},
		{"bad trust action", `{"trust":{"action":"drop"}}`, []string{"trust.action: must be"}},
		{"short secret", `{"trust":{"debugToken":{"secret":"short"}}}`, []string{"trust.debugToken.secret: must be at least 16 characters"}},
		{"missing secret env", `{"trust":{"debugToken":{"secretEnv":"NOPE"}}}`, []string{`trust.debugToken.secretEnv: environment variable "NOPE" is empty or unset`}},
		{"empty trusted header value", `{"trust":{"trustedHeader":{"name":"x-internal","value":""}}}`, []string{"trust.trustedHeader.value: must not be empty"}},
		{"bad strategy", `{"correlation":{"strategies":["guess"]}}`, []string{`correlation.strategies[0]: must be "key", "narrowed" or "soleInFlight"`}},
		{"narrowed without headers", `{"correlation":{"strategies":["narrowed"],"narrowHeaders":[]}}`, []string{`correlation.narrowHeaders: must name at least one header when the "narrowed" strategy is on`}},
		{"narrow header invalid", `{"correlation":{"strategies":["narrowed"],"narrowHeaders":["authorization","bad header"]}}`, []string{`correlation.narrowHeaders[1]: must be a plain HTTP header name, got "bad header"`}},
		{"narrow header host", `{"correlation":{"strategies":["narrowed"],"narrowHeaders":["host"]}}`, []string{`correlation.narrowHeaders[0]: must be a plain HTTP header name`}},
		{"narrow header pseudo", `{"correlation":{"narrowHeaders":[":authority"]}}`, []string{`correlation.narrowHeaders[0]: must be a plain HTTP header name`}},
		{"narrow header is a trace header", `{"correlation":{"strategies":["narrowed"],"narrowHeaders":["traceparent"]}}`, []string{`correlation.narrowHeaders[0]: must not be a trace header`}},
		{"narrow header twice", `{"correlation":{"strategies":["narrowed"],"narrowHeaders":["Cookie","cookie"]}}`, []string{`correlation.narrowHeaders[1]: is listed twice: "cookie"`}},
		{"too many narrow headers", `{"correlation":{"strategies":["narrowed"],"narrowHeaders":["a","b","c","d","e","f","g","h","i"]}}`, []string{`correlation.narrowHeaders: must list at most 8 headers, got 9`}},
		{"narrow headers not a list", `{"correlation":{"narrowHeaders":"authorization"}}`, []string{`correlation.narrowHeaders: must be a list`}},
		{"key strategy without keys", `{"correlation":{"keyHeaders":[]}}`, []string{"correlation.keyHeaders: must name at least one header"}},
		{"capacity too big", `{"correlation":{"capacity":2000000}}`, []string{"correlation.capacity: must be between 1 and 1048576"}},
		{"restore pseudo header", `{"correlation":{"restoreHeaders":[":authority"]}}`, []string{"correlation.restoreHeaders[0]: must be a plain HTTP header name"}},
		{"tag without source", `{"tags":[{"name":"t","from":{},"to":["header"]}]}`, []string{"tags[0].from: must set exactly one of"}},
		{"tag with two sources", `{"tags":[{"name":"t","from":{"header":"a","query":"b"},"to":["header"]}]}`, []string{"tags[0].from: must set exactly one of"}},
		{"tag bad sink", `{"tags":[{"name":"t","from":{"header":"a"},"to":["span"]}]}`, []string{`tags[0].to[0]: must be "header", "baggage", "filterState" or "metadata", got "span"`}},
		{"tag bad regex", `{"tags":[{"name":"t","from":{"path":{"regex":"(["}},"to":["header"]}]}`, []string{"tags[0].from.path.regex: does not compile"}},
		{"tag regex backreference", `{"tags":[{"name":"t","from":{"path":{"regex":"^/(a)\\1"}},"to":["header"]}]}`, []string{"tags[0].from.path.regex: does not compile: error parsing regexp: invalid escape sequence: `\\1`"}},
		{"tag group out of range", `{"tags":[{"name":"t","from":{"path":{"regex":"^/a/([^/]+)","group":2}},"to":["header"]}]}`, []string{"tags[0].from.path.group: must be between 0 and 1"}},
		{"tag duplicate name", `{"tags":[{"name":"t","from":{"header":"a"},"to":["header"]},{"name":"t","from":{"header":"b"},"to":["header"]}]}`, []string{`tags[1].name: duplicate tag name "t"`}},
		{"tag bad name", `{"tags":[{"name":"a b","from":{"header":"a"},"to":["header"]}]}`, []string{"tags[0].name: must be a non-empty token"}},
		{"tag jwt without claim", `{"tags":[{"name":"t","from":{"jwt":{}},"to":["header"]}]}`, []string{"tags[0].from.jwt.claim: must name a claim"}},
		{"tag maxLength", `{"tags":[{"name":"t","from":{"header":"a"},"to":["header"],"maxLength":5000}]}`, []string{"tags[0].maxLength: must be between 1 and 4096"}},
		{"response header name", `{"responseHeader":{"format":"traceresponse","name":"bad name"}}`, []string{"responseHeader.name: must be a valid HTTP header name"}},
		{"response header format", `{"responseHeader":{"format":"server-timing"}}`, []string{`responseHeader.format: must be "serverTiming" or "traceresponse", got "server-timing"`}},
		{"response header bad name, format implied", `{"responseHeader":{"name":"bad name"}}`, []string{"responseHeader.name: must be a valid HTTP header name"}},
		{"response header name with serverTiming", `{"responseHeader":{"format":"serverTiming","name":"x-trace"}}`, []string{`responseHeader.name: names the header of format "traceresponse"`}},
		{"placement", `{"host":{"placement":"sideways"}}`, []string{"host.placement: must be"}},
		{"negative baggage", `{"baggage":{"maxBytes":-1}}`, []string{"baggage.maxBytes: must not be negative"}},
		{"not an object", `[1,2]`, []string{"the policy must be an object, got a list"}},
		{"not json", `{"read":`, []string{"not valid JSON"}},
		{"several at once", `{"foo":1,"correlation":{"ttl":"x"},"read":["nope"]}`, []string{"foo: unknown field", "correlation.ttl:", "read[0]: unknown format"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadPolicy([]byte(tc.doc), env)
			if err == nil {
				t.Fatalf("policy %s accepted, want errors %q", tc.doc, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadPolicyAcceptsValidDocuments(t *testing.T) {
	env := func(k string) string {
		return map[string]string{"SECRET_OK": "0123456789abcdef0123", "REGION": "eu"}[k]
	}
	docs := []string{
		``,
		`{}`,
		`{"read":["b3multi"],"emit":["b3multi","w3c"],"invalid":"reject"}`,
		`{"direction":"outbound","correlation":{"strategies":["key","soleInFlight"],"ttl":"2m","capacity":10}}`,
		`{"correlation":{"strategies":[]}}`,
		`{"trust":{"untrustedDirections":["inbound"],"untrustedCIDRs":["0.0.0.0/0","::/0","192.0.2.1"],"action":"restart","trustedHeader":{"name":"X-Internal","value":"yes"},"debugToken":{"secretEnv":"SECRET_OK","maxTTL":"10m"}}}`,
		`{"tags":[{"name":"region","from":{"env":"REGION"},"to":["header","baggage","filterState","metadata"]},{"name":"route","from":{"path":{"regex":"^/api/([a-z]+)","group":1}},"to":["metadata"]},{"name":"plan","from":{"jwt":{"claim":"org.plan"}},"to":["header"],"maxLength":32,"directions":["inbound"]}]}`,
		`{"responseHeader":{"enabled":false},"host":{"placement":"upstream","tracing":false},"baggage":{"maxMembers":8,"maxBytes":1024}}`,
	}
	for _, d := range docs {
		if _, err := LoadPolicy([]byte(d), env); err != nil {
			t.Errorf("policy %s rejected: %v", d, err)
		}
	}
}

func TestDefaultPolicyRoundTrips(t *testing.T) {
	out, err := json.MarshalIndent(DefaultPolicy(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPolicy(out, nil); err != nil {
		t.Fatalf("printed default policy does not load: %v\n%s", err, out)
	}
}
