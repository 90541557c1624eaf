package engine

import (
	"github.com/tracebridge/tracebridge/propagation"
	"unsafe"
)

// A record is the restore headers of an inbound request as it left the
// engine, encoded as repeated [name length u8][name][value length u16][value].
// Names travel with values so that replicas with different policies (ext_proc
// with Redis) still read each other's records. The u16 is big-endian, written
// by hand: encoding/binary would link reflect into the wasm module.
const maxRecordValue = 8192

func appendRecordEntry(dst []byte, name, value string) []byte {
	dst = append(dst, byte(len(name)))
	dst = append(dst, name...)
	dst = append(dst, byte(len(value)>>8), byte(len(value)))
	return append(dst, value...)
}

// AppendRecordEntry appends one entry of the record encoding to dst (for
// stores and tools that build or inspect records).
func AppendRecordEntry(dst []byte, name, value string) []byte {
	return appendRecordEntry(dst, name, value)
}

// decodeRecord calls fn for each entry; it stops at the first malformed
// byte, so a corrupted record yields a prefix, never a panic.
func decodeRecord(rec string, fn func(name, value string)) {
	for len(rec) > 0 {
		nl := int(rec[0])
		if len(rec) < 1+nl+2 {
			return
		}
		name := rec[1 : 1+nl]
		vl := int(rec[1+nl])<<8 | int(rec[2+nl])
		if len(rec) < 3+nl+vl {
			return
		}
		fn(name, rec[3+nl:3+nl+vl])
		rec = rec[3+nl+vl:]
	}
}

// finalValue is a header's value after the result's mutations.
func finalValue(h Headers, res *Result, name string) (string, bool) {
	for i := len(res.Mutations) - 1; i >= 0; i-- {
		if m := &res.Mutations[i]; m.Name == name {
			return m.Value, m.Op == OpSet
		}
	}
	v, n := h.Get(name)
	return v, n > 0
}

// record stores an inbound request's context for its outbound calls and
// counts it as in flight (sole-in-flight strategy).
func (e *Engine) record(st *Stream, h Headers, res *Result, ctxValid bool) {
	c := e.cfg
	var rec []byte
	if ctxValid && (c.byKey || c.soleInFlight || e.narrow != nil) {
		rec = res.scratch[:0]
		for _, name := range c.restoreHeaders {
			if v, ok := finalValue(h, res, name); ok && v != "" && len(v) <= maxRecordValue && len(name) < 256 &&
				len(rec)+3+len(name)+len(v) <= MaxRecordBytes { // what would not fit is left out; the rest is kept
				rec = appendRecordEntry(rec, name, v)
			}
		}
	}
	if cap(rec) > cap(res.scratch) {
		res.scratch = rec[:0]
	}
	if c.byKey && len(rec) > 0 {
		for _, kh := range c.keyHeaders {
			if v, ok := finalValue(h, res, kh); ok && v != "" {
				if err := e.store.Put(res.storeKey(kh, v), rec); err != nil {
					res.Decisions.add(DecisionError)
					continue
				}
				res.Decisions.add(DecisionRecorded)
			}
		}
	}
	if e.narrow != nil && !st.narrowIn {
		e.enterNarrow(st, h, res, rec)
	}
	if c.soleInFlight && !st.inFlight {
		// Every inbound request is counted, with or without a record: the
		// count, not the record, is what makes a guess safe.
		if st.owner == 0 {
			st.owner = e.owner()
		}
		if err := e.store.Enter(st.owner, rec); err != nil {
			res.Decisions.add(DecisionError)
			return
		}
		st.inFlight = true
		if len(rec) > 0 {
			res.Decisions.add(DecisionRecorded)
		}
	}
}

func (e *Engine) owner() uint64 {
	for {
		s := e.ids.SpanID()
		var v uint64
		for _, b := range s {
			v = v<<8 | uint64(b)
		}
		if v != 0 {
			return v
		}
	}
}

// overlay is a header view with restored values laid over the request's.
type overlay struct {
	base  Headers // nil: the record alone
	names [16]string
	vals  [16]string
	n     int
	// hidden is a request header the view reports absent (a tracestate
	// that did not come with the restored traceparent).
	hidden string
}

