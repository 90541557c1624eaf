package engine

import (
	"strconv"
	"strings"
	"time"

	"github.com/tracebridge/tracebridge/propagation"
)

// ClientSpansPolicy makes tracebridge start a CLIENT span of its own on every
// outbound call whose sampled context it restored or injected, and report it
// to a collector. It is what Envoy's client-side tracing would have drawn,
// which auto-forward turns off so that the router keeps the restored headers
// (docs/ENVOY.md §1–§3).
type ClientSpansPolicy struct {
	Enabled *bool `json:"enabled,omitempty"`
	// Format of the report: zipkin (Zipkin v2 JSON, the default) or otlp
	// (OTLP/HTTP JSON).
	Format string `json:"format,omitempty"`
	// Cluster is the host's upstream cluster of the collector (required when
	// enabled), e.g. Istio's zipkin provider cluster
	// "outbound|9411||zipkin.istio-system.svc.cluster.local".
	Cluster string `json:"cluster,omitempty"`
	// Authority is the :authority of the report (default: the host:port of
	// an Istio cluster name "outbound|<port>||<host>", else Cluster).
	Authority string `json:"authority,omitempty"`
	// Path of the report (default /api/v2/spans for zipkin, /v1/traces for
	// otlp).
	Path string `json:"path,omitempty"`
	// ServiceName names the workload in the spans (default: the host's
	// workload name, e.g. Envoy's node metadata WORKLOAD_NAME).
	ServiceName string `json:"serviceName,omitempty"`
	// MaxBatchBytes bounds the spans waiting to be sent, encoded (default
	// 262144; 1024 to 8388608): spans that do not fit are dropped and
	// counted. A VM holds at most this plus one report of the same size
	// being sent.
	MaxBatchBytes int `json:"maxBatchBytes,omitempty"`
	// FlushInterval is the host's tick period that sends the batch (default
	// "500ms"; 10ms to 1m). A Zipkin span takes about 500 bytes, so a VM
	// reports up to maxBatchBytes / 500 spans per flushInterval.
	FlushInterval string `json:"flushInterval,omitempty"`
	// Timeout of one report call (default "2s"; 10ms to 1m).
	Timeout string `json:"timeout,omitempty"`
}

func (p *ClientSpansPolicy) fields() []jsonField {
	return []jsonField{
		{"enabled", optBool(&p.Enabled)},
		{"format", str(&p.Format)},
		{"cluster", str(&p.Cluster)},
		{"authority", str(&p.Authority)},
		{"path", str(&p.Path)},
		{"serviceName", str(&p.ServiceName)},
		{"maxBatchBytes", integer(&p.MaxBatchBytes)},
		{"flushInterval", str(&p.FlushInterval)},
		{"timeout", str(&p.Timeout)},
	}
}

// SpanFormat is the encoding of reported spans.
type SpanFormat uint8

const (
	SpanFormatZipkin SpanFormat = iota
	SpanFormatOTLP
)

func (f SpanFormat) String() string {
	if f == SpanFormatOTLP {
		return "otlp"
	}
	return "zipkin"
}

// Bounds of the clientSpans fields.
const (
	DefaultSpanBatchBytes = 256 << 10
	MinSpanBatchBytes     = 1 << 10
	MaxSpanBatchBytes     = 8 << 20
)

// ClientSpansConfig is the compiled clientSpans policy.
type ClientSpansConfig struct {
	Format        SpanFormat
	Cluster       string
	Authority     string
	Path          string
	ServiceName   string
	MaxBatchBytes int
	FlushInterval time.Duration
	Timeout       time.Duration
}

// ClientSpans returns the compiled clientSpans policy, or nil when it is off.
func (c *Config) ClientSpans() *ClientSpansConfig { return c.clientSpans }

