package engine

import (
	"math"
	"strconv"
	"strings"
)

// The policy document is mapped onto the Policy structs by hand rather than
// with reflect (which would add to the wasm module what encoding/json and fmt
// bring). Each struct lists its JSON keys in a fields method, one line a
// field; TestPolicyFieldsCoverEveryJSONField fails when a json-tagged field has
// no line or a line fills the wrong field.
//
// The rules, as encoding/json applies them to a struct with these tags, but
// strict: null leaves the field as it is; a value of the wrong kind is an
// error naming the path and leaves the field at its zero value, while the
// rest of the document is still filled so that Compile can report semantic
// errors in the same pass; an unknown key is an error listing the known ones.
// Keys are visited in sorted order so that errors come in a stable order.

// jsonField decodes the value of one JSON key into the field it names. The
// decode functions report, as their result, whether the value's kind fit
// (pointers are set only then).
type jsonField struct {
	name   string
	decode func(e *ConfigError, path string, j any) bool
}

// jsonObject is a Policy struct that lists its fields.
type jsonObject interface {
	fields() []jsonField
}

func (p *Policy) fields() []jsonField {
	return []jsonField{
		{"direction", decodeString(&p.Direction)},
		{"read", decodeStrings(&p.Read)},
		{"emit", decodeStrings(&p.Emit)},
		{"invalid", decodeString(&p.Invalid)},
		{"inject", decodeObject(&p.Inject)},
		{"trust", decodeObject(&p.Trust)},
		{"correlation", decodeObject(&p.Correlation)},
		{"tags", decodeObjects(&p.Tags)},
		{"responseHeader", decodeObject(&p.ResponseHeader)},
		{"baggage", decodeObject(&p.Baggage)},
		{"host", decodeObject(&p.Host)},
	}
}

func (p *InjectPolicy) fields() []jsonField {
	return []jsonField{
		{"enabled", decodeBoolPtr(&p.Enabled)},
		{"formats", decodeStrings(&p.Formats)},
		{"sampling", decodeString(&p.Sampling)},
	}
}

func (p *TrustPolicy) fields() []jsonField {
	return []jsonField{
		{"untrustedDirections", decodeStrings(&p.UntrustedDirections)},
		{"untrustedCIDRs", decodeStrings(&p.UntrustedCIDRs)},
		{"trustedHeader", decodeObjectPtr(&p.TrustedHeader)},
		{"trustedPrincipals", decodeStrings(&p.TrustedPrincipals)},
		{"action", decodeString(&p.Action)},
		{"debugToken", decodeObjectPtr(&p.DebugToken)},
	}
}

func (p *HeaderMatch) fields() []jsonField {
	return []jsonField{
		{"name", decodeString(&p.Name)},
		{"value", decodeString(&p.Value)},
	}
}

func (p *DebugTokenPolicy) fields() []jsonField {
	return []jsonField{
		{"header", decodeString(&p.Header)},
		{"secret", decodeString(&p.Secret)},
		{"secretEnv", decodeString(&p.SecretEnv)},
		{"maxTTL", decodeString(&p.MaxTTL)},
	}
}

func (p *CorrelationPolicy) fields() []jsonField {
	return []jsonField{
		{"strategies", decodeStrings(&p.Strategies)},
		{"keyHeaders", decodeStrings(&p.KeyHeaders)},
		{"ttl", decodeString(&p.TTL)},
		{"capacity", decodeInt(&p.Capacity)},
		{"restoreHeaders", decodeStrings(&p.RestoreHeaders)},
		{"inFlightTimeout", decodeString(&p.InFlightTimeout)},
	}
}

func (p *TagRule) fields() []jsonField {
	return []jsonField{
		{"name", decodeString(&p.Name)},
		{"from", decodeObject(&p.From)},
		{"to", decodeStrings(&p.To)},
		{"header", decodeString(&p.Header)},
		{"maxLength", decodeInt(&p.MaxLength)},
		{"directions", decodeStrings(&p.Directions)},
	}
}

func (p *TagSource) fields() []jsonField {
	return []jsonField{
		{"literal", decodeStringPtr(&p.Literal)},
		{"env", decodeString(&p.Env)},
		{"header", decodeString(&p.Header)},
		{"path", decodeObjectPtr(&p.Path)},
		{"query", decodeString(&p.Query)},
		{"jwt", decodeObjectPtr(&p.JWT)},
	}
}

func (p *PathMatch) fields() []jsonField {
	return []jsonField{
		{"regex", decodeString(&p.Regex)},
		{"group", decodeInt(&p.Group)},
	}
}

func (p *JWTClaim) fields() []jsonField {
	return []jsonField{
		{"header", decodeString(&p.Header)},
		{"claim", decodeString(&p.Claim)},
	}
}

func (p *ResponseHeaderPolicy) fields() []jsonField {
	return []jsonField{
		{"enabled", decodeBoolPtr(&p.Enabled)},
		{"name", decodeString(&p.Name)},
	}
}

