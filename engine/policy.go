package engine

// Policy is the policy document: the wasm filter's pluginConfig and the
// ext_proc service's --config file. Field names are the JSON keys; the README's
// policy reference documents each one.
type Policy struct {
	// Direction pins the traffic direction: "auto" (from the host: Envoy's
	// xds.listener_direction or the ext_proc placement), "inbound" or "outbound".
	Direction string `json:"direction,omitempty"`
	// Read lists the formats to read, first valid wins: w3c, b3, b3multi, jaeger.
	Read []string `json:"read,omitempty"`
	// Emit lists the formats every forwarded request carries.
	Emit []string `json:"emit,omitempty"`
	// Invalid is the action for a malformed trace header: repair, restart,
	// reject or pass.
	Invalid        string               `json:"invalid,omitempty"`
	Inject         InjectPolicy         `json:"inject"`
	Trust          TrustPolicy          `json:"trust"`
	Correlation    CorrelationPolicy    `json:"correlation"`
	Tags           []TagRule            `json:"tags,omitempty"`
	ResponseHeader ResponseHeaderPolicy `json:"responseHeader"`
	Baggage        BaggagePolicy        `json:"baggage"`
	Host           HostPolicy           `json:"host"`
	ClientSpans    ClientSpansPolicy    `json:"clientSpans"`
}

// InjectPolicy says what happens when a request has no valid context and
// nothing could be restored.
type InjectPolicy struct {
	Enabled *bool `json:"enabled,omitempty"`
	// Formats to inject; empty means Emit.
	Formats []string `json:"formats,omitempty"`
	// Sampling of a new context: defer (leave it to the next tracer), sampled,
	// notSampled.
	Sampling string `json:"sampling,omitempty"`
}

// TrustPolicy decides which requests are untrusted and what is done to them.
type TrustPolicy struct {
	// UntrustedDirections: requests arriving in these directions are untrusted
	// (e.g. ["inbound"] at an ingress gateway).
	UntrustedDirections []string `json:"untrustedDirections,omitempty"`
	// UntrustedCIDRs: requests whose source address is in one of these are
	// untrusted.
	UntrustedCIDRs []string `json:"untrustedCIDRs,omitempty"`
	// TrustedHeader: a request carrying this header with this value is trusted
	// whatever the rules above say (e.g. set by an internal load balancer).
	TrustedHeader *HeaderMatch `json:"trustedHeader,omitempty"`
	// TrustedPrincipals: a request whose mTLS peer (URI SAN, e.g.
	// spiffe://cluster.local/ns/prod/sa/gateway) is listed is trusted whatever
	// the rules above say. An entry ending in "*" matches by prefix.
	TrustedPrincipals []string `json:"trustedPrincipals,omitempty"`
	// Action on untrusted requests: strip (remove sampling-forcing headers and
	// downgrade debug), restart (new trace, old trace id kept as a tag), keep.
	Action     string            `json:"action,omitempty"`
	DebugToken *DebugTokenPolicy `json:"debugToken,omitempty"`
}

// HeaderMatch matches a header by exact value.
type HeaderMatch struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// DebugTokenPolicy enables a signed token that lets an operator force
// sampling from outside: header value "<unix-expiry>.<hex HMAC-SHA256 of the
// expiry digits under the secret>".
type DebugTokenPolicy struct {
	Header string `json:"header,omitempty"`
	// Secret is the HMAC key; SecretEnv names an environment variable holding it.
	Secret    string `json:"secret,omitempty"`
	SecretEnv string `json:"secretEnv,omitempty"`
	// MaxTTL bounds how far in the future an expiry may be (default "1h").
	MaxTTL string `json:"maxTTL,omitempty"`
}

