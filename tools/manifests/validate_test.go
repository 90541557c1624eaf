package manifests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	extensionsv1alpha1 "istio.io/api/extensions/v1alpha1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	telemetryv1alpha1 "istio.io/api/telemetry/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	// Every extension a manifest names by @type; an Any whose type is not
	// registered fails protojson.Unmarshal, which the tests treat as an error.
	_ "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/clusters/dynamic_forward_proxy/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/dynamic_forward_proxy/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/upstream_codec/v3"
	wasmfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	"github.com/tracebridge/tracebridge/engine"
)

var strictJSON = protojson.UnmarshalOptions{DiscardUnknown: false}

// yamlDocs splits a YAML stream into documents (comment-only parts dropped).
func yamlDocs(t *testing.T, data []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for _, part := range bytes.Split(data, []byte("\n---\n")) {
		empty := true
		for _, line := range strings.Split(string(part), "\n") {
			l := strings.TrimSpace(line)
			if l != "" && !strings.HasPrefix(l, "#") && l != "---" {
				empty = false
				break
			}
		}
		if !empty {
			out = append(out, part)
		}
	}
	return out
}

// resource is one parsed Kubernetes document.
type resource struct {
	file       string
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Metadata   json.RawMessage `json:"metadata"`
	Spec       json.RawMessage `json:"spec"`
	raw        []byte
}

func shippedResources(t *testing.T) []resource {
	t.Helper()
	return resourcesOf(t, renderSample(t))
}

func resourcesOf(t *testing.T, files []File) []resource {
	t.Helper()
	var out []resource
	for _, f := range files {
		if !strings.HasPrefix(f.Path, "istio/") {
			continue
		}
		for _, d := range yamlDocs(t, f.Data) {
			js, err := yaml.YAMLToJSON(d)
			if err != nil {
				t.Fatalf("%s: %v", f.Path, err)
			}
			var r resource
			if err := json.Unmarshal(js, &r); err != nil {
				t.Fatalf("%s: %v", f.Path, err)
			}
			r.file, r.raw = f.Path, d
			out = append(out, r)
		}
	}
	return out
}

