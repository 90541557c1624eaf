// Package engine decides, for one request, what tracebridge does to its trace
// headers: keep, repair, restart, translate, inject, restore from the
// correlation store, reject, and which tags to attach. It reads headers
// through propagation.Headers and returns a Result (header mutations, tags,
// decision events and an optional local reply); it never talks to a proxy.
//
// The same engine is driven by the proxy-wasm filter and by the ext_proc
// service, configured by one policy document (Policy). It builds for
// GOOS=wasip1 with the standard Go compiler: JSON and regular expressions are
// used at configuration time and for opt-in tag sources only.
package engine
