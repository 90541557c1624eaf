package manifests

import (
	"encoding/json"
	"fmt"
	"time"

	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	upstreamcodecv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/upstream_codec/v3"
	wasmfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	earlyhmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tracebridge/tracebridge/engine"
)

// Envoy extension names and type URLs used in the manifests.
const (
	nameHCM            = "envoy.filters.network.http_connection_manager"
	nameRouter         = "envoy.filters.http.router"
	nameExtProc        = "envoy.filters.http.ext_proc"
	nameWasm           = "envoy.filters.http.wasm"
	nameUpstreamCodec  = "envoy.filters.http.upstream_codec"
	nameEarlyMutation  = "envoy.http.early_header_mutation.header_mutation"
	nameHTTPProtocol   = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	typeURLPrefix      = "type.googleapis.com/"
	extProcGRPCPort    = 9002
	extProcAdminPort   = 9003
	extProcMsgTimeout  = 100 * time.Millisecond
	extProcGRPCTimeout = time.Second
)

// toMap turns an Envoy proto into the generic object YAML carries, with the
// proto field names Envoy's documentation uses (snake_case).
func toMap(m proto.Message) map[string]any {
	data, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("manifests: marshal %T: %v", m, err))
	}
	out := map[string]any{}
	if err := json.Unmarshal(data, &out); err != nil {
		panic(err)
	}
	return out
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

// earlyMutation is the HCM early_header_mutation extension removing headers.
func earlyMutation(headers []string) *corev3.TypedExtensionConfig {
	hm := &earlyhmv3.HeaderMutation{}
	for _, h := range headers {
		hm.Mutations = append(hm.Mutations, &mutationv3.HeaderMutation{
			Action: &mutationv3.HeaderMutation_Remove{Remove: h},
		})
	}
	return &corev3.TypedExtensionConfig{Name: nameEarlyMutation, TypedConfig: mustAny(hm)}
}

// metadataTag is a tracing custom tag reading the ext_proc dynamic metadata
// namespace "tracebridge", key = the tag name.
func metadataTag(name string) *tracingv3.CustomTag {
	return &tracingv3.CustomTag{
		Tag: name,
		Type: &tracingv3.CustomTag_Metadata_{Metadata: &tracingv3.CustomTag_Metadata{
			Kind: &metadatav3.MetadataKind{Kind: &metadatav3.MetadataKind_Request_{Request: &metadatav3.MetadataKind_Request{}}},
			MetadataKey: &metadatav3.MetadataKey{
				Key:  engine.MetadataNamespace,
				Path: []*metadatav3.MetadataKey_PathSegment{{Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: name}}},
			},
		}},
	}
}

// headerTag reads the request header the wasm filter sets.
func headerTag(name, header string) *tracingv3.CustomTag {
	return &tracingv3.CustomTag{Tag: name, Type: &tracingv3.CustomTag_RequestHeader{
		RequestHeader: &tracingv3.CustomTag_Header{Name: header},
	}}
}

// filterStateTag reads what the wasm filter stored with proxy_set_property
// (Envoy >= 1.37 `value` custom tags, docs/ENVOY.md §5).
func filterStateTag(name string) *tracingv3.CustomTag {
	return &tracingv3.CustomTag{Tag: name, Type: &tracingv3.CustomTag_Value{
		Value: filterStateFormat(name),
	}}
}

func filterStateFormat(name string) string {
	return "%FILTER_STATE(" + engine.FilterStateKeyPrefix + name + ":PLAIN)%"
}

// customTags are the span tags the policy's tags become on an Envoy whose
// filters include the ones named.
func customTags(tags []tagInfo, header, metadata, filterState bool) []*tracingv3.CustomTag {
	var out []*tracingv3.CustomTag
	for _, t := range tags {
		switch {
		case metadata && t.metadata:
			out = append(out, metadataTag(t.name))
		case header && t.header2:
			out = append(out, headerTag(t.name, t.header))
		case filterState && t.filterState:
			out = append(out, filterStateTag(t.name))
		}
	}
	return out
}

// metadataFormat is the access-log formatter reading the dynamic metadata
// the ext_proc service returns (Telemetry customTags formatter, Envoy >= 1.37
// CustomTag.value, docs/ENVOY.md §5).
func metadataFormat(name string) string {
	return "%DYNAMIC_METADATA(" + engine.MetadataNamespace + ":" + name + ")%"
}

// TagFormatter is the access-log formatter the rendered Telemetry customTags
// of type formatter use for a tag delivered through sink ("filterState": the
// wasm filter's filter state; "metadata": the ext_proc service's dynamic
// metadata); "" for other sinks.
func TagFormatter(name, sink string) string {
	switch sink {
	case "filterState":
		return filterStateFormat(name)
	case "metadata":
		return metadataFormat(name)
	}
	return ""
}

// extProcAttributes are the request attributes the ext_proc service reads:
// the peer address and listener direction always, the mTLS peer's URI SAN
// when the policy trusts principals (trust.trustedPrincipals; Envoy sends
// only the attributes it is asked for, envoy/extensions/filters/http/
// ext_proc/v3/ext_proc.proto request_attributes).
func extProcAttributes(peerSAN bool) []string {
	a := []string{"source.address", "xds.listener_direction"}
	if peerSAN {
		a = append(a, "connection.uri_san_peer_certificate")
	}
	return a
}

