package testsupport

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tracebridge/tracebridge/e2e/sim/backend"
)

func randHex(t *testing.T, nbytes int) string {
	t.Helper()
	b := make([]byte, nbytes)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func TestJaeger(t *testing.T) {
	j := Jaeger(t)

	t.Run("ZipkinRoundTrip", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		traceID := randHex(t, 16)
		rootID, childID := randHex(t, 8), randHex(t, 8)
		front, back := "td-front-"+randHex(t, 3), "td-back-"+randHex(t, 3)
		start := time.Now().Add(-time.Second).UnixMicro()
		body := fmt.Sprintf(`[
		  {"traceId":%[1]q,"id":%[2]q,"name":"get /hello","kind":"SERVER",
		   "timestamp":%[5]d,"duration":5000,
		   "localEndpoint":{"serviceName":%[4]q},
		   "tags":{"http.method":"GET","tenant":"acme"}},
		  {"traceId":%[1]q,"id":%[3]q,"parentId":%[2]q,"name":"get /backend","kind":"SERVER",
		   "timestamp":%[7]d,"duration":2000,
		   "localEndpoint":{"serviceName":%[6]q},
		   "tags":{"http.status_code":"200"}}
		]`, traceID, rootID, childID, front, start, back, start+1000)
		if err := j.SendZipkin(ctx, []byte(body)); err != nil {
			t.Fatal(err)
		}

		tr, err := j.Query.WaitForTrace(ctx, traceID, func(tr *backend.Trace) bool { return len(tr.Spans) == 2 })
		if err != nil {
			t.Fatal(err)
		}
		if !backend.TraceIDEqual(tr.TraceID, traceID) {
			t.Errorf("trace ID %s, want %s", tr.TraceID, traceID)
		}
		root, child := tr.SpanByID(rootID), tr.SpanByID(childID)
		if root == nil || child == nil {
			t.Fatalf("spans %s/%s not found in %+v", rootID, childID, tr.Spans)
		}
		if got := root.ServiceName(); got != front {
			t.Errorf("root service %q, want %q", got, front)
		}
		if got := child.ServiceName(); got != back {
			t.Errorf("child service %q, want %q", got, back)
		}
		if root.OperationName != "get /hello" || child.OperationName != "get /backend" {
			t.Errorf("operations %q, %q", root.OperationName, child.OperationName)
		}
		if p := root.ParentSpanID(); p != "" {
			t.Errorf("root has parent %q", p)
		}
		if p := child.ParentSpanID(); p != rootID {
			t.Errorf("child parent %q, want %q (refs %+v)", p, rootID, child.References)
		}
		if got := root.TagString("tenant"); got != "acme" {
			t.Errorf("tenant tag %q, want acme (tags %+v)", got, root.Tags)
		}
		if got := root.TagString("http.method"); got != "GET" {
			t.Errorf("http.method tag %q", got)
		}
		if root.StartTime != start || root.Elapsed() != 5*time.Millisecond {
			t.Errorf("root start %d duration %v, want %d 5ms", root.StartTime, root.Elapsed(), start)
		}
		if roots := tr.Roots(); len(roots) != 1 || roots[0].SpanID != rootID {
			t.Errorf("roots %+v", roots)
		}
		if kids := tr.Children(rootID); len(kids) != 1 || kids[0].SpanID != childID {
			t.Errorf("children %+v", kids)
		}
		if got := tr.Services(); !slices.Equal(got, []string{back, front}) {
			t.Errorf("services in trace %v", got)
		}

		svcs, err := j.Query.Services(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(svcs, front) || !slices.Contains(svcs, back) {
			t.Errorf("services %v lack %s/%s", svcs, front, back)
		}

		trs, err := j.Query.Traces(ctx, backend.TraceQuery{Service: front, Tags: map[string]string{"tenant": "acme"}, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(trs) != 1 || !backend.TraceIDEqual(trs[0].TraceID, traceID) || len(trs[0].Spans) != 2 {
			t.Errorf("search by service+tag: %d traces %+v", len(trs), trs)
		}
		trs, err = j.Query.Traces(ctx, backend.TraceQuery{Service: front, Tags: map[string]string{"tenant": "other"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(trs) != 0 {
			t.Errorf("search with a non-matching tag found %d traces", len(trs))
		}

		raw := *j.Query
		raw.Raw = true
		if tr, err := raw.Trace(ctx, traceID); err != nil || len(tr.Spans) != 2 {
			t.Errorf("raw trace: %v", err)
		}
		if _, err := j.Query.Trace(ctx, randHex(t, 16)); err != backend.ErrTraceNotFound {
			t.Errorf("unknown trace: err %v, want backend.ErrTraceNotFound", err)
		}
	})

	t.Run("OTLPHTTP", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		traceID, spanID := randHex(t, 16), randHex(t, 8)
		svc := "td-otlp-" + randHex(t, 3)
		now := time.Now().Add(-time.Second)
		body := fmt.Sprintf(`{"resourceSpans":[{"resource":{"attributes":[
		  {"key":"service.name","value":{"stringValue":%q}}]},
		  "scopeSpans":[{"spans":[{"traceId":%q,"spanId":%q,"name":"otlp-op","kind":2,
		    "startTimeUnixNano":"%d","endTimeUnixNano":"%d",
		    "attributes":[{"key":"plan","value":{"stringValue":"gold"}}]}]}]}]}`,
			svc, traceID, spanID, now.UnixNano(), now.Add(3*time.Millisecond).UnixNano())
		if err := j.SendOTLPJSON(ctx, []byte(body)); err != nil {
			t.Fatal(err)
		}
		trs, err := j.Query.WaitForTraces(ctx, backend.TraceQuery{Service: svc}, func(trs []backend.Trace) bool { return len(trs) == 1 })
		if err != nil {
			t.Fatal(err)
		}
		sp := trs[0].Spans[0]
		if !backend.TraceIDEqual(sp.TraceID, traceID) || sp.SpanID != spanID || sp.OperationName != "otlp-op" ||
			sp.TagString("plan") != "gold" || sp.ServiceName() != svc {
			t.Errorf("OTLP span came back as %+v", sp)
		}
	})

	t.Run("LoopbackOnly", func(t *testing.T) {
		addrs := listeningAddrs(t, j.Pid())
		// zipkin, otlp grpc, otlp http, query http, query grpc, health check
		if len(addrs) != 6 {
			t.Errorf("jaeger listens on %d sockets, want 6: %v", len(addrs), addrs)
		}
		for _, a := range addrs {
			if !strings.HasPrefix(a, "127.0.0.1:") {
				t.Errorf("jaeger listens on %s, not 127.0.0.1", a)
			}
		}
	})
}

// listeningAddrs returns the local addresses of the TCP sockets in LISTEN
// state owned by pid, and of its UDP sockets prefixed "udp ", from /proc.
func listeningAddrs(t *testing.T, pid int) []string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, e := range ents {
		link, err := os.Readlink(fdDir + "/" + e.Name())
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, tbl := range []string{"tcp", "tcp6", "udp", "udp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, tbl))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || !inodes[fields[9]] {
				continue
			}
			// TCP state 0A is LISTEN; any UDP socket counts.
			if strings.HasPrefix(tbl, "tcp") && fields[3] != "0A" {
				continue
			}
			a := decodeProcAddr(t, fields[1])
			if strings.HasPrefix(tbl, "udp") {
				a = "udp " + a
			}
			out = append(out, a)
		}
		f.Close()
	}
	return out
}

// decodeProcAddr turns /proc/net/tcp's "0100007F:1F90" into "127.0.0.1:8080".
func decodeProcAddr(t *testing.T, s string) string {
	hexIP, hexPort, _ := strings.Cut(s, ":")
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		t.Fatalf("bad /proc address %q", s)
	}
	b, err := hex.DecodeString(hexIP)
	if err != nil {
		t.Fatalf("bad /proc address %q", s)
	}
	// The kernel prints each 32-bit word in host (little-endian) order.
	for i := 0; i+4 <= len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return net.JoinHostPort(net.IP(b).String(), strconv.Itoa(int(port)))
}

// respCommand sends one command as a RESP array and returns the first reply
// line.
func respCommand(t *testing.T, c net.Conn, r *bufio.Reader, args ...string) string {
	t.Helper()
	var sb strings.Builder
	fmt.Fprintf(&sb, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&sb, "$%d\r\n%s\r\n", len(a), a)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(sb.String())); err != nil {
		t.Fatal(err)
	}
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(line, "\r\n")
}

func TestRedis(t *testing.T) {
	rd := Redis(t)
	if !strings.HasPrefix(rd.Addr, "127.0.0.1:") {
		t.Fatalf("Addr %s", rd.Addr)
	}

	c, err := net.DialTimeout("tcp", rd.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	if got := respCommand(t, c, br, "PING"); got != "+PONG" {
		t.Fatalf("PING: %q", got)
	}
	if got := respCommand(t, c, br, "SET", "k", "v1"); got != "+OK" {
		t.Fatalf("SET: %q", got)
	}
	if got := respCommand(t, c, br, "GET", "k"); got != "$2" {
		t.Fatalf("GET: %q", got)
	} else if v, _ := br.ReadString('\n'); v != "v1\r\n" {
		t.Fatalf("GET value %q", v)
	}
	c.Close()

	if runtime.GOOS == "linux" {
		addrs := listeningAddrs(t, rd.Pid())
		if len(addrs) != 1 || addrs[0] != rd.Addr {
			t.Errorf("redis listens on %v, want only %s", addrs, rd.Addr)
		}
	}

	// Outage and recovery on the same port.
	if err := rd.Stop(); err != nil {
		t.Fatal(err)
	}
	if rd.Running() {
		t.Fatal("still running after Stop")
	}
	if c, err := net.DialTimeout("tcp", rd.Addr, time.Second); err == nil {
		c.Close()
		t.Fatal("connected to a stopped redis")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rd.Ping(ctx); err == nil {
		t.Fatal("PING of a stopped redis succeeded")
	}
	if err := rd.Start(); err != nil {
		t.Fatal(err)
	}
	c, err = net.DialTimeout("tcp", rd.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br = bufio.NewReader(c)
	if got := respCommand(t, c, br, "PING"); got != "+PONG" {
		t.Fatalf("PING after restart: %q", got)
	}
	// Nothing is persisted: the key is gone.
	if got := respCommand(t, c, br, "GET", "k"); got != "$-1" {
		t.Fatalf("GET after restart: %q, want nil", got)
	}
}

func TestLoadTools(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("ok"))
	}))
	defer srv.Close()

	out, err := exec.Command(Hey(t), "-n", "20", "-c", "2", "-t", "5", srv.URL).CombinedOutput()
	if err != nil {
		t.Fatalf("hey: %v\n%s", err, out)
	}
	if n := hits.Load(); n != 20 {
		t.Errorf("hey sent %d requests, want 20\n%s", n, out)
	}

	out, err = exec.Command(Ghz(t), "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("ghz --version: %v\n%s", err, out)
	}
}

func TestStartJaeger(t *testing.T) {
	j, err := backend.StartJaeger(Tool(t, ToolJaeger), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := j.Query.Services(ctx); err != nil {
		t.Error(err)
	}
	if err := j.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := j.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := j.Query.Services(ctx); err == nil {
		t.Error("query API still answers after Stop")
	}
}
