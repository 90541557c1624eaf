package engine

import (
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tracebridge/tracebridge/propagation"
)

// Direction of a request relative to the proxy's workload.
type Direction uint8

const (
	DirectionUnknown Direction = iota
	Inbound
	Outbound
)

func (d Direction) String() string {
	switch d {
	case Inbound:
		return "inbound"
	case Outbound:
		return "outbound"
	}
	return "unknown"
}

func parseDirection(s string) (Direction, bool) {
	switch s {
	case "inbound":
		return Inbound, true
	case "outbound":
		return Outbound, true
	}
	return DirectionUnknown, false
}

// InvalidAction is what happens to a malformed trace header.
type InvalidAction uint8

const (
	InvalidRepair InvalidAction = iota
	InvalidRestart
	InvalidReject
	InvalidPass
)

// TrustAction is what happens to an untrusted request.
type TrustAction uint8

const (
	TrustKeep TrustAction = iota
	TrustStrip
	TrustRestart
)

// Sink is where a tag goes.
type Sink uint8

const (
	SinkHeader Sink = 1 << iota
	SinkBaggage
	SinkFilterState
	SinkMetadata
)

// Config is a validated, compiled policy. It is immutable and safe to share
// between goroutines and streams.
type Config struct {
	Policy       *Policy
	pinned       Direction
	read         []propagation.Format
	emit         [propagation.FormatCount]bool
	emitList     []propagation.Format
	inject       []propagation.Format
	injectOn     bool
	injectSample propagation.Sampling
	invalid      InvalidAction

	untrustedDirs  [3]bool
	untrustedCIDRs []netip.Prefix
	trustedHeader  *HeaderMatch
	trustAction    TrustAction
	debugHeader    string
	debugSecret    []byte
	debugMaxTTL    time.Duration

	byKey        bool
	soleInFlight bool
	keyHeaders   []string
	// narrowed strategy: candidate headers and their "<name>:" MAC prefixes.
	narrowed       bool
	narrowHeaders  []string
	narrowPrefixes []string
	TTL            time.Duration
	Capacity       int
	// InFlightTimeout bounds how long an unended request counts in flight.
	InFlightTimeout time.Duration
	restoreHeaders  []string

	tags []compiledTag
	// ownedHeaders are the request headers only tracebridge writes (tag
	// header sinks, the x-tracebridge-<tag> names, the untrusted trace id):
	// an untrusted request never brings its own.
	ownedHeaders []string

	responseOn   bool
	responseName string // header of the traceresponse format; "" for serverTiming

	baggageMembers, baggageBytes int

	clientSpans *ClientSpansConfig

	upstream    bool
	hostTracing bool
	// tracerFormats are the formats the host's tracer writes, in the order
	// its extractor reads them (empty when unknown): they win over read
	// precedence when formats disagree.
	tracerFormats []propagation.Format

	trustedPrincipals []string
}

type compiledTag struct {
	name      string
	sinks     Sink
	header    string
	maxLen    int
	dirs      [3]bool
	allDirs   bool
	literal   string
	isLiteral bool
	header2   string // source header
	path      *regexp.Regexp
	group     int
	query     string
	jwtHeader string
	jwtClaim  []string
	// srcOwned: the source header is one tracebridge owns, so an untrusted
	// request's value is a forgery and not read.
	srcOwned bool
}

// DefaultRestoreHeaders are recorded and restored when the policy names none.
var DefaultRestoreHeaders = []string{
	propagation.HeaderTraceparent, propagation.HeaderTracestate,
	propagation.HeaderB3, propagation.HeaderB3TraceID, propagation.HeaderB3SpanID,
	propagation.HeaderB3ParentSpanID, propagation.HeaderB3Sampled, propagation.HeaderB3Flags,
	propagation.HeaderUberTraceID, propagation.HeaderBaggage,
	propagation.HeaderOTSpanContext, propagation.HeaderAmznTraceID,
}

