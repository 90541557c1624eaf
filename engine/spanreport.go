package engine

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// FinishedSpan is a client span at the end of its call, with what Envoy's
// own client span carries (source/common/tracing/http_tracer_impl.cc,
// HttpTracerUtility::finalizeUpstreamSpan: method, URL, status code,
// upstream cluster) and how the context was found.
type FinishedSpan struct {
	ClientSpan
	EndUnixNano int64
	Service     string
	Method      string
	Authority   string
	Path        string
	// Status is the response code, 0 when no response came.
	Status int
	// Cluster is the upstream cluster, "" when the host did not say.
	Cluster string
	Tags    []Tag
}

// SpanCall is the request side of a started client span, copied out of the
// request (an adapter's header buffers do not outlive its callback): what
// FinishedSpan takes from the request. Adapters keep one per stream.
type SpanCall struct {
	Method, Authority, Path string
	// Status is the response code, set by the adapter when the response
	// headers come; 0 when none came.
	Status int
	Tags   []Tag
}

// Reset makes c ready for the next stream, keeping its tag buffer.
func (c *SpanCall) Reset() {
	c.Method, c.Authority, c.Path, c.Status = "", "", "", 0
	clear(c.Tags)
	c.Tags = c.Tags[:0]
}

// Capture copies what the span reports from the request h and the engine's
// result for it.
func (c *SpanCall) Capture(h Headers, res *Result) {
	v, _ := h.Get(":method")
	c.Method = strings.Clone(v)
	v, _ = h.Get(":authority")
	c.Authority = strings.Clone(v)
	v, _ = h.Get(":path")
	c.Path = strings.Clone(v)
	for _, t := range res.Tags {
		// Tag names come from the compiled policy; values may alias the request.
		c.Tags = append(c.Tags, Tag{Name: t.Name, Value: strings.Clone(t.Value)})
	}
}

// Finished is the span of c, ended at end (unix nanoseconds), for service.
func (c *SpanCall) Finished(cs ClientSpan, end int64, service string) FinishedSpan {
	return FinishedSpan{ClientSpan: cs, EndUnixNano: end, Service: service,
		Method: c.Method, Authority: c.Authority, Path: c.Path, Status: c.Status, Tags: c.Tags}
}

// SpanBatch holds encoded spans until they are sent, bounded in bytes: a
// span that would make the report larger than the bound is dropped. Not
// safe for concurrent use (one per VM, or behind the caller's lock).
type SpanBatch struct {
	cfg   *ClientSpansConfig
	spans []byte
	n     int
}

// NewSpanBatch makes an empty batch for a compiled clientSpans policy.
func NewSpanBatch(cfg *ClientSpansConfig) *SpanBatch { return &SpanBatch{cfg: cfg} }

// Len is the number of spans waiting.
func (b *SpanBatch) Len() int { return b.n }

// envelope bytes around the spans of one report.
func (b *SpanBatch) envelope(service string) int {
	if b.cfg.Format == SpanFormatOTLP {
		// The service name, escaped: at most 6 bytes per byte (\u00XX).
		return len(otlpHead) + len(otlpMid) + len(otlpTail) + 6*len(service) + 2
	}
	return 2
}

// Add encodes s into the batch and reports whether it fit.
func (b *SpanBatch) Add(s *FinishedSpan) bool {
	off := len(b.spans)
	if b.n > 0 {
		b.spans = append(b.spans, ',')
	}
	if b.cfg.Format == SpanFormatOTLP {
		b.spans = appendOTLPSpan(b.spans, s)
	} else {
		b.spans = appendZipkinSpan(b.spans, s)
	}
	if len(b.spans)+b.envelope(s.Service) > b.cfg.MaxBatchBytes {
		b.spans = b.spans[:off]
		return false
	}
	b.n++
	return true
}

// Take appends the report body of the waiting spans to dst, empties the
// batch and returns the body and how many spans it holds.
func (b *SpanBatch) Take(dst []byte, service string) ([]byte, int) {
	n := b.n
	if b.cfg.Format == SpanFormatOTLP {
		// OTLP/HTTP JSON (opentelemetry-proto, opentelemetry/proto/trace/v1/trace.proto
		// ExportTraceServiceRequest in the protobuf JSON mapping).
		dst = append(dst, otlpHead...)
		dst = appendJSONString(dst, service)
		dst = append(dst, otlpMid...)
		dst = append(dst, b.spans...)
		dst = append(dst, otlpTail...)
	} else {
		dst = append(dst, '[')
		dst = append(dst, b.spans...)
		dst = append(dst, ']')
	}
	b.spans, b.n = b.spans[:0], 0
	return dst, n
}

const (
	otlpHead = `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":`
	otlpMid  = `}}]},"scopeSpans":[{"scope":{"name":"tracebridge"},"spans":[`
	otlpTail = `]}]}]}`
)

