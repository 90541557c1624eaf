// Package envoyconfig reads the Envoy configuration Istio generated for a
// proxy (istiocheck's golden files: listeners, clusters and ECDS resources
// as YAML with proto field names) and reduces one HTTP connection manager to
// what the e2e/sim/envoysim harness models: the HTTP filters in order, the
// router's and the cluster's upstream filters, the tracing block and early
// header mutation. Everything the harness does not model either appears in an
// explicit pass-through list with the reason it cannot change a trace, or
// refuses the configuration naming the field.
//
// Addresses are not taken from the file: listeners are chosen by name and
// filter-chain match, clusters by name, and the caller maps them onto its
// 127.0.0.1 ports (e2e/README.md, "Configuration from Istio").
package envoyconfig

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tracecfgv3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	earlyhmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	wasmv3pb "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"sigs.k8s.io/yaml"

	// Types the harness reads or checks inside an HCM.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/upstream_codec/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/request_id/uuid/v3"
)

// MaxFileBytes bounds a configuration file.
const MaxFileBytes = 8 << 20

// Type URLs the harness models.
const (
	typeHCM          = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	typeRouter       = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
	typeExtProc      = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor"
	typeWasm         = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
	typeCodec        = "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"
	typeUUID         = "type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig"
	typeZipkin       = "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig"
	typeEarlyHM      = "type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation"
	typeProtoOptions = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	typeUnresolved   = "type.googleapis.com/google.protobuf.Struct"
)

// File is one proxy's configuration.
type File struct {
	listeners map[string]json.RawMessage
	clusters  map[string]*clusterv3.Cluster
	// Extensions are the ECDS resources, by name.
	Extensions map[string]*anypb.Any
}

// Parse reads a file: YAML (or JSON) with top-level listeners, clusters
// and extension_configs.
func Parse(data []byte) (*File, error) {
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("configuration is %d bytes, more than %d", len(data), MaxFileBytes)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil {
		return nil, err
	}
	// A bootstrap (manifests/envoy/envoy.yaml): its static resources; the
	// admin listener and node identity are mapped by the caller.
	if sr, ok := top["static_resources"]; ok {
		for k := range top {
			if k != "static_resources" && k != "admin" && k != "node" {
				return nil, fmt.Errorf("%s: bootstrap field not modelled by the harness", k)
			}
		}
		top = nil
		if err := json.Unmarshal(sr, &top); err != nil {
			return nil, fmt.Errorf("static_resources: %w", err)
		}
	}
	f := &File{listeners: map[string]json.RawMessage{}, clusters: map[string]*clusterv3.Cluster{}, Extensions: map[string]*anypb.Any{}}
	for k, v := range top {
		var items []map[string]any
		if err := json.Unmarshal(v, &items); err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		for i, it := range items {
			name, _ := it["name"].(string)
			if name == "" {
				return nil, fmt.Errorf("%s[%d].name: missing", k, i)
			}
			stubUnresolved(it)
			raw, err := json.Marshal(it)
			if err != nil {
				return nil, err
			}
			switch k {
			case "listeners":
				// Decoded per HCM: listener filters and transport sockets
				// are not modelled and need no decoding.
				f.listeners[name] = raw
			case "clusters":
				c := &clusterv3.Cluster{}
				if err := protojson.Unmarshal(raw, c); err != nil {
					return nil, fmt.Errorf("clusters[%d] (%s): %w", i, name, err)
				}
				f.clusters[name] = c
			case "extension_configs":
				var e struct {
					TypedConfig json.RawMessage `json:"typed_config"`
				}
				_ = json.Unmarshal(raw, &e)
				a := &anypb.Any{}
				if err := protojson.Unmarshal(e.TypedConfig, a); err != nil {
					return nil, fmt.Errorf("extension_configs[%d] (%s): %w", i, name, err)
				}
				f.Extensions[name] = a
			default:
				return nil, fmt.Errorf("%s: not a section of a proxy configuration (listeners, clusters, extension_configs)", k)
			}
		}
	}
	return f, nil
}

