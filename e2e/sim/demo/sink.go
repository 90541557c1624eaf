package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tracebridge/tracebridge/e2e/sim/backend"
	"github.com/tracebridge/tracebridge/e2e/sim/envoysim"
)

// Sink is the embedded span sink: a minimal Zipkin v2 collector (POST
// /api/v2/spans, JSON) keeping spans in memory, for when Jaeger is not built.
type Sink struct {
	srv   *http.Server
	ln    net.Listener
	mu    sync.Mutex
	spans []envoysim.ZipkinSpan
}

// StartSink listens on a free 127.0.0.1 port.
func StartSink() (*Sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Sink{ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v2/spans", func(w http.ResponseWriter, r *http.Request) {
		data, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		var spans []envoysim.ZipkinSpan
		if err := json.Unmarshal(data, &spans); err != nil {
			http.Error(w, "not Zipkin v2 JSON: "+err.Error(), 400)
			return
		}
		s.mu.Lock()
		s.spans = append(s.spans, spans...)
		s.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is the Zipkin endpoint, http://127.0.0.1:PORT/api/v2/spans.
func (s *Sink) URL() string { return "http://" + s.ln.Addr().String() + "/api/v2/spans" }

// Spans returns what was received.
func (s *Sink) Spans() []SpanView {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SpanView, 0, len(s.spans))
	for _, z := range s.spans {
		v := SpanView{TraceID: z.TraceID, SpanID: z.ID, ParentID: z.ParentID, Name: z.Name, Kind: z.Kind,
			Start: time.UnixMicro(z.Timestamp), Duration: time.Duration(z.Duration) * time.Microsecond, Tags: z.Tags}
		if z.LocalEndpoint != nil {
			v.Service = z.LocalEndpoint.ServiceName
		}
		out = append(out, v)
	}
	return out
}

// Reset forgets every span.
func (s *Sink) Reset() {
	s.mu.Lock()
	s.spans = nil
	s.mu.Unlock()
}

// Close stops the sink.
func (s *Sink) Close() { _ = s.srv.Close() }

// SpanView is a span as the demo and the tests look at it, whichever
// backend it came from.
type SpanView struct {
	TraceID, SpanID, ParentID string
	Service, Name, Kind       string
	Start                     time.Time
	Duration                  time.Duration
	Tags                      map[string]string
}

// FromJaeger converts traces read from Jaeger's query API.
func FromJaeger(traces []backend.Trace) []SpanView {
	var out []SpanView
	for i := range traces {
		for j := range traces[i].Spans {
			sp := &traces[i].Spans[j]
			v := SpanView{TraceID: sp.TraceID, SpanID: sp.SpanID, ParentID: sp.ParentSpanID(), Service: sp.ServiceName(),
				Name: sp.OperationName, Start: sp.Start(), Duration: sp.Elapsed(), Tags: map[string]string{}}
			for _, kv := range sp.Tags {
				v.Tags[kv.Key] = fmt.Sprint(kv.Value)
			}
			v.Kind = strings.ToUpper(v.Tags["span.kind"])
			out = append(out, v)
		}
	}
	return out
}

// Trace is the spans of one trace id.
type Trace struct {
	ID    string
	Spans []SpanView
}

// GroupTraces groups spans by trace id, traces ordered by their first span.
func GroupTraces(spans []SpanView) []Trace {
	by := map[string]*Trace{}
	var order []*Trace
	for _, s := range spans {
		t := by[s.TraceID]
		if t == nil {
			t = &Trace{ID: s.TraceID}
			by[s.TraceID] = t
			order = append(order, t)
		}
		t.Spans = append(t.Spans, s)
	}
	out := make([]Trace, 0, len(order))
	for _, t := range order {
		sort.Slice(t.Spans, func(i, j int) bool { return t.Spans[i].Start.Before(t.Spans[j].Start) })
		out = append(out, *t)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Spans[0].Start.Before(out[j].Spans[0].Start) })
	return out
}

// Roots are the spans whose parent is not in the trace.
func (t Trace) Roots() []SpanView {
	ids := map[string]bool{}
	for _, s := range t.Spans {
		ids[s.SpanID] = true
	}
	var out []SpanView
	for _, s := range t.Spans {
		if s.ParentID == "" || !ids[s.ParentID] {
			out = append(out, s)
		}
	}
	return out
}

// Children returns the spans whose parent is id.
func (t Trace) Children(id string) []SpanView {
	var out []SpanView
	for _, s := range t.Spans {
		if s.ParentID == id && s.SpanID != id {
			out = append(out, s)
		}
	}
	return out
}

// ShownTags are the tags the trees print when present (the status code
// only when it is not 200).
var ShownTags = []string{"tenant", "route", "plan", "mesh", "untrusted_trace_id", "http.status_code", "tracebridge.strategy"}

// Render writes a trace as an ASCII tree.
func Render(w io.Writer, t Trace) {
	fmt.Fprintf(w, "trace %s (%d spans)\n", t.ID, len(t.Spans))
	var walk func(s SpanView, prefix string, last bool, depth int)
	walk = func(s SpanView, prefix string, last bool, depth int) {
		branch := "├─ "
		next := prefix + "│  "
		if last {
			branch = "└─ "
			next = prefix + "   "
		}
		var tags []string
		for _, k := range ShownTags {
			if v, ok := s.Tags[k]; ok && v != "" && !(k == "http.status_code" && v == "200") {
				tags = append(tags, k+"="+v)
			}
		}
		tagStr := ""
		if len(tags) > 0 {
			tagStr = "  [" + strings.Join(tags, " ") + "]"
		}
		url := s.Tags["http.url"]
		if i := strings.Index(url, "://"); i >= 0 {
			url = url[i+3:]
		}
		orphan := ""
		if s.ParentID != "" && depth == 0 {
			orphan = " (parent " + s.ParentID + " not in this trace)"
		}
		fmt.Fprintf(w, "%s%s%-20s %-6s %8s  %s%s%s\n", prefix, branch, s.Service, s.Kind, s.Duration.Round(10*time.Microsecond), url, tagStr, orphan)
		kids := t.Children(s.SpanID)
		for i, k := range kids {
			walk(k, next, i == len(kids)-1, depth+1)
		}
	}
	roots := t.Roots()
	for i, r := range roots {
		walk(r, "  ", i == len(roots)-1, 0)
	}
}
