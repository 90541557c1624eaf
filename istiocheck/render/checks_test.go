package render

import (
	"fmt"
	"slices"
	"strings"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extproc "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	rbac "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	router "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttp "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	tracing "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	"google.golang.org/protobuf/proto"
)

// Each check returns the violations it finds, so that the negative controls
// can show it fails on a configuration that breaks the claim.

const (
	nameRouter        = "envoy.filters.http.router"
	nameExtProc       = "envoy.filters.http.ext_proc"
	nameUpstreamCodec = "envoy.filters.http.upstream_codec"
	nameHTTPOptions   = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	upstreamECDS      = "tracebridge-upstream"
	extProcHost       = "tracebridge-extproc.istio-system.svc.cluster.local"
	extProcCluster    = "outbound|9002||" + extProcHost
	backendCluster    = "outbound|9080||productpage.bookinfo.svc.cluster.local"
)

// Istio's filters that must run before the wasm filter (README "Deployment
// modes": after authentication, so claims come from verified tokens, and
// after authorization).
var istioAuthFilters = []string{"envoy.filters.http.jwt_authn", "istio_authn", "envoy.filters.http.rbac"}

func routerOf(f *hcm.HttpFilter) *router.Router {
	if f.GetName() != nameRouter || f.GetTypedConfig() == nil {
		return nil
	}
	r := &router.Router{}
	if err := f.GetTypedConfig().UnmarshalTo(r); err != nil {
		panic(err)
	}
	return r
}

func protocolOptions(c *cluster.Cluster) *upstreamhttp.HttpProtocolOptions {
	a, ok := c.GetTypedExtensionProtocolOptions()[nameHTTPOptions]
	if !ok {
		return nil
	}
	o := &upstreamhttp.HttpProtocolOptions{}
	if err := a.UnmarshalTo(o); err != nil {
		panic(err)
	}
	return o
}

// upstreamProtocol names the protocol Envoy speaks to the cluster's hosts:
// HTTP/1.1 when no options say otherwise (Envoy's default).
func upstreamProtocol(c *cluster.Cluster) string {
	o := protocolOptions(c)
	switch {
	case o.GetUseDownstreamProtocolConfig() != nil:
		return "downstream"
	case o.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil:
		return "h2"
	case o.GetAutoConfig() != nil:
		return "auto"
	default:
		return "http1"
	}
}

func isTracebridgeWasm(name string) bool {
	return strings.Contains(name, "tracebridge") && name != upstreamECDS
}

