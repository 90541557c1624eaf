package engine

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// TestOwnedHeadersComeFromTracebridge: a client's own x-tracebridge-* tag
// headers (and the untrusted trace id header) never pass an untrusted hop,
// whatever trust.action says; a trusted hop (in the mesh, behind a gateway
// that set them) keeps them.
func TestOwnedHeadersComeFromTracebridge(t *testing.T) {
	const tags = `"tags":[
		{"name":"tenant","from":{"header":"x-tenant-id"},"to":["header","metadata"]},
		{"name":"plan","from":{"jwt":{"claim":"plan"}},"to":["header"],"header":"x-plan"},
		{"name":"env","from":{"literal":"prod"},"to":["metadata"]},
		{"name":"upstream","from":{"header":"x-tracebridge-tenant"},"to":["metadata"]}]`
	forged := testHeaders{
		"traceparent":                      {inboundTP},
		"x-tracebridge-tenant":             {"evil"},
		"x-plan":                           {"platinum"},
		"x-tracebridge-plan":               {"platinum"},
		"x-tracebridge-env":                {"evil"},
		"x-tracebridge-untrusted-trace-id": {"ffffffffffffffffffffffffffffffff"},
	}
	owned := []string{"x-tracebridge-tenant", "x-plan", "x-tracebridge-plan", "x-tracebridge-env", "x-tracebridge-untrusted-trace-id"}
	cases := []struct {
		name      string
		trust     string
		source    string
		untrusted bool
	}{
		{"keep", `{"untrustedDirections":["inbound"],"action":"keep"}`, "", true},
		{"strip", `{"untrustedDirections":["inbound"],"action":"strip"}`, "", true},
		{"restart", `{"untrustedDirections":["inbound"],"action":"restart"}`, "", true},
		{"cidr", `{"untrustedCIDRs":["203.0.113.0/24"]}`, "203.0.113.9", true},
		{"trusted cidr neighbour", `{"untrustedCIDRs":["203.0.113.0/24"]}`, "198.51.100.1", false},
		{"no trust rules", `{}`, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEngine(t, `{"trust":`+tc.trust+`,`+tags+`}`, nil)
			req := &Request{Headers: forged, Direction: Inbound}
			if tc.source != "" {
				req.Source = netip.MustParseAddr(tc.source)
			}
			var st Stream
			var res Result
			e.OnRequest(&st, req, &res)
			got := forged.apply(&res)
			for _, name := range owned {
				v := strings.Join(got[name], ",")
				if tc.untrusted && (v == "evil" || v == "platinum" || v == "ffffffffffffffffffffffffffffffff") {
					t.Errorf("untrusted: %s = %q reached the app", name, v)
				}
				if !tc.untrusted && v != forged[name][0] {
					t.Errorf("trusted: %s = %q, want it kept (%q)", name, v, forged[name][0])
				}
			}
			if res.Decisions.Has(DecisionStripped) != tc.untrusted {
				t.Errorf("stripped = %v, want %v (%v)", !tc.untrusted, tc.untrusted, res.Decisions)
			}
			var tagged []string
			for _, tg := range res.Tags {
				tagged = append(tagged, tg.Name+"="+tg.Value)
			}
			// The tag read from an owned header is a forgery on an untrusted
			// request and a gateway's value on a trusted one.
			if has := slices.Contains(tagged, "upstream=evil"); has == tc.untrusted {
				t.Errorf("tags %v: upstream=evil present = %v, untrusted = %v", tagged, has, tc.untrusted)
			}
		})
	}
}

func TestOwnedHeaders(t *testing.T) {
	cfg, err := LoadPolicy([]byte(`{"tags":[
		{"name":"Tenant","from":{"literal":"a"},"to":["header"]},
		{"name":"plan","from":{"literal":"a"},"to":["header"],"header":"X-Plan"},
		{"name":"env","from":{"literal":"a"},"to":["metadata"]}]}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"x-tracebridge-untrusted-trace-id", "x-tracebridge-tenant", "x-plan", "x-tracebridge-plan", "x-tracebridge-env"}
	if got := cfg.OwnedHeaders(); !slices.Equal(got, want) {
		t.Fatalf("OwnedHeaders = %v, want %v", got, want)
	}
}
