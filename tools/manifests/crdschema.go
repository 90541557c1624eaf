package manifests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// KubeconformSchemaLocation is the -schema-location template matching the
// layout CRDSchemas writes under dir.
func KubeconformSchemaLocation(dir string) string {
	return filepath.Join(dir, "{{ .Group }}", "{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json")
}

// CRDSchemas converts the CustomResourceDefinitions of a YAML stream (such as
// kubernetes/customresourcedefinitions.gen.yaml in the istio.io/api module)
// into the JSON-schema files kubeconform reads, one per served version:
// dir/<group>/<kind, lower case>_<version>.json. With strict, every object
// schema that lists properties and neither allows additional properties nor
// preserves unknown fields gets additionalProperties: false, so kubeconform
// -strict rejects unknown fields as the API server's structural pruning
// would drop them. It returns the files written.
func CRDSchemas(crdYAML []byte, dir string, strict bool) ([]string, error) {
	var written []string
	for _, part := range bytes.Split(crdYAML, []byte("\n---")) {
		var crd struct {
			Kind string `json:"kind"`
			Spec struct {
				Group string `json:"group"`
				Names struct {
					Kind string `json:"kind"`
				} `json:"names"`
				Versions []struct {
					Name   string `json:"name"`
					Served bool   `json:"served"`
					Schema struct {
						OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
					} `json:"schema"`
				} `json:"versions"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(part, &crd); err != nil {
			return nil, err
		}
		if crd.Kind != "CustomResourceDefinition" {
			continue
		}
		for _, v := range crd.Spec.Versions {
			s := v.Schema.OpenAPIV3Schema
			if !v.Served || s == nil {
				continue
			}
			convertSchema(s, strict)
			props, _ := s["properties"].(map[string]any)
			if props == nil {
				props = map[string]any{}
				s["properties"] = props
			}
			props["apiVersion"] = map[string]any{"type": "string", "enum": []any{crd.Spec.Group + "/" + v.Name}}
			props["kind"] = map[string]any{"type": "string", "enum": []any{crd.Spec.Names.Kind}}
			if _, ok := props["metadata"]; !ok {
				props["metadata"] = map[string]any{"type": "object"}
			}
			s["required"] = appendUnique(s["required"], "apiVersion", "kind")
			data, err := json.MarshalIndent(s, "", "  ")
			if err != nil {
				return nil, err
			}
			p := filepath.Join(dir, crd.Spec.Group, strings.ToLower(crd.Spec.Names.Kind)+"_"+v.Name+".json")
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return nil, err
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				return nil, err
			}
			written = append(written, p)
		}
	}
	if len(written) == 0 {
		return nil, fmt.Errorf("no CustomResourceDefinition with a schema found")
	}
	return written, nil
}

// convertSchema turns OpenAPI v3 (Kubernetes dialect) into JSON Schema in
// place: nullable becomes a "null" type, x-kubernetes-int-or-string an
// integer-or-string type; Kubernetes extensions (validations, list types)
// are left as unknown keywords, which JSON Schema ignores.
func convertSchema(s map[string]any, strict bool) {
	if s["x-kubernetes-int-or-string"] == true {
		delete(s, "type")
		s["type"] = []any{"integer", "string"}
	}
	if s["nullable"] == true {
		if t, ok := s["type"].(string); ok {
			s["type"] = []any{t, "null"}
		}
		delete(s, "nullable")
	}
	if props, ok := s["properties"].(map[string]any); ok {
		for _, p := range props {
			if m, ok := p.(map[string]any); ok {
				convertSchema(m, strict)
			}
		}
		_, hasAP := s["additionalProperties"]
		if strict && !hasAP && s["x-kubernetes-preserve-unknown-fields"] != true {
			s["additionalProperties"] = false
		}
	}
	if m, ok := s["additionalProperties"].(map[string]any); ok {
		convertSchema(m, strict)
	}
	if m, ok := s["items"].(map[string]any); ok {
		convertSchema(m, strict)
	}
	for _, k := range []string{"allOf", "anyOf", "oneOf"} {
		if list, ok := s[k].([]any); ok {
			for _, e := range list {
				if m, ok := e.(map[string]any); ok {
					convertSchema(m, strict)
				}
			}
		}
	}
	if m, ok := s["not"].(map[string]any); ok {
		convertSchema(m, strict)
	}
}

func appendUnique(v any, names ...string) []any {
	list, _ := v.([]any)
	for _, n := range names {
		found := false
		for _, e := range list {
			if e == n {
				found = true
			}
		}
		if !found {
			list = append(list, n)
		}
	}
	return list
}

// OpenAPIv3Schemas converts a Kubernetes OpenAPI v3 document of one
// group-version (what the API server serves at /openapi/v3/apis/<g>/<v>) into
// kubeconform schema files, one per kind it defines:
// dir/<group, or the version for the core group>/<kind>_<version>.json. Each
// file carries every schema of the document under "definitions" so that its
// $refs resolve locally. strict works as in CRDSchemas.
func OpenAPIv3Schemas(doc []byte, dir string, strict bool) ([]string, error) {
	var d struct {
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, err
	}
	defs := map[string]any{}
	for name, s := range d.Components.Schemas {
		rewriteRefs(s)
		convertSchema(s, strict)
		defs[name] = s
	}
	var written []string
	for name, s := range d.Components.Schemas {
		gvks, _ := s["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			gvk, _ := g.(map[string]any)
			group, _ := gvk["group"].(string)
			version, _ := gvk["version"].(string)
			kind, _ := gvk["kind"].(string)
			if kind == "" || version == "" {
				continue
			}
			sub := group
			if sub == "" {
				sub = version // kubeconform's {{ .Group }} for "v1" is "v1"
			}
			out := map[string]any{"$ref": "#/definitions/" + name, "definitions": defs}
			data, err := json.Marshal(out)
			if err != nil {
				return nil, err
			}
			p := filepath.Join(dir, sub, strings.ToLower(kind)+"_"+version+".json")
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return nil, err
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				return nil, err
			}
			written = append(written, p)
		}
	}
	return written, nil
}

// rewriteRefs points OpenAPI component references at "definitions".
func rewriteRefs(v any) {
	switch x := v.(type) {
	case map[string]any:
		if r, ok := x["$ref"].(string); ok {
			x["$ref"] = strings.Replace(r, "#/components/schemas/", "#/definitions/", 1)
		}
		for _, e := range x {
			rewriteRefs(e)
		}
	case []any:
		for _, e := range x {
			rewriteRefs(e)
		}
	}
}
