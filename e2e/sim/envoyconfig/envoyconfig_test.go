package envoyconfig

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func golden(t testing.TB, file string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "istiocheck", "golden", file))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func names(fs []Filter) string {
	var s []string
	for _, f := range fs {
		s = append(s, f.Name)
	}
	return strings.Join(s, ",")
}

// TestGolden reads the HCMs the harness runs from Istio's generated
// configuration of each mode.
func TestGolden(t *testing.T) {
	const ecds = "extensions.istio.io/trafficextension/default.tracebridge"
	cases := []struct {
		file     string
		chain    Chain
		filters  string
		upstream string
		tracing  bool
		tags     string
		cluster  string
		early    int
	}{
		{"sidecar-auto-forward/sidecar.yaml", Chain{"virtualInbound", 8080}, "istio.metadata_exchange,envoy.filters.http.jwt_authn,envoy.filters.http.rbac," + ecds + ",envoy.filters.http.grpc_stats,envoy.filters.http.fault,envoy.filters.http.cors", "", true, "plan,route,tenant", "inbound|8080||", 0},
		{"sidecar-auto-forward/sidecar.yaml", Chain{"0.0.0.0_9080", 0}, "istio.metadata_exchange," + ecds + ",envoy.filters.http.grpc_stats,istio.alpn,envoy.filters.http.fault,envoy.filters.http.cors", "", false, "", "", 0},
		// Precise parenting: the listener filter on outbound only (match
		// CLIENT); inbound, the router's upstream filter is the one instance.
		{"precise-parenting/sidecar.yaml", Chain{"virtualInbound", 8080}, "istio.metadata_exchange,envoy.filters.http.jwt_authn,envoy.filters.http.rbac,envoy.filters.http.grpc_stats,envoy.filters.http.fault,envoy.filters.http.cors", "tracebridge-upstream", true, "plan,route,tenant", "inbound|8080||", 0},
		{"precise-parenting/sidecar.yaml", Chain{"0.0.0.0_9080", 0}, "istio.metadata_exchange," + ecds + ",envoy.filters.http.grpc_stats,istio.alpn,envoy.filters.http.fault,envoy.filters.http.cors", "", false, "", "", 0},
		{"precise-parenting/sidecar-wasmplugin.yaml", Chain{"virtualInbound", 8080}, "istio.metadata_exchange,envoy.filters.http.jwt_authn,envoy.filters.http.rbac,envoy.filters.http.grpc_stats,envoy.filters.http.fault,envoy.filters.http.cors", "tracebridge-upstream", true, "plan,route,tenant", "inbound|8080||", 0},
		{"precise-parenting/sidecar-wasmplugin.yaml", Chain{"0.0.0.0_9080", 0}, "istio.metadata_exchange,extensions.istio.io/trafficextension/default.tracebridge~istio-translated-wasmplugin,envoy.filters.http.grpc_stats,istio.alpn,envoy.filters.http.fault,envoy.filters.http.cors", "", false, "", "", 0},
	}
	for _, c := range cases {
		t.Run(c.file+"/"+c.chain.Listener, func(t *testing.T) {
			f, err := Parse(golden(t, c.file))
			if err != nil {
				t.Fatal(err)
			}
			h, err := f.HCM(c.chain)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(h.Filters); got != c.filters {
				t.Errorf("filters %s\n want %s", got, c.filters)
			}
			if got := names(h.UpstreamFilters); got != c.upstream {
				t.Errorf("upstream filters %q, want %q", got, c.upstream)
			}
			if (h.Tracing != nil) != c.tracing {
				t.Fatalf("tracing block %v, want %v", h.Tracing != nil, c.tracing)
			}
			if h.Tracing != nil {
				var tags []string
				for _, ct := range h.Tracing.CustomTags {
					if !strings.HasPrefix(ct.GetTag(), "istio.") {
						tags = append(tags, ct.GetTag())
					}
				}
				if got := strings.Join(tags, ","); got != c.tags {
					t.Errorf("tracebridge tags %q, want %q", got, c.tags)
				}
				if h.Tracing.CollectorCluster != "outbound|9411||zipkin.istio-system.svc.cluster.local" {
					t.Errorf("collector cluster %q", h.Tracing.CollectorCluster)
				}
			}
			if h.Cluster != c.cluster {
				t.Errorf("cluster %q, want %q", h.Cluster, c.cluster)
			}
			if len(h.EarlyHeaderRemovals) < c.early || (c.early == 0 && len(h.EarlyHeaderRemovals) > 0) {
				t.Errorf("early removals %v", h.EarlyHeaderRemovals)
			}
		})
	}
}

// TestGatewaySpawnsUpstreamSpan: Istio's gateways set the tracing block's
// spawn_upstream_span, which the harness does not model (the router's own
// upstream span), so their HCMs are refused naming it.
func TestGatewaySpawnsUpstreamSpan(t *testing.T) {
	for _, file := range []string{"gateway-enrichment/gateway.yaml", "gateway-enrichment-upstream/gateway.yaml", "edge-trust/gateway.yaml"} {
		f, err := Parse(golden(t, file))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.HCM(Chain{Listener: "0.0.0.0_80"}); err == nil || !strings.Contains(err.Error(), "tracing.spawn_upstream_span: not modelled") {
			t.Errorf("%s: %v, want spawn_upstream_span refused", file, err)
		}
	}
}

