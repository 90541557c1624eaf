package plugin

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/tracebridge/tracebridge/engine"
)

// NewVMContext returns the plugin's root context (for proxywasm.SetVMContext).
func NewVMContext() types.VMContext { return &vmContext{} }

type vmContext struct{ types.DefaultVMContext }

func (*vmContext) NewPluginContext(uint32) types.PluginContext { return &pluginContext{} }

type pluginContext struct {
	types.DefaultPluginContext
	engine   *engine.Engine
	counters *decisionCounters
	// One Result per VM: a VM runs one callback at a time (one VM per worker).
	res     engine.Result
	headers engine.IndexedHeaders
	// respRes is the response callbacks' result: its own buffer, so that
	// a response never writes over request values a host may still hold
	// (the SDK's emulator keeps the strings it was given).
	respRes engine.Result
	// resp holds the response's header lines when the engine asks for a
	// header the response has (see responseHeaders).
	resp   engine.HeaderList
	panics map[string]bool
	// Contexts of finished streams, reused by NewHttpContext: allocating
	// one is a large share of the context-create phase's guest time
	// (BENCHMARKS.md, wasm module).
	free []*httpContext
	// Which host properties the policy needs: each read is a host call, so
	// a request reads only those.
	needDirection, needSource, needPeer bool
	// rep reports client spans (nil: policy clientSpans is off).
	rep *reporter
}

// OnPluginStart loads the policy from pluginConfig. A bad policy fails the
// plugin with a log line naming every bad field, so Envoy refuses it
// (failStrategy FAIL_CLOSE) or skips it (FAIL_OPEN): never a half-configured
// filter.
func (p *pluginContext) OnPluginStart(int) (status types.OnPluginStartStatus) {
	defer func() {
		if r := recover(); r != nil {
			proxywasm.LogCritical("tracebridge: plugin start panicked: " + panicText(r))
			status = types.OnPluginStartStatusFailed
		}
	}()
	doc, err := proxywasm.GetPluginConfiguration()
	if err != nil && !errors.Is(err, types.ErrorStatusNotFound) {
		proxywasm.LogCritical("tracebridge: reading pluginConfig: " + err.Error())
		return types.OnPluginStartStatusFailed
	}
	cfg, err := engine.LoadPolicy(doc, os.Getenv)
	if err != nil {
		proxywasm.LogCritical("tracebridge: pluginConfig refused: " + err.Error())
		return types.OnPluginStartStatusFailed
	}
	if p.counters, err = defineCounters(); err != nil {
		proxywasm.LogCritical("tracebridge: " + err.Error())
		return types.OnPluginStartStatusFailed
	}
	p.panics = map[string]bool{}
	store := newSharedStore(cfg)
	if cfg.SoleInFlight() {
		if err := store.initInFlight(); err != nil {
			proxywasm.LogCritical("tracebridge: creating the in-flight set in shared data: " + err.Error())
			return types.OnPluginStartStatusFailed
		}
	}
	if cfg.Narrowed() {
		if err := store.initNarrow(); err != nil {
			proxywasm.LogCritical("tracebridge: creating the narrowed in-flight set in shared data: " + err.Error())
			return types.OnPluginStartStatusFailed
		}
	}
	if cs := cfg.ClientSpans(); cs != nil {
		if p.rep, err = newReporter(cs); err != nil {
			proxywasm.LogCritical("tracebridge: " + err.Error())
			return types.OnPluginStartStatusFailed
		}
	}
	p.engine = engine.New(cfg, engine.Options{Store: store, Now: func() time.Time { return now() }, ReportsClientSpans: p.rep != nil})
	// Each callback applies the result's mutations before it returns, so
	// their values may alias the result's buffer (one allocation less per
	// callback that writes a header).
	p.res.BorrowValues, p.respRes.BorrowValues = true, true
	p.needDirection, p.needSource, p.needPeer = cfg.ReadsDirection(), cfg.ReadsSource(), cfg.ReadsPeerPrincipal()
	for _, t := range cfg.Policy.Tags {
		for _, s := range t.To {
			if s == "metadata" {
				proxywasm.LogInfo("tracebridge: tag " + strconv.Quote(t.Name) + ": proxy-wasm cannot set dynamic metadata; the wasm filter writes metadata-sink tags to filter state " +
					engine.FilterStateProperty + t.Name + " instead (Envoy >= 1.37 can tag spans from it)")
			}
		}
	}
	proxywasm.LogInfo("tracebridge: policy loaded (" + strconv.Itoa(len(cfg.Policy.Tags)) + " tags, correlation capacity " +
		strconv.Itoa(cfg.Capacity) + ", ttl " + cfg.TTL.String() + ")")
	return types.OnPluginStartStatusOK
}

