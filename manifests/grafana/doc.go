// Package grafana holds the tracebridge Grafana dashboard (tracebridge.json)
// for the proxy-wasm module's Envoy stats and the ext_proc service's
// Prometheus metrics, and the list of metrics it is written against. The
// metric contract, including how the module's Envoy stats must be named for
// Envoy to turn them into labelled Prometheus series, is in README.md.
package grafana

import _ "embed"

// Dashboard is the dashboard JSON, ready to import into Grafana or to put in
// a ConfigMap for a dashboard sidecar.
//
//go:embed tracebridge.json
var Dashboard []byte

// Decisions are the values of the decision label, for the module and the
// ext_proc service.
var Decisions = []string{
	"kept", "injected", "repaired", "restarted", "translated",
	"restored", "ambiguous", "rejected", "tagged", "error",
}

// Directions are the values of the module's direction label.
var Directions = []string{"inbound", "outbound"}

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

// Metrics are the metrics the dashboard is written against.
var Metrics = []Metric{
	{Name: "tracebridge_decisions_total", Type: "counter", Labels: []string{"decision", "direction"}, Source: "wasm"},
	{Name: "tracebridge_extproc_decisions_total", Type: "counter", Labels: []string{"decision"}, Source: "extproc"},
	{Name: "tracebridge_extproc_streams_active", Type: "gauge", Source: "extproc"},
	{Name: "tracebridge_extproc_request_duration_seconds", Type: "histogram", Source: "extproc"},
	{Name: "tracebridge_extproc_store_errors_total", Type: "counter", Source: "extproc"},
}

// ScrapeLabels are labels the dashboard expects Prometheus's Kubernetes pod
// scrape configuration to add (Istio's sample Prometheus config does); the
// dashboard still works without them, the namespace filter and per-pod
// breakdowns then collapse to one series.
var ScrapeLabels = []string{"namespace", "pod"}
