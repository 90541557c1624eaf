package manifests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/tracebridge/tracebridge/engine"
	"github.com/tracebridge/tracebridge/engine/policyfile"
	"github.com/tracebridge/tracebridge/propagation"
)

// placeholderEnv lets policies that name environment variables (secretEnv,
// env tag sources) compile at render time: the values only exist in the
// proxy or the ext_proc pod.
func placeholderEnv(string) string { return "render-time-placeholder-value" }

// PolicyJSON returns a JSON or YAML policy as JSON, read with the rules of
// `tracebridge config validate` and tracebridge-extproc --config.
func PolicyJSON(data []byte) ([]byte, error) {
	return policyfile.JSON(data)
}

// policyDoc is one policy: the document as the user wrote it (kept as a
// generic object so that pluginConfig carries exactly their fields) and the
// compiled form.
type policyDoc struct {
	raw map[string]any
	cfg *engine.Config
}

func loadPolicy(data []byte) (*policyDoc, error) {
	raw := map[string]any{}
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &raw); err != nil {
			return nil, err
		}
	}
	// clientSpans.cluster is filled in per placement (derive); the document
	// compiles here with a stand-in so that every other field is checked.
	compiled := data
	if needsCollector(raw) {
		d := deepCopy(raw)
		subMap(d, "clientSpans")["cluster"] = "render-time-placeholder-cluster"
		var err error
		if compiled, err = json.Marshal(d); err != nil {
			return nil, err
		}
	}
	cfg, err := engine.LoadPolicy(compiled, placeholderEnv)
	if err != nil {
		return nil, err
	}
	return &policyDoc{raw: raw, cfg: cfg}, nil
}

// needsCollector: the policy turns clientSpans on without naming the
// collector cluster.
func needsCollector(raw map[string]any) bool {
	cs, ok := raw["clientSpans"].(map[string]any)
	if !ok || cs["enabled"] != true {
		return false
	}
	c, set := cs["cluster"]
	return !set || c == ""
}

// Default tracing provider of the mesh: Istio's Zipkin extension provider
// as its samples install it (service and port of the provider's config).
const (
	DefaultCollectorService = "zipkin.istio-system.svc.cluster.local"
	DefaultCollectorPort    = 9411
)

// IstioCollectorCluster is the cluster Istio generates for a tracing
// provider's service and port: pilot looks the service up by host name
// (or "namespace/host") and names the cluster
// outbound|<port>||<host> (pilot/pkg/networking/core/tracing.go,
// configureFromProviderConfig, and pilot/pkg/model LookupCluster with
// BuildSubsetKey; istio 1.31).
func IstioCollectorCluster(service string, port int) (string, error) {
	host := service
	if i := strings.IndexByte(service, '/'); i >= 0 {
		host = service[i+1:]
	}
	if host == "" || strings.ContainsAny(host, "|/ \t\n") {
		return "", fmt.Errorf("collector service: a service host name or namespace/host name, got %q", service)
	}
	if port < 1 || port > 65535 {
		return "", fmt.Errorf("collector port: must be between 1 and 65535, got %d", port)
	}
	return "outbound|" + strconv.Itoa(port) + "||" + host, nil
}

// Placement is where an instance of the engine runs; it decides how the
// policy is adapted (see the package comment). The e2e harness adapts its
// policies with the same function, so a rendered proxy and a simulated one
// run the same document.
type Placement int

// Placements.
const (
	PlaceSidecar         Placement = iota // wasm listener filter, both directions
	PlaceSidecarUpstream                  // wasm upstream filter on inbound clusters
	PlaceGateway                          // ext_proc listener filter at a gateway
	PlaceGatewayUpstream                  // ext_proc upstream filter at a gateway
	PlaceEnvoy                            // plain Envoy: the document as written
)

