package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"sync"
	"time"
)

// App is one bookinfo-shaped service: a small Go HTTP server that does NOT
// propagate trace headers. Its outbound calls go through its sidecar's
// outbound listener, set as an explicit proxy (http.ProxyFromEnvironment
// never proxies loopback addresses, so HTTP_PROXY would be ignored here).
type App struct {
	Name string
	// ForwardRequestID: the variant that copies x-request-id (and nothing
	// else) to its outbound calls.
	ForwardRequestID bool
	// RelayHeaders are copied from the app's request to each of its calls:
	// the app that relays its caller's bearer token (or session cookie) and
	// no trace header.
	RelayHeaders []string
	// Calls are the services it calls for each request, in order, with the
	// request token as the last path segment: "details:9080/details".
	Calls []string
	// Work is how long it "works" before answering.
	Work time.Duration

	mu     sync.Mutex
	proxy  *url.URL
	client *http.Client
	srv    *http.Server
	ln     net.Listener
}

// SetProxy points the app's outbound calls at its sidecar.
func (a *App) SetProxy(proxyURL string) error {
	u, err := url.Parse(proxyURL)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.proxy = u
	a.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(u), MaxIdleConnsPerHost: 64}}
	a.mu.Unlock()
	return nil
}

// Start serves on a free 127.0.0.1 port.
func (a *App) Start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	a.ln = ln
	a.srv = &http.Server{Handler: a, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = a.srv.Serve(ln) }()
	return nil
}

// URL is the app's own address (what its sidecar's inbound forwards to).
func (a *App) URL() string { return "http://" + a.ln.Addr().String() }

// Close stops the app.
func (a *App) Close() {
	if a.srv != nil {
		_ = a.srv.Close()
	}
}

// ServeHTTP answers GET /<anything>/<token>: calls each dependency with the
// token, sleeps Work, answers JSON.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token := path.Base(r.URL.Path)
	out := map[string]any{"service": a.Name, "token": token}
	a.mu.Lock()
	client := a.client
	a.mu.Unlock()
	for _, call := range a.Calls {
		u := "http://" + call + "/" + token
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, u, nil)
		if a.ForwardRequestID {
			if id := r.Header.Get("X-Request-Id"); id != "" {
				req.Header.Set("X-Request-Id", id)
			}
		}
		for _, h := range a.RelayHeaders {
			if v := r.Header.Values(h); len(v) > 0 {
				req.Header[http.CanonicalHeaderKey(h)] = v
			}
		}
		if client == nil {
			http.Error(w, "no proxy configured", http.StatusInternalServerError)
			return
		}
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, fmt.Sprintf("%s: calling %s: %v", a.Name, u, err), http.StatusBadGateway)
			return
		}
		var body any
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if json.Unmarshal(data, &body) != nil {
			body = string(data)
		}
		out[path.Base(path.Dir("/"+call+"/x"))] = body
		if resp.StatusCode != http.StatusOK {
			w.WriteHeader(http.StatusBadGateway)
			_ = json.NewEncoder(w).Encode(out)
			return
		}
	}
	time.Sleep(a.Work)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// Bookinfo returns the four services: productpage → details, reviews;
// reviews → ratings.
func Bookinfo(forwardRequestID bool) []*App {
	return []*App{
		{Name: "productpage", Calls: []string{"details:9080/details", "reviews:9080/reviews"}, Work: time.Millisecond, ForwardRequestID: forwardRequestID},
		{Name: "details", Work: 2 * time.Millisecond, ForwardRequestID: forwardRequestID},
		{Name: "reviews", Calls: []string{"ratings:9080/ratings"}, Work: time.Millisecond, ForwardRequestID: forwardRequestID},
		{Name: "ratings", Work: 3 * time.Millisecond, ForwardRequestID: forwardRequestID},
	}
}
