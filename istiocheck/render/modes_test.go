package render

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/pkg/features"
	"istio.io/istio/pkg/config/schema/collections"
	"istio.io/istio/pkg/test"
	"sigs.k8s.io/yaml"
)

// overlays is manifests/istio/overlays of the repository.
var overlays = filepath.Join("..", "..", "manifests", "istio", "overlays")

// variant is one way an overlay is applied: as shipped (TrafficExtension), or
// with the WasmPlugin the sidecar overlays ship for Istio < 1.30 in place of
// the TrafficExtension.
type variant struct {
	name string
	docs func(t *testing.T, overlay string) []string
}

var variants = []variant{
	{"TrafficExtension", func(t *testing.T, o string) []string { return overlayDocs(t, filepath.Join(overlays, o)) }},
	{"WasmPlugin", func(t *testing.T, o string) []string {
		return withWasmPlugin(t, o, overlayDocs(t, filepath.Join(overlays, o)))
	}},
}

// withWasmPlugin swaps the overlay's TrafficExtension for the overlay's own
// wasmplugin.yaml.
func withWasmPlugin(t *testing.T, overlay string, docs []string) []string {
	t.Helper()
	var out []string
	swapped := false
	for _, d := range docs {
		if _, kind := kindOf(t, d); kind == "TrafficExtension" {
			b, err := os.ReadFile(filepath.Join(overlays, overlay, "wasmplugin.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(b))
			swapped = true
			continue
		}
		out = append(out, d)
	}
	if !swapped {
		t.Fatal("no TrafficExtension to replace")
	}
	return out
}

func without(t *testing.T, docs []string, kind string) []string {
	t.Helper()
	return slices.DeleteFunc(slices.Clone(docs), func(d string) bool { _, k := kindOf(t, d); return k == kind })
}

// telemetryTags are the customTags of the overlay's Telemetry SERVER entry.
func telemetryTags(t *testing.T, docs []string) []string {
	t.Helper()
	var tags []string
	for _, d := range docs {
		if _, kind := kindOf(t, d); kind != "Telemetry" {
			continue
		}
		var tel struct {
			Spec struct {
				Tracing []struct {
					CustomTags map[string]any `json:"customTags"`
				} `json:"tracing"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(d), &tel); err != nil {
			t.Fatal(err)
		}
		for _, tr := range tel.Spec.Tracing {
			for k := range tr.CustomTags {
				tags = append(tags, k)
			}
		}
	}
	slices.Sort(tags)
	return tags
}

// metadataTags are the tags an overlay puts on the gateway's spans from the
// ext_proc service's metadata: custom tags of type metadata its EnvoyFilter
// merges into the tracing block, or Telemetry custom tags of type formatter.
func metadataTags(t *testing.T, docs []string) []string {
	t.Helper()
	var out []string
	for _, d := range docs {
		if _, kind := kindOf(t, d); kind != "EnvoyFilter" {
			continue
		}
		var ef struct {
			Spec struct {
				ConfigPatches []struct {
					Patch struct {
						Value struct {
							TypedConfig struct {
								Tracing struct {
									CustomTags []struct {
										Tag      string         `json:"tag"`
										Metadata map[string]any `json:"metadata"`
									} `json:"custom_tags"`
								} `json:"tracing"`
							} `json:"typed_config"`
						} `json:"value"`
					} `json:"patch"`
				} `json:"configPatches"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(d), &ef); err != nil {
			t.Fatal(err)
		}
		for _, p := range ef.Spec.ConfigPatches {
			for _, ct := range p.Patch.Value.TypedConfig.Tracing.CustomTags {
				if ct.Metadata != nil {
					out = append(out, ct.Tag)
				}
			}
		}
	}
	// The default route: a Telemetry resource whose customTags of type
	// formatter read the same metadata (Istio >= 1.29).
	for _, d := range docs {
		if _, kind := kindOf(t, d); kind != "Telemetry" {
			continue
		}
		var tel struct {
			Spec struct {
				Tracing []struct {
					CustomTags map[string]struct {
						Formatter *struct {
							Value string `json:"value"`
						} `json:"formatter"`
					} `json:"customTags"`
				} `json:"tracing"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(d), &tel); err != nil {
			t.Fatal(err)
		}
		for _, tr := range tel.Spec.Tracing {
			for name, ct := range tr.CustomTags {
				if ct.Formatter != nil && ct.Formatter.Value == metadataFormatter(name) {
					out = append(out, name)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// metadataFormatter is the substitution formatter that reads tag name from
// the dynamic metadata the ext_proc service returns (namespace tracebridge).
func metadataFormatter(name string) string {
	return "%DYNAMIC_METADATA(tracebridge:" + name + ")%"
}

func report(t *testing.T, what string, v []string) {
	t.Helper()
	if len(v) > 0 {
		t.Errorf("%s:\n  %s", what, strings.Join(v, "\n  "))
	}
}

func expectViolation(t *testing.T, what string, v []string, contains string) {
	t.Helper()
	if !slices.ContainsFunc(v, func(s string) bool { return strings.Contains(s, contains) }) {
		t.Errorf("negative control %s: want a violation containing %q, got %q", what, contains, v)
	}
}

// filterGatewayClusters renders as istiod does with
// PILOT_FILTER_GATEWAY_CLUSTER_CONFIG=true: gateways get only the clusters of
// the services their routes or EnvoyFilters reference.
func filterGatewayClusters(t *testing.T) {
	test.SetForTest(t, &features.FilterGatewayClusterConfig, true)
}

func TestSidecarModes(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			base := renderMesh(t, v.docs(t, "sidecar-auto-forward"))
			t.Run("sidecar-auto-forward", func(t *testing.T) {
				docs := v.docs(t, "sidecar-auto-forward")
				tags := telemetryTags(t, docs)
				if len(tags) == 0 {
					t.Fatal("the sample Telemetry has no custom tags: nothing to check")
				}
				report(t, "sidecar", sidecarViolations(base, tags, false))
				report(t, "inbound clusters", inboundClusterViolations(base))
				refs := ecdsRefs(base.sidecarListeners, base.sidecarClusters)
				report(t, "ECDS", ecdsViolations(refs, base.ecds))
				report(t, "fail open", failOpenViolations(refs, base.ecds))
			})
			t.Run("precise-parenting", func(t *testing.T) {
				docs := v.docs(t, "precise-parenting")
				r := renderMesh(t, docs)
				report(t, "sidecar", sidecarViolations(r, telemetryTags(t, docs), true))
				report(t, "inbound clusters", inboundClusterViolations(r))
				report(t, "clusters against sidecar-auto-forward", clusterDiff(base.sidecarClusters, r.sidecarClusters))
				refs := ecdsRefs(r.sidecarListeners, r.sidecarClusters)
				if !slices.ContainsFunc(refs, func(e ecdsRef) bool { return e.filter.GetName() == upstreamECDS }) {
					t.Error("no reference to " + upstreamECDS)
				}
				report(t, "ECDS", ecdsViolations(refs, r.ecds))
				report(t, "fail open", failOpenViolations(refs, r.ecds))
			})
		})
	}
}

func TestGatewayModes(t *testing.T) {
	filterGatewayClusters(t)
	base := renderMesh(t, nil)
	t.Run("gateway-enrichment", func(t *testing.T) {
		docs := variants[0].docs(t, "gateway-enrichment")
		tags := metadataTags(t, docs)
		if len(tags) == 0 {
			t.Fatal("the sample policy has no metadata tags: nothing to check")
		}
		r := renderMesh(t, docs)
		report(t, "ext_proc", extProcViolations(r, tags))
		report(t, "gateway clusters", clusterDiff(base.gatewayClusters, r.gatewayClusters, extProcHost))
	})
	t.Run("gateway-enrichment-upstream", func(t *testing.T) {
		docs := variants[0].docs(t, "gateway-enrichment-upstream")
		r := renderMesh(t, docs)
		report(t, "upstream ext_proc", upstreamExtProcViolations(r))
		report(t, "gateway clusters", clusterDiff(base.gatewayClusters, r.gatewayClusters, extProcHost, backendCluster))
		for _, c := range r.gatewayClusters {
			if c.GetName() == backendCluster && upstreamProtocol(c) != "http1" {
				t.Errorf("backend cluster speaks %s, the overlay says HTTP/1.1", upstreamProtocol(c))
			}
		}
		for _, h := range hcms(r.gatewayListeners) {
			report(t, "metadata tags", metadataTagViolations(h, metadataTags(t, docs)))
		}
		// The sample policy calls inbound untrusted: the gateway removes a
		// client's own tag headers before anything reads them.
		report(t, "early header mutation", earlyMutationViolations(r))
	})
	t.Run("edge-trust", func(t *testing.T) {
		r := renderMesh(t, variants[0].docs(t, "edge-trust"))
		report(t, "early header mutation", earlyMutationViolations(r))
		report(t, "gateway clusters", clusterDiff(base.gatewayClusters, r.gatewayClusters))
	})
}

// TestIstioValidation runs Istio's own validation (what kubectl apply meets
// in istiod's webhook) on every Istio resource of every overlay: no errors;
// warnings only the one README explains for the Telemetry resource and the
// one Istio gives for every EnvoyFilter.
func TestIstioValidation(t *testing.T) {
	ents, err := os.ReadDir(overlays)
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	for _, e := range ents {
		docs := overlayDocs(t, filepath.Join(overlays, e.Name()))
		if _, err := os.Stat(filepath.Join(overlays, e.Name(), "wasmplugin.yaml")); err == nil {
			docs = append(docs, withWasmPlugin(t, e.Name(), docs)...)
		}
		for _, d := range docs {
			if api, _ := kindOf(t, d); !strings.Contains(api, "istio.io/") {
				continue
			}
			cfgs, _, err := crd.ParseInputs(d)
			if err != nil || len(cfgs) != 1 {
				t.Fatalf("%s: %d configs, %v", e.Name(), len(cfgs), err)
			}
			c := cfgs[0]
			s, ok := collections.All.FindByGroupVersionAliasesKind(c.GroupVersionKind)
			if !ok {
				t.Fatalf("%s: no Istio schema for %v", e.Name(), c.GroupVersionKind)
			}
			w, err := s.ValidateConfig(c)
			if err != nil {
				t.Errorf("%s %s/%s: %v", e.Name(), c.GroupVersionKind.Kind, c.Name, err)
			}
			if w != nil {
				warnings = append(warnings, c.GroupVersionKind.Kind+": "+w.Error())
			}
		}
	}
	telemetry := 0
	for _, w := range warnings {
		switch {
		case strings.HasPrefix(w, "Telemetry: ") && strings.Contains(w, "multiple tracing is not currently supported"):
			telemetry++
		case strings.HasPrefix(w, "EnvoyFilter: ") && strings.Contains(w, "EnvoyFilter exposes internal implementation details"):
			// Istio warns on every EnvoyFilter.
		default:
			t.Errorf("unexpected warning %s", w)
		}
	}
	if telemetry == 0 {
		t.Error("no Telemetry warning: README's note on it is out of date")
	}
}

// TestNegativeControls feeds configurations that break a claim to the
// checks above and requires each to fail.
func TestNegativeControls(t *testing.T) {
	saf := variants[0].docs(t, "sidecar-auto-forward")
	t.Run("cluster-patch precise-parenting", func(t *testing.T) {
		// The precise-parenting patch as it was: an upstream filter in the
		// inbound clusters' HttpProtocolOptions, type_urls Wasm only.
		old, err := os.ReadFile(filepath.Join("testdata", "precise-parenting-cluster-patch.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		base := renderMesh(t, saf)
		r := renderMesh(t, append(slices.Clone(saf), string(old)))
		refs := ecdsRefs(r.sidecarListeners, r.sidecarClusters)
		v := ecdsViolations(refs, r.ecds)
		expectViolation(t, "ECDS default config", v, "default_config type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation not in type_urls")
		expectViolation(t, "ECDS fallback", v, "istio-agent serves type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC, not in type_urls")
		expectViolation(t, "cluster protocol", inboundClusterViolations(r), "cluster inbound|8080||: upstream protocol downstream, want http1")
		expectViolation(t, "passthrough idle timeout", inboundClusterViolations(r), "InboundPassthroughCluster: idle timeout 0s")
		expectViolation(t, "clusters unchanged", clusterDiff(base.sidecarClusters, r.sidecarClusters), "cluster inbound|9090|| changed")
	})
	t.Run("no Telemetry", func(t *testing.T) {
		r := renderMesh(t, without(t, saf, "Telemetry"))
		v := sidecarViolations(r, telemetryTags(t, saf), false)
		expectViolation(t, "outbound tracing", v, "outbound HCM has a tracing block")
		expectViolation(t, "custom tags", v, "custom tag")
	})
	t.Run("AUTHN phase", func(t *testing.T) {
		var docs []string
		for _, d := range saf {
			docs = append(docs, strings.Replace(d, "phase: STATS", "phase: AUTHN", 1))
		}
		expectViolation(t, "filter order", sidecarViolations(renderMesh(t, docs), nil, false), "runs before Istio's envoy.filters.http.rbac")
	})
	t.Run("precise with the listener filter on inbound", func(t *testing.T) {
		// The precise-parenting overlay as it was: auto-forward's
		// TrafficExtension (match CLIENT_AND_SERVER) beside the upstream filter.
		docs := without(t, variants[0].docs(t, "precise-parenting"), "TrafficExtension")
		for _, d := range saf {
			if _, kind := kindOf(t, d); kind == "TrafficExtension" {
				docs = append(docs, d)
			}
		}
		expectViolation(t, "inbound listener filter", sidecarViolations(renderMesh(t, docs), nil, true), "on inbound besides the upstream filter")
	})
	t.Run("precise check on auto-forward", func(t *testing.T) {
		expectViolation(t, "upstream filter", sidecarViolations(renderMesh(t, saf), nil, true), "router upstream_http_filters [], want [tracebridge-upstream")
	})
	t.Run("gateway without referenced-services", func(t *testing.T) {
		filterGatewayClusters(t)
		var docs []string
		for _, d := range variants[0].docs(t, "gateway-enrichment") {
			docs = append(docs, strings.Replace(d, "envoyfilter.istio.io/referenced-services", "example.com/unrelated", 1))
		}
		expectViolation(t, "ext_proc cluster", extProcViolations(renderMesh(t, docs), nil), "gateway has no HTTP/2 cluster "+extProcCluster)
	})
	t.Run("edge check without edge-trust", func(t *testing.T) {
		expectViolation(t, "early mutation", earlyMutationViolations(renderMesh(t, nil)), "no early_header_mutation")
	})
	t.Run("upstream check on listener ext_proc", func(t *testing.T) {
		r := renderMesh(t, variants[0].docs(t, "gateway-enrichment"))
		expectViolation(t, "listener ext_proc", upstreamExtProcViolations(r), "ext_proc on the listener")
	})
}
