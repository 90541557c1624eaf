package wasmtest

import (
	"fmt"
	"testing"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

// NewHost starts proxytest's host emulator on vm, which may be a *VM (the
// compiled module) or any native types.VMContext (the same plugin under plain
// Go), so one test body can drive both. opt may be nil; its VM context is set
// to vm. The emulator is reset at cleanup.
//
// proxytest.NewHostEmulator takes a process-wide lock and calls into the
// plugin (NewPluginContext) while holding it; if that panics, the lock is
// never released and every later test hangs. NewHost recovers, releases the
// lock, resets the SDK state and fails tb instead.
func NewHost(tb testing.TB, vm types.VMContext, opt *proxytest.EmulatorOption) proxytest.HostEmulator {
	tb.Helper()
	if opt == nil {
		opt = proxytest.NewEmulatorOption()
	}
	host, reset, panicked := newHostEmulator(opt.WithVMContext(vm))
	if panicked != nil {
		tb.Fatalf("wasmtest: creating the host emulator: %v", panicked)
	}
	tb.Cleanup(reset)
	return host
}

func newHostEmulator(opt *proxytest.EmulatorOption) (host proxytest.HostEmulator, reset func(), panicked any) {
	defer func() {
		if r := recover(); r != nil {
			panicked = r
			// Everything in NewHostEmulator before it takes the lock only
			// allocates, so a panic means the lock is held by this goroutine.
			// TryLock guards against releasing a lock someone else holds.
			if !sdkHostMutex.TryLock() {
				sdkVMStateReset()
				sdkHostMutex.Unlock()
			} else {
				sdkHostMutex.Unlock()
			}
		}
	}()
	host, reset = proxytest.NewHostEmulator(opt)
	return host, reset, nil
}

// Request is one HTTP exchange for Exchange.
type Request struct {
	Headers         [][2]string
	ResponseHeaders [][2]string
}

// Result is what the plugin left on the host for one Exchange: copies of the
// header maps after each phase, the actions returned, and the local reply if
// the plugin sent one.
type Result struct {
	ContextID       uint32
	RequestAction   types.Action
	ResponseAction  types.Action
	RequestHeaders  [][2]string
	ResponseHeaders [][2]string
	LocalResponse   *proxytest.LocalHttpResponse
}

// Exchange runs one request/response through the plugin on host: context
// creation, request headers, response headers (skipped after a local reply),
// then stream completion (proxy_on_log and, for a *VM, proxy_on_delete).
func Exchange(host proxytest.HostEmulator, req Request) Result {
	id := host.InitializeHttpContext()
	res := Result{ContextID: id}
	res.RequestAction = host.CallOnRequestHeaders(id, req.Headers, false)
	res.RequestHeaders = cloneHeaders(host.GetCurrentRequestHeaders(id))
	res.LocalResponse = host.GetSentLocalResponse(id)
	if res.LocalResponse == nil {
		res.ResponseAction = host.CallOnResponseHeaders(id, req.ResponseHeaders, false)
		res.ResponseHeaders = cloneHeaders(host.GetCurrentResponseHeaders(id))
	}
	host.CompleteHttpContext(id)
	return res
}

func cloneHeaders(h [][2]string) [][2]string {
	if h == nil {
		return nil
	}
	return append([][2]string(nil), h...)
}

// Header returns the value of name in h ("" if absent) and whether it was
// present.
func Header(h [][2]string, name string) (string, bool) {
	for _, kv := range h {
		if kv[0] == name {
			return kv[1], true
		}
	}
	return "", false
}

// String describes a result compactly, for test failure messages.
func (r Result) String() string {
	return fmt.Sprintf("ctx %d: request %v %v, response %v %v, local %v",
		r.ContextID, r.RequestAction, r.RequestHeaders, r.ResponseAction, r.ResponseHeaders, r.LocalResponse)
}
