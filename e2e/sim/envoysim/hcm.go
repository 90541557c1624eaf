package envoysim

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// Direction is the listener's traffic direction, exposed to filters as the
// xds.listener_direction property / attribute (1 INBOUND, 2 OUTBOUND;
// envoy/config/core/v3/base.proto TrafficDirection).
type Direction int

// Listener directions.
const (
	Unspecified Direction = 0
	Inbound     Direction = 1
	Outbound    Direction = 2
)

// LocalReply is a response a filter sends instead of forwarding
// (sendLocalReply).
type LocalReply struct {
	Status  int
	Headers [][2]string
	Body    string
	Details string
}

// StreamInfo is the per-request state filters share with the HCM: filter
// state (what proxy_set_property writes, under "wasm.<path>"), dynamic
// metadata (what ext_proc returns), and decisions for the request log.
type StreamInfo struct {
	Listener  string
	Direction Direction
	Source    string // downstream remote address ip:port (source.address)
	Upstream  bool   // the filter runs as an upstream (cluster) filter

	mu          sync.Mutex
	filterState map[string]string
	metadata    map[string]map[string]any
	decisions   []string
}

// SetFilterState stores a filter-state value.
func (si *StreamInfo) SetFilterState(key, value string) {
	si.mu.Lock()
	if si.filterState == nil {
		si.filterState = map[string]string{}
	}
	si.filterState[key] = value
	si.mu.Unlock()
}

// FilterState reads a filter-state value.
func (si *StreamInfo) FilterState(key string) (string, bool) {
	si.mu.Lock()
	defer si.mu.Unlock()
	v, ok := si.filterState[key]
	return v, ok
}

// SetMetadata stores dynamic metadata fields under a namespace.
func (si *StreamInfo) SetMetadata(ns string, fields map[string]any) {
	si.mu.Lock()
	if si.metadata == nil {
		si.metadata = map[string]map[string]any{}
	}
	m := si.metadata[ns]
	if m == nil {
		m = map[string]any{}
		si.metadata[ns] = m
	}
	for k, v := range fields {
		m[k] = v
	}
	si.mu.Unlock()
}

// Metadata reads one dynamic metadata value.
func (si *StreamInfo) Metadata(ns, key string) (any, bool) {
	si.mu.Lock()
	defer si.mu.Unlock()
	v, ok := si.metadata[ns][key]
	return v, ok
}

// AddDecision records what a filter decided, for the request log.
func (si *StreamInfo) AddDecision(s string) {
	si.mu.Lock()
	si.decisions = append(si.decisions, s)
	si.mu.Unlock()
}

// Decisions returns what filters recorded.
func (si *StreamInfo) Decisions() []string {
	si.mu.Lock()
	defer si.mu.Unlock()
	return append([]string(nil), si.decisions...)
}

// Filter is an HTTP filter configuration (a filter factory).
type Filter interface {
	Name() string
	// NewStream creates the filter instance for one stream (downstream) or
	// one upstream attempt (upstream filters).
	NewStream(info *StreamInfo) FilterStream
}

// FilterStream is one filter instance.
type FilterStream interface {
	// DecodeHeaders sees (and may change) the request headers; a non-nil
	// reply stops the chain and is sent downstream.
	DecodeHeaders(h *Headers) *LocalReply
	// EncodeHeaders sees (and may change) the response headers.
	EncodeHeaders(h *Headers)
	// OnDone runs when the stream is destroyed, however it ended.
	OnDone()
}

// CustomTag is a tracing custom tag (envoy/type/tracing/v3/custom_tag.proto,
// source/common/tracing/custom_tag_impl.cc). Exactly one source is set.
type CustomTag struct {
	Tag           string
	Literal       string
	Environment   string // variable name, read when the listener starts
	RequestHeader string
	// Metadata: request dynamic metadata, namespace and key.
	MetadataNamespace, MetadataKey string
	// FilterState: the Envoy ≥ 1.37 value tag %FILTER_STATE(<key>:PLAIN)%.
	FilterState string
	// Value is an Envoy ≥ 1.37 value tag: an access-log format string
	// (what Istio's Telemetry customTags formatter renders to), see
	// formatTagValue.
	Value   string
	Default string
}

// Tracing is an HCM tracing block. A listener with Tracing nil has no
// tracing: its span is a NullSpan (docs/ENVOY.md §2, §4).
type Tracing struct {
	Tracer  Tracer
	Kind    SpanKind
	Service string
	// Operation is the route decorator (Istio: "<host>:<port>/*"); empty
	// uses the request's :authority, as Driver::startSpan does before a
	// decorator applies.
	Operation string
	// RandomSampling in percent; negative means the 100 % default
	// (HttpConnectionManager.Tracing.random_sampling).
	RandomSampling float64
	CustomTags     []CustomTag
	Reporter       Reporter
	NodeID         string
}

