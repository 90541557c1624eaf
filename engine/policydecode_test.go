package engine

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
)

// policyStructs lists every struct type reachable from Policy.
func policyStructs() []reflect.Type {
	var out []reflect.Type
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice:
			walk(t.Elem())
		case reflect.Struct:
			if seen[t] {
				return
			}
			seen[t] = true
			out = append(out, t)
			for i := 0; i < t.NumField(); i++ {
				walk(t.Field(i).Type)
			}
		}
	}
	walk(reflect.TypeFor[Policy]())
	return out
}

// sampleJSON is a JSON value (as decodeJSON returns it) that sets every field
// of a value of type t to something non-zero.
func sampleJSON(t reflect.Type) any {
	switch t.Kind() {
	case reflect.Pointer:
		return sampleJSON(t.Elem())
	case reflect.Slice:
		return []any{sampleJSON(t.Elem())}
	case reflect.Struct:
		obj := map[string]any{}
		for name, f := range reflectJSONFields(t) {
			obj[name] = sampleJSON(f.Type)
		}
		return obj
	case reflect.String:
		return "s"
	case reflect.Bool:
		return true
	case reflect.Int:
		return 7.0
	}
	panic("policy field of kind " + t.Kind().String())
}

// TestPolicyFieldsCoverEveryJSONField guards the hand-written field lists: each
// json-tagged field of each policy struct has exactly one line, and the line
// fills that field (decoding a key alone sets only its own field, to what
// encoding/json sets it to).
func TestPolicyFieldsCoverEveryJSONField(t *testing.T) {
	structs := policyStructs()
	if len(structs) < 13 {
		t.Fatalf("found %d policy structs, want at least 13", len(structs))
	}
	for _, st := range structs {
		tagged := reflectJSONFields(st)
		listed := reflect.New(st).Interface().(jsonObject).fields()
		names := map[string]bool{}
		for _, f := range listed {
			if names[f.name] {
				t.Errorf("%s: key %q listed twice", st.Name(), f.name)
			}
			names[f.name] = true
			if _, ok := tagged[f.name]; !ok {
				t.Errorf("%s: key %q listed but no field has that json tag", st.Name(), f.name)
			}
		}
		for name, sf := range tagged {
			if !names[name] {
				t.Errorf("%s.%s: json key %q is not decoded (add it to %s.fields)", st.Name(), sf.Name, name, st.Name())
				continue
			}
			doc := map[string]any{name: sampleJSON(sf.Type)}
			got := reflect.New(st)
			e := &ConfigError{}
			decodeFields(e, "", doc, got.Interface().(jsonObject).fields())
			if len(e.Fields) > 0 {
				t.Errorf("%s: decoding %v: %v", st.Name(), doc, e)
				continue
			}
			raw, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			want := reflect.New(st)
			if err := json.Unmarshal(raw, want.Interface()); err != nil {
				t.Fatal(err)
			}
			if want.Elem().FieldByIndex(sf.Index).IsZero() {
				t.Fatalf("%s: sample %s leaves %s zero", st.Name(), raw, sf.Name)
			}
			if !reflect.DeepEqual(got.Elem().Interface(), want.Elem().Interface()) {
				t.Errorf("%s: %s decodes to %+v, encoding/json gives %+v", st.Name(), raw, got.Elem().Interface(), want.Elem().Interface())
			}
		}
	}
}

// decodeBoth decodes j with the hand-written decoder and with the reflect
// oracle and fails on any difference in the result or in the errors.
func decodeBoth(t *testing.T, j any) {
	t.Helper()
	var got, want Policy
	gerr, werr := &ConfigError{}, &ConfigError{}
	gok := decodeFields(gerr, "", j, got.fields())
	wok := reflectDecodeShape(werr, "", j, reflect.ValueOf(&want).Elem())
	if gok != wok || !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gerr.Fields, werr.Fields) {
		raw, _ := json.Marshal(j)
		t.Fatalf("document %s:\nhand-written: ok=%v %+v\n  errors %v\nreflect:      ok=%v %+v\n  errors %v",
			raw, gok, got, gerr.Fields, wok, want, werr.Fields)
	}
}

// policyGen makes random documents shaped like a policy: mostly the right
// kinds, with wrong kinds, nulls, unknown keys and awkward numbers mixed in.
type policyGen struct{ r *rand.Rand }

var awkwardNumbers = []float64{0, math.Copysign(0, -1), 1, -1, 7, 1.5, -2.5, 1e300, -1e300, 1 << 53, 1<<53 + 2,
	1 << 62, 1 << 63, -(1 << 63), math.Nextafter(1<<63, 0), math.Nextafter(-(1 << 63), math.Inf(-1)), 4096, 1 << 20}

func (g policyGen) wrong(depth int) any {
	switch g.r.IntN(6) {
	case 0:
		return nil
	case 1:
		return "w" + strconv.Itoa(g.r.IntN(3))
	case 2:
		return awkwardNumbers[g.r.IntN(len(awkwardNumbers))]
	case 3:
		return g.r.IntN(2) == 0
	case 4:
		if depth > 3 {
			return []any{}
		}
		return []any{g.wrong(depth + 1)}
	}
	if depth > 3 {
		return map[string]any{}
	}
	return map[string]any{"k" + strconv.Itoa(g.r.IntN(3)): g.wrong(depth + 1)}
}

func (g policyGen) value(t reflect.Type, depth int) any {
	if g.r.IntN(8) == 0 {
		return g.wrong(depth)
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.value(t.Elem(), depth)
	case reflect.Slice:
		arr := make([]any, g.r.IntN(4))
		for i := range arr {
			arr[i] = g.value(t.Elem(), depth+1)
		}
		return arr
	case reflect.Struct:
		obj := map[string]any{}
		for name, f := range reflectJSONFields(t) {
			if g.r.IntN(2) == 0 {
				obj[name] = g.value(f.Type, depth+1)
			}
		}
		if g.r.IntN(6) == 0 {
			// An unknown key, sometimes one that is known elsewhere.
			obj[[]string{"extra", "name", "enabled", "Read", "ttl "}[g.r.IntN(5)]] = g.wrong(depth + 1)
		}
		return obj
	case reflect.String:
		return []string{"", "w3c", "x-a", "inbound"}[g.r.IntN(4)]
	case reflect.Bool:
		return g.r.IntN(2) == 0
	case reflect.Int:
		return awkwardNumbers[g.r.IntN(len(awkwardNumbers))]
	}
	panic("policy field of kind " + t.Kind().String())
}

func TestPolicyDecoderMatchesReflectOracle(t *testing.T) {
	g := policyGen{rand.New(rand.NewPCG(1, 2))}
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for range n {
		decodeBoth(t, g.value(reflect.TypeFor[Policy](), 0))
	}
	for _, d := range fuzzPolicies {
		j, err := decodeJSON([]byte(d))
		if err != nil {
			t.Fatal(err)
		}
		decodeBoth(t, j)
	}
}

func FuzzPolicyDecoderMatchesReflectOracle(f *testing.F) {
	for _, d := range fuzzPolicies {
		f.Add(d)
	}
	g := policyGen{rand.New(rand.NewPCG(3, 4))}
	for range 30 {
		raw, err := json.Marshal(g.value(reflect.TypeFor[Policy](), 0))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(raw))
	}
	f.Fuzz(func(t *testing.T, doc string) {
		if j, err := decodeJSON([]byte(doc)); err == nil {
			decodeBoth(t, j)
		}
	})
}
