// Command bench is tracebridge-extproc's load benchmark. In one run it
// starts two ext_proc servers as subprocesses on 127.0.0.1 — the real
// tracebridge-extproc and a no-op server that answers CONTINUE to every
// message (this same program with -noop) — and drives both with the same
// load: every "request" is one ext_proc stream as Envoy opens it (request
// headers, response headers, end of stream).
//
// Two phases per server:
//   - closed loop: -concurrency workers send back to back for -duration;
//     throughput and latency percentiles;
//   - open loop: a fixed -rate of streams per second for -duration, latency
//     measured from each stream's scheduled start (queueing included).
//
// It prints a Markdown report with both servers and their ratios, and the
// issue's goals: throughput ≥ 0.9× no-op, p99 ≤ 1.2× no-op, p99 < 1 ms at
// the fixed rate.
//
//	go run ./extproc/bench -bin bin/tracebridge-extproc [-duration 10s] [-concurrency 32] [-rate 5000]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tracebridge/tracebridge/extproc"
)

func main() {
	var (
		bin         = flag.String("bin", "bin/tracebridge-extproc", "tracebridge-extproc binary to measure")
		duration    = flag.Duration("duration", 10*time.Second, "length of each phase, per server")
		concurrency = flag.Int("concurrency", 32, "closed loop: concurrent streams")
		conns       = flag.Int("conns", 4, "gRPC connections the load is spread over (Envoy keeps a few per worker)")
		rate        = flag.Int("rate", 5000, "open loop: streams per second")
		out         = flag.String("out", "", "also write the report to this file")
		config      = flag.String("config", "", "policy file given to tracebridge-extproc (default: zero-config)")
		rounds      = flag.Int("rounds", 5, "slices each phase is cut into, alternating between the servers")
		target      = flag.String("target", "", "only drive an ext_proc server already listening at this address (closed loop), e.g. to profile it")
		noop        = flag.Bool("noop", false, "internal: serve the no-op ext_proc server on 127.0.0.1:0")
		noopPprof   = flag.String("noop-pprof", "", "with -noop: serve Go's /debug/pprof/ at this address, to profile the baseline")
		cpuProfile  = flag.String("cpuprofile", "", "with -target: write the load generator's CPU profile here")
	)
	flag.Parse()
	if *noop {
		if *noopPprof != "" {
			go http.ListenAndServe(*noopPprof, nil) // net/http/pprof registers on the default mux
		}
		serveNoop()
		return
	}
	if *target != "" {
		l, err := newLoad(*target, *conns)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		if *cpuProfile != "" {
			f, err := os.Create(*cpuProfile)
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				os.Exit(1)
			}
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
		r := l.closedLoop(*concurrency, *duration)
		r.p50, r.p99, r.p999 = percentiles(r.lat)
		fmt.Printf("%s: %.0f streams/s, p50 %s, p99 %s, %d errors\n", *target, r.rps(), us(r.p50), us(r.p99), r.errors)
		return
	}
	if err := run(*bin, *config, *duration, *concurrency, *conns, *rate, *rounds, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// noopServer answers every message with CONTINUE of its kind.
type noopServer struct {
	extprocv3.UnimplementedExternalProcessorServer
}

func (noopServer) Process(s extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		req, err := s.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		var resp *extprocv3.ProcessingResponse
		switch req.Request.(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}
		case *extprocv3.ProcessingRequest_RequestBody:
			resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}}
		case *extprocv3.ProcessingRequest_ResponseBody:
			resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}}
		case *extprocv3.ProcessingRequest_RequestTrailers:
			resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
		case *extprocv3.ProcessingRequest_ResponseTrailers:
			resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
		default:
			continue
		}
		if err := s.Send(resp); err != nil {
			return err
		}
	}
}

