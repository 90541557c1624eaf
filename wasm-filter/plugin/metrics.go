package plugin

import (
	"errors"

	"github.com/tracebridge/tracebridge/engine"
)

// MetricName is the Prometheus name of the decision counter. Envoy has no
// labels for wasm metrics; Istio's tag extractors (extraStatTags: decision,
// direction) turn "TAG=.=VALUE;.;" segments of the name into labels, so each
// label combination is its own counter (manifests/grafana/README.md).
const MetricName = "tracebridge_decisions_total"

var directionLabels = [...]string{engine.DirectionUnknown: "unknown", engine.Inbound: "inbound", engine.Outbound: "outbound"}

// CounterName is the proxy-wasm metric name for one decision and direction.
func CounterName(d engine.Decision, dir engine.Direction) string {
	return "decision=.=" + d.String() + ";.;direction=.=" + directionLabels[dir] + ";.;" + MetricName
}

// decisionCounters holds the host's id of every counter, defined once at
// plugin start.
type decisionCounters [len(directionLabels)][engine.DecisionCount]uint32

func defineCounters() (*decisionCounters, error) {
	var c decisionCounters
	for dir := range directionLabels {
		for d := 0; d < engine.DecisionCount; d++ {
			name := CounterName(engine.Decision(d), engine.Direction(dir))
			id, ok := defineCounter(name)
			if !ok {
				return nil, errors.New("the host refused to define metric " + name)
			}
			c[dir][d] = id
		}
	}
	return &c, nil
}

func (c *decisionCounters) count(dir engine.Direction, ds engine.Decisions) {
	if int(dir) >= len(c) {
		dir = engine.DirectionUnknown
	}
	for d := range engine.Decision(engine.DecisionCount) {
		if ds.Has(d) {
			incrementCounter(c[dir][d], 1)
		}
	}
}
