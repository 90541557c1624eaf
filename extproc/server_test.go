package extproc

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	procmodev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tracebridge/tracebridge/engine"
	"github.com/tracebridge/tracebridge/extproc/internal/extproctest"
)

const (
	validTP  = extproctest.ValidTP
	validTID = "4bf92f3577b34da6a3ce929d0e0e4736"
)

// TestRequestHeaders drives the request phase through a real client and
// checks what Envoy would forward.
func TestRequestHeaders(t *testing.T) {
	cases := []struct {
		name      string
		policy    string
		in        []string // name, value pairs
		attrs     []any
		decisions []string
		check     func(t *testing.T, out []pair, resp *extprocv3.ProcessingResponse)
	}{
		{
			name: "valid traceparent kept", in: []string{"traceparent", validTP, "x-request-id", "r1"},
			decisions: []string{"recorded", "translated"},
			check: func(t *testing.T, out []pair, _ *extprocv3.ProcessingResponse) {
				if v, _ := headerValue(out, "traceparent"); v != validTP {
					t.Errorf("traceparent = %q", v)
				}
				if v, _ := headerValue(out, "x-b3-traceid"); v != validTID {
					t.Errorf("x-b3-traceid = %q, want the translated trace id", v)
				}
			},
		},
		{
			name: "no context: injected", in: []string{":path", "/", "x-request-id", "r2"},
			decisions: []string{"injected", "recorded"},
			check: func(t *testing.T, out []pair, _ *extprocv3.ProcessingResponse) {
				v, ok := headerValue(out, "traceparent")
				if !ok || len(v) != 55 || !strings.HasPrefix(v, "00-") {
					t.Errorf("traceparent = %q, want a new W3C context", v)
				}
			},
		},
		{
			name: "malformed traceparent repaired from b3", in: []string{"traceparent", "00-zz", "x-b3-traceid", validTID, "x-b3-spanid", "00f067aa0ba902b7", "x-b3-sampled", "1"},
			check: func(t *testing.T, out []pair, _ *extprocv3.ProcessingResponse) {
				if v, _ := headerValue(out, "traceparent"); !strings.Contains(v, validTID) {
					t.Errorf("traceparent = %q, want it rebuilt from B3", v)
				}
			},
		},
		{
			name: "reject policy answers 400", policy: `{"invalid":"reject"}`, in: []string{"traceparent", "00-zz"},
			decisions: []string{"rejected"},
			check: func(t *testing.T, _ []pair, resp *extprocv3.ProcessingResponse) {
				ir := resp.GetImmediateResponse()
				if ir == nil {
					t.Fatalf("reply %T, want ImmediateResponse", resp.Response)
				}
				if ir.GetStatus().GetCode() != 400 {
					t.Errorf("status %v", ir.GetStatus().GetCode())
				}
				var body map[string]string
				if err := json.Unmarshal(ir.Body, &body); err != nil || body["header"] != "traceparent" || body["reason"] == "" {
					t.Errorf("body %s (%v): want JSON naming the header and the rule", ir.Body, err)
				}
				ct := ir.GetHeaders().GetSetHeaders()
				if len(ct) != 1 || ct[0].Header.Key != "content-type" || string(ct[0].Header.RawValue) != "application/json" {
					t.Errorf("reply headers %v", ct)
				}
			},
		},
		{
			name:   "metadata tags",
			policy: `{"tags":[{"name":"tenant","from":{"header":"x-tenant"},"to":["metadata"]},{"name":"env","from":{"literal":"prod"},"to":["header","metadata"]}]}`,
			in:     []string{"traceparent", validTP, "x-tenant", "acme"},
			check: func(t *testing.T, out []pair, resp *extprocv3.ProcessingResponse) {
				ns := resp.GetDynamicMetadata().GetFields()[engine.MetadataNamespace].GetStructValue().GetFields()
				if ns["tenant"].GetStringValue() != "acme" || ns["env"].GetStringValue() != "prod" {
					t.Errorf("metadata %v", resp.GetDynamicMetadata())
				}
				if v, _ := headerValue(out, "x-tracebridge-env"); v != "prod" {
					t.Errorf("header sink: x-tracebridge-env = %q", v)
				}
			},
		},
		{
			name:   "forbidden header sinks never reach Envoy",
			policy: `{"tags":[{"name":"a","from":{"literal":"1"},"to":["header"],"header":"x-envoy-force-trace"},{"name":"b","from":{"literal":"2"},"to":["header"],"header":"host"}]}`,
			in:     []string{"traceparent", validTP, "host", "example.com", ":authority", "example.com"},
			check: func(t *testing.T, _ []pair, resp *extprocv3.ProcessingResponse) {
				for _, sh := range resp.GetRequestHeaders().GetResponse().GetHeaderMutation().GetSetHeaders() {
					if forbidden(sh.Header.Key, false) {
						t.Errorf("forbidden header %q set", sh.Header.Key)
					}
				}
			},
		},
		{
			name:   "x-envoy-force-trace removal needs --allow-envoy-headers",
			policy: `{"trust":{"untrustedDirections":["inbound"],"action":"strip"}}`,
			in:     []string{"traceparent", validTP, "x-envoy-force-trace", "true"},
			check: func(t *testing.T, out []pair, _ *extprocv3.ProcessingResponse) {
				if _, ok := headerValue(out, "x-envoy-force-trace"); !ok {
					t.Errorf("x-envoy-force-trace removed although Envoy's default mutation_rules forbid it")
				}
			},
		},
		{
			name:   "untrusted source address from attributes",
			policy: `{"trust":{"untrustedCIDRs":["203.0.113.0/24"],"action":"restart"}}`,
			in:     []string{"traceparent", validTP},
			attrs:  []any{attrSourceAddress, "203.0.113.7:5555"},
			check: func(t *testing.T, out []pair, resp *extprocv3.ProcessingResponse) {
				if v, _ := headerValue(out, "traceparent"); strings.Contains(v, validTID) {
					t.Errorf("traceparent %q kept from an untrusted source", v)
				}
				ns := resp.GetDynamicMetadata().GetFields()[engine.MetadataNamespace].GetStructValue().GetFields()
				if ns[engine.UntrustedTraceIDTag].GetStringValue() != validTID {
					t.Errorf("metadata %v: want the client's trace id kept", ns)
				}
			},
		},
		{
			name:   "trusted source address",
			policy: `{"trust":{"untrustedCIDRs":["203.0.113.0/24"],"action":"restart"}}`,
			in:     []string{"traceparent", validTP},
			attrs:  []any{attrSourceAddress, "10.1.2.3:5555"},
			check: func(t *testing.T, out []pair, _ *extprocv3.ProcessingResponse) {
				if v, _ := headerValue(out, "traceparent"); v != validTP {
					t.Errorf("traceparent %q, want it kept", v)
				}
			},
		},
	}
	for _, tr := range transports {
		for _, tc := range cases {
			t.Run(tr+"/"+tc.name, func(t *testing.T) {
				env := startServer(t, tr, tc.policy, Options{})
				s, cancel := openStream(t, env.client)
				defer cancel()
				before := decisionCounts(t, env.m)
				var a map[string]*structpb.Struct
				if tc.attrs != nil {
					a = attrs(tc.attrs...)
				}
				in := headerPairs(hmap(tc.in...))
				resp := roundTrip(t, s, reqHeadersMsg(hmap(tc.in...), a))
				got := decisionDelta(before, decisionCounts(t, env.m))
				if tc.decisions != nil && strings.Join(got, ",") != strings.Join(tc.decisions, ",") {
					t.Errorf("decisions %v, want %v", got, tc.decisions)
				}
				out := applyMutation(t, in, resp.GetRequestHeaders().GetResponse().GetHeaderMutation())
				tc.check(t, out, resp)
				if resp.GetImmediateResponse() == nil {
					closeStream(t, s)
				}
			})
		}
	}
}

