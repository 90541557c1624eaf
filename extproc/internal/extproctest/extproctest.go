// Package extproctest holds what the tests of the ext_proc service's
// packages share: ext_proc messages as Envoy sends them, a client's side of
// a stream, and header mutations applied as Envoy applies them. Only tests
// import it.
package extproctest

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tracebridge/tracebridge/engine"
)

// Policy parses a policy document or fails the test.
func Policy(t testing.TB, doc string) *engine.Policy {
	t.Helper()
	p, err := engine.ParsePolicy([]byte(doc))
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	return p
}

// Compiled parses and compiles a policy document or fails the test.
func Compiled(t testing.TB, doc string) *engine.Config {
	t.Helper()
	cfg, err := engine.Compile(Policy(t, doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// ValidTP is a valid W3C traceparent.
const ValidTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// Pair is one header line: name, value.
type Pair = [2]string

// HeaderMap builds an Envoy header map the way current Envoy sends it (raw_value).
func HeaderMap(kv ...string) *corev3.HeaderMap {
	hm := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return hm
}

// HeaderMapValue builds a header map the way older Envoy sends it (value).
func HeaderMapValue(kv ...string) *corev3.HeaderMap {
	hm := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], Value: kv[i+1]})
	}
	return hm
}

// Attrs builds ProcessingRequest.attributes as Envoy does: keyed by the
// filter name, one Struct field per requested attribute.
func Attrs(kv ...any) map[string]*structpb.Struct {
	fields := map[string]*structpb.Value{}
	for i := 0; i+1 < len(kv); i += 2 {
		v, err := structpb.NewValue(kv[i+1])
		if err != nil {
			panic(err)
		}
		fields[kv[i].(string)] = v
	}
	return map[string]*structpb.Struct{"envoy.filters.http.ext_proc": {Fields: fields}}
}

func RequestHeaders(hm *corev3.HeaderMap, a map[string]*structpb.Struct) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{
		Request:    &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: hm}},
		Attributes: a,
	}
}

func ResponseHeaders(hm *corev3.HeaderMap) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: hm}},
	}
}

// RoundTrip sends one message and waits for its reply.
func RoundTrip(t testing.TB, s extprocv3.ExternalProcessor_ProcessClient, req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	t.Helper()
	if err := s.Send(req); err != nil {
		t.Fatalf("send: %v", err)
	}
	resp, err := s.Recv()
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return resp
}

// OpenStream opens a stream bounded by a timeout.
func OpenStream(t testing.TB, c extprocv3.ExternalProcessorClient) (extprocv3.ExternalProcessor_ProcessClient, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	s, err := c.Process(ctx)
	if err != nil {
		cancel()
		t.Fatalf("Process: %v", err)
	}
	return s, cancel
}

// CloseStream half-closes and waits for the server to end the stream.
func CloseStream(t testing.TB, s extprocv3.ExternalProcessor_ProcessClient) {
	t.Helper()
	if err := s.CloseSend(); err != nil {
		t.Fatalf("CloseSend: %v", err)
	}
	if _, err := s.Recv(); err == nil {
		t.Fatalf("recv after CloseSend: got a message, want end of stream")
	} else if err.Error() != "EOF" {
		t.Fatalf("recv after CloseSend: %v", err)
	}
}

// HeaderPairs lists a header map as name/value pairs (value from raw_value
// or value).
func HeaderPairs(hm *corev3.HeaderMap) []Pair {
	var out []Pair
	for _, h := range hm.GetHeaders() {
		if h == nil {
			continue
		}
		v := h.Value
		if len(h.RawValue) > 0 {
			v = string(h.RawValue)
		}
		out = append(out, Pair{strings.ToLower(h.Key), v})
	}
	return out
}

// ApplyMutation applies a HeaderMutation as Envoy does with the actions we
// send: removes, then sets (OVERWRITE_IF_EXISTS_OR_ADD replaces every line).
func ApplyMutation(t testing.TB, in []Pair, hm *extprocv3.HeaderMutation) []Pair {
	t.Helper()
	out := append([]Pair(nil), in...)
	for _, r := range hm.GetRemoveHeaders() {
		out = dropName(out, r)
	}
	for _, sh := range hm.GetSetHeaders() {
		if sh.AppendAction != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Errorf("set %s: append_action %v, want OVERWRITE_IF_EXISTS_OR_ADD", sh.Header.GetKey(), sh.AppendAction)
		}
		if sh.Header.GetValue() != "" && len(sh.Header.GetRawValue()) > 0 {
			t.Errorf("set %s: both value and raw_value set (Envoy rejects that)", sh.Header.GetKey())
		}
		v := sh.Header.GetValue()
		if len(sh.Header.GetRawValue()) > 0 {
			v = string(sh.Header.GetRawValue())
		}
		out = append(dropName(out, sh.Header.GetKey()), Pair{sh.Header.GetKey(), v})
	}
	return out
}

func dropName(in []Pair, name string) []Pair {
	out := in[:0]
	for _, p := range in {
		if p[0] != name {
			out = append(out, p)
		}
	}
	return out
}

func HeaderValue(hs []Pair, name string) (string, bool) {
	for _, p := range hs {
		if p[0] == name {
			return p[1], true
		}
	}
	return "", false
}

// SyncBuffer is a goroutine-safe log sink.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func WaitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
