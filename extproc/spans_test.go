package extproc

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// collector is a real local HTTP server standing for Zipkin or an
// OpenTelemetry collector: it answers status (or hangs until the test
// ends when hang is set) and keeps the bodies it was posted.
type collector struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []string
	ctypes []string
}

func newCollector(t *testing.T, status int, hang bool) *collector {
	c := &collector{}
	release := make(chan struct{})
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.bodies = append(c.bodies, string(b))
		c.ctypes = append(c.ctypes, r.Header.Get("Content-Type"))
		c.mu.Unlock()
		if hang {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(func() { close(release); c.srv.Close() })
	return c
}

func (c *collector) posted() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.bodies...)
}

// downURL is a URL nothing listens on.
func downURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/api/v2/spans"
}

const spansPolicy = `{"correlation":{"strategies":["key","soleInFlight"]},
 "clientSpans":{"enabled":true,"cluster":"zipkin","serviceName":"gateway.istio-system","flushInterval":"20ms","timeout":"200ms"%s}}`

// restoreCall runs an inbound request with validTP and an outbound call
// restoring it, and returns the outbound call's traceparent; it fails the
// test if the stream took longer than a request may wait.
func restoreCall(t *testing.T, env *testEnv, key string) string {
	t.Helper()
	start := time.Now()
	in, cancel := openStream(t, env.client)
	defer cancel()
	roundTrip(t, in, reqHeadersMsg(hmap("traceparent", validTP, "x-request-id", key), attrs(attrListenerDirection, 1)))
	out, cancel2 := openStream(t, env.client)
	defer cancel2()
	resp := roundTrip(t, out, reqHeadersMsg(hmap(":method", "GET", ":authority", "reviews:9080", ":path", "/reviews/1", "x-request-id", key), attrs(attrListenerDirection, 2)))
	roundTrip(t, out, respHeadersMsg(hmap(":status", "503")))
	closeStream(t, out)
	closeStream(t, in)
	if d := time.Since(start); d > time.Second {
		t.Errorf("a request took %v with the collector in this state", d)
	}
	got := applyMutation(t, headerPairs(hmap("x-request-id", key)), resp.GetRequestHeaders().GetResponse().GetHeaderMutation())
	tp, _ := headerValue(got, "traceparent")
	return tp
}