func serveNoop() {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf(`{"msg":"serving","listen":%q}`+"\n", lis.Addr().String())
	// The same gRPC options as tracebridge-extproc (default message size
	// limit): the baseline differs by the work only.
	gs := grpc.NewServer(extproc.ServerOptions(8 << 20)...)
	extprocv3.RegisterExternalProcessorServer(gs, noopServer{})
	if err := gs.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// server is a subprocess serving ext_proc.
type server struct {
	name string
	cmd  *exec.Cmd
	addr string
}

// start runs cmd and waits for its JSON "serving" line (stdout or stderr).
func start(name string, cmd *exec.Cmd, fromStderr bool) (*server, error) {
	var r io.ReadCloser
	var err error
	if fromStderr {
		r, err = cmd.StderrPipe()
	} else {
		r, err = cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
	}
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var rec struct{ Msg, Listen string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "serving" {
				addr <- rec.Listen
			}
		}
	}()
	select {
	case a := <-addr:
		return &server{name: name, cmd: cmd, addr: a}, nil
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		return nil, fmt.Errorf("%s did not start", name)
	}
}

func (s *server) stop() {
	s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// result of one phase against one server.
type result struct {
	lat      []time.Duration
	n        int
	errors   int64
	elapsed  time.Duration
	cpu      time.Duration // the server process's CPU time (user + system) during the phase
	p50, p99 time.Duration
	p999     time.Duration
}

func (r result) rps() float64 { return float64(r.n) / r.elapsed.Seconds() }

// cpuPer is the server's CPU time per request, in microseconds.
func (r result) cpuPer() float64 {
	if r.n == 0 {
		return 0
	}
	return float64(r.cpu) / float64(time.Microsecond) / float64(r.n)
}

// processCPU is a process's user + system CPU time from /proc/<pid>/stat
// (Linux; 0 elsewhere).
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64) // utime, field 14
	st, err2 := strconv.ParseInt(f[12], 10, 64) // stime, field 15
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// load is the client side: connections and the request messages.
type load struct {
	clients []extprocv3.ExternalProcessorClient
	conns   []*grpc.ClientConn
	seq     atomic.Uint64
}

func newLoad(addr string, n int) (*load, error) {
	l := &load{}
	for i := 0; i < n; i++ {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		l.conns = append(l.conns, cc)
		l.clients = append(l.clients, extprocv3.NewExternalProcessorClient(cc))
	}
	return l, nil
}

func (l *load) close() {
	for _, c := range l.conns {
		c.Close()
	}
}

// requestHeaders is a typical request as an ingress gateway hands it over:
// pseudo-headers, a few client headers, Envoy's x-request-id, a W3C context.
func (l *load) requestHeaders() *extprocv3.ProcessingRequest {
	n := l.seq.Add(1)
	id := strconv.FormatUint(n, 16)
	kv := []string{
		":method", "GET", ":path", "/api/v1/orders/" + id, ":authority", "shop.example.com", ":scheme", "https",
		"user-agent", "Mozilla/5.0 (X11; Linux x86_64)", "accept", "application/json", "accept-encoding", "gzip, br",
		"x-forwarded-for", "203.0.113.9", "x-forwarded-proto", "https",
		"x-request-id", "5f0c7b2e-" + id,
		"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"tracestate", "vendor=abc",
	}
	hm := &corev3.HeaderMap{Headers: make([]*corev3.HeaderValue, 0, len(kv)/2)}
	for i := 0; i < len(kv); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: hm}}}
}

var responseHeaders = &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
	{Key: ":status", RawValue: []byte("200")}, {Key: "content-type", RawValue: []byte("application/json")}, {Key: "content-length", RawValue: []byte("512")},
}}}}}

