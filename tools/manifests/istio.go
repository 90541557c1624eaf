package manifests

import (
	"fmt"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

const (
	floorComment = `Support floor (README "Which Envoy and Istio can run the wasm filter"):
the module is built by the standard Go compiler and needs the WASI functions
proxy-wasm-cpp-host added in PR 427, so it loads in Envoy >= 1.33 (Istio >=
1.25); below that the VM fails to load (missing import): use the ext_proc
adapter instead. Envoy 1.33-1.38 (Istio 1.25-1.30) answer poll_oneoff with
ENOSYS, which kills a Go guest that sleeps on a timer (golang/go#78513); this
module arms no timer and survived 1M requests with 24k GC cycles on a host
reproducing that cpp-host, so they are supported on that evidence; Envoy >=
1.39 (Istio >= 1.31, poll_oneoff fixed) is recommended. Tags with the
filterState sink need Envoy >= 1.37 (custom tags of type value).`

	phaseComment = `phase STATS, priority 1000: after Istio's authentication filters, so tags
read from JWT claims come only from tokens RequestAuthentication verified (the
engine reads claims WITHOUT checking signatures, docs/POLICY.md), and after
authorization, so requests RBAC denies cost no correlation record. The
highest priority runs first within a phase: other STATS-phase extensions see
the repaired context. No phase runs before Envoy's span is created
(docs/ENVOY.md §1); what must happen before it is the edge-trust mode's job.`

	failComment = `failStrategy FAIL_OPEN: tracebridge is observability. If the image cannot
be fetched or the VM fails (it cannot load below Envoy 1.33, see the floor),
requests pass without the filter instead of the FAIL_CLOSE default answering
errors for every request of the workload.`
)

func (r *renderer) wasmCommon(d *derived, matchNote string) (string, map[string]any) {
	cfg := map[string]any{
		"url":             r.o.Image,
		"imagePullPolicy": "IfNotPresent",
		"pluginConfig":    policyObject(d),
		"failStrategy":    "FAIL_OPEN",
		"type":            "HTTP",
	}
	if r.o.SHA256 != "" {
		cfg["sha256"] = r.o.SHA256
	}
	var envNote string
	if names := r.p.envNames(); len(names) > 0 {
		var env []any
		for _, n := range names {
			env = append(env, map[string]any{"name": n, "valueFrom": "HOST"})
		}
		cfg["vmConfig"] = map[string]any{"env": env}
		envNote = "\nvmConfig.env: the environment variables the policy reads (" + strings.Join(names, ", ") + "),\npassed from istio-proxy's environment (set them on the pod, e.g. from a Secret)."
	}
	comment := floorComment + "\n\n" + phaseComment + "\n\n" + failComment + `

` + matchNote + `
pluginConfig is the policy document (the same JSON the ext_proc service reads).` + envNote + `
` + notesComment(d)
	return comment, cfg
}

// Listener-filter match modes (WasmPlugin/TrafficExtension match.mode:
// CLIENT = outbound listeners, SERVER = inbound; pilot/pkg/model/extensions.go,
// matchMode, Istio 1.31).
const (
	matchBoth = `match CLIENT_AND_SERVER: the filter records inbound contexts (SERVER) and
restores them on the app's outbound calls (CLIENT).`
	matchClient = `match CLIENT: the filter runs on the outbound listeners only, where it restores
the app's outbound calls. On inbound requests the upstream filter of
envoyfilter.yaml does the module's whole work (record, tags, trust, response
headers): a listener filter there as well would record each inbound request
twice in the one shared-data map, and narrowed or sole-in-flight correlation
would find two in-flight entries for every outbound call (ambiguous).`
)

// sidecarWasm renders the listener-filter resources of a sidecar mode: the
// TrafficExtension, the WasmPlugin for Istio < 1.30 (same settings) and the
// Telemetry, with the listener filter on the directions matchMode names.
func (r *renderer) sidecarWasm(mode, matchMode, matchNote string) (te, wp, tel doc, err error) {
	d, err := r.p.derive(PlaceSidecar, r.o.adapt(PlaceSidecar))
	if err != nil {
		return doc{}, doc{}, doc{}, fmt.Errorf("%s: %w", mode, err)
	}
	ns := r.o.sidecarNS()
	comment, wasm := r.wasmCommon(d, matchNote)
	match := []any{map[string]any{"mode": matchMode}}
	selector := map[string]any{"matchLabels": labelsAny(r.o.WorkloadLabels)}

	teObj := map[string]any{
		"apiVersion": "extensions.istio.io/v1alpha1",
		"kind":       "TrafficExtension",
		"metadata":   r.meta("tracebridge", ns),
		"spec": map[string]any{
			"selector": selector,
			"phase":    "STATS",
			"priority": 1000,
			"match":    match,
			"wasm":     wasm,
		},
	}
	wpSpec := map[string]any{
		"selector": selector,
		"phase":    "STATS",
		"priority": 1000,
		"match":    match,
	}
	for k, v := range wasm {
		wpSpec[k] = v
	}
	wpObj := map[string]any{
		"apiVersion": "extensions.istio.io/v1alpha1",
		"kind":       "WasmPlugin",
		"metadata":   r.meta("tracebridge", ns),
		"spec":       wpSpec,
	}
	telObj, telComment := r.telemetry(ns, selector)
	return doc{comment: "TrafficExtension (Istio 1.30+, docs/ENVOY.md §4).\n\n" + comment, obj: teObj},
		doc{comment: "WasmPlugin (Istio < 1.30; same settings as trafficextension.yaml).\n\n" + comment, obj: wpObj},
		doc{comment: telComment, obj: telObj}, nil
}

func (r *renderer) sidecarAutoForward() ([]File, error) {
	te, wp, tel, err := r.sidecarWasm(ModeSidecarAutoForward, "CLIENT_AND_SERVER", matchBoth)
	if err != nil {
		return nil, err
	}
	base := "istio/overlays/" + ModeSidecarAutoForward + "/"
	return []File{
		{base + "kustomization.yaml", kustomization(`Sidecar auto-forward (README "Deployment modes" 1): the wasm filter in
both directions of the selected sidecars, and client-side tracing off for them.
Istio 1.30+: TrafficExtension. Istio < 1.30: replace trafficextension.yaml with
wasmplugin.yaml (never apply both: the filter would run twice).`,
			"telemetry.yaml", "trafficextension.yaml")},
		{base + "trafficextension.yaml", yamlFile(te)},
		{base + "wasmplugin.yaml", yamlFile(wp)},
		{base + "telemetry.yaml", yamlFile(tel)},
	}, nil
}

func (r *renderer) telemetry(ns string, selector map[string]any) (map[string]any, string) {
	tags := map[string]any{}
	var formatter []string
	for _, t := range r.p.tags() {
		if !t.inbound {
			continue
		}
		switch {
		case t.header2:
			tags[t.name] = map[string]any{"header": map[string]any{"name": t.header}}
		case t.filterState:
			tags[t.name] = map[string]any{"formatter": map[string]any{"value": filterStateFormat(t.name)}}
			formatter = append(formatter, t.name)
		}
	}
	server := map[string]any{"match": map[string]any{"mode": "SERVER"}}
	if len(tags) > 0 {
		server["customTags"] = tags
	}
	tel := map[string]any{
		"apiVersion": "telemetry.istio.io/v1alpha1",
		"kind":       "Telemetry",
		"metadata":   r.meta("tracebridge", ns),
		"spec": map[string]any{
			"selector": selector,
			"tracing": []any{
				server,
				map[string]any{"match": map[string]any{"mode": "CLIENT"}, "disableSpanReporting": true},
			},
		},
	}
	comment := `Server-side tracing kept, client-side tracing off for the workloads the
wasm filter runs in (docs/ENVOY.md §4): the outbound HTTP connection manager then
has no tracing block, outbound spans are NullSpans, and the trace headers the
filter restores reach the next hop untouched (docs/ENVOY.md §2).

Two entries rather than only match.mode SERVER: Istio starts BOTH sides from
meshConfig.defaultProviders.tracing, so a SERVER-only entry leaves the client
side traced whenever the mesh has a default provider. The CLIENT entry sets
disableSpanReporting, which Istio turns into "no tracing block" on outbound
listeners (pilot/pkg/model/telemetry.go, pilot/pkg/networking/core/tracing.go).
Caveats: no provider is named, so the server side uses the mesh default
provider (add providers: [{name: ...}] to the SERVER entry if the mesh has
none, or Istio disables both sides); Istio applies only one selector-based
Telemetry per workload, so do not select these workloads with another one.
Never select a gateway with it: Istio configures gateway listeners from the
CLIENT settings, so this resource would turn the gateway's tracing off.
disableContextPropagation (Istio 1.30+) is not used: with no tracing block
nothing is injected anyway, and older Telemetry CRDs reject the field.

customTags: the policy's tags with the header sink that apply to inbound
requests, read from the request header the filter sets (default
x-tracebridge-<name>). They replace the customTags of a namespace or root
Telemetry for these workloads.`
	if len(formatter) > 0 {
		comment += "\nTags " + strings.Join(formatter, ", ") + " use the filterState sink: type formatter, which istiod\nrenders only for proxies >= 1.29 (Envoy >= 1.37 CustomTag.value) and drops for older ones."
	}
	return tel, comment
}

// preciseParenting installs the module as an upstream HTTP filter of the
// inbound clusters (docs/ENVOY.md §3): an ECDS resource carrying the wasm
// config (istio-agent fetches oci:// modules for ECDS wasm configs) and a
// router patch referencing it (the inbound router's upstream_http_filters,
// which leave the clusters as Istio generates them).
func (r *renderer) preciseParenting() ([]File, error) {
	d, err := r.p.derive(PlaceSidecarUpstream, r.o.adapt(PlaceSidecarUpstream))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ModePreciseParenting, err)
	}
	ns := r.o.sidecarNS()
	const ecdsName = "tracebridge-upstream"
	ext := &corev3.TypedExtensionConfig{
		Name: ecdsName,
		TypedConfig: mustAny(wasmFilter(d.json, "", remoteOCI(r.o.Image, r.o.SHA256),
			// What Istio sets for a WasmPlugin's pull policy (pilot/pkg/model/extensions.go).
			map[string]string{"ISTIO_META_WASM_IMAGE_PULL_POLICY": "IfNotPresent"}, r.p.envNames())),
	}
	filter := &hcmv3.HttpFilter{Name: ecdsName, ConfigType: &hcmv3.HttpFilter_ConfigDiscovery{
		ConfigDiscovery: &corev3.ExtensionConfigSource{
			ConfigSource: &corev3.ConfigSource{
				ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
				ResourceApiVersion:    corev3.ApiVersion_V3,
				InitialFetchTimeout:   durationpb.New(0),
			},
			DefaultConfig:                    noopUpstreamFilter(),
			ApplyDefaultConfigWithoutWarming: true,
			TypeUrls:                         upstreamECDSTypeURLs(),
		},
	}}
	router := &hcmv3.HttpFilter{Name: nameRouter, ConfigType: &hcmv3.HttpFilter_TypedConfig{
		TypedConfig: mustAny(&routerv3.Router{UpstreamHttpFilters: []*hcmv3.HttpFilter{filter, upstreamCodec()}}),
	}}
	ef := r.envoyFilter("tracebridge-precise-parenting", ns, r.o.WorkloadLabels, []any{
		map[string]any{
			"applyTo": "EXTENSION_CONFIG",
			"patch":   map[string]any{"operation": "ADD", "value": toMap(ext)},
		},
		map[string]any{
			"applyTo": "HTTP_FILTER",
			"match": map[string]any{"context": "SIDECAR_INBOUND", "listener": map[string]any{
				"filterChain": map[string]any{"filter": map[string]any{
					"name": nameHCM, "subFilter": map[string]any{"name": nameRouter},
				}},
			}},
			"patch": map[string]any{"operation": "MERGE", "value": toMap(router)},
		},
	})
	comment := `Precise parenting (README "Deployment modes" 2): the same module, also
installed as an upstream HTTP filter for every inbound cluster. Upstream
filters run after the router injected the server span's context
(docs/ENVOY.md §3), so the inbound record taken there names THIS hop's server
span, and the next hop's parent is that span. The overlay's listener filter
(trafficextension.yaml, match CLIENT) restores on outbound what this instance
records; inbound, this instance is the only one. It decodes the HCM's own
request header map (source/common/router/upstream_request.cc,
acceptHeadersFromRouter, Envoy 1.31+), so the tag headers it sets are there
when the server span's custom tags are read at the end of the stream.
Istio never generates upstream filters: this needs an EnvoyFilter.

Patch 1 (EXTENSION_CONFIG): the wasm config as an ECDS resource, shaped like
the one Istio makes for a WasmPlugin (remote oci:// URL, cluster "_", pull
policy in ISTIO_META_WASM_IMAGE_PULL_POLICY): istio-agent fetches the module
and hands Envoy a local file instead. Pass --sha256 to pin the image.
vm_id is empty like Istio's WasmPlugin VMs (docs/ENVOY.md §4): proxy-wasm shared
data is keyed by vm_id, and the records must be visible to the listener
instance. failure_policy FAIL_OPEN, for the reason given in
trafficextension.yaml.
Patch 2 (HTTP_FILTER MERGE on the router of every inbound HTTP connection
manager): the router's upstream_http_filters run on every request it sends
to the app, for clusters that set no upstream filters of their own (Istio
sets none on inbound clusters). Istio merges the router's config field by
field and appends lists, so the router keeps Istio's settings, and the
inbound clusters keep Istio's protocol options (the app gets HTTP/1.1 on
http ports, HTTP/2 on grpc/http2 ports, the caller's protocol on sniffed
ports, idle timeouts unchanged). A CLUSTER MERGE cannot add the filter
instead: Istio's merge replaces whole map entries, so it would replace
Istio's HttpProtocolOptions of each cluster.
The ECDS reference admits every config it can carry: the module's Wasm
config, the allow-all RBAC filter istio-agent serves instead when the image
cannot be fetched under FAIL_OPEN, and the default (an empty header_mutation
filter that lets requests through until the module arrives); Envoy refuses a
default config or an update whose type the list lacks.

` + floorComment + " Upstream wasm filters: Envoy >= 1.31.\n\n" + notesComment(d)
	te, wp, tel, err := r.sidecarWasm(ModePreciseParenting, "CLIENT", matchClient)
	if err != nil {
		return nil, err
	}
	base := "istio/overlays/" + ModePreciseParenting + "/"
	return []File{
		{base + "kustomization.yaml", kustomization(
			`Precise parenting (README "Deployment modes" 2): the module as an upstream
filter of the inbound traffic (envoyfilter.yaml) and as the outbound listener
filter, with client-side tracing off, as in sidecar-auto-forward. Apply
instead of sidecar-auto-forward, not with it: its listener filter also runs
on inbound and would record each inbound request a second time.
Istio 1.30+: TrafficExtension. Istio < 1.30: replace trafficextension.yaml with
wasmplugin.yaml (never apply both: the filter would run twice).`,
			"telemetry.yaml", "trafficextension.yaml", "envoyfilter.yaml")},
		{base + "trafficextension.yaml", yamlFile(te)},
		{base + "wasmplugin.yaml", yamlFile(wp)},
		{base + "telemetry.yaml", yamlFile(tel)},
		{base + "envoyfilter.yaml", yamlFile(doc{comment: comment, obj: ef})},
	}, nil
}