// Compile validates a policy and fills in defaults. env resolves environment
// variables for tag sources and secrets (nil means none are set).
func Compile(p *Policy, env func(string) string) (*Config, error) {
	if p == nil {
		p = DefaultPolicy()
	}
	if env == nil {
		env = func(string) string { return "" }
	}
	d := DefaultPolicy()
	c := &Config{Policy: p}
	e := &ConfigError{}

	switch p.Direction {
	case "", "auto":
	default:
		dir, ok := parseDirection(p.Direction)
		if !ok {
			e.add("direction", `must be "auto", "inbound" or "outbound", got `+strconv.Quote(p.Direction))
		}
		c.pinned = dir
	}

	read := p.Read
	if read == nil {
		read = d.Read
	}
	c.read = compileFormats(e, "read", read)
	emit := p.Emit
	if emit == nil {
		emit = d.Emit
	}
	c.emitList = compileFormats(e, "emit", emit)
	for _, f := range c.emitList {
		c.emit[f] = true
	}

	switch p.Invalid {
	case "", "repair":
		c.invalid = InvalidRepair
	case "restart":
		c.invalid = InvalidRestart
	case "reject":
		c.invalid = InvalidReject
	case "pass":
		c.invalid = InvalidPass
	default:
		e.add("invalid", `must be "repair", "restart", "reject" or "pass", got `+strconv.Quote(p.Invalid))
	}

	c.injectOn = p.Inject.Enabled == nil || *p.Inject.Enabled
	if p.Inject.Formats != nil {
		c.inject = compileFormats(e, "inject.formats", p.Inject.Formats)
	} else {
		c.inject = c.emitList
	}
	switch p.Inject.Sampling {
	case "", "defer":
		c.injectSample = propagation.SamplingDefer
	case "sampled":
		c.injectSample = propagation.SamplingAccept
	case "notSampled":
		c.injectSample = propagation.SamplingDeny
	default:
		e.add("inject.sampling", `must be "defer", "sampled" or "notSampled", got `+strconv.Quote(p.Inject.Sampling))
	}

	compileTrust(e, c, &p.Trust, env)
	compileCorrelation(e, c, &p.Correlation, &d.Correlation)
	for i := range p.Tags {
		c.tags = append(c.tags, compileTag(e, "tags["+strconv.Itoa(i)+"]", &p.Tags[i], env))
	}
	c.ownedHeaders = ownedHeaders(c.tags)
	for i := range c.tags {
		t := &c.tags[i]
		t.srcOwned = slices.Contains(c.ownedHeaders, t.header2) || slices.Contains(c.ownedHeaders, t.jwtHeader)
	}
	seen := map[string]bool{}
	for i, t := range p.Tags {
		if seen[t.Name] {
			e.add("tags["+strconv.Itoa(i)+"].name", "duplicate tag name "+strconv.Quote(t.Name))
		}
		seen[t.Name] = true
	}

	c.responseOn = p.ResponseHeader.Enabled == nil || *p.ResponseHeader.Enabled
	format := p.ResponseHeader.Format
	if format == "" && p.ResponseHeader.Name != "" {
		// A policy that names its response header (written before the
		// format existed) keeps getting that header.
		format = "traceresponse"
	}
	switch format {
	case "", "serverTiming":
		if p.ResponseHeader.Name != "" {
			e.add("responseHeader.name", `names the header of format "traceresponse"; format "serverTiming" always writes server-timing`)
		}
	case "traceresponse":
		c.responseName = strings.ToLower(p.ResponseHeader.Name)
		if c.responseName == "" {
			c.responseName = propagation.HeaderTraceresponse
		} else if !validHeaderName(c.responseName) {
			e.add("responseHeader.name", "must be a valid HTTP header name, got "+strconv.Quote(p.ResponseHeader.Name))
		}
	default:
		e.add("responseHeader.format", `must be "serverTiming" or "traceresponse", got `+strconv.Quote(p.ResponseHeader.Format))
	}

	c.baggageMembers, c.baggageBytes = p.Baggage.MaxMembers, p.Baggage.MaxBytes
	if c.baggageMembers < 0 {
		e.add("baggage.maxMembers", "must not be negative, got "+strconv.Itoa(c.baggageMembers))
	}
	if c.baggageBytes < 0 {
		e.add("baggage.maxBytes", "must not be negative, got "+strconv.Itoa(c.baggageBytes))
	}

	switch p.Host.Placement {
	case "", "downstream":
	case "upstream":
		c.upstream = true
	default:
		e.add("host.placement", `must be "downstream" or "upstream", got `+strconv.Quote(p.Host.Placement))
	}
	c.hostTracing = p.Host.Tracing == nil || *p.Host.Tracing
	switch p.Host.Tracer {
	case "", "none":
	case "zipkin":
		c.tracerFormats = []propagation.Format{propagation.FormatB3Multi}
	case "zipkin-w3c":
		// Zipkin with trace_context_option USE_B3_WITH_W3C_PROPAGATION
		// (Envoy >= 1.36, docs/ENVOY.md §2): B3 is read first and traceparent
		// only without it; both are written on every hop.
		c.tracerFormats = []propagation.Format{propagation.FormatB3Multi, propagation.FormatW3C}
	case "opentelemetry":
		c.tracerFormats = []propagation.Format{propagation.FormatW3C}
	default:
		e.add("host.tracer", `must be "zipkin", "zipkin-w3c", "opentelemetry" or "none", got `+strconv.Quote(p.Host.Tracer))
	}
	compileClientSpans(e, c, &p.ClientSpans)
	for _, f := range c.tracerFormats {
		if !c.reads(f) {
			e.add("host.tracer", "the tracer's format "+strconv.Quote(f.String())+" must be in read")
		}
	}

	if len(e.Fields) > 0 {
		return nil, e
	}
	return c, nil
}