// sidecarViolations checks the claims README "Deployment modes" 1 and 2
// make about the selected sidecar: the wasm filter in every outbound HTTP
// connection manager, and without precise in every inbound one too, after
// Istio's authentication and authorization filters and before the router; a
// tracing block with the policy's custom tags on inbound, none on outbound
// (the Telemetry's CLIENT entry); with precise, the upstream filter in the
// inbound routers' upstream_http_filters and nowhere else, and no listener
// filter on inbound (it would record each inbound request a second time).
func sidecarViolations(r *render, customTags []string, precise bool) []string {
	var out []string
	var in, outb int
	for _, h := range hcms(r.sidecarListeners) {
		names := filterNames(h.cfg)
		w := indexOf(names, isTracebridgeWasm)
		rt := indexOf(names, func(n string) bool { return n == nameRouter })
		switch {
		case precise && h.inbound && w >= 0:
			out = append(out, fmt.Sprintf("%s: tracebridge listener filter at %d on inbound besides the upstream filter: %s", h.where, w, strings.Join(names, ",")))
		case precise && h.inbound:
		case w < 0:
			out = append(out, h.where+": no tracebridge filter in "+strings.Join(names, ","))
			continue
		}
		if w >= 0 && rt < w {
			out = append(out, fmt.Sprintf("%s: tracebridge filter at %d after the router at %d", h.where, w, rt))
		}
		var upstream []string
		for _, u := range routerOf(h.cfg.GetHttpFilters()[rt]).GetUpstreamHttpFilters() {
			upstream = append(upstream, u.GetName())
		}
		if h.inbound {
			in++
			for _, a := range istioAuthFilters {
				i := slices.Index(names, a)
				if i < 0 && a != "istio_authn" {
					out = append(out, fmt.Sprintf("%s: Istio's %s missing (the mesh's policies should put it there): %s", h.where, a, strings.Join(names, ",")))
				}
				if w >= 0 && i > w {
					out = append(out, fmt.Sprintf("%s: tracebridge filter at %d runs before Istio's %s at %d", h.where, w, a, i))
				}
			}
			if h.cfg.GetTracing() == nil {
				out = append(out, h.where+": inbound HCM has no tracing block")
			}
			var tags []string
			for _, ct := range h.cfg.GetTracing().GetCustomTags() {
				tags = append(tags, ct.GetTag())
			}
			for _, want := range customTags {
				if !slices.Contains(tags, want) {
					out = append(out, fmt.Sprintf("%s: custom tag %s missing from %v", h.where, want, tags))
				}
			}
			want := []string(nil)
			if precise {
				want = []string{upstreamECDS, nameUpstreamCodec}
			}
			if !slices.Equal(upstream, want) {
				out = append(out, fmt.Sprintf("%s: router upstream_http_filters %v, want %v", h.where, upstream, want))
			}
		} else {
			outb++
			if h.cfg.GetTracing() != nil {
				out = append(out, h.where+": outbound HCM has a tracing block (the restored headers would be overwritten)")
			}
			if len(upstream) > 0 {
				out = append(out, fmt.Sprintf("%s: outbound router has upstream_http_filters %v", h.where, upstream))
			}
		}
	}
	if in == 0 || outb == 0 {
		out = append(out, fmt.Sprintf("%d inbound and %d outbound HTTP connection managers: want both", in, outb))
	}
	return out
}

// inboundClusterViolations checks the protocol Istio chose for the app's
// ports and that no inbound cluster carries upstream filters of its own:
// the router's upstream_http_filters apply only to clusters without any
// (Router.upstream_http_filters in
// api/envoy/extensions/filters/http/router/v3/router.proto, Envoy 1.37).
func inboundClusterViolations(r *render) []string {
	want := map[string]string{
		"inbound|8080||":            "http1",
		"inbound|9090||":            "h2",
		"inbound|7070||":            "downstream",
		"InboundPassthroughCluster": "downstream",
	}
	var out []string
	seen := 0
	for _, c := range r.sidecarClusters {
		p, ok := want[c.GetName()]
		if !ok {
			continue
		}
		seen++
		if got := upstreamProtocol(c); got != p {
			out = append(out, fmt.Sprintf("cluster %s: upstream protocol %s, want %s", c.GetName(), got, p))
		}
		if fs := protocolOptions(c).GetHttpFilters(); len(fs) > 0 {
			out = append(out, fmt.Sprintf("cluster %s: has %d upstream HTTP filters of its own", c.GetName(), len(fs)))
		}
		if c.GetName() == "InboundPassthroughCluster" {
			if got := protocolOptions(c).GetCommonHttpProtocolOptions().GetIdleTimeout().AsDuration(); got != 300*time.Second {
				out = append(out, fmt.Sprintf("cluster %s: idle timeout %v, want 5m0s", c.GetName(), got))
			}
		}
	}
	if seen != len(want) {
		out = append(out, fmt.Sprintf("%d of the %d inbound clusters generated", seen, len(want)))
	}
	return out
}

// clusterDiff lists the clusters of got that differ from base, and those
// missing from either; clusters whose name contains one of except may differ.
func clusterDiff(base, got []*cluster.Cluster, except ...string) []string {
	idx := map[string]*cluster.Cluster{}
	for _, c := range base {
		idx[c.GetName()] = c
	}
	var out []string
	for _, c := range got {
		b, ok := idx[c.GetName()]
		delete(idx, c.GetName())
		switch {
		case slices.ContainsFunc(except, func(e string) bool { return strings.Contains(c.GetName(), e) }):
		case !ok:
			out = append(out, "cluster "+c.GetName()+" added")
		case !proto.Equal(b, c):
			out = append(out, "cluster "+c.GetName()+" changed")
		}
	}
	for n := range idx {
		out = append(out, "cluster "+n+" removed")
	}
	slices.Sort(out)
	return out
}

