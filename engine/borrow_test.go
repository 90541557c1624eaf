package engine

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tracebridge/tracebridge/propagation"
)

// fixedIDs makes every generated id the same, so two runs compare equal.
type fixedIDs struct{}

func (fixedIDs) TraceID() propagation.TraceID { return propagation.TraceID{1, 2, 3} }
func (fixedIDs) SpanID() propagation.SpanID   { return propagation.SpanID{4, 5, 6} }

// TestBorrowValues checks that borrowed mutation values equal the copied
// ones, on the request and the response, for recorded and restored requests,
// read before the result is used again (the contract of BorrowValues).
func TestBorrowValues(t *testing.T) {
	outbound := HeaderList{{":path", "/details"}, {"x-request-id", "7f3e8b0c-1d2a-4c4b-9a55-0e6f1c2d3b4a"}}
	tests := []struct {
		name string
		h    HeaderList
		dir  Direction
	}{
		{"w3c inbound", benchRequests["a_valid_w3c"], Inbound},
		{"b3 multi inbound", benchRequests["b_valid_b3multi"], Inbound},
		{"inject", benchRequests["c_no_context_inject"], Inbound},
		{"repair", benchRequests["d_invalid_repair"], Inbound},
		{"restore outbound", outbound, Outbound},
	}
	// clone copies mutations with their values, as an adapter applying them
	// to the host does.
	clone := func(ms []Mutation) []Mutation {
		out := slices.Clone(ms)
		for i := range out {
			out[i].Value = strings.Clone(out[i].Value)
		}
		return out
	}
	run := func(borrow bool, h HeaderList, dir Direction) (req, resp []Mutation) {
		store := NewMemoryStore(64, time.Minute, nil)
		cfg, err := LoadPolicy([]byte(`{}`), nil)
		if err != nil {
			t.Fatal(err)
		}
		e := New(cfg, Options{Store: store, IDs: fixedIDs{}})
		res := Result{BorrowValues: borrow}
		var st Stream
		e.OnRequest(&st, &Request{Headers: benchRequests["a_valid_w3c"], Direction: Inbound}, &res) // a record to restore
		st = Stream{}
		e.OnRequest(&st, &Request{Headers: h, Direction: dir}, &res)
		req = clone(res.Mutations)
		e.OnResponse(&st, HeaderList{{":status", "200"}}, &res)
		return req, clone(res.Mutations)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantReq, wantResp := run(false, tt.h, tt.dir)
			gotReq, gotResp := run(true, tt.h, tt.dir)
			if len(wantReq) == 0 {
				t.Fatal("no request mutations: the case checks nothing")
			}
			if !slices.Equal(gotReq, wantReq) || !slices.Equal(gotResp, wantResp) {
				t.Errorf("borrowed values differ:\nrequest  %+v\nwant     %+v\nresponse %+v\nwant     %+v", gotReq, wantReq, gotResp, wantResp)
			}
		})
	}
}
