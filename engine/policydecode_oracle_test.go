package engine

import (
	"reflect"
	"strconv"
	"strings"
)

// The reflection-based policy decoder the hand-written one (policydecode.go)
// replaced, kept as the oracle of the differential tests: it derives the
// mapping from the struct tags, so it also covers fields added later.

// reflectDecodeShape fills the Go value v from the decoded JSON value j, walking
// both together, and reports unknown keys and kind mismatches with their
// paths, so that errors read like `correlation.ttl: must be a string, got
// number`. Mismatched values are left at their zero value; the rest is filled,
// so that Compile can report semantic errors in the same pass (as
// encoding/json would). It reports whether j's kind fits v.
func reflectDecodeShape(cerr *ConfigError, path string, j any, v reflect.Value) bool {
	if j == nil {
		return true // null leaves the default.
	}
	if v.Kind() == reflect.Pointer {
		elem := reflect.New(v.Type().Elem())
		if !reflectDecodeShape(cerr, path, j, elem.Elem()) {
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
		fields := reflectJSONFields(v.Type())
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sortStrings(keys)
		for _, k := range keys {
			f, ok := fields[k]
			if !ok {
				cerr.add(joinPath(path, printableKey(k)), "unknown field (known: "+strings.Join(reflectSortedKeys(fields), ", ")+")")
				continue
			}
			reflectDecodeShape(cerr, joinPath(path, k), obj[k], v.FieldByIndex(f.Index))
		}
	case reflect.Slice:
		arr, ok := j.([]any)
		if !ok {
			cerr.add(path, "must be a list, got "+describeJSON(j))
			return false
		}
		if len(arr) > MaxListEntries {
			cerr.add(path, "must have at most "+strconv.Itoa(MaxListEntries)+" entries, got "+strconv.Itoa(len(arr)))
			return false
		}
		s := reflect.MakeSlice(v.Type(), len(arr), len(arr))
		for i, ev := range arr {
			reflectDecodeShape(cerr, path+"["+strconv.Itoa(i)+"]", ev, s.Index(i))
		}
		v.Set(s)
	case reflect.String:
		if s, ok := j.(string); ok && len(s) > MaxStringBytes {
			cerr.add(path, "must be at most "+strconv.Itoa(MaxStringBytes)+" bytes, got "+strconv.Itoa(len(s)))
			return false
		} else if ok {
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

func reflectJSONFields(t reflect.Type) map[string]reflect.StructField {
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

func reflectSortedKeys(m map[string]reflect.StructField) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}