func (p *pluginContext) NewHttpContext(uint32) types.HttpContext {
	if n := len(p.free); n > 0 {
		h := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		return h
	}
	return &httpContext{p: p}
}

// maxFreeContexts bounds the contexts kept for reuse: more streams than this
// finishing between two new ones is rare, and the extra ones are left to the GC.
const maxFreeContexts = 64

// recycle keeps a finished stream's context for the next stream. Only
// OnHttpStreamDone calls it: the host calls nothing of a stream after
// proxy_on_log but proxy_on_delete (proxy-wasm spec, ABI 0.2.1
// "proxy_on_log"), which the SDK handles without the context.
func (p *pluginContext) recycle(h *httpContext) {
	if len(p.free) < maxFreeContexts {
		h.stream.Reset()
		h.call.Reset()
		p.free = append(p.free, h)
	}
}

// faultHook, when set by tests, runs at the start of each callback so that
// a test can make the filter panic and check that it fails open.
var faultHook func(kind string)

// recovered turns a panic into a log line (once per callback kind), an error
// count, and an unchanged request: the filter fails open.
func (p *pluginContext) recovered(kind string, dir engine.Direction, r any) {
	if !p.panics[kind] {
		p.panics[kind] = true
		proxywasm.LogCritical("tracebridge: " + kind + " panicked (request continues unchanged; logged once): " + panicText(r))
	}
	var d engine.Decisions
	d |= 1 << engine.DecisionError
	p.counters.count(dir, d)
}

type httpContext struct {
	types.DefaultHttpContext
	p      *pluginContext
	stream engine.Stream
	// call is the request side of the stream's client span, if one started.
	call engine.SpanCall
}

// OnTick sends the batch of finished client spans (the host's tick, set
// from clientSpans.flushInterval).
func (p *pluginContext) OnTick() {
	defer func() {
		if r := recover(); r != nil {
			p.recovered("tick", engine.DirectionUnknown, r)
		}
	}()
	if p.rep != nil {
		p.rep.flush()
	}
}

func (h *httpContext) OnHttpRequestHeaders(int, bool) (action types.Action) {
	p := h.p
	defer func() {
		if r := recover(); r != nil {
			p.recovered("request headers", h.stream.Direction, r)
			action = types.ActionContinue
		}
	}()
	if faultHook != nil {
		faultHook("request headers")
	}
	list, ok := requestHeaders(p.headers.List[:0])
	if !ok {
		p.counters.count(engine.DirectionUnknown, 1<<engine.DecisionError)
		return types.ActionContinue
	}
	p.headers.Reset(list)
	req := engine.Request{Headers: &p.headers}
	if p.needDirection {
		req.Direction = direction()
	}
	if p.needSource {
		req.Source = sourceAddress()
	}
	if p.needPeer {
		req.PeerPrincipal = peerPrincipal()
	}
	res := &p.res
	p.engine.OnRequest(&h.stream, &req, res)
	p.counters.count(h.stream.Direction, res.Decisions)
	if h.stream.ClientSpan.Valid() {
		h.call.Capture(&p.headers, res)
	}
	if res.Reply != nil {
		err := proxywasm.SendHttpResponse(uint32(res.Reply.Status),
			[][2]string{{"content-type", res.Reply.ContentType}}, []byte(res.Reply.Body), -1)
		if err != nil {
			proxywasm.LogError("tracebridge: sending reject reply: " + err.Error())
			return types.ActionContinue
		}
		return types.ActionPause
	}
	for _, m := range res.Mutations {
		// A repeated header must leave as one line (or none). Envoy's remove
		// drops every occurrence, but hosts that drop one per call exist
		// (proxytest), so remove once per occurrence seen, then set.
		_, n := p.headers.Get(m.Name)
		var err error
		for i := 0; i < n && err == nil && (m.Op == engine.OpRemove || n > 1); i++ {
			err = removeRequestHeader(m.Name)
		}
		if m.Op == engine.OpSet && err == nil {
			err = replaceRequestHeader(m.Name, m.Value)
		}
		if err != nil {
			p.counters.count(h.stream.Direction, 1<<engine.DecisionError)
		}
	}
	for _, t := range res.Tags {
		// Dynamic metadata has no proxy-wasm ABI (docs/ENVOY.md §5): in the wasm
		// filter the metadata sink degrades to filter state.
		if t.Sinks&(engine.SinkFilterState|engine.SinkMetadata) != 0 {
			if err := setFilterState(engine.FilterStateProperty+t.Name, t.Value); err != nil {
				p.counters.count(h.stream.Direction, 1<<engine.DecisionError)
			}
		}
	}
	return types.ActionContinue
}