// TestValueField: header values arriving in value (older Envoy) are read,
// and the mutations are sent in value too; raw_value in, raw_value out.
func TestValueField(t *testing.T) {
	for _, tc := range []struct {
		name string
		hm   *corev3.HeaderMap
		raw  bool
	}{
		{"raw_value", hmap("traceparent", "00-zz", "x-request-id", "a"), true},
		{"value", hmapValue("traceparent", "00-zz", "x-request-id", "a"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := startServer(t, "bufconn", "", Options{})
			s, cancel := openStream(t, env.client)
			defer cancel()
			resp := roundTrip(t, s, reqHeadersMsg(tc.hm, nil))
			sets := resp.GetRequestHeaders().GetResponse().GetHeaderMutation().GetSetHeaders()
			if len(sets) == 0 {
				t.Fatal("no set_headers for a malformed traceparent")
			}
			for _, sh := range sets {
				if got := len(sh.Header.RawValue) > 0; got != tc.raw || (sh.Header.Value != "") == tc.raw {
					t.Errorf("%s: value=%q raw_value=%q, want only the %s field", sh.Header.Key, sh.Header.Value, sh.Header.RawValue, tc.name)
				}
			}
			closeStream(t, s)
		})
	}
}

// TestResponseTraceMetric: the response phase adds the server-timing trace
// metric from the context decided on the request after the app's metrics,
// and leaves an app's own trace metric alone.
func TestResponseTraceMetric(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			env := startServer(t, tr, "", Options{})
			for _, tc := range []struct {
				name string
				resp []string
				want string
			}{
				{"added", []string{":status", "200"}, "trace;desc=00-" + validTID + "-"},
				{"after the app's metrics", []string{":status", "200", "server-timing", "db;dur=53", "server-timing", "app;dur=1"}, "db;dur=53,app;dur=1, trace;desc=00-" + validTID + "-"},
				{"app's own kept", []string{":status", "200", "server-timing", "trace;desc=00-11111111111111111111111111111111-2222222222222222-01"}, ""},
			} {
				s, cancel := openStream(t, env.client)
				roundTrip(t, s, reqHeadersMsg(hmap("traceparent", validTP), nil))
				resp := roundTrip(t, s, respHeadersMsg(hmap(tc.resp...)))
				rh := resp.GetResponseHeaders()
				if rh == nil {
					t.Fatalf("%s: reply %T", tc.name, resp.Response)
				}
				sets := rh.GetResponse().GetHeaderMutation().GetSetHeaders()
				switch {
				case tc.want == "" && len(sets) != 0:
					t.Errorf("%s: set %v", tc.name, sets)
				case tc.want != "" && (len(sets) != 1 || sets[0].Header.Key != "server-timing" || !strings.HasPrefix(string(sets[0].Header.RawValue), tc.want)):
					t.Errorf("%s: set %v, want server-timing %s...", tc.name, sets, tc.want)
				}
				closeStream(t, s)
				cancel()
			}
		})
	}
}