// AdaptOptions describe the proxy the adapted policy runs in.
type AdaptOptions struct {
	// Tracer is the proxy's tracer: "zipkin" (the default; what the rendered
	// resources configure), "zipkin-w3c" (Zipkin with B3 and W3C
	// propagation), "opentelemetry" or "none".
	Tracer string
	// Tracing, when set, is written to host.tracing (whether this listener
	// has a tracing block); nil leaves the policy's value.
	Tracing *bool
	// Collector is the proxy's cluster of the trace collector, written to
	// clientSpans.cluster when the policy enables clientSpans without one.
	Collector string
}

// AdaptPolicy returns a policy document adapted to a placement, with the
// notes that explain each change.
func AdaptPolicy(doc []byte, pl Placement, o AdaptOptions) ([]byte, []string, error) {
	p, err := loadPolicy(doc)
	if err != nil {
		return nil, nil, err
	}
	d, err := p.derive(pl, o)
	if err != nil {
		return nil, nil, err
	}
	return d.json, d.notes, nil
}

// derived is a policy adapted to one placement, with the notes that explain
// each change (they go into the rendered comments).
type derived struct {
	doc   map[string]any
	json  []byte
	notes []string
}

func (p *policyDoc) derive(pl Placement, o AdaptOptions) (*derived, error) {
	doc := deepCopy(p.raw)
	var notes []string
	dir, _ := doc["direction"].(string)
	host := subMap(doc, "host")
	trust := subMap(doc, "trust")
	dropTrust := func(key, why string) {
		if _, ok := trust[key]; ok {
			delete(trust, key)
			notes = append(notes, "trust."+key+" removed: "+why)
		}
	}
	pin := func(want string) error {
		switch dir {
		case "", "auto":
			doc["direction"] = want
			notes = append(notes, `direction pinned to "`+want+`"`)
		case want:
		default:
			return fmt.Errorf("the policy pins direction %q; this placement needs %q (or \"auto\")", dir, want)
		}
		return nil
	}
	setPlacement := func(want string) error {
		got, _ := host["placement"].(string)
		switch got {
		case want:
		case "", "downstream":
			if want == "downstream" {
				return nil
			}
			host["placement"] = want
			notes = append(notes, `host.placement set to "`+want+`"`)
		default:
			return fmt.Errorf("the policy sets host.placement %q; this placement needs %q", got, want)
		}
		return nil
	}
	var err error
	switch pl {
	case PlaceSidecar:
		if dir != "" && dir != "auto" {
			return nil, fmt.Errorf("sidecar modes install the filter in both directions: direction must be \"auto\", got %q", dir)
		}
		err = setPlacement("downstream")
		dropTrust("untrustedDirections", "in a sidecar every in-mesh hop is inbound; the trust boundary is the edge gateway (edge-trust mode)")
	case PlaceSidecarUpstream:
		err = setPlacement("upstream")
		if err == nil {
			err = pin("inbound")
		}
		dropTrust("untrustedDirections", "an upstream filter sees the context Envoy injected itself (docs/ENVOY.md §3)")
		dropTrust("untrustedCIDRs", "an upstream filter sees the context Envoy injected itself (docs/ENVOY.md §3)")
	case PlaceGateway:
		err = setPlacement("downstream")
		if err == nil {
			err = pin("inbound")
		}
	case PlaceGatewayUpstream:
		err = setPlacement("upstream")
		if err == nil {
			err = pin("inbound")
		}
		dropTrust("untrustedDirections", "an upstream filter sees the context the gateway's Envoy injected itself, after the early header mutation (docs/ENVOY.md §1, §3)")
		dropTrust("untrustedCIDRs", "an upstream filter sees the context the gateway's Envoy injected itself, after the early header mutation (docs/ENVOY.md §1, §3)")
	case PlaceEnvoy:
	}
	if err != nil {
		return nil, err
	}
	if o.Tracing != nil {
		host["tracing"] = *o.Tracing
	}
	// The tracer's format is rewritten by Envoy's router on every hop (the
	// rendered proxies trace with Zipkin: Istio's Zipkin/Jaeger provider, the
	// bootstrap's envoy.tracers.zipkin): with host.tracer the engine lets that
	// fresh format win when formats disagree. A policy naming its tracer keeps
	// it; a listener without tracing has no fresh format.
	if _, set := host["tracer"]; !set && (o.Tracing == nil || *o.Tracing) {
		name, label, headers := "", "", ""
		var formats []string
		switch o.Tracer {
		case "", "zipkin":
			name, formats, label, headers = "zipkin", []string{"b3multi"}, "Zipkin", "x-b3-*"
		case "zipkin-w3c":
			name, formats, label, headers = "zipkin-w3c", []string{"b3multi", "w3c"}, "Zipkin (B3 and W3C)", "x-b3-* and traceparent"
		case "otel", "opentelemetry":
			name, formats, label, headers = "opentelemetry", []string{"w3c"}, "OpenTelemetry", "traceparent"
		}
		reads := len(formats) > 0
		for _, f := range formats {
			reads = reads && p.cfg.ReadsFormat(f)
		}
		if name != "" && reads {
			host["tracer"] = name
			notes = append(notes, `host.tracer set to "`+name+`": the `+label+` tracer rewrites `+headers+` on every hop, so `+headers+` wins when formats disagree`)
		}
	}
	if needsCollector(doc) && o.Collector != "" {
		subMap(doc, "clientSpans")["cluster"] = o.Collector
		notes = append(notes, `clientSpans.cluster set to "`+o.Collector+`": the collector cluster of the proxy's tracing provider`)
	}
	if len(trust) == 0 {
		delete(doc, "trust")
	}
	if len(host) == 0 {
		delete(doc, "host")
	}
	data, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	if _, err := engine.LoadPolicy(data, placeholderEnv); err != nil {
		return nil, fmt.Errorf("adapted policy: %w", err)
	}
	return &derived{doc: doc, json: data, notes: notes}, nil
}

