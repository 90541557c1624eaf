package envoysim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Reporter sends finished, sampled spans to a collector.
type Reporter interface {
	Report(s *Span)
	// Flush sends what is buffered and waits for it.
	Flush()
	Close()
}

// ZipkinSpan is one span in Zipkin v2 JSON (zipkin-api zipkin2-api.yaml), the
// form Envoy's Zipkin tracer POSTs with collector_endpoint_version HTTP_JSON
// (source/extensions/tracers/zipkin/span_buffer.cc).
type ZipkinSpan struct {
	TraceID       string            `json:"traceId"`
	ID            string            `json:"id"`
	ParentID      string            `json:"parentId,omitempty"`
	Name          string            `json:"name"`
	Kind          string            `json:"kind,omitempty"`
	Timestamp     int64             `json:"timestamp"`
	Duration      int64             `json:"duration"`
	Shared        bool              `json:"shared,omitempty"`
	LocalEndpoint *ZipkinEndpoint   `json:"localEndpoint,omitempty"`
	Tags          map[string]string `json:"tags,omitempty"`
}

// ZipkinEndpoint is a Zipkin endpoint.
type ZipkinEndpoint struct {
	ServiceName string `json:"serviceName"`
	IPv4        string `json:"ipv4,omitempty"`
	Port        int    `json:"port,omitempty"`
}

// ToZipkin converts a finished span.
func (s *Span) ToZipkin() ZipkinSpan {
	s.mu.Lock()
	tags := make(map[string]string, len(s.Tags))
	for k, v := range s.Tags {
		tags[k] = v
	}
	s.mu.Unlock()
	d := s.Duration.Microseconds()
	if d < 1 {
		d = 1
	}
	return ZipkinSpan{
		TraceID: s.TraceIDHex(), ID: s.SpanIDHex(), ParentID: s.ParentIDHex(),
		Name: s.Name, Kind: string(s.Kind), Timestamp: s.Start.UnixMicro(), Duration: d,
		LocalEndpoint: &ZipkinEndpoint{ServiceName: s.Service, IPv4: "127.0.0.1"},
		Tags:          tags,
	}
}

// batchReporter buffers spans and flushes them every interval or when
// minFlush spans are waiting (Envoy's Zipkin driver: min_flush_spans, default
// 5, and a flush timer, default 5 s; source/extensions/tracers/zipkin/
// zipkin_tracer_impl.cc ReporterImpl).
type batchReporter struct {
	send     func(ctx context.Context, spans []*Span) error
	minFlush int
	mu       sync.Mutex
	buf      []*Span
	wake     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	flushReq chan chan struct{}
	onErr    func(error)
}

func newBatchReporter(interval time.Duration, minFlush int, send func(ctx context.Context, spans []*Span) error, onErr func(error)) *batchReporter {
	if interval <= 0 {
		interval = time.Second
	}
	if minFlush <= 0 {
		minFlush = 5
	}
	r := &batchReporter{send: send, minFlush: minFlush, wake: make(chan struct{}, 1), stop: make(chan struct{}),
		done: make(chan struct{}), flushReq: make(chan chan struct{}), onErr: onErr}
	go r.loop(interval)
	return r
}

func (r *batchReporter) Report(s *Span) {
	r.mu.Lock()
	r.buf = append(r.buf, s)
	n := len(r.buf)
	r.mu.Unlock()
	if n >= r.minFlush {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

func (r *batchReporter) loop(interval time.Duration) {
	defer close(r.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			r.flushNow()
		case <-r.wake:
			r.flushNow()
		case ch := <-r.flushReq:
			r.flushNow()
			close(ch)
		case <-r.stop:
			r.flushNow()
			return
		}
	}
}

func (r *batchReporter) flushNow() {
	r.mu.Lock()
	spans := r.buf
	r.buf = nil
	r.mu.Unlock()
	if len(spans) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.send(ctx, spans); err != nil && r.onErr != nil {
		r.onErr(err)
	}
}

func (r *batchReporter) Flush() {
	ch := make(chan struct{})
	select {
	case r.flushReq <- ch:
		<-ch
	case <-r.done:
	}
}

func (r *batchReporter) Close() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
}