// TestDirectionAttribute: xds.listener_direction picks the direction when the
// policy says auto; an outbound request restores the inbound record.
func TestDirectionAttribute(t *testing.T) {
	env := startServer(t, "bufconn", "", Options{})
	in, cancel := openStream(t, env.client)
	defer cancel()
	roundTrip(t, in, reqHeadersMsg(hmap("traceparent", validTP, "x-request-id", "req-7"), attrs(attrListenerDirection, 1)))
	out, cancel2 := openStream(t, env.client)
	defer cancel2()
	before := decisionCounts(t, env.m)
	resp := roundTrip(t, out, reqHeadersMsg(hmap("x-request-id", "req-7"), attrs(attrListenerDirection, 2)))
	if d := decisionDelta(before, decisionCounts(t, env.m)); strings.Join(d, ",") != "restored" {
		t.Errorf("outbound decisions %v, want [restored]", d)
	}
	got := applyMutation(t, headerPairs(hmap("x-request-id", "req-7")), resp.GetRequestHeaders().GetResponse().GetHeaderMutation())
	if v, _ := headerValue(got, "traceparent"); v != validTP {
		t.Errorf("restored traceparent %q", v)
	}
	closeStream(t, out)
	closeStream(t, in)
}

// TestUnexpectedMessages: every message kind gets a defined reply, in any
// order, and none hangs.
func TestUnexpectedMessages(t *testing.T) {
	body := func(b string, eos bool) *extprocv3.HttpBody {
		return &extprocv3.HttpBody{Body: []byte(b), EndOfStream: eos}
	}
	type step struct {
		req  *extprocv3.ProcessingRequest
		want string // reply kind, "" for none, "error:<code>" for a stream error
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"response headers first", []step{
			{respHeadersMsg(hmap(":status", "200")), "response_headers"},
			{reqHeadersMsg(hmap("traceparent", validTP), nil), "request_headers"},
		}},
		{"request headers twice", []step{
			{reqHeadersMsg(hmap("traceparent", validTP), nil), "request_headers"},
			{reqHeadersMsg(hmap("traceparent", validTP), nil), "request_headers"},
			{respHeadersMsg(hmap(":status", "200")), "response_headers"},
			{respHeadersMsg(hmap(":status", "200")), "response_headers"},
		}},
		{"bodies and trailers", []step{
			{reqHeadersMsg(hmap(), nil), "request_headers"},
			{&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: body("abc", true)}}, "request_body"},
			{&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestTrailers{RequestTrailers: &extprocv3.HttpTrailers{}}}, "request_trailers"},
			{respHeadersMsg(hmap(":status", "200")), "response_headers"},
			{&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: body("x", true)}}, "response_body"},
			{&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseTrailers{ResponseTrailers: &extprocv3.HttpTrailers{}}}, "response_trailers"},
		}},
		{"flow control only, then headers", []step{
			{&extprocv3.ProcessingRequest{ClientWindowUpdate: &extprocv3.ProcessingRequest_ClientWindowUpdate{}}, ""},
			{reqHeadersMsg(hmap(), nil), "request_headers"},
		}},
		{"observability mode gets no reply", []step{
			{&extprocv3.ProcessingRequest{ObservabilityMode: true, Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: hmap()}}}, ""},
			{reqHeadersMsg(hmap(), nil), "request_headers"},
		}},
		{"empty request ends the stream", []step{
			{&extprocv3.ProcessingRequest{}, "error:InvalidArgument"},
		}},
		{"nil header map", []step{
			{&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{}}, "request_headers"},
			{&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{}}, "response_headers"},
		}},
	}
	kindOf := func(r *extprocv3.ProcessingResponse) string {
		switch r.Response.(type) {
		case *extprocv3.ProcessingResponse_RequestHeaders:
			return "request_headers"
		case *extprocv3.ProcessingResponse_ResponseHeaders:
			return "response_headers"
		case *extprocv3.ProcessingResponse_RequestBody:
			return "request_body"
		case *extprocv3.ProcessingResponse_ResponseBody:
			return "response_body"
		case *extprocv3.ProcessingResponse_RequestTrailers:
			return "request_trailers"
		case *extprocv3.ProcessingResponse_ResponseTrailers:
			return "response_trailers"
		}
		return "other"
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := startServer(t, "bufconn", "", Options{})
			s, cancel := openStream(t, env.client)
			defer cancel()
			for i, st := range tc.steps {
				if err := s.Send(st.req); err != nil {
					t.Fatalf("step %d send: %v", i, err)
				}
				if st.want == "" {
					continue
				}
				resp, err := s.Recv()
				if code, ok := strings.CutPrefix(st.want, "error:"); ok {
					if status.Code(err).String() != code {
						t.Fatalf("step %d: %v, want a %s stream error", i, err, code)
					}
					return
				}
				if err != nil {
					t.Fatalf("step %d recv: %v", i, err)
				}
				if got := kindOf(resp); got != st.want {
					t.Fatalf("step %d: reply %s, want %s", i, got, st.want)
				}
				if cr := resp.GetRequestBody().GetResponse(); cr != nil && cr.Status != extprocv3.CommonResponse_CONTINUE {
					t.Errorf("step %d: body status %v", i, cr.Status)
				}
			}
			closeStream(t, s)
			if n := env.srv.OpenStreams(); n != 0 {
				t.Errorf("open streams %d after close", n)
			}
		})
	}
}