func subMap(doc map[string]any, key string) map[string]any {
	m, ok := doc[key].(map[string]any)
	if !ok {
		m = map[string]any{}
	}
	doc[key] = m
	return m
}

func deepCopy(m map[string]any) map[string]any {
	data, _ := json.Marshal(m)
	out := map[string]any{}
	_ = json.Unmarshal(data, &out)
	return out
}

// tagInfo is a tag rule as the manifests need it.
type tagInfo struct {
	name, header string
	header2      bool // header sink
	metadata     bool
	filterState  bool
	inbound      bool // the rule applies to inbound requests
}

func (p *policyDoc) tags() []tagInfo {
	var out []tagInfo
	for _, t := range p.cfg.Policy.Tags {
		ti := tagInfo{name: t.Name, header: strings.ToLower(t.Header)}
		if ti.header == "" {
			ti.header = engine.TagHeaderPrefix + strings.ToLower(t.Name)
		}
		ti.header2 = slices.Contains(t.To, "header")
		ti.metadata = slices.Contains(t.To, "metadata")
		ti.filterState = slices.Contains(t.To, "filterState")
		ti.inbound = len(t.Directions) == 0 || slices.Contains(t.Directions, "inbound")
		out = append(out, ti)
	}
	return out
}

// EarlyRemovals is the request headers an edge removes before Envoy's span
// exists (early_header_mutation) for a policy: what edge-trust renders, and
// what the e2e harness's gateway applies.
func EarlyRemovals(policy []byte) ([]string, error) {
	p, err := loadPolicy(policy)
	if err != nil {
		return nil, err
	}
	h, _, err := p.earlyRemovals()
	return h, err
}

