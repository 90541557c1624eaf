package engine

import (
	"net/netip"
	"testing"
)

// TestTracerFormatWins: behind a tracing Envoy, the tracer's format is the
// one the router rewrote on this hop; another format naming another span is
// stale (e.g. a traceparent translated on the previous hop, seen by an
// upstream filter after a Zipkin router injected fresh x-b3-*).
func TestTracerFormatWins(t *testing.T) {
	const stale = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	in := testHeaders{
		"traceparent":  {stale},
		"x-b3-traceid": {"4bf92f3577b34da6a3ce929d0e0e4736"}, "x-b3-spanid": {"1111111111111111"},
		"x-b3-parentspanid": {"00f067aa0ba902b7"}, "x-b3-sampled": {"1"},
	}
	cases := []struct {
		policy   string
		wantSpan string
	}{
		{`{"host":{"tracer":"zipkin"}}`, "1111111111111111"},
		{`{"host":{"tracer":"opentelemetry"}}`, "00f067aa0ba902b7"},
		{`{}`, "00f067aa0ba902b7"}, // unknown tracer: read precedence (w3c first)
		{`{"host":{"tracer":"zipkin","tracing":false}}`, "00f067aa0ba902b7"},
	}
	for _, tc := range cases {
		e := mustEngine(t, tc.policy, nil)
		var st Stream
		var res Result
		e.OnRequest(&st, &Request{Headers: in, Direction: Inbound}, &res)
		if got := res.Context.SpanID.String(); got != tc.wantSpan {
			t.Errorf("%s: context span %s, want %s", tc.policy, got, tc.wantSpan)
		}
		out := in.apply(&res)
		if out["x-b3-spanid"][0] != tc.wantSpan || out["traceparent"][0][36:52] != tc.wantSpan {
			t.Errorf("%s: formats not made consistent: %v", tc.policy, out)
		}
	}
	if _, err := LoadPolicy([]byte(`{"read":["w3c"],"host":{"tracer":"zipkin"}}`), nil); err == nil {
		t.Error("a tracer whose format is not read was accepted")
	}
}

func TestTrustedPrincipal(t *testing.T) {
	e := mustEngine(t, `{"trust":{"untrustedDirections":["inbound"],"action":"strip","trustedPrincipals":["spiffe://cluster.local/ns/edge/sa/gateway","spiffe://cluster.local/ns/prod/*"]}}`, nil)
	h := testHeaders{"traceparent": {inboundTP}, "x-envoy-force-trace": {"true"}}
	cases := []struct {
		principal string
		stripped  bool
	}{
		{"", true},
		{"spiffe://cluster.local/ns/edge/sa/gateway", false},
		{"spiffe://cluster.local/ns/edge/sa/other", true},
		{"spiffe://cluster.local/ns/prod/sa/anything", false},
		{"spiffe://cluster.local/ns/production/sa/x", true},
	}
	for _, tc := range cases {
		var st Stream
		var res Result
		e.OnRequest(&st, &Request{Headers: h, Direction: Inbound, Source: netip.MustParseAddr("10.0.0.1"), PeerPrincipal: tc.principal}, &res)
		if got := res.Decisions.Has(DecisionStripped); got != tc.stripped {
			t.Errorf("principal %q: stripped=%v, want %v", tc.principal, got, tc.stripped)
		}
	}
	if _, err := LoadPolicy([]byte(`{"trust":{"trustedPrincipals":["*"]}}`), nil); err == nil {
		t.Error(`trustedPrincipals ["*"] accepted`)
	}
}
