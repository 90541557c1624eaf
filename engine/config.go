package engine

import (
	"strconv"
	"strings"
)

// FieldError is one configuration error, naming the JSON path of the field.
type FieldError struct {
	Path string
	Msg  string
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// ConfigError lists every problem found in a policy document.
type ConfigError struct {
	Fields []FieldError
	// Omitted counts the problems found beyond the first maxConfigErrors,
	// which are not listed: a document of many bad fields must not make an
	// error (and a log line) many times its own size.
	Omitted int
}

// maxConfigErrors caps ConfigError.Fields.
const maxConfigErrors = 100

func (e *ConfigError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	msg := "invalid policy: " + strings.Join(parts, "; ")
	if e.Omitted > 0 {
		msg += "; and " + strconv.Itoa(e.Omitted) + " more"
	}
	return msg
}

// add records one error. Callers build msg with strconv rather than fmt:
// fmt (and the reflect it brings) would grow the wasm module (BENCHMARKS.md).
func (e *ConfigError) add(path, msg string) {
	if len(e.Fields) >= maxConfigErrors {
		e.Omitted++
		return
	}
	e.Fields = append(e.Fields, FieldError{Path: path, Msg: msg})
}

// ParsePolicy reads a JSON policy document strictly: the document rules of
// PolicyText, then unknown fields, wrong types, keys given twice, values over
// their bounds and syntax errors are errors naming the field path. An empty
// document (or null) is the zero-config default.
func ParsePolicy(data []byte) (*Policy, error) {
	data, err := PolicyText(data)
	if err != nil {
		return nil, err
	}
	if data == nil {
		return DefaultPolicy(), nil
	}
	generic, err := decodePolicyJSON(data)
	if err != nil {
		se := err.(*jsonSyntaxError)
		msg := "not valid JSON at " + se.line + ": " + se.msg
		path := se.path()
		if path == "" {
			msg = "the policy document is " + msg
		}
		return nil, &ConfigError{Fields: []FieldError{{Path: path, Msg: msg}}}
	}
	return ParsePolicyValue(generic)
}

// ParsePolicyValue maps a decoded policy document onto a Policy with the
// rules of ParsePolicy. doc is a tree as decoders of JSON or YAML make it:
// map[string]any, []any, string, float64, BadNumber, bool and nil; nil is
// the zero-config default.
func ParsePolicyValue(doc any) (*Policy, error) {
	if doc == nil {
		return DefaultPolicy(), nil
	}
	if _, ok := doc.(map[string]any); !ok {
		return nil, &ConfigError{Fields: []FieldError{{Msg: "the policy must be an object, got " + describeJSON(doc)}}}
	}
	cerr := &ConfigError{}
	var p Policy
	decodeFields(cerr, "", doc, p.fields())
	if len(cerr.Fields) > 0 {
		return &p, cerr
	}
	return &p, nil
}

// LoadPolicy parses and compiles a JSON policy document, reporting every
// problem at once: shape errors (unknown fields, wrong types) and semantic
// ones. Adapters call it at start and on reload; env resolves environment
// variables.
func LoadPolicy(data []byte, env func(string) string) (*Config, error) {
	p, perr := ParsePolicy(data)
	return compileParsed(p, perr, env)
}

// LoadPolicyValue is LoadPolicy for a decoded document (see ParsePolicyValue).
func LoadPolicyValue(doc any, env func(string) string) (*Config, error) {
	p, perr := ParsePolicyValue(doc)
	return compileParsed(p, perr, env)
}

func compileParsed(p *Policy, perr error, env func(string) string) (*Config, error) {
	if p == nil {
		return nil, perr
	}
	cfg, cerr := Compile(p, env)
	if perr == nil {
		return cfg, cerr
	}
	all := perr.(*ConfigError)
	if ce, ok := cerr.(*ConfigError); ok {
		seen := map[string]bool{}
		for _, f := range all.Fields {
			seen[f.Path] = true
		}
		for _, f := range ce.Fields {
			if !seen[f.Path] {
				all.add(f.Path, f.Msg)
			}
		}
		all.Omitted += ce.Omitted
	}
	return nil, all
}

// sortStrings is an insertion sort: the lists are tiny.
func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func joinPath(base, k string) string {
	if base == "" {
		return k
	}
	return base + "." + k
}

func describeJSON(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case float64:
		return "number " + strconv.FormatFloat(x, 'g', -1, 64)
	case BadNumber:
		return "number " + string(x) + " (out of range)"
	case bool:
		return "boolean " + strconv.FormatBool(x)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return "null"
}

// DefaultPolicy is the zero-config policy (README "Zero-config default").
func DefaultPolicy() *Policy {
	return &Policy{
		Direction:      "auto",
		Read:           []string{"w3c", "b3", "b3multi", "jaeger"},
		Emit:           []string{"w3c", "b3multi"},
		Invalid:        "repair",
		Inject:         InjectPolicy{Sampling: "defer"},
		Trust:          TrustPolicy{Action: "keep"},
		Correlation:    CorrelationPolicy{Strategies: []string{"key"}, KeyHeaders: []string{"x-request-id"}, TTL: "30s", Capacity: 4096},
		ResponseHeader: ResponseHeaderPolicy{Format: "serverTiming"},
	}
}