func gatewayListenerMatch(subFilter string) map[string]any {
	f := map[string]any{"name": nameHCM}
	if subFilter != "" {
		f["subFilter"] = map[string]any{"name": subFilter}
	}
	return map[string]any{"context": "GATEWAY", "listener": map[string]any{"filterChain": map[string]any{"filter": f}}}
}

// metadataTagsPatch merges the tracing custom tags of type metadata into the
// gateway's HCM (list fields are appended by Istio's merge).
func (r *renderer) metadataTagsPatch() (map[string]any, []string) {
	tags := customTags(r.p.tags(), false, true, false)
	if len(tags) == 0 {
		return nil, nil
	}
	var names []string
	for _, t := range tags {
		names = append(names, t.Tag)
	}
	hcm := &hcmv3.HttpConnectionManager{Tracing: &hcmv3.HttpConnectionManager_Tracing{CustomTags: tags}}
	return map[string]any{
		"applyTo": "NETWORK_FILTER",
		"match":   gatewayListenerMatch(""),
		"patch": map[string]any{"operation": "MERGE", "value": map[string]any{
			"typed_config": toMap(mustAny(hcm)),
		}},
	}, names
}

// referenceExtProc names the ext_proc Service in the EnvoyFilter annotation
// Istio reads when it filters a gateway's clusters to the services its routes
// use (PILOT_FILTER_GATEWAY_CLUSTER_CONFIG): without it the gateway gets no
// cluster for the service ext_proc calls (convertToEnvoyFilterWrapper in
// pilot/pkg/model/envoyfilter.go, Istio 1.31; "namespace/host" entries).
func (r *renderer) referenceExtProc(ef map[string]any) {
	meta := ef["metadata"].(map[string]any)
	meta["annotations"] = map[string]any{
		"envoyfilter.istio.io/referenced-services": r.o.gatewayNS() + "/" + r.extProcHost(),
	}
}

