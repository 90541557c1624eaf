// Package app is the process of tracebridge-extproc: its command line,
// connection limits, TLS, health service, admin endpoint (metrics, health,
// pprof), policy reload on file change and SIGHUP, and graceful drain around
// the ext_proc server of package extproc, with the codec of extproc/codec
// and a store of extproc/store.
package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tracebridge/tracebridge/engine"
	"github.com/tracebridge/tracebridge/engine/policyfile"
	"github.com/tracebridge/tracebridge/extproc"
	"github.com/tracebridge/tracebridge/extproc/codec"
	"github.com/tracebridge/tracebridge/extproc/store"
)

// Config is the command line of tracebridge-extproc.
type Config struct {
	Listen       string
	AdminListen  string
	ConfigFile   string
	TLSCert      string
	TLSKey       string
	ClientCA     string
	Store        string
	StoreTimeout time.Duration
	LogLevel     string
	Direction    string
	DrainTimeout time.Duration
	// Limits bound each client connection (message size, streams, windows,
	// keepalive).
	Limits       Limits
	AllowEnvoy   bool
	Pprof        bool
	GCPercent    int
	gcPercentSet bool // --gc-percent was given: it wins over GOGC
	// SpanCollector is the URL the client spans of a policy with
	// clientSpans on are posted to (empty: the service starts none).
	SpanCollector string
}

// ParseFlags reads the command line. Errors and -h output go to out.
func ParseFlags(args []string, out io.Writer) (*Config, error) {
	c := &Config{Limits: DefaultLimits()}
	fs := flag.NewFlagSet("tracebridge-extproc", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:9002", "gRPC listen address of the ext_proc service (0.0.0.0:9002 in a pod)")
	fs.StringVar(&c.AdminListen, "admin-listen", "127.0.0.1:9003", "HTTP listen address for /metrics, /healthz and /readyz (empty: off)")
	fs.StringVar(&c.ConfigFile, "config", "", "policy document (JSON or YAML); reloaded on change and on SIGHUP (empty: zero-config default)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM server certificate (with --tls-key: serve TLS)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM server private key")
	fs.StringVar(&c.ClientCA, "client-ca", "", "PEM CA bundle; when set, clients must present a certificate it signed (mTLS)")
	fs.StringVar(&c.Store, "store", "memory", "correlation store: memory, or redis://[user:password@]host:port/db (rediss:// for TLS)")
	fs.DurationVar(&c.StoreTimeout, "store-timeout", 50*time.Millisecond, "per-command Redis timeout; on errors the request continues unchanged")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error (JSON logs on stderr)")
	fs.StringVar(&c.Direction, "direction", "inbound", "direction for requests when the policy says \"auto\" and Envoy sends no xds.listener_direction attribute: inbound or outbound")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 20*time.Second, "on SIGTERM, how long open streams may finish before the server stops")
	limits := c.Limits.flags(fs)
	fs.StringVar(&c.SpanCollector, "span-collector", "", "URL the client spans of a policy with clientSpans on are posted to, in clientSpans.format (e.g. http://zipkin.istio-system:9411/api/v2/spans or http://otel-collector:4318/v1/traces); the policy's clientSpans.cluster is an Envoy cluster name, which this service cannot dial (empty: no client spans, parent-ids unchanged)")
	fs.BoolVar(&c.Pprof, "pprof", false, "serve Go's /debug/pprof/ on the admin listener")
	fs.BoolVar(&c.AllowEnvoy, "allow-envoy-headers", false, "send x-envoy-* mutations (e.g. removing x-envoy-force-trace from untrusted requests); needs mutation_rules.allow_envoy: true in the filter")
	fs.IntVar(&c.GCPercent, "gc-percent", DefaultGCPercent, "garbage collector target percentage, as GOGC (-1: off); when not given, GOGC from the environment wins")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	fs.Visit(func(f *flag.Flag) { c.gcPercentSet = c.gcPercentSet || f.Name == "gc-percent" })
	if err := limits.apply(&c.Limits); err != nil {
		return nil, err
	}
	if c.GCPercent < -1 {
		return nil, fmt.Errorf("--gc-percent must be -1 (off) or at least 0, got %d", c.GCPercent)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if c.ClientCA != "" && c.TLSCert == "" {
		return nil, errors.New("--client-ca needs --tls-cert and --tls-key")
	}
	if _, err := parseDirection(c.Direction); err != nil {
		return nil, err
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return nil, err
	}
	if c.Store != "memory" && !strings.HasPrefix(c.Store, "redis://") && !strings.HasPrefix(c.Store, "rediss://") {
		return nil, fmt.Errorf("--store must be memory or a redis:// URL, got %q", c.Store)
	}
	if c.SpanCollector != "" {
		if err := extproc.CheckSpanCollector(c.SpanCollector); err != nil {
			return nil, fmt.Errorf("--span-collector: %w", err)
		}
	}
	return c, nil
}

func parseDirection(s string) (engine.Direction, error) {
	switch s {
	case "inbound":
		return engine.Inbound, nil
	case "outbound":
		return engine.Outbound, nil
	}
	return 0, fmt.Errorf("--direction must be inbound or outbound, got %q", s)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level: %w", err)
	}
	return l, nil
}