// Cluster picks the upstream for a request (the route's cluster): a name
// for the upstream_cluster tag and an address host:port.
type Cluster func(h *Headers) (name, addr string, err error)

// FixedCluster always routes to addr (an inbound cluster to the app).
func FixedCluster(name, addr string) Cluster {
	return func(*Headers) (string, string, error) { return name, addr, nil }
}

// RequestLog is one access-log line.
type RequestLog struct {
	Listener  string
	Method    string
	Path      string
	Authority string
	Status    int
	TraceID   string // the active span's trace id ("" for a NullSpan)
	SpanID    string
	Sampled   bool
	Decisions []string
	Duration  time.Duration
	Flags     string
}

// Listener is one HTTP listener with its HCM, filter chain, router and
// cluster.
type Listener struct {
	Name      string
	Direction Direction
	Tracing   *Tracing
	Filters   []Filter
	// UpstreamFilters run per attempt after the router's injection
	// (envoy.extensions.upstreams.http.v3.HttpProtocolOptions http_filters).
	UpstreamFilters []Filter
	Cluster         Cluster
	// Retries on connect failure and 503 (Istio's default retry policy:
	// 2 attempts, retry_on connect-failure,refused-stream,unavailable,
	// cancelled,retriable-status-codes).
	Retries int
	Timeout time.Duration
	// EarlyHeaderRemovals is an early_header_mutation (header_mutation
	// extension) removing these headers before x-request-id and the span
	// (docs/ENVOY.md §1: the only hook before span creation).
	EarlyHeaderRemovals []string
	// AccessLog receives one line per request.
	AccessLog func(RequestLog)

	envTags   map[string]string
	transport *http.Transport
	srv       *http.Server
	ln        net.Listener
	wg        sync.WaitGroup
}

// Start binds addr (which must be a 127.0.0.1 address; ":0" picks a port on
// 127.0.0.1) and serves.
func (l *Listener) Start(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("listener %s: %s is not a loopback address: the harness binds 127.0.0.1 only", l.Name, addr)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return err
	}
	l.ln = ln
	if l.Timeout == 0 {
		l.Timeout = 15 * time.Second
	}
	l.transport = &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 64,
		DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext, ResponseHeaderTimeout: l.Timeout}
	l.envTags = map[string]string{}
	if l.Tracing != nil {
		for _, t := range l.Tracing.CustomTags {
			if t.Environment != "" {
				l.envTags[t.Environment] = os.Getenv(t.Environment)
			}
		}
	}
	l.srv = &http.Server{Handler: l, ReadHeaderTimeout: 10 * time.Second}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		_ = l.srv.Serve(ln)
	}()
	return nil
}

// Addr is the bound address.
func (l *Listener) Addr() string { return l.ln.Addr().String() }

// URL is http://Addr.
func (l *Listener) URL() string { return "http://" + l.Addr() }

// Close stops the listener, letting in-flight requests finish for up to
// grace.
func (l *Listener) Close(grace time.Duration) error {
	if l.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := l.srv.Shutdown(ctx)
	if err != nil {
		l.srv.Close()
	}
	l.wg.Wait()
	l.transport.CloseIdleConnections()
	return err
}

// newUUID returns a random version-4 UUID, as Envoy's default request id
// extension (source/extensions/request_id/uuid/config.cc).
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hx = "0123456789abcdef"
	var s [36]byte
	j := 0
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s[j] = '-'
			j++
		}
		s[j], s[j+1] = hx[c>>4], hx[c&15]
		j += 2
	}
	return string(s[:])
}

// The trace status Envoy's UUID request id extension stores in the version
// nibble of x-request-id (source/extensions/request_id/uuid/config.cc,
// TRACE_BYTE_POSITION 14).
const (
	traceBytePos  = 14
	traceForced   = 'a'
	traceSampled  = '9'
	traceClient   = 'b'
	traceNoTrace  = '4'
	uuidLen       = 36
	samplingScale = 10000
)

