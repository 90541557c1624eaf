package envoysim_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracebridge/tracebridge/e2e/sim/envoysim"
)

// collector is a Zipkin endpoint that answers with status and records the
// span batches it gets.
type collector struct {
	mu      sync.Mutex
	status  int
	delay   time.Duration
	bodies  [][]byte
	headers []http.Header
	hosts   []string
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.bodies = append(c.bodies, b)
	c.headers = append(c.headers, r.Header.Clone())
	c.hosts = append(c.hosts, r.Method+" "+r.Host+r.URL.Path)
	status, delay := c.status, c.delay
	c.mu.Unlock()
	time.Sleep(delay)
	w.WriteHeader(status)
}

func (c *collector) batches() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.bodies)
}

type reportedSpan struct {
	TraceID, ID, ParentID, Kind, Name string
	LocalEndpoint                     struct{ ServiceName string }
	Tags                              map[string]string
}

// TestWasmClientSpansReportedThroughHttpCall runs the compiled module with
// clientSpans on: its spans reach the collector cluster through
// proxy_http_call on the tick, the calls' answers come back through
// proxy_on_http_call_response and are counted; a collector that is away,
// slow or failing never delays a request.
func TestWasmClientSpansReportedThroughHttpCall(t *testing.T) {
	path := modulePath(t)
	mod, err := envoysim.LoadWasmModule(path, envoysim.DefaultHostProfile)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		status  int
		delay   time.Duration
		away    bool
		outcome string
	}{
		{"collector 202", 202, 0, false, "sent"},
		{"collector 500", 500, 0, false, "failed"},
		{"collector slow (timeout)", 202, 2 * time.Second, false, "failed"},
		{"collector away", 0, 0, true, "failed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			col := &collector{status: c.status, delay: c.delay}
			srv := httptest.NewServer(col)
			addr := strings.TrimPrefix(srv.URL, "http://")
			if c.away {
				srv.Close()
			} else {
				defer srv.Close()
			}
			px, err := envoysim.NewWasmProxyWith(mod, envoysim.ProxyOptions{
				Workers:      1,
				Log:          func(l int, m string) { t.Log(l, m) },
				Clusters:     map[string]string{"outbound|9411||zipkin.istio-system.svc.cluster.local": addr},
				NodeMetadata: map[string]string{"WORKLOAD_NAME": "productpage-v1", "NAMESPACE": "default"},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer px.Close()
			policy := `{"correlation":{"strategies":["key","soleInFlight"]},"clientSpans":{"enabled":true,
				"cluster":"outbound|9411||zipkin.istio-system.svc.cluster.local","authority":"zipkin.istio-system:9411",
				"flushInterval":"20ms","timeout":"200ms"}}`
			f, err := envoysim.NewWasmFilter(px, "tracebridge", []byte(policy), false)
			if err != nil {
				t.Fatal(err)
			}
			const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			inReq := &envoysim.Headers{}
			inReq.Add(":method", "GET")
			inReq.Add(":path", "/productpage")
			inReq.Add(":authority", "productpage:9080")
			inReq.Add("traceparent", tp)
			inS := f.NewStream(&envoysim.StreamInfo{Listener: "inbound", Direction: envoysim.Inbound})
			if lr := inS.DecodeHeaders(inReq); lr != nil {
				t.Fatalf("local reply %+v", lr)
			}
			var parents []string
			start := time.Now()
			for i := 0; i < 3; i++ {
				req := &envoysim.Headers{}
				req.Add(":method", "GET")
				req.Add(":path", "/reviews/0")
				req.Add(":authority", "reviews:9080")
				s := f.NewStream(&envoysim.StreamInfo{Listener: "outbound", Direction: envoysim.Outbound})
				if lr := s.DecodeHeaders(req); lr != nil {
					t.Fatalf("local reply %+v", lr)
				}
				resp := &envoysim.Headers{}
				resp.Add(":status", "200")
				s.EncodeHeaders(resp)
				s.OnDone()
				parents = append(parents, req.Get("traceparent"))
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("three requests took %v with the collector %s", d, c.name)
			}
			if parents[0] == parents[1] || parents[1] == parents[2] || parents[0] == tp {
				t.Fatalf("outbound calls share a parent-id: %v", parents)
			}
			want := map[string]int64{"sent": 0, "full": 0, "failed": 0}
			want[c.outcome] = 3
			deadline := time.Now().Add(5 * time.Second)
			for {
				got := px.Counters()
				ok := true
				for o, n := range want {
					if got["outcome=.="+o+";.;tracebridge_client_spans_total"] != n {
						ok = false
					}
				}
				if ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("span counters sent %d failed %d full %d, want %v (collector got %d batches, %d calls made)",
						got["outcome=.=sent;.;tracebridge_client_spans_total"], got["outcome=.=failed;.;tracebridge_client_spans_total"],
						got["outcome=.=full;.;tracebridge_client_spans_total"], want, col.batches(), px.HttpCallsMade())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if px.HttpCallsMade() == 0 {
				t.Fatal("no proxy_http_call was made")
			}
			if c.away || c.status != 202 {
				return
			}
			col.mu.Lock()
			defer col.mu.Unlock()
			var spans []reportedSpan
			for i, b := range col.bodies {
				var batch []reportedSpan
				if err := json.Unmarshal(b, &batch); err != nil {
					t.Fatalf("batch %s: %v", b, err)
				}
				if col.hosts[i] != "POST zipkin.istio-system:9411/api/v2/spans" || col.headers[i].Get("content-type") != "application/json" {
					t.Errorf("report sent as %s %v", col.hosts[i], col.headers[i])
				}
				spans = append(spans, batch...)
			}
			if len(spans) != 3 {
				t.Fatalf("%d spans reported, want 3", len(spans))
			}
			for i, sp := range spans {
				if !strings.Contains(parents[i], "-"+sp.ID+"-") || sp.ParentID != "00f067aa0ba902b7" || sp.Kind != "CLIENT" ||
					sp.LocalEndpoint.ServiceName != "productpage-v1.default" || sp.Tags["http.status_code"] != "200" {
					t.Errorf("span %d %+v for %s", i, sp, parents[i])
				}
			}
			inS.OnDone()
		})
	}
}
