// Package wasmbin writes minimal WebAssembly binaries for the tests of the
// proxy-wasm host: hand-made modules whose imports and function bodies
// exercise one host rule at a time (a missing import, a restricted call
// during _initialize, …). Only tests import it.
package wasmbin

// Value types.
const (
	I32 = 0x7f
	I64 = 0x7e
)

// Import is an imported function.
type Import struct {
	Mod, Name       string
	Params, Results []byte
}

// Imp is an Import.
func Imp(mod, name string, params, results []byte) Import {
	return Import{Mod: mod, Name: name, Params: params, Results: results}
}

// Func is a defined function, exported under Name.
type Func struct {
	Name            string
	Params, Results []byte
	Body            []byte // instructions, without locals or the final end
}

// Fn is a Func.
func Fn(name string, params, results, body []byte) Func {
	return Func{Name: name, Params: params, Results: results, Body: body}
}

func uleb(v uint32) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			out = append(out, b|0x80)
			continue
		}
		return append(out, b)
	}
}

func sleb(v int32) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && b&0x40 == 0) || (v == -1 && b&0x40 != 0) {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}

// I32Const is the instruction i32.const v.
func I32Const(v int32) []byte { return append([]byte{0x41}, sleb(v)...) }

// Concat joins byte strings.
func Concat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

func vec(n int, items ...[]byte) []byte { return append(uleb(uint32(n)), Concat(items...)...) }

func name(s string) []byte { return append(uleb(uint32(len(s))), s...) }

func section(id byte, body []byte) []byte {
	return Concat([]byte{id}, uleb(uint32(len(body))), body)
}

// Module builds a module with one page of exported memory, the imports
// (function indices 0…) and the functions, each exported by its name.
func Module(imps []Import, fns []Func) []byte {
	var types, imports, funcs, exports, codes [][]byte
	for i, im := range imps {
		types = append(types, Concat([]byte{0x60}, vec(len(im.Params), im.Params), vec(len(im.Results), im.Results)))
		imports = append(imports, Concat(name(im.Mod), name(im.Name), []byte{0}, uleb(uint32(i))))
	}
	for i, f := range fns {
		ti := len(imps) + i
		types = append(types, Concat([]byte{0x60}, vec(len(f.Params), f.Params), vec(len(f.Results), f.Results)))
		funcs = append(funcs, uleb(uint32(ti)))
		exports = append(exports, Concat(name(f.Name), []byte{0}, uleb(uint32(len(imps)+i))))
		body := Concat([]byte{0}, f.Body, []byte{0x0b})
		codes = append(codes, Concat(uleb(uint32(len(body))), body))
	}
	exports = append(exports, Concat(name("memory"), []byte{2, 0}))
	return Concat([]byte{0, 'a', 's', 'm', 1, 0, 0, 0},
		section(1, vec(len(types), types...)),
		section(2, vec(len(imports), imports...)),
		section(3, vec(len(funcs), funcs...)),
		section(5, vec(1, []byte{0, 1})),
		section(7, vec(len(exports), exports...)),
		section(10, vec(len(codes), codes...)))
}