// NewZipkinReporter POSTs Zipkin v2 JSON arrays to url (…/api/v2/spans).
func NewZipkinReporter(url string, interval time.Duration, onErr func(error)) Reporter {
	client := &http.Client{Timeout: 5 * time.Second}
	return newBatchReporter(interval, 5, func(ctx context.Context, spans []*Span) error {
		out := make([]ZipkinSpan, len(spans))
		for i, s := range spans {
			out[i] = s.ToZipkin()
		}
		body, _ := json.Marshal(out)
		return postJSON(ctx, client, url, body)
	}, onErr)
}

// NewOTLPReporter POSTs OTLP/HTTP JSON (ExportTraceServiceRequest) to url
// (…/v1/traces), one resource per service name, as Envoy's OpenTelemetry
// tracer's HTTP exporter does (source/extensions/tracers/opentelemetry/
// http_trace_exporter.cc, which sends protobuf; JSON is the same message).
func NewOTLPReporter(url string, interval time.Duration, onErr func(error)) Reporter {
	client := &http.Client{Timeout: 5 * time.Second}
	return newBatchReporter(interval, 5, func(ctx context.Context, spans []*Span) error {
		return postJSON(ctx, client, url, OTLPJSON(spans))
	}, onErr)
}

// OTLPJSON encodes spans as an OTLP ExportTraceServiceRequest in JSON.
func OTLPJSON(spans []*Span) []byte {
	type kv struct {
		Key   string         `json:"key"`
		Value map[string]any `json:"value"`
	}
	type ospan struct {
		TraceID      string `json:"traceId"`
		SpanID       string `json:"spanId"`
		ParentSpanID string `json:"parentSpanId,omitempty"`
		TraceState   string `json:"traceState,omitempty"`
		Name         string `json:"name"`
		Kind         int    `json:"kind"`
		Start        string `json:"startTimeUnixNano"`
		End          string `json:"endTimeUnixNano"`
		Attributes   []kv   `json:"attributes,omitempty"`
	}
	byService := map[string][]ospan{}
	var order []string
	for _, s := range spans {
		zs := s.ToZipkin()
		tid := s.TraceIDHex()
		if len(tid) == 16 {
			tid = "0000000000000000" + tid
		}
		kind := 2 // SPAN_KIND_SERVER
		if s.Kind == KindClient {
			kind = 3
		}
		keys := make([]string, 0, len(zs.Tags))
		for k := range zs.Tags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var attrs []kv
		for _, k := range keys {
			attrs = append(attrs, kv{k, map[string]any{"stringValue": zs.Tags[k]}})
		}
		o := ospan{TraceID: tid, SpanID: zs.ID, ParentSpanID: zs.ParentID, TraceState: s.TraceState, Name: s.Name, Kind: kind,
			Start: strconv.FormatInt(s.Start.UnixNano(), 10), End: strconv.FormatInt(s.Start.Add(s.Duration).UnixNano(), 10), Attributes: attrs}
		if _, ok := byService[s.Service]; !ok {
			order = append(order, s.Service)
		}
		byService[s.Service] = append(byService[s.Service], o)
	}
	var rs []any
	for _, svc := range order {
		rs = append(rs, map[string]any{
			"resource":   map[string]any{"attributes": []kv{{"service.name", map[string]any{"stringValue": svc}}}},
			"scopeSpans": []any{map[string]any{"scope": map[string]any{"name": "envoy"}, "spans": byService[svc]}},
		})
	}
	body, _ := json.Marshal(map[string]any{"resourceSpans": rs})
	return body
}

func postJSON(ctx context.Context, client *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("collector %s: HTTP %d", url, resp.StatusCode)
	}
	return nil
}