// gatewayTags puts the tags the ext_proc service returns as dynamic metadata
// on the gateway's spans: by default a Telemetry resource with customTags of
// type formatter (file dir+"telemetry.yaml"), with --custom-tags envoyfilter
// an EnvoyFilter patch (returned for the caller's EnvoyFilter). names are the
// tags; all results are nil without metadata tags.
func (r *renderer) gatewayTags(dir string) (patch map[string]any, names []string, tel *File) {
	if r.o.CustomTags == CustomTagsEnvoyFilter {
		patch, names = r.metadataTagsPatch()
		return patch, names, nil
	}
	tags := map[string]any{}
	for _, t := range r.p.tags() {
		if t.metadata {
			tags[t.name] = map[string]any{"formatter": map[string]any{"value": metadataFormat(t.name)}}
			names = append(names, t.name)
		}
	}
	if len(tags) == 0 {
		return nil, nil, nil
	}
	obj := map[string]any{
		"apiVersion": "telemetry.istio.io/v1alpha1",
		"kind":       "Telemetry",
		"metadata":   r.meta("tracebridge-gateway", r.o.gatewayNS()),
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": labelsAny(r.o.GatewayLabels)},
			"tracing":  []any{map[string]any{"customTags": tags}},
		},
	}
	comment := `Span tags from the ext_proc service (docs/ENVOY.md §5, §6): the service
returns each tag as dynamic metadata (namespace tracebridge, key = tag name),
and customTags of type formatter read it with
%DYNAMIC_METADATA(tracebridge:<name>)%. Spans are finalized after the
response, so metadata set by ext_proc becomes a tag. Tags: ` + strings.Join(names, ", ") + `.

Needs Istio >= 1.29: istiod renders formatter tags to Envoy's CustomTag.value
(Envoy >= 1.37) only for proxies of 1.29 or later and drops them for older
ones (pilot/pkg/networking/core/tracing.go, buildCustomTagsFromProvider).
For older Istio render with --custom-tags envoyfilter: the tags then come
from an EnvoyFilter patch of custom_tags of type metadata.
No match and no providers: the entry applies to the gateway (Istio
configures gateway listeners from the CLIENT settings) and tracing stays
with the mesh default provider. Istio applies only one selector-based
Telemetry per workload, and these customTags replace those of a namespace
or root Telemetry for the gateway.`
	return nil, names, &File{dir + "telemetry.yaml", yamlFile(doc{comment: comment, obj: obj})}
}

