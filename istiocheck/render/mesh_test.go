package render

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/wasm"
	"sigs.k8s.io/yaml"
)

// The mesh every overlay is rendered into: a selected sidecar workload with
// an http, a grpc and a sniffed (unnamed protocol) port, JWT authentication
// and an authorization policy so that Istio's own filters are in its HTTP
// connection managers; an ingress gateway routing to a backend; Zipkin as the
// mesh's default tracing provider.
const meshYAML = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: app, namespace: default}
spec:
  hosts: [app.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {name: http-web, number: 8080, protocol: HTTP}
  - {name: grpc-api, number: 9090, protocol: GRPC}
  - {name: sniffed, number: 7070}
  endpoints:
  - address: 10.0.0.1
    labels: {app: app, tracebridge.io/enabled: "true"}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: productpage, namespace: bookinfo}
spec:
  hosts: [productpage.bookinfo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {name: http, number: 9080, protocol: HTTP}
  endpoints:
  - address: 10.0.0.3
    labels: {app: productpage}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: zipkin, namespace: istio-system}
spec:
  hosts: [zipkin.istio-system.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {name: http-zipkin, number: 9411, protocol: HTTP}
  endpoints:
  - address: 10.0.0.4
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: productpage, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: [ingress]
  http:
  - route:
    - destination: {host: productpage.bookinfo.svc.cluster.local, port: {number: 9080}}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  selector: {matchLabels: {app: app}}
  jwtRules:
  - issuer: https://issuer.example
    jwks: '{"keys":[{"kty":"RSA","e":"AQAB","n":"xAE7eB6qugXyCAG3yhh7pkDkT65pHymX-P7KfIupjf59vsdo91bSP9C8H07pSAGQO1MV_xFj9VswgsCg4R6otmg5PV2He95lZdHtOcU5DXIg_pbhLdKXbi66GlVeK6ABZOUW3WYtnNHD-91gVuoeJT_DwtGGcp4ignkgXfkiEm4sw-4sfb4qdt5oLbyVpmW6x9cfa7vs2WTfURiCrBoUqgBo_-4WTiULmmHSGZHOjzwa8WtrtOQGsAFjIbno85jp6MnGGGZPYZbDAa_b3y5u-YpW7ypZrvD8BgtKVjgtQgZhLAGezMt0ua3DRrWnKqTZ0BJ_EyxOGuHJrLsn00fnMQ"}]}'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-app, namespace: default}
spec:
  selector: {matchLabels: {app: app}}
  action: ALLOW
  rules:
  - to:
    - operation: {methods: [GET, POST]}
