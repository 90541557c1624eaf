// Package probe is a temporary proxy-wasm plugin that exercises every path of
// the standard-Go bridge (wasm-filter/abi) the real filter will use: header
// maps, properties, plugin configuration, metrics, logs, shared data with
// compare-and-swap, and the guest's random source. It is written only against
// the proxy-wasm-go-sdk API, so it runs natively under proxytest and, built
// for wasip1, as bin/tracebridge.wasm. The engine-backed plugin replaces it.
package probe

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

// Names the probe reads and writes; tests compare them between the native and
// the compiled run.
const (
	DefaultProbeHeader = "x-tracebridge-probe"
	DirectionHeader    = "x-tracebridge-direction"
	SeqHeader          = "x-tracebridge-seq"
	NonceHeader        = "x-tracebridge-nonce"
	TraceResponse      = "traceresponse"
	RequestsMetric     = "tracebridge_probe_requests_total"
	SeqKey             = "tracebridge/probe/seq"
	// casAttempts bounds the compare-and-swap loop on the shared counter;
	// workers in other threads may win the race that many times in a row.
	casAttempts = 8
)

// NewVMContext returns the probe's root: the value passed to
// proxywasm.SetVMContext.
func NewVMContext() types.VMContext { return &vmContext{} }

type vmContext struct{ types.DefaultVMContext }

func (*vmContext) NewPluginContext(uint32) types.PluginContext {
	return &pluginContext{header: DefaultProbeHeader}
}

type pluginContext struct {
	types.DefaultPluginContext
	header   string
	requests proxywasm.MetricCounter
}

// OnPluginStart reads the optional plugin configuration: the name of the probe
// header. An invalid name refuses the plugin, as a bad policy will later.
func (p *pluginContext) OnPluginStart(int) types.OnPluginStartStatus {
	cfg, err := proxywasm.GetPluginConfiguration()
	if err != nil && !errors.Is(err, types.ErrorStatusNotFound) {
		proxywasm.LogCriticalf("probe: reading plugin configuration: %v", err)
		return types.OnPluginStartStatusFailed
	}
	if name := strings.TrimSpace(string(cfg)); name != "" {
		if strings.ContainsAny(name, " :\r\n") || name != strings.ToLower(name) {
			proxywasm.LogCriticalf("probe: configuration: invalid header name %q", name)
			return types.OnPluginStartStatusFailed
		}
		p.header = name
	}
	p.requests = proxywasm.DefineCounterMetric(RequestsMetric)
	proxywasm.LogInfof("probe: started, header %s", p.header)
	return types.OnPluginStartStatusOK
}

func (p *pluginContext) NewHttpContext(uint32) types.HttpContext {
	return &httpContext{plugin: p}
}

type httpContext struct {
	types.DefaultHttpContext
	plugin  *pluginContext
	traceID string
	seq     uint64
}

func (h *httpContext) OnHttpRequestHeaders(int, bool) types.Action {
	headers, err := proxywasm.GetHttpRequestHeaders()
	if err != nil {
		proxywasm.LogErrorf("probe: request headers: %v", err)
		return types.ActionContinue
	}
	for _, kv := range headers {
		if kv[0] == "traceparent" {
			h.traceID = traceIDOf(kv[1])
		}
	}
	set := func(name, value string) {
		if err := proxywasm.ReplaceHttpRequestHeader(name, value); err != nil {
			proxywasm.LogErrorf("probe: setting %s: %v", name, err)
		}
	}
	set(h.plugin.header, strconv.Itoa(len(headers)))
	set(DirectionHeader, direction())

	seq, err := nextSeq()
	if err != nil {
		proxywasm.LogErrorf("probe: shared counter: %v", err)
	}
	h.seq = seq
	set(SeqHeader, strconv.FormatUint(seq, 10))
	h.plugin.requests.Increment(1)
	return types.ActionContinue
}

func (h *httpContext) OnHttpResponseHeaders(int, bool) types.Action {
	traceID := h.traceID
	if traceID == "" {
		traceID = strings.Repeat("0", 32)
	}
	var span [8]byte
	binary.BigEndian.PutUint64(span[:], h.seq)
	value := "00-" + traceID + "-" + hex.EncodeToString(span[:]) + "-01"
	if err := proxywasm.ReplaceHttpResponseHeader(TraceResponse, value); err != nil {
		proxywasm.LogErrorf("probe: setting %s: %v", TraceResponse, err)
	}
	// The nonce shows whether the runtime gives the guest real randomness
	// (wazero's default source repeats the same bytes in every instance).
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	if err := proxywasm.ReplaceHttpResponseHeader(NonceHeader, hex.EncodeToString(nonce[:])); err != nil {
		proxywasm.LogErrorf("probe: setting %s: %v", NonceHeader, err)
	}
	return types.ActionContinue
}

// direction reads Envoy's xds.listener_direction (int64, little endian:
// 1 inbound, 2 outbound).
func direction() string {
	raw, err := proxywasm.GetProperty([]string{"xds", "listener_direction"})
	if err != nil || len(raw) != 8 {
		return "unknown"
	}
	switch binary.LittleEndian.Uint64(raw) {
	case 1:
		return "inbound"
	case 2:
		return "outbound"
	default:
		return "unknown"
	}
}

// nextSeq increments a counter in proxy-wasm shared data, retrying when
// another worker changed it between our read and our write.
func nextSeq() (uint64, error) {
	for range casAttempts {
		val, cas, err := proxywasm.GetSharedData(SeqKey)
		var n uint64
		switch {
		case err == nil && len(val) == 8:
			n = binary.LittleEndian.Uint64(val)
		case err == nil, errors.Is(err, types.ErrorStatusNotFound):
		default:
			return 0, err
		}
		n++
		err = proxywasm.SetSharedData(SeqKey, binary.LittleEndian.AppendUint64(nil, n), cas)
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, types.ErrorStatusCasMismatch) {
			return 0, err
		}
	}
	return 0, errors.New("compare-and-swap lost too often")
}

// traceIDOf returns the trace id of a W3C traceparent, or "" if malformed.
func traceIDOf(tp string) string {
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || len(parts[1]) != 32 {
		return ""
	}
	if _, err := hex.DecodeString(parts[1]); err != nil {
		return ""
	}
	return parts[1]
}
