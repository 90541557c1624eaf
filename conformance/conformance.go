// Package conformance loads tracebridge's conformance vectors and runs them
// against any host of the engine: the engine itself, the proxy-wasm filter
// (natively and as a compiled module) and the ext_proc service.
//
// The vectors (vectors.json next to this file, described in README.md) are an
// oracle written from docs/POLICY.md and the trace-context specifications,
// not from the engine's output. Each vector names a policy of the file, a
// list of steps (a request phase, optionally a response phase, stream ends)
// and what every step must produce: the complete request header list that
// reaches upstream, the decision set, the tags, a local reply, the response
// headers. Generated identifiers are matched with placeholders (see
// MatchValue).
//
// An adapter implements Host and calls Run:
//
//	f, err := conformance.LoadDefault()
//	...
//	conformance.Run(t, f, func(t *testing.T, policy string) conformance.Host {
//		return newMyHost(t, f.Policy(policy), f.Env(), f.Clock())
//	})
package conformance

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tracebridge/tracebridge/internal/repo"
)

//go:embed vectors.json
var embedded []byte

// DefaultPath is the vectors file relative to the module root.
const DefaultPath = "conformance/vectors.json"

// Header is one header line: name and value.
type Header = [2]string

// File is a vectors file.
type File struct {
	// ClockRFC3339 is the fixed wall clock every host must give the engine
	// (debug-token expiry, correlation TTL).
	ClockRFC3339 string `json:"clock"`
	// Environment is the process environment the policies see (tag sources
	// "env", trust.debugToken.secretEnv).
	Environment map[string]string `json:"env"`
	// Policies are raw policy documents by name, fed unchanged to the
	// adapters (wasm pluginConfig, ext_proc --config).
	Policies map[string]json.RawMessage `json:"policies"`
	Vectors  []Vector                   `json:"vectors"`

	clock time.Time
}

// Vector is one conformance case.
type Vector struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Policy names an entry of File.Policies.
	Policy string `json:"policy"`
	// KnownFailure, when set, says why the engine does not meet the vector
	// yet; Run reports the vector as skipped with this reason.
	KnownFailure string `json:"knownFailure,omitempty"`
	Steps        []Step `json:"steps"`
}

// Step is one thing that happens to the host.
//
// A step with End set only ends that (open) stream. A step with Request runs
// the request phase of Stream (a new stream when Stream is empty or not yet
// open), then the response phase when Response is non-nil, then ends the
// stream unless KeepOpen. A step with Response but no Request runs the
// response phase of an open stream.
type Step struct {
	Stream    string `json:"stream,omitempty"`
	Direction string `json:"direction,omitempty"`
	Source    string `json:"source,omitempty"`
	// PeerPrincipal is the downstream mTLS peer's URI SAN (Envoy's
	// connection.uri_san_peer_certificate), or "" for no mTLS peer.
	PeerPrincipal string   `json:"peerPrincipal,omitempty"`
	Request       []Header `json:"request,omitempty"`
	// Response, when non-nil (even empty: "response": []), runs the
	// response phase with these headers.
	Response []Header `json:"response,omitempty"`
	KeepOpen bool     `json:"keepOpen,omitempty"`
	End      string   `json:"end,omitempty"`
	Expect   *Expect  `json:"expect,omitempty"`
}

// HasRequest reports whether the step runs a request phase.
func (s *Step) HasRequest() bool { return s.Request != nil }

// Expect is what a step must produce. Values may hold placeholders.
type Expect struct {
	// Request is the complete request header list after the engine's
	// mutations (order-insensitive; repeated names allowed). Ignored when
	// Reply is set (nothing is forwarded).
	Request []Header `json:"request,omitempty"`
	// Decisions is the exact decision set (engine.Decision names).
	Decisions []string `json:"decisions"`
	// Tags is the exact set of tags (name -> value); nil means none.
	Tags map[string]string `json:"tags,omitempty"`
	// TagSinks, when set, gives the exact sinks of the tags it names.
	TagSinks map[string][]string `json:"tagSinks,omitempty"`
	// Reply is present iff the request is answered locally.
	Reply *Reply `json:"reply,omitempty"`
	// Response is the complete response header list after the response
	// phase, compared when the step has a response phase.
	Response []Header `json:"response,omitempty"`
	// ClientSpan is the CLIENT span tracebridge started for the request
	// (policy clientSpans), compared by hosts that report client spans
	// (ClientSpanHost); absent: none was started.
	ClientSpan *ClientSpan `json:"clientSpan,omitempty"`
}

// ClientSpan is a client span's identity (lower-case hex, placeholders
// allowed) and how its context was found: "key", "soleInFlight", "narrowed"
// or "injected".
type ClientSpan struct {
	TraceID  string `json:"traceId"`
	SpanID   string `json:"spanId"`
	ParentID string `json:"parentId,omitempty"`
	Strategy string `json:"strategy"`
}

