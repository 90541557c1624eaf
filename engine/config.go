package engine

import (
	"bytes"
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
type ConfigError struct{ Fields []FieldError }

func (e *ConfigError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	return "invalid policy: " + strings.Join(parts, "; ")
}

// add records one error. Callers build msg with strconv rather than fmt:
// fmt (and the reflect it brings) would add about 0.35 MB to the wasm module.
func (e *ConfigError) add(path, msg string) {
	e.Fields = append(e.Fields, FieldError{Path: path, Msg: msg})
}

// ParsePolicy reads a JSON policy document strictly: unknown fields and wrong
// types are errors naming the field path. An empty document is the
// zero-config default.
func ParsePolicy(data []byte) (*Policy, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return DefaultPolicy(), nil
	}
	generic, err := decodeJSON(data)
	if err != nil {
		return nil, &ConfigError{Fields: []FieldError{{Msg: "not valid JSON: " + err.Error()}}}
	}
	if _, ok := generic.(map[string]any); !ok {
		return nil, &ConfigError{Fields: []FieldError{{Msg: "the policy must be a JSON object"}}}
	}
	cerr := &ConfigError{}
	var p Policy
	decodeFields(cerr, "", generic, p.fields())
	if len(cerr.Fields) > 0 {
		return &p, cerr
	}
	return &p, nil
}

// LoadPolicy parses and compiles a policy document, reporting every problem
// at once: shape errors (unknown fields, wrong types) and semantic ones.
// Adapters call it at start and on reload; env resolves environment variables.
func LoadPolicy(data []byte, env func(string) string) (*Config, error) {
	p, perr := ParsePolicy(data)
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
				all.Fields = append(all.Fields, f)
			}
		}
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
