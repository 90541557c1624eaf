package extproc

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/tracebridge/tracebridge/conformance"
	"github.com/tracebridge/tracebridge/engine"
)

// TestConformance runs the project's conformance vectors through a real gRPC
// client, over bufconn and over TCP. Everything is observed the way Envoy
// observes it: header mutations, local replies and dynamic metadata in the
// gRPC replies, decisions in the Prometheus counters; the direction and the
// peer address travel as request attributes (xds.listener_direction,
// source.address).
func TestConformance(t *testing.T) {
	f, err := conformance.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			conformance.Run(t, f, func(t *testing.T, policy string) conformance.Host {
				clock := f.Clock()
				// The vectors remove x-envoy-force-trace from untrusted
				// requests: an Envoy filter with mutation_rules.allow_envoy.
				// Client spans go to a real local collector, read back by
				// ReportedClientSpan.
				col := newCollector(t, http.StatusAccepted, false)
				rep, err := NewSpanReporter(col.srv.URL+"/api/v2/spans", nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(rep.Close)
				env := startServer(t, tr, string(f.Policy(policy)), Options{
					AllowEnvoyHeaders: true,
					Env:               f.Getenv,
					Now:               func() time.Time { return clock },
					Spans:             rep,
				})
				return &grpcHost{t: t, env: env, streams: map[string]*hostStream{}, col: col, rep: rep}
			})
		})
	}
}

// grpcHost is a conformance.Host speaking ext_proc to the server.
type grpcHost struct {
	t       *testing.T
	env     *testEnv
	streams map[string]*hostStream
	col     *collector
	rep     *SpanReporter
	posts   int // collector bodies already read
}

// ReportsClientSpans: the server reports its client spans to the
// collector, where ReportedClientSpan reads them.
func (h *grpcHost) ReportsClientSpans() bool { return true }

// ReportedClientSpan posts what the reporter holds (after any post under
// way) and returns the one span the collector got since the last call (nil:
// none). End waited for the server's stream end, which adds the span.
func (h *grpcHost) ReportedClientSpan(string) (*conformance.ClientSpan, error) {
	h.rep.flush(nil)
	bodies := h.col.posted()
	fresh := bodies[h.posts:]
	h.posts = len(bodies)
	bs := make([][]byte, len(fresh))
	for i, b := range fresh {
		bs[i] = []byte(b)
	}
	return conformance.OneZipkinSpan(bs)
}

type hostStream struct {
	s      extprocv3.ExternalProcessor_ProcessClient
	cancel context.CancelFunc
}

func toPairs(in []conformance.Header) []pair {
	out := make([]pair, len(in))
	for i, h := range in {
		out[i] = pair{strings.ToLower(h[0]), h[1]}
	}
	return out
}

func fromPairs(in []pair) []conformance.Header {
	out := make([]conformance.Header, len(in))
	for i, p := range in {
		out[i] = conformance.Header(p)
	}
	return out
}

func pairsMap(in []pair) *extprocv3.HttpHeaders {
	kv := make([]string, 0, 2*len(in))
	for _, p := range in {
		kv = append(kv, p[0], p[1])
	}
	return &extprocv3.HttpHeaders{Headers: hmap(kv...)}
}

func (h *grpcHost) Request(stream, direction string, peer conformance.Peer, headers []conformance.Header) (conformance.RequestOutcome, error) {
	var out conformance.RequestOutcome
	if _, ok := h.streams[stream]; ok {
		return out, fmt.Errorf("stream %q already open", stream)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	s, err := h.env.client.Process(ctx)
	if err != nil {
		cancel()
		return out, err
	}
	h.streams[stream] = &hostStream{s: s, cancel: cancel}
	a := []any{}
	switch direction {
	case "inbound":
		a = append(a, attrListenerDirection, 1)
	case "outbound":
		a = append(a, attrListenerDirection, 2)
	}
	if peer.Address != "" {
		a = append(a, attrSourceAddress, net.JoinHostPort(peer.Address, "40000"))
	}
	if peer.Principal != "" {
		a = append(a, attrPeerURISAN, peer.Principal)
	}
	in := toPairs(headers)
	before := decisionCounts(h.t, h.env.m)
	hh := pairsMap(in)
	if err := s.Send(&extprocv3.ProcessingRequest{
		Request:    &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: hh},
		Attributes: attrs(a...),
	}); err != nil {
		return out, err
	}
	resp, err := s.Recv()
	if err != nil {
		return out, err
	}
	out.Decisions = decisionDelta(before, decisionCounts(h.t, h.env.m))
	switch r := resp.Response.(type) {
	case *extprocv3.ProcessingResponse_ImmediateResponse:
		out.Reply = &conformance.Reply{Status: int(r.ImmediateResponse.GetStatus().GetCode()), Body: string(r.ImmediateResponse.GetBody())}
	case *extprocv3.ProcessingResponse_RequestHeaders:
		out.Headers = fromPairs(applyMutation(h.t, in, r.RequestHeaders.GetResponse().GetHeaderMutation()))
	default:
		return out, fmt.Errorf("reply to request headers is %T", resp.Response)
	}
	for name, v := range resp.GetDynamicMetadata().GetFields()[engine.MetadataNamespace].GetStructValue().GetFields() {
		if out.Tags == nil {
			out.Tags = map[string]string{}
		}
		out.Tags[name] = v.GetStringValue()
	}
	if extra := len(resp.GetDynamicMetadata().GetFields()); extra > 1 {
		return out, fmt.Errorf("dynamic metadata has %d namespaces, want only %q", extra, engine.MetadataNamespace)
	}
	return out, nil
}

func (h *grpcHost) Response(stream string, headers []conformance.Header) ([]conformance.Header, error) {
	hs, ok := h.streams[stream]
	if !ok {
		return nil, fmt.Errorf("stream %q is not open", stream)
	}
	in := toPairs(headers)
	if err := hs.s.Send(&extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: pairsMap(in)},
	}); err != nil {
		return nil, err
	}
	resp, err := hs.s.Recv()
	if err != nil {
		return nil, err
	}
	r, ok := resp.Response.(*extprocv3.ProcessingResponse_ResponseHeaders)
	if !ok {
		return nil, fmt.Errorf("reply to response headers is %T", resp.Response)
	}
	return fromPairs(applyMutation(h.t, in, r.ResponseHeaders.GetResponse().GetHeaderMutation())), nil
}

func (h *grpcHost) End(stream string) error {
	hs, ok := h.streams[stream]
	if !ok {
		return fmt.Errorf("stream %q is not open", stream)
	}
	delete(h.streams, stream)
	defer hs.cancel()
	before := decisionCounts(h.t, h.env.m)
	if err := hs.s.CloseSend(); err != nil {
		return err
	}
	// The server ends the stream after OnDone: EOF means the engine state
	// is released.
	if _, err := hs.s.Recv(); err == nil || err.Error() != "EOF" {
		return fmt.Errorf("end of stream: %v", err)
	}
	if d := decisionDelta(before, decisionCounts(h.t, h.env.m)); len(d) > 0 {
		return fmt.Errorf("decisions on stream end: %v", d)
	}
	return nil
}

// Compile-time check: the host is what the runner drives.
var _ conformance.ReportedSpanHost = (*grpcHost)(nil)