func spanName(s *FinishedSpan) string {
	if s.Authority != "" {
		// Istio's default operation name for an outbound call ("host:port/*").
		return s.Authority + "/*"
	}
	return s.Method
}

func pathOnly(p string) string {
	for i := 0; i < len(p); i++ {
		if p[i] == '?' || p[i] == '#' {
			return p[:i]
		}
	}
	return p
}

// appendZipkinSpan writes one Zipkin v2 span (zipkin-api zipkin2-api.yaml,
// Span: timestamp and duration in microseconds, ids in lower-case hex).
func appendZipkinSpan(dst []byte, s *FinishedSpan) []byte {
	dst = append(dst, `{"traceId":"`...)
	dst = appendHex(dst, s.TraceID[:])
	dst = append(dst, `","id":"`...)
	dst = appendHex(dst, s.SpanID[:])
	dst = append(dst, '"')
	if !s.ParentID.IsZero() {
		dst = append(dst, `,"parentId":"`...)
		dst = appendHex(dst, s.ParentID[:])
		dst = append(dst, '"')
	}
	dst = append(dst, `,"kind":"CLIENT","name":`...)
	dst = appendJSONString(dst, spanName(s))
	dst = append(dst, `,"timestamp":`...)
	dst = strconv.AppendInt(dst, s.StartUnixNano/1000, 10)
	dst = append(dst, `,"duration":`...)
	dst = strconv.AppendInt(dst, max(1, (s.EndUnixNano-s.StartUnixNano)/1000), 10)
	dst = append(dst, `,"localEndpoint":{"serviceName":`...)
	dst = appendJSONString(dst, s.Service)
	dst = append(dst, `},"tags":{`...)
	dst = eachTag(dst, s, func(dst []byte, k, v string) []byte {
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		return appendJSONString(dst, v)
	})
	return append(dst, "}}"...)
}

// appendOTLPSpan writes one OTLP span in the protobuf JSON mapping (kind 3
// is SPAN_KIND_CLIENT; 64-bit times as strings).
func appendOTLPSpan(dst []byte, s *FinishedSpan) []byte {
	dst = append(dst, `{"traceId":"`...)
	dst = appendHex(dst, s.TraceID[:])
	dst = append(dst, `","spanId":"`...)
	dst = appendHex(dst, s.SpanID[:])
	dst = append(dst, '"')
	if !s.ParentID.IsZero() {
		dst = append(dst, `,"parentSpanId":"`...)
		dst = appendHex(dst, s.ParentID[:])
		dst = append(dst, '"')
	}
	dst = append(dst, `,"kind":3,"name":`...)
	dst = appendJSONString(dst, spanName(s))
	dst = append(dst, `,"startTimeUnixNano":"`...)
	dst = strconv.AppendInt(dst, s.StartUnixNano, 10)
	dst = append(dst, `","endTimeUnixNano":"`...)
	dst = strconv.AppendInt(dst, max(s.EndUnixNano, s.StartUnixNano), 10)
	dst = append(dst, `","attributes":[`...)
	dst = eachTag(dst, s, func(dst []byte, k, v string) []byte {
		dst = append(dst, `{"key":`...)
		dst = appendJSONString(dst, k)
		dst = append(dst, `,"value":{"stringValue":`...)
		dst = appendJSONString(dst, v)
		return append(dst, "}}"...)
	})
	return append(dst, "]}"...)
}

// eachTag writes the span's tags, comma-separated: the ones Envoy's client
// span carries (http.method, http.url, http.status_code, upstream_cluster),
// tracebridge.strategy, then the policy's tags.
func eachTag(dst []byte, s *FinishedSpan, put func(dst []byte, k, v string) []byte) []byte {
	first := true
	one := func(k, v string) {
		if v == "" {
			return
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = put(dst, k, v)
	}
	one("http.method", s.Method)
	if s.Authority != "" {
		one("http.url", "http://"+s.Authority+pathOnly(s.Path))
	}
	if s.Status > 0 {
		one("http.status_code", strconv.Itoa(s.Status))
		if s.Status >= 500 {
			one("error", "true")
		}
	}
	one("upstream_cluster", s.Cluster)
	one("tracebridge.strategy", s.Strategy.String())
	for _, t := range s.Tags {
		one(t.Name, t.Value)
	}
	return dst
}

func appendHex(dst, b []byte) []byte {
	const digits = "0123456789abcdef"
	for _, c := range b {
		dst = append(dst, digits[c>>4], digits[c&15])
	}
	return dst
}

// appendJSONString writes s as a JSON string (RFC 8259 §7): quotes,
// backslashes and control characters escaped, invalid UTF-8 replaced by
// U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	const digits = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20 || c == 0x7f:
				dst = append(dst, '\\', 'u', '0', '0', digits[c>>4], digits[c&15])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return append(dst, '"')
}
