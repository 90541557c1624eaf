package engine

import (
	"net/netip"
	"strings"
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
		{`{"host":{"tracer":"zipkin-w3c"}}`, "1111111111111111"}, // B3 is read first
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

// TestZipkinW3CTracerOwnsTraceparent: with USE_B3_WITH_W3C_PROPAGATION the
// Zipkin tracer falls back to traceparent and writes it on every hop, so a
// traceparent is fresh even when read precedence puts another format first;
// for the plain Zipkin tracer it is just one more format.
func TestZipkinW3CTracerOwnsTraceparent(t *testing.T) {
	in := testHeaders{
		"uber-trace-id": {"4bf92f3577b34da6a3ce929d0e0e4736:2222222222222222:0:1"},
		"traceparent":   {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	}
	cases := []struct {
		policy   string
		wantSpan string
	}{
		{`{"read":["jaeger","w3c","b3multi"],"host":{"tracer":"zipkin-w3c"}}`, "00f067aa0ba902b7"},
		{`{"read":["jaeger","w3c","b3multi"],"host":{"tracer":"zipkin"}}`, "2222222222222222"},
		{`{"read":["jaeger","w3c","b3multi"],"host":{"tracer":"zipkin-w3c","tracing":false}}`, "2222222222222222"},
	}
	for _, tc := range cases {
		e := mustEngine(t, tc.policy, nil)
		var st Stream
		var res Result
		e.OnRequest(&st, &Request{Headers: in, Direction: Inbound}, &res)
		if got := res.Context.SpanID.String(); got != tc.wantSpan {
			t.Errorf("%s: context span %s, want %s", tc.policy, got, tc.wantSpan)
		}
	}
	for _, bad := range []string{
		`{"read":["b3multi"],"host":{"tracer":"zipkin-w3c"}}`,
		`{"read":["w3c"],"host":{"tracer":"zipkin-w3c"}}`,
	} {
		if _, err := LoadPolicy([]byte(bad), nil); err == nil || !strings.Contains(err.Error(), "host.tracer") {
			t.Errorf("%s: got %v, want a host.tracer error", bad, err)
		}
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