func compileFormats(e *ConfigError, path string, names []string) []propagation.Format {
	out := make([]propagation.Format, 0, len(names))
	var seen [propagation.FormatCount]bool
	for i, n := range names {
		f, ok := propagation.ParseFormat(n)
		if !ok {
			e.add(path+"["+strconv.Itoa(i)+"]", "unknown format "+strconv.Quote(n)+" (known: w3c, b3, b3multi, jaeger)")
			continue
		}
		if seen[f] {
			e.add(path+"["+strconv.Itoa(i)+"]", "format "+strconv.Quote(n)+" listed twice")
			continue
		}
		seen[f] = true
		out = append(out, f)
	}
	return out
}

func compileTrust(e *ConfigError, c *Config, t *TrustPolicy, env func(string) string) {
	for i, s := range t.UntrustedDirections {
		d, ok := parseDirection(s)
		if !ok {
			e.add("trust.untrustedDirections["+strconv.Itoa(i)+"]", `must be "inbound" or "outbound", got `+strconv.Quote(s))
			continue
		}
		c.untrustedDirs[d] = true
	}
	for i, s := range t.UntrustedCIDRs {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			if a, aerr := netip.ParseAddr(s); aerr == nil {
				pfx = netip.PrefixFrom(a, a.BitLen())
			} else {
				e.add("trust.untrustedCIDRs["+strconv.Itoa(i)+"]", "must be a CIDR like 203.0.113.0/24, got "+strconv.Quote(s))
				continue
			}
		}
		c.untrustedCIDRs = append(c.untrustedCIDRs, pfx.Masked())
	}
	if t.TrustedHeader != nil {
		h := *t.TrustedHeader
		h.Name = strings.ToLower(h.Name)
		if !validHeaderName(h.Name) {
			e.add("trust.trustedHeader.name", "must be a valid HTTP header name, got "+strconv.Quote(t.TrustedHeader.Name))
		}
		if h.Value == "" {
			e.add("trust.trustedHeader.value", "must not be empty (an empty value would trust anyone)")
		}
		c.trustedHeader = &h
	}
	for i, pr := range t.TrustedPrincipals {
		if pr == "" || pr == "*" {
			e.add("trust.trustedPrincipals["+strconv.Itoa(i)+"]", "must name a principal or a prefix ending in *, got "+strconv.Quote(pr))
		}
	}
	c.trustedPrincipals = t.TrustedPrincipals
	switch t.Action {
	case "", "keep":
		c.trustAction = TrustKeep
	case "strip":
		c.trustAction = TrustStrip
	case "restart":
		c.trustAction = TrustRestart
	default:
		e.add("trust.action", `must be "keep", "strip" or "restart", got `+strconv.Quote(t.Action))
	}
	if dt := t.DebugToken; dt != nil {
		c.debugHeader = strings.ToLower(dt.Header)
		if c.debugHeader == "" {
			c.debugHeader = "x-tracebridge-debug"
		} else if !validHeaderName(c.debugHeader) {
			e.add("trust.debugToken.header", "must be a valid HTTP header name, got "+strconv.Quote(dt.Header))
		}
		secret := dt.Secret
		if dt.SecretEnv != "" {
			if secret != "" {
				e.add("trust.debugToken", "set secret or secretEnv, not both")
			}
			secret = env(dt.SecretEnv)
			if secret == "" {
				e.add("trust.debugToken.secretEnv", "environment variable "+strconv.Quote(dt.SecretEnv)+" is empty or unset")
			}
		}
		if dt.SecretEnv == "" && len(secret) < 16 {
			e.add("trust.debugToken.secret", "must be at least 16 characters, got "+strconv.Itoa(len(secret)))
		}
		c.debugSecret = []byte(secret)
		c.debugMaxTTL = time.Hour
		if dt.MaxTTL != "" {
			c.debugMaxTTL = parseDuration(e, "trust.debugToken.maxTTL", dt.MaxTTL)
		}
	}
}

