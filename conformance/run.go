package conformance

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Host is one way of running the engine: the engine itself, the wasm
// filter, the ext_proc service. A Host is made per vector (a fresh
// correlation store) with the vector's policy, the file's environment and
// the file's clock.
type Host interface {
	// Request runs the request phase of a new stream and returns what
	// reaches upstream. direction is "inbound" or "outbound" (what the host
	// reports; the policy may pin another), peer what the host knows of the
	// downstream peer. Header names may be in any case: the host lower-cases
	// them as Envoy does.
	Request(stream, direction string, peer Peer, headers []Header) (RequestOutcome, error)
	// Response runs the response phase of a stream and returns the complete
	// response header list sent downstream.
	Response(stream string, headers []Header) ([]Header, error)
	// End ends a stream (Envoy's stream done / ext_proc stream close).
	End(stream string) error
}

// Peer is what a host knows of a request's downstream peer: its address
// (Envoy's source.address, "" when unknown) and its mTLS URI SAN
// (connection.uri_san_peer_certificate, "" without mTLS).
type Peer struct{ Address, Principal string }

// RequestOutcome is what a host observed for a request phase.
type RequestOutcome struct {
	// Headers is the complete request header list forwarded upstream.
	Headers []Header
	// Decisions are engine.Decision names.
	Decisions []string
	// Tags by name; TagSinks lists each tag's sinks ("header", "baggage",
	// "filterState", "metadata"). Hosts that cannot observe sinks leave
	// TagSinks nil and the runner skips that comparison.
	Tags     map[string]string
	TagSinks map[string][]string
	// Reply is the local reply, when the request was answered by the host.
	Reply *Reply
	// ClientSpan is the client span started for the request (nil: none),
	// filled by hosts that report client spans.
	ClientSpan *ClientSpan
}

// ClientSpanHost is a Host that reports client spans (policy clientSpans)
// and fills RequestOutcome.ClientSpan. Vectors whose policy enables
// clientSpans are skipped on hosts that do not.
type ClientSpanHost interface {
	Host
	ReportsClientSpans() bool
}

// ReportedSpanHost is a ClientSpanHost that learns a request's client span
// only from what the host reports when the stream has ended (the wasm
// filter's report to the collector): the runner leaves
// RequestOutcome.ClientSpan aside and compares ReportedClientSpan(stream),
// called right after End(stream), with the step's expectation.
type ReportedSpanHost interface {
	ClientSpanHost
	ReportedClientSpan(stream string) (*ClientSpan, error)
}

// Run runs every vector of f as a subtest, with a new Host per vector.
// Vectors marked knownFailure are skipped with their reason (and the log
// says when one passes, so the mark can be removed).
func Run(t *testing.T, f *File, newHost func(t *testing.T, policyName string) Host) {
	t.Helper()
	for i := range f.Vectors {
		v := &f.Vectors[i]
		t.Run(v.Name, func(t *testing.T) {
			h := newHost(t, v.Policy)
			if f.enablesClientSpans(v.Policy) {
				if ch, ok := h.(ClientSpanHost); !ok || !ch.ReportsClientSpans() {
					t.Skip("policy enables clientSpans, which this host does not report")
				}
			}
			errs := Check(v, h)
			if v.KnownFailure != "" {
				if len(errs) == 0 {
					t.Skipf("known failure %q — but the vector PASSES now: remove knownFailure", v.KnownFailure)
				}
				for _, e := range errs {
					t.Log(e)
				}
				t.Skipf("known failure: %s (%d mismatches)", v.KnownFailure, len(errs))
			}
			if v.Description != "" && len(errs) > 0 {
				t.Log(v.Description)
			}
			for _, e := range errs {
				t.Error(e)
			}
		})
	}
}