// stubUnresolved replaces every Any whose type this binary does not link
// (Istio's own filters, listener filters, transport sockets) by a Struct
// naming the type, so that the rest decodes strictly. A stub in a place the
// harness models is refused later, by name.
func stubUnresolved(v any) {
	switch x := v.(type) {
	case map[string]any:
		if t, ok := x["@type"].(string); ok {
			name := t[strings.LastIndexByte(t, '/')+1:]
			if _, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name)); err != nil {
				clear(x)
				x["@type"] = typeUnresolved
				x["value"] = map[string]any{"unresolved_type": t}
				return
			}
		}
		for _, e := range x {
			stubUnresolved(e)
		}
	case []any:
		for _, e := range x {
			stubUnresolved(e)
		}
	}
}

// FilterKind is what the harness does with an HTTP filter.
type FilterKind int

// Filter kinds.
const (
	// PassThrough: a filter the harness does not run; PassThroughFilters
	// says why it cannot change a trace.
	PassThrough FilterKind = iota
	// Wasm: an ECDS reference that admits a Wasm config; the harness serves
	// the compiled tracebridge module there.
	Wasm
	// ExtProc: envoy.filters.http.ext_proc.
	ExtProc
)

// Filter is one HTTP filter of a chain.
type Filter struct {
	Name string
	Kind FilterKind
	// ExtProc is the filter's configuration (Kind ExtProc).
	ExtProc *extprocv3.ExternalProcessor
	// WasmConfig is the plugin configuration of an inline Wasm filter (nil
	// for an ECDS reference, whose resource the caller supplies), FailOpen
	// its failure_policy FAIL_OPEN.
	WasmConfig []byte
	FailOpen   bool
	// Path is where the filter is in the file.
	Path string
}

// PassThroughFilters are the HTTP filters Istio adds that the harness does
// not run, and why leaving them out cannot change a span or a trace header.
var PassThroughFilters = map[string]string{
	"istio.metadata_exchange":       "exchanges x-envoy-peer-metadata headers between Istio proxies for telemetry labels; reads and writes no trace header",
	"istio.alpn":                    "sets ALPN for Istio mTLS upstreams; the harness's upstreams are plaintext",
	"envoy.filters.http.grpc_stats": "counts gRPC calls; no header mutation",
	"envoy.filters.http.fault":      "Istio adds it with an empty config (no VirtualService fault): a no-op",
	"envoy.filters.http.cors":       "Istio adds it with an empty config; CORS policy is per route (none here): a no-op",
	"envoy.filters.http.jwt_authn":  "from istiocheck's RequestAuthentication fixture, not from tracebridge's manifests; the harness's workloads verify no JWT",
	"envoy.filters.http.rbac":       "from istiocheck's AuthorizationPolicy fixture, not from tracebridge's manifests; the harness allows every request",
	// manifests/envoy/envoy.yaml's forward proxy.
	"envoy.filters.http.dynamic_forward_proxy": "resolves the forward proxy's upstream host by DNS; the harness routes by :authority (its registry map)",
}

// HCM is the part of an HTTP connection manager the harness runs.
type HCM struct {
	// Path names the HCM in the file: "<listener> filter_chains[i]".
	Path string
	// Filters are the HTTP filters before the router, in order.
	Filters []Filter
	// UpstreamFilters run per attempt after the router: the cluster's
	// HttpProtocolOptions http_filters when it has them, else the router's
	// upstream_http_filters (router.proto: filters on the cluster override
	// the router's), without the terminal upstream_codec.
	UpstreamFilters []Filter
	// Cluster is the route's cluster when the HCM has an inline route
	// (inbound); empty with RDS (the caller routes by authority).
	Cluster string
	// Tracing is nil when the HCM has no tracing block: its spans are
	// NullSpans (docs/ENVOY.md §2).
	Tracing *Tracing
	// EarlyHeaderRemovals are the headers early_header_mutation removes.
	EarlyHeaderRemovals []string
}

