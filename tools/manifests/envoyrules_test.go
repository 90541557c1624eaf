package manifests

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	wasmfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// Rules Envoy and Istio apply to the EnvoyFilter patches that go beyond
// ValidateAll. Each returns the violations it finds, so that the tests can
// feed it known-bad patches as well as the rendered ones.

var (
	typeURLRBAC = typeURLPrefix + "envoy.extensions.filters.http.rbac.v3.RBAC"
	typeURLWasm = typeURLPrefix + "envoy.extensions.filters.http.wasm.v3.Wasm"
)

// patchMessage unmarshals a patch value into the type Istio builds for its
// applyTo (pilot/pkg/networking/core/envoyfilter, xds.BuildXDSObjectFromStruct).
func patchMessage(p envoyPatch) (proto.Message, error) {
	var m proto.Message
	switch p.applyTo {
	case "HTTP_FILTER":
		m = &hcmv3.HttpFilter{}
	case "NETWORK_FILTER":
		m = &listenerv3.Filter{}
	case "CLUSTER":
		m = &clusterv3.Cluster{}
	case "EXTENSION_CONFIG":
		m = &corev3.TypedExtensionConfig{}
	default:
		return nil, fmt.Errorf("no message type for applyTo %s", p.applyTo)
	}
	return m, strictJSON.Unmarshal(p.value, m)
}

// walkMessages calls fn for m and every message inside it, Anys unpacked.
func walkMessages(m protoreflect.Message, fn func(protoreflect.Message)) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		if inner, err := a.UnmarshalNew(); err == nil {
			walkMessages(inner.ProtoReflect(), fn)
		}
		return
	}
	fn(m)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil {
			return true
		}
		switch {
		case fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				walkMessages(v.List().Get(i).Message(), fn)
			}
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					walkMessages(mv.Message(), fn)
					return true
				})
			}
		default:
			walkMessages(v.Message(), fn)
		}
		return true
	})
}

// ecdsTypeURLViolations checks every extension-config-discovery reference of
// the patches against what it may carry. Envoy refuses a default_config whose
// type is not in type_urls when it builds the filter chain, and an ECDS update
// whose type is not in it (validateTypeUrlHelper, used by
// validateProtoConfigTypeUrl and FilterConfigSubscription::onConfigUpdate in
// source/common/filter/config_discovery_impl.cc, Envoy 1.37). The updates a
// reference receives are the ECDS resource of its name, after istio-agent's
// conversion: a Wasm config whose module cannot be fetched becomes an RBAC
// filter, allow-all under FAIL_OPEN (MaybeConvertWasmExtensionConfig in
// pkg/wasm/convert.go, Istio 1.31).
func ecdsTypeURLViolations(patches []envoyPatch) []string {
	resources := map[string]*corev3.TypedExtensionConfig{}
	var msgs []struct {
		where string
		m     proto.Message
	}
	var out []string
	for i, p := range patches {
		where := fmt.Sprintf("%s patch %d (%s %s)", p.file, i, p.applyTo, p.op)
		m, err := patchMessage(p)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", where, err))
			continue
		}
		if e, ok := m.(*corev3.TypedExtensionConfig); ok {
			resources[e.GetName()] = e
			continue
		}
		msgs = append(msgs, struct {
			where string
			m     proto.Message
		}{where, m})
	}
	for _, x := range msgs {
		walkMessages(x.m.ProtoReflect(), func(m protoreflect.Message) {
			f, ok := m.Interface().(*hcmv3.HttpFilter)
			if !ok || f.GetConfigDiscovery() == nil {
				return
			}
			cd := f.GetConfigDiscovery()
			where := x.where + " filter " + f.GetName()
			want := map[string]string{}
			if d := cd.GetDefaultConfig(); d != nil {
				want[d.GetTypeUrl()] = "default_config"
			}
			res, ok := resources[f.GetName()]
			if !ok {
				out = append(out, where+": no EXTENSION_CONFIG resource of that name")
			} else {
				want[res.GetTypedConfig().GetTypeUrl()] = "the ECDS resource"
				w := &wasmfilterv3.Wasm{}
				if res.GetTypedConfig().MessageIs(w) && res.GetTypedConfig().UnmarshalTo(w) == nil {
					fb := "istio-agent's deny-all fallback"
					if w.GetConfig().GetFailurePolicy() == wasmv3.FailurePolicy_FAIL_OPEN {
						fb = "istio-agent's allow-all fallback (FAIL_OPEN)"
					}
					want[typeURLRBAC] = fb
				}
			}
			for _, u := range slices.Sorted(func(yield func(string) bool) {
				for k := range want {
					if !yield(k) {
						return
					}
				}
			}) {
				if !slices.Contains(cd.GetTypeUrls(), u) {
					out = append(out, fmt.Sprintf("%s: type_urls %v lack %s (%s)", where, cd.GetTypeUrls(), u, want[u]))
				}
			}
		})
	}
	return out
}

// sidecarProtocolOptionViolations finds CLUSTER patches that would replace the
// HttpProtocolOptions Istio generates for sidecar clusters. Istio's MERGE
// replaces whole map entries (mergeMap in pkg/proto/merge/merge.go, Istio
// 1.31), so such a patch also replaces the upstream protocol and idle timeout
// Istio chose per port, which an EnvoyFilter cannot know.
func sidecarProtocolOptionViolations(patches []envoyPatch) []string {
	var out []string
	for i, p := range patches {
		if p.applyTo != "CLUSTER" || !strings.HasPrefix(p.context, "SIDECAR_") {
			continue
		}
		var c struct {
			Options map[string]json.RawMessage `json:"typed_extension_protocol_options"`
		}
		if err := json.Unmarshal(p.value, &c); err != nil {
			out = append(out, fmt.Sprintf("%s patch %d: %v", p.file, i, err))
			continue
		}
		if _, ok := c.Options[nameHTTPProtocol]; ok {
			out = append(out, fmt.Sprintf("%s patch %d (%s %s, %s): replaces Istio's %s", p.file, i, p.applyTo, p.op, p.context, nameHTTPProtocol))
		}
	}
	return out
}