// extProcPeerNote explains the extra request attribute of a policy that
// trusts principals.
func extProcPeerNote(d *derived) string {
	if !trustsPrincipals(d) {
		return ""
	}
	return `
request_attributes also lists connection.uri_san_peer_certificate: the
policy trusts mTLS peers by URI SAN (trust.trustedPrincipals), and Envoy
sends only the attributes it is asked for.`
}

// trustsPrincipals reports whether an adapted policy trusts mTLS peers by
// URI SAN (trust.trustedPrincipals): the ext_proc service then needs Envoy
// to send connection.uri_san_peer_certificate.
func trustsPrincipals(d *derived) bool {
	trust, _ := d.doc["trust"].(map[string]any)
	p, _ := trust["trustedPrincipals"].([]any)
	return len(p) > 0
}

const extProcComment = `ext_proc filter: failure_mode_allow true (an unreachable or slow service
never fails a request); message_timeout 100ms per message (the engine answers
in microseconds; the bound is what a sick service may add, twice: request and
response headers); processing mode headers only (bodies and trailers are
never sent); metadata_options accepts the "tracebridge" namespace the service
writes tags to (docs/ENVOY.md §6); request_attributes source.address and
xds.listener_direction are what the service reads for trust and direction.
The service is reached through the cluster Istio generates for its Service;
the envoyfilter.istio.io/referenced-services annotation makes Istio send that
cluster to the gateway also when PILOT_FILTER_GATEWAY_CLUSTER_CONFIG limits
the gateway's clusters to the services its routes use.`

