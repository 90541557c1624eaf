package engine

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tracebridge/tracebridge/propagation"
)

func testSpan() *FinishedSpan {
	return &FinishedSpan{
		ClientSpan: ClientSpan{
			TraceID:       propagation.TraceID{0x12, 0x34, 15: 0x01},
			SpanID:        propagation.SpanID{0xab, 7: 0x01},
			ParentID:      propagation.SpanID{0xcd, 7: 0x02},
			StartUnixNano: 1_700_000_000_000_000_000,
			Strategy:      StrategySoleInFlight,
		},
		EndUnixNano: 1_700_000_000_002_500_000,
		Service:     "productpage.default",
		Method:      "GET",
		Authority:   "reviews:9080",
		Path:        "/reviews/0?x=1",
		Status:      503,
		Cluster:     "outbound|9080||reviews.default.svc.cluster.local",
		Tags:        []Tag{{Name: "tenant", Value: "a\"b\x01\xff"}},
	}
}

func TestZipkinSpanEncoding(t *testing.T) {
	b := NewSpanBatch(&ClientSpansConfig{MaxBatchBytes: 4096})
	for i := 0; i < 2; i++ {
		if !b.Add(testSpan()) {
			t.Fatal("span did not fit")
		}
	}
	body, n := b.Take(nil, "")
	if n != 2 || b.Len() != 0 {
		t.Fatalf("took %d, %d left", n, b.Len())
	}
	var spans []struct {
		TraceID, ID, ParentID, Kind, Name string
		Timestamp, Duration               int64
		LocalEndpoint                     struct{ ServiceName string }
		Tags                              map[string]string
	}
	if err := json.Unmarshal(body, &spans); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	s := spans[1]
	want := map[string]string{
		"http.method": "GET", "http.url": "http://reviews:9080/reviews/0", "http.status_code": "503", "error": "true",
		"upstream_cluster": "outbound|9080||reviews.default.svc.cluster.local", "tracebridge.strategy": "soleInFlight",
		"tenant": "a\"b\x01\ufffd",
	}
	if s.TraceID != "12340000000000000000000000000001" || s.ID != "ab00000000000001" || s.ParentID != "cd00000000000002" ||
		s.Kind != "CLIENT" || s.Name != "reviews:9080/*" || s.Timestamp != 1_700_000_000_000_000 || s.Duration != 2500 ||
		s.LocalEndpoint.ServiceName != "productpage.default" || len(s.Tags) != len(want) {
		t.Fatalf("span %+v", s)
	}
	for k, v := range want {
		if s.Tags[k] != v {
			t.Errorf("tag %s = %q, want %q", k, s.Tags[k], v)
		}
	}
}

func TestOTLPSpanEncoding(t *testing.T) {
	b := NewSpanBatch(&ClientSpansConfig{Format: SpanFormatOTLP, MaxBatchBytes: 4096})
	sp := testSpan()
	sp.ParentID = propagation.SpanID{}
	b.Add(sp)
	body, _ := b.Take(nil, "svc")
	var req struct {
		ResourceSpans []struct {
			Resource struct {
				Attributes []struct {
					Key   string
					Value struct{ StringValue string }
				}
			}
			ScopeSpans []struct {
				Spans []struct {
					TraceID, SpanID, ParentSpanID, Name string
					Kind                                int
					StartTimeUnixNano, EndTimeUnixNano  string
					Attributes                          []struct{ Key string }
				}
			}
		}
	}
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	rs := req.ResourceSpans[0]
	s := rs.ScopeSpans[0].Spans[0]
	if rs.Resource.Attributes[0].Value.StringValue != "svc" || s.Kind != 3 || s.ParentSpanID != "" ||
		s.SpanID != "ab00000000000001" || s.StartTimeUnixNano != "1700000000000000000" || s.EndTimeUnixNano != "1700000000002500000" {
		t.Fatalf("%s", body)
	}
}

func TestSpanBatchBound(t *testing.T) {
	for _, f := range []SpanFormat{SpanFormatZipkin, SpanFormatOTLP} {
		b := NewSpanBatch(&ClientSpansConfig{Format: f, MaxBatchBytes: MinSpanBatchBytes})
		added := 0
		for i := 0; i < 100; i++ {
			if b.Add(testSpan()) {
				added++
			}
		}
		body, n := b.Take(nil, strings.Repeat("s", 10))
		if n != added || added == 0 || added == 100 {
			t.Fatalf("%v: added %d, took %d", f, added, n)
		}
		if len(body) > MinSpanBatchBytes {
			t.Errorf("%v: body %d bytes over the bound %d", f, len(body), MinSpanBatchBytes)
		}
		if !json.Valid(body) {
			t.Errorf("%v: invalid JSON after drops: %s", f, body)
		}
	}
}

// FuzzSpanEncoding: whatever the request's method, authority, path, service
// and tag values, a report is valid JSON holding every span added, and
// never larger than the batch bound.
func FuzzSpanEncoding(f *testing.F) {
	f.Add("GET", "reviews:9080", "/reviews/0?u=1", "productpage", "tenant", "acme", uint16(200), false)
	f.Add("\x00\"\\", "a\u2028b", "\xff\xfe", "", "", "\x7f", uint16(0), true)
	f.Add(strings.Repeat("x", 3000), "", "", "s", "k", strings.Repeat("\x01", 500), uint16(503), false)
	f.Add("GET", "a", "/", strings.Repeat("\x01", 200), "k", "v", uint16(200), true)
	f.Fuzz(func(t *testing.T, method, authority, path, service, tagName, tagValue string, status uint16, otlp bool) {
		cfg := &ClientSpansConfig{MaxBatchBytes: MinSpanBatchBytes * 4}
		if otlp {
			cfg.Format = SpanFormatOTLP
		}
		b := NewSpanBatch(cfg)
		s := testSpan()
		s.Method, s.Authority, s.Path, s.Service, s.Status = method, authority, path, service, int(status)
		s.Tags = []Tag{{Name: tagName, Value: tagValue}}
		added := 0
		for i := 0; i < 3; i++ {
			if b.Add(s) {
				added++
			}
		}
		body, n := b.Take(nil, service)
		if n != added {
			t.Fatalf("took %d spans, added %d", n, added)
		}
		if !json.Valid(body) {
			t.Fatalf("invalid JSON: %q", body)
		}
		if len(body) > cfg.MaxBatchBytes {
			t.Fatalf("report of %d bytes over the bound %d", len(body), cfg.MaxBatchBytes)
		}
	})
}
