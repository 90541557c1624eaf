package conformance_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tracebridge/tracebridge/conformance"
	"github.com/tracebridge/tracebridge/engine"
)

// TestEngine runs every vector against the engine itself.
func TestEngine(t *testing.T) {
	f, err := conformance.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	conformance.Run(t, f, func(t *testing.T, policy string) conformance.Host {
		p, err := engine.ParsePolicy(f.Policy(policy))
		if err != nil {
			t.Fatalf("policy %q: %v", policy, err)
		}
		cfg, err := engine.Compile(p, f.Getenv)
		if err != nil {
			t.Fatalf("policy %q: %v", policy, err)
		}
		clock := f.Clock()
		now := func() time.Time { return clock }
		store := engine.NewMemoryStore(cfg.Capacity, cfg.TTL, now)
		return &engineHost{
			e:       engine.New(cfg, engine.Options{Store: store, Now: now, ReportsClientSpans: true}),
			streams: map[string]*engine.Stream{},
		}
	})
}

// engineHost drives the engine the way an adapter does: lower-case names,
// mutations applied to the header list.
type engineHost struct {
	e       *engine.Engine
	streams map[string]*engine.Stream
}

func toList(in []conformance.Header) engine.HeaderList {
	l := make(engine.HeaderList, len(in))
	for i, h := range in {
		l[i] = engine.HeaderPair{Name: strings.ToLower(h[0]), Value: h[1]}
	}
	return l
}

// apply returns the header list after the result's mutations: a set
// replaces every line of its name, a remove drops them.
func apply(l engine.HeaderList, res *engine.Result) []conformance.Header {
	for _, m := range res.Mutations {
		kept := l[:0:0]
		for _, p := range l {
			if p.Name != m.Name {
				kept = append(kept, p)
			}
		}
		if m.Op == engine.OpSet {
			kept = append(kept, engine.HeaderPair{Name: m.Name, Value: m.Value})
		}
		l = kept
	}
	out := make([]conformance.Header, len(l))
	for i, p := range l {
		out[i] = conformance.Header{p.Name, p.Value}
	}
	return out
}

var sinkNames = []struct {
	s    engine.Sink
	name string
}{
	{engine.SinkHeader, "header"}, {engine.SinkBaggage, "baggage"},
	{engine.SinkFilterState, "filterState"}, {engine.SinkMetadata, "metadata"},
}

func (h *engineHost) Request(stream, direction string, peer conformance.Peer, headers []conformance.Header) (conformance.RequestOutcome, error) {
	var out conformance.RequestOutcome
	if _, ok := h.streams[stream]; ok {
		return out, fmt.Errorf("stream %q already open", stream)
	}
	st := &engine.Stream{}
	h.streams[stream] = st
	req := &engine.Request{Headers: toList(headers)}
	switch direction {
	case "inbound":
		req.Direction = engine.Inbound
	case "outbound":
		req.Direction = engine.Outbound
	}
	if peer.Address != "" {
		a, err := netip.ParseAddr(peer.Address)
		if err != nil {
			return out, err
		}
		req.Source = a
	}
	req.PeerPrincipal = peer.Principal
	var res engine.Result
	h.e.OnRequest(st, req, &res)
	res.Decisions.Each(func(d engine.Decision) { out.Decisions = append(out.Decisions, d.String()) })
	if res.Reply != nil {
		out.Reply = &conformance.Reply{Status: res.Reply.Status, Body: res.Reply.Body}
		return out, nil
	}
	out.Headers = apply(req.Headers.(engine.HeaderList), &res)
	if cs := &res.ClientSpan; cs.Valid() {
		out.ClientSpan = &conformance.ClientSpan{
			TraceID: cs.TraceID.String(), SpanID: cs.SpanID.String(), Strategy: cs.Strategy.String(),
		}
		if !cs.ParentID.IsZero() {
			out.ClientSpan.ParentID = cs.ParentID.String()
		}
	}
	for _, tg := range res.Tags {
		if out.Tags == nil {
			out.Tags, out.TagSinks = map[string]string{}, map[string][]string{}
		}
		out.Tags[tg.Name] = tg.Value
		for _, s := range sinkNames {
			if tg.Sinks&s.s != 0 {
				out.TagSinks[tg.Name] = append(out.TagSinks[tg.Name], s.name)
			}
		}
	}
	return out, nil
}

// ReportsClientSpans: the engine host observes every client span started.
func (h *engineHost) ReportsClientSpans() bool { return true }

func (h *engineHost) Response(stream string, headers []conformance.Header) ([]conformance.Header, error) {
	st, ok := h.streams[stream]
	if !ok {
		return nil, fmt.Errorf("stream %q is not open", stream)
	}
	l := toList(headers)
	var res engine.Result
	h.e.OnResponse(st, l, &res)
	return apply(l, &res), nil
}

func (h *engineHost) End(stream string) error {
	st, ok := h.streams[stream]
	if !ok {
		return fmt.Errorf("stream %q is not open", stream)
	}
	delete(h.streams, stream)
	if d := h.e.OnDone(st); d.Has(engine.DecisionError) {
		return fmt.Errorf("store error on stream end")
	}
	return nil
}