func (r *renderer) gatewayConfigMap(d *derived, dir string) File {
	cm := map[string]any{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata":   r.meta("tracebridge-policy", r.o.gatewayNS()),
		"data":       map[string]any{"policy.json": prettyJSON(policyObject(d))},
	}
	return File{dir + "configmap.yaml", yamlFile(doc{comment: `The policy the tracebridge-extproc Deployment (base) reads from
/etc/tracebridge/policy.json; it reloads on change.
` + notesComment(d), obj: cm})}
}

func (r *renderer) gatewayEnrichment() ([]File, error) {
	d, err := r.p.derive(PlaceGateway, r.o.adapt(PlaceGateway))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ModeGatewayEnrichment, err)
	}
	ns := r.o.gatewayNS()
	filter := &hcmv3.HttpFilter{Name: nameExtProc, ConfigType: &hcmv3.HttpFilter_TypedConfig{
		TypedConfig: mustAny(extProcFilter(envoyGRPC(r.extProcCluster()), extProcAttributes(trustsPrincipals(d)))),
	}}
	patches := []any{map[string]any{
		"applyTo": "HTTP_FILTER",
		"match":   gatewayListenerMatch(nameRouter),
		"patch":   map[string]any{"operation": "INSERT_BEFORE", "value": toMap(filter)},
	}}
	dir := "istio/overlays/" + ModeGatewayEnrichment + "/"
	tagPatch, names, tel := r.gatewayTags(dir)
	if tagPatch != nil {
		patches = append(patches, tagPatch)
	}
	ef := r.envoyFilter("tracebridge-gateway-enrichment", ns, r.o.GatewayLabels, patches)
	r.referenceExtProc(ef)
	comment := `Sidecar-free gateway enrichment (README "Deployment modes" 3): the
ext_proc filter on the ingress gateway, inserted right before the router (so
after Istio's authentication and authorization filters), and the span tags
the service returns as dynamic metadata.

` + extProcComment + extProcPeerNote(d) + `

As a downstream filter its trace-header changes to formats the tracer owns
are overwritten by the router (docs/ENVOY.md §2, §6); it tags, repairs formats the
tracer does not write and answers the server-timing trace metric for contexts
Envoy joined.
For translation after injection use gateway-enrichment-upstream.
`
	switch {
	case tagPatch != nil:
		comment += `
Patch 2 merges tracing custom_tags of type metadata (namespace tracebridge,
key = tag name) for the policy's tags with the metadata sink: ` + strings.Join(names, ", ") + `.
Spans are finalized after the response, so metadata set by ext_proc becomes a
tag (docs/ENVOY.md §6). It assumes tracing is on for the gateway (mesh default
provider or Telemetry; Istio configures gateways from the Telemetry CLIENT
settings); the list is appended to Istio's own custom tags. Rendered with
--custom-tags envoyfilter (Istio < 1.29); the default is telemetry.yaml.
`
	case tel != nil:
		comment += "\nThe span tags (" + strings.Join(names, ", ") + ") are in telemetry.yaml.\n"
	}
	resources := []string{"../../base", "configmap.yaml", "envoyfilter.yaml"}
	if tel != nil {
		resources = append(resources, "telemetry.yaml")
	}
	files := []File{
		{dir + "kustomization.yaml", kustomization(`Gateway enrichment: the ext_proc service (base), its policy, the
EnvoyFilter inserting ext_proc on the ingress gateway, and the Telemetry
putting the tags it returns on the gateway's spans.`, resources...)},
		r.gatewayConfigMap(d, dir),
		{dir + "envoyfilter.yaml", yamlFile(doc{comment: comment + "\nThe service's policy is configmap.yaml. " + notesComment(d), obj: ef})},
	}
	if tel != nil {
		files = append(files, *tel)
	}
	return files, nil
}

