package engine

import (
	"bytes"
	"encoding/json"
	"reflect"
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
	decodeShape(cerr, "", generic, reflect.ValueOf(&p).Elem())
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

// decodeShape fills the Go value v from the decoded JSON value j, walking
// both together, and reports unknown keys and kind mismatches with their
// paths, so that errors read like `correlation.ttl: must be a string, got
// number`. Mismatched values are left at their zero value; the rest is filled,
// so that Compile can report semantic errors in the same pass (as
// encoding/json would). It reports whether j's kind fits v.
func decodeShape(cerr *ConfigError, path string, j any, v reflect.Value) bool {
	if j == nil {
		return true // null leaves the default.
	}
	if v.Kind() == reflect.Pointer {
		elem := reflect.New(v.Type().Elem())
		if !decodeShape(cerr, path, j, elem.Elem()) {
			return false
		}
		v.Set(elem)
		return true
	}
	switch v.Kind() {
	case reflect.Struct:
		obj, ok := j.(map[string]any)
		if !ok {
			cerr.add(path, "must be an object, got "+describeJSON(j))
			return false
		}
		fields := jsonFields(v.Type())
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sortStrings(keys)
		for _, k := range keys {
			f, ok := fields[k]
			if !ok {
				cerr.add(joinPath(path, k), "unknown field (known: "+strings.Join(sortedKeys(fields), ", ")+")")
				continue
			}
			decodeShape(cerr, joinPath(path, k), obj[k], v.FieldByIndex(f.Index))
		}
	case reflect.Slice:
		arr, ok := j.([]any)
		if !ok {
			cerr.add(path, "must be a list, got "+describeJSON(j))
			return false
		}
		s := reflect.MakeSlice(v.Type(), len(arr), len(arr))
		for i, ev := range arr {
			decodeShape(cerr, path+"["+strconv.Itoa(i)+"]", ev, s.Index(i))
		}
		v.Set(s)
	case reflect.String:
		if s, ok := j.(string); ok {
			v.SetString(s)
		} else {
			cerr.add(path, "must be a string, got "+describeJSON(j))
			return false
		}
	case reflect.Bool:
		if b, ok := j.(bool); ok {
			v.SetBool(b)
		} else {
			cerr.add(path, "must be true or false, got "+describeJSON(j))
			return false
		}
	case reflect.Int:
		n, ok := j.(float64)
		if !ok || n != float64(int64(n)) || v.OverflowInt(int64(n)) {
			cerr.add(path, "must be a whole number, got "+describeJSON(j))
			return false
		}
		v.SetInt(int64(n))
	default:
		panic("engine: policy field of unsupported kind " + v.Kind().String())
	}
	return true
}

func jsonFields(t reflect.Type) map[string]reflect.StructField {
	m := make(map[string]reflect.StructField, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		m[name] = f
	}
	return m
}

func sortedKeys(m map[string]reflect.StructField) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
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
		ResponseHeader: ResponseHeaderPolicy{Name: "traceresponse"},
	}
}

// MarshalPolicy renders a policy as indented JSON with defaults filled in.
func MarshalPolicy(p *Policy) ([]byte, error) {
	return json.MarshalIndent(p, "", "  ")
}