// earlyRemovals is the list of request headers the edge removes before
// Envoy's span exists, and the reason. Only what MUST go before the span is
// removed: everything else stays visible to the filters, which count, tag
// and repair what they see (docs/ENVOY.md §1 and "Consequences for the design").
//
//   - No untrusted inbound traffic: nothing.
//   - Untrusted inbound traffic, whatever trust.action says: the headers
//     only tracebridge writes (Config.OwnedHeaders: each tag's header sink
//     and x-tracebridge-<name>, x-tracebridge-untrusted-trace-id). A client's
//     own copy would otherwise become a span tag of the gateway and of
//     every hop behind it whenever a rule computes no value (customTags of
//     type header read them), and the hops behind the edge trust them.
//   - "strip": x-envoy-force-trace and x-client-trace-id. Envoy reads them
//     when it makes the sampling decision of the span it creates from the
//     incoming headers; a filter running later cannot undo that decision
//     (clearRouteCache only re-runs sampling for the route, docs/ENVOY.md §1).
//     The debug flags of b3/x-b3-flags stay: for Envoy they only mean
//     "sampled", which x-b3-sampled or traceparent flags can say anyway, and
//     the filter downgrades and counts them.
//   - "restart": also every header of the formats the policy reads
//     (traceparent and tracestate, b3, x-b3-*, uber-trace-id). Envoy's span
//     joins whatever context it finds, and no filter can change the span's
//     trace id or parent afterwards, so a restart that left them would give
//     Envoy's span the client's trace id while the filters start another
//     one. tracestate goes with traceparent (its entries describe the
//     client's trace). baggage is NOT removed: it does not feed Envoy's span,
//     and the engine validates and keeps it on restart, as the policy says.
//     Cost: the filters no longer see the client's trace id, so the
//     untrusted_trace_id tag is not set at this edge.
//
// untrustedOwnedHeaders are the headers only tracebridge writes when the
// policy calls inbound traffic untrusted (a gateway's clients), else none.
func (p *policyDoc) untrustedOwnedHeaders() []string {
	if !slices.Contains(p.cfg.Policy.Trust.UntrustedDirections, "inbound") {
		return nil
	}
	return p.cfg.OwnedHeaders()
}

func (p *policyDoc) earlyRemovals() (headers []string, why string, err error) {
	t := p.cfg.Policy.Trust
	if !slices.Contains(t.UntrustedDirections, "inbound") {
		if len(t.UntrustedCIDRs) > 0 {
			return nil, "", fmt.Errorf("trust.untrustedCIDRs cannot be applied before the span exists: early_header_mutation has no condition on the source address; add \"inbound\" to trust.untrustedDirections for the gateway, or leave the CIDR rule to the filters")
		}
		return nil, "the policy declares no untrusted inbound traffic", nil
	}
	if t.TrustedHeader != nil {
		return nil, "", fmt.Errorf("trust.trustedHeader cannot be honoured before the span exists: early_header_mutation removes headers from every request on the listener; drop trustedHeader or leave the trust rules to the filters")
	}
	owned := p.cfg.OwnedHeaders()
	const ownedWhy = "the headers only tracebridge writes (tag headers, the untrusted trace id) go, so that a client cannot set span tags"
	switch t.Action {
	case "", "keep":
		return owned, `trust.action is "keep": untrusted trace headers are kept; ` + ownedWhy, nil
	case "strip":
		return append(append([]string(nil), propagation.ForcingHeaders[:]...), owned...),
			`trust.action "strip": the sampling-forcing headers go before Envoy's sampling decision, and ` + ownedWhy, nil
	case "restart":
		hs := append([]string(nil), propagation.ForcingHeaders[:]...)
		read := p.cfg.Policy.Read
		if read == nil {
			read = engine.DefaultPolicy().Read
		}
		for _, name := range read {
			f, ok := propagation.ParseFormat(name)
			if !ok {
				continue
			}
			for _, h := range propagation.FormatHeaders(f) {
				if !slices.Contains(hs, h) {
					hs = append(hs, h)
				}
			}
		}
		hs = append(hs, owned...)
		return hs, `trust.action "restart": the sampling-forcing headers and every header of the read formats go before Envoy creates its span, so the span starts a new trace, and ` + ownedWhy, nil
	}
	return nil, "", fmt.Errorf("unknown trust.action %q", t.Action)
}

// envNames lists the environment variables the policy reads (tag sources
// and the debug-token secret): the proxy must hand them to the wasm VM, which
// sees no environment otherwise.
func (p *policyDoc) envNames() []string {
	var out []string
	add := func(n string) {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if dt := p.cfg.Policy.Trust.DebugToken; dt != nil {
		add(dt.SecretEnv)
	}
	for _, t := range p.cfg.Policy.Tags {
		add(t.From.Env)
	}
	return out
}
