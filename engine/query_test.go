package engine

import (
	"net/url"
	"testing"
)

var querySamples = []string{
	"", "a=1", "a=1&a=2", "b=2&a=x+y", "a=%41%zz&a=ok", "a=%4", "a=%", "a%3D=1", "%61=1", "a;b=1&a=2", "a=1;2&a=3",
	"&&a=&a=2", "a", "a&a=1", "x=1&a=%e2%82%ac", "a=%C3%A9&", "+a=1&%20a=2&a+=3", "a=b=c", "=1&a=2",
}

// queryParam must agree with url.ParseQuery(q).Get(name).
func checkQueryParam(t *testing.T, q, name string) {
	t.Helper()
	vals, _ := url.ParseQuery(q)
	if got, want := queryParam(q, name), vals.Get(name); got != want {
		t.Fatalf("queryParam(%q, %q) = %q, url.ParseQuery gives %q", q, name, got, want)
	}
}

func TestQueryParamMatchesNetURL(t *testing.T) {
	for _, q := range querySamples {
		for _, name := range []string{"a", " a", "a ", "", "a=", "b"} {
			checkQueryParam(t, q, name)
		}
	}
}

func FuzzQueryParam(f *testing.F) {
	for _, q := range querySamples {
		f.Add(q, "a")
	}
	f.Fuzz(checkQueryParam)
}
