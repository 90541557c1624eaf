package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// QueryClient is a small client for Jaeger's HTTP query API (the JSON API
// the Jaeger UI uses: /api/services, /api/traces, /api/traces/{id}).
type QueryClient struct {
	// BaseURL is the query service, e.g. http://127.0.0.1:16686.
	BaseURL string
	// HTTP is the client used; nil means a client with a 10s timeout.
	HTTP *http.Client
	// Raw asks Jaeger not to run its trace adjusters (for example the one
	// that gives a Zipkin server span sharing its client's span ID a new ID),
	// so spans come back exactly as stored.
	Raw bool
}

// NewQueryClient returns a client for the query service at baseURL.
func NewQueryClient(baseURL string) *QueryClient {
	return &QueryClient{BaseURL: strings.TrimRight(baseURL, "/"), HTTP: &http.Client{Timeout: 10 * time.Second}}
}

// ErrTraceNotFound is returned by [QueryClient.Trace] when Jaeger has no
// trace with that ID.
var ErrTraceNotFound = errors.New("jaeger: trace not found")

// APIError is a non-200 answer from the query API.
type APIError struct {
	URL    string
	Status int
	Body   string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("jaeger query %s: HTTP %d: %s", e.URL, e.Status, e.Body)
}

// Trace is one trace as the query API returns it.
type Trace struct {
	TraceID   string             `json:"traceID"`
	Spans     []Span             `json:"spans"`
	Processes map[string]Process `json:"processes"`
	Warnings  []string           `json:"warnings"`
}

// Span is one span. IDs are lower-case hex as Jaeger prints them (a 64-bit
// trace ID has 16 digits, a 128-bit one 32; see [TraceIDEqual]).
type Span struct {
	TraceID       string      `json:"traceID"`
	SpanID        string      `json:"spanID"`
	Flags         uint32      `json:"flags"`
	OperationName string      `json:"operationName"`
	References    []Reference `json:"references"`
	// StartTime is in microseconds since the Unix epoch; see Start.
	StartTime int64 `json:"startTime"`
	// Duration is in microseconds; see Elapsed.
	Duration  int64      `json:"duration"`
	Tags      []KeyValue `json:"tags"`
	Logs      []Log      `json:"logs"`
	ProcessID string     `json:"processID"`
	// Process is filled in from the trace's processes by this client.
	Process  *Process `json:"process,omitempty"`
	Warnings []string `json:"warnings"`
}

// Reference links a span to another span: RefType is "CHILD_OF" or
// "FOLLOWS_FROM".
type Reference struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

// Process is the service that reported a span.
type Process struct {
	ServiceName string     `json:"serviceName"`
	Tags        []KeyValue `json:"tags"`
}

// KeyValue is a tag. Type is "string", "bool", "int64", "float64" or
// "binary"; numbers decode as json.Number.
type KeyValue struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

// Log is a span event.
type Log struct {
	Timestamp int64      `json:"timestamp"`
	Fields    []KeyValue `json:"fields"`
}

// Start returns the span's start time.
func (s *Span) Start() time.Time { return time.UnixMicro(s.StartTime) }

// Elapsed returns the span's duration.
func (s *Span) Elapsed() time.Duration { return time.Duration(s.Duration) * time.Microsecond }

// ServiceName returns the name of the service that reported the span.
func (s *Span) ServiceName() string {
	if s.Process == nil {
		return ""
	}
	return s.Process.ServiceName
}

// ParentSpanID returns the span ID of the CHILD_OF reference (or, failing
// that, the first reference), or "" for a root span.
func (s *Span) ParentSpanID() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	if len(s.References) > 0 {
		return s.References[0].SpanID
	}
	return ""
}

// Tag returns the tag with the given key.
func (s *Span) Tag(key string) (KeyValue, bool) {
	for _, kv := range s.Tags {
		if kv.Key == key {
			return kv, true
		}
	}
	return KeyValue{}, false
}

// TagString returns the value of the tag as text, or "" when absent.
func (s *Span) TagString(key string) string {
	kv, ok := s.Tag(key)
	if !ok {
		return ""
	}
	return fmt.Sprint(kv.Value)
}

// SpanByID returns the span with the given ID, or nil.
func (tr *Trace) SpanByID(id string) *Span {
	for i := range tr.Spans {
		if tr.Spans[i].SpanID == id {
			return &tr.Spans[i]
		}
	}
	return nil
}

// Roots returns the spans whose parent is not in the trace, by start time.
func (tr *Trace) Roots() []*Span {
	var out []*Span
	for i := range tr.Spans {
		p := tr.Spans[i].ParentSpanID()
		if p == "" || tr.SpanByID(p) == nil {
			out = append(out, &tr.Spans[i])
		}
	}
	sortByStart(out)
	return out
}

// Children returns the spans whose parent is id, by start time.
func (tr *Trace) Children(id string) []*Span {
	var out []*Span
	for i := range tr.Spans {
		if tr.Spans[i].ParentSpanID() == id && tr.Spans[i].SpanID != id {
			out = append(out, &tr.Spans[i])
		}
	}
	sortByStart(out)
	return out
}

// SpansOf returns the spans reported by service, by start time.
func (tr *Trace) SpansOf(service string) []*Span {
	var out []*Span
	for i := range tr.Spans {
		if tr.Spans[i].ServiceName() == service {
			out = append(out, &tr.Spans[i])
		}
	}
	sortByStart(out)
	return out
}