func isUUID(s string) bool {
	if len(s) != uuidLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// tracingDecision models conn_manager_utility.cc mutateTracingRequestHeader
// plus HttpTracerUtility::shouldTraceRequest: with a UUID x-request-id whose
// status is NoTrace, x-client-trace-id forces a trace (tracing.client_enabled,
// client_sampling 100 %), else x-envoy-force-trace does, else random sampling
// decides on the request id (modBy 10000); the status is written into the
// request id. A request id that is not a UUID cannot carry a status: the
// request is not traceable (decision false; an incoming sampled flag still
// wins in the tracer).
func (l *Listener) tracingDecision(h *Headers) bool {
	rid := h.Get("x-request-id")
	if !isUUID(rid) {
		return false
	}
	b := []byte(rid)
	status := b[traceBytePos]
	if status != traceForced && status != traceSampled && status != traceClient {
		switch {
		case h.Get("x-client-trace-id") != "":
			status = traceClient
		case h.Get("x-envoy-force-trace") != "":
			status = traceForced
		default:
			rate := l.Tracing.RandomSampling
			if rate < 0 {
				rate = 100
			}
			hf := fnv.New64a()
			hf.Write(b)
			if float64(hf.Sum64()%samplingScale) < rate*samplingScale/100 {
				status = traceSampled
			} else {
				status = traceNoTrace
			}
		}
		b[traceBytePos] = status
		h.Set("x-request-id", string(b))
	}
	return status == traceForced || status == traceSampled || status == traceClient
}

var errNoUpstream = errors.New("no healthy upstream")

// ServeHTTP is the HCM's ActiveStream: decodeHeaders, filters, router,
// encodeHeaders, completeRequest.
func (l *Listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	h := requestHeaders(r)
	info := &StreamInfo{Listener: l.Name, Direction: l.Direction, Source: r.RemoteAddr}
	// conn_manager_impl.cc decodeHeaders: early header mutation extensions
	// run first (source/extensions/http/early_header_mutation/
	// header_mutation/header_mutation.cc).
	for _, name := range l.EarlyHeaderRemovals {
		h.Del(name)
	}
	// conn_manager_utility.cc mutateRequestHeaders: x-request-id is
	// generated when absent (generate_request_id, default true), before the
	// span exists.
	if h.Get("x-request-id") == "" {
		h.Set("x-request-id", newUUID())
	}
	// conn_manager_impl.cc ActiveStream::decodeHeaders → traceRequest():
	// the active span is created from the incoming headers before any
	// filter runs. No tracing block: no span at all.
	var span *Span
	if l.Tracing != nil {
		traced := l.tracingDecision(h)
		span = l.Tracing.Tracer.StartSpan(h, l.Tracing.Kind, traced)
		if span != nil {
			span.Service = l.Tracing.Service
			span.Name = l.Tracing.Operation
			if span.Name == "" {
				span.Name = h.Get(":authority")
			}
			if h.Get("x-client-trace-id") != "" {
				span.SetTag("guid:x-client-trace-id", h.Get("x-client-trace-id"))
			}
		}
	}
	// The downstream filter chain (filter_manager.cc decodeHeaders).
	streams := make([]FilterStream, 0, len(l.Filters))
	defer func() {
		for _, fs := range streams {
			fs.OnDone()
		}
	}()
	var reply *LocalReply
	for _, f := range l.Filters {
		fs := f.NewStream(info)
		streams = append(streams, fs)
		if reply = fs.DecodeHeaders(h); reply != nil {
			break
		}
	}
	var (
		status   int
		respH    *Headers
		body     io.ReadCloser
		upstream string
		flags    = "-"
	)
	if reply == nil {
		var err error
		status, respH, body, upstream, err = l.route(r, h, span, info)
		if err != nil {
			// Router local replies: 503 for connect failure ("UF"), 504
			// for a timeout ("UT").
			status, flags = http.StatusServiceUnavailable, "UF"
			if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "timeout") {
				status, flags = http.StatusGatewayTimeout, "UT"
			}
			if errors.Is(err, errNoUpstream) {
				flags = "NR"
			}
			reply = &LocalReply{Status: status, Body: "upstream connect error or disconnect/reset before headers. reset reason: " + err.Error()}
		}
	}
	if reply != nil {
		status = reply.Status
		respH = &Headers{}
		respH.Add(":status", itoa(status))
		for _, kv := range reply.Headers {
			respH.Add(kv[0], kv[1])
		}
		if reply.Body != "" && respH.Get("content-type") == "" {
			respH.Set("content-type", "text/plain")
		}
		body = io.NopCloser(strings.NewReader(reply.Body))
		if flags == "-" {
			flags = "UAEX" // local reply from a filter (ext_authz/ext_proc style flag)
		}
	}
	// encodeHeaders through the downstream filters in reverse order.
	for i := len(streams) - 1; i >= 0; i-- {
		streams[i].EncodeHeaders(respH)
	}
	respH.Del(":status")
	respH.toHTTP(w.Header())
	w.WriteHeader(status)
	if body != nil {
		_, _ = io.Copy(w, body)
		body.Close()
	}
	// completeRequest: finalize the span (tags read now: request headers
	// after the filters, dynamic metadata) and report it.
	if span != nil {
		l.finishSpan(span, h, info, status, upstream, flags, r, start)
	}
	if l.AccessLog != nil {
		rl := RequestLog{Listener: l.Name, Method: r.Method, Path: h.Get(":path"), Authority: h.Get(":authority"), Status: status,
			Decisions: info.Decisions(), Duration: time.Since(start), Flags: flags}
		if span != nil {
			rl.TraceID, rl.SpanID, rl.Sampled = span.TraceIDHex(), span.SpanIDHex(), span.Sampled
		}
		l.AccessLog(rl)
	}
}