// Tracing is an HCM tracing block.
type Tracing struct {
	// Zipkin is the provider's configuration (the only provider Istio's
	// mesh fixture renders).
	Zipkin *tracecfgv3.ZipkinConfig
	// CollectorCluster is where the provider sends spans.
	CollectorCluster string
	// RandomSampling in percent; negative: Envoy's 100 % default.
	RandomSampling float64
	CustomTags     []*tracingv3.CustomTag
	// Operation is the route decorator's operation ("" with RDS).
	Operation string
}

// hcmFields lists the HttpConnectionManager fields the harness accepts:
// modelled, or with the reason they cannot change a trace.
var hcmFields = map[string]string{
	"http_filters":                     "modelled",
	"tracing":                          "modelled",
	"route_config":                     "modelled: the route's cluster and decorator",
	"rds":                              "routes by authority in the harness (the route table is not part of the file)",
	"request_id_extension":             "modelled: UUID request ids (source/extensions/request_id/uuid/config.cc)",
	"early_header_mutation_extensions": "modelled",
	"stat_prefix":                      "stats only",
	"server_name":                      "the server header of local replies",
	"forward_client_cert_details":      "mTLS client certificates; the harness is plaintext",
	"set_current_client_cert_details":  "mTLS client certificates; the harness is plaintext",
	"normalize_path":                   "the harness's paths are normalized already",
	"path_with_escaped_slashes_action": "KEEP_UNCHANGED only (checked)",
	"proxy_100_continue":               "no 100-continue in the scenarios",
	"stream_idle_timeout":              "timeouts of idle streams",
	"upgrade_configs":                  "websocket/CONNECT upgrades, unused by the scenarios",
	"use_remote_address":               "x-forwarded-for handling at the edge",
	"http_protocol_options":            "HTTP/1 codec options",
	"access_log":                       "access logs",
	"internal_address_config":          "which addresses count as internal for x-envoy-* headers",
	"xff_num_trusted_hops":             "x-forwarded-for handling",
	"common_http_protocol_options":     "connection timeouts",
	"http2_protocol_options":           "HTTP/2 codec options",
	"codec_type":                       "the codec; the harness speaks HTTP/1.1",
	"delayed_close_timeout":            "connection close timing",
}

// routerFields lists the Router fields the harness accepts.
var routerFields = map[string]string{"upstream_http_filters": "modelled"}

// zipkinFields lists the ZipkinConfig fields the harness accepts
// (source/extensions/tracers/zipkin/config.cc).
var zipkinFields = map[string]string{
	"collector_cluster":          "mapped to the collector address",
	"collector_service":          "its cluster is mapped to the collector address",
	"collector_endpoint":         "the collector URL's path",
	"collector_hostname":         "the Host header of span reports",
	"collector_endpoint_version": "HTTP_JSON only (checked)",
	"trace_id_128bit":            "modelled",
	"shared_span_context":        "false only (checked)",
	"trace_context_option":       "modelled (B3 with W3C propagation)",
}

// pluginFields lists the Wasm PluginConfig fields the harness accepts.
var pluginFields = map[string]string{
	"name":           "the plugin name",
	"root_id":        "the module has one root context",
	"vm_config":      "the harness hosts the compiled module (wasm-filter/wasmhost) whatever the runtime and code source",
	"configuration":  "modelled",
	"failure_policy": "modelled",
}

// extProcFields lists the ExternalProcessor fields the harness accepts.
var extProcFields = map[string]string{
	"grpc_service":       "its envoy_grpc cluster is mapped to the ext_proc address",
	"failure_mode_allow": "modelled",
	"message_timeout":    "modelled",
	"metadata_options":   "untyped receiving namespaces modelled",
	"processing_mode":    "headers SEND, bodies NONE, trailers SKIP only (checked)",
	"request_attributes": "source.address and xds.listener_direction only (checked)",
	"mutation_rules":     "allow_envoy modelled, other rules checked unset",
	"stat_prefix":        "stats only",
}

