package manifests

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	telemetryv1alpha1 "istio.io/api/telemetry/v1alpha1"
	"sigs.k8s.io/yaml"
)

// checkGatewayTelemetry checks a gateway tag Telemetry: it selects the
// gateway and carries one formatter customTag per metadata tag, reading
// %DYNAMIC_METADATA(tracebridge:<name>)%. It returns 1.
func checkGatewayTelemetry(t *testing.T, r resource, metadataTags []string) int {
	t.Helper()
	var s telemetryv1alpha1.Telemetry
	if err := strictJSON.Unmarshal(r.Spec, &s); err != nil {
		t.Fatalf("%s: %v", r.file, err)
	}
	if s.GetSelector().GetMatchLabels()["istio"] != "ingressgateway" {
		t.Errorf("%s: selector %v", r.file, s.GetSelector())
	}
	if len(s.Tracing) != 1 || s.Tracing[0].Match != nil || len(s.Tracing[0].Providers) != 0 {
		t.Errorf("%s: want one tracing entry without match or providers: %v", r.file, s.Tracing)
	}
	var got []string
	for _, tr := range s.Tracing {
		for name, ct := range tr.CustomTags {
			if v := ct.GetFormatter().GetValue(); v != "%DYNAMIC_METADATA(tracebridge:"+name+")%" {
				t.Errorf("%s: tag %s formatter %q", r.file, name, v)
			}
			got = append(got, name)
		}
	}
	sort.Strings(got)
	if !slices.Equal(got, metadataTags) {
		t.Errorf("%s: formatter tags %v, policy metadata tags %v", r.file, got, metadataTags)
	}
	return 1
}