// stream runs one ext_proc exchange the way Envoy does for one request.
func (l *load) stream(ctx context.Context, c extprocv3.ExternalProcessorClient) error {
	s, err := c.Process(ctx)
	if err != nil {
		return err
	}
	if err := s.Send(l.requestHeaders()); err != nil {
		return err
	}
	if _, err := s.Recv(); err != nil {
		return err
	}
	if err := s.Send(responseHeaders); err != nil {
		return err
	}
	if _, err := s.Recv(); err != nil {
		return err
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	if _, err := s.Recv(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("end of stream: %v", err)
	}
	return nil
}

func percentiles(lat []time.Duration) (p50, p99, p999 time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	return at(0.50), at(0.99), at(0.999)
}

// closedLoop: workers send back to back.
func (l *load) closedLoop(workers int, d time.Duration) result {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	var errs atomic.Int64
	lats := make([][]time.Duration, workers)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := l.clients[w%len(l.clients)]
			buf := make([]time.Duration, 0, 1<<16)
			for {
				t0 := time.Now()
				if t0.After(deadline) {
					break
				}
				if err := l.stream(ctx, c); err != nil {
					errs.Add(1)
					continue
				}
				buf = append(buf, time.Since(t0))
			}
			lats[w] = buf
		}(w)
	}
	wg.Wait()
	r := result{elapsed: time.Since(start), errors: errs.Load()}
	var all []time.Duration
	for _, b := range lats {
		all = append(all, b...)
	}
	r.n = len(all)
	r.lat = all
	return r
}

// openLoop: streams start on a fixed schedule; latency counts from the
// scheduled start, so a slow server cannot hide queueing.
func (l *load) openLoop(rate int, d time.Duration) result {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	total := int(d.Seconds() * float64(rate))
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, total)
	var errs atomic.Int64
	var wg sync.WaitGroup
	// A bounded pool of senders: enough to absorb latency spikes.
	jobs := make(chan int, 4096)
	start := time.Now()
	for w := 0; w < 256; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := l.clients[w%len(l.clients)]
			for i := range jobs {
				sched := start.Add(time.Duration(i) * interval)
				if err := l.stream(ctx, c); err != nil {
					errs.Add(1)
					lat[i] = -1
					continue
				}
				lat[i] = time.Since(sched)
			}
		}(w)
	}
	for i := 0; i < total; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	r := result{elapsed: time.Since(start), errors: errs.Load()}
	ok := lat[:0]
	for _, v := range lat {
		if v >= 0 {
			ok = append(ok, v)
		}
	}
	r.n = len(ok)
	r.lat = ok
	return r
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }

