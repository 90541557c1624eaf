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
//
// Field targets are small types with a method, not closures: each closure
// per field line adds its own code to the wasm module, a method does not.

// jsonField is one JSON key of a policy struct and the field it fills.
type jsonField struct {
	name  string
	value jsonValue
}

// jsonValue is a field that decodes itself from a decoded JSON value. It
// reports whether the value's kind fit (optional fields are set only then).
type jsonValue interface {
	decodeJSON(e *ConfigError, path string, j any) bool
}

// jsonObject is a Policy struct that lists its fields.
type jsonObject interface {
	fields() []jsonField
}

func (p *Policy) fields() []jsonField {
	return []jsonField{
		{"direction", str(&p.Direction)},
		{"read", strs(&p.Read)},
		{"emit", strs(&p.Emit)},
		{"invalid", str(&p.Invalid)},
		{"inject", object(&p.Inject)},
		{"trust", object(&p.Trust)},
		{"correlation", object(&p.Correlation)},
		{"tags", objects(&p.Tags)},
		{"responseHeader", object(&p.ResponseHeader)},
		{"baggage", object(&p.Baggage)},
		{"host", object(&p.Host)},
		{"clientSpans", object(&p.ClientSpans)},
	}
}

func (p *InjectPolicy) fields() []jsonField {
	return []jsonField{
		{"enabled", optBool(&p.Enabled)},
		{"formats", strs(&p.Formats)},
		{"sampling", str(&p.Sampling)},
	}
}

func (p *TrustPolicy) fields() []jsonField {
	return []jsonField{
		{"untrustedDirections", strs(&p.UntrustedDirections)},
		{"untrustedCIDRs", strs(&p.UntrustedCIDRs)},
		{"trustedHeader", optObject(&p.TrustedHeader)},
		{"trustedPrincipals", strs(&p.TrustedPrincipals)},
		{"action", str(&p.Action)},
		{"debugToken", optObject(&p.DebugToken)},
	}
}

func (p *HeaderMatch) fields() []jsonField {
	return []jsonField{
		{"name", str(&p.Name)},
		{"value", str(&p.Value)},
	}
}

func (p *DebugTokenPolicy) fields() []jsonField {
	return []jsonField{
		{"header", str(&p.Header)},
		{"secret", str(&p.Secret)},
		{"secretEnv", str(&p.SecretEnv)},
		{"maxTTL", str(&p.MaxTTL)},
	}
}

func (p *CorrelationPolicy) fields() []jsonField {
	return []jsonField{
		{"strategies", strs(&p.Strategies)},
		{"keyHeaders", strs(&p.KeyHeaders)},
		{"ttl", str(&p.TTL)},
		{"capacity", integer(&p.Capacity)},
		{"restoreHeaders", strs(&p.RestoreHeaders)},
		{"inFlightTimeout", str(&p.InFlightTimeout)},
		{"narrowHeaders", strs(&p.NarrowHeaders)},
	}
}

func (p *TagRule) fields() []jsonField {
	return []jsonField{
		{"name", str(&p.Name)},
		{"from", object(&p.From)},
		{"to", strs(&p.To)},
		{"header", str(&p.Header)},
		{"maxLength", integer(&p.MaxLength)},
		{"directions", strs(&p.Directions)},
	}
}

func (p *TagSource) fields() []jsonField {
	return []jsonField{
		{"literal", optStr(&p.Literal)},
		{"env", str(&p.Env)},
		{"header", str(&p.Header)},
		{"path", optObject(&p.Path)},
		{"query", str(&p.Query)},
		{"jwt", optObject(&p.JWT)},
	}
}

func (p *PathMatch) fields() []jsonField {
	return []jsonField{
		{"regex", str(&p.Regex)},
		{"group", integer(&p.Group)},
	}
}

func (p *JWTClaim) fields() []jsonField {
	return []jsonField{
		{"header", str(&p.Header)},
		{"claim", str(&p.Claim)},
	}
}

func (p *ResponseHeaderPolicy) fields() []jsonField {
	return []jsonField{
		{"enabled", optBool(&p.Enabled)},
		{"format", str(&p.Format)},
		{"name", str(&p.Name)},
	}
}

func (p *BaggagePolicy) fields() []jsonField {
	return []jsonField{
		{"maxMembers", integer(&p.MaxMembers)},
		{"maxBytes", integer(&p.MaxBytes)},
	}
}

func (p *HostPolicy) fields() []jsonField {
	return []jsonField{
		{"placement", str(&p.Placement)},
		{"tracing", optBool(&p.Tracing)},
		{"tracer", str(&p.Tracer)},
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
				f.value.decodeJSON(e, joinPath(path, k), obj[k])
				continue next
			}
		}
		e.add(joinPath(path, printableKey(k)), "unknown field (known: "+knownFields(fields)+")")
	}
	return true
}

// printableKey is an unknown key as an error shows it: as it is when it is
// a short identifier, else quoted and cut, so that a key cannot put control
// characters or a megabyte of text into a log line.
func printableKey(k string) string {
	plain := len(k) > 0 && len(k) <= 64
	for i := 0; plain && i < len(k); i++ {
		c := k[i]
		plain = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
	}
	if plain {
		return k
	}
	if len(k) > 64 {
		k = k[:64] + "..."
	}
	return strconv.Quote(k)
}