// ecdsViolations applies Envoy's acceptance rule for ECDS references that
// ValidateAll cannot see: the default config and every config the reference
// receives must have a type listed in type_urls (validateTypeUrlHelper in
// source/common/filter/config_discovery_impl.cc, Envoy 1.37), or Envoy
// refuses the listener or cluster (default) or the update.
func ecdsViolations(refs []ecdsRef, ecds map[string]*core.TypedExtensionConfig) []string {
	var out []string
	for _, ref := range refs {
		cd := ref.filter.GetConfigDiscovery()
		where := ref.where + " filter " + ref.filter.GetName()
		if d := cd.GetDefaultConfig(); d != nil && !slices.Contains(cd.GetTypeUrls(), d.GetTypeUrl()) {
			out = append(out, fmt.Sprintf("%s: default_config %s not in type_urls %v", where, d.GetTypeUrl(), cd.GetTypeUrls()))
		}
		e, ok := ecds[ref.filter.GetName()]
		if !ok {
			out = append(out, where+": no ECDS resource of that name")
			continue
		}
		if !slices.Contains(cd.GetTypeUrls(), e.GetTypedConfig().GetTypeUrl()) {
			out = append(out, fmt.Sprintf("%s: istio-agent serves %s, not in type_urls %v", where, e.GetTypedConfig().GetTypeUrl(), cd.GetTypeUrls()))
		}
	}
	return out
}

// failOpenViolations checks that what istio-agent serves for tracebridge's
// filters when the image cannot be fetched lets requests pass: an RBAC
// filter without rules (pkg/wasm/convert.go, Istio 1.31).
func failOpenViolations(refs []ecdsRef, ecds map[string]*core.TypedExtensionConfig) []string {
	var out []string
	for _, ref := range refs {
		if !strings.Contains(ref.filter.GetName(), "tracebridge") {
			continue
		}
		e := ecds[ref.filter.GetName()]
		r := &rbac.RBAC{}
		if e == nil || !e.GetTypedConfig().MessageIs(r) {
			out = append(out, ref.where+": "+ref.filter.GetName()+": fallback is not an RBAC filter")
			continue
		}
		if err := e.GetTypedConfig().UnmarshalTo(r); err != nil || r.GetRules() != nil {
			out = append(out, ref.where+": "+ref.filter.GetName()+": fallback RBAC has rules: requests would be denied")
		}
	}
	return out
}

