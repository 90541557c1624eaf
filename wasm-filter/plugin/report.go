package plugin

import (
	"errors"
	"strconv"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm"

	"github.com/tracebridge/tracebridge/engine"
)

// SpanMetricName counts reported client spans by outcome: sent (the
// collector answered 2xx), full (dropped: the batch had no room), failed
// (dropped: the call could not be made, failed, timed out or was answered
// with another status).
const SpanMetricName = "tracebridge_client_spans_total"

const (
	spanSent = iota
	spanDroppedFull
	spanDroppedFailed
	spanOutcomes
)

var spanOutcomeLabels = [spanOutcomes]string{"sent", "full", "failed"}

// SpanCounterName is the proxy-wasm metric name of one outcome.
func SpanCounterName(outcome string) string {
	return "outcome=.=" + outcome + ";.;" + SpanMetricName
}

// Host properties of the span report (Envoy attributes; Istio's node
// metadata keys, pkg/model/proxy.go NodeMetadata).
var (
	clusterNamePath  = newPropertyPath("cluster_name")
	workloadNamePath = newPropertyPath("node", "metadata", "WORKLOAD_NAME")
	namespacePath    = newPropertyPath("node", "metadata", "NAMESPACE")
)

// reporter batches the VM's finished client spans and sends them to the
// collector cluster on the host's tick with proxy_http_call: never from a
// request's callbacks, and never with a Go timer (docs/COMPATIBILITY.md).
// One call at a time; a batch whose call fails is dropped and counted.
type reporter struct {
	cfg      *engine.ClientSpansConfig
	batch    *engine.SpanBatch
	service  string
	counters [spanOutcomes]uint32
	headers  [][2]string
	body     []byte
	inFlight int // spans in the call under way (0: none)
	// call numbers the report calls; sentAt is when the one under way left.
	call   uint32
	sentAt int64
}

func newReporter(cfg *engine.ClientSpansConfig) (*reporter, error) {
	r := &reporter{cfg: cfg, batch: engine.NewSpanBatch(cfg), service: cfg.ServiceName}
	for i, l := range spanOutcomeLabels {
		id, ok := defineCounter(SpanCounterName(l))
		if !ok {
			return nil, errors.New("the host refused to define metric " + SpanCounterName(l))
		}
		r.counters[i] = id
	}
	if r.service == "" {
		r.service = workloadService()
	}
	r.headers = [][2]string{
		{":method", "POST"}, {":path", cfg.Path}, {":authority", cfg.Authority},
		{"content-type", "application/json"},
	}
	ms := cfg.FlushInterval.Milliseconds()
	if err := proxywasm.SetTickPeriodMilliSeconds(uint32(ms)); err != nil {
		return nil, errors.New("the host refused a tick period of " + strconv.FormatInt(ms, 10) + "ms (clientSpans.flushInterval): " + err.Error())
	}
	return r, nil
}

// workloadService names the workload as Istio's tracing does
// ("<workload>.<namespace>"), from the node metadata the sidecar carries.
func workloadService() string {
	w, err := getProperty(workloadNamePath)
	if err != nil || len(w) == 0 {
		return "unknown"
	}
	name := string(w)
	if ns, err := getProperty(namespacePath); err == nil && len(ns) > 0 {
		name += "." + string(ns)
	}
	return name
}

// finish adds a stream's span to the batch, or counts it dropped.
func (r *reporter) finish(st *engine.Stream, c *engine.SpanCall) {
	fs := c.Finished(st.ClientSpan, now().UnixNano(), r.service)
	if v, err := getProperty(clusterNamePath); err == nil {
		fs.Cluster = string(v)
	}
	if !r.batch.Add(&fs) {
		incrementCounter(r.counters[spanDroppedFull], 1)
	}
}

// flush sends the batch when no call is under way. A call whose answer has
// not come a tick after its timeout is written off as failed, so that a
// lost callback cannot stop the reports.
func (r *reporter) flush() {
	t := now().UnixNano()
	if r.inFlight > 0 {
		if t-r.sentAt < (r.cfg.Timeout + r.cfg.FlushInterval).Nanoseconds() {
			return
		}
		incrementCounter(r.counters[spanDroppedFailed], int64(r.inFlight))
		r.inFlight = 0
	}
	if r.batch.Len() == 0 {
		return
	}
	var n int
	r.body, n = r.batch.Take(r.body[:0], r.service)
	r.call++
	call := r.call
	_, err := proxywasm.DispatchHttpCall(r.cfg.Cluster, r.headers, r.body, nil,
		uint32(r.cfg.Timeout.Milliseconds()), func(numHeaders, _, _ int) { r.onResponse(call, numHeaders) })
	if err != nil {
		incrementCounter(r.counters[spanDroppedFailed], int64(n))
		return
	}
	r.inFlight, r.sentAt = n, t
}

// onResponse ends report call number call. Envoy answers a call that
// failed (reset) with no headers (source/extensions/common/wasm/context.cc,
// Context::onHttpCallFailure calls onHttpCallResponse with zero sizes) and
// a timeout with its async client's 504.
func (r *reporter) onResponse(call uint32, numHeaders int) {
	if call != r.call || r.inFlight == 0 {
		return // written off already (flush)
	}
	n := r.inFlight
	r.inFlight = 0
	defer func() {
		if p := recover(); p != nil {
			incrementCounter(r.counters[spanDroppedFailed], int64(n))
		}
	}()
	status := 0
	if numHeaders > 0 {
		hs, _ := proxywasm.GetHttpCallResponseHeaders()
		for _, h := range hs {
			if h[0] == ":status" {
				status, _ = strconv.Atoi(h[1])
			}
		}
	}
	if status >= 200 && status < 300 {
		incrementCounter(r.counters[spanSent], int64(n))
	} else {
		incrementCounter(r.counters[spanDroppedFailed], int64(n))
	}
}