// brokenUpstreamReference is the shape precise-parenting once had: a cluster
// patch replacing the inbound clusters' protocol options, and an ECDS
// reference whose type_urls admit only the Wasm config while its default is a
// header_mutation filter.
func brokenUpstreamReference(t *testing.T, good []envoyPatch) []envoyPatch {
	t.Helper()
	var out []envoyPatch
	for _, p := range good {
		if p.applyTo == "EXTENSION_CONFIG" {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		t.Fatal("no EXTENSION_CONFIG patch rendered")
	}
	filter := &hcmv3.HttpFilter{Name: "tracebridge-upstream", ConfigType: &hcmv3.HttpFilter_ConfigDiscovery{
		ConfigDiscovery: &corev3.ExtensionConfigSource{
			ConfigSource:  &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}},
			DefaultConfig: mustAny(&headermutationv3.HeaderMutation{}),
			TypeUrls:      []string{typeURLWasm},
		},
	}}
	value, err := json.Marshal(map[string]any{"typed_extension_protocol_options": map[string]any{
		nameHTTPProtocol: toMap(mustAny(protocolOptions([]*hcmv3.HttpFilter{filter}, true, false))),
	}})
	if err != nil {
		t.Fatal(err)
	}
	return append(out, envoyPatch{"broken", "CLUSTER", "MERGE", "SIDECAR_INBOUND", value})
}

func TestEnvoyAcceptanceRules(t *testing.T) {
	shipped := envoyFilterPatches(t)
	broken := brokenUpstreamReference(t, shipped)
	rules := []struct {
		name string
		rule func([]envoyPatch) []string
		// what the known-bad patches must be refused for
		brokenWant []string
	}{
		{"ecds type_urls", ecdsTypeURLViolations, []string{
			"lack " + typeURLPrefix + "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation (default_config)",
			"lack " + typeURLRBAC + " (istio-agent's allow-all fallback (FAIL_OPEN))",
		}},
		{"sidecar protocol options", sidecarProtocolOptionViolations, []string{"replaces Istio's " + nameHTTPProtocol}},
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			if v := r.rule(shipped); len(v) > 0 {
				t.Errorf("shipped manifests:\n%s", strings.Join(v, "\n"))
			}
			got := strings.Join(r.rule(broken), "\n")
			for _, w := range r.brokenWant {
				if !strings.Contains(got, w) {
					t.Errorf("known-bad patch: want a violation containing %q, got:\n%s", w, got)
				}
			}
		})
	}
}

// TestPreciseParentingReachesUpstream checks that the shipped precise-parenting
// overlay does carry the upstream filter: the rules above pass vacuously on
// a patch set without ECDS references.
func TestPreciseParentingReachesUpstream(t *testing.T) {
	var refs int
	for _, p := range envoyFilterPatches(t) {
		if !strings.Contains(p.file, ModePreciseParenting) || p.applyTo == "EXTENSION_CONFIG" {
			continue
		}
		m, err := patchMessage(p)
		if err != nil {
			t.Fatal(err)
		}
		walkMessages(m.ProtoReflect(), func(m protoreflect.Message) {
			if f, ok := m.Interface().(*hcmv3.HttpFilter); ok && f.GetConfigDiscovery() != nil {
				refs++
			}
		})
	}
	if refs != 1 {
		t.Errorf("precise-parenting: %d ECDS references, want 1", refs)
	}
}

// TestGatewayFiltersReferenceTheirServices checks that every EnvoyFilter
// whose patches call a service through an Istio outbound cluster names that
// service in envoyfilter.istio.io/referenced-services: with
// PILOT_FILTER_GATEWAY_CLUSTER_CONFIG, Istio sends a gateway only the clusters
// of services its routes or that annotation reference
// (pilot/pkg/model/push_context.go, Istio 1.31), and ext_proc would call a
// cluster Envoy does not have.
func TestGatewayFiltersReferenceTheirServices(t *testing.T) {
	var checked int
	for _, r := range shippedResources(t) {
		if r.Kind != "EnvoyFilter" {
			continue
		}
		var meta struct {
			Annotations map[string]string `json:"annotations"`
		}
		if err := json.Unmarshal(r.Metadata, &meta); err != nil {
			t.Fatal(err)
		}
		refs := strings.Split(meta.Annotations["envoyfilter.istio.io/referenced-services"], ",")
		for _, p := range patchesOf(t, []File{{r.file, r.raw}}) {
			m, err := patchMessage(p)
			if err != nil {
				t.Fatal(err)
			}
			walkMessages(m.ProtoReflect(), func(m protoreflect.Message) {
				g, ok := m.Interface().(*corev3.GrpcService_EnvoyGrpc)
				if !ok {
					return
				}
				parts := strings.Split(g.GetClusterName(), "|")
				if len(parts) != 4 || parts[0] != "outbound" {
					return
				}
				checked++
				host := parts[3]
				ns := strings.Split(host, ".")[1]
				if !slices.Contains(refs, ns+"/"+host) && !slices.Contains(refs, host) {
					t.Errorf("%s: calls %s but envoyfilter.istio.io/referenced-services is %q", r.file, g.GetClusterName(), strings.Join(refs, ","))
				}
			})
		}
	}
	if checked == 0 {
		t.Error("no EnvoyFilter calls an outbound cluster: nothing checked")
	}
}