// extProcFilter is the ext_proc HTTP filter: headers only, fail open, a short
// message timeout, and the tracebridge metadata namespace accepted.
func extProcFilter(grpc *corev3.GrpcService, attrs []string) *extprocv3.ExternalProcessor {
	return &extprocv3.ExternalProcessor{
		GrpcService:      grpc,
		FailureModeAllow: true,
		MessageTimeout:   durationpb.New(extProcMsgTimeout),
		StatPrefix:       "tracebridge",
		ProcessingMode: &extprocv3.ProcessingMode{
			RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
			ResponseHeaderMode:  extprocv3.ProcessingMode_SEND,
			RequestBodyMode:     extprocv3.ProcessingMode_NONE,
			ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
			RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
			ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
		},
		RequestAttributes: attrs,
		MetadataOptions: &extprocv3.MetadataOptions{
			ReceivingNamespaces: &extprocv3.MetadataOptions_MetadataNamespaces{Untyped: []string{engine.MetadataNamespace}},
		},
	}
}

func envoyGRPC(cluster string) *corev3.GrpcService {
	return &corev3.GrpcService{
		TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster}},
		Timeout:         durationpb.New(extProcGRPCTimeout),
	}
}

// wasmFilter is the proxy-wasm filter configuration: the policy as the
// plugin configuration, fail open.
func wasmFilter(policyJSON []byte, vmID string, code *corev3.AsyncDataSource, env map[string]string, hostEnv []string) *wasmfilterv3.Wasm {
	vm := &wasmv3.VmConfig{
		VmId:    vmID,
		Runtime: "envoy.wasm.runtime.v8",
		Code:    code,
	}
	if len(env) > 0 || len(hostEnv) > 0 {
		vm.EnvironmentVariables = &wasmv3.EnvironmentVariables{KeyValues: env, HostEnvKeys: hostEnv}
	}
	return &wasmfilterv3.Wasm{Config: &wasmv3.PluginConfig{
		Name:          "tracebridge",
		Vm:            &wasmv3.PluginConfig_VmConfig{VmConfig: vm},
		Configuration: mustAny(wrapperspb.String(string(policyJSON))),
		FailurePolicy: wasmv3.FailurePolicy_FAIL_OPEN,
	}}
}

func localFile(path string) *corev3.AsyncDataSource {
	return &corev3.AsyncDataSource{Specifier: &corev3.AsyncDataSource_Local{
		Local: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: path}},
	}}
}

func remoteOCI(url, sha256 string) *corev3.AsyncDataSource {
	return &corev3.AsyncDataSource{Specifier: &corev3.AsyncDataSource_Remote{Remote: &corev3.RemoteDataSource{
		HttpUri: &corev3.HttpUri{
			Uri: url,
			// istio-agent replaces this remote source with the fetched local
			// file before Envoy sees the ECDS resource; the cluster is never
			// used but Envoy's schema requires one.
			HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "_"},
			Timeout:          durationpb.New(30 * time.Second),
		},
		Sha256: sha256,
	}}}
}

// upstreamCodec is the terminal upstream HTTP filter every cluster
// http_filters list must end with.
func upstreamCodec() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: nameUpstreamCodec, ConfigType: &hcmv3.HttpFilter_TypedConfig{
		TypedConfig: mustAny(&upstreamcodecv3.UpstreamCodec{}),
	}}
}

// noopUpstreamFilter is the default configuration of an upstream filter
// delivered by ECDS: an empty header_mutation filter, which does nothing, so
// that requests flow (fail open) until the module is fetched and loaded.
func noopUpstreamFilter() *anypb.Any {
	return mustAny(&headermutationv3.HeaderMutation{})
}

// upstreamECDSTypeURLs are the type_urls of the module's upstream ECDS
// reference: every config it may carry. Envoy refuses a default_config and
// any ECDS update whose type is not listed (validateTypeUrlHelper in
// source/common/filter/config_discovery_impl.cc, Envoy 1.37): the module's
// Wasm config; the allow-all RBAC filter istio-agent serves instead when the
// image cannot be fetched and the failure policy is FAIL_OPEN
// (createHTTPDefaultFilter in pkg/wasm/convert.go, Istio 1.31); and the
// default, noopUpstreamFilter.
func upstreamECDSTypeURLs() []string {
	var out []string
	for _, m := range []proto.Message{&wasmfilterv3.Wasm{}, &rbacv3.RBAC{}, &headermutationv3.HeaderMutation{}} {
		out = append(out, typeURLPrefix+string(m.ProtoReflect().Descriptor().FullName()))
	}
	return out
}

// protocolOptions builds the cluster HttpProtocolOptions carrying upstream
// filters. downstream=true mirrors the downstream protocol (what Istio
// generates for inbound ports whose protocol it sniffs); otherwise explicit
// HTTP/1.1, or HTTP/2 when h2.
func protocolOptions(filters []*hcmv3.HttpFilter, downstream, h2 bool) *upstreamhttpv3.HttpProtocolOptions {
	o := &upstreamhttpv3.HttpProtocolOptions{HttpFilters: append(filters, upstreamCodec())}
	switch {
	case downstream:
		o.UpstreamProtocolOptions = &upstreamhttpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
			UseDownstreamProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
				HttpProtocolOptions:  &corev3.Http1ProtocolOptions{},
				Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
			},
		}
	case h2:
		o.UpstreamProtocolOptions = &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
			},
		}
	default:
		o.UpstreamProtocolOptions = &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}},
			},
		}
	}
	return o
}