func compileCorrelation(e *ConfigError, c *Config, p, d *CorrelationPolicy) {
	strategies := p.Strategies
	if strategies == nil {
		strategies = d.Strategies
	}
	for i, s := range strategies {
		switch s {
		case "key":
			c.byKey = true
		case "soleInFlight":
			c.soleInFlight = true
		case "narrowed":
			c.narrowed = true
		default:
			e.add("correlation.strategies["+strconv.Itoa(i)+"]", `must be "key", "narrowed" or "soleInFlight", got `+strconv.Quote(s))
		}
	}
	c.keyHeaders = lowerAll(p.KeyHeaders)
	if p.KeyHeaders == nil {
		c.keyHeaders = d.KeyHeaders
	}
	for i, h := range c.keyHeaders {
		if !validHeaderName(h) {
			e.add("correlation.keyHeaders["+strconv.Itoa(i)+"]", "must be a valid HTTP header name, got "+strconv.Quote(h))
		}
	}
	if c.byKey && len(c.keyHeaders) == 0 {
		e.add("correlation.keyHeaders", `must name at least one header when the "key" strategy is on`)
	}
	compileNarrow(e, c, p)
	ttl := p.TTL
	if ttl == "" {
		ttl = d.TTL
	}
	c.TTL = parseDuration(e, "correlation.ttl", ttl)
	c.InFlightTimeout = DefaultInFlightTimeout
	if p.InFlightTimeout != "" {
		c.InFlightTimeout = parseDuration(e, "correlation.inFlightTimeout", p.InFlightTimeout)
	}
	c.Capacity = p.Capacity
	if c.Capacity == 0 {
		c.Capacity = d.Capacity
	}
	if c.Capacity < 1 || c.Capacity > 1<<20 {
		e.add("correlation.capacity", "must be between 1 and 1048576, got "+strconv.Itoa(p.Capacity))
	}
	c.restoreHeaders = lowerAll(p.RestoreHeaders)
	if p.RestoreHeaders == nil {
		c.restoreHeaders = DefaultRestoreHeaders
	}
	for i, h := range c.restoreHeaders {
		if !validHeaderName(h) || h[0] == ':' || h == "host" {
			e.add("correlation.restoreHeaders["+strconv.Itoa(i)+"]", "must be a plain HTTP header name, got "+strconv.Quote(h))
		}
	}
}