// strictTop checks that an Istio resource has only apiVersion, kind,
// metadata and spec, and that metadata is a valid ObjectMeta.
func strictTop(t *testing.T, r resource) {
	t.Helper()
	var top struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   metav1.ObjectMeta `json:"metadata"`
		Spec       json.RawMessage   `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(r.raw, &top); err != nil {
		t.Errorf("%s %s: %v", r.file, r.Kind, err)
	}
	if top.Metadata.Name == "" || top.Metadata.Namespace == "" {
		t.Errorf("%s %s: metadata needs name and namespace", r.file, r.Kind)
	}
}

// TestIstioResourcesStrict parses every Istio resource's spec into the
// istio.io/api types with unknown fields as errors, and every Kubernetes
// resource into the k8s.io/api types strictly.
func TestIstioResourcesStrict(t *testing.T) {
	seen := checkResourcesStrict(t, renderSample(t))
	for _, k := range []string{"EnvoyFilter", "WasmPlugin", "TrafficExtension", "Telemetry", "Deployment",
		"Service", "ServiceAccount", "ConfigMap", "PodDisruptionBudget", "Kustomization"} {
		if seen[k] == 0 {
			t.Errorf("no %s rendered", k)
		}
	}
}

func checkResourcesStrict(t *testing.T, files []File) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for _, r := range resourcesOf(t, files) {
		seen[r.Kind]++
		var msg proto.Message
		switch r.APIVersion + "/" + r.Kind {
		case "networking.istio.io/v1alpha3/EnvoyFilter":
			msg = &networkingv1alpha3.EnvoyFilter{}
		case "extensions.istio.io/v1alpha1/WasmPlugin":
			msg = &extensionsv1alpha1.WasmPlugin{}
		case "extensions.istio.io/v1alpha1/TrafficExtension":
			msg = &extensionsv1alpha1.TrafficExtension{}
		case "telemetry.istio.io/v1alpha1/Telemetry":
			msg = &telemetryv1alpha1.Telemetry{}
		case "apps/v1/Deployment":
			strictK8s(t, r, &appsv1.Deployment{})
		case "v1/Service":
			strictK8s(t, r, &corev1.Service{})
		case "v1/ServiceAccount":
			strictK8s(t, r, &corev1.ServiceAccount{})
		case "v1/ConfigMap":
			strictK8s(t, r, &corev1.ConfigMap{})
		case "policy/v1/PodDisruptionBudget":
			strictK8s(t, r, &policyv1.PodDisruptionBudget{})
		case "kustomize.config.k8s.io/v1beta1/Kustomization":
			checkKustomization(t, r)
		default:
			t.Errorf("%s: unexpected resource %s %s", r.file, r.APIVersion, r.Kind)
		}
		if msg == nil {
			continue
		}
		strictTop(t, r)
		if err := strictJSON.Unmarshal(r.Spec, msg); err != nil {
			t.Errorf("%s %s spec: %v", r.file, r.Kind, err)
		}
	}
	return seen
}

func strictK8s(t *testing.T, r resource, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(r.raw, into); err != nil {
		t.Errorf("%s %s: %v", r.file, r.Kind, err)
	}
}

func checkKustomization(t *testing.T, r resource) {
	t.Helper()
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	if err := yaml.UnmarshalStrict(r.raw, &k); err != nil {
		t.Errorf("%s: %v", r.file, err)
	}
	dir := filepath.Join(shippedDir, filepath.Dir(r.file))
	for _, res := range k.Resources {
		if _, err := os.Stat(filepath.Join(dir, res)); err != nil {
			t.Errorf("%s: resource %s: %v", r.file, res, err)
		}
	}
}

// validateAll runs the protoc-gen-validate rules of m and of every message
// packed in an Any inside it, recursively.
func validateAll(t *testing.T, where string, m proto.Message, checkTop bool) {
	t.Helper()
	if checkTop {
		if v, ok := m.(interface{ ValidateAll() error }); ok {
			if err := v.ValidateAll(); err != nil {
				t.Errorf("%s: %T: %v", where, m, err)
			}
		} else {
			t.Errorf("%s: %T has no ValidateAll", where, m)
		}
	}
	walkAnys(m.ProtoReflect(), func(a *anypb.Any) {
		inner, err := a.UnmarshalNew()
		if err != nil {
			t.Errorf("%s: @type %s does not resolve: %v", where, a.TypeUrl, err)
			return
		}
		switch inner.(type) {
		case *wrapperspb.StringValue:
			return // the wasm plugin configuration: the policy, checked separately
		}
		validateAll(t, where+" > "+a.TypeUrl, inner, true)
	})
}

func walkAnys(m protoreflect.Message, fn func(*anypb.Any)) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		fn(a)
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil {
			return true
		}
		switch {
		case fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				walkAnys(v.List().Get(i).Message(), fn)
			}
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					walkAnys(mv.Message(), fn)
					return true
				})
			}
		default:
			walkAnys(v.Message(), fn)
		}
		return true
	})
}

// minimalHCM and minimalCluster stand for the objects Istio generates, so
// that a MERGE patch can be validated as the merged result.
func minimalHCM() *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{
		StatPrefix: "gateway",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: "http.8080",
			ConfigSource:    &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: nameRouter}},
	}
}

func minimalCluster() *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 "inbound|8080||",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:       durationpb.New(10e9),
	}
}

type envoyPatch struct {
	file, applyTo, op, context string
	value                      json.RawMessage
}

func envoyFilterPatches(t *testing.T) []envoyPatch {
	t.Helper()
	return patchesOf(t, renderSample(t))
}

func patchesOf(t *testing.T, files []File) []envoyPatch {
	t.Helper()
	var out []envoyPatch
	for _, r := range resourcesOf(t, files) {
		if r.Kind != "EnvoyFilter" {
			continue
		}
		var spec struct {
			ConfigPatches []struct {
				ApplyTo string `json:"applyTo"`
				Match   struct {
					Context string `json:"context"`
				} `json:"match"`
				Patch struct {
					Operation string          `json:"operation"`
					Value     json.RawMessage `json:"value"`
				} `json:"patch"`
			} `json:"configPatches"`
		}
		if err := json.Unmarshal(r.Spec, &spec); err != nil {
			t.Fatal(err)
		}
		for _, p := range spec.ConfigPatches {
			out = append(out, envoyPatch{r.file, p.ApplyTo, p.Patch.Operation, p.Match.Context, p.Patch.Value})
		}
	}
	return out
}

// TestEnvoyFilterPatchesValidate unmarshals every EnvoyFilter patch value
// into the go-control-plane type its applyTo names (unknown fields and
// unresolvable @types are errors) and runs ValidateAll on it; a MERGE value
// is validated merged into a minimal object of its kind.
func TestEnvoyFilterPatchesValidate(t *testing.T) {
	patches := envoyFilterPatches(t)
	if len(patches) == 0 {
		t.Fatal("no EnvoyFilter patches")
	}
	checkPatches(t, patches)
}

func checkPatches(t *testing.T, patches []envoyPatch) {
	t.Helper()
	for i, p := range patches {
		where := fmt.Sprintf("%s patch %d (%s %s)", p.file, i, p.applyTo, p.op)
		switch p.applyTo + " " + p.op {
		case "HTTP_FILTER INSERT_BEFORE", "HTTP_FILTER ADD":
			f := &hcmv3.HttpFilter{}
			if err := strictJSON.Unmarshal(p.value, f); err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			validateAll(t, where, f, true)
		case "HTTP_FILTER MERGE":
			// Istio merges the typed configs field by field
			// (MergeAnyWithAny in pilot/pkg/networking/util/util.go).
			f := &hcmv3.HttpFilter{}
			if err := strictJSON.Unmarshal(p.value, f); err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			if f.GetName() != nameRouter {
				t.Errorf("%s: merges into %q, only the router is validated", where, f.GetName())
				continue
			}
			partial := &routerv3.Router{}
			if err := f.GetTypedConfig().UnmarshalTo(partial); err != nil {
				t.Errorf("%s: typed_config is not a Router: %v", where, err)
				continue
			}
			merged := &routerv3.Router{}
			proto.Merge(merged, partial)
			validateAll(t, where, merged, true)
		case "NETWORK_FILTER MERGE":
			f := &listenerv3.Filter{}
			if err := strictJSON.Unmarshal(p.value, f); err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			partial := &hcmv3.HttpConnectionManager{}
			if err := f.GetTypedConfig().UnmarshalTo(partial); err != nil {
				t.Errorf("%s: typed_config is not an HttpConnectionManager: %v", where, err)
				continue
			}
			merged := minimalHCM()
			proto.Merge(merged, partial)
			validateAll(t, where, merged, true)
		case "CLUSTER MERGE":
			c := &clusterv3.Cluster{}
			if err := strictJSON.Unmarshal(p.value, c); err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			merged := minimalCluster()
			proto.Merge(merged, c)
			validateAll(t, where, merged, true)
			if len(c.TypedExtensionProtocolOptions) == 0 {
				t.Errorf("%s: no protocol options", where)
			}
		case "EXTENSION_CONFIG ADD":
			e := &corev3.TypedExtensionConfig{}
			if err := strictJSON.Unmarshal(p.value, e); err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			validateAll(t, where, agentConverted(t, where, e), true)
		default:
			t.Errorf("%s: no validation for this patch kind", where)
		}
	}
}

// TestEnvoyBootstrapValidates parses envoy/envoy.yaml strictly into the
// Bootstrap type and runs ValidateAll on it and on every packed config.
func TestEnvoyBootstrapValidates(t *testing.T) {
	b := checkBootstrap(t, renderSample(t))
	for _, l := range b.GetStaticResources().GetListeners() {
		if a := l.GetAddress().GetSocketAddress().GetAddress(); a != "127.0.0.1" {
			t.Errorf("listener %s on %s, want 127.0.0.1", l.Name, a)
		}
	}
	want := map[string]uint32{"tracebridge_extproc": 9002, "zipkin": 9411}
	for _, c := range b.GetStaticResources().GetClusters() {
		if port, ok := want[c.Name]; ok {
			sa := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
			if sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != port {
				t.Errorf("cluster %s -> %s:%d, want 127.0.0.1:%d", c.Name, sa.GetAddress(), sa.GetPortValue(), port)
			}
			delete(want, c.Name)
		}
	}
	if len(want) > 0 {
		t.Errorf("clusters missing: %v", want)
	}
}

func checkBootstrap(t *testing.T, files []File) *bootstrapv3.Bootstrap {
	t.Helper()
	var data []byte
	for _, f := range files {
		if f.Path == "envoy/envoy.yaml" {
			data = f.Data
		}
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := strictJSON.Unmarshal(js, b); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	validateAll(t, "envoy/envoy.yaml", b, true)
	return b
}

// TestOnePolicyEverywhere: the places the policy shows up agree with it and
// with each other.
func TestOnePolicyEverywhere(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(shippedDir, "sample-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := loadPolicy(data)
	if err != nil {
		t.Fatal(err)
	}
	var headerTags, metadataTags []string
	for _, tg := range p.tags() {
		if tg.header2 && tg.inbound {
			headerTags = append(headerTags, tg.name+"="+tg.header)
		}
		if tg.metadata {
			metadataTags = append(metadataTags, tg.name)
		}
	}
	sort.Strings(headerTags)
	sort.Strings(metadataTags)
	if len(headerTags) == 0 || len(metadataTags) == 0 {
		t.Fatal("the sample policy should have header and metadata tags")
	}

	var pluginConfigs []string
	var gatewayTelemetries int
	for _, r := range shippedResources(t) {
		switch r.Kind {
		case "WasmPlugin":
			var s extensionsv1alpha1.WasmPlugin
			mustProto(t, r.Spec, &s)
			pluginConfigs = append(pluginConfigs, policyFromStruct(t, s.PluginConfig.AsMap()))
		case "TrafficExtension":
			var s extensionsv1alpha1.TrafficExtension
			mustProto(t, r.Spec, &s)
			pluginConfigs = append(pluginConfigs, policyFromStruct(t, s.GetWasm().PluginConfig.AsMap()))
		case "ConfigMap":
			var cm corev1.ConfigMap
			_ = yaml.Unmarshal(r.raw, &cm)
			if _, err := engine.LoadPolicy([]byte(cm.Data["policy.json"]), placeholderEnv); err != nil {
				t.Errorf("%s: policy.json: %v", r.file, err)
			}
		case "Telemetry":
			if strings.Contains(r.file, "/gateway-enrichment") {
				gatewayTelemetries += checkGatewayTelemetry(t, r, metadataTags)
				continue
			}
			var s telemetryv1alpha1.Telemetry
			mustProto(t, r.Spec, &s)
			var got []string
			var clientOff bool
			for _, tr := range s.Tracing {
				if tr.GetMatch().GetMode() == telemetryv1alpha1.WorkloadMode_CLIENT && tr.GetDisableSpanReporting().GetValue() {
					clientOff = true
				}
				for name, ct := range tr.CustomTags {
					got = append(got, name+"="+ct.GetHeader().GetName())
				}
			}
			sort.Strings(got)
			if !slices.Equal(got, headerTags) {
				t.Errorf("Telemetry customTags %v, policy header tags %v", got, headerTags)
			}
			if !clientOff {
				t.Error("Telemetry does not turn client-side span reporting off")
			}
		}
	}
	// A WasmPlugin and a TrafficExtension in each sidecar overlay.
	if len(pluginConfigs) != 4 || slices.ContainsFunc(pluginConfigs, func(c string) bool { return c != pluginConfigs[0] }) {
		t.Errorf("WasmPlugin and TrafficExtension pluginConfigs differ or are missing: %v", pluginConfigs)
	}

	removals, _, err := p.earlyRemovals()
	if err != nil {
		t.Fatal(err)
	}
	var sawEarly, sawTags int
	for _, pt := range envoyFilterPatches(t) {
		if pt.applyTo != "NETWORK_FILTER" {
			continue
		}
		f := &listenerv3.Filter{}
		mustProto(t, pt.value, f)
		h := &hcmv3.HttpConnectionManager{}
		if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
			t.Fatal(err)
		}
		if ext := h.EarlyHeaderMutationExtensions; len(ext) > 0 {
			sawEarly++
			var got []string
			for _, e := range ext {
				inner, _ := e.TypedConfig.UnmarshalNew()
				for _, m := range inner.(interface {
					GetMutations() []*mutationRule
				}).GetMutations() {
					got = append(got, m.GetRemove())
				}
			}
			want := removals
			if strings.Contains(pt.file, ModeGatewayEnrichmentUpstream) {
				want = p.untrustedOwnedHeaders() // the owned headers only (see gatewayEnrichmentUpstream)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: early mutation removes %v, policy says %v", pt.file, got, want)
			}
		}
		if tags := h.GetTracing().GetCustomTags(); len(tags) > 0 {
			sawTags++
			var got []string
			for _, ct := range tags {
				md := ct.GetMetadata()
				if md.GetMetadataKey().GetKey() != engine.MetadataNamespace || md.GetKind().GetRequest() == nil ||
					len(md.GetMetadataKey().GetPath()) != 1 || md.GetMetadataKey().GetPath()[0].GetKey() != ct.Tag {
					t.Errorf("%s: custom tag %s does not read request metadata tracebridge.%s", pt.file, ct.Tag, ct.Tag)
				}
				got = append(got, ct.Tag)
			}
			sort.Strings(got)
			if !slices.Equal(got, metadataTags) {
				t.Errorf("%s: metadata custom tags %v, policy %v", pt.file, got, metadataTags)
			}
		}
	}
	if sawEarly != 2 || sawTags != 0 || gatewayTelemetries != 2 {
		t.Errorf("early mutations %d (want 2: edge-trust, gateway-enrichment-upstream), metadata tag patches %d (want 0), gateway tag Telemetries %d (want 2)", sawEarly, sawTags, gatewayTelemetries)
	}
}

// agentConverted does to a wasm ECDS resource what istio-agent does before
// Envoy sees it (pkg/wasm: the remote oci:// module is fetched and the remote
// source replaced by a local file), so that ValidateAll checks what Envoy
// receives: Envoy requires a sha256 on remote sources, which Istio's own
// WasmPlugin resources leave empty for the agent too.
func agentConverted(t *testing.T, where string, e *corev3.TypedExtensionConfig) *corev3.TypedExtensionConfig {
	t.Helper()
	w := &wasmfilterv3.Wasm{}
	if err := e.GetTypedConfig().UnmarshalTo(w); err != nil {
		t.Errorf("%s: not a wasm config: %v", where, err)
		return e
	}
	code := w.GetConfig().GetVmConfig().GetCode()
	uri := code.GetRemote().GetHttpUri().GetUri()
	if !strings.HasPrefix(uri, "oci://") || code.GetRemote().GetHttpUri().GetCluster() != "_" {
		t.Errorf("%s: remote module %q (cluster %q): want an oci:// URL for istio-agent", where, uri, code.GetRemote().GetHttpUri().GetCluster())
	}
	code.Specifier = &corev3.AsyncDataSource_Local{Local: &corev3.DataSource{
		Specifier: &corev3.DataSource_Filename{Filename: "/var/lib/istio/data/tracebridge.wasm"},
	}}
	out := proto.Clone(e).(*corev3.TypedExtensionConfig)
	a, err := anypb.New(w)
	if err != nil {
		t.Fatal(err)
	}
	out.TypedConfig = a
	return out
}

func mustProto(t *testing.T, js []byte, m proto.Message) {
	t.Helper()
	if err := strictJSON.Unmarshal(js, m); err != nil {
		t.Fatal(err)
	}
}

// policyFromStruct checks a pluginConfig is a valid policy and returns it as
// canonical JSON.
func policyFromStruct(t *testing.T, m map[string]any) string {
	t.Helper()
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.LoadPolicy(data, placeholderEnv); err != nil {
		t.Errorf("pluginConfig is not a valid policy: %v", err)
	}
	return string(data)
}

type mutationRule = mutationv3.HeaderMutation