func (p *BaggagePolicy) fields() []jsonField {
	return []jsonField{
		{"maxMembers", decodeInt(&p.MaxMembers)},
		{"maxBytes", decodeInt(&p.MaxBytes)},
	}
}

func (p *HostPolicy) fields() []jsonField {
	return []jsonField{
		{"placement", decodeString(&p.Placement)},
		{"tracing", decodeBoolPtr(&p.Tracing)},
		{"tracer", decodeString(&p.Tracer)},
	}
}

// decodeFields fills an object's fields from j, a JSON object.
func decodeFields(e *ConfigError, path string, j any, fields []jsonField) bool {
	if j == nil {
		return true
	}
	obj, ok := j.(map[string]any)
	if !ok {
		e.add(path, "must be an object, got "+describeJSON(j))
		return false
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sortStrings(keys)
next:
	for _, k := range keys {
		for _, f := range fields {
			if f.name == k {
				f.decode(e, joinPath(path, k), obj[k])
				continue next
			}
		}
		e.add(joinPath(path, k), "unknown field (known: "+knownFields(fields)+")")
	}
	return true
}

func knownFields(fields []jsonField) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	sortStrings(names)
	return strings.Join(names, ", ")
}

// decodeObject decodes a struct field.
func decodeObject[T any, PT interface {
	*T
	jsonObject
}](dst *T) func(*ConfigError, string, any) bool {
	return func(e *ConfigError, path string, j any) bool {
		return decodeFields(e, path, j, PT(dst).fields())
	}
}

// decodeObjectPtr decodes an optional struct field: it stays nil unless j is
// an object.
func decodeObjectPtr[T any, PT interface {
	*T
	jsonObject
}](dst **T) func(*ConfigError, string, any) bool {
	return func(e *ConfigError, path string, j any) bool {
		if j == nil {
			return true
		}
		v := new(T)
		if !decodeFields(e, path, j, PT(v).fields()) {
			return false
		}
		*dst = v
		return true
	}
}

// decodeObjects decodes a list of structs; a null element is a zero struct.
func decodeObjects[T any, PT interface {
	*T
	jsonObject
}](dst *[]T) func(*ConfigError, string, any) bool {
	return func(e *ConfigError, path string, j any) bool {
		return decodeList(e, path, j, dst, func(e *ConfigError, path string, j any, v *T) {
			decodeFields(e, path, j, PT(v).fields())
		})
	}
}

// decodeStrings decodes a list of strings; a null element is "".
func decodeStrings(dst *[]string) func(*ConfigError, string, any) bool {
	return func(e *ConfigError, path string, j any) bool {
		return decodeList(e, path, j, dst, func(e *ConfigError, path string, j any, v *string) {
			decodeString(v)(e, path, j)
		})
	}
}

// decodeList sets *dst to a list as long as the JSON array, even an empty
// one (an empty list and an absent one mean different things in a policy).
func decodeList[T any](e *ConfigError, path string, j any, dst *[]T, elem func(*ConfigError, string, any, *T)) bool {
	if j == nil {
		return true
	}
	arr, ok := j.([]any)
	if !ok {
		e.add(path, "must be a list, got "+describeJSON(j))
		return false
	}
	s := make([]T, len(arr))
	for i, ev := range arr {
		elem(e, path+"["+strconv.Itoa(i)+"]", ev, &s[i])
	}
	*dst = s
	return true
}

func decodeString(dst *string) func(*ConfigError, string, any) bool {
	return func(e *ConfigError, path string, j any) bool {
		if j == nil {
			return true
		}
		s, ok := j.(string)
		if !ok {
			e.add(path, "must be a string, got "+describeJSON(j))
			return false
		}
		*dst = s
		return true
	}
}

func decodeStringPtr(dst **string) func(*ConfigError, string, any) bool {
	return func(e *ConfigError, path string, j any) bool {
		if j == nil {
			return true
		}
		s, ok := j.(string)
		if !ok {
			e.add(path, "must be a string, got "+describeJSON(j))
			return false
		}
		*dst = &s
		return true
	}
}

func decodeBoolPtr(dst **bool) func(*ConfigError, string, any) bool {
	return func(e *ConfigError, path string, j any) bool {
		if j == nil {
			return true
		}
		b, ok := j.(bool)
		if !ok {
			e.add(path, "must be true or false, got "+describeJSON(j))
			return false
		}
		*dst = &b
		return true
	}
}

// decodeInt accepts a JSON number that is a whole number in int's range.
// The range is checked before converting: converting an out-of-range float
// to int gives an implementation-defined value (Go spec, Conversions).
func decodeInt(dst *int) func(*ConfigError, string, any) bool {
	return func(e *ConfigError, path string, j any) bool {
		if j == nil {
			return true
		}
		n, ok := j.(float64)
		if !ok || n != math.Trunc(n) || n < math.MinInt || n >= -math.MinInt {
			e.add(path, "must be a whole number, got "+describeJSON(j))
			return false
		}
		*dst = int(n)
		return true
	}
}
