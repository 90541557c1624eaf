package manifests

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"sigs.k8s.io/yaml"
)

// richPolicy uses every feature the renderer maps: a filterState tag, an env
// tag source, a debug-token secret from the environment, strip at the edge,
// an outbound-only header tag.
const richPolicy = `
read: [w3c, b3multi]
emit: [w3c]
trust:
  untrustedDirections: [inbound]
  action: strip
  debugToken: {secretEnv: TB_DEBUG_SECRET}
tags:
- {name: zone, from: {env: ZONE}, to: [header, filterState]}
- {name: user, from: {header: x-user}, to: [filterState, metadata]}
- {name: peer, from: {header: x-peer}, to: [header], directions: [outbound]}
- {name: t, from: {literal: "1"}, to: [header], header: x-custom-t}
`

func TestRichPolicyRendersAndValidates(t *testing.T) {
	files, err := Render([]byte(richPolicy), Options{Namespace: "shop", SHA256: strings.Repeat("ab", 32)})
	if err != nil {
		t.Fatal(err)
	}
	checkResourcesStrict(t, files)
	checkPatches(t, patchesOf(t, files))
	b := checkBootstrap(t, files)

	byPath := map[string]string{}
	for _, f := range files {
		byPath[f.Path] = string(f.Data)
	}
	te := byPath["istio/overlays/sidecar-auto-forward/trafficextension.yaml"]
	for _, want := range []string{"name: TB_DEBUG_SECRET", "name: ZONE", "valueFrom: HOST", "sha256: abab", "namespace: shop"} {
		if !strings.Contains(te, want) {
			t.Errorf("trafficextension.yaml lacks %q", want)
		}
	}
	tel := byPath["istio/overlays/sidecar-auto-forward/telemetry.yaml"]
	for _, want := range []string{"name: x-tracebridge-zone", "name: x-custom-t", "%FILTER_STATE(wasm.tracebridge.user:PLAIN)%"} {
		if !strings.Contains(tel, want) {
			t.Errorf("telemetry.yaml lacks %q", want)
		}
	}
	if strings.Contains(tel, "x-tracebridge-peer") {
		t.Error("telemetry.yaml tags an outbound-only tag on the server side")
	}
	edge := byPath["istio/overlays/edge-trust/envoyfilter.yaml"]
	if !strings.Contains(edge, "remove: x-envoy-force-trace") || strings.Contains(edge, "remove: traceparent") {
		t.Errorf("strip must remove only the forcing headers:\n%s", edge)
	}

	// The bootstrap carries the same tags: header, metadata, filter state.
	var hcm hcmv3.HttpConnectionManager
	l := b.GetStaticResources().GetListeners()[0]
	if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, ct := range hcm.GetTracing().GetCustomTags() {
		tags = append(tags, ct.Tag)
	}
	slices.Sort(tags)
	if !slices.Equal(tags, []string{"peer", "t", "user", "zone"}) {
		t.Errorf("bootstrap custom tags %v", tags)
	}
	if len(hcm.EarlyHeaderMutationExtensions) != 1 {
		t.Error("bootstrap inbound listener lacks the early header mutation")
	}
}

