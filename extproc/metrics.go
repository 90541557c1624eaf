package extproc

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tracebridge/tracebridge/engine"
)

// Message kinds, the label of the per-message metrics.
const (
	kindRequestHeaders   = "request_headers"
	kindResponseHeaders  = "response_headers"
	kindRequestBody      = "request_body"
	kindResponseBody     = "response_body"
	kindRequestTrailers  = "request_trailers"
	kindResponseTrailers = "response_trailers"
	kindOther            = "other"
	kindCount            = 7
)

var kindNames = [kindCount]string{
	kindRequestHeaders, kindResponseHeaders, kindRequestBody, kindResponseBody,
	kindRequestTrailers, kindResponseTrailers, kindOther,
}

// Metrics are the service's Prometheus collectors. Label values are resolved
// once, so the hot path does no map lookups.
type Metrics struct {
	Registry *prometheus.Registry

	decisions      [engine.DecisionCount]prometheus.Counter
	streamsActive  atomic.Int64 // read by the streams_active gauge at scrape time
	duration       [kindCount]prometheus.Observer
	storeErrors    *prometheus.CounterVec
	unexpected     [kindCount]prometheus.Counter
	dropped        *prometheus.CounterVec
	droppedForbid  prometheus.Counter
	droppedInvalid prometheus.Counter
	reloads        *prometheus.CounterVec
	panics         prometheus.Counter
	policyInfo     prometheus.Gauge
	streamsRefused prometheus.Counter
	spans          *prometheus.CounterVec
}

// clientSpans is the counter of one client-span outcome.
func (m *Metrics) clientSpans(outcome string) prometheus.Counter {
	return m.spans.WithLabelValues(outcome)
}

// NewMetrics registers the collectors on a fresh registry (plus the Go and
// process collectors).
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{Registry: r}

	dec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tracebridge_extproc_decisions_total",
		Help: "Engine decisions taken, by decision (kept, injected, repaired, restarted, translated, restored, ambiguous, rejected, tagged, error, stripped, recorded, narrowed).",
	}, []string{"decision"})
	for d := 0; d < engine.DecisionCount; d++ {
		m.decisions[d] = dec.WithLabelValues(engine.Decision(d).String())
	}
	// A GaugeFunc over an atomic counter: one atomic add per stream start
	// and end instead of a gauge's compare-and-swap loop on a float.
	streamsActive := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tracebridge_extproc_streams_active",
		Help: "ext_proc streams (one per HTTP request) currently open.",
	}, func() float64 { return float64(m.streamsActive.Load()) })
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tracebridge_extproc_request_duration_seconds",
		Help:    "Time to answer one ProcessingRequest, from receipt to the reply handed to gRPC, by message kind.",
		Buckets: prometheus.ExponentialBuckets(10e-6, 2.5, 12), // 10µs .. ~0.6s
	}, []string{"kind"})
	unexp := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tracebridge_extproc_unexpected_messages_total",
		Help: "ProcessingRequests the headers-only mode does not expect (bodies, trailers, duplicates, out of order, empty), answered with a pass-through reply.",
	}, []string{"kind"})
	for i, k := range kindNames {
		m.duration[i] = dur.WithLabelValues(k)
		m.unexpected[i] = unexp.WithLabelValues(k)
	}
	m.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tracebridge_extproc_store_errors_total",
		Help: "Correlation store operations that failed (the request continued unchanged), by operation.",
	}, []string{"op"})
	m.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tracebridge_extproc_mutations_dropped_total",
		Help: "Header mutations not sent to Envoy, by reason (forbidden: Envoy's default mutation_rules would refuse them; invalid: bad name or value bytes).",
	}, []string{"reason"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tracebridge_extproc_policy_reloads_total",
		Help: "Policy reloads by result (ok, invalid: the old policy stays).",
	}, []string{"result"})
	m.panics = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tracebridge_extproc_panics_total",
		Help: "Panics recovered in stream handlers (each also counts as decision=\"error\"; the request continued).",
	})
	m.policyInfo = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tracebridge_extproc_policy_generation",
		Help: "Generation of the policy in force (1 at start, +1 per successful reload).",
	})
	m.streamsRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tracebridge_extproc_streams_refused_total",
		Help: "Streams refused with UNAVAILABLE because the server was draining.",
	})
	m.spans = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tracebridge_extproc_client_spans_total",
		Help: "Client spans started by the engine (policy clientSpans, with --span-collector), by outcome: sent (the collector answered 2xx), full (dropped: the batch had no room), failed (dropped: the post failed, timed out or got another status).",
	}, []string{"outcome"})
	for _, o := range []string{spanSent, spanFull, spanFailed} {
		m.spans.WithLabelValues(o)
	}
	for _, op := range []string{"put", "get", "enter", "leave", "sole"} {
		m.storeErrors.WithLabelValues(op)
	}
	m.droppedForbid = m.dropped.WithLabelValues("forbidden")
	m.droppedInvalid = m.dropped.WithLabelValues("invalid")
	for _, r := range []string{"ok", "invalid"} {
		m.reloads.WithLabelValues(r)
	}
	r.MustRegister(dec, streamsActive, dur, unexp, m.storeErrors, m.dropped, m.reloads, m.panics, m.policyInfo, m.streamsRefused, m.spans)
	return m
}

func (m *Metrics) countDecisions(d engine.Decisions) {
	d.Each(func(x engine.Decision) {
		if int(x) < len(m.decisions) {
			m.decisions[x].Inc()
		}
	})
}

// CountReload counts a policy reload by its result (ok, or invalid: the
// previous policy stays).
func (m *Metrics) CountReload(ok bool) {
	if ok {
		m.reloads.WithLabelValues("ok").Inc()
	} else {
		m.reloads.WithLabelValues("invalid").Inc()
	}
}