func (r *renderer) gatewayEnrichmentUpstream() ([]File, error) {
	d, err := r.p.derive(PlaceGatewayUpstream, r.o.adapt(PlaceGatewayUpstream))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ModeGatewayEnrichmentUpstream, err)
	}
	if err := r.checkBackends(); err != nil {
		return nil, err
	}
	ns := r.o.gatewayNS()
	var patches []any
	for _, b := range r.o.GatewayBackends {
		host, port, _ := splitHostPort(b)
		filter := &hcmv3.HttpFilter{Name: nameExtProc, ConfigType: &hcmv3.HttpFilter_TypedConfig{
			TypedConfig: mustAny(extProcFilter(envoyGRPC(r.extProcCluster()), extProcAttributes(trustsPrincipals(d)))),
		}}
		opts := protocolOptions([]*hcmv3.HttpFilter{filter}, false, false)
		patches = append(patches, map[string]any{
			"applyTo": "CLUSTER",
			"match": map[string]any{"context": "GATEWAY", "cluster": map[string]any{
				"service": host, "portNumber": port,
			}},
			"patch": map[string]any{"operation": "MERGE", "value": map[string]any{
				"typed_extension_protocol_options": map[string]any{nameHTTPProtocol: toMap(mustAny(opts))},
			}},
		})
	}
	dir := "istio/overlays/" + ModeGatewayEnrichmentUpstream + "/"
	// As an upstream filter the service cannot tell a client's request from
	// the mesh's (the trust rules are dropped for this placement), so a
	// client's own x-tracebridge-<tag> would reach the sidecars behind the
	// gateway, whose span tags read those headers. When the policy calls
	// inbound traffic untrusted, the gateway removes them before anything
	// reads them, as the edge-trust overlay does (applying both repeats the
	// same removals, which is harmless).
	owned := r.p.untrustedOwnedHeaders()
	if len(owned) > 0 {
		hcm := &hcmv3.HttpConnectionManager{EarlyHeaderMutationExtensions: []*corev3.TypedExtensionConfig{earlyMutation(owned)}}
		patches = append(patches, map[string]any{
			"applyTo": "NETWORK_FILTER",
			"match":   gatewayListenerMatch(""),
			"patch": map[string]any{"operation": "MERGE", "value": map[string]any{
				"typed_config": toMap(mustAny(hcm)),
			}},
		})
	}
	tagPatch, names, tel := r.gatewayTags(dir)
	if tagPatch != nil {
		patches = append(patches, tagPatch)
	}
	ef := r.envoyFilter("tracebridge-gateway-enrichment-upstream", ns, r.o.GatewayLabels, patches)
	r.referenceExtProc(ef)
	comment := `Gateway enrichment, upstream-filter variant: the ext_proc filter on the
gateway's clusters to the listed backends instead of on its listener. Upstream
filters run after the router injected the gateway span's context
(docs/ENVOY.md §3), so formats translated here agree with the span Envoy
reports, their changes stick (docs/ENVOY.md §6), and the server-timing trace
metric names the gateway's span. Metadata returned here still becomes span tags. Upstream
ext_proc needs Envoy >= 1.30 and is alpha there.

One ext_proc service serves one policy, hence one placement: this variant
replaces the listener filter of gateway-enrichment; apply one or the other.
One cluster patch per backend (Options.GatewayBackends / --backend): a patch
without a cluster match would also put ext_proc on the cluster of the ext_proc
service itself (its own gRPC calls would go through it) and on the trace
collector's. Istio's proto merge replaces the HttpProtocolOptions entry, so it
chooses the upstream protocol itself: HTTP/1.1 here; use
http2_protocol_options for HTTP/2 or gRPC backends.

` + extProcComment + extProcPeerNote(d) + "\n"
	if len(owned) > 0 {
		comment += "\nThe listener patch removes, before the span exists, the headers only tracebridge\nwrites (" + strings.Join(owned, ", ") + "): the policy calls inbound\ntraffic untrusted, and this placement cannot tell a client's request apart.\n"
	}
	switch {
	case tagPatch != nil:
		comment += "\nThe last patch merges tracing custom_tags of type metadata for: " + strings.Join(names, ", ") + "\n(--custom-tags envoyfilter, Istio < 1.29; the default is telemetry.yaml).\n"
	case tel != nil:
		comment += "\nThe span tags (" + strings.Join(names, ", ") + ") are in telemetry.yaml.\n"
	}
	resources := []string{"../../base", "configmap.yaml", "envoyfilter.yaml"}
	if tel != nil {
		resources = append(resources, "telemetry.yaml")
	}
	files := []File{
		{dir + "kustomization.yaml", kustomization(`Gateway enrichment with ext_proc as an upstream filter (format translation
and the server-timing trace metric after injection): the ext_proc service (base), its policy,
the EnvoyFilter, and the Telemetry putting the tags on the gateway's spans.`, resources...)},
		r.gatewayConfigMap(d, dir),
		{dir + "envoyfilter.yaml", yamlFile(doc{comment: comment + "\nThe service's policy is configmap.yaml. " + notesComment(d), obj: ef})},
	}
	if tel != nil {
		files = append(files, *tel)
	}
	return files, nil
}

