package extproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/tracebridge/tracebridge/engine"
)

// DefaultSpanService is the service name of the client spans when the
// policy sets no clientSpans.serviceName (ext_proc has no node metadata).
const DefaultSpanService = "tracebridge-extproc"

// Outcomes of a client span (tracebridge_extproc_client_spans_total).
const (
	spanSent   = "sent"   // the collector answered 2xx
	spanFull   = "full"   // dropped: the batch had no room
	spanFailed = "failed" // dropped: the post failed, timed out or got another status
)

// SpanReporter sends the client spans the engine starts to a collector
// over HTTP: Zipkin v2 JSON or OTLP/HTTP JSON, as the policy's
// clientSpans.format says, to one URL (ext_proc cannot dial the Envoy
// cluster the policy names). Streams add their span when they end; a
// goroutine posts the batch every clientSpans.flushInterval. Memory is
// bounded by clientSpans.maxBatchBytes for the batch plus one body of that
// size being posted; a span that does not fit, and a batch whose post
// fails, are dropped and counted. No stream ever waits for the collector.
type SpanReporter struct {
	url    string
	client *http.Client
	m      *Metrics

	// postMu: one post at a time (the goroutine's, or Close's last one).
	postMu sync.Mutex

	mu      sync.Mutex
	cfg     *engine.ClientSpansConfig // of the batch; nil before the first span
	batch   *engine.SpanBatch
	service string
	// pending: a batch taken from a replaced policy's config, posted first.
	pending  []byte
	pendingN int

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// NewSpanReporter returns a reporter posting to collectorURL (http or
// https) and starts its goroutine; Close stops it.
func NewSpanReporter(collectorURL string, m *Metrics) (*SpanReporter, error) {
	if err := CheckSpanCollector(collectorURL); err != nil {
		return nil, err
	}
	if m == nil {
		m = NewMetrics()
	}
	r := &SpanReporter{
		url: collectorURL,
		// The timeout is the policy's, per post (context); the client's own
		// bounds a post whose policy was replaced.
		client: &http.Client{Timeout: time.Minute},
		m:      m,
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go r.run()
	return r, nil
}

// CheckSpanCollector refuses a collector URL that is not http(s) with a
// host (an Envoy cluster name, say).
func CheckSpanCollector(collectorURL string) error {
	u, err := url.Parse(collectorURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("an http:// or https:// URL of the collector's endpoint, got %q", collectorURL)
	}
	return nil
}

// Close stops the goroutine after a last post of what is waiting.
func (r *SpanReporter) Close() {
	r.once.Do(func() { close(r.stop) })
	<-r.done
}

// add encodes one finished span into the batch of cfg's policy, or counts
// it dropped. It never blocks on the collector.
func (r *SpanReporter) add(cfg *engine.ClientSpansConfig, fs *engine.FinishedSpan) {
	r.mu.Lock()
	if r.cfg != cfg {
		// A new policy: its format or bound may differ. What the old batch
		// holds is posted first (if nothing else is waiting, else dropped).
		if r.batch != nil && r.batch.Len() > 0 {
			if r.pendingN == 0 {
				r.pending, r.pendingN = r.batch.Take(r.pending[:0], r.service)
			} else {
				r.m.clientSpans(spanFailed).Add(float64(r.batch.Len()))
				r.batch.Take(nil, r.service)
			}
		}
		r.cfg, r.batch, r.service = cfg, engine.NewSpanBatch(cfg), cfg.ServiceName
		if r.service == "" {
			r.service = DefaultSpanService
		}
	}
	if fs.Service == "" {
		fs.Service = r.service
	}
	ok := r.batch.Add(fs)
	r.mu.Unlock()
	if !ok {
		r.m.clientSpans(spanFull).Inc()
	}
}

func (r *SpanReporter) run() {
	defer close(r.done)
	var body []byte
	for {
		r.mu.Lock()
		interval := 500 * time.Millisecond
		if r.cfg != nil {
			interval = r.cfg.FlushInterval
		}
		r.mu.Unlock()
		t := time.NewTimer(interval)
		select {
		case <-r.stop:
			t.Stop()
			r.flush(body)
			return
		case <-t.C:
		}
		body = r.flush(body)
	}
}

// flush posts what is waiting: a replaced policy's batch, then the batch.
func (r *SpanReporter) flush(body []byte) []byte {
	r.postMu.Lock()
	defer r.postMu.Unlock()
	for range 2 {
		r.mu.Lock()
		var n int
		var timeout time.Duration
		switch {
		case r.pendingN > 0:
			body, n = append(body[:0], r.pending...), r.pendingN
			r.pending, r.pendingN = r.pending[:0], 0
		case r.batch != nil && r.batch.Len() > 0:
			body, n = r.batch.Take(body[:0], r.service)
		}
		if r.cfg != nil {
			timeout = r.cfg.Timeout
		}
		r.mu.Unlock()
		if n == 0 {
			return body
		}
		if err := r.post(body, timeout); err != nil {
			r.m.clientSpans(spanFailed).Add(float64(n))
		} else {
			r.m.clientSpans(spanSent).Add(float64(n))
		}
	}
	return body
}

var errStatus = errors.New("collector answered a non-2xx status")

func (r *SpanReporter) post(body []byte, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	// Both encodings are JSON (Zipkin v2 and OTLP/HTTP's JSON mapping).
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	// Drain a little so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errStatus
	}
	return nil
}