func (h *httpContext) OnHttpResponseHeaders(int, bool) (action types.Action) {
	p := h.p
	defer func() {
		if r := recover(); r != nil {
			p.recovered("response headers", h.stream.Direction, r)
			action = types.ActionContinue
		}
	}()
	if h.stream.ClientSpan.Valid() {
		if v, err := responseHeader(":status"); err == nil {
			h.call.Status, _ = strconv.Atoi(v)
		}
	}
	res := &p.respRes
	rh := responseHeaders{p: p}
	p.engine.OnResponse(&h.stream, &rh, res)
	for _, m := range res.Mutations {
		if m.Op != engine.OpSet {
			continue
		}
		// The value replaces every line of the header (the engine joined
		// them); as for requests, remove once per line seen, then set.
		_, n := rh.Get(m.Name)
		var err error
		for i := 0; i < n && n > 1 && err == nil; i++ {
			err = removeResponseHeader(m.Name)
		}
		if err == nil {
			err = replaceResponseHeader(m.Name, m.Value)
		}
		if err != nil {
			p.counters.count(h.stream.Direction, 1<<engine.DecisionError)
		}
	}
	return types.ActionContinue
}

// OnHttpStreamDone runs once per stream however it ended (Envoy calls it
// from the stream's log/done phase, also for resets), so the in-flight count
// is decremented exactly once.
func (h *httpContext) OnHttpStreamDone() {
	p := h.p
	defer func() {
		if r := recover(); r != nil {
			p.recovered("stream done", h.stream.Direction, r)
		}
	}()
	if faultHook != nil {
		faultHook("stream done")
	}
	if d := p.engine.OnDone(&h.stream); d != 0 {
		p.counters.count(h.stream.Direction, d)
	}
	if h.stream.ClientSpan.Valid() && p.rep != nil {
		p.rep.finish(&h.stream, &h.call)
	}
	p.recycle(h) // not after a panic: the stream's state is then unknown
}

// responseHeaders reads response headers from the host when the engine asks
// (the response-header check): one small host call for a header the
// response does not have, the usual case. proxy_get_header_map_value returns
// only a header's first line, so when the header is there the response's
// lines are fetched once, and Get joins repeated lines (engine.Headers).
type responseHeaders struct {
	p      *pluginContext
	loaded bool
}

func (r *responseHeaders) Get(name string) (string, int) {
	if !r.loaded {
		v, err := responseHeader(name)
		if err != nil || v == "" {
			// A missing header comes back as NotFound, or as an empty value
			// from hosts that answer Ok for it (the 0.1 ABI's convention);
			// an empty value carries nothing either way.
			return "", 0
		}
		list, ok := responseHeaderLines(r.p.resp[:0])
		if !ok {
			return v, 1
		}
		r.p.resp, r.loaded = list, true
	}
	v, n := r.p.resp.Get(name)
	if v == "" {
		return "", 0
	}
	return v, n
}

// panicText describes a recovered panic value without fmt (which would
// grow the module).
func panicText(r any) string {
	switch v := r.(type) {
	case error:
		return v.Error()
	case string:
		return v
	}
	return "(a panic value that is neither an error nor a string)"
}

// Host properties the plugin reads (Envoy attribute names).
var (
	listenerDirection = newPropertyPath("xds", "listener_direction")
	sourceAddressPath = newPropertyPath("source", "address")
	peerURISAN        = newPropertyPath("connection", "uri_san_peer_certificate")
)

// direction reads xds.listener_direction (Envoy ≥1.33; the old top-level
// listener_direction was removed, docs/ENVOY.md §5): an int64, 1 inbound,
// 2 outbound. Hosts without it (upstream filters, gateways) rely on the
// policy's "direction" pin.
func direction() engine.Direction {
	v, err := getProperty(listenerDirection)
	if err != nil || len(v) == 0 {
		return engine.DirectionUnknown
	}
	var n uint64
	switch {
	case len(v) == 8:
		n = binary.LittleEndian.Uint64(v)
	case len(v) == 1 && v[0] >= '0' && v[0] <= '9':
		n = uint64(v[0] - '0')
	default:
		n = uint64(v[0])
	}
	switch n {
	case 1:
		return engine.Inbound
	case 2:
		return engine.Outbound
	}
	return engine.DirectionUnknown
}

// sourceAddress reads source.address ("ip:port") for trust rules.
func sourceAddress() netip.Addr {
	v, err := getProperty(sourceAddressPath)
	if err != nil || len(v) == 0 {
		return netip.Addr{}
	}
	if ap, err := netip.ParseAddrPort(string(v)); err == nil {
		return ap.Addr()
	}
	a, _ := netip.ParseAddr(string(v))
	return a
}

// peerPrincipal reads the downstream mTLS peer's URI SAN (Envoy attribute
// connection.uri_san_peer_certificate), for trust.trustedPrincipals.
func peerPrincipal() string {
	v, err := getProperty(peerURISAN)
	if err != nil {
		return ""
	}
	return string(v)
}