func TestYAMLAndJSONPoliciesRenderTheSame(t *testing.T) {
	js, err := os.ReadFile(filepath.Join(shippedDir, "sample-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	y, err := PolicyJSON(js) // JSON passes through
	if err != nil || !bytes.Equal(y, bytes.TrimSpace(js)) {
		t.Fatalf("PolicyJSON changed a JSON document: %v", err)
	}
	a, err := Render(js, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Render([]byte(richToYAML(t, js)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("%d files vs %d", len(a), len(b))
	}
	for i := range a {
		if a[i].Path != b[i].Path || !bytes.Equal(a[i].Data, b[i].Data) {
			t.Errorf("%s differs between the JSON and the YAML policy", a[i].Path)
		}
	}
}

func richToYAML(t *testing.T, js []byte) string {
	t.Helper()
	out, err := yaml.JSONToYAML(js)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestPoliciesTheEdgeCannotExpress(t *testing.T) {
	for _, tc := range []struct{ name, policy, want string }{
		{"cidr only", `{"trust":{"untrustedCIDRs":["203.0.113.0/24"],"action":"restart"}}`, "untrustedCIDRs"},
		{"trusted header", `{"trust":{"untrustedDirections":["inbound"],"trustedHeader":{"name":"x-lb","value":"v"},"action":"strip"}}`, "trustedHeader"},
		{"nothing untrusted", `{}`, "no untrusted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files, err := Render([]byte(tc.policy), Options{})
			if err != nil {
				t.Fatalf("Render must still render the other modes: %v", err)
			}
			for _, f := range files {
				if strings.Contains(f.Path, "edge-trust") {
					t.Errorf("edge-trust rendered: %s", f.Path)
				}
			}
			_, err = RenderMode([]byte(tc.policy), Options{Mode: ModeEdgeTrust}, false)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("RenderMode edge-trust: %v, want an error about %q", err, tc.want)
			}
			if _, err := RenderMode([]byte(tc.policy), Options{Mode: ModeSidecarAutoForward}, false); err != nil {
				t.Errorf("sidecar mode: %v", err)
			}
		})
	}
}

// TestEdgeTrustRemovesOwnedHeaders: whatever trust.action says, the edge's
// early header mutation removes the headers only tracebridge writes, so a
// client cannot set span tags at the gateway or at any hop behind it.
func TestEdgeTrustRemovesOwnedHeaders(t *testing.T) {
	const tags = `"tags":[{"name":"tenant","from":{"header":"x-tenant-id"},"to":["header"]},
		{"name":"plan","from":{"jwt":{"claim":"plan"}},"to":["header","metadata"],"header":"x-plan"}]`
	owned := []string{"x-tracebridge-untrusted-trace-id", "x-tracebridge-tenant", "x-plan", "x-tracebridge-plan"}
	for _, tc := range []struct {
		action      string
		traceparent bool // trace headers removed too
	}{{"keep", false}, {"strip", false}, {"restart", true}} {
		t.Run(tc.action, func(t *testing.T) {
			policy := `{"trust":{"untrustedDirections":["inbound"],"action":"` + tc.action + `"},` + tags + `}`
			got, err := EarlyRemovals([]byte(policy))
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range owned {
				if !slices.Contains(got, h) {
					t.Errorf("early removals %v lack %s", got, h)
				}
			}
			if slices.Contains(got, "traceparent") != tc.traceparent {
				t.Errorf("early removals %v: traceparent removed = %v, want %v", got, !tc.traceparent, tc.traceparent)
			}
			out, err := RenderMode([]byte(policy), Options{Mode: ModeEdgeTrust}, false)
			if err != nil {
				t.Fatalf("edge-trust: %v", err)
			}
			if !strings.Contains(string(out), "remove: x-tracebridge-tenant") {
				t.Errorf("the edge-trust EnvoyFilter does not remove x-tracebridge-tenant")
			}
		})
	}
}

// TestGatewayUpstreamRemovesOwnedHeaders: as an upstream filter the ext_proc
// service cannot tell a client's request from the mesh's, so with inbound
// untrusted the gateway itself removes the headers only tracebridge writes
// (else a client's x-tracebridge-<tag> reaches the sidecars' span tags), and
// without it (a mesh-internal gateway) keeps them.
func TestGatewayUpstreamRemovesOwnedHeaders(t *testing.T) {
	const tags = `"tags":[{"name":"tenant","from":{"header":"x-tenant-id"},"to":["header","metadata"]}]`
	for _, tc := range []struct {
		name, trust string
		removed     bool
	}{
		{"inbound untrusted", `"trust":{"untrustedDirections":["inbound"],"action":"keep"},`, true},
		{"all trusted", ``, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := RenderMode([]byte(`{`+tc.trust+tags+`}`), Options{Mode: ModeGatewayEnrichmentUpstream}, false)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range []string{"x-tracebridge-tenant", "x-tracebridge-untrusted-trace-id"} {
				if got := strings.Contains(string(out), "- remove: "+h); got != tc.removed {
					t.Errorf("early mutation removes %s: %v, want %v", h, got, tc.removed)
				}
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	for _, tc := range []struct {
		name, policy string
		opts         Options
		want         string
	}{
		{"invalid policy", `{"invalid":"sometimes"}`, Options{}, "invalid"},
		{"pinned direction", `{"direction":"outbound"}`, Options{}, "sidecar"},
		{"backend is ext_proc", `{}`, Options{GatewayBackends: []string{"tracebridge-extproc.istio-system.svc.cluster.local:9002"}}, "ext_proc service itself"},
		{"bad backend", `{}`, Options{GatewayBackends: []string{"no-port"}}, "host:port"},
		{"upstream placement pinned downstream", `{"host":{"placement":"weird"}}`, Options{}, "placement"},
		{"collector port", `{}`, Options{CollectorPort: 70000}, "collector port"},
		{"collector service", `{}`, Options{CollectorService: "outbound|9411||zipkin"}, "collector service"},
		{"clientSpans fields checked without a cluster", `{"clientSpans":{"enabled":true,"format":"jaeger"}}`, Options{}, "clientSpans.format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Render([]byte(tc.policy), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestCommand(t *testing.T) {
	policy := filepath.Join(shippedDir, "sample-policy.json")
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := RunManifestsCommand(args, &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, _, _ := run(); code != 2 {
		t.Errorf("no args: exit %d", code)
	}
	if code, _, e := run("render"); code != 2 || !strings.Contains(e, "--policy") {
		t.Errorf("no --policy: exit %d %s", code, e)
	}
	if code, _, e := run("render", "--policy", policy, "--mode", "nope"); code != 1 || !strings.Contains(e, "unknown mode") {
		t.Errorf("unknown mode: exit %d %s", code, e)
	}
	for _, m := range Modes {
		code, out, e := run("render", "--policy", policy, "--mode", m)
		if code != 0 {
			t.Errorf("--mode %s: exit %d: %s", m, code, e)
			continue
		}
		docs := yamlDocs(t, []byte(out))
		if len(docs) != len(modeFiles[m]) {
			t.Errorf("--mode %s: %d documents, want %d", m, len(docs), len(modeFiles[m]))
		}
	}
	_, te, _ := run("render", "--policy", policy, "--mode", ModeSidecarAutoForward)
	_, wp, _ := run("render", "--policy", policy, "--mode", ModeSidecarAutoForward, "--wasmplugin")
	if !strings.Contains(te, "kind: TrafficExtension") || strings.Contains(te, "kind: WasmPlugin") ||
		!strings.Contains(wp, "kind: WasmPlugin") || strings.Contains(wp, "kind: TrafficExtension") {
		t.Error("--wasmplugin does not swap the TrafficExtension for the WasmPlugin")
	}
	code, out, _ := run("render", "--policy", policy, "--mode", ModeGatewayEnrichment,
		"--extproc-image", "registry.example/tb-extproc@sha256:"+strings.Repeat("0", 64), "--namespace", "edge")
	if code != 0 || !strings.Contains(out, "image: registry.example/tb-extproc@sha256:") || !strings.Contains(out, "outbound|9002||tracebridge-extproc.edge.svc.cluster.local") {
		t.Errorf("--extproc-image/--namespace not applied:\n%s", out)
	}
	spans := filepath.Join(t.TempDir(), "spans.json")
	if err := os.WriteFile(spans, []byte(`{"clientSpans":{"enabled":true}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = run("render", "--policy", spans, "--mode", ModeSidecarAutoForward, "--collector-service", "jaeger-collector.tracing.svc.cluster.local", "--collector-port", "9412")
	if code != 0 || !strings.Contains(out, "outbound|9412||jaeger-collector.tracing.svc.cluster.local") {
		t.Errorf("--collector-service/--collector-port not applied:\n%s", out)
	}
	code, out, _ = run("render", "--policy", policy, "--mode", ModeSidecarAutoForward, "--image", "oci://registry.example/tb-wasm:9")
	if code != 0 || !strings.Contains(out, "url: oci://registry.example/tb-wasm:9") {
		t.Errorf("--image not applied")
	}

	dir := t.TempDir()
	if code, _, e := run("render", "--policy", policy, "--out", dir); code != 0 {
		t.Fatalf("--out: exit %d: %s", code, e)
	}
	for _, f := range renderSample(t) {
		got, err := os.ReadFile(filepath.Join(dir, f.Path))
		if err != nil || !bytes.Equal(got, f.Data) {
			t.Errorf("--out %s differs from Render: %v", f.Path, err)
		}
	}
	if code, out, _ := run("render", "--policy", policy); code != 0 || strings.Count(out, "# Source: manifests/") != len(renderSample(t)) {
		t.Errorf("render without --mode/--out: exit %d", code)
	}
}

// TestSidecarListenerFilterDirections: the listener filter runs in both
// directions for auto-forward, and on outbound only for precise parenting,
// whose upstream filter is the one instance on inbound: a listener filter
// there too would record each inbound request twice, and narrowed or
// sole-in-flight lookups would find two in-flight entries (ambiguous).
func TestSidecarListenerFilterDirections(t *testing.T) {
	policy, err := os.ReadFile(filepath.Join(shippedDir, "sample-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mode   string
		legacy bool
		kind   string
		want   string
	}{
		{ModeSidecarAutoForward, false, "TrafficExtension", "CLIENT_AND_SERVER"},
		{ModeSidecarAutoForward, true, "WasmPlugin", "CLIENT_AND_SERVER"},
		{ModePreciseParenting, false, "TrafficExtension", "CLIENT"},
		{ModePreciseParenting, true, "WasmPlugin", "CLIENT"},
	} {
		t.Run(c.mode+"/"+c.kind, func(t *testing.T) {
			out, err := RenderMode(policy, Options{Mode: c.mode}, c.legacy)
			if err != nil {
				t.Fatal(err)
			}
			var modes []string
			for _, d := range yamlDocs(t, out) {
				var r struct {
					Kind string `json:"kind"`
					Spec struct {
						Match []struct {
							Mode string `json:"mode"`
						} `json:"match"`
					} `json:"spec"`
				}
				if err := yaml.Unmarshal(d, &r); err != nil {
					t.Fatal(err)
				}
				if r.Kind != c.kind {
					continue
				}
				for _, m := range r.Spec.Match {
					modes = append(modes, m.Mode)
				}
			}
			if !slices.Equal(modes, []string{c.want}) {
				t.Errorf("%s match modes %v, want [%s]", c.kind, modes, c.want)
			}
		})
	}
}

// TestClientSpansCollectorFilledIn: a policy that enables clientSpans
// without a cluster reports to the collector cluster of the mesh's tracing
// provider, named as Istio names it; the plain Envoy bootstrap reports to
// its own Zipkin cluster; a cluster the policy names is kept.
func TestClientSpansCollectorFilledIn(t *testing.T) {
	const istioZipkin = "outbound|9411||zipkin.istio-system.svc.cluster.local"
	for _, c := range []struct {
		name, policy string
		opts         Options
		sidecar      string // clientSpans.cluster in the sidecar resources
		envoy        string // and in the plain Envoy bootstrap
		extproc      string // the ext_proc Deployment's --span-collector
	}{
		{"defaults: Istio's Zipkin provider", `{"clientSpans":{"enabled":true}}`, Options{}, istioZipkin, envoyZipkinCluster,
			"http://zipkin.istio-system.svc.cluster.local:9411/api/v2/spans"},
		{"empty cluster", `{"clientSpans":{"enabled":true,"cluster":""}}`, Options{}, istioZipkin, envoyZipkinCluster,
			"http://zipkin.istio-system.svc.cluster.local:9411/api/v2/spans"},
		{"OpenTelemetry collector, namespace/host", `{"clientSpans":{"enabled":true,"format":"otlp"}}`,
			Options{CollectorService: "observability/otel-collector.observability.svc.cluster.local", CollectorPort: 4318},
			"outbound|4318||otel-collector.observability.svc.cluster.local", envoyZipkinCluster,
			"http://otel-collector.observability.svc.cluster.local:4318/v1/traces"},
		{"cluster named by the policy", `{"clientSpans":{"enabled":true,"cluster":"my-collector","authority":"collector.example:9411"}}`, Options{}, "my-collector", "my-collector",
			"http://collector.example:9411/api/v2/spans"},
	} {
		t.Run(c.name, func(t *testing.T) {
			files, err := Render([]byte(c.policy), c.opts)
			if err != nil {
				t.Fatal(err)
			}
			checkResourcesStrict(t, files)
			checkPatches(t, patchesOf(t, files))
			checkBootstrap(t, files)
			byPath := map[string][]byte{}
			for _, f := range files {
				byPath[f.Path] = f.Data
			}
			for _, path := range []string{
				"istio/overlays/sidecar-auto-forward/trafficextension.yaml",
				"istio/overlays/sidecar-auto-forward/wasmplugin.yaml",
				"istio/overlays/precise-parenting/trafficextension.yaml",
			} {
				var r struct {
					Spec struct {
						Wasm struct {
							PluginConfig struct {
								ClientSpans struct {
									Cluster string `json:"cluster"`
								} `json:"clientSpans"`
							} `json:"pluginConfig"`
						} `json:"wasm"`
						PluginConfig struct {
							ClientSpans struct {
								Cluster string `json:"cluster"`
							} `json:"clientSpans"`
						} `json:"pluginConfig"`
					} `json:"spec"`
				}
				if err := yaml.Unmarshal(byPath[path], &r); err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				got := r.Spec.Wasm.PluginConfig.ClientSpans.Cluster + r.Spec.PluginConfig.ClientSpans.Cluster
				if got != c.sidecar {
					t.Errorf("%s: clientSpans.cluster %q, want %q", path, got, c.sidecar)
				}
			}
			if dep := string(byPath["istio/base/deployment.yaml"]); !strings.Contains(dep, "- --span-collector="+c.extproc+"\n") {
				t.Errorf("deployment.yaml lacks --span-collector=%s:\n%s", c.extproc, dep)
			}
			// The precise-parenting ECDS resource and the bootstrap carry the
			// policy as a JSON string.
			for path, want := range map[string]string{
				"istio/overlays/precise-parenting/envoyfilter.yaml": c.sidecar,
				"envoy/envoy.yaml": c.envoy,
			} {
				if q := strings.ReplaceAll(string(byPath[path]), `\"`, `"`); !strings.Contains(q, `"cluster":"`+want+`"`) {
					t.Errorf("%s lacks clientSpans.cluster %q", path, want)
				}
			}
		})
	}
}

// TestCollectorClusterIsIstios: the default collector cluster is the one
// Istio's control plane generates for its Zipkin provider (the istiocheck
// goldens, rendered by pilot with that provider as the mesh default).
func TestCollectorClusterIsIstios(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join("..", "..", "istiocheck", "golden", "sidecar-auto-forward", "sidecar.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var clusters []string
	lines := strings.Split(string(golden), "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) == "collector_service:" && i+2 < len(lines) {
			if c, ok := strings.CutPrefix(strings.TrimSpace(lines[i+2]), "cluster: "); ok {
				clusters = append(clusters, c)
			}
		}
	}
	if len(clusters) == 0 {
		t.Fatal("no Zipkin collector_service cluster in the golden")
	}
	want, err := IstioCollectorCluster(DefaultCollectorService, DefaultCollectorPort)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clusters {
		if c != want {
			t.Errorf("Istio generated collector cluster %q, the renderer fills in %q", c, want)
		}
	}
}