// TestFullDuplexBody: in FULL_DUPLEX_STREAMED mode a body chunk is streamed
// back unchanged (CONTINUE would drop it).
func TestFullDuplexBody(t *testing.T) {
	env := startServer(t, "bufconn", "", Options{})
	s, cancel := openStream(t, env.client)
	defer cancel()
	first := reqHeadersMsg(hmap(), nil)
	first.ProtocolConfig = &extprocv3.ProtocolConfiguration{RequestBodyMode: procmodev3.ProcessingMode_FULL_DUPLEX_STREAMED}
	roundTrip(t, s, first)
	resp := roundTrip(t, s, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: []byte("chunk"), EndOfStream: true}}})
	sr := resp.GetRequestBody().GetResponse().GetBodyMutation().GetStreamedResponse()
	if string(sr.GetBody()) != "chunk" || !sr.GetEndOfStream() {
		t.Errorf("streamed response %v", sr)
	}
	closeStream(t, s)
}

// TestCancelMidStream: a client that goes away after the request headers
// releases the engine state (the sole-in-flight entry) exactly once.
func TestCancelMidStream(t *testing.T) {
	store := engine.NewMemoryStore(64, time.Minute, nil)
	env := startServer(t, "tcp", `{"correlation":{"strategies":["key","soleInFlight"]}}`, Options{Stores: fixedStore{store}})
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		s, err := env.client.Process(ctx)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, s, reqHeadersMsg(hmap("traceparent", validTP), attrs(attrListenerDirection, 1)))
		if n, _, _, _ := store.Sole(nil); n != 1 {
			t.Fatalf("in flight %d during the stream, want 1", n)
		}
		cancel()
		waitFor(t, func() bool { n, _, _, _ := store.Sole(nil); return n == 0 && env.srv.OpenStreams() == 0 })
	}
}

