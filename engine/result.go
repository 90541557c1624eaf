package engine

import (
	"unsafe"

	"github.com/tracebridge/tracebridge/propagation"
)

// Decision is one kind of thing the engine did; adapters count each as a
// metric (tracebridge_decisions_total{decision=...}).
type Decision uint8

const (
	DecisionKept Decision = iota
	DecisionInjected
	DecisionRepaired
	DecisionRestarted
	DecisionTranslated
	DecisionRestored
	DecisionAmbiguous
	DecisionRejected
	DecisionTagged
	DecisionError
	DecisionStripped
	DecisionRecorded
	// DecisionSanitized: a tag value had characters removed (control
	// characters, invalid UTF-8, bidirectional controls, U+2028/U+2029).
	DecisionSanitized
	// DecisionDropped: a correlation record read back held headers that were
	// not applied (a name outside correlation.restoreHeaders, or a trace
	// header that fails the rules an incoming one must meet).
	DecisionDropped
	// DecisionNarrowed accompanies DecisionRestored when the narrowed
	// strategy found the record.
	DecisionNarrowed
	decisionCount
)

// DecisionCount is the number of decision kinds.
const DecisionCount = int(decisionCount)

var decisionNames = [decisionCount]string{
	"kept", "injected", "repaired", "restarted", "translated", "restored",
	"ambiguous", "rejected", "tagged", "error", "stripped", "recorded",
	"sanitized", "dropped", "narrowed",
}

func (d Decision) String() string {
	if d < decisionCount {
		return decisionNames[d]
	}
	return "unknown"
}

// Decisions is a set of Decision.
type Decisions uint32

// Has reports whether d is in the set.
func (s Decisions) Has(d Decision) bool { return s&(1<<d) != 0 }

func (s *Decisions) add(d Decision) { *s |= 1 << d }

// Each calls fn for every decision in the set, in enum order.
func (s Decisions) Each(fn func(Decision)) {
	for d := Decision(0); d < decisionCount; d++ {
		if s.Has(d) {
			fn(d)
		}
	}
}

// Op is a header mutation kind.
type Op uint8

const (
	OpSet Op = iota
	OpRemove
)

// Mutation changes one request or response header.
type Mutation struct {
	Op    Op
	Name  string
	Value string
	// off/end locate Value in the result's buffer until finish() turns the
	// buffer into one string (one allocation for every value).
	off, end int32
	inBuf    bool
}

// Tag is one computed tag and the sinks it goes to (header and baggage sinks
// are already applied as Mutations; FilterState and Metadata are the
// adapter's job).
type Tag struct {
	Name  string
	Value string
	Sinks Sink
}

// Reply is a local reply the adapter sends instead of forwarding.
type Reply struct {
	Status int
	Body   string
	// ContentType of Body.
	ContentType string
}

// HeaderProblem records an invalid header that was seen.
type HeaderProblem struct {
	Header  string
	Problem propagation.Problem
}

// Result is what the engine decided for one request or response. Adapters
// keep one per stream (or pool them) and call Reset before reuse.
type Result struct {
	// BorrowValues, set by the adapter, makes the mutation values the engine
	// formats (trace headers it writes) alias the result's own buffer instead
	// of a copy made per call: they are then valid only until the result is
	// used again (Reset, OnRequest, OnResponse). For adapters that apply the
	// mutations before that (the wasm filter, where an allocation costs about
	// a microsecond of guest time).
	BorrowValues bool

	Mutations []Mutation
	Tags      []Tag
	Decisions Decisions
	Problems  []HeaderProblem
	Reply     *Reply
	// Context is the trace context the request leaves with (Valid() false when
	// it has none, e.g. a sampling-only B3 header).
	Context propagation.SpanContext
	// Strategy is how a restored context was found (StrategyNone when
	// nothing was restored).
	Strategy Strategy
	// ClientSpan is the span tracebridge started for an outbound call
	// (policy clientSpans; Valid() false when none).
	ClientSpan ClientSpan

	buf   []byte
	reply Reply
	// scratch holds correlation records while they are built or read, so
	// the store interface does not make a stack buffer escape per request.
	scratch []byte
	// keyBuf holds the correlation store key of the request ("name=value").
	keyBuf []byte
	// restored is the header view of a restored request (restore), kept here
	// so that it is not allocated per restore: in the wasm module an
	// allocation costs about a microsecond.
	restored overlay
	// prints holds the narrowed strategy's fingerprints of the request.
	prints [MaxNarrowHeaders]uint64
}

// Reset clears the result, keeping its storage.
func (r *Result) Reset() {
	r.Mutations = r.Mutations[:0]
	r.Tags = r.Tags[:0]
	r.Problems = r.Problems[:0]
	r.Decisions = 0
	r.Reply = nil
	r.Context = propagation.SpanContext{}
	r.Strategy = StrategyNone
	r.ClientSpan = ClientSpan{}
	r.buf = r.buf[:0]
}

// Set returns the value of the last mutation that sets name, if any.
func (r *Result) Set(name string) (string, bool) {
	for i := len(r.Mutations) - 1; i >= 0; i-- {
		m := &r.Mutations[i]
		if m.Name == name {
			return m.Value, m.Op == OpSet
		}
	}
	return "", false
}

func (r *Result) set(name, value string) {
	r.dropMutation(name)
	r.Mutations = append(r.Mutations, Mutation{Op: OpSet, Name: name, Value: value})
}

// setBuf records a Set whose value is buf[off:] (written just before).
func (r *Result) setBuf(name string, off int) {
	r.dropMutation(name)
	r.Mutations = append(r.Mutations, Mutation{Op: OpSet, Name: name, off: int32(off), end: int32(len(r.buf)), inBuf: true})
}

func (r *Result) remove(name string) {
	r.dropMutation(name)
	r.Mutations = append(r.Mutations, Mutation{Op: OpRemove, Name: name})
}

// dropMutation forgets an earlier mutation of name so the last one wins and
// adapters never see two for the same header.
func (r *Result) dropMutation(name string) {
	for i := range r.Mutations {
		if r.Mutations[i].Name == name {
			copy(r.Mutations[i:], r.Mutations[i+1:])
			r.Mutations = r.Mutations[:len(r.Mutations)-1]
			return
		}
	}
}

// finish converts buffered values into strings with a single allocation,
// or none when the values are borrowed.
func (r *Result) finish() {
	if len(r.buf) == 0 {
		return
	}
	var s string
	if r.BorrowValues {
		// The buffer is left as it is until Reset, so later appends in the
		// same call never write under these strings.
		s = unsafe.String(&r.buf[0], len(r.buf))
	} else {
		s = string(r.buf)
	}
	for i := range r.Mutations {
		m := &r.Mutations[i]
		if m.inBuf {
			m.Value = s[m.off:m.end]
			m.inBuf = false
		}
	}
	if !r.BorrowValues {
		r.buf = r.buf[:0]
	}
}

func (r *Result) problem(h string, p propagation.Problem) {
	r.Problems = append(r.Problems, HeaderProblem{Header: h, Problem: p})
}