// ExtProcSettings is the part of an ext_proc configuration the harness's
// filter (envoysim.ExtProcFilter) runs.
type ExtProcSettings struct {
	Cluster             string // the gRPC service's cluster
	FailureModeAllow    bool
	MessageTimeout      time.Duration // 0: Envoy's 200 ms default
	ReceivingNamespaces []string
	AllowEnvoy          bool
}

// ExtProcConfig checks an ext_proc filter's configuration against what the
// harness models (source/extensions/filters/http/ext_proc/ext_proc.cc) and
// returns its settings.
func ExtProcConfig(path string, ep *extprocv3.ExternalProcessor) (ExtProcSettings, error) {
	var st ExtProcSettings
	if bad := unmodelled(ep, extProcFields); bad != "" {
		return st, fmt.Errorf("%s.%s: not modelled by the harness", path, bad)
	}
	st.Cluster = ep.GetGrpcService().GetEnvoyGrpc().GetClusterName()
	if st.Cluster == "" {
		return st, fmt.Errorf("%s.grpc_service.envoy_grpc.cluster_name: missing (google_grpc is not modelled)", path)
	}
	pm := ep.GetProcessingMode()
	if pm.GetRequestHeaderMode() != extprocv3.ProcessingMode_SEND || pm.GetResponseHeaderMode() != extprocv3.ProcessingMode_SEND ||
		pm.GetRequestBodyMode() != extprocv3.ProcessingMode_NONE || pm.GetResponseBodyMode() != extprocv3.ProcessingMode_NONE ||
		pm.GetRequestTrailerMode() != extprocv3.ProcessingMode_SKIP || pm.GetResponseTrailerMode() != extprocv3.ProcessingMode_SKIP {
		return st, fmt.Errorf("%s.processing_mode: %v not modelled (headers SEND, bodies NONE, trailers SKIP)", path, pm)
	}
	for i, a := range ep.GetRequestAttributes() {
		if a != "source.address" && a != "xds.listener_direction" {
			return st, fmt.Errorf("%s.request_attributes[%d]: %s not modelled", path, i, a)
		}
	}
	if len(ep.GetResponseAttributes()) > 0 {
		return st, fmt.Errorf("%s.response_attributes: not modelled", path)
	}
	mo := ep.GetMetadataOptions()
	if mo.GetReceivingNamespaces().GetTyped() != nil || mo.GetForwardingNamespaces() != nil {
		return st, fmt.Errorf("%s.metadata_options: only receiving_namespaces.untyped is modelled", path)
	}
	st.ReceivingNamespaces = mo.GetReceivingNamespaces().GetUntyped()
	if mr := ep.GetMutationRules(); mr != nil {
		if bad := unmodelled(mr, map[string]string{"allow_envoy": "modelled"}); bad != "" {
			return st, fmt.Errorf("%s.mutation_rules.%s: not modelled by the harness", path, bad)
		}
		st.AllowEnvoy = mr.GetAllowEnvoy().GetValue()
	}
	st.FailureModeAllow = ep.GetFailureModeAllow()
	if d := ep.GetMessageTimeout(); d != nil {
		st.MessageTimeout = d.AsDuration()
	}
	return st, nil
}

// tracingFields lists the HCM tracing fields the harness accepts.
var tracingFields = map[string]string{
	"provider":         "modelled",
	"custom_tags":      "modelled",
	"random_sampling":  "modelled",
	"client_sampling":  "100 % only (checked): x-client-trace-id forces tracing",
	"overall_sampling": "100 % only (checked)",
}

// unmodelled returns the first field of m set that allowed does not list.
func unmodelled(m proto.Message, allowed map[string]string) string {
	var bad string
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if _, ok := allowed[string(fd.Name())]; !ok {
			bad = string(fd.Name())
			return false
		}
		return true
	})
	return bad
}

// Chain selects a filter chain of a listener.
type Chain struct {
	Listener string
	// DestinationPort: the chain's destination_port must equal it (0: the
	// chain must not match on a port).
	DestinationPort uint32
}

