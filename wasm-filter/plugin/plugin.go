package plugin

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/tracebridge/tracebridge/engine"
)

// FilterStatePrefix prefixes the filter-state sink's property path; Envoy
// stores proxy_set_property values under "wasm.<path>" (ENVOY-FACTS 5), so a
// tag "tenant" becomes filter state "wasm.tracebridge.tenant".
const FilterStatePrefix = "tracebridge."

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
	headers engine.HeaderList
	panics  map[string]bool
	// Which host properties the policy needs: each read is a host call
	// (about 2 µs of guest time), so a request reads only those.
	needDirection, needSource, needPeer bool
}

// OnPluginStart loads the policy from pluginConfig. A bad policy fails the
// plugin with a log line naming every bad field, so Envoy refuses it
// (failStrategy FAIL_CLOSE) or skips it (FAIL_OPEN): never a half-configured
// filter.
func (p *pluginContext) OnPluginStart(int) (status types.OnPluginStartStatus) {
	defer func() {
		if r := recover(); r != nil {
			proxywasm.LogCriticalf("tracebridge: plugin start panicked: %v", r)
			status = types.OnPluginStartStatusFailed
		}
	}()
	doc, err := proxywasm.GetPluginConfiguration()
	if err != nil && !errors.Is(err, types.ErrorStatusNotFound) {
		proxywasm.LogCriticalf("tracebridge: reading pluginConfig: %v", err)
		return types.OnPluginStartStatusFailed
	}
	cfg, err := engine.LoadPolicy(doc, os.Getenv)
	if err != nil {
		proxywasm.LogCriticalf("tracebridge: pluginConfig refused: %v", err)
		return types.OnPluginStartStatusFailed
	}
	p.counters = defineCounters()
	p.panics = map[string]bool{}
	store := newSharedStore(cfg)
	if cfg.SoleInFlight() {
		if err := store.initInFlight(); err != nil {
			proxywasm.LogCriticalf("tracebridge: creating the in-flight set in shared data: %v", err)
			return types.OnPluginStartStatusFailed
		}
	}
	p.engine = engine.New(cfg, engine.Options{Store: store, Now: func() time.Time { return now() }})
	p.needDirection, p.needSource, p.needPeer = cfg.ReadsDirection(), cfg.ReadsSource(), cfg.ReadsPeerPrincipal()
	for _, t := range cfg.Policy.Tags {
		for _, s := range t.To {
			if s == "metadata" {
				proxywasm.LogInfof("tracebridge: tag %q: proxy-wasm cannot set dynamic metadata; the wasm filter writes metadata-sink tags to filter state %s%s instead (Envoy >= 1.37 can tag spans from it)", t.Name, FilterStatePrefix, t.Name)
			}
		}
	}
	proxywasm.LogInfof("tracebridge: policy loaded (%d tags, correlation capacity %d, ttl %s)", len(cfg.Policy.Tags), cfg.Capacity, cfg.TTL)
	return types.OnPluginStartStatusOK
}

func (p *pluginContext) NewHttpContext(uint32) types.HttpContext {
	return &httpContext{p: p}
}

// faultHook, when set by tests, runs at the start of each callback so that
// a test can make the filter panic and check that it fails open.
var faultHook func(kind string)

// recovered turns a panic into a log line (once per callback kind), an error
// count, and an unchanged request: the filter fails open.
func (p *pluginContext) recovered(kind string, dir engine.Direction, r any) {
	if !p.panics[kind] {
		p.panics[kind] = true
		proxywasm.LogCriticalf("tracebridge: %s panicked (request continues unchanged; logged once): %v", kind, r)
	}
	var d engine.Decisions
	d |= 1 << engine.DecisionError
	p.counters.count(dir, d)
}

type httpContext struct {
	types.DefaultHttpContext
	p      *pluginContext
	stream engine.Stream
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
	pairs, err := proxywasm.GetHttpRequestHeaders()
	if err != nil {
		p.counters.count(engine.DirectionUnknown, 1<<engine.DecisionError)
		return types.ActionContinue
	}
	p.headers = toHeaderList(p.headers[:0], pairs)
	req := engine.Request{Headers: p.headers}
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
	if res.Reply != nil {
		err := proxywasm.SendHttpResponse(uint32(res.Reply.Status),
			[][2]string{{"content-type", res.Reply.ContentType}}, []byte(res.Reply.Body), -1)
		if err != nil {
			proxywasm.LogErrorf("tracebridge: sending reject reply: %v", err)
			return types.ActionContinue
		}
		return types.ActionPause
	}
	for _, m := range res.Mutations {
		// A repeated header must leave as one line (or none). Envoy's remove
		// drops every occurrence, but hosts that drop one per call exist
		// (proxytest), so remove once per occurrence seen, then set.
		_, n := p.headers.Get(m.Name)
		err = nil
		for i := 0; i < n && err == nil && (m.Op == engine.OpRemove || n > 1); i++ {
			err = proxywasm.RemoveHttpRequestHeader(m.Name)
		}
		if m.Op == engine.OpSet && err == nil {
			err = proxywasm.ReplaceHttpRequestHeader(m.Name, m.Value)
		}
		if err != nil {
			p.counters.count(h.stream.Direction, 1<<engine.DecisionError)
		}
	}
	for _, t := range res.Tags {
		// Dynamic metadata has no proxy-wasm ABI (ENVOY-FACTS 5): in the wasm
		// filter the metadata sink degrades to filter state.
		if t.Sinks&(engine.SinkFilterState|engine.SinkMetadata) != 0 {
			if err := proxywasm.SetProperty([]string{FilterStatePrefix + t.Name}, []byte(t.Value)); err != nil {
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
	pairs, err := proxywasm.GetHttpResponseHeaders()
	if err != nil {
		return types.ActionContinue
	}
	p.headers = toHeaderList(p.headers[:0], pairs)
	res := &p.res
	p.engine.OnResponse(&h.stream, p.headers, res)
	for _, m := range res.Mutations {
		if m.Op == engine.OpSet {
			if err := proxywasm.ReplaceHttpResponseHeader(m.Name, m.Value); err != nil {
				p.counters.count(h.stream.Direction, 1<<engine.DecisionError)
			}
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
}

// toHeaderList converts the host's pairs, lower-casing names (Envoy's maps
// are lower case already; proxytest and some hosts are not).
func toHeaderList(dst engine.HeaderList, pairs [][2]string) engine.HeaderList {
	for _, kv := range pairs {
		name := kv[0]
		for i := 0; i < len(name); i++ {
			if c := name[i]; c >= 'A' && c <= 'Z' {
				name = strings.ToLower(name)
				break
			}
		}
		dst = append(dst, engine.HeaderPair{Name: name, Value: kv[1]})
	}
	return dst
}

// direction reads xds.listener_direction (Envoy ≥1.33; the old top-level
// listener_direction was removed, ENVOY-FACTS 5): an int64, 1 inbound,
// 2 outbound. Hosts without it (upstream filters, gateways) rely on the
// policy's "direction" pin.
func direction() engine.Direction {
	v, err := proxywasm.GetProperty([]string{"xds", "listener_direction"})
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
	v, err := proxywasm.GetProperty([]string{"source", "address"})
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
	v, err := proxywasm.GetProperty([]string{"connection", "uri_san_peer_certificate"})
	if err != nil {
		return ""
	}
	return string(v)
}