// CorrelationPolicy configures recording inbound contexts and restoring them
// on the app's outbound calls.
type CorrelationPolicy struct {
	// Strategies: "key", "narrowed" and/or "soleInFlight"; empty list
	// disables correlation.
	Strategies []string `json:"strategies,omitempty"`
	// KeyHeaders are looked up, in order, to find the record (default x-request-id).
	KeyHeaders []string `json:"keyHeaders,omitempty"`
	TTL        string   `json:"ttl,omitempty"`
	Capacity   int      `json:"capacity,omitempty"`
	// RestoreHeaders are recorded on inbound and restored on outbound.
	RestoreHeaders []string `json:"restoreHeaders,omitempty"`
	// InFlightTimeout: an inbound request whose end is never seen stops
	// counting as in flight after this long (default "5m").
	InFlightTimeout string `json:"inFlightTimeout,omitempty"`
	// NarrowHeaders are the candidate headers of the narrowed strategy
	// (default DefaultNarrowHeaders).
	NarrowHeaders []string `json:"narrowHeaders,omitempty"`
}

// TagRule computes one tag from one source and writes it to sinks.
type TagRule struct {
	Name string    `json:"name"`
	From TagSource `json:"from"`
	// To lists sinks: header, baggage, filterState, metadata.
	To []string `json:"to"`
	// Header is the request header for the header sink (default
	// "x-tracebridge-" + name).
	Header string `json:"header,omitempty"`
	// MaxLength caps the value (default 256 bytes).
	MaxLength int `json:"maxLength,omitempty"`
	// Directions limits the rule (default: every direction).
	Directions []string `json:"directions,omitempty"`
}

// TagSource: exactly one field is set.
type TagSource struct {
	Literal *string    `json:"literal,omitempty"`
	Env     string     `json:"env,omitempty"`
	Header  string     `json:"header,omitempty"`
	Path    *PathMatch `json:"path,omitempty"`
	Query   string     `json:"query,omitempty"`
	JWT     *JWTClaim  `json:"jwt,omitempty"`
}

// PathMatch takes a capture group of a regular expression over the URL path
// (query excluded).
type PathMatch struct {
	Regex string `json:"regex"`
	Group int    `json:"group,omitempty"`
}

// JWTClaim reads a claim from a JWT's payload WITHOUT verifying its
// signature: verification belongs to Istio's RequestAuthentication, which runs
// before tracebridge.
type JWTClaim struct {
	Header string `json:"header,omitempty"` // default "authorization" (Bearer prefix removed)
	Claim  string `json:"claim"`            // dot-separated path
}

// ResponseHeaderPolicy configures the trace-id response header.
type ResponseHeaderPolicy struct {
	Enabled *bool `json:"enabled,omitempty"`
	// Format is "serverTiming" (default: a "trace" metric in server-timing,
	// Trace Context Level 2) or "traceresponse" (the earlier draft's header).
	Format string `json:"format,omitempty"`
	// Name is the header of the traceresponse format (default traceresponse).
	Name string `json:"name,omitempty"`
}

// BaggagePolicy limits accepted baggage (W3C Baggage §3.3.2 defaults).
type BaggagePolicy struct {
	MaxMembers int `json:"maxMembers,omitempty"`
	MaxBytes   int `json:"maxBytes,omitempty"`
}

// HostPolicy describes where the instance runs, which decides what its
// header changes can achieve (docs/ENVOY.md §1–§3).
type HostPolicy struct {
	// Placement: downstream (an HTTP filter of the listener, before the router
	// injects) or upstream (a cluster filter, after injection).
	Placement string `json:"placement,omitempty"`
	// Tracing: whether the listener has a tracing block (its router overwrites
	// tracer-owned headers set by a downstream filter). Default true.
	Tracing *bool `json:"tracing,omitempty"`
	// Tracer names the proxies' tracer: zipkin (writes x-b3-*), zipkin-w3c
	// (Zipkin with USE_B3_WITH_W3C_PROPAGATION: writes x-b3-* and
	// traceparent, reads B3 first), opentelemetry (writes
	// traceparent/tracestate) or none (unknown, the default). The tracer's
	// formats are rewritten by Envoy on every hop, so when formats disagree
	// they are the fresh ones and win over read precedence.
	Tracer string `json:"tracer,omitempty"`
}