// TestGatewayUpstreamCluster: gateway-enrichment-upstream puts ext_proc on
// the backend's cluster only.
func TestGatewayUpstreamCluster(t *testing.T) {
	f, err := Parse(golden(t, "gateway-enrichment-upstream/gateway.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	fs, err := f.ClusterUpstreamFilters("outbound|9080||productpage.bookinfo.svc.cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Kind != ExtProc || fs[0].ExtProc.GetFailureModeAllow() != true {
		t.Fatalf("productpage cluster filters %+v, want ext_proc failing open", fs)
	}
	if fs, err := f.ClusterUpstreamFilters("outbound|9411||zipkin.istio-system.svc.cluster.local"); err != nil || fs != nil {
		t.Fatalf("zipkin cluster filters %v %v, want none", fs, err)
	}
}

// TestRefusesUnmodelled: configuration the harness does not model is
// refused naming the field.
func TestRefusesUnmodelled(t *testing.T) {
	base := string(golden(t, "precise-parenting/sidecar.yaml"))
	cases := []struct {
		name, old, new, want string
	}{
		{"unknown filter", "- name: envoy.filters.http.grpc_stats", "- name: envoy.filters.http.lua", "http_filters[3] (envoy.filters.http.lua): HTTP filter not modelled"},
		{"hcm field", "        stream_idle_timeout: 0s\n", "        stream_idle_timeout: 0s\n        generate_request_id: false\n", ".generate_request_id: not modelled"},
		{"ecds without wasm", "                - type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm\n                - type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC\n", "                - type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC\n", "admits no Wasm config"},
		{"overall sampling", "          overall_sampling:\n            value: 100", "          overall_sampling:\n            value: 50", "overall_sampling: 50 % not modelled"},
		{"router field", "            upstream_http_filters:", "            suppress_envoy_headers: true\n            upstream_http_filters:", "typed_config.suppress_envoy_headers: not modelled"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mod := strings.ReplaceAll(base, c.old, c.new)
			if mod == base {
				t.Fatalf("%q not in the golden file", c.old)
			}
			f, err := Parse([]byte(mod))
			if err == nil {
				_, err = f.HCM(Chain{"virtualInbound", 8080})
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(golden(f, "edge-trust/gateway.yaml"))
	if data, err := os.ReadFile(filepath.Join("..", "..", "..", "manifests", "envoy", "envoy.yaml")); err == nil {
		f.Add(data)
	}
	f.Add([]byte("listeners:\n- name: x\n  filter_chains:\n  - filters:\n    - name: envoy.filters.network.http_connection_manager\n      typed_config: {'@type': type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager}\n"))
	f.Add([]byte("clusters: [{name: a}]\nextension_configs: [{name: b, typed_config: {'@type': type.googleapis.com/foo.Bar, x: 1}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		for name := range file.listeners {
			h, err := file.HCM(Chain{Listener: name})
			if err != nil {
				continue
			}
			for _, fl := range append(h.Filters, h.UpstreamFilters...) {
				if fl.ExtProc != nil {
					_, _ = ExtProcConfig(fl.Path, fl.ExtProc)
				}
			}
		}
	})
}

// TestEnvoyBootstrap reads the plain-Envoy bootstrap the manifests ship.
func TestEnvoyBootstrap(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "manifests", "envoy", "envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	in, err := f.HCM(Chain{Listener: "inbound"})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(in.Filters); got != "envoy.filters.http.wasm,envoy.filters.http.ext_proc" {
		t.Errorf("inbound filters %s", got)
	}
	if w := in.Filters[0]; !w.FailOpen || !strings.Contains(string(w.WasmConfig), `"untrustedDirections":["inbound"]`) {
		t.Errorf("inbound wasm: fail open %v, config %s", w.FailOpen, w.WasmConfig)
	}
	st, err := ExtProcConfig(in.Filters[1].Path, in.Filters[1].ExtProc)
	if err != nil {
		t.Fatal(err)
	}
	if st.Cluster != "tracebridge_extproc" || !st.FailureModeAllow || st.MessageTimeout != 100*time.Millisecond || !slices.Equal(st.ReceivingNamespaces, []string{"tracebridge"}) {
		t.Errorf("ext_proc settings %+v", st)
	}
	if in.Cluster != "app" || in.Tracing == nil || in.Tracing.CollectorCluster != "zipkin" || in.Tracing.RandomSampling != 100 || len(in.EarlyHeaderRemovals) != 15 {
		t.Errorf("inbound: cluster %q, tracing %+v, early removals %v", in.Cluster, in.Tracing, in.EarlyHeaderRemovals)
	}
	out, err := f.HCM(Chain{Listener: "outbound"})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(out.Filters); got != "envoy.filters.http.wasm,envoy.filters.http.dynamic_forward_proxy" || out.Tracing != nil {
		t.Errorf("outbound filters %s, tracing %v", got, out.Tracing != nil)
	}
	for _, c := range []struct{ old, new, want string }{
		{"request_trailer_mode: SKIP", "request_trailer_mode: SKIP\n                request_body_mode: BUFFERED", "processing_mode"},
		{"- xds.listener_direction", "- request.path", "request_attributes[1]: request.path not modelled"},
		{"failure_policy: FAIL_OPEN", "failure_policy: FAIL_RELOAD", "failure_policy: FAIL_RELOAD not modelled"},
		{"admin:", "overload_manager: {}\nadmin:", "overload_manager: bootstrap field not modelled"},
	} {
		mod := strings.Replace(string(data), c.old, c.new, 1)
		if mod == string(data) {
			t.Fatalf("%q not in envoy.yaml", c.old)
		}
		f, err := Parse([]byte(mod))
		if err == nil {
			var h *HCM
			if h, err = f.HCM(Chain{Listener: "inbound"}); err == nil {
				_, err = ExtProcConfig(h.Filters[1].Path, h.Filters[1].ExtProc)
			}
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.new, err, c.want)
		}
	}
}