// OneZipkinSpan reads Zipkin v2 JSON report bodies (arrays of spans) that
// a host posted for one stream and returns its one client span, nil when
// none was reported; more than one is an error.
func OneZipkinSpan(bodies [][]byte) (*ClientSpan, error) {
	type span struct {
		TraceID, ID, ParentID string
		Tags                  map[string]string
	}
	var spans []span
	for _, b := range bodies {
		var batch []span
		if err := json.Unmarshal(b, &batch); err != nil {
			return nil, fmt.Errorf("report body %q: %v", b, err)
		}
		spans = append(spans, batch...)
	}
	switch len(spans) {
	case 0:
		return nil, nil
	case 1:
		s := spans[0]
		return &ClientSpan{TraceID: s.TraceID, SpanID: s.ID, ParentID: s.ParentID, Strategy: s.Tags["tracebridge.strategy"]}, nil
	}
	return nil, fmt.Errorf("%d spans reported for one stream", len(spans))
}

// Reply is a local reply.
type Reply struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
}

// Load reads and checks a vectors file.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// LoadDefault returns the project's vectors. It reads
// conformance/vectors.json under the module root when it can find it (so an
// edited file is used without rebuilding) and falls back to the copy
// embedded at build time (hosts without a file system, such as a wasip1
// test binary). TRACEBRIDGE_VECTORS overrides the path.
func LoadDefault() (*File, error) {
	if p := os.Getenv("TRACEBRIDGE_VECTORS"); p != "" {
		return Load(p)
	}
	if root, err := repo.Root(); err == nil {
		p := filepath.Join(root, filepath.FromSlash(DefaultPath))
		if _, err := os.Stat(p); err == nil {
			return Load(p)
		}
	}
	return Parse(embedded)
}

// Parse decodes and checks a vectors file's contents. Unknown fields are
// errors, so a misspelt expectation cannot silently check nothing.
func Parse(data []byte) (*File, error) {
	var f File
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	return &f, nil
}

func (f *File) check() error {
	var errs []string
	add := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	var err error
	if f.clock, err = time.Parse(time.RFC3339, f.ClockRFC3339); err != nil {
		add("clock: %v", err)
	}
	for name, p := range f.Policies {
		if !json.Valid(p) {
			add("policies.%s: not valid JSON", name)
		}
	}
	seen := map[string]bool{}
	for i := range f.Vectors {
		v := &f.Vectors[i]
		where := fmt.Sprintf("vectors[%d] %q", i, v.Name)
		if v.Name == "" {
			add("%s: no name", where)
		}
		if seen[v.Name] {
			add("%s: duplicate name", where)
		}
		seen[v.Name] = true
		if _, ok := f.Policies[v.Policy]; !ok {
			add("%s: unknown policy %q", where, v.Policy)
		}
		if len(v.Steps) == 0 {
			add("%s: no steps", where)
		}
		open := map[string]bool{}
		for j := range v.Steps {
			s := &v.Steps[j]
			sw := fmt.Sprintf("%s step %d", where, j)
			switch {
			case s.End != "":
				if s.HasRequest() || s.Response != nil || s.Expect != nil || s.Stream != "" {
					add("%s: an end step has nothing but \"end\"", sw)
				}
				if !open[s.End] {
					add("%s: ends stream %q, which is not open", sw, s.End)
				}
				delete(open, s.End)
			case s.HasRequest():
				if s.Direction != "inbound" && s.Direction != "outbound" {
					add("%s: direction must be inbound or outbound, got %q", sw, s.Direction)
				}
				if s.Stream != "" && open[s.Stream] {
					add("%s: stream %q is already open", sw, s.Stream)
				}
				if s.KeepOpen {
					if s.Stream == "" {
						add("%s: keepOpen needs a stream id", sw)
					}
					open[s.Stream] = true
				}
				if s.Expect == nil {
					add("%s: no expect", sw)
				} else if s.Expect.Reply == nil && s.Expect.Request == nil {
					add("%s: expect.request is required unless a reply is expected", sw)
				}
			case s.Response != nil:
				if s.Stream == "" || !open[s.Stream] {
					add("%s: a response-only step needs an open stream", sw)
				}
				if s.Expect == nil || s.Expect.Response == nil {
					add("%s: a response-only step needs expect.response", sw)
				}
			default:
				add("%s: a step needs request, response or end", sw)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid vectors file:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}

// Policy returns the raw policy document of a name (nil if unknown).
func (f *File) Policy(name string) []byte { return f.Policies[name] }

// PolicyNames lists the policies, sorted.
func (f *File) PolicyNames() []string {
	out := make([]string, 0, len(f.Policies))
	for n := range f.Policies {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Env returns the environment the policies are compiled with.
func (f *File) Env() map[string]string { return f.Environment }

// Getenv reads the file's environment (a func(string) string for
// engine.Compile).
func (f *File) Getenv(name string) string { return f.Environment[name] }

// Clock returns the fixed time hosts must use as "now".
func (f *File) Clock() time.Time { return f.clock }

// Vector returns the vector of a name.
func (f *File) Vector(name string) (*Vector, bool) {
	for i := range f.Vectors {
		if f.Vectors[i].Name == name {
			return &f.Vectors[i], true
		}
	}
	return nil, false
}