// Check runs one vector on a host and returns every mismatch.
func Check(v *Vector, h Host) []string {
	var errs []string
	b := Bindings{}
	open := map[string]bool{}
	anon := 0
	rh, _ := h.(ReportedSpanHost)
	// pending: the client span expectation of each open stream, for a host
	// that reports the span when the stream ends.
	type expectSpan struct {
		where string
		want  *ClientSpan
	}
	pending := map[string]expectSpan{}
	checkReported := func(stream string) {
		e, ok := pending[stream]
		if !ok {
			return
		}
		delete(pending, stream)
		got, err := rh.ReportedClientSpan(stream)
		if err != nil {
			errs = append(errs, e.where+": reported client span: "+err.Error())
			return
		}
		errs = append(errs, checkClientSpan(e.where, e.want, got, b)...)
	}
	for i := range v.Steps {
		s := &v.Steps[i]
		where := "step " + strconv.Itoa(i)
		fail := func(format string, args ...any) {
			errs = append(errs, where+": "+fmt.Sprintf(format, args...))
		}
		if s.End != "" {
			if err := h.End(s.End); err != nil {
				fail("end %q: %v", s.End, err)
			}
			delete(open, s.End)
			checkReported(s.End)
			continue
		}
		stream := s.Stream
		if stream == "" {
			anon++
			stream = "#" + strconv.Itoa(anon)
		}
		if s.Stream != "" {
			where += " (stream " + s.Stream + ")"
		}
		ex := s.Expect
		if ex == nil {
			ex = &Expect{}
		}
		if s.HasRequest() {
			out, err := h.Request(stream, s.Direction, Peer{Address: s.Source, Principal: s.PeerPrincipal}, s.Request)
			if err != nil {
				fail("request: %v", err)
				continue
			}
			open[stream] = true
			errs = append(errs, checkRequest(where, ex, &out, b, rh != nil)...)
			if rh != nil {
				pending[stream] = expectSpan{where, ex.ClientSpan}
			}
			if out.Reply != nil {
				// Nothing was forwarded: there is no response phase to run.
				if !s.KeepOpen {
					endStream(h, stream, open, fail)
					checkReported(stream)
				}
				continue
			}
		}
		if s.Response != nil {
			got, err := h.Response(stream, s.Response)
			if err != nil {
				fail("response: %v", err)
			} else if ex.Response != nil {
				if err := MatchHeaders(ex.Response, got, b); err != nil {
					fail("response headers: %v", err)
				}
			}
		}
		if s.HasRequest() && !s.KeepOpen {
			endStream(h, stream, open, fail)
			checkReported(stream)
		}
	}
	// Streams a vector left open are ended so hosts can release them.
	rest := make([]string, 0, len(open))
	for st := range open {
		rest = append(rest, st)
	}
	sort.Strings(rest)
	for _, st := range rest {
		_ = h.End(st)
		checkReported(st)
	}
	return errs
}

func endStream(h Host, stream string, open map[string]bool, fail func(string, ...any)) {
	if err := h.End(stream); err != nil {
		fail("end: %v", err)
	}
	delete(open, stream)
}

// checkRequest compares a request phase; reported: the client span is
// compared when the stream ends (ReportedSpanHost).
func checkRequest(where string, ex *Expect, out *RequestOutcome, b Bindings, reported bool) []string {
	var errs []string
	fail := func(format string, args ...any) {
		errs = append(errs, where+": "+fmt.Sprintf(format, args...))
	}
	if d := diffSet(ex.Decisions, out.Decisions); d != "" {
		fail("decisions: %s", d)
	}
	switch {
	case ex.Reply == nil && out.Reply != nil:
		fail("unexpected local reply %d %s", out.Reply.Status, out.Reply.Body)
	case ex.Reply != nil && out.Reply == nil:
		fail("want a local reply %d %s, the request was forwarded", ex.Reply.Status, ex.Reply.Body)
	case ex.Reply != nil:
		if ex.Reply.Status != out.Reply.Status {
			fail("reply status: got %d, want %d", out.Reply.Status, ex.Reply.Status)
		}
		if err := MatchValue(ex.Reply.Body, out.Reply.Body, b); err != nil {
			fail("reply body: %v", err)
		}
	}
	if out.Reply == nil && ex.Request != nil {
		if err := MatchHeaders(ex.Request, out.Headers, b); err != nil {
			fail("request headers: %v", err)
		}
	}
	errs = append(errs, checkTags(where, ex, out, b)...)
	if !reported {
		errs = append(errs, checkClientSpan(where, ex.ClientSpan, out.ClientSpan, b)...)
	}
	return errs
}

