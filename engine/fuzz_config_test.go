package engine

import "testing"

// FuzzLoadPolicy: any document either loads or fails with field errors,
// never panics; a loaded policy drives a request without panicking.
func FuzzLoadPolicy(f *testing.F) {
	for _, p := range fuzzPolicies {
		f.Add([]byte(p))
	}
	f.Add([]byte(`{"correlation":{"ttl":"thirty"},"tags":[{"name":"x","from":{"path":{"regex":"(a)(b)","group":3}},"to":["x"]}]}`))
	f.Add([]byte(`{"trust":{"untrustedCIDRs":["::ffff:10.0.0.0/104"],"debugToken":{"secret":"0123456789abcdef"}}}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		cfg, err := LoadPolicy(doc, func(string) string { return "v" })
		if err != nil {
			if _, ok := err.(*ConfigError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
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