// route is the router filter: cluster selection, then per attempt header
// injection (upstream_request.cc), upstream filters, the upstream request.
func (l *Listener) route(r *http.Request, h *Headers, span *Span, info *StreamInfo) (int, *Headers, io.ReadCloser, string, error) {
	if l.Cluster == nil {
		return 0, nil, nil, "", errNoUpstream
	}
	clusterName, addr, err := l.Cluster(h)
	if err != nil {
		return 0, nil, nil, "", fmt.Errorf("%w: %v", errNoUpstream, err)
	}
	var lastErr error
	attempts := 1 + l.Retries
	for attempt := 0; attempt < attempts; attempt++ {
		// Every attempt sends the downstream request's own header map, and
		// upstream filters decode that map
		// (source/common/router/upstream_request.cc, acceptHeadersFromRouter,
		// Envoy 1.31): what they set is there when the span's request-header
		// tags are read.
		uh := h
		// router/upstream_request.cc: the active span's context is injected
		// into the upstream request on every attempt (a NullSpan injects
		// nothing).
		if span != nil {
			l.Tracing.Tracer.Inject(span, uh)
		}
		// Upstream (cluster) filters: built per attempt, after injection.
		ui := &StreamInfo{Listener: l.Name, Direction: l.Direction, Source: info.Source, Upstream: true}
		var ustreams []FilterStream
		var reply *LocalReply
		for _, f := range l.UpstreamFilters {
			fs := f.NewStream(ui)
			ustreams = append(ustreams, fs)
			if reply = fs.DecodeHeaders(uh); reply != nil {
				break
			}
		}
		done := func() {
			for _, fs := range ustreams {
				fs.OnDone()
			}
			// Upstream filter state and metadata are visible to the
			// downstream stream's access log and span (Envoy shares the
			// upstream info's filter state with the downstream).
			for _, d := range ui.Decisions() {
				info.AddDecision(d)
			}
			ui.mu.Lock()
			for k, v := range ui.filterState {
				info.SetFilterState(k, v)
			}
			for ns, m := range ui.metadata {
				info.SetMetadata(ns, m)
			}
			ui.mu.Unlock()
		}
		if reply != nil {
			rh := &Headers{}
			rh.Add(":status", itoa(reply.Status))
			for _, kv := range reply.Headers {
				rh.Add(kv[0], kv[1])
			}
			done()
			return reply.Status, rh, io.NopCloser(strings.NewReader(reply.Body)), clusterName, nil
		}
		var reqBody io.Reader
		if attempt == 0 && r.Body != nil && r.ContentLength != 0 {
			reqBody = r.Body
		}
		ctx, cancel := context.WithTimeout(r.Context(), l.Timeout)
		req, err := http.NewRequestWithContext(ctx, uh.Get(":method"), "http://"+addr+uh.Get(":path"), reqBody)
		if err != nil {
			cancel()
			done()
			return 0, nil, nil, clusterName, err
		}
		uh.toHTTP(req.Header)
		req.Host = uh.Get(":authority")
		req.ContentLength = r.ContentLength
		if reqBody == nil {
			req.ContentLength = 0
		}
		resp, err := l.transport.RoundTrip(req)
		if err != nil {
			cancel()
			done()
			lastErr = err
			if r.Context().Err() != nil {
				break
			}
			continue
		}
		if resp.StatusCode == http.StatusServiceUnavailable && attempt+1 < attempts && reqBody == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			cancel()
			done()
			continue
		}
		rh := responseHeaders(resp.StatusCode, resp.Header)
		for i := len(ustreams) - 1; i >= 0; i-- {
			ustreams[i].EncodeHeaders(rh)
		}
		done()
		return resp.StatusCode, rh, &cancelBody{resp.Body, cancel}, clusterName, nil
	}
	return 0, nil, nil, clusterName, lastErr
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// finishSpan models HttpTracerUtility::finalizeDownstreamSpan
// (source/common/tracing/http_tracer_impl.cc) and custom tags
// (custom_tag_impl.cc), then reports sampled spans.
func (l *Listener) finishSpan(span *Span, h *Headers, info *StreamInfo, status int, upstream, flags string, r *http.Request, start time.Time) {
	t := l.Tracing
	span.Duration = time.Since(span.Start)
	span.SetTag("component", "proxy")
	if t.NodeID != "" {
		span.SetTag("node_id", t.NodeID)
	}
	span.SetTag("guid:x-request-id", h.Get("x-request-id"))
	span.SetTag("http.url", "http://"+h.Get(":authority")+h.Get(":path"))
	span.SetTag("http.method", h.Get(":method"))
	span.SetTag("http.protocol", r.Proto)
	if ua := h.Get("user-agent"); ua != "" {
		span.SetTag("user_agent", ua)
	}
	span.SetTag("peer.address", hostOnly(r.RemoteAddr))
	if upstream != "" {
		span.SetTag("upstream_cluster", upstream)
	}
	span.SetTag("http.status_code", itoa(status))
	span.SetTag("response_flags", flags)
	if status >= 500 {
		span.SetTag("error", "true")
	}
	for _, ct := range t.CustomTags {
		v, ok := "", false
		switch {
		case ct.Literal != "":
			v, ok = ct.Literal, true
		case ct.Environment != "":
			v = l.envTags[ct.Environment]
			ok = v != ""
		case ct.RequestHeader != "":
			v, ok = h.Lookup(strings.ToLower(ct.RequestHeader))
		case ct.MetadataNamespace != "":
			var x any
			if x, ok = info.Metadata(ct.MetadataNamespace, ct.MetadataKey); ok {
				v = fmt.Sprint(x)
			}
		case ct.FilterState != "":
			v, ok = info.FilterState(ct.FilterState)
		case ct.Value != "":
			v = formatTagValue(ct.Value, h, info)
			ok = v != ""
		}
		if !ok || v == "" {
			v, ok = ct.Default, ct.Default != ""
		}
		if ok {
			span.SetTag(ct.Tag, v)
		}
	}
	if span.Sampled && t.Reporter != nil {
		t.Reporter.Report(span)
	}
}