// TestClientSpansReported: with --span-collector, every restored outbound
// call leaves with a fresh parent-id, its CLIENT span is posted to the
// collector in the policy's format, and a collector that fails, hangs or
// is away costs the requests nothing: the spans are dropped and counted.
func TestClientSpansReported(t *testing.T) {
	for _, tc := range []struct {
		name, format string
		status       int
		hang, down   bool
		outcome      string
	}{
		{"zipkin healthy", "", http.StatusAccepted, false, false, spanSent},
		{"otlp healthy", `,"format":"otlp"`, http.StatusOK, false, false, spanSent},
		{"collector answers 500", "", http.StatusInternalServerError, false, false, spanFailed},
		{"collector hangs past the timeout", "", http.StatusAccepted, true, false, spanFailed},
		{"collector down", "", 0, false, true, spanFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := downURL(t)
			var col *collector
			if !tc.down {
				col = newCollector(t, tc.status, tc.hang)
				url = col.srv.URL + "/api/v2/spans"
			}
			m := NewMetrics()
			rep, err := NewSpanReporter(url, m)
			if err != nil {
				t.Fatal(err)
			}
			defer rep.Close()
			env := startServer(t, "bufconn", strings.Replace(spansPolicy, "%s", tc.format, 1), Options{Metrics: m, Spans: rep})
			const calls = 3
			seen := map[string]bool{}
			for i := range calls {
				tp := restoreCall(t, env, "req-"+string(rune('a'+i)))
				parts := strings.Split(tp, "-")
				if len(parts) != 4 || parts[1] != validTID || parts[2] == strings.Split(validTP, "-")[2] || seen[parts[2]] {
					t.Fatalf("outbound traceparent %q: want the trace %s with a fresh parent-id", tp, validTID)
				}
				seen[parts[2]] = true
			}
			waitFor(t, func() bool {
				return counterByLabel(t, m, "tracebridge_extproc_client_spans_total", "outcome")[tc.outcome] == calls
			})
			if col == nil || tc.outcome != spanSent {
				return
			}
			var ids []string
			for _, b := range col.posted() {
				ids = append(ids, spanIDs(t, b, tc.format != "")...)
			}
			if len(ids) != calls {
				t.Fatalf("collector got %d spans, want %d: %v", len(ids), calls, col.posted())
			}
			for _, id := range ids {
				if !seen[id] {
					t.Errorf("reported span %s is none of the outbound parent-ids %v", id, seen)
				}
			}
			if ct := col.ctypes[0]; ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

// spanIDs decodes a report and checks each span's parent, kind, service and
// call attributes.
func spanIDs(t *testing.T, body string, otlp bool) []string {
	t.Helper()
	parent := strings.Split(validTP, "-")[2]
	var ids []string
	if otlp {
		var r struct {
			ResourceSpans []struct {
				Resource struct {
					Attributes []struct {
						Key   string `json:"key"`
						Value struct {
							StringValue string `json:"stringValue"`
						} `json:"value"`
					} `json:"attributes"`
				} `json:"resource"`
				ScopeSpans []struct {
					Spans []struct {
						TraceID      string `json:"traceId"`
						SpanID       string `json:"spanId"`
						ParentSpanID string `json:"parentSpanId"`
						Kind         int    `json:"kind"`
					} `json:"spans"`
				} `json:"scopeSpans"`
			} `json:"resourceSpans"`
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("OTLP body: %v\n%s", err, body)
		}
		for _, rs := range r.ResourceSpans {
			if a := rs.Resource.Attributes; len(a) == 0 || a[0].Key != "service.name" || a[0].Value.StringValue != "gateway.istio-system" {
				t.Errorf("OTLP resource %+v", a)
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					if s.TraceID != validTID || s.ParentSpanID != parent || s.Kind != 3 {
						t.Errorf("OTLP span %+v", s)
					}
					ids = append(ids, s.SpanID)
				}
			}
		}
		return ids
	}
	var spans []struct {
		TraceID       string            `json:"traceId"`
		ID            string            `json:"id"`
		ParentID      string            `json:"parentId"`
		Kind          string            `json:"kind"`
		Name          string            `json:"name"`
		Tags          map[string]string `json:"tags"`
		LocalEndpoint struct {
			ServiceName string `json:"serviceName"`
		} `json:"localEndpoint"`
	}
	if err := json.Unmarshal([]byte(body), &spans); err != nil {
		t.Fatalf("Zipkin body: %v\n%s", err, body)
	}
	for _, s := range spans {
		if s.TraceID != validTID || s.ParentID != parent || s.Kind != "CLIENT" || s.LocalEndpoint.ServiceName != "gateway.istio-system" ||
			s.Name != "reviews:9080/*" || s.Tags["http.status_code"] != "503" || s.Tags["http.method"] != "GET" {
			t.Errorf("Zipkin span %+v", s)
		}
		ids = append(ids, s.ID)
	}
	return ids
}

// TestClientSpansBatchFull: spans beyond clientSpans.maxBatchBytes are
// dropped and counted, not queued.
func TestClientSpansBatchFull(t *testing.T) {
	col := newCollector(t, http.StatusAccepted, false)
	m := NewMetrics()
	rep, err := NewSpanReporter(col.srv.URL, m)
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	policy := `{"correlation":{"strategies":["key","soleInFlight"]},"clientSpans":{"enabled":true,"cluster":"zipkin","maxBatchBytes":1024,"flushInterval":"1m"}}`
	env := startServer(t, "bufconn", policy, Options{Metrics: m, Spans: rep})
	const calls = 10
	for i := range calls {
		restoreCall(t, env, "k"+string(rune('a'+i)))
	}
	got := counterByLabel(t, m, "tracebridge_extproc_client_spans_total", "outcome")
	if got[spanFull] == 0 || got[spanFull] >= calls {
		t.Errorf("full = %v of %d spans, want some but not all (1024-byte batch)", got[spanFull], calls)
	}
	rep.Close() // posts what fit
	got = counterByLabel(t, m, "tracebridge_extproc_client_spans_total", "outcome")
	if got[spanSent]+got[spanFull] != calls {
		t.Errorf("sent %v + full %v != %d", got[spanSent], got[spanFull], calls)
	}
}

// TestNoCollectorNoSpans: without --span-collector the policy's clientSpans
// is ignored: the outbound call keeps the recorded parent-id.
func TestNoCollectorNoSpans(t *testing.T) {
	env := startServer(t, "bufconn", strings.Replace(spansPolicy, "%s", "", 1), Options{})
	if tp := restoreCall(t, env, "r"); tp != validTP {
		t.Errorf("outbound traceparent %q, want the recorded %q", tp, validTP)
	}
}

func TestSpanCollectorURL(t *testing.T) {
	for _, u := range []string{"", "zipkin:9411", "outbound|9411||zipkin.istio-system.svc.cluster.local", "ftp://x/y", "http://"} {
		if _, err := NewSpanReporter(u, nil); err == nil {
			t.Errorf("NewSpanReporter(%q) accepted", u)
		}
	}
}
