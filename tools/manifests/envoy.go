package manifests

import (
	"strings"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	dfpclusterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/clusters/dynamic_forward_proxy/v3"
	dfpcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/dynamic_forward_proxy/v3"
	dfpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/dynamic_forward_proxy/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Addresses of the plain Envoy bootstrap (all on loopback).
const (
	envoyAdminPort    = 9901
	envoyInboundPort  = 10000
	envoyOutboundPort = 10001
	envoyAppPort      = 8080
	envoyZipkinPort   = 9411
	// envoyZipkinCluster is the bootstrap's collector cluster, which the
	// Zipkin tracer and clientSpans report to.
	envoyZipkinCluster = "zipkin"
	dfpCacheName       = "tracebridge_forward_proxy"
)

func socketAddr(port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func staticCluster(name string, port uint32, h2 bool) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddr(port)}},
			}}}},
		},
	}
	if h2 {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{nameHTTPProtocol: mustAny(&upstreamhttpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{
				ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
				},
			},
		})}
	}
	return c
}

func typedFilter(name string, cfg *anypb.Any) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: cfg}}
}

func hcmListener(name string, port uint32, dir corev3.TrafficDirection, h *hcmv3.HttpConnectionManager) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:             name,
		Address:          socketAddr(port),
		TrafficDirection: dir,
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       nameHCM,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(h)},
		}}}},
	}
}

func routeAll(name, cluster string) *hcmv3.HttpConnectionManager_RouteConfig {
	return &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    name,
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}},
			}},
		}},
	}}
}