`

var (
	sidecarLabels = map[string]string{"app": "app", "tracebridge.io/enabled": "true"}
	gatewayLabels = map[string]string{"istio": "ingressgateway"}
)

// meshConfig makes Zipkin the default tracing provider.
func meshConfig() *meshconfig.MeshConfig {
	m := mesh.DefaultMeshConfig()
	m.ExtensionProviders = append(m.ExtensionProviders, &meshconfig.MeshConfig_ExtensionProvider{
		Name: "zipkin",
		Provider: &meshconfig.MeshConfig_ExtensionProvider_Zipkin{Zipkin: &meshconfig.MeshConfig_ExtensionProvider_ZipkinTracingProvider{
			Service: "zipkin.istio-system.svc.cluster.local", Port: 9411,
		}},
	})
	m.DefaultProviders = &meshconfig.MeshConfig_DefaultProviders{Tracing: []string{"zipkin"}}
	return m
}

// overlayDocs is the kustomize build of an overlay of manifests/istio, as
// YAML documents. kubectl kustomize when kubectl is installed; otherwise the
// kustomization's resources, the only field the shipped overlays use.
func overlayDocs(t *testing.T, dir string) []string {
	t.Helper()
	// Read by the test itself too, so that Go's test cache sees the files.
	kubectl, lookErr := exec.LookPath("kubectl")
	data := resourcesOf(t, dir, lookErr != nil)
	if lookErr == nil {
		out, err := exec.Command(kubectl, "kustomize", dir).Output()
		if err != nil {
			t.Fatalf("kubectl kustomize %s: %v", dir, err)
		}
		data = out
	}
	var docs []string
	for _, d := range strings.Split(string(data), "\n---\n") {
		if strings.TrimSpace(d) != "" {
			docs = append(docs, d)
		}
	}
	return docs
}

func resourcesOf(t *testing.T, dir string, strict bool) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k map[string]any
	if err := yaml.Unmarshal(raw, &k); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for key, v := range k {
		switch key {
		case "apiVersion", "kind":
		case "resources":
			for _, r := range v.([]any) {
				p := filepath.Join(dir, r.(string))
				if fi, err := os.Stat(p); err == nil && fi.IsDir() {
					out.Write(resourcesOf(t, p, strict))
					continue
				}
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				out.WriteString("\n---\n")
				out.Write(b)
				out.WriteString("\n---\n")
			}
		default:
			if strict {
				t.Fatalf("%s: kustomization field %q needs kubectl kustomize", dir, key)
			}
		}
	}
	return out.Bytes()
}

func kindOf(t *testing.T, doc string) (apiVersion, kind string) {
	t.Helper()
	var h struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal([]byte(doc), &h); err != nil {
		t.Fatal(err)
	}
	return h.APIVersion, h.Kind
}

// render is what pilot generates for the sidecar and the gateway of the mesh
// with the given tracebridge documents applied.
type render struct {
	sidecarListeners, gatewayListeners []*listener.Listener
	sidecarClusters, gatewayClusters   []*cluster.Cluster
	// ecds is what Envoy receives for each ECDS name the listeners and
	// clusters reference: pilot's resource after istio-agent's conversion.
	ecds map[string]*core.TypedExtensionConfig
}

func renderMesh(t *testing.T, docs []string) *render {
	t.Helper()
	var istio, kube []string
	for _, d := range docs {
		api, kind := kindOf(t, d)
		switch {
		case strings.Contains(api, "istio.io/"):
			istio = append(istio, d)
		case kind == "Service":
			kube = append(kube, d)
		}
	}
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{
		ConfigString:           meshYAML + "\n---\n" + strings.Join(istio, "\n---\n"),
		KubernetesObjectString: strings.Join(kube, "\n---\n"),
		MeshConfig:             meshConfig(),
	})
	sidecar := s.SetupProxy(&model.Proxy{
		Type:            model.SidecarProxy,
		IPAddresses:     []string{"10.0.0.1"},
		ConfigNamespace: "default",
		Labels:          sidecarLabels,
		Metadata:        &model.NodeMetadata{Labels: sidecarLabels, IstioVersion: "1.31.0", Namespace: "default"},
	})
	gateway := s.SetupProxy(&model.Proxy{
		Type:            model.Router,
		ID:              "ingress.istio-system",
		IPAddresses:     []string{"10.0.0.2"},
		ConfigNamespace: "istio-system",
		Labels:          gatewayLabels,
		Metadata:        &model.NodeMetadata{Labels: gatewayLabels, IstioVersion: "1.31.0", Namespace: "istio-system"},
	})
	r := &render{
		sidecarListeners: s.Listeners(sidecar),
		sidecarClusters:  s.Clusters(sidecar),
		gatewayListeners: s.Listeners(gateway),
		gatewayClusters:  s.Clusters(gateway),
		ecds:             map[string]*core.TypedExtensionConfig{},
	}
	for _, p := range []struct {
		proxy *model.Proxy
		ls    []*listener.Listener
		cs    []*cluster.Cluster
	}{{sidecar, r.sidecarListeners, r.sidecarClusters}, {gateway, r.gatewayListeners, r.gatewayClusters}} {
		var names []string
		for _, ref := range ecdsRefs(p.ls, p.cs) {
			names = append(names, ref.filter.GetName())
		}
		if len(names) == 0 {
			continue
		}
		exts := s.ConfigGen.BuildExtensionConfiguration(p.proxy, s.PushContext(), names, nil)
		for _, e := range agentConvert(t, exts) {
			r.ecds[e.GetName()] = e
		}
	}
	return r
}

// agentConvert runs istio-agent's conversion of ECDS resources
// (pkg/wasm.MaybeConvertWasmExtensionConfig) with its real module cache. The
// registry is not reachable from the test, so the conversion takes the path
// a failed image fetch takes: the filter Istio's FAIL_OPEN / FAIL_CLOSE
// fallback puts in its place.
func agentConvert(t *testing.T, exts []*core.TypedExtensionConfig) []*core.TypedExtensionConfig {
	t.Helper()
	cache := wasm.NewLocalFileCache(t.TempDir(), wasm.Options{
		HTTPRequestTimeout: 2 * time.Second, HTTPRequestMaxRetries: 0,
		PurgeInterval: time.Hour, ModuleExpiry: time.Hour,
	})
	defer cache.Cleanup()
	var anys []*anypb.Any
	for _, e := range exts {
		a, err := anypb.New(e)
		if err != nil {
			t.Fatal(err)
		}
		anys = append(anys, a)
	}
	if err := wasm.MaybeConvertWasmExtensionConfig(anys, cache); err != nil {
		t.Fatalf("istio-agent conversion: %v", err)
	}
	var out []*core.TypedExtensionConfig
	for _, a := range anys {
		e := &core.TypedExtensionConfig{}
		if err := a.UnmarshalTo(e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// ecdsRef is an HTTP filter configured through ECDS and where it sits.
type ecdsRef struct {
	where  string
	filter *hcm.HttpFilter
}

func ecdsRefs(ls []*listener.Listener, cs []*cluster.Cluster) []ecdsRef {
	var out []ecdsRef
	for _, h := range hcms(ls) {
		for _, f := range h.cfg.GetHttpFilters() {
			if f.GetConfigDiscovery() != nil {
				out = append(out, ecdsRef{h.where, f})
			}
			if r := routerOf(f); r != nil {
				for _, u := range r.GetUpstreamHttpFilters() {
					if u.GetConfigDiscovery() != nil {
						out = append(out, ecdsRef{h.where + " router upstream", u})
					}
				}
			}
		}
	}
	for _, c := range cs {
		for _, f := range protocolOptions(c).GetHttpFilters() {
			if f.GetConfigDiscovery() != nil {
				out = append(out, ecdsRef{"cluster " + c.GetName(), f})
			}
		}
	}
	return out
}

// hcmAt is one HTTP connection manager of a listener.
type hcmAt struct {
	where   string
	inbound bool
	cfg     *hcm.HttpConnectionManager
}

func hcms(ls []*listener.Listener) []hcmAt {
	var out []hcmAt
	for _, l := range ls {
		for i, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				h := &hcm.HttpConnectionManager{}
				if f.GetTypedConfig() == nil || !f.GetTypedConfig().MessageIs(h) {
					continue
				}
				if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
					panic(err)
				}
				out = append(out, hcmAt{
					where:   fmt.Sprintf("listener %s chain %d (%s)", l.GetName(), i, fc.GetName()),
					inbound: l.GetTrafficDirection() == core.TrafficDirection_INBOUND,
					cfg:     h,
				})
			}
		}
	}
	return out
}

func filterNames(h *hcm.HttpConnectionManager) []string {
	var out []string
	for _, f := range h.GetHttpFilters() {
		out = append(out, f.GetName())
	}
	return out
}

func indexOf(names []string, match func(string) bool) int {
	return slices.IndexFunc(names, match)
}