func (o *overlay) Get(name string) (string, int) {
	for i := 0; i < o.n; i++ {
		if o.names[i] == name {
			return o.vals[i], 1
		}
	}
	if o.base == nil || name == o.hidden {
		return "", 0
	}
	return o.base.Get(name)
}

// drop removes the entries named name.
func (o *overlay) drop(name string) bool {
	k, found := 0, false
	for i := 0; i < o.n; i++ {
		if o.names[i] == name {
			found = true
			continue
		}
		o.names[k], o.vals[k] = o.names[i], o.vals[i]
		k++
	}
	o.n = k
	return found
}

// restores reports whether name is one of the policy's restore headers.
func (c *Config) restores(name string) bool {
	for _, h := range c.restoreHeaders {
		if h == name {
			return true
		}
	}
	return false
}

// readRecord fills ov (base nil) with the entries of rec that may be
// restored: names in correlation.restoreHeaders, and trace headers that pass
// the rules an incoming header must meet (the store is shared: Redis, or
// proxy-wasm shared data every plugin of the proxy can write). It reports
// whether anything was left out and whether a valid context remains.
func (e *Engine) readRecord(ov *overlay, rec string) (dropped, usable bool) {
	c := e.cfg
	var dup [len(overlay{}.names)]bool
	decodeRecord(rec, func(name, value string) {
		if !c.restores(name) {
			dropped = true
			return
		}
		for i := 0; i < ov.n; i++ {
			if ov.names[i] == name {
				// A repeated name: the same value twice is harmless (a
				// policy may list a header twice), two values are a
				// repeated header, which no single record entry can be.
				dup[i] = dup[i] || ov.vals[i] != value
				return
			}
		}
		if ov.n == len(ov.names) {
			dropped = true
			return
		}
		ov.names[ov.n], ov.vals[ov.n] = name, value
		ov.n++
	})
	for i := ov.n - 1; i >= 0; i-- {
		if dup[i] {
			ov.drop(ov.names[i])
			dropped = true
		}
	}
	// The same parsers as for an incoming request, over every format whatever
	// the policy reads: a record is written from a request the engine already
	// made consistent, so anything malformed in it was not written by it.
	var rx extraction
	rx.extractFormats(c, ov, propagation.Formats[:])
	for _, f := range propagation.Formats {
		if st := &rx.f[f]; st.present && !st.valid || f == propagation.FormatB3Single && rx.staleB3 {
			for _, name := range propagation.FormatHeaders(f) {
				dropped = ov.drop(name) || dropped
			}
		}
	}
	// TC §3.3: a tracestate only travels with the valid traceparent it
	// describes.
	if rx.tracestate != propagation.OK || !rx.f[propagation.FormatW3C].valid {
		dropped = ov.drop(propagation.HeaderTracestate) || dropped
	}
	if rx.baggage != propagation.OK {
		dropped = ov.drop(propagation.HeaderBaggage) || dropped
	}
	return dropped, rx.primary(c) != nil
}

// enterNarrow puts an inbound request with at least one candidate header in
// the narrowed strategy's in-flight set, with or without a record: like the
// sole-in-flight count, every request that could match is what makes a match
// certain.
func (e *Engine) enterNarrow(st *Stream, h Headers, res *Result, rec []byte) {
	prints, err := e.narrowPrints(e.narrow, h, res)
	if err != nil {
		res.Decisions.add(DecisionError)
		return
	}
	if len(prints) == 0 {
		return
	}
	if st.owner == 0 {
		st.owner = e.owner()
	}
	if err := e.narrow.EnterNarrow(st.owner, rec, prints); err != nil {
		res.Decisions.add(DecisionError)
		return
	}
	st.narrowIn = true
	if len(rec) > 0 {
		res.Decisions.add(DecisionRecorded)
	}
}

// lookupNarrow finds the only in-flight inbound request sharing a
// fingerprint with h. decided is true when the answer is final (one match,
// with or without a record, or an ambiguous one): only "no match" (or a
// store error) falls through to sole in flight.
func (e *Engine) lookupNarrow(h Headers, res *Result, scratch []byte) (rec []byte, found, decided bool) {
	prints, err := e.narrowPrints(e.narrow, h, res)
	if err != nil {
		res.Decisions.add(DecisionError)
		return nil, false, false
	}
	if len(prints) == 0 {
		return nil, false, false
	}
	n, r, ok, err := e.narrow.Narrow(scratch, prints)
	switch {
	case err != nil:
		res.Decisions.add(DecisionError)
		return nil, false, false
	case ok:
		return r, true, true
	case n >= 2:
		res.Decisions.add(DecisionAmbiguous)
		return r, false, true
	}
	return r, false, n == 1
}