// LoadPolicy reads and parses a policy file, JSON or YAML, with the same
// reader and rules as `tracebridge config validate` ("" is the zero-config
// default).
func LoadPolicy(path string) (*engine.Policy, []byte, error) {
	if path == "" {
		p, err := engine.ParsePolicy(nil)
		return p, nil, err
	}
	data, err := policyfile.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	p, err := policyfile.Parse(data)
	return p, data, err
}

// policyErrorAttrs turns a policy error into log attributes naming the field
// paths.
func policyErrorAttrs(err error) []any {
	var ce *engine.ConfigError
	if errors.As(err, &ce) && len(ce.Fields) > 0 {
		fields := make([]string, len(ce.Fields))
		for i, f := range ce.Fields {
			fields[i] = f.Error()
		}
		return []any{"field", ce.Fields[0].Path, "errors", fields}
	}
	return []any{"err", err.Error()}
}

// Run serves until ctx is cancelled or SIGTERM/SIGINT arrives, then drains:
// health NOT_SERVING, no new streams, open streams given up to DrainTimeout.
// SIGHUP reloads the policy (and the TLS key pair). Logs go to logOut as
// JSON. ready, if not nil, is called with the bound addresses once serving.
func Run(ctx context.Context, c *Config, logOut io.Writer, ready func(grpcAddr, adminAddr string)) error {
	level, err := parseLevel(c.LogLevel)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: level}))
	ApplyGCPercent(c.GCPercent, c.gcPercentSet)
	// Signals first: a SIGHUP arriving during start-up must not kill the
	// process (the default action).
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	dir, err := parseDirection(c.Direction)
	if err != nil {
		return err
	}

	policy, policyBytes, err := LoadPolicy(c.ConfigFile)
	if err != nil {
		log.Error("invalid policy", policyErrorAttrs(err)...)
		return fmt.Errorf("--config %s: %w", c.ConfigFile, err)
	}

	stores, err := openStores(ctx, c, log)
	if err != nil {
		return err
	}
	defer stores.Close()

	metrics := extproc.NewMetrics()
	var spans *extproc.SpanReporter
	if c.SpanCollector != "" {
		if spans, err = extproc.NewSpanReporter(c.SpanCollector, metrics); err != nil {
			return fmt.Errorf("--span-collector: %w", err)
		}
		defer spans.Close()
	}
	srv, err := extproc.NewServer(policy, extproc.Options{Logger: log, Metrics: metrics, Stores: stores, Direction: dir, AllowEnvoyHeaders: c.AllowEnvoy, Spans: spans})
	if err != nil {
		log.Error("invalid policy", policyErrorAttrs(err)...)
		return fmt.Errorf("--config %s: %w", c.ConfigFile, err)
	}

	opts, certs, err := serverOptions(c)
	if err != nil {
		return err
	}
	gs := grpc.NewServer(opts...)
	extprocv3.RegisterExternalProcessorServer(gs, srv)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)

	lis, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	var ready503 atomic.Bool
	ready503.Store(true) // until the gRPC server serves
	adminSrv, adminAddr, err := startAdmin(c, metrics, &ready503)
	if err != nil {
		lis.Close()
		return err
	}

	// Policy reloads: SIGHUP and file changes.
	r := &reloader{c: c, srv: srv, metrics: metrics, log: log, certs: certs, last: policyBytes}
	var watcher *fsnotify.Watcher
	if c.ConfigFile != "" {
		watcher, err = watchFile(c.ConfigFile, func() { r.reload("file") }, log)
		if err != nil {
			log.Warn("cannot watch the policy file; reload with SIGHUP", "err", err.Error())
		} else {
			// A change between the first read and the watch is caught here
			// (an unchanged file is a no-op).
			r.reload("file")
		}
	}

	// Ready only once reloads are wired: a change right after ready is seen.
	serveErr := make(chan error, 1)
	go func() { serveErr <- gs.Serve(lis) }()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(extprocv3.ExternalProcessor_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	ready503.Store(false)
	log.Info("serving", "listen", lis.Addr().String(), "admin", adminAddr, "tls", c.TLSCert != "", "mtls", c.ClientCA != "",
		"store", storeKind(c.Store), "config", c.ConfigFile, "direction", dir.String())
	if ready != nil {
		ready(lis.Addr().String(), adminAddr)
	}

	var runErr error
loop:
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				go r.reload("SIGHUP")
				continue
			}
			log.Info("draining", "signal", sig.String(), "drain_timeout", c.DrainTimeout.String())
			break loop
		case <-ctx.Done():
			log.Info("draining", "reason", "context done", "drain_timeout", c.DrainTimeout.String())
			break loop
		case err := <-serveErr:
			runErr = err
			log.Error("gRPC server stopped", "err", err.Error())
			break loop
		}
	}

	// Drain: NOT_SERVING first (health checks, /readyz), then refuse new
	// streams and wait for open ones.
	ready503.Store(true)
	hs.Shutdown()
	srv.Drain()
	if watcher != nil {
		watcher.Close()
	}
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	timer := time.NewTimer(c.DrainTimeout)
	select {
	case <-stopped:
		timer.Stop()
		log.Info("drained")
	case <-timer.C:
		log.Warn("drain timeout; closing the remaining streams", "open_streams", srv.OpenStreams())
		gs.Stop()
		<-stopped
	}
	if adminSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		adminSrv.Shutdown(sctx)
		cancel()
	}
	return runErr
}

