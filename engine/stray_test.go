package engine

import (
	"strings"
	"testing"
)

// TestStrayTracestateGoes: a traceparent tracebridge writes never travels
// with a tracestate that did not come with it (W3C Trace Context §3.3).
func TestStrayTracestateGoes(t *testing.T) {
	cases := []struct {
		name   string
		policy string
		req    testHeaders
		wantTS string
	}{
		{"no traceparent", `{}`, testHeaders{"tracestate": {"foo=1,bar=2"}}, ""},
		{"invalid stray (33 members)", `{}`, testHeaders{"tracestate": {ts33}}, ""},
		{"w3c not read", `{"read":["b3multi"]}`, testHeaders{"x-b3-traceid": {b3TraceID}, "x-b3-spanid": {b3SpanID}, "tracestate": {"foo=1"}}, ""},
		{"traceparent lost to the tracer's format", `{"host":{"tracer":"zipkin"}}`,
			testHeaders{"traceparent": {otherTP}, "tracestate": {"foo=1"}, "x-b3-traceid": {b3TraceID}, "x-b3-spanid": {b3SpanID}}, ""},
		{"own traceparent kept", `{}`, testHeaders{"traceparent": {inboundTP}, "tracestate": {"foo=1"}}, "foo=1"},
		{"no traceparent written", `{"emit":["b3multi"]}`, testHeaders{"tracestate": {"foo=1"}}, "foo=1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEngine(t, tc.policy, nil)
			var st Stream
			var res Result
			e.OnRequest(&st, &Request{Headers: tc.req, Direction: Inbound}, &res)
			got := tc.req.apply(&res)
			if ts := strings.Join(got["tracestate"], ","); ts != tc.wantTS {
				t.Errorf("tracestate = %q, want %q (traceparent %v)", ts, tc.wantTS, got["traceparent"])
			}
		})
	}
}
