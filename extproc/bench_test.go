package extproc

import (
	"strconv"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// BenchmarkHandle measures the server's own work for one stream (request
// headers, response headers, end), without gRPC: the part tracebridge adds
// to what any ext_proc server pays.
func BenchmarkHandle(b *testing.B) {
	srv, err := NewServer(nil, Options{})
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([]*extprocv3.ProcessingRequest, 1024)
	for i := range reqs {
		reqs[i] = reqHeadersMsg(hmap(
			":method", "GET", ":path", "/api/v1/orders/1", ":authority", "shop.example.com", ":scheme", "https",
			"user-agent", "Mozilla/5.0 (X11; Linux x86_64)", "accept", "application/json", "accept-encoding", "gzip, br",
			"x-forwarded-for", "203.0.113.9", "x-forwarded-proto", "https",
			"x-request-id", "5f0c7b2e-"+strconv.Itoa(i),
			"traceparent", validTP, "tracestate", "vendor=abc",
		), nil)
	}
	resp := respHeadersMsg(hmap(":status", "200", "content-type", "application/json"))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ps := srv.pool.Get().(*procStream)
		ps.begin(srv)
		if _, _, err := ps.safeHandle(reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
		if _, _, err := ps.safeHandle(resp); err != nil {
			b.Fatal(err)
		}
		ps.end()
		srv.pool.Put(ps)
	}
}
