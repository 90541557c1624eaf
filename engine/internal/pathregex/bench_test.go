package pathregex

import (
	"regexp"
	"strings"
	"testing"
)

var benchCases = []struct {
	name, expr, path string
	group            int
}{
	{"orgs-anchored", `^/api/v1/orgs/([^/]+)`, "/api/v1/orgs/acme-corp/projects/p-42/items", 1},
	{"lower-prefix", `^/[a-z]+`, "/api/v1/orgs/acme-corp/projects/p-42/items", 0},
	{"users-orders", `/users/(\d+)/orders/([^/?]+)`, "/shop/v2/users/123456/orders/ord-9f8e7d", 2},
	{"users-orders-miss", `/users/(\d+)/orders/([^/?]+)`, "/api/v1/orgs/acme-corp/projects/p-42/items", 2},
	// 4 KB: past the backtracker's bitmap, so the Pike VM runs.
	{"users-orders-4k", `/users/(\d+)/orders/([^/?]+)`, strings.Repeat("/users/x", 512) + "/users/7/orders/o-1", 2},
}

// BenchmarkPathTag: what the engine does per request, FindGroup here
// against FindStringSubmatch of regexp (the engine's previous call), plus
// FindStringSubmatchIndex on both sides for a like-for-like comparison.
func BenchmarkPathTag(b *testing.B) {
	for _, bc := range benchCases {
		re, err := Compile(bc.expr)
		if err != nil {
			b.Fatal(err)
		}
		goRE := regexp.MustCompile(bc.expr)
		b.Run(bc.name+"/pathregex-FindGroup", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				re.FindGroup(bc.path, bc.group)
			}
		})
		b.Run(bc.name+"/regexp-FindStringSubmatch", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = goRE.FindStringSubmatch(bc.path)
			}
		})
		b.Run(bc.name+"/pathregex-Index", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				re.FindStringSubmatchIndex(bc.path)
			}
		})
		b.Run(bc.name+"/regexp-Index", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				goRE.FindStringSubmatchIndex(bc.path)
			}
		})
	}
}