func run(bin, config string, d time.Duration, concurrency, nconns, rate, rounds int, outPath string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("-bin: %w (run make build first)", err)
	}
	noop, err := start("no-op", exec.Command(self, "-noop"), false)
	if err != nil {
		return err
	}
	defer noop.stop()
	args := []string{"--listen", "127.0.0.1:0", "--admin-listen", "", "--log-level", "info"}
	if config != "" {
		args = append(args, "--config", config)
	}
	tb, err := start("tracebridge-extproc", exec.Command(bin, args...), true)
	if err != nil {
		return err
	}
	defer tb.stop()

	servers := []*server{noop, tb}
	loads := map[string]*load{}
	for _, s := range servers {
		l, err := newLoad(s.addr, nconns)
		if err != nil {
			return err
		}
		defer l.close()
		loads[s.name] = l
		// Warm-up: connections, pools, the first GC cycles.
		l.closedLoop(concurrency, time.Second)
	}
	// The phases alternate between the servers in short slices, so that
	// whatever else runs on the machine weighs on both alike.
	closed := map[string]*result{}
	open := map[string]*result{}
	slice := d / time.Duration(rounds)
	for r := 0; r < rounds; r++ {
		order := servers
		if r%2 == 1 {
			order = []*server{tb, noop}
		}
		for _, s := range order {
			fmt.Fprintf(os.Stderr, "bench: round %d/%d, %s: closed loop (%d in flight) then open loop (%d/s), %s each\n", r+1, rounds, s.name, concurrency, rate, slice)
			c0 := processCPU(s.cmd.Process.Pid)
			r := loads[s.name].closedLoop(concurrency, slice)
			r.cpu = processCPU(s.cmd.Process.Pid) - c0
			merge(closed, s.name, r)
			merge(open, s.name, loads[s.name].openLoop(rate, slice))
		}
	}
	for _, m := range []map[string]*result{closed, open} {
		for _, r := range m {
			r.p50, r.p99, r.p999 = percentiles(r.lat)
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# tracebridge-extproc load benchmark\n\n")
	fmt.Fprintf(&b, "%s, %d CPUs (GOMAXPROCS %d), %s; both servers are subprocesses on 127.0.0.1, the load generator shares the CPUs.\n", time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Fprintf(&b, "One request = one ext_proc stream: request headers (12 headers, W3C context) → reply, response headers → reply, end of stream. %d gRPC connections.\n\n", nconns)
	fmt.Fprintf(&b, "Each phase ran %s per server, in %d slices alternating between the servers.\n\n", d, rounds)
	fmt.Fprintf(&b, "## Closed loop: %d streams in flight\n\n", concurrency)
	fmt.Fprintf(&b, "| server | requests/s | p50 | p99 | p99.9 | errors | server CPU/request |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range servers {
		r := *closed[s.name]
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %s | %d | %.1f µs |\n", s.name, r.rps(), us(r.p50), us(r.p99), us(r.p999), r.errors, r.cpuPer())
	}
	c0, c1 := *closed[noop.name], *closed[tb.name]
	fmt.Fprintf(&b, "| ratio tracebridge / no-op | %.2f× | %.2f× | %.2f× | %.2f× | | %.2f× |\n\n", c1.rps()/c0.rps(), ratio(c1.p50, c0.p50), ratio(c1.p99, c0.p99), ratio(c1.p999, c0.p999), c1.cpuPer()/c0.cpuPer())
	fmt.Fprintf(&b, "Server CPU/request is the server process's user + system CPU time over the requests it served (from /proc; 0 where unavailable); the load generator's CPU is not in it.\n\n")
	fmt.Fprintf(&b, "## Open loop: %d streams/s (latency from the scheduled start)\n\n", rate)
	fmt.Fprintf(&b, "| server | achieved/s | p50 | p99 | p99.9 | errors |\n|---|---:|---:|---:|---:|---:|\n")
	for _, s := range servers {
		r := *open[s.name]
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %s | %d |\n", s.name, r.rps(), us(r.p50), us(r.p99), us(r.p999), r.errors)
	}
	o0, o1 := *open[noop.name], *open[tb.name]
	fmt.Fprintf(&b, "| ratio tracebridge / no-op | %.2f× | %.2f× | %.2f× | %.2f× | |\n\n", o1.rps()/o0.rps(), ratio(o1.p50, o0.p50), ratio(o1.p99, o0.p99), ratio(o1.p999, o0.p999))
	fmt.Fprintf(&b, "## Goals (issue 4)\n\n")
	goal := func(name string, ok bool, got string) {
		mark := "met"
		if !ok {
			mark = "NOT met"
		}
		fmt.Fprintf(&b, "- %s: %s (%s)\n", name, mark, got)
	}
	goal("throughput ≥ 0.9× no-op (closed loop)", c1.rps() >= 0.9*c0.rps(), fmt.Sprintf("%.2f×", c1.rps()/c0.rps()))
	goal("p99 ≤ 1.2× no-op p99 (open loop)", ratio(o1.p99, o0.p99) <= 1.2, fmt.Sprintf("%.2f×", ratio(o1.p99, o0.p99)))
	goal(fmt.Sprintf("p99 < 1 ms at %d requests/s", rate), o1.p99 < time.Millisecond, us(o1.p99))
	fmt.Print(b.String())
	if outPath != "" {
		return os.WriteFile(outPath, []byte(b.String()), 0o644)
	}
	return nil
}

// merge adds one slice's result to a server's total.
func merge(m map[string]*result, name string, r result) {
	t := m[name]
	if t == nil {
		t = &result{}
		m[name] = t
	}
	t.lat = append(t.lat, r.lat...)
	t.n += r.n
	t.errors += r.errors
	t.elapsed += r.elapsed
	t.cpu += r.cpu
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