// openStores opens the --store: the memory store, or Redis, which need not
// be reachable yet (correlation fails open until it is).
func openStores(ctx context.Context, c *Config, log *slog.Logger) (store.Provider, error) {
	if c.Store == "memory" {
		return &store.Memory{}, nil
	}
	store.SetRedisLogger(log)
	rs, err := store.NewRedis(c.Store, store.RedisOptions{Timeout: c.StoreTimeout})
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	if err := rs.Ping(pctx); err != nil {
		log.Warn("redis not reachable yet; correlation fails open until it is", "err", err.Error())
	}
	cancel()
	return rs, nil
}

// serverOptions are the gRPC server's options: TLS (with the key pair
// reloaded on SIGHUP, nil without TLS), the connection limits and the codec.
func serverOptions(c *Config) ([]grpc.ServerOption, *keyPair, error) {
	var opts []grpc.ServerOption
	var certs *keyPair
	if c.TLSCert != "" {
		certs = &keyPair{cert: c.TLSCert, key: c.TLSKey}
		if err := certs.load(); err != nil {
			return nil, nil, err
		}
		tc := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.get}
		if c.ClientCA != "" {
			pem, err := os.ReadFile(c.ClientCA)
			if err != nil {
				return nil, nil, fmt.Errorf("--client-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, nil, fmt.Errorf("--client-ca %s: no PEM certificate found", c.ClientCA)
			}
			tc.ClientCAs = pool
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	opts = append(opts, c.Limits.ServerOptions()...)
	opts = append(opts, codec.ServerOption())
	return opts, certs, nil
}

// startAdmin serves /metrics, /healthz, /readyz (503 while notReady) and,
// with --pprof, /debug/pprof/ on --admin-listen; nil and "" when that is
// empty.
func startAdmin(c *Config, metrics *extproc.Metrics, notReady *atomic.Bool) (*http.Server, string, error) {
	if c.AdminListen == "" {
		return nil, "", nil
	}
	al, err := net.Listen("tcp", c.AdminListen)
	if err != nil {
		return nil, "", fmt.Errorf("--admin-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if notReady.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	if c.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	}
	adminSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go adminSrv.Serve(al)
	return adminSrv, al.Addr().String(), nil
}

// reloader re-reads the policy (and, on SIGHUP, the TLS key pair); one
// reload at a time.
type reloader struct {
	c       *Config
	srv     *extproc.Server
	metrics *extproc.Metrics
	log     *slog.Logger
	certs   *keyPair // nil without TLS

	mu   sync.Mutex
	last []byte // the policy document in force
}

func (r *reloader) reload(why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.certs != nil && why == "SIGHUP" {
		if err := r.certs.load(); err != nil {
			r.log.Error("TLS key pair reload failed; keeping the old one", "err", err.Error())
		} else {
			r.log.Info("TLS key pair reloaded")
		}
	}
	if r.c.ConfigFile == "" {
		return
	}
	p, data, err := LoadPolicy(r.c.ConfigFile)
	if err == nil && why != "SIGHUP" && bytes.Equal(data, r.last) {
		return // an event that did not change the content
	}
	if err == nil {
		err = r.srv.SetPolicy(p)
	}
	if err != nil {
		r.metrics.CountReload(false)
		r.log.Error("policy reload failed; keeping the previous policy", append([]any{"trigger", why, "config", r.c.ConfigFile}, policyErrorAttrs(err)...)...)
		return
	}
	r.last = data
	r.metrics.CountReload(true)
	r.log.Info("policy reloaded", "trigger", why, "generation", r.srv.Generation())
}

// DefaultGCPercent is tracebridge-extproc's garbage collector target
// (--gc-percent). Its live heap is small, so with Go's default of 100 the
// collector runs many times a second under load, each cycle marking while
// streams keep arriving; at 400 it runs a quarter as often, for a heap of up
// to 5× the live one instead of 2×, which lowered the open-loop p99
// (extproc/BENCHMARKS.md).
const DefaultGCPercent = 400

// ApplyGCPercent sets the garbage collector's target percentage to pct,
// unless GOGC is set in the environment and pct was not asked for
// explicitly. benchtools/extproc gives its no-op baseline servers the same.
func ApplyGCPercent(pct int, explicit bool) {
	if explicit || os.Getenv("GOGC") == "" {
		debug.SetGCPercent(pct)
	}
}

func storeKind(s string) string {
	if s == "memory" {
		return s
	}
	return "redis"
}

// keyPair holds a TLS certificate reloaded on SIGHUP.
type keyPair struct {
	cert, key string
	cur       atomic.Pointer[tls.Certificate]
}

func (k *keyPair) load() error {
	c, err := tls.LoadX509KeyPair(k.cert, k.key)
	if err != nil {
		return fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	k.cur.Store(&c)
	return nil
}

func (k *keyPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return k.cur.Load(), nil }

// watchFile calls fn (debounced) when path changes. It watches the directory,
// so editors that replace the file and Kubernetes ConfigMap volumes (which
// swap a "..data" symlink) are seen too.
func watchFile(path string, fn func(), log *slog.Logger) (*fsnotify.Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		w.Close()
		return nil, err
	}
	dir := filepath.Dir(abs)
	if err := w.Add(dir); err != nil {
		w.Close()
		return nil, err
	}
	go func() {
		var timer *time.Timer
		for {
			select {
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				name := filepath.Clean(ev.Name)
				if name != abs && filepath.Base(name) != "..data" {
					continue
				}
				if timer == nil {
					timer = time.AfterFunc(100*time.Millisecond, fn)
				} else {
					timer.Reset(100 * time.Millisecond)
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				log.Warn("policy file watch error", "err", err.Error())
			}
		}
	}()
	return w, nil
}
