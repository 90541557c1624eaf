// Command bench is tracebridge-extproc's load benchmark. In one run it
// starts three ext_proc servers as subprocesses on 127.0.0.1 — the real
// tracebridge-extproc and two no-op servers that answer CONTINUE to every
// message (this same program with -noop), one on gRPC's codec and one on
// tracebridge-extproc's (-noop-codec) — and drives them with the same load:
// every "request" is one ext_proc stream as Envoy opens it (request
// headers, response headers, end of stream).
//
// Two phases per server:
//   - closed loop: -concurrency workers send back to back for -duration;
//     throughput and latency percentiles;
//   - open loop: a fixed -rate of streams per second for -duration, latency
//     measured from each stream's scheduled start (queueing included).
//
// The load generator (h2load.go) is an event-driven HTTP/2 client of its
// own, so that it costs a fraction of what the servers cost; -client grpc
// uses grpc-go's client instead, for comparison. All servers always get the
// same generator.
//
// It prints a Markdown report with the servers and the ratios, the CPU
// time of each server and of the generator, and the goals:
// throughput ≥ 0.9× no-op, p99 ≤ 1.2× no-op (against each no-op), p99 < 1 ms
// at the fixed rate. Build it with -tags vtprotobuf (make bench-extproc
// does) so that the codec baseline has the generated marshaller.
//
//	cd benchtools && go run -tags vtprotobuf ./extproc -bin ../bin/tracebridge-extproc [-duration 10s] [-concurrency 32] [-rate 5000]
package main