// HCM returns the HTTP connection manager of the first plaintext HTTP
// filter chain of ch (transport raw_buffer or any, application protocols
// none or http/1.1), reduced to what the harness runs.
func (f *File) HCM(ch Chain) (*HCM, error) {
	raw, ok := f.listeners[ch.Listener]
	if !ok {
		return nil, fmt.Errorf("no listener %q", ch.Listener)
	}
	var l struct {
		FilterChains []struct {
			Match   json.RawMessage `json:"filter_chain_match"`
			Filters []struct {
				Name        string          `json:"name"`
				TypedConfig json.RawMessage `json:"typed_config"`
			} `json:"filters"`
		} `json:"filter_chains"`
	}
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, fmt.Errorf("listener %s: %w", ch.Listener, err)
	}
	for i, fc := range l.FilterChains {
		m := &listenerv3.FilterChainMatch{}
		if len(fc.Match) > 0 {
			if err := protojson.Unmarshal(fc.Match, m); err != nil {
				return nil, fmt.Errorf("%s filter_chains[%d].filter_chain_match: %w", ch.Listener, i, err)
			}
		}
		if m.GetDestinationPort().GetValue() != ch.DestinationPort {
			continue
		}
		if tp := m.GetTransportProtocol(); tp != "" && tp != "raw_buffer" {
			continue
		}
		if ap := m.GetApplicationProtocols(); len(ap) > 0 && !slices.Contains(ap, "http/1.1") {
			continue
		}
		for j, nf := range fc.Filters {
			if nf.Name != "envoy.filters.network.http_connection_manager" {
				continue
			}
			path := fmt.Sprintf("%s filter_chains[%d].filters[%d]", ch.Listener, i, j)
			a := &anypb.Any{}
			if err := protojson.Unmarshal(nf.TypedConfig, a); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			if a.GetTypeUrl() != typeHCM {
				return nil, fmt.Errorf("%s.typed_config: %s, want %s", path, a.GetTypeUrl(), typeHCM)
			}
			h := &hcmv3.HttpConnectionManager{}
			if err := a.UnmarshalTo(h); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			return f.reduce(path, h)
		}
		return nil, fmt.Errorf("%s filter_chains[%d]: no http_connection_manager", ch.Listener, i)
	}
	return nil, fmt.Errorf("listener %s: no plaintext HTTP filter chain for destination_port %d", ch.Listener, ch.DestinationPort)
}

