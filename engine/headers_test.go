package engine

import "strings"

// testHeaders is a multi-valued header map for tests (lower-case names).
type testHeaders map[string][]string

func (h testHeaders) Get(name string) (string, int) {
	v := h[name]
	if len(v) == 0 {
		return "", 0
	}
	if len(v) == 1 {
		return v[0], 1
	}
	return strings.Join(v, ","), len(v)
}

// apply returns a copy of h with the result's mutations applied.
func (h testHeaders) apply(res *Result) testHeaders {
	out := testHeaders{}
	for k, v := range h {
		out[k] = append([]string(nil), v...)
	}
	for _, m := range res.Mutations {
		if m.Op == OpRemove {
			delete(out, m.Name)
		} else {
			out[m.Name] = []string{m.Value}
		}
	}
	return out
}