// SoleInFlight reports whether the sole-in-flight strategy is on: stores
// keep an in-flight set only then.
func (c *Config) SoleInFlight() bool { return c.soleInFlight }

// Narrowed reports whether the narrowed strategy is on: stores keep its
// in-flight set and fingerprint key only then.
func (c *Config) Narrowed() bool { return c.narrowed }

func compileNarrow(e *ConfigError, c *Config, p *CorrelationPolicy) {
	c.narrowHeaders = lowerAll(p.NarrowHeaders)
	if p.NarrowHeaders == nil {
		c.narrowHeaders = DefaultNarrowHeaders
	}
	if len(c.narrowHeaders) > MaxNarrowHeaders {
		e.add("correlation.narrowHeaders", "must list at most "+strconv.Itoa(MaxNarrowHeaders)+" headers, got "+strconv.Itoa(len(c.narrowHeaders)))
	}
	if c.narrowed && len(c.narrowHeaders) == 0 {
		e.add("correlation.narrowHeaders", `must name at least one header when the "narrowed" strategy is on`)
	}
	c.narrowPrefixes = make([]string, len(c.narrowHeaders))
	for i, h := range c.narrowHeaders {
		path := "correlation.narrowHeaders[" + strconv.Itoa(i) + "]"
		switch {
		case !validHeaderName(h) || h[0] == ':' || h == "host":
			// host is the same for every request to the service: it would
			// make every lookup ambiguous.
			e.add(path, "must be a plain HTTP header name, got "+strconv.Quote(h))
		case isTraceHeader(h):
			e.add(path, "must not be a trace header (a request carrying one needs no restore), got "+strconv.Quote(h))
		}
		for _, prev := range c.narrowHeaders[:i] {
			if prev == h {
				e.add(path, "is listed twice: "+strconv.Quote(h))
				break
			}
		}
		c.narrowPrefixes[i] = h + ":"
	}
}

func parseDuration(e *ConfigError, path, s string) time.Duration {
	dur, err := time.ParseDuration(s)
	if err != nil || dur <= 0 {
		e.add(path, `must be a positive duration like "30s", got `+strconv.Quote(s))
		return 0
	}
	return dur
}

func lowerAll(in []string) []string {
	if in == nil {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = strings.ToLower(s)
	}
	return out
}

// validHeaderName accepts lower-case RFC 9110 tokens (HTTP/2 and Envoy keep
// header names in lower case).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			return false
		}
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// ownedHeaders lists the request headers tracebridge writes itself and a
// client must not be able to set: each tag's header sink and its default
// x-tracebridge-<name> header (what Istio Telemetry customTags of type header
// read, whatever the rule's sinks), and the untrusted trace id header.
func ownedHeaders(tags []compiledTag) []string {
	out := []string{UntrustedTraceIDHeader}
	add := func(h string) {
		if h != "" && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	for i := range tags {
		t := &tags[i]
		if t.sinks&SinkHeader != 0 {
			add(t.header)
		}
		add(TagHeaderPrefix + strings.ToLower(t.name))
	}
	return out
}

// OwnedHeaders returns the request headers only tracebridge writes, which
// are removed from untrusted requests (and by an edge's early header
// mutation rendered from the policy).
func (c *Config) OwnedHeaders() []string { return slices.Clone(c.ownedHeaders) }