func (f *File) reduce(path string, h *hcmv3.HttpConnectionManager) (*HCM, error) {
	if bad := unmodelled(h, hcmFields); bad != "" {
		return nil, fmt.Errorf("%s.%s: not modelled by the harness", path, bad)
	}
	if a := h.GetPathWithEscapedSlashesAction(); a != hcmv3.HttpConnectionManager_KEEP_UNCHANGED && a != hcmv3.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT {
		return nil, fmt.Errorf("%s.path_with_escaped_slashes_action: %s not modelled", path, a)
	}
	out := &HCM{Path: path}
	if rid := h.GetRequestIdExtension(); rid != nil && rid.GetTypedConfig().GetTypeUrl() != typeUUID {
		return nil, fmt.Errorf("%s.request_id_extension: %s not modelled", path, rid.GetTypedConfig().GetTypeUrl())
	}
	for i, e := range h.GetEarlyHeaderMutationExtensions() {
		p := fmt.Sprintf("%s.early_header_mutation_extensions[%d]", path, i)
		if e.GetTypedConfig().GetTypeUrl() != typeEarlyHM {
			return nil, fmt.Errorf("%s: %s not modelled", p, e.GetTypedConfig().GetTypeUrl())
		}
		hm := &earlyhmv3.HeaderMutation{}
		if err := e.GetTypedConfig().UnmarshalTo(hm); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		for k, m := range hm.GetMutations() {
			if m.GetRemove() == "" {
				return nil, fmt.Errorf("%s.mutations[%d]: only remove is modelled", p, k)
			}
			out.EarlyHeaderRemovals = append(out.EarlyHeaderRemovals, m.GetRemove())
		}
	}
	var router *routerv3.Router
	filters := h.GetHttpFilters()
	for i, hf := range filters {
		p := fmt.Sprintf("%s.http_filters[%d] (%s)", path, i, hf.GetName())
		if hf.GetTypedConfig().GetTypeUrl() == typeRouter {
			if i != len(filters)-1 {
				return nil, fmt.Errorf("%s: the router is not the last filter", p)
			}
			router = &routerv3.Router{}
			if err := hf.GetTypedConfig().UnmarshalTo(router); err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			if bad := unmodelled(router, routerFields); bad != "" {
				return nil, fmt.Errorf("%s.typed_config.%s: not modelled by the harness", p, bad)
			}
			break
		}
		flt, err := f.filter(p, hf)
		if err != nil {
			return nil, err
		}
		out.Filters = append(out.Filters, flt)
	}
	if router == nil {
		return nil, fmt.Errorf("%s.http_filters: no envoy.filters.http.router at the end", path)
	}
	ups, err := f.upstream(fmt.Sprintf("%s.http_filters[%d].typed_config.upstream_http_filters", path, len(filters)-1), router.GetUpstreamHttpFilters())
	if err != nil {
		return nil, err
	}
	out.UpstreamFilters = ups
	var op string
	if rc := h.GetRouteConfig(); rc != nil {
		o, cl, err := inlineRoute(path+".route_config", rc)
		if err != nil {
			return nil, err
		}
		op, out.Cluster = o, cl
		if c, ok := f.clusters[cl]; ok {
			cf, err := f.clusterFilters(c)
			if err != nil {
				return nil, err
			}
			if cf != nil {
				out.UpstreamFilters = cf
			}
		}
	}
	if t := h.GetTracing(); t != nil {
		tr, err := tracing(path+".tracing", t)
		if err != nil {
			return nil, err
		}
		tr.Operation = op
		out.Tracing = tr
	}
	return out, nil
}

// ClusterUpstreamFilters returns the upstream HTTP filters a cluster's
// HttpProtocolOptions carry (nil: none).
func (f *File) ClusterUpstreamFilters(name string) ([]Filter, error) {
	c, ok := f.clusters[name]
	if !ok {
		return nil, fmt.Errorf("no cluster %q", name)
	}
	return f.clusterFilters(c)
}

func (f *File) clusterFilters(c *clusterv3.Cluster) ([]Filter, error) {
	a, ok := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
	if !ok {
		return nil, nil
	}
	p := fmt.Sprintf("clusters[%s].typed_extension_protocol_options", c.GetName())
	if a.GetTypeUrl() != typeProtoOptions {
		return nil, fmt.Errorf("%s: %s", p, a.GetTypeUrl())
	}
	po := &upstreamhttpv3.HttpProtocolOptions{}
	if err := a.UnmarshalTo(po); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if len(po.GetHttpFilters()) == 0 {
		return nil, nil
	}
	fs, err := f.upstream(p+".http_filters", po.GetHttpFilters())
	if fs == nil && err == nil {
		fs = []Filter{}
	}
	return fs, err
}

// upstream reduces an upstream filter chain; its last filter must be
// upstream_codec (source/common/router/upstream_codec_filter.cc terminates
// the chain), which the harness's router plays.
func (f *File) upstream(path string, hfs []*hcmv3.HttpFilter) ([]Filter, error) {
	if len(hfs) == 0 {
		return nil, nil
	}
	if last := hfs[len(hfs)-1]; last.GetTypedConfig().GetTypeUrl() != typeCodec {
		return nil, fmt.Errorf("%s[%d] (%s): the last upstream filter must be envoy.filters.http.upstream_codec", path, len(hfs)-1, last.GetName())
	}
	var out []Filter
	for i, hf := range hfs[:len(hfs)-1] {
		flt, err := f.filter(fmt.Sprintf("%s[%d] (%s)", path, i, hf.GetName()), hf)
		if err != nil {
			return nil, err
		}
		if flt.Kind == PassThrough {
			return nil, fmt.Errorf("%s[%d] (%s): not modelled as an upstream filter", path, i, hf.GetName())
		}
		out = append(out, flt)
	}
	return out, nil
}