// Services returns the sorted distinct service names in the trace.
func (tr *Trace) Services() []string {
	seen := map[string]bool{}
	var out []string
	for i := range tr.Spans {
		if n := tr.Spans[i].ServiceName(); !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func sortByStart(s []*Span) {
	sort.SliceStable(s, func(i, j int) bool { return s[i].StartTime < s[j].StartTime })
}

// TraceIDEqual compares two hex trace IDs ignoring case and leading zeros,
// so a 64-bit ID printed in 16 digits equals its 32-digit form.
func TraceIDEqual(a, b string) bool {
	norm := func(s string) string {
		s = strings.TrimLeft(strings.ToLower(s), "0")
		return s
	}
	return norm(a) == norm(b)
}

// TraceQuery selects traces for [QueryClient.Traces]. Service is required.
type TraceQuery struct {
	Service   string
	Operation string
	// Tags must all match (span or process tags).
	Tags map[string]string
	// Start and End bound the span start times; zero means Jaeger's default
	// (End = now, Start = End minus the configured lookback, 2 days here).
	Start, End  time.Time
	MinDuration time.Duration
	MaxDuration time.Duration
	// Limit is the maximum number of traces; 0 means Jaeger's default (100).
	Limit int
}

type apiResponse struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	} `json:"errors"`
}

func (c *QueryClient) get(ctx context.Context, path string, q url.Values, out any) error {
	u := c.BaseURL + path
	if c.Raw {
		if q == nil {
			q = url.Values{}
		}
		q.Set("raw", "true")
	}
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return &APIError{URL: u, Status: resp.StatusCode, Body: strings.TrimSpace(string(body))}
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("jaeger query %s: %v", u, err)
	}
	if len(r.Errors) > 0 {
		return fmt.Errorf("jaeger query %s: error %d: %s", u, r.Errors[0].Code, r.Errors[0].Msg)
	}
	dec := json.NewDecoder(bytes.NewReader(r.Data))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("jaeger query %s: decoding data: %v", u, err)
	}
	return nil
}

// Services returns the names of the services Jaeger has seen.
func (c *QueryClient) Services(ctx context.Context) ([]string, error) {
	var s []string
	if err := c.get(ctx, "/api/services", nil, &s); err != nil {
		return nil, err
	}
	sort.Strings(s)
	return s, nil
}

// Traces searches traces (GET /api/traces).
func (c *QueryClient) Traces(ctx context.Context, q TraceQuery) ([]Trace, error) {
	if q.Service == "" {
		return nil, errors.New("jaeger query: TraceQuery.Service is required")
	}
	v := url.Values{"service": {q.Service}}
	if q.Operation != "" {
		v.Set("operation", q.Operation)
	}
	if len(q.Tags) > 0 {
		b, err := json.Marshal(q.Tags)
		if err != nil {
			return nil, err
		}
		v.Set("tags", string(b))
	}
	if !q.Start.IsZero() {
		v.Set("start", strconv.FormatInt(q.Start.UnixMicro(), 10))
	}
	if !q.End.IsZero() {
		v.Set("end", strconv.FormatInt(q.End.UnixMicro(), 10))
	}
	if q.MinDuration > 0 {
		v.Set("minDuration", q.MinDuration.String())
	}
	if q.MaxDuration > 0 {
		v.Set("maxDuration", q.MaxDuration.String())
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var traces []Trace
	if err := c.get(ctx, "/api/traces", v, &traces); err != nil {
		return nil, err
	}
	for i := range traces {
		traces[i].resolve()
	}
	return traces, nil
}

// Trace fetches one trace by ID (GET /api/traces/{id}). It returns
// [ErrTraceNotFound] when Jaeger does not have it (yet).
func (c *QueryClient) Trace(ctx context.Context, traceID string) (*Trace, error) {
	var traces []Trace
	err := c.get(ctx, "/api/traces/"+url.PathEscape(traceID), nil, &traces)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return nil, ErrTraceNotFound
	}
	if err != nil {
		return nil, err
	}
	if len(traces) == 0 {
		return nil, ErrTraceNotFound
	}
	traces[0].resolve()
	return &traces[0], nil
}

// WaitForTrace polls [QueryClient.Trace] until the trace exists and ready
// (if not nil) returns true, or ctx ends. Spans reach storage shortly after
// they are sent, so tests should read through this, not Trace.
func (c *QueryClient) WaitForTrace(ctx context.Context, traceID string, ready func(*Trace) bool) (*Trace, error) {
	var last *Trace
	var lastErr error
	for {
		tr, err := c.Trace(ctx, traceID)
		if err == nil {
			last, lastErr = tr, nil
			if ready == nil || ready(tr) {
				return tr, nil
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr == nil {
				return last, fmt.Errorf("jaeger: trace %s not as expected before %v (%d spans)", traceID, ctx.Err(), len(last.Spans))
			}
			return last, fmt.Errorf("jaeger: trace %s: %v (last error: %v)", traceID, ctx.Err(), lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WaitForTraces polls [QueryClient.Traces] until ready returns true for the
// result, or ctx ends (then it returns the last result and an error).
func (c *QueryClient) WaitForTraces(ctx context.Context, q TraceQuery, ready func([]Trace) bool) ([]Trace, error) {
	var last []Trace
	var lastErr error
	for {
		trs, err := c.Traces(ctx, q)
		if err == nil {
			last, lastErr = trs, nil
			if ready(trs) {
				return trs, nil
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr == nil {
				return last, fmt.Errorf("jaeger: traces of %q not as expected before %v (%d traces)", q.Service, ctx.Err(), len(last))
			}
			return last, fmt.Errorf("jaeger: traces of %q: %v (last error: %v)", q.Service, ctx.Err(), lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// resolve fills Span.Process from the trace's process table.
func (tr *Trace) resolve() {
	for i := range tr.Spans {
		s := &tr.Spans[i]
		if s.Process == nil {
			if p, ok := tr.Processes[s.ProcessID]; ok {
				s.Process = &p
			}
		}
	}
}
