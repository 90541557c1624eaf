// Package policyfile reads a policy document from a file, in JSON or YAML,
// for the programs that run outside the proxy: the tracebridge CLI and the
// ext_proc service. Both load through it, so they accept and refuse the same
// documents; the wasm filter takes its pluginConfig (JSON, as Istio passes
// it) through engine.LoadPolicy, which applies the same document rules
// (engine.PolicyText) and the same field rules. YAML is read here and not in
// the engine so that the wasm module does not carry a YAML parser.
package policyfile

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tracebridge/tracebridge/engine"
)

// ReadFile reads a policy file, refusing it once it passes
// engine.MaxPolicyBytes without reading further.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, engine.MaxPolicyBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > engine.MaxPolicyBytes {
		return nil, docError("is more than " + strconv.Itoa(engine.MaxPolicyBytes) + " bytes")
	}
	return data, nil
}

// Parse reads a policy document: JSON when it starts with "{" (after a
// UTF-8 byte-order mark and white space), else YAML. Empty, null, or a YAML
// document of comments only is the zero-config default.
func Parse(data []byte) (*engine.Policy, error) {
	text, err := engine.PolicyText(data)
	if err != nil {
		return nil, err
	}
	if text == nil {
		return engine.DefaultPolicy(), nil
	}
	if text[0] == '{' {
		return engine.ParsePolicy(text)
	}
	tree, err := decodeYAML(text)
	if err != nil {
		return nil, err
	}
	return engine.ParsePolicyValue(tree)
}

// Load parses and compiles a policy document (see Parse and
// engine.LoadPolicy); env resolves environment variables.
func Load(data []byte, env func(string) string) (*engine.Config, error) {
	text, err := engine.PolicyText(data)
	if err != nil {
		return nil, err
	}
	if text == nil || text[0] == '{' {
		return engine.LoadPolicy(text, env)
	}
	tree, err := decodeYAML(text)
	if err != nil {
		return nil, err
	}
	return engine.LoadPolicyValue(tree, env)
}

// JSON returns the document as JSON, a YAML document converted, once Parse
// finds nothing wrong with its fields (nil for the zero-config default): for
// tools that pass the user's document on, such as the manifest renderer
// writing it into a pluginConfig.
func JSON(data []byte) ([]byte, error) {
	text, err := engine.PolicyText(data)
	if err != nil || text == nil {
		return nil, err
	}
	if text[0] == '{' {
		_, err := engine.ParsePolicy(text)
		return text, err
	}
	tree, err := decodeYAML(text)
	if err != nil {
		return nil, err
	}
	if tree == nil {
		return nil, nil
	}
	// A tree the policy decoder accepts holds no BadNumber.
	if _, err := engine.ParsePolicyValue(tree); err != nil {
		return nil, err
	}
	return json.Marshal(tree)
}

// maxYAMLValues caps the values a YAML document may stand for once its
// aliases are expanded, so that a few bytes of nested aliases cannot make a
// tree of millions of nodes.
const maxYAMLValues = 100_000

// maxYAMLDepth caps nesting as the JSON reader does.
const maxYAMLDepth = 32

func docError(msg string) error {
	return &engine.ConfigError{Fields: []engine.FieldError{{Msg: "the policy document " + msg}}}
}

// fieldError names the path, or the whole document for a top-level value.
func fieldError(path, msg string) error {
	if path == "" {
		msg = "the policy document, " + msg
	}
	return &engine.ConfigError{Fields: []engine.FieldError{{Path: path, Msg: msg}}}
}

// decodeYAML turns a YAML document (YAML 1.2 as go.yaml.in/yaml/v3 reads it)
// into the tree engine.ParsePolicyValue takes. Only JSON's data model is
// accepted: scalars of the core schema (timestamps and binary stay the text
// written), sequences, mappings with scalar keys given once; merge keys and
// other tags are refused naming the path.
func decodeYAML(text []byte) (any, error) {
	dec := yaml.NewDecoder(strings.NewReader(string(text)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, docError("is not valid YAML: " + err.Error())
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, docError("holds more than one YAML document")
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	c := converter{budget: maxYAMLValues}
	return c.value(doc.Content[0], "", 0)
}

type converter struct{ budget int }

func (c *converter) value(n *yaml.Node, path string, depth int) (any, error) {
	if c.budget--; c.budget < 0 {
		return nil, fieldError(path, "the document's aliases expand to more than "+strconv.Itoa(maxYAMLValues)+" values")
	}
	if depth > maxYAMLDepth {
		return nil, fieldError(path, "nested more than "+strconv.Itoa(maxYAMLDepth)+" deep")
	}
	switch n.Kind {
	case yaml.AliasNode:
		return c.value(n.Alias, path, depth+1)
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, e := range n.Content {
			v, err := c.value(e, path+"["+strconv.Itoa(i)+"]", depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		lines := make(map[string]int, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			for k.Kind == yaml.AliasNode {
				k = k.Alias
			}
			if k.Kind != yaml.ScalarNode {
				return nil, fieldError(path, "line "+strconv.Itoa(k.Line)+": a key must be a plain string, not a list or a mapping")
			}
			key := k.Value
			kp := joinPath(path, key)
			if k.ShortTag() == "!!merge" {
				return nil, fieldError(kp, "YAML merge keys (<<) are not supported; write the fields out")
			}
			if first, dup := lines[key]; dup {
				return nil, fieldError(kp, "given twice (lines "+strconv.Itoa(first)+" and "+strconv.Itoa(k.Line)+")")
			}
			lines[key] = k.Line
			v, err := c.value(n.Content[i+1], kp, depth+1)
			if err != nil {
				return nil, err
			}
			out[key] = v
		}
		return out, nil
	case yaml.ScalarNode:
		return scalar(n, path)
	}
	return nil, fieldError(path, "line "+strconv.Itoa(n.Line)+": unexpected YAML node")
}

func scalar(n *yaml.Node, path string) (any, error) {
	switch tag := n.ShortTag(); tag {
	case "!!null":
		return nil, nil
	case "!!str", "!!timestamp", "!!binary":
		return n.Value, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, fieldError(path, err.Error())
		}
		return b, nil
	case "!!int", "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, fieldError(path, "must be a number, got "+strconv.Quote(n.Value))
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return engine.BadNumber(n.Value), nil
		}
		return f, nil
	default:
		return nil, fieldError(path, "line "+strconv.Itoa(n.Line)+": YAML tag "+tag+" is not supported")
	}
}

func joinPath(base, k string) string {
	if base == "" {
		return k
	}
	return base + "." + k
}