// envoy renders the plain Envoy bootstrap: a sidecar-like Envoy in front of
// one app, with both filters.
func (r *renderer) envoy() ([]File, error) {
	d, err := r.p.derive(PlaceEnvoy, r.o.adapt(PlaceEnvoy))
	if err != nil {
		return nil, err
	}
	wasm := mustAny(wasmFilter(d.json, "tracebridge", localFile(r.o.WasmFile), nil, r.p.envNames()))
	dnsCache := &dfpcommonv3.DnsCacheConfig{
		Name:            dfpCacheName,
		DnsLookupFamily: clusterv3.Cluster_V4_ONLY,
	}
	router := typedFilter(nameRouter, mustAny(&routerv3.Router{}))

	inbound := &hcmv3.HttpConnectionManager{
		StatPrefix:     "inbound",
		CodecType:      hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: routeAll("inbound", "app"),
		Tracing: &hcmv3.HttpConnectionManager_Tracing{
			RandomSampling: &typev3.Percent{Value: 100},
			CustomTags:     customTags(r.p.tags(), true, true, true),
			Provider: &tracev3.Tracing_Http{
				Name: "envoy.tracers.zipkin",
				ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(&tracev3.ZipkinConfig{
					CollectorCluster:         envoyZipkinCluster,
					CollectorEndpoint:        "/api/v2/spans",
					CollectorEndpointVersion: tracev3.ZipkinConfig_HTTP_JSON,
					TraceId_128Bit:           true,
					SharedSpanContext:        wrapperspb.Bool(false),
					TraceContextOption:       r.p.zipkinTraceContextOption(),
				})},
			},
		},
		HttpFilters: []*hcmv3.HttpFilter{
			typedFilter(nameWasm, wasm),
			typedFilter(nameExtProc, mustAny(extProcFilter(envoyGRPC("tracebridge_extproc"), extProcAttributes(trustsPrincipals(d))))),
			router,
		},
	}
	headers, why, err := r.p.earlyRemovals()
	earlyNote := "No early header mutation: " + why + "."
	if err != nil {
		earlyNote = "No early header mutation: " + err.Error() + "."
	} else if len(headers) > 0 {
		inbound.EarlyHeaderMutationExtensions = []*corev3.TypedExtensionConfig{earlyMutation(headers)}
		earlyNote = "The inbound listener removes " + strings.Join(headers, ", ") + " before the span exists\n(early_header_mutation, docs/ENVOY.md §1; see the edge-trust overlay for why these)."
	}
	outbound := &hcmv3.HttpConnectionManager{
		StatPrefix:     "outbound",
		CodecType:      hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: routeAll("outbound", "forward_proxy"),
		HttpFilters: []*hcmv3.HttpFilter{
			typedFilter(nameWasm, wasm),
			typedFilter("envoy.filters.http.dynamic_forward_proxy", mustAny(&dfpv3.FilterConfig{
				ImplementationSpecifier: &dfpv3.FilterConfig_DnsCacheConfig{DnsCacheConfig: dnsCache},
			})),
			router,
		},
	}
	forward := &clusterv3.Cluster{
		Name:           "forward_proxy",
		ConnectTimeout: durationpb.New(time.Second),
		LbPolicy:       clusterv3.Cluster_CLUSTER_PROVIDED,
		ClusterDiscoveryType: &clusterv3.Cluster_ClusterType{ClusterType: &clusterv3.Cluster_CustomClusterType{
			Name: "envoy.clusters.dynamic_forward_proxy",
			TypedConfig: mustAny(&dfpclusterv3.ClusterConfig{
				ClusterImplementationSpecifier: &dfpclusterv3.ClusterConfig_DnsCacheConfig{DnsCacheConfig: dnsCache},
			}),
		}},
	}
	b := &bootstrapv3.Bootstrap{
		Node:  &corev3.Node{Id: "tracebridge", Cluster: "tracebridge"},
		Admin: &bootstrapv3.Admin{Address: socketAddr(envoyAdminPort)},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Listeners: []*listenerv3.Listener{
				hcmListener("inbound", envoyInboundPort, corev3.TrafficDirection_INBOUND, inbound),
				hcmListener("outbound", envoyOutboundPort, corev3.TrafficDirection_OUTBOUND, outbound),
			},
			Clusters: []*clusterv3.Cluster{
				staticCluster("app", envoyAppPort, false),
				staticCluster("tracebridge_extproc", extProcGRPCPort, true),
				staticCluster(envoyZipkinCluster, envoyZipkinPort, false),
				forward,
			},
		},
	}
	comment := `Plain Envoy bootstrap with both tracebridge filters, for users without
Istio and for the real-Envoy e2e path. Everything listens on 127.0.0.1:
  10000 inbound  (traffic_direction INBOUND): clients -> app at 127.0.0.1:8080
  10001 outbound (traffic_direction OUTBOUND): the app's HTTP_PROXY, a forward
        proxy to whatever host the request names (dynamic_forward_proxy)
  9901  admin
The wasm filter reads xds.listener_direction from the listener's
traffic_direction, so the policy can say "auto". Both listeners load the module
from ` + r.o.WasmFile + ` (override with --wasm-file) with vm_id
"tracebridge": proxy-wasm shared data is keyed by vm_id, so the inbound records
are visible to the outbound instance (docs/ENVOY.md §4) and to no other plugin.
failure_policy FAIL_OPEN: requests pass if the VM fails.

Inbound traces like a sidecar's server side (Zipkin to 127.0.0.1:9411,
/api/v2/spans, 100% sampling for the demo); outbound has NO tracing block, so
its spans are NullSpans and the headers the filter restores reach the next
hop untouched (docs/ENVOY.md §2, §4). After the wasm filter the inbound listener
runs ext_proc (tracebridge-extproc --listen 127.0.0.1:9002 --config
<this policy file>): it returns the tags with the metadata sink as dynamic
metadata, which only ext_proc can set (wasm has no ABI for it, docs/ENVOY.md §5);
it sees the headers the wasm filter already repaired. ext_proc: headers only,
failure_mode_allow, 100ms message timeout.
Span custom tags: header-sink tags from the request header, metadata-sink tags
from the tracebridge metadata namespace, filterState-sink tags with a value
formatter (Envoy >= 1.37).
` + earlyNote + `

` + floorComment + `

Policy: the document as written (it is also the ext_proc service's --config).
With a policy that distrusts inbound traffic this Envoy is the edge of the
trust boundary; for an in-mesh hop render the bootstrap from a policy without
trust.untrustedDirections (tracebridge manifests render --mode envoy).`
	return []File{{"envoy/envoy.yaml", yamlFile(doc{comment: comment, obj: toMap(b)})}}, nil
}
