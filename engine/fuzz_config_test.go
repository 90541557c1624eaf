package engine

import (
	"strings"
	"testing"
)

// FuzzLoadPolicy: any document either loads or fails with field errors,
// each naming its field path or the whole document, never panics; a loaded
// policy drives a request without panicking.
func FuzzLoadPolicy(f *testing.F) {
	for _, p := range fuzzPolicies {
		f.Add([]byte(p))
	}
	for _, p := range []string{
		"\xef\xbb\xbf{}", "null", `{"correlation":{"capacity":1e400}}`, `{"a":1,"a":2}`,
		`{"inject":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
		`{"tags":[{"name":"t","from":{"path":{"regex":"(abcd){600}"}},"to":["header"]}]}`,
		"{\"read\":[\"w3c\"\x00]}", "\xff\xfe{\x00}\x00",
	} {
		f.Add([]byte(p))
	}
	f.Add([]byte(`{"correlation":{"ttl":"thirty"},"tags":[{"name":"x","from":{"path":{"regex":"(a)(b)","group":3}},"to":["x"]}]}`))
	f.Add([]byte(`{"trust":{"untrustedCIDRs":["::ffff:10.0.0.0/104"],"debugToken":{"secret":"0123456789abcdef"}}}`))
	f.Add([]byte(`{"clientSpans":{"enabled":true,"cluster":"outbound|9411||zipkin","format":"otlp","maxBatchBytes":1024,"flushInterval":"10ms","timeout":"1m"}}`))
	f.Add([]byte(`{"clientSpans":{"enabled":true,"cluster":"","path":"x","maxBatchBytes":1e9,"timeout":"-1s"}}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		cfg, err := LoadPolicy(doc, func(string) string { return "v" })
		if err != nil {
			ce, ok := err.(*ConfigError)
			if !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			for _, fe := range ce.Fields {
				if fe.Path == "" && !strings.HasPrefix(fe.Msg, "the policy ") {
					t.Fatalf("error names no field path: %v", fe)
				}
			}
			return
		}
		e := New(cfg, Options{Store: NewMemoryStore(8, 1e9, nil)})
		var st Stream
		var res Result
		e.OnRequest(&st, &Request{Headers: HeaderList{{"traceparent", inboundTP}, {"x-request-id", "r"}}, Direction: Inbound}, &res)
		e.OnDone(&st)
	})
}

// FuzzDecodeStoredValues: records and in-flight sets read from a shared
// store (another replica, another plugin version) never panic the reader.
func FuzzDecodeStoredValues(f *testing.F) {
	f.Add(appendRecordEntry(nil, "traceparent", inboundTP))
	f.Add((&InFlightSet{Entries: []InFlightEntry{{Owner: 1, Started: 2, Rec: []byte("r")}}}).AppendBinary(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeRecord(string(b), func(string, string) {})
		s := DecodeInFlightSet(b)
		s.Expire(0, 1)
		s.Leave(1, 0)
		_ = s.AppendBinary(nil)
	})
}