func (f *File) filter(path string, hf *hcmv3.HttpFilter) (Filter, error) {
	flt := Filter{Name: hf.GetName(), Path: path}
	if cd := hf.GetConfigDiscovery(); cd != nil {
		// Envoy refuses a default config whose type is not in type_urls
		// (source/common/filter/config_discovery_impl.cc, Envoy 1.36):
		// istiocheck asserts that; here the reference must admit Wasm for
		// the harness to serve the module there.
		if !slices.Contains(cd.GetTypeUrls(), typeWasm) {
			return flt, fmt.Errorf("%s.config_discovery.type_urls: %v admits no Wasm config; the harness serves only the tracebridge module over ECDS", path, cd.GetTypeUrls())
		}
		if _, ok := f.Extensions[hf.GetName()]; !ok && cd.GetDefaultConfig() == nil {
			return flt, fmt.Errorf("%s: no ECDS resource %q in the file and no default_config", path, hf.GetName())
		}
		flt.Kind = Wasm
		return flt, nil
	}
	switch hf.GetTypedConfig().GetTypeUrl() {
	case typeExtProc:
		ep := &extprocv3.ExternalProcessor{}
		if err := hf.GetTypedConfig().UnmarshalTo(ep); err != nil {
			return flt, fmt.Errorf("%s: %w", path, err)
		}
		flt.Kind, flt.ExtProc = ExtProc, ep
		return flt, nil
	case typeWasm:
		w := &wasmv3.Wasm{}
		if err := hf.GetTypedConfig().UnmarshalTo(w); err != nil {
			return flt, fmt.Errorf("%s: %w", path, err)
		}
		pc := w.GetConfig()
		if bad := unmodelled(pc, pluginFields); bad != "" {
			return flt, fmt.Errorf("%s.typed_config.config.%s: not modelled by the harness", path, bad)
		}
		conf := pc.GetConfiguration()
		if conf.GetTypeUrl() != "type.googleapis.com/google.protobuf.StringValue" {
			return flt, fmt.Errorf("%s.typed_config.config.configuration: %s not modelled (StringValue only)", path, conf.GetTypeUrl())
		}
		sv := &wrapperspb.StringValue{}
		if err := conf.UnmarshalTo(sv); err != nil {
			return flt, fmt.Errorf("%s.typed_config.config.configuration: %w", path, err)
		}
		switch pc.GetFailurePolicy() {
		case wasmv3pb.FailurePolicy_FAIL_OPEN:
			flt.FailOpen = true
		case wasmv3pb.FailurePolicy_FAIL_CLOSED, wasmv3pb.FailurePolicy_UNSPECIFIED:
		default:
			return flt, fmt.Errorf("%s.typed_config.config.failure_policy: %s not modelled", path, pc.GetFailurePolicy())
		}
		flt.Kind, flt.WasmConfig = Wasm, []byte(sv.GetValue())
		return flt, nil
	}
	if _, ok := PassThroughFilters[hf.GetName()]; ok {
		return flt, nil
	}
	return flt, fmt.Errorf("%s: HTTP filter not modelled by the harness (type %s)", path, hf.GetTypedConfig().GetTypeUrl())
}

func inlineRoute(path string, rc *routev3.RouteConfiguration) (op, cluster string, err error) {
	vhs := rc.GetVirtualHosts()
	if len(vhs) != 1 || len(vhs[0].GetRoutes()) != 1 {
		return "", "", fmt.Errorf("%s: one virtual host with one route is modelled, got %d virtual hosts", path, len(vhs))
	}
	r := vhs[0].GetRoutes()[0]
	if r.GetMatch().GetPrefix() != "/" {
		return "", "", fmt.Errorf("%s.virtual_hosts[0].routes[0].match: only prefix / is modelled", path)
	}
	cl := r.GetRoute().GetCluster()
	if cl == "" {
		return "", "", fmt.Errorf("%s.virtual_hosts[0].routes[0].route.cluster: missing", path)
	}
	return r.GetDecorator().GetOperation(), cl, nil
}