func readSample(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(shippedDir, "sample-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestGatewayTagsEnvoyFilterFallback: --custom-tags envoyfilter renders the
// metadata custom_tags patch instead of the Telemetry (Istio < 1.29), and
// every mode still renders and validates.
func TestGatewayTagsEnvoyFilterFallback(t *testing.T) {
	sample := readSample(t)
	files, err := Render(sample, Options{CustomTags: CustomTagsEnvoyFilter})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasPrefix(f.Path, "istio/overlays/gateway-enrichment") && strings.HasSuffix(f.Path, "telemetry.yaml") {
			t.Errorf("%s rendered with --custom-tags envoyfilter", f.Path)
		}
	}
	checkResourcesStrict(t, files)
	patches := patchesOf(t, files)
	checkPatches(t, patches)
	var tagPatches int
	for _, p := range patches {
		if p.applyTo == "NETWORK_FILTER" && strings.Contains(string(p.value), "custom_tags") {
			tagPatches++
		}
	}
	if tagPatches != 2 {
		t.Errorf("metadata custom_tags patches: %d, want 2 (both gateway modes)", tagPatches)
	}
	for _, ct := range []string{CustomTagsTelemetry, CustomTagsEnvoyFilter} {
		for _, m := range []string{ModeGatewayEnrichment, ModeGatewayEnrichmentUpstream} {
			y, err := RenderMode(sample, Options{Mode: m, CustomTags: ct}, false)
			if err != nil {
				t.Fatalf("%s %s: %v", m, ct, err)
			}
			if has := strings.Contains(string(y), "kind: Telemetry"); has != (ct == CustomTagsTelemetry) {
				t.Errorf("%s --custom-tags %s: Telemetry present %v", m, ct, has)
			}
		}
	}
	if _, err := Render(sample, Options{CustomTags: "annotations"}); err == nil {
		t.Error("an unknown --custom-tags value was accepted")
	}
}

// extProcs returns every ext_proc filter configuration packed in m.
func extProcs(t *testing.T, m proto.Message) []*extprocv3.ExternalProcessor {
	t.Helper()
	var out []*extprocv3.ExternalProcessor
	var visit func(a *anypb.Any)
	visit = func(a *anypb.Any) {
		inner, err := a.UnmarshalNew()
		if err != nil {
			t.Fatalf("%s: %v", a.TypeUrl, err)
		}
		if ep, ok := inner.(*extprocv3.ExternalProcessor); ok {
			out = append(out, ep)
			return
		}
		walkAnys(inner.ProtoReflect(), visit)
	}
	walkAnys(m.ProtoReflect(), visit)
	return out
}

// TestExtProcPeerAttribute: a policy with trust.trustedPrincipals makes
// every rendered ext_proc filter ask Envoy for the peer's URI SAN, which the
// service matches the principals against; without it the attribute is not
// requested.
func TestExtProcPeerAttribute(t *testing.T) {
	const withPrincipals = `{"trust":{"untrustedDirections":["inbound"],"action":"strip","trustedPrincipals":["spiffe://cluster.local/ns/edge/*"]},
"tags":[{"name":"tenant","from":{"header":"x-tenant"},"to":["metadata"]}]}`
	for _, tc := range []struct {
		name   string
		policy []byte
		want   bool
	}{
		{"trustedPrincipals", []byte(withPrincipals), true},
		{"sample", readSample(t), false},
	} {
		files, err := Render(tc.policy, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var filters []*extprocv3.ExternalProcessor
		for _, p := range patchesOf(t, files) {
			var m proto.Message
			switch p.applyTo {
			case "HTTP_FILTER":
				m = &hcmv3.HttpFilter{}
			case "CLUSTER":
				m = &clusterv3.Cluster{}
			default:
				continue
			}
			if err := strictJSON.Unmarshal(p.value, m); err != nil {
				t.Fatalf("%s: %v", p.file, err)
			}
			filters = append(filters, extProcs(t, m)...)
		}
		filters = append(filters, extProcs(t, checkBootstrap(t, files))...)
		// gateway-enrichment, one per backend of gateway-enrichment-upstream, the bootstrap.
		if len(filters) != 3 {
			t.Fatalf("%s: %d ext_proc filters, want 3", tc.name, len(filters))
		}
		for i, f := range filters {
			got := slices.Contains(f.RequestAttributes, "connection.uri_san_peer_certificate")
			if got != tc.want || !slices.Contains(f.RequestAttributes, "source.address") {
				t.Errorf("%s: ext_proc filter %d request_attributes %v", tc.name, i, f.RequestAttributes)
			}
		}
	}
}

// TestZipkinW3CProvider: host.tracer zipkin-w3c renders Istio's Zipkin
// provider with traceContextOption and sets trace_context_option in the
// Envoy bootstrap; other policies get neither.
func TestZipkinW3CProvider(t *testing.T) {
	const policy = `{"host":{"tracer":"zipkin-w3c"},"tags":[{"name":"tenant","from":{"header":"x-tenant"},"to":["header","metadata"]}]}`
	files, err := Render([]byte(policy), Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkResourcesStrict(t, files)
	checkPatches(t, patchesOf(t, files))
	var mesh []byte
	for _, f := range files {
		if f.Path == MeshProviderFile {
			mesh = f.Data
		}
	}
	if mesh == nil {
		t.Fatalf("%s not rendered", MeshProviderFile)
	}
	var values struct {
		MeshConfig any `json:"meshConfig"`
	}
	if err := yaml.UnmarshalStrict(mesh, &values); err != nil {
		t.Fatal(err)
	}
	js, err := yaml.Marshal(values.MeshConfig)
	if err != nil {
		t.Fatal(err)
	}
	if js, err = yaml.YAMLToJSON(js); err != nil {
		t.Fatal(err)
	}
	mc := &meshv1alpha1.MeshConfig{}
	if err := strictJSON.Unmarshal(js, mc); err != nil {
		t.Fatalf("meshConfig: %v", err)
	}
	if len(mc.ExtensionProviders) != 1 || mc.ExtensionProviders[0].GetZipkin().GetTraceContextOption() !=
		meshv1alpha1.MeshConfig_ExtensionProvider_ZipkinTracingProvider_USE_B3_WITH_W3C_PROPAGATION {
		t.Errorf("meshConfig providers: %v", mc.ExtensionProviders)
	}
	if !slices.Equal(mc.GetDefaultProviders().GetTracing(), []string{mc.ExtensionProviders[0].GetName()}) {
		t.Errorf("default tracing providers %v", mc.GetDefaultProviders().GetTracing())
	}

	option := func(files []File) tracev3.ZipkinConfig_TraceContextOption {
		var zc *tracev3.ZipkinConfig
		var visit func(a *anypb.Any)
		visit = func(a *anypb.Any) {
			inner, err := a.UnmarshalNew()
			if err != nil {
				t.Fatal(err)
			}
			if z, ok := inner.(*tracev3.ZipkinConfig); ok {
				zc = z
				return
			}
			walkAnys(inner.ProtoReflect(), visit)
		}
		walkAnys(checkBootstrap(t, files).ProtoReflect(), visit)
		if zc == nil {
			t.Fatal("no ZipkinConfig in the bootstrap")
		}
		return zc.TraceContextOption
	}
	if got := option(files); got != tracev3.ZipkinConfig_USE_B3_WITH_W3C_PROPAGATION {
		t.Errorf("bootstrap trace_context_option %v", got)
	}
	sample, err := Render(readSample(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := option(sample); got != tracev3.ZipkinConfig_USE_B3 {
		t.Errorf("sample bootstrap trace_context_option %v", got)
	}
	for _, f := range sample {
		if strings.HasPrefix(f.Path, "mesh/") {
			t.Errorf("%s rendered for a zipkin policy", f.Path)
		}
	}
}

// TestAdaptZipkinW3C: a proxy tracing with Zipkin B3+W3C gets host.tracer
// zipkin-w3c when the policy reads both formats, and none otherwise.
func TestAdaptZipkinW3C(t *testing.T) {
	for _, tc := range []struct{ policy, want string }{
		{`{}`, `"tracer":"zipkin-w3c"`},
		{`{"read":["b3multi"]}`, `"host":{}`},
	} {
		out, _, err := AdaptPolicy([]byte(tc.policy), PlaceSidecar, AdaptOptions{Tracer: "zipkin-w3c"})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), "tracer") != strings.Contains(tc.want, "tracer") || (strings.Contains(tc.want, "tracer") && !strings.Contains(string(out), tc.want)) {
			t.Errorf("%s: adapted %s, want %s", tc.policy, out, tc.want)
		}
	}
	if got := TagFormatter("tenant", "metadata"); got != "%DYNAMIC_METADATA(tracebridge:tenant)%" {
		t.Errorf("metadata formatter %q", got)
	}
	if got := TagFormatter("tenant", "filterState"); got != "%FILTER_STATE(wasm.tracebridge.tenant:PLAIN)%" {
		t.Errorf("filterState formatter %q", got)
	}
}