func knownFields(fields []jsonField) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	sortStrings(names)
	return strings.Join(names, ", ")
}

// object is a struct field.
func object(v jsonObject) jsonValue { return objectValue{v} }

type objectValue struct{ v jsonObject }

func (o objectValue) decodeJSON(e *ConfigError, path string, j any) bool {
	return decodeFields(e, path, j, o.v.fields())
}

// optObject is an optional struct field: it stays nil unless j is an object.
func optObject[T any, PT interface {
	*T
	jsonObject
}](p **T) jsonValue {
	return optObjectValue[T, PT]{p}
}

type optObjectValue[T any, PT interface {
	*T
	jsonObject
}] struct{ p **T }

func (o optObjectValue[T, PT]) decodeJSON(e *ConfigError, path string, j any) bool {
	if j == nil {
		return true
	}
	v := new(T)
	if !decodeFields(e, path, j, PT(v).fields()) {
		return false
	}
	*o.p = v
	return true
}

// objects is a list of structs; a null element is a zero struct.
func objects[T any, PT interface {
	*T
	jsonObject
}](p *[]T) jsonValue {
	return objectsValue[T, PT]{p}
}

type objectsValue[T any, PT interface {
	*T
	jsonObject
}] struct{ p *[]T }

func (o objectsValue[T, PT]) decodeJSON(e *ConfigError, path string, j any) bool {
	arr, ok := listOf(e, path, j)
	if !ok || j == nil {
		return ok
	}
	s := make([]T, len(arr))
	for i, ev := range arr {
		decodeFields(e, elemPath(path, i), ev, PT(&s[i]).fields())
	}
	*o.p = s
	return true
}

// strs is a list of strings; a null element is "".
func strs(p *[]string) jsonValue { return (*stringsValue)(p) }

type stringsValue []string

func (v *stringsValue) decodeJSON(e *ConfigError, path string, j any) bool {
	arr, ok := listOf(e, path, j)
	if !ok || j == nil {
		return ok
	}
	s := make([]string, len(arr))
	for i, ev := range arr {
		(*stringValue)(&s[i]).decodeJSON(e, elemPath(path, i), ev)
	}
	*v = s
	return true
}

// listOf checks that j is a list (or null) of at most MaxListEntries. The caller then sets its field to
// a list as long as the JSON array, even an empty one: an empty list and an
// absent one mean different things in a policy.
func listOf(e *ConfigError, path string, j any) ([]any, bool) {
	if j == nil {
		return nil, true
	}
	arr, ok := j.([]any)
	if !ok {
		e.add(path, "must be a list, got "+describeJSON(j))
		return nil, false
	}
	if len(arr) > MaxListEntries {
		e.add(path, "must have at most "+strconv.Itoa(MaxListEntries)+" entries, got "+strconv.Itoa(len(arr)))
		return nil, false
	}
	return arr, true
}

func elemPath(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

func str(p *string) jsonValue { return (*stringValue)(p) }

type stringValue string

func (v *stringValue) decodeJSON(e *ConfigError, path string, j any) bool {
	if j == nil {
		return true
	}
	s, ok := j.(string)
	if !ok {
		e.add(path, "must be a string, got "+describeJSON(j))
		return false
	}
	if len(s) > MaxStringBytes {
		e.add(path, "must be at most "+strconv.Itoa(MaxStringBytes)+" bytes, got "+strconv.Itoa(len(s)))
		return false
	}
	*v = stringValue(s)
	return true
}

// optStr is an optional string: it stays nil unless j is a string.
func optStr(p **string) jsonValue { return optStringValue{p} }

type optStringValue struct{ p **string }

func (o optStringValue) decodeJSON(e *ConfigError, path string, j any) bool {
	if j == nil {
		return true
	}
	var s string
	if !str(&s).decodeJSON(e, path, j) {
		return false
	}
	*o.p = &s
	return true
}

// optBool is an optional bool: it stays nil unless j is true or false.
func optBool(p **bool) jsonValue { return optBoolValue{p} }

type optBoolValue struct{ p **bool }

func (o optBoolValue) decodeJSON(e *ConfigError, path string, j any) bool {
	if j == nil {
		return true
	}
	b, ok := j.(bool)
	if !ok {
		e.add(path, "must be true or false, got "+describeJSON(j))
		return false
	}
	*o.p = &b
	return true
}

// integer accepts a JSON number that is a whole number in int's range. The
// range is checked before converting: converting an out-of-range float to
// int gives an implementation-defined value (Go spec, Conversions).
func integer(p *int) jsonValue { return (*intValue)(p) }

type intValue int

func (v *intValue) decodeJSON(e *ConfigError, path string, j any) bool {
	if j == nil {
		return true
	}
	n, ok := j.(float64)
	if !ok || n != math.Trunc(n) || n < math.MinInt || n >= -math.MinInt {
		e.add(path, "must be a whole number, got "+describeJSON(j))
		return false
	}
	*v = intValue(n)
	return true
}