func compileClientSpans(e *ConfigError, c *Config, p *ClientSpansPolicy) {
	if p.Enabled == nil || !*p.Enabled {
		return
	}
	cs := &ClientSpansConfig{Cluster: p.Cluster, Authority: p.Authority, Path: p.Path, ServiceName: p.ServiceName}
	switch p.Format {
	case "", "zipkin":
		if cs.Path == "" {
			cs.Path = "/api/v2/spans"
		}
	case "otlp":
		cs.Format = SpanFormatOTLP
		if cs.Path == "" {
			cs.Path = "/v1/traces"
		}
	default:
		e.add("clientSpans.format", `must be "zipkin" or "otlp", got `+strconv.Quote(p.Format))
	}
	if cs.Cluster == "" {
		e.add("clientSpans.cluster", "must name the collector's cluster when clientSpans is enabled")
	} else if strings.ContainsAny(cs.Cluster, " \t\r\n") {
		e.add("clientSpans.cluster", "must not contain white space, got "+strconv.Quote(cs.Cluster))
	}
	if cs.Authority == "" {
		cs.Authority = defaultAuthority(cs.Cluster)
	} else if strings.ContainsAny(cs.Authority, " \t\r\n/") {
		e.add("clientSpans.authority", "must be a host[:port], got "+strconv.Quote(cs.Authority))
	}
	if !strings.HasPrefix(cs.Path, "/") || strings.ContainsAny(cs.Path, " \t\r\n") {
		e.add("clientSpans.path", `must be an absolute path starting with "/", got `+strconv.Quote(cs.Path))
	}
	if strings.ContainsAny(cs.ServiceName, "\r\n\x00") {
		e.add("clientSpans.serviceName", "must not contain control characters, got "+strconv.Quote(cs.ServiceName))
	}
	cs.MaxBatchBytes = p.MaxBatchBytes
	switch {
	case cs.MaxBatchBytes == 0:
		cs.MaxBatchBytes = DefaultSpanBatchBytes
	case cs.MaxBatchBytes < MinSpanBatchBytes || cs.MaxBatchBytes > MaxSpanBatchBytes:
		e.add("clientSpans.maxBatchBytes", "must be between "+strconv.Itoa(MinSpanBatchBytes)+" and "+strconv.Itoa(MaxSpanBatchBytes)+", got "+strconv.Itoa(cs.MaxBatchBytes))
	}
	cs.FlushInterval = boundedDuration(e, "clientSpans.flushInterval", p.FlushInterval, 500*time.Millisecond)
	cs.Timeout = boundedDuration(e, "clientSpans.timeout", p.Timeout, 2*time.Second)
	c.clientSpans = cs
}

// defaultAuthority is the :authority of reports to cluster: for an Istio
// service cluster ("outbound|<port>|<subset>|<host>",
// pilot/pkg/model/service.go BuildSubsetKey) the service's host:port, else
// the cluster name.
func defaultAuthority(cluster string) string {
	parts := strings.Split(cluster, "|")
	if len(parts) == 4 && parts[1] != "" && parts[3] != "" {
		return parts[3] + ":" + parts[1]
	}
	return cluster
}

func boundedDuration(e *ConfigError, path, s string, def time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d := parseDuration(e, path, s)
	if d != 0 && (d < 10*time.Millisecond || d > time.Minute) {
		e.add(path, "must be between 10ms and 1m, got "+strconv.Quote(s))
	}
	return d
}

// Strategy is how the context of an outbound request was found.
type Strategy uint8

const (
	StrategyNone Strategy = iota
	StrategyKey
	StrategySoleInFlight
	StrategyNarrowed
	// StrategyInjected: nothing was found and tracebridge made a new trace.
	StrategyInjected
)

var strategyNames = [...]string{"", "key", "soleInFlight", "narrowed", "injected"}

func (s Strategy) String() string {
	if int(s) < len(strategyNames) {
		return strategyNames[s]
	}
	return "unknown"
}

// ClientSpan is the CLIENT span tracebridge started for an outbound call:
// SpanID is the parent-id of every format the request leaves with, ParentID
// the span the context was recorded or injected with (zero for a new trace).
// The adapter finishes it when the stream ends.
type ClientSpan struct {
	TraceID  propagation.TraceID
	SpanID   propagation.SpanID
	ParentID propagation.SpanID
	// StartUnixNano is when the engine saw the request.
	StartUnixNano int64
	Strategy      Strategy
}

// Valid reports whether a span was started.
func (s *ClientSpan) Valid() bool { return !s.SpanID.IsZero() }

// startClientSpan gives ctx a span of tracebridge's own: a restored context
// becomes the parent of a fresh span id; an injected one is the span itself
// (a new trace's root). Only sampled contexts are reported (nothing would
// record an unsampled span), but every restored one leaves with a fresh
// parent-id: TC §3.2.2.4 makes parent-id the caller's id of this request,
// so each outbound call has its own, as an unsampling tracer gives it too.
func (e *Engine) startClientSpan(ctx *propagation.SpanContext, origin Origin, res *Result) {
	if !ctx.Valid() {
		return
	}
	if !ctx.Sampling.Sampled() {
		if origin == OriginRestored {
			ctx.ParentSpanID = ctx.SpanID
			ctx.SpanID = e.ids.SpanID()
		}
		return
	}
	cs := &res.ClientSpan
	cs.TraceID = ctx.TraceID
	cs.StartUnixNano = e.nanoNow()
	switch origin {
	case OriginRestored:
		cs.Strategy = res.Strategy
		cs.ParentID = ctx.SpanID
		cs.SpanID = e.ids.SpanID()
		ctx.ParentSpanID = ctx.SpanID
		ctx.SpanID = cs.SpanID
	case OriginGenerated:
		cs.Strategy = StrategyInjected
		cs.SpanID = ctx.SpanID
	}
}