func checkClientSpan(where string, want, got *ClientSpan, b Bindings) []string {
	switch {
	case want == nil && got == nil:
		return nil
	case want == nil:
		return []string{fmt.Sprintf("%s: unexpected client span %+v", where, *got)}
	case got == nil:
		return []string{fmt.Sprintf("%s: want a client span %+v, none was started", where, *want)}
	}
	var errs []string
	for _, f := range []struct{ name, want, got string }{
		{"traceId", want.TraceID, got.TraceID},
		{"spanId", want.SpanID, got.SpanID},
		{"parentId", want.ParentID, got.ParentID},
		{"strategy", want.Strategy, got.Strategy},
	} {
		if err := MatchValue(f.want, f.got, b); err != nil {
			errs = append(errs, fmt.Sprintf("%s: client span %s: %v", where, f.name, err))
		}
	}
	return errs
}

// enablesClientSpans reports whether the named policy sets
// clientSpans.enabled to true.
func (f *File) enablesClientSpans(policy string) bool {
	var p struct {
		ClientSpans struct {
			Enabled bool `json:"enabled"`
		} `json:"clientSpans"`
	}
	return json.Unmarshal(f.Policies[policy], &p) == nil && p.ClientSpans.Enabled
}

func checkTags(where string, ex *Expect, out *RequestOutcome, b Bindings) []string {
	var errs []string
	names := map[string]bool{}
	for n := range ex.Tags {
		names[n] = true
	}
	for n := range out.Tags {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		w, wok := ex.Tags[n]
		g, gok := out.Tags[n]
		switch {
		case !wok:
			errs = append(errs, fmt.Sprintf("%s: unexpected tag %s=%q", where, n, g))
		case !gok:
			errs = append(errs, fmt.Sprintf("%s: missing tag %s=%q", where, n, w))
		default:
			if err := MatchValue(w, g, b); err != nil {
				errs = append(errs, fmt.Sprintf("%s: tag %s: %v", where, n, err))
			}
		}
	}
	if out.TagSinks != nil {
		for n, want := range ex.TagSinks {
			if d := diffSet(want, out.TagSinks[n]); d != "" {
				errs = append(errs, fmt.Sprintf("%s: sinks of tag %s: %s", where, n, d))
			}
		}
	}
	return errs
}

// diffSet compares two sets of names; "" when equal.
func diffSet(want, got []string) string {
	w := map[string]bool{}
	for _, s := range want {
		w[s] = true
	}
	g := map[string]bool{}
	for _, s := range got {
		g[s] = true
	}
	var missing, extra []string
	for s := range w {
		if !g[s] {
			missing = append(missing, s)
		}
	}
	for s := range g {
		if !w[s] {
			extra = append(extra, s)
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return ""
	}
	sort.Strings(missing)
	sort.Strings(extra)
	ws := append([]string(nil), want...)
	gs := append([]string(nil), got...)
	sort.Strings(ws)
	sort.Strings(gs)
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, "missing "+strings.Join(missing, ","))
	}
	if len(extra) > 0 {
		parts = append(parts, "unexpected "+strings.Join(extra, ","))
	}
	return fmt.Sprintf("%s (got [%s], want [%s])", strings.Join(parts, "; "), strings.Join(gs, " "), strings.Join(ws, " "))
}
