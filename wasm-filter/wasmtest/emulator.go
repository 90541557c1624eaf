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
// to vm. The emulator is released at tb's cleanup.
//
// proxytest allows one emulator at a time in a process: a second NewHost (or
// StartHost) waits until the first is released. A test that needs two hosts
// in turn uses StartHost and releases the first itself.
func NewHost(tb testing.TB, vm types.VMContext, opt *proxytest.EmulatorOption) proxytest.HostEmulator {
	tb.Helper()
	host, release, err := StartHost(vm, opt)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(release)
	return host
}

// StartHost is NewHost with an explicit release, which must be called.
//
// proxytest.NewHostEmulator takes the process-wide lock and then calls into
// the plugin (NewPluginContext); if that panics, the lock is never released
// and every later test hangs. StartHost recovers, releases the lock, resets
// the SDK state and returns the panic as an error.
func StartHost(vm types.VMContext, opt *proxytest.EmulatorOption) (host proxytest.HostEmulator, release func(), err error) {
	if opt == nil {
		opt = proxytest.NewEmulatorOption()
	}
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		err = fmt.Errorf("wasmtest: creating the host emulator: %v", r)
		// Before taking the lock NewHostEmulator only allocates, so after a
		// panic the lock is held by this goroutine; TryLock guards against
		// releasing a lock that someone else holds.
		locked := !sdkHostMutex.TryLock()
		if locked {
			sdkVMStateReset()
		}
		sdkHostMutex.Unlock()
	}()
	host, release = proxytest.NewHostEmulator(opt.WithVMContext(vm))
	return host, release, nil
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