// fixedStore provides one store whatever the policy.
type fixedStore struct{ s engine.Store }

func (f fixedStore) StoreFor(*engine.Config) engine.Store { return f.s }
func (f fixedStore) Close() error                         { return nil }

// panicStore panics in every call: a bug anywhere under a handler.
type panicStore struct{}

func (panicStore) Put(string, []byte) error                   { panic("put exploded") }
func (panicStore) Get([]byte, string) ([]byte, bool, error)   { panic("get exploded") }
func (panicStore) Enter(uint64, []byte) error                 { panic("enter exploded") }
func (panicStore) Leave(uint64) error                         { panic("leave exploded") }
func (panicStore) Sole([]byte) (int, []byte, bool, error)     { panic("sole exploded") }
func (errStore) Put(string, []byte) error                     { return errors.New("down") }
func (errStore) Get(d []byte, _ string) ([]byte, bool, error) { return d, false, errors.New("down") }
func (errStore) Enter(uint64, []byte) error                   { return errors.New("down") }
func (errStore) Leave(uint64) error                           { return errors.New("down") }
func (errStore) Sole(d []byte) (int, []byte, bool, error)     { return 0, d, false, errors.New("down") }

// errStore fails every call.
type errStore struct{}

// TestFailOpen: a panicking or failing store never breaks a request: the
// reply is CONTINUE (unchanged headers on panic), errors are counted.
func TestFailOpen(t *testing.T) {
	policy := `{"correlation":{"strategies":["key","soleInFlight"]}}`
	t.Run("panic", func(t *testing.T) {
		env := startServer(t, "bufconn", policy, Options{Stores: fixedStore{panicStore{}}})
		s, cancel := openStream(t, env.client)
		defer cancel()
		resp := roundTrip(t, s, reqHeadersMsg(hmap("traceparent", validTP, "x-request-id", "p"), nil))
		if resp.GetRequestHeaders() == nil || resp.GetRequestHeaders().GetResponse() != nil {
			t.Errorf("reply %v, want a plain CONTINUE", resp)
		}
		roundTrip(t, s, respHeadersMsg(hmap(":status", "200")))
		closeStream(t, s)
		if p := counterByLabel(t, env.m, "tracebridge_extproc_panics_total", ""); p[""] < 1 {
			t.Errorf("panics_total %v", p)
		}
		if d := decisionCounts(t, env.m); d["error"] < 1 {
			t.Errorf("decisions %v, want error counted", d)
		}
		if !strings.Contains(env.log.String(), "recovered panic") {
			t.Errorf("panic not logged: %s", env.log.String())
		}
	})
	t.Run("store errors", func(t *testing.T) {
		env := startServer(t, "bufconn", policy, Options{Stores: fixedStore{errStore{}}})
		for i := 0; i < 5; i++ {
			s, cancel := openStream(t, env.client)
			resp := roundTrip(t, s, reqHeadersMsg(hmap("x-request-id", "e"), attrs(attrListenerDirection, 2)))
			if resp.GetRequestHeaders() == nil {
				t.Fatalf("reply %T", resp.Response)
			}
			closeStream(t, s)
			cancel()
		}
		errs := counterByLabel(t, env.m, "tracebridge_extproc_store_errors_total", "op")
		if errs["get"] < 5 {
			t.Errorf("store errors %v", errs)
		}
		if n := strings.Count(env.log.String(), "correlation store error"); n < 1 || n > 2 {
			t.Errorf("%d store error log lines for 5+ errors within a second, want rate-limited to 1-2", n)
		}
	})
}

