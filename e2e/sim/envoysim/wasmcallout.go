package envoysim

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tracebridge/tracebridge/wasm-filter/wasmhost"
)

// This file models what a proxy-wasm plugin gets from Envoy beyond streams:
// proxy_http_call to a named cluster with its proxy_on_http_call_response,
// and proxy_on_tick at the period a root context set.
//
// proxy_http_call follows source/extensions/common/wasm/context.cc
// (Context::httpCall, onHttpCallSuccess, onHttpCallFailure):
// a negative timeout, an unknown cluster or a request without :path,
// :method and :authority is BadArgument; the call is made by the root
// context (proxy-wasm-cpp-host src/exports.cc http_call uses the root of
// the calling context), so the response comes to
// proxy_on_http_call_response(root id, token, headers, body size, trailers);
// a call that fails (reset, connection refused) is answered with zero
// headers and no body; a timeout is Envoy's async client's 504 reply.
// Ticks follow source/extensions/common/wasm/wasm.cc (Wasm::setTickPeriod
// and tickHandler: a dispatcher timer per root context, re-armed after each
// proxy_on_tick; a period of 0 stops it). Callouts and ticks run on the worker that owns the
// root context, one guest call at a time, as on Envoy's worker thread.

// maxCalloutBody bounds a callout response body kept for the guest
// (Envoy's async client buffers the whole response).
const maxCalloutBody = 1 << 20

// calloutResponse is the response the guest may read during
// proxy_on_http_call_response (map type 6, buffer type 4; proxy-wasm ABI MapType and BufferType).
type calloutResponse struct {
	headers Headers
	body    []byte
}

// ticker is one root context's tick timer.
type ticker struct {
	period time.Duration
	stop   chan struct{}
}

// callouts is the proxy's side of the HTTP calls and ticks.
type callouts struct {
	mu     sync.Mutex
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	client *http.Client
	// pending counts the HTTP calls whose callback has not run yet.
	pending sync.WaitGroup
	nextTok uint32
	// Calls counts proxy_http_call attempts that the host accepted.
	calls int
}

func newCallouts() *callouts {
	ctx, cancel := context.WithCancel(context.Background())
	return &callouts{ctx: ctx, cancel: cancel, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
}

// close cancels calls under way and stops every tick; callbacks still due
// are dropped (the VMs are going away).
func (c *callouts) close() {
	c.cancel()
	c.wg.Wait()
}

// HttpCallsMade is how many proxy_http_call requests the host accepted.
func (p *WasmProxy) HttpCallsMade() int {
	p.co.mu.Lock()
	defer p.co.mu.Unlock()
	return p.co.calls
}

func (w *wasmWorker) HttpCall(upstream, headers, body, _ []byte, timeoutMillis uint32) (uint32, uint32) {
	p := w.proxy
	hc := w.current()
	if int32(timeoutMillis) < 0 || hc.root == 0 {
		return 0, wasmhost.StatusBadArgument
	}
	addr, ok := p.clusters[string(upstream)]
	if !ok {
		return 0, wasmhost.StatusBadArgument
	}
	req := Headers{kv: pairs(headers)}
	path, okP := req.Lookup(":path")
	method, okM := req.Lookup(":method")
	authority, okA := req.Lookup(":authority")
	if !okP || !okM || !okA {
		return 0, wasmhost.StatusBadArgument
	}
	co := p.co
	co.mu.Lock()
	co.nextTok++
	token := co.nextTok
	co.calls++
	co.mu.Unlock()
	root := hc.root
	payload := append([]byte(nil), body...)
	co.wg.Add(1)
	co.pending.Add(1)
	go func() {
		defer co.wg.Done()
		defer co.pending.Done()
		resp := co.do(addr, method, path, authority, &req, payload, time.Duration(timeoutMillis)*time.Millisecond)
		if co.ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.failed != nil {
			return
		}
		var nh, nb uint64
		if resp != nil {
			nh, nb = uint64(len(resp.headers.kv)), uint64(len(resp.body))
		}
		_, _ = w.call(&hostCall{root: root, callout: resp}, "proxy_on_http_call_response", uint64(root), uint64(token), nh, nb, 0)
	}()
	return token, wasmhost.StatusOK
}

// do makes the call; nil is a failure (no response at all).
func (c *callouts) do(addr, method, path, authority string, h *Headers, body []byte, timeout time.Duration) *calloutResponse {
	ctx := c.ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return nil
	}
	req.Host = authority
	for _, kv := range h.kv {
		if !strings.HasPrefix(kv[0], ":") {
			req.Header.Add(kv[0], kv[1])
		}
	}
	resp, err := c.client.Do(req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded && c.ctx.Err() == nil {
			// Envoy's async client answers its own timeout with a 504.
			return &calloutResponse{headers: Headers{kv: [][2]string{{":status", "504"}}}, body: []byte("upstream request timeout")}
		}
		return nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxCalloutBody))
	if err != nil {
		return nil
	}
	out := &calloutResponse{body: b}
	out.headers.kv = append(out.headers.kv, [2]string{":status", itoa(resp.StatusCode)})
	for name, vs := range resp.Header {
		for _, v := range vs {
			out.headers.kv = append(out.headers.kv, [2]string{strings.ToLower(name), v})
		}
	}
	return out
}

// Flush delivers a tick now to every root context that has a tick period,
// then waits for the HTTP calls under way, callbacks included: what the
// module buffers for its tick is sent before a test reads the collector
// (a harness convenience, as the span reporters' Flush; Envoy has none).
func (p *WasmProxy) Flush() {
	for _, w := range p.workers {
		w.mu.Lock()
		for root := range w.ticks {
			if w.failed == nil {
				_, _ = w.call(&hostCall{root: root}, "proxy_on_tick", uint64(root))
			}
		}
		w.mu.Unlock()
	}
	p.co.pending.Wait()
}

// SetTickPeriodMilliseconds arms, re-arms or (0) stops the calling root
// context's tick.
func (w *wasmWorker) SetTickPeriodMilliseconds(period uint32) uint32 {
	hc := w.current()
	if hc.root == 0 {
		return wasmhost.StatusBadArgument
	}
	root := hc.root
	if t, ok := w.ticks[root]; ok {
		close(t.stop)
		delete(w.ticks, root)
	}
	if period == 0 {
		return wasmhost.StatusOK
	}
	t := &ticker{period: time.Duration(period) * time.Millisecond, stop: make(chan struct{})}
	w.ticks[root] = t
	co := w.proxy.co
	co.wg.Add(1)
	go func() {
		defer co.wg.Done()
		tm := time.NewTimer(t.period)
		defer tm.Stop()
		for {
			select {
			case <-co.ctx.Done():
				return
			case <-t.stop:
				return
			case <-tm.C:
			}
			w.mu.Lock()
			select {
			case <-t.stop:
				w.mu.Unlock()
				return
			default:
			}
			if w.failed == nil {
				_, _ = w.call(&hostCall{root: root}, "proxy_on_tick", uint64(root))
			}
			w.mu.Unlock()
			tm.Reset(t.period)
		}
	}()
	return wasmhost.StatusOK
}
