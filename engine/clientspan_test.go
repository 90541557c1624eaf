package engine

import (
	"strings"
	"testing"
	"time"
)

func TestClientSpansPolicyErrorsNameTheField(t *testing.T) {
	cases := []struct {
		doc, path string
	}{
		{`{"clientSpans":{"enabled":true}}`, "clientSpans.cluster"},
		{`{"clientSpans":{"enabled":true,"cluster":"a b"}}`, "clientSpans.cluster"},
		{`{"clientSpans":{"enabled":true,"cluster":"zipkin","format":"jaeger"}}`, "clientSpans.format"},
		{`{"clientSpans":{"enabled":true,"cluster":"zipkin","path":"api/v2/spans"}}`, "clientSpans.path"},
		{`{"clientSpans":{"enabled":true,"cluster":"zipkin","authority":"a/b"}}`, "clientSpans.authority"},
		{`{"clientSpans":{"enabled":true,"cluster":"zipkin","maxBatchBytes":10}}`, "clientSpans.maxBatchBytes"},
		{`{"clientSpans":{"enabled":true,"cluster":"zipkin","maxBatchBytes":-1}}`, "clientSpans.maxBatchBytes"},
		{`{"clientSpans":{"enabled":true,"cluster":"zipkin","flushInterval":"1ms"}}`, "clientSpans.flushInterval"},
		{`{"clientSpans":{"enabled":true,"cluster":"zipkin","flushInterval":"soon"}}`, "clientSpans.flushInterval"},
		{`{"clientSpans":{"enabled":true,"cluster":"zipkin","timeout":"2h"}}`, "clientSpans.timeout"},
		{`{"clientSpans":{"enabled":true,"cluster":"zipkin","serviceName":"a\nb"}}`, "clientSpans.serviceName"},
		{`{"clientSpans":{"enabled":"yes"}}`, "clientSpans.enabled"},
		{`{"clientSpans":{"colour":"red"}}`, "clientSpans"},
	}
	for _, c := range cases {
		_, err := LoadPolicy([]byte(c.doc), nil)
		if err == nil {
			t.Errorf("%s: accepted", c.doc)
			continue
		}
		if !strings.Contains(err.Error(), c.path) {
			t.Errorf("%s: error %q does not name %s", c.doc, err, c.path)
		}
	}
}

func TestClientSpansPolicyDefaults(t *testing.T) {
	cases := []struct {
		doc  string
		want ClientSpansConfig
	}{
		{`{"clientSpans":{"enabled":true,"cluster":"zipkin"}}`, ClientSpansConfig{
			Format: SpanFormatZipkin, Cluster: "zipkin", Authority: "zipkin", Path: "/api/v2/spans",
			MaxBatchBytes: 256 << 10, FlushInterval: 500 * time.Millisecond, Timeout: 2 * time.Second}},
		{`{"clientSpans":{"enabled":true,"cluster":"otel","format":"otlp","authority":"otel:4318","maxBatchBytes":2048,"flushInterval":"250ms","timeout":"500ms","serviceName":"productpage"}}`, ClientSpansConfig{
			Format: SpanFormatOTLP, Cluster: "otel", Authority: "otel:4318", Path: "/v1/traces", ServiceName: "productpage",
			MaxBatchBytes: 2048, FlushInterval: 250 * time.Millisecond, Timeout: 500 * time.Millisecond}},
	}
	for _, c := range cases {
		cfg, err := LoadPolicy([]byte(c.doc), nil)
		if err != nil {
			t.Fatalf("%s: %v", c.doc, err)
		}
		if got := cfg.ClientSpans(); got == nil || *got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.doc, got, c.want)
		}
	}
	cfg, err := LoadPolicy([]byte(`{"clientSpans":{"enabled":true,"cluster":"outbound|9411||zipkin.istio-system.svc.cluster.local"}}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.ClientSpans().Authority; a != "zipkin.istio-system.svc.cluster.local:9411" {
		t.Errorf("authority for an Istio cluster: %q", a)
	}
	for _, doc := range []string{`{}`, `{"clientSpans":{"enabled":false}}`, `{"clientSpans":{"cluster":"zipkin"}}`} {
		cfg, err := LoadPolicy([]byte(doc), nil)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.ClientSpans() != nil {
			t.Errorf("%s: client spans on", doc)
		}
	}
}