import (
	"bufio"
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
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"

	"github.com/tracebridge/tracebridge/extproc/cmd/tracebridge-extproc/app"
	"github.com/tracebridge/tracebridge/extproc/codec"
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
		noopCodec   = flag.Bool("noop-codec", false, "with -noop: use tracebridge-extproc's codec (codec.ServerOption) instead of gRPC's")
		echo        = flag.Bool("echo", false, "internal: serve the floor's TCP echo server on 127.0.0.1:0")
		cpuProfile  = flag.String("cpuprofile", "", "with -target: write the load generator's CPU profile here")
		openRate    = flag.Int("open", 0, "with -target: run the open loop at this rate instead of the closed loop")
		client      = flag.String("client", "h2", "load generator: h2 (this program's event-driven HTTP/2 client) or grpc (grpc-go's client); with -target also tcp (the floor's client, for an echo server)")
		rt          = flag.Bool("rt", true, "run the load generator at real-time priority (SCHED_FIFO 1, after starting the servers) where the system allows it")
	)
	flag.Parse()
	if *echo {
		serveEcho()
		return
	}
	if *noop {
		if *noopPprof != "" {
			go http.ListenAndServe(*noopPprof, nil) // net/http/pprof registers on the default mux
		}
		serveNoop(*noopCodec)
		return
	}
	if *target != "" {
		if *rt && !realtime() {
			fmt.Fprintln(os.Stderr, "bench: real-time priority refused; the generator runs at normal priority")
		}
		l, err := newDriver(*client, *target, *conns)
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
		l.closedLoop(*concurrency, time.Second)
		c0 := selfCPU()
		var r result
		if *openRate > 0 {
			r = l.openLoop(*openRate, *duration)
		} else {
			r = l.closedLoop(*concurrency, *duration)
		}
		gen := selfCPU() - c0
		r.p50, r.p99, r.p999 = percentiles(r.lat)
		lp50, lp99, lp999 := percentiles(r.lag)
		stalls := 0
		if g, ok := l.(*loadGen); ok {
			stalls = g.poll.stalls()
		}
		fmt.Printf("%s: %.0f streams/s, p50 %s, p99 %s, p99.9 %s, %d errors; generator CPU %.1f µs/req; dispatch lag p50 %s p99 %s p99.9 %s; %d write stalls\n", *target, r.rps(), us(r.p50), us(r.p99), us(r.p999), r.errors,
			float64(gen)/float64(time.Microsecond)/float64(r.n), us(lp50), us(lp99), us(lp999), stalls)
		return
	}
	if err := run(*bin, *config, *client, *rt, *duration, *concurrency, *conns, *rate, *rounds, *out); err != nil {
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

func serveNoop(withCodec bool) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf(`{"msg":"serving","listen":%q}`+"\n", lis.Addr().String())
	// The same gRPC options and garbage collector target as
	// tracebridge-extproc (default message size limit): the baseline
	// differs by the work only.
	app.ApplyGCPercent(app.DefaultGCPercent, false)
	opts := app.ServerOptions(8 << 20)
	if withCodec {
		opts = append(opts, codec.ServerOption())
	}
	gs := grpc.NewServer(opts...)
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

// floorName names the floor's echo server in the report.
const floorName = "floor: TCP echo, no gRPC"

// result of one phase against one server.
type result struct {
	lat      []time.Duration
	lag      []time.Duration // open loop: actual start - scheduled start
	n        int
	errors   int64
	elapsed  time.Duration
	cpu      time.Duration // the server process's CPU time (user + system) during the phase
	gen      time.Duration // the load generator's CPU time during the phase
	steal    time.Duration // the VM's steal time (all CPUs) during the phase
	lagP99   time.Duration
	p50, p99 time.Duration
	p999     time.Duration
	sliceP99 []time.Duration // each slice's own p99
}

// medianSliceP99 is the median of the slices' p99s: a stall of the machine
// during one slice moves the pooled p99 of a server but not this.
func (r result) medianSliceP99() time.Duration {
	if len(r.sliceP99) == 0 {
		return 0
	}
	v := slices.Clone(r.sliceP99)
	slices.Sort(v)
	return v[len(v)/2]
}

func (r result) rps() float64 { return float64(r.n) / r.elapsed.Seconds() }

// cpuPer is the server's CPU time per request, in microseconds.
func (r result) cpuPer() float64 {
	if r.n == 0 {
		return 0
	}
	return float64(r.cpu) / float64(time.Microsecond) / float64(r.n)
}

// genPer is the load generator's CPU time per request, in microseconds.
func (r result) genPer() float64 {
	if r.n == 0 {
		return 0
	}
	return float64(r.gen) / float64(time.Microsecond) / float64(r.n)
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

// driver is a load generator: the same one drives both servers.
type driver interface {
	closedLoop(workers int, d time.Duration) result
	openLoop(rate int, d time.Duration) result
	close()
}

// seq numbers the requests (their x-request-id), unique across phases.
var seq atomic.Uint64

func newDriver(kind, addr string, conns int) (driver, error) {
	switch kind {
	case "h2":
		l, err := newH2Load(addr, conns)
		if err != nil {
			return nil, err
		}
		return l, nil
	case "grpc":
		return newGRPCLoad(addr, conns)
	case "tcp":
		l, err := newTCPLoad(addr, conns)
		if err != nil {
			return nil, err
		}
		return l, nil
	}
	return nil, fmt.Errorf("-client %q: want h2 or grpc", kind)
}

func percentiles(lat []time.Duration) (p50, p99, p999 time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	return at(0.50), at(0.99), at(0.999)
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }

func run(bin, config, client string, rt bool, d time.Duration, concurrency, nconns, rate, rounds int, outPath string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("-bin: %w (run make build first)", err)
	}
	// Two baselines: the no-op on gRPC's own codec, and the no-op on the
	// codec tracebridge-extproc uses (codec.ServerOption), so that the
	// ratios show both what tracebridge costs against a plain server and
	// what its work costs with the codec's gain taken out.
	noop, err := start("no-op", exec.Command(self, "-noop"), false)
	if err != nil {
		return err
	}
	defer noop.stop()
	noopCodec, err := start("no-op, tracebridge's codec", exec.Command(self, "-noop", "-noop-codec"), false)
	if err != nil {
		return err
	}
	defer noopCodec.stop()
	args := []string{"--listen", "127.0.0.1:0", "--admin-listen", "", "--log-level", "info"}
	if config != "" {
		args = append(args, "--config", config)
	}
	tb, err := start("tracebridge-extproc", exec.Command(bin, args...), true)
	if err != nil {
		return err
	}
	defer tb.stop()

	floor, err := start(floorName, exec.Command(self, "-echo"), false)
	if err != nil {
		return err
	}
	defer floor.stop()

	rtOK := rt && realtime() // after starting the servers, which must not inherit it
	servers := []*server{noop, noopCodec, tb}
	baselines := servers[:2]
	loads := map[string]driver{}
	for _, s := range append(servers, floor) {
		kind := client
		if s == floor {
			kind = "tcp"
		}
		l, err := newDriver(kind, s.addr, nconns)
		if err != nil {
			return err
		}
		defer l.close()
		loads[s.name] = l
		// Warm-up: connections, pools, the first GC cycles.
		l.closedLoop(concurrency, time.Second)
	}
	// The phases alternate between the servers in short slices, so that
	// whatever else runs on the machine weighs on all alike.
	closed := map[string]*result{}
	open := map[string]*result{}
	slice := d / time.Duration(rounds)
	for r := 0; r < rounds; r++ {
		order := slices.Clone(servers)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, s := range order {
			fmt.Fprintf(os.Stderr, "bench: round %d/%d, %s: closed loop (%d in flight) then open loop (%d/s), %s each\n", r+1, rounds, s.name, concurrency, rate, slice)
			l := loads[s.name]
			merge(closed, s.name, measure(s, func() result { return l.closedLoop(concurrency, slice) }))
			merge(open, s.name, measure(s, func() result { return l.openLoop(rate, slice) }))
		}
		// The floor's open loop, in the same round.
		fl := loads[floor.name]
		merge(open, floor.name, measure(floor, func() result { return fl.openLoop(rate, slice) }))
	}
	for _, m := range []map[string]*result{closed, open} {
		for _, r := range m {
			r.p50, r.p99, r.p999 = percentiles(r.lat)
			_, r.lagP99, _ = percentiles(r.lag)
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# tracebridge-extproc load benchmark\n\n")
	fmt.Fprintf(&b, "%s, %d CPUs (GOMAXPROCS %d), %s; the servers are subprocesses on 127.0.0.1, the load generator shares the CPUs.\n", time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Fprintf(&b, "One request = one ext_proc stream: request headers (12 headers, W3C context) → reply, response headers → reply, end of stream. %d connections, load generator %q.\n\n", nconns, client)
	fmt.Fprintf(&b, "Each phase ran %s per server, in %d slices alternating between the servers.\n\n", d, rounds)
	fmt.Fprintf(&b, "## Closed loop: %d streams in flight\n\n", concurrency)
	fmt.Fprintf(&b, "| server | requests/s | p50 | p99 | p99.9 | errors | server CPU/request | generator CPU/request |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range servers {
		r := *closed[s.name]
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %s | %d | %.1f µs | %.1f µs |\n", s.name, r.rps(), us(r.p50), us(r.p99), us(r.p999), r.errors, r.cpuPer(), r.genPer())
	}
	c1 := *closed[tb.name]
	for _, base := range baselines {
		c0 := *closed[base.name]
		fmt.Fprintf(&b, "| ratio tracebridge / %s | %.2f× | %.2f× | %.2f× | %.2f× | | %.2f× | |\n", base.name, c1.rps()/c0.rps(), ratio(c1.p50, c0.p50), ratio(c1.p99, c0.p99), ratio(c1.p999, c0.p999), c1.cpuPer()/c0.cpuPer())
	}
	fmt.Fprintf(&b, "\nServer CPU/request is the server process's user + system CPU time over the requests it served (from /proc; 0 where unavailable); the load generator's own CPU time is the last column.\n\n")
	fmt.Fprintf(&b, "## Open loop: %d streams/s (latency from the scheduled start)\n\n", rate)
	fmt.Fprintf(&b, "| server | achieved/s | p50 | p99 | p99.9 | p99, median over slices | errors | server CPU/request | generator dispatch lag p99 | VM steal time |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range append(servers, floor) {
		r := *open[s.name]
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %s | %s | %d | %.1f µs | %s | %d ms |\n", s.name, r.rps(), us(r.p50), us(r.p99), us(r.p999), us(r.medianSliceP99()), r.errors, r.cpuPer(), us(r.lagP99), r.steal.Milliseconds())
	}
	o1 := *open[tb.name]
	for _, base := range baselines {
		o0 := *open[base.name]
		fmt.Fprintf(&b, "| ratio tracebridge / %s | %.2f× | %.2f× | %.2f× | %.2f× | %.2f× | | %.2f× | | |\n", base.name, o1.rps()/o0.rps(), ratio(o1.p50, o0.p50), ratio(o1.p99, o0.p99), ratio(o1.p999, o0.p999), ratio(o1.medianSliceP99(), o0.medianSliceP99()), o1.cpuPer()/o0.cpuPer())
	}
	fmt.Fprintf(&b, "\nThe dispatch lag is how late the generator started streams against their schedule (it is part of the latency above); a large one means the machine, not the server, made the tail. The median over slices of each slice's p99 (%d slices per server) is not moved by a stall during one slice, as the pooled p99 is. The VM steal time is how long the hypervisor held this VM's CPUs (summed over them) during the server's phase: 10 ms of it can stall a few dozen streams, which at this rate and length can be the whole p99. ", rounds)
	fmt.Fprintf(&b, "The %s row is the floor: the same generator and schedule, three round trips of %d bytes per request over plain TCP to a Go echo server (one goroutine per connection), no gRPC; no ext_proc server can beat it in the same run.", floor.name, floorMsgSize)
	prio := "at normal priority (-rt=false, or the system refused SCHED_FIFO)"
	if rtOK {
		prio = "at real-time priority (SCHED_FIFO 1; the servers at normal priority)"
	}
	fmt.Fprintf(&b, " The generator ran %s.", prio)
	var stalls []string
	for _, s := range append(servers, floor) {
		if g, ok := loads[s.name].(*loadGen); ok {
			stalls = append(stalls, fmt.Sprintf("%s %d", s.name, g.poll.stalls()))
		}
	}
	if len(stalls) > 0 {
		fmt.Fprintf(&b, " Writes that found the socket buffer full (the generator keeps the bytes and goes on with the other connections; a server that stops reading causes them): %s.", strings.Join(stalls, ", "))
	}
	fmt.Fprintf(&b, "\n\n")
	fmt.Fprintf(&b, "## Goals\n\n")
	goal := func(name string, ok bool, got string) {
		mark := "met"
		if !ok {
			mark = "NOT met"
		}
		fmt.Fprintf(&b, "- %s: %s (%s)\n", name, mark, got)
	}
	for _, base := range baselines {
		c0, o0 := *closed[base.name], *open[base.name]
		goal(fmt.Sprintf("throughput ≥ 0.9× %s (closed loop)", base.name), c1.rps() >= 0.9*c0.rps(), fmt.Sprintf("%.2f×", c1.rps()/c0.rps()))
		goal(fmt.Sprintf("p99 ≤ 1.2× %s p99 (open loop)", base.name), ratio(o1.p99, o0.p99) <= 1.2, fmt.Sprintf("%.2f×", ratio(o1.p99, o0.p99)))
	}
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
	_, p99, _ := percentiles(slices.Clone(r.lat))
	t.sliceP99 = append(t.sliceP99, p99)
	t.n += r.n
	t.errors += r.errors
	t.elapsed += r.elapsed
	t.cpu += r.cpu
	t.gen += r.gen
	t.steal += r.steal
	t.lag = append(t.lag, r.lag...)
}

// measure runs one phase against s and adds the CPU time that s and the
// generator spent on it.
func measure(s *server, phase func() result) result {
	c0, g0, s0 := processCPU(s.cmd.Process.Pid), selfCPU(), stealTime()
	r := phase()
	r.cpu, r.gen, r.steal = processCPU(s.cmd.Process.Pid)-c0, selfCPU()-g0, stealTime()-s0
	return r
}

// stealTime is the time the hypervisor kept this VM's CPUs from running
// while they had work, summed over the CPUs (/proc/stat, the "cpu" line's
// 8th value, proc(5); 0 where unavailable): no process in the VM, however
// urgent, runs meanwhile.
func stealTime() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	t, err := strconv.ParseInt(f[8], 10, 64)
	if err != nil {
		return 0
	}
	return time.Duration(t) * time.Second / 100 // USER_HZ
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func selfCPU() time.Duration { return processCPU(os.Getpid()) }