// restore looks up the record of the inbound request an outbound request
// belongs to: by key header, then (opt-in) by narrowed fingerprints, then
// (opt-in) by sole in flight. Trace headers
// from the record replace the request's; other restore headers (baggage,
// opaque ids) are added only where the app sent none.
func (e *Engine) restore(h Headers, res *Result) (Headers, bool) {
	c := e.cfg
	if e.store == nil || !c.byKey && !c.soleInFlight && e.narrow == nil {
		return nil, false
	}
	scratch := res.scratch[:0]
	var rec []byte
	found := false
	var err error
	if c.byKey {
		for _, kh := range c.keyHeaders {
			v, n := h.Get(kh)
			if n != 1 || v == "" {
				continue
			}
			if rec, found, err = e.store.Get(scratch, res.storeKey(kh, v)); err != nil {
				res.Decisions.add(DecisionError)
			}
			if found {
				res.Strategy = StrategyKey
				break
			}
		}
	}
	narrowed, decided := false, false
	if !found && e.narrow != nil {
		rec, narrowed, decided = e.lookupNarrow(h, res, scratch)
		found = narrowed
		if found {
			res.Strategy = StrategyNarrowed
		}
	}
	if !found && !decided && c.soleInFlight {
		n, r, ok, err := e.store.Sole(scratch)
		switch {
		case err != nil:
			res.Decisions.add(DecisionError)
		case ok:
			rec, found = r, true
			res.Strategy = StrategySoleInFlight
		case n >= 2:
			res.Decisions.add(DecisionAmbiguous)
		}
	}
	if cap(rec) > cap(res.scratch) {
		res.scratch = rec[:0]
	}
	if !found || len(rec) == 0 {
		res.Strategy = StrategyNone
		return nil, false
	}
	ov := &res.restored // valid until the next restore with res: OnRequest uses it only while it runs
	*ov = overlay{}
	dropped, usable := e.readRecord(ov, string(rec))
	if dropped {
		res.Decisions.add(DecisionDropped)
	}
	if !usable {
		res.Strategy = StrategyNone
		return nil, false
	}
	ov.base = h
	k := 0
	for i := 0; i < ov.n; i++ {
		name, value := ov.names[i], ov.vals[i]
		if !isTraceHeader(name) {
			if _, n := h.Get(name); n > 0 {
				continue
			}
		}
		ov.names[k], ov.vals[k] = name, value
		k++
		res.set(name, value)
	}
	ov.n = k
	// The record's trace headers replace the request's: a tracestate the
	// request carries did not come with the restored traceparent.
	if ov.has(propagation.HeaderTraceparent) && !ov.has(propagation.HeaderTracestate) {
		if _, n := h.Get(propagation.HeaderTracestate); n > 0 {
			ov.hidden = propagation.HeaderTracestate
			res.remove(propagation.HeaderTracestate)
		}
	}
	res.Decisions.add(DecisionRestored)
	if narrowed {
		res.Decisions.add(DecisionNarrowed)
	}
	return ov, true
}

// has reports whether the record itself holds name.
func (o *overlay) has(name string) bool {
	for i := 0; i < o.n; i++ {
		if o.names[i] == name {
			return true
		}
	}
	return false
}

func isTraceHeader(name string) bool {
	for _, f := range propagation.Formats {
		for _, n := range propagation.FormatHeaders(f) {
			if n == name {
				return true
			}
		}
	}
	return false
}

// storeKey returns "<header>=<value>", the correlation store key, built in
// res's key buffer: a string per request would be the engine's only other
// allocation. Stores copy keys they keep (Store).
func (res *Result) storeKey(header, value string) string {
	res.keyBuf = append(append(append(res.keyBuf[:0], header...), '='), value...)
	return unsafe.String(unsafe.SliceData(res.keyBuf), len(res.keyBuf))
}
