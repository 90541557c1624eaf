// Package grafana holds the tracebridge Grafana dashboard (tracebridge.json)
// for the proxy-wasm module's Envoy stats and the ext_proc service's
// Prometheus metrics, and the list of metrics it is written against. The
// metric contract, including how the module's Envoy stats must be named for
// Envoy to turn them into labelled Prometheus series, is in README.md.
package grafana

import (
	_ "embed"

	"github.com/tracebridge/tracebridge/engine"
)

// Dashboard is the dashboard JSON, ready to import into Grafana or to put in
// a ConfigMap for a dashboard sidecar.
//
//go:embed tracebridge.json
var Dashboard []byte

// Decisions are the values of the decision label, for the module and the
// ext_proc service: the engine's decision names, in enum order.
var Decisions = func() []string {
	out := make([]string, engine.DecisionCount)
	for d := range out {
		out[d] = engine.Decision(d).String()
	}
	return out
}()

// Directions are the values of the module's direction label.
var Directions = []string{"inbound", "outbound"}

// LabelValues are the known values of the enumerated labels the dashboard
// filters on; matchers on these labels must stay within them.
var LabelValues = map[string][]string{
	"decision":  Decisions,
	"direction": Directions,
	"kind": {"request_headers", "response_headers", "request_body", "response_body",
		"request_trailers", "response_trailers", "other"},
	"op":      {"put", "get", "enter", "leave", "sole"},
	"reason":  {"forbidden", "invalid"},
	"result":  {"ok", "invalid"},
	"outcome": {"sent", "full", "failed"},
}

// Metric describes one Prometheus metric the dashboard queries.
type Metric struct {
	// Name is the Prometheus metric name (for a histogram, without the
	// _bucket/_sum/_count suffixes).
	Name string
	// Type is counter, gauge or histogram.
	Type string
	// Labels are the labels the producer sets (not those added by scraping).
	Labels []string
	// Source is "wasm" (Envoy stats of the proxy-wasm module) or "extproc".
	Source string
}

// Metrics are the metrics the dashboard is written against: the module's
// decision counter and every metric the ext_proc service registers
// (extproc/metrics.go; a test compares the two).
var Metrics = []Metric{
	{Name: "tracebridge_decisions_total", Type: "counter", Labels: []string{"decision", "direction"}, Source: "wasm"},
	{Name: "tracebridge_extproc_decisions_total", Type: "counter", Labels: []string{"decision"}, Source: "extproc"},
	{Name: "tracebridge_extproc_streams_active", Type: "gauge", Source: "extproc"},
	{Name: "tracebridge_extproc_request_duration_seconds", Type: "histogram", Labels: []string{"kind"}, Source: "extproc"},
	{Name: "tracebridge_extproc_unexpected_messages_total", Type: "counter", Labels: []string{"kind"}, Source: "extproc"},
	{Name: "tracebridge_extproc_store_errors_total", Type: "counter", Labels: []string{"op"}, Source: "extproc"},
	{Name: "tracebridge_extproc_mutations_dropped_total", Type: "counter", Labels: []string{"reason"}, Source: "extproc"},
	{Name: "tracebridge_extproc_policy_reloads_total", Type: "counter", Labels: []string{"result"}, Source: "extproc"},
	{Name: "tracebridge_extproc_panics_total", Type: "counter", Source: "extproc"},
	{Name: "tracebridge_extproc_policy_generation", Type: "gauge", Source: "extproc"},
	{Name: "tracebridge_extproc_streams_refused_total", Type: "counter", Source: "extproc"},
	{Name: "tracebridge_extproc_client_spans_total", Type: "counter", Labels: []string{"outcome"}, Source: "extproc"},
}

// ScrapeLabels are labels the dashboard expects Prometheus's Kubernetes pod
// scrape configuration to add (Istio's sample Prometheus config does); the
// dashboard still works without them, the namespace filter and per-pod
// breakdowns then collapse to one series.
var ScrapeLabels = []string{"namespace", "pod"}
