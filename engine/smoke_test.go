package engine

import (
	"testing"
)

func TestSmoke(t *testing.T) {
	cfg, err := Compile(DefaultPolicy(), nil)
	if err != nil {
		t.Fatal(err)
	}
	store := NewMemoryStore(16, 30e9, nil)
	e := New(cfg, Options{Store: store})
	in := testHeaders{"traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, "x-request-id": {"r1"}}
	var st Stream
	var res Result
	e.OnRequest(&st, &Request{Headers: in, Direction: Inbound}, &res)
	t.Logf("inbound: %+v decisions=%b", res.Mutations, res.Decisions)
	out := testHeaders{"x-request-id": {"r1"}}
	var st2 Stream
	e.OnRequest(&st2, &Request{Headers: out, Direction: Outbound}, &res)
	t.Logf("outbound: %+v decisions=%b", res.Mutations, res.Decisions)
	e.OnResponse(&st, testHeaders{}, &res)
	t.Logf("response: %+v", res.Mutations)
}
