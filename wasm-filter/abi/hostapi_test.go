package abi

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestHostAPIMatchesSDK compares hostAPI with the SDK's ProxyWasmHost, read
// from the SDK source in the module cache: same methods in the same order
// (the itab order is by name, so the set decides it) and the same parameter
// and result types once the SDK's internal uint32 types are spelled uint32.
func TestHostAPIMatchesSDK(t *testing.T) {
	const pkg = "github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/internal"
	out, err := exec.Command("go", "list", "-f", "{{.Dir}}", pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	file := filepath.Join(strings.TrimSpace(string(out)), "abi_hostcalls_mock.go")
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	sdk := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || ts.Name.Name != "ProxyWasmHost" {
			return true
		}
		for _, m := range ts.Type.(*ast.InterfaceType).Methods.List {
			sdk[m.Names[0].Name] = signature(m.Type.(*ast.FuncType))
		}
		return false
	})
	if len(sdk) == 0 {
		t.Fatalf("no ProxyWasmHost interface in %s", file)
	}
	ours := map[string]string{}
	typ := reflect.TypeFor[hostAPI]()
	for i := range typ.NumMethod() {
		m := typ.Method(i)
		var in, res []string
		for j := range m.Type.NumIn() {
			in = append(in, m.Type.In(j).String())
		}
		for j := range m.Type.NumOut() {
			res = append(res, m.Type.Out(j).String())
		}
		ours[m.Name] = "(" + strings.Join(in, ",") + ")" + strings.Join(res, ",")
	}
	if !reflect.DeepEqual(sdk, ours) {
		for name, sig := range sdk {
			if ours[name] != sig {
				t.Errorf("%s: SDK %s, hostAPI %q", name, sig, ours[name])
			}
		}
		for name := range ours {
			if _, ok := sdk[name]; !ok {
				t.Errorf("hostAPI has %s, the SDK does not", name)
			}
		}
	}
}

// signature spells an SDK method type as reflect would spell hostAPI's.
func signature(ft *ast.FuncType) string {
	list := func(fl *ast.FieldList) []string {
		var s []string
		if fl == nil {
			return s
		}
		for _, f := range fl.List {
			n := max(len(f.Names), 1)
			for range n {
				s = append(s, spell(f.Type))
			}
		}
		return s
	}
	return "(" + strings.Join(list(ft.Params), ",") + ")" + strings.Join(list(ft.Results), ",")
}

func spell(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.StarExpr:
		return "*" + spell(e.X)
	case *ast.Ident:
		switch e.Name {
		case "byte":
			return "uint8"
		case "LogLevel", "MapType", "BufferType", "StreamType", "MetricType", "Status":
			return "uint32" // the SDK's internal types, all `type X uint32`
		}
		return e.Name
	}
	return "?"
}