func tracing(path string, t *hcmv3.HttpConnectionManager_Tracing) (*Tracing, error) {
	if bad := unmodelled(t, tracingFields); bad != "" {
		return nil, fmt.Errorf("%s.%s: not modelled by the harness", path, bad)
	}
	for name, p := range map[string]float64{"client_sampling": pct(t.GetClientSampling().GetValue(), t.GetClientSampling() == nil), "overall_sampling": pct(t.GetOverallSampling().GetValue(), t.GetOverallSampling() == nil)} {
		if p != 100 {
			return nil, fmt.Errorf("%s.%s: %v %% not modelled (100 %% only)", path, name, p)
		}
	}
	out := &Tracing{RandomSampling: -1, CustomTags: t.GetCustomTags()}
	if t.GetRandomSampling() != nil {
		out.RandomSampling = t.GetRandomSampling().GetValue()
	}
	for i, ct := range t.GetCustomTags() {
		if err := checkTag(ct); err != nil {
			return nil, fmt.Errorf("%s.custom_tags[%d] (%s): %w", path, i, ct.GetTag(), err)
		}
	}
	pr := t.GetProvider()
	if pr.GetTypedConfig().GetTypeUrl() != typeZipkin {
		return nil, fmt.Errorf("%s.provider (%s): %s not modelled (Zipkin only)", path, pr.GetName(), pr.GetTypedConfig().GetTypeUrl())
	}
	z := &tracecfgv3.ZipkinConfig{}
	if err := pr.GetTypedConfig().UnmarshalTo(z); err != nil {
		return nil, fmt.Errorf("%s.provider: %w", path, err)
	}
	if z.GetCollectorEndpointVersion() != tracecfgv3.ZipkinConfig_HTTP_JSON {
		return nil, fmt.Errorf("%s.provider.typed_config.collector_endpoint_version: %s not modelled (HTTP_JSON only)", path, z.GetCollectorEndpointVersion())
	}
	if z.GetSharedSpanContext() == nil || z.GetSharedSpanContext().GetValue() {
		return nil, fmt.Errorf("%s.provider.typed_config.shared_span_context: only false is modelled", path)
	}
	if bad := unmodelled(z, zipkinFields); bad != "" {
		return nil, fmt.Errorf("%s.provider.typed_config.%s: not modelled by the harness", path, bad)
	}
	out.Zipkin = z
	out.CollectorCluster = z.GetCollectorService().GetHttpUri().GetCluster()
	if out.CollectorCluster == "" {
		out.CollectorCluster = z.GetCollectorCluster()
	}
	return out, nil
}

// pct returns v, or 100 when the field is absent (Envoy's default).
func pct(v float64, absent bool) float64 {
	if absent {
		return 100
	}
	return v
}

// checkTag refuses custom tags the harness cannot evaluate
// (source/common/tracing/custom_tag_impl.cc).
func checkTag(ct *tracingv3.CustomTag) error {
	switch {
	case ct.GetLiteral() != nil, ct.GetRequestHeader() != nil, ct.GetEnvironment() != nil, ct.GetValue() != "":
		return nil
	case ct.GetMetadata() != nil:
		md := ct.GetMetadata()
		if md.GetKind().GetRequest() == nil {
			return fmt.Errorf("metadata.kind: only request metadata is modelled")
		}
		if len(md.GetMetadataKey().GetPath()) != 1 {
			return fmt.Errorf("metadata.metadata_key.path: one segment is modelled, got %d", len(md.GetMetadataKey().GetPath()))
		}
		return nil
	}
	return fmt.Errorf("no tag source the harness models")
}