// TestHugeHeaders: 1 MiB values and 10k headers get a defined answer, and
// memory stays bounded over repeated requests.
func TestHugeHeaders(t *testing.T) {
	env := startServer(t, "bufconn", "", Options{})
	big := strings.Repeat("a", 1<<20)
	many := make([]string, 0, 20000)
	for i := 0; i < 10000; i++ {
		many = append(many, "x-h", "v")
	}
	manyTP := make([]string, 0, 20000)
	for i := 0; i < 10000; i++ {
		manyTP = append(manyTP, "traceparent", validTP)
	}
	cases := []struct {
		name string
		hm   *corev3.HeaderMap
		want func(t *testing.T, out []pair)
	}{
		{"1 MiB traceparent", hmap("traceparent", big), func(t *testing.T, out []pair) {
			if v, _ := headerValue(out, "traceparent"); len(v) != 55 {
				t.Errorf("traceparent not replaced (len %d)", len(v))
			}
		}},
		{"1 MiB baggage", hmap("traceparent", validTP, "baggage", "k="+big), func(t *testing.T, out []pair) {
			if v, _ := headerValue(out, "baggage"); len(v) > 8192 {
				t.Errorf("baggage of %d bytes forwarded", len(v))
			}
		}},
		{"1 MiB x-request-id", hmap("traceparent", validTP, "x-request-id", big), func(t *testing.T, out []pair) {}},
		{"10k headers", hmap(append(many, "traceparent", validTP)...), func(t *testing.T, out []pair) {
			if v, _ := headerValue(out, "traceparent"); v != validTP {
				t.Errorf("traceparent %q", v)
			}
		}},
		{"10k traceparent lines", hmap(manyTP...), func(t *testing.T, out []pair) {
			n := 0
			for _, p := range out {
				if p[0] == "traceparent" {
					n++
				}
			}
			if n > 1 {
				t.Errorf("%d traceparent lines forwarded, want at most one", n)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var heap0 uint64
			for i := 0; i < 8; i++ {
				s, cancel := openStream(t, env.client)
				resp := roundTrip(t, s, reqHeadersMsg(tc.hm, nil))
				if resp.GetRequestHeaders() == nil {
					t.Fatalf("reply %T", resp.Response)
				}
				if i == 0 {
					tc.want(t, applyMutation(t, headerPairs(tc.hm), resp.GetRequestHeaders().GetResponse().GetHeaderMutation()))
				}
				closeStream(t, s)
				cancel()
				if i == 1 {
					heap0 = heapInUse()
				}
			}
			if grown := int64(heapInUse()) - int64(heap0); grown > 16<<20 {
				t.Errorf("heap grew by %d MiB over 6 requests", grown>>20)
			}
		})
	}
	t.Run("over the message limit", func(t *testing.T) {
		s, cancel := openStream(t, env.client)
		defer cancel()
		if err := s.Send(reqHeadersMsg(hmap("a", strings.Repeat("b", 9<<20)), nil)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); status.Code(err) != codes.ResourceExhausted {
			t.Errorf("recv %v, want RESOURCE_EXHAUSTED", err)
		}
	})
}

// TestMalformedHeaders: header maps Envoy would not send still get a defined
// answer, and nothing invalid is sent back.
func TestMalformedHeaders(t *testing.T) {
	cases := []struct {
		name string
		hm   *corev3.HeaderMap
		want func(t *testing.T, out []pair)
	}{
		{"upper-case names", &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "TraceParent", RawValue: []byte(validTP)}}}, func(t *testing.T, out []pair) {
			if v, _ := headerValue(out, "x-b3-traceid"); v != validTID {
				t.Errorf("upper-case traceparent not read: %v", out)
			}
		}},
		{"nil entries", &corev3.HeaderMap{Headers: []*corev3.HeaderValue{nil, {Key: "traceparent", RawValue: []byte(validTP)}, nil}}, func(t *testing.T, out []pair) {}},
		{"empty name", &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "", RawValue: []byte("x")}}}, func(t *testing.T, out []pair) {}},
		{"control bytes in traceparent", hmap("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nx: y"), func(t *testing.T, out []pair) {
			if v, _ := headerValue(out, "traceparent"); !validValue(v) || len(v) != 55 {
				t.Errorf("traceparent %q", v)
			}
		}},
		{"NUL in baggage", hmap("traceparent", validTP, "baggage", "k=v\x00w"), func(t *testing.T, out []pair) {}},
		{"non-UTF-8 bytes", hmap("traceparent", "\xff\xfe", "tracestate", "\xc3\x28"), func(t *testing.T, out []pair) {}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := startServer(t, "bufconn", "", Options{})
			s, cancel := openStream(t, env.client)
			defer cancel()
			resp := roundTrip(t, s, reqHeadersMsg(tc.hm, nil))
			hm := resp.GetRequestHeaders().GetResponse().GetHeaderMutation()
			for _, sh := range hm.GetSetHeaders() {
				if !validName(sh.Header.Key) || !validValue(string(sh.Header.RawValue)) {
					t.Errorf("invalid mutation sent: %q: %q", sh.Header.Key, sh.Header.RawValue)
				}
			}
			tc.want(t, applyMutation(t, headerPairs(tc.hm), hm))
			roundTrip(t, s, respHeadersMsg(hmap(":status", "200")))
			closeStream(t, s)
		})
	}
}

// TestValueFieldUTF8: in value mode (a proto3 string field) a mutation
// value that is not UTF-8 must not make the reply unmarshallable.
func TestValueFieldUTF8(t *testing.T) {
	srv, err := NewServer(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ps := &procStream{s: srv, valueField: true}
	hm := ps.mutation([]engine.Mutation{{Op: engine.OpSet, Name: "baggage", Value: "k=\xff\xfe"}})
	if _, err := proto.Marshal(hm); err != nil {
		t.Fatalf("marshal: %v", err)
	}
	if v := hm.SetHeaders[0].Header.Value; !utf8.ValidString(v) {
		t.Errorf("value %q", v)
	}
}
