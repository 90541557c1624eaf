package extproc

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tracebridge/tracebridge/engine"
)

// TestConcurrentStreams holds 10,000 streams open at once (2,000 under -race,
// whose goroutine limit is 8,128), each a full request/response exchange,
// over several TCP connections as Envoy would use.
func TestConcurrentStreams(t *testing.T) {
	n := 10000
	if raceEnabled {
		n = 2000
	}
	if testing.Short() {
		n = 500
	}
	env := startServer(t, "tcp", "", Options{})
	target := env.conn.Target()
	const conns = 8
	clients := make([]extprocv3.ExternalProcessorClient, conns)
	for i := range clients {
		cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		clients[i] = extprocv3.NewExternalProcessorClient(cc)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var opened sync.WaitGroup
	opened.Add(n)
	release := make(chan struct{})
	errs := make(chan error, n)
	var done sync.WaitGroup
	var ok atomic.Int64
	for i := 0; i < n; i++ {
		done.Add(1)
		go func(i int) {
			defer done.Done()
			openedOnce := sync.OnceFunc(opened.Done)
			defer openedOnce()
			err := func() error {
				s, err := clients[i%conns].Process(ctx)
				if err != nil {
					return err
				}
				rid := fmt.Sprintf("req-%d", i)
				if err := s.Send(reqHeadersMsg(hmap("traceparent", validTP, "x-request-id", rid), nil)); err != nil {
					return err
				}
				r, err := s.Recv()
				if err != nil {
					return err
				}
				if r.GetRequestHeaders() == nil {
					return fmt.Errorf("reply %T", r.Response)
				}
				openedOnce()
				<-release
				if err := s.Send(respHeadersMsg(hmap(":status", "200"))); err != nil {
					return err
				}
				r, err = s.Recv()
				if err != nil {
					return err
				}
				sets := r.GetResponseHeaders().GetResponse().GetHeaderMutation().GetSetHeaders()
				if len(sets) != 1 || !strings.Contains(string(sets[0].Header.RawValue), validTID) {
					return fmt.Errorf("response mutation %v", sets)
				}
				if err := s.CloseSend(); err != nil {
					return err
				}
				if _, err := s.Recv(); err == nil || err.Error() != "EOF" {
					return fmt.Errorf("end: %v", err)
				}
				ok.Add(1)
				return nil
			}()
			if err != nil {
				errs <- err
			}
		}(i)
	}
	opened.Wait()
	peak := env.srv.OpenStreams()
	close(release)
	done.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("stream failed: %v", err)
	}
	if peak != int64(n) {
		t.Errorf("%d streams open at the peak, want %d", peak, n)
	}
	if ok.Load() != int64(n) {
		t.Errorf("%d streams completed, want %d", ok.Load(), n)
	}
	waitFor(t, func() bool { return env.srv.OpenStreams() == 0 })
	t.Logf("%d concurrent streams in %s", n, time.Since(start).Round(time.Millisecond))
}

// TestReloadUnderTraffic swaps the policy while streams run: every request is
// served whole by one policy or the other, none fails, and an invalid policy
// leaves the current one in force.
func TestReloadUnderTraffic(t *testing.T) {
	w3cOnly := mustPolicy(t, `{"emit":["w3c"]}`)
	both := mustPolicy(t, `{"emit":["w3c","b3multi"]}`)
	bad := &engine.Policy{Invalid: "sometimes"}
	env := startServer(t, "tcp", `{"emit":["w3c"]}`, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var served, withB3 atomic.Int64
	errs := make(chan error, 16)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				s, err := env.client.Process(context.Background())
				if err != nil {
					errs <- err
					return
				}
				in := hmap("traceparent", "00-zz", "x-request-id", "r")
				if err := s.Send(reqHeadersMsg(in, nil)); err != nil {
					errs <- err
					return
				}
				r, err := s.Recv()
				if err != nil {
					errs <- err
					return
				}
				out := applyMutation(t, headerPairs(in), r.GetRequestHeaders().GetResponse().GetHeaderMutation())
				if _, ok := headerValue(out, "traceparent"); !ok {
					errs <- fmt.Errorf("no traceparent after repair: %v", out)
					return
				}
				if _, ok := headerValue(out, "x-b3-traceid"); ok {
					withB3.Add(1)
				}
				s.Send(respHeadersMsg(hmap(":status", "200")))
				if _, err := s.Recv(); err != nil {
					errs <- err
					return
				}
				s.CloseSend()
				s.Recv()
				served.Add(1)
			}
		}()
	}
	reloads := 0
	for ctx.Err() == nil {
		p := w3cOnly
		if reloads%2 == 0 {
			p = both
		}
		if err := env.srv.SetPolicy(p); err != nil {
			t.Fatal(err)
		}
		if err := env.srv.SetPolicy(bad); err == nil {
			t.Fatal("invalid policy accepted")
		}
		reloads++
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("stream failed during reloads: %v", err)
	}
	if served.Load() == 0 || withB3.Load() == 0 || withB3.Load() == served.Load() {
		t.Errorf("served %d, with b3 %d: want both policies seen", served.Load(), withB3.Load())
	}
	t.Logf("%d reloads, %d requests served, %d under the b3 policy", reloads, served.Load(), withB3.Load())
}