// formatTagValue evaluates a CustomTag.value format string
// (envoy/type/tracing/v3/custom_tag.proto: the access-log format, with
// unknown or absent values replaced by the empty string instead of "-";
// source/common/formatter/substitution_format_utility.cc and
// source/common/formatter/stream_info_formatter.cc, Envoy 1.37-dev). The
// commands modelled are %FILTER_STATE(key[:PLAIN])%, %DYNAMIC_METADATA(ns:key)%
// and %REQ(header)%; any other command yields "". A tag whose value is empty
// is not set (source/common/tracing/custom_tag_impl.cc, applySpan).
func formatTagValue(format string, h *Headers, info *StreamInfo) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(format, '%')
		if i < 0 {
			b.WriteString(format)
			break
		}
		b.WriteString(format[:i])
		rest := format[i+1:]
		j := strings.IndexByte(rest, '%')
		if j < 0 {
			b.WriteString(format[i:])
			break
		}
		b.WriteString(formatCommand(rest[:j], h, info))
		format = rest[j+1:]
	}
	return b.String()
}

func formatCommand(cmd string, h *Headers, info *StreamInfo) string {
	open := strings.IndexByte(cmd, '(')
	if open < 0 || !strings.HasSuffix(cmd, ")") {
		return ""
	}
	name, arg := cmd[:open], cmd[open+1:len(cmd)-1]
	switch name {
	case "FILTER_STATE":
		key, plain := strings.CutSuffix(arg, ":PLAIN")
		v, ok := info.FilterState(key)
		if !ok {
			return ""
		}
		if plain {
			return v
		}
		// Without PLAIN the object is serialised as JSON: a string state
		// (what proxy_set_property stores) becomes a quoted string.
		q, _ := json.Marshal(v)
		return string(q)
	case "DYNAMIC_METADATA":
		ns, key, ok := strings.Cut(arg, ":")
		if !ok {
			return ""
		}
		v, found := info.Metadata(ns, key)
		if !found {
			return ""
		}
		if s, isString := v.(string); isString {
			return s
		}
		q, _ := json.Marshal(v)
		return string(q)
	case "REQ":
		v, _ := h.Lookup(strings.ToLower(arg))
		return v
	}
	return ""
}

func hostOnly(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// SortedTags returns a span's tags as "k=v" sorted, for logs.
func (s *Span) SortedTags() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.Tags))
	for k, v := range s.Tags {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