func (r *renderer) edgeTrust() ([]File, error) {
	headers, why, err := r.p.earlyRemovals()
	if err != nil {
		r.skip(ModeEdgeTrust, err)
		return nil, nil
	}
	if len(headers) == 0 {
		r.skip(ModeEdgeTrust, fmt.Errorf("nothing to remove: %s", why))
		return nil, nil
	}
	ns := r.o.gatewayNS()
	hcm := &hcmv3.HttpConnectionManager{EarlyHeaderMutationExtensions: []*corev3.TypedExtensionConfig{earlyMutation(headers)}}
	ef := r.envoyFilter("tracebridge-edge-trust", ns, r.o.GatewayLabels, []any{map[string]any{
		"applyTo": "NETWORK_FILTER",
		"match":   gatewayListenerMatch(""),
		"patch": map[string]any{"operation": "MERGE", "value": map[string]any{
			"typed_config": toMap(mustAny(hcm)),
		}},
	}})
	comment := `Edge trust boundary (README "Deployment modes" 4): untrusted incoming
trace headers are removed by the gateway's HTTP connection manager BEFORE
Envoy creates its span. Envoy creates the span from the incoming headers
before any HTTP filter runs, and no filter can change its trace id or parent
afterwards (docs/ENVOY.md §1); early_header_mutation is the only hook that runs
before, so this is static config generated from the policy, not a filter.
The filters (wasm, ext_proc) still count and tag what reaches them.

Why these headers: ` + why + `.
Removed: ` + strings.Join(headers, ", ") + `.
Trace headers: only what must go before the span is removed. The tag
headers go here because hops behind the edge trust them. The debug flag of b3 and
x-b3-flags stays (for Envoy it only means "sampled", which x-b3-sampled or
traceparent flags can say too; the filters downgrade and count it). baggage
stays: it does not feed Envoy's span, and the engine validates it. With
trust.action restart the filters no longer see the client's trace id, so the
untrusted_trace_id tag is not set at this edge.
Every request on the gateway's listeners is treated as untrusted (the
mutation has no condition), which is what trust.untrustedDirections
["inbound"] means at an ingress gateway. early_header_mutation: Envoy >= 1.27.`
	dir := "istio/overlays/" + ModeEdgeTrust + "/"
	return []File{
		{dir + "kustomization.yaml", kustomization(`Edge trust boundary: the early header mutation on the ingress gateway.`, "envoyfilter.yaml")},
		{dir + "envoyfilter.yaml", yamlFile(doc{comment: comment, obj: ef})},
	}, nil
}

// envoyFilter is an EnvoyFilter resource: patches applied to the workloads
// that carry labels.
func (r *renderer) envoyFilter(name, ns string, labels map[string]string, patches []any) map[string]any {
	return map[string]any{
		"apiVersion": "networking.istio.io/v1alpha3",
		"kind":       "EnvoyFilter",
		"metadata":   r.meta(name, ns),
		"spec": map[string]any{
			"workloadSelector": map[string]any{"labels": labelsAny(labels)},
			"configPatches":    patches,
		},
	}
}