// extProcViolations checks gateway-enrichment at the gateway: ext_proc right
// before the router of every HCM with the rendered settings, its cluster sent
// (HTTP/2, the service's grpc port), metadata custom tags on the gateway's
// tracing block.
func extProcViolations(r *render, metadataTags []string) []string {
	var out []string
	n := 0
	for _, h := range hcms(r.gatewayListeners) {
		n++
		names := filterNames(h.cfg)
		e := slices.Index(names, nameExtProc)
		rt := slices.Index(names, nameRouter)
		if e < 0 || e != rt-1 {
			out = append(out, fmt.Sprintf("%s: ext_proc at %d, router at %d: want right before the router (%s)", h.where, e, rt, strings.Join(names, ",")))
			continue
		}
		cfg := &extproc.ExternalProcessor{}
		if err := h.cfg.GetHttpFilters()[e].GetTypedConfig().UnmarshalTo(cfg); err != nil {
			out = append(out, h.where+": "+err.Error())
			continue
		}
		if c := cfg.GetGrpcService().GetEnvoyGrpc().GetClusterName(); c != extProcCluster {
			out = append(out, h.where+": ext_proc calls "+c)
		}
		if !cfg.GetFailureModeAllow() {
			out = append(out, h.where+": failure_mode_allow false")
		}
		pm := cfg.GetProcessingMode()
		if pm.GetRequestBodyMode() != extproc.ProcessingMode_NONE || pm.GetResponseBodyMode() != extproc.ProcessingMode_NONE ||
			pm.GetRequestHeaderMode() == extproc.ProcessingMode_SKIP || pm.GetResponseHeaderMode() == extproc.ProcessingMode_SKIP {
			out = append(out, fmt.Sprintf("%s: processing mode %v: want headers only", h.where, pm))
		}
		if !slices.Contains(cfg.GetMetadataOptions().GetReceivingNamespaces().GetUntyped(), "tracebridge") {
			out = append(out, h.where+": metadata namespace tracebridge not accepted")
		}
		out = append(out, metadataTagViolations(h, metadataTags)...)
	}
	if n == 0 {
		out = append(out, "gateway has no HTTP connection manager")
	}
	if !slices.ContainsFunc(r.gatewayClusters, func(c *cluster.Cluster) bool {
		return c.GetName() == extProcCluster && upstreamProtocol(c) == "h2"
	}) {
		out = append(out, "gateway has no HTTP/2 cluster "+extProcCluster)
	}
	return out
}

func metadataTagViolations(h hcmAt, names []string) []string {
	var out []string
	if h.cfg.GetTracing() == nil {
		return []string{h.where + ": gateway HCM has no tracing block"}
	}
	for _, n := range names {
		if !slices.ContainsFunc(h.cfg.GetTracing().GetCustomTags(), func(ct *tracing.CustomTag) bool {
			if ct.GetTag() != n {
				return false
			}
			// Either route reads the tag from the tracebridge metadata
			// namespace: a metadata tag, or a formatter (CustomTag.value).
			if md := ct.GetMetadata(); md != nil {
				p := md.GetMetadataKey().GetPath()
				return md.GetMetadataKey().GetKey() == "tracebridge" && len(p) == 1 && p[0].GetKey() == n
			}
			return ct.GetValue() == metadataFormatter(n)
		}) {
			out = append(out, h.where+": custom tag "+n+" reading tracebridge metadata missing")
		}
	}
	return out
}

// upstreamExtProcViolations checks gateway-enrichment-upstream: ext_proc on
// the backend's cluster only (then the upstream codec), not on the listener.
func upstreamExtProcViolations(r *render) []string {
	var out []string
	for _, h := range hcms(r.gatewayListeners) {
		if slices.Contains(filterNames(h.cfg), nameExtProc) {
			out = append(out, h.where+": ext_proc on the listener")
		}
	}
	found := false
	for _, c := range r.gatewayClusters {
		var names []string
		for _, f := range protocolOptions(c).GetHttpFilters() {
			names = append(names, f.GetName())
		}
		switch {
		case c.GetName() == backendCluster:
			found = true
			if !slices.Equal(names, []string{nameExtProc, nameUpstreamCodec}) {
				out = append(out, fmt.Sprintf("cluster %s: upstream filters %v", c.GetName(), names))
			}
		case len(names) > 0:
			out = append(out, fmt.Sprintf("cluster %s: upstream filters %v (only the backends should have them)", c.GetName(), names))
		}
	}
	if !found {
		out = append(out, "no cluster "+backendCluster)
	}
	return out
}

// earlyMutationViolations checks edge-trust: every gateway HCM removes the
// untrusted headers before the span exists, and keeps Istio's tracing.
func earlyMutationViolations(r *render) []string {
	var out []string
	for _, h := range hcms(r.gatewayListeners) {
		if len(h.cfg.GetEarlyHeaderMutationExtensions()) == 0 {
			out = append(out, h.where+": no early_header_mutation")
		}
		if h.cfg.GetTracing() == nil {
			out = append(out, h.where+": the merge dropped Istio's tracing block")
		}
	}
	return out
}
