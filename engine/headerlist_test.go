package engine

import (
	"math/rand/v2"
	"testing"
)

func TestHeaderListGet(t *testing.T) {
	list := HeaderList{{"a", "1"}, {"b", "2"}, {"a", "3"}, {"baggage", "k=v"}}
	for _, c := range []struct {
		name  string
		value string
		n     int
	}{
		{"a", "1,3", 2},
		{"b", "2", 1},
		{"baggage", "k=v", 1},
		{"c", "", 0},
		{"", "", 0},
	} {
		v, n := list.Get(c.name)
		if v != c.value || n != c.n {
			t.Errorf("Get(%q) = %q, %d; want %q, %d", c.name, v, n, c.value, c.n)
		}
	}
}

// TestIndexedHeadersAgree checks that the presence filter never hides a
// header: on random lists and names, IndexedHeaders.Get equals HeaderList.Get.
func TestIndexedHeadersAgree(t *testing.T) {
	names := []string{"", "a", "b", "traceparent", "tracestate", "baggage", "b3", "x-b3-traceid",
		"x-b3-spanid", "x-b3-sampled", "x-b3-flags", "x-b3-parentspanid", "x-request-id",
		"uber-trace-id", ":path", ":authority", "user-agent", "accept", "x-tenant"}
	r := rand.New(rand.NewPCG(1, 2))
	var ih IndexedHeaders
	for i := 0; i < 5000; i++ {
		var list HeaderList
		for j := r.IntN(12); j > 0; j-- {
			list = append(list, HeaderPair{names[r.IntN(len(names))], string(rune('a' + r.IntN(26)))})
		}
		ih.Reset(list)
		for _, name := range names {
			v1, n1 := list.Get(name)
			v2, n2 := ih.Get(name)
			if v1 != v2 || n1 != n2 {
				t.Fatalf("list %v, Get(%q): indexed %q,%d; plain %q,%d", list, name, v2, n2, v1, n1)
			}
		}
	}
}

// TestIndexedHeadersFilters checks that the filter does its job: a lookup of
// an absent trace header in a typical request is answered without a scan.
func TestIndexedHeadersFilters(t *testing.T) {
	var ih IndexedHeaders
	ih.Reset(HeaderList{{":method", "GET"}, {":path", "/"}, {":authority", "a"}, {":scheme", "http"},
		{"user-agent", "curl"}, {"accept", "*/*"}, {"traceparent", "x"}, {"x-request-id", "r"}})
	absent := []string{"tracestate", "baggage", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid",
		"x-b3-sampled", "x-b3-flags", "uber-trace-id"}
	filtered := 0
	for _, name := range absent {
		if ih.present&presenceBit(name) == 0 {
			filtered++
		}
	}
	if filtered < len(absent)-2 {
		t.Errorf("the filter answers only %d of %d absent trace headers", filtered, len(absent))
	}
}

// lowerNameSink keeps LowerName's result used in the allocation check.
var lowerNameSink string

func TestLowerName(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"traceparent", "traceparent"}, {"X-Request-Id", "x-request-id"}, {":path", ":path"}, {"", ""}, {"B3", "b3"},
	} {
		if got := LowerName(c.in); got != c.want {
			t.Errorf("LowerName(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { lowerNameSink = LowerName("x-request-id") }); n != 0 {
		t.Errorf("a lower-case name costs %v allocations", n)
	}
}
