package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// grpcLoad drives the load with grpc-go's client (-client grpc): one
// goroutine per in-flight stream (closed loop) or a pool of 256 goroutines
// fed from a time.Sleep pacer (open loop). Kept to compare with h2Load.
type grpcLoad struct {
	clients []extprocv3.ExternalProcessorClient
	conns   []*grpc.ClientConn
}

func newGRPCLoad(addr string, n int) (*grpcLoad, error) {
	l := &grpcLoad{}
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

func (l *grpcLoad) close() {
	for _, c := range l.conns {
		c.Close()
	}
}

// requestHeaders is the next request headers message, with a unique id.
func (l *grpcLoad) requestHeaders() *extprocv3.ProcessingRequest {
	var id [idWidth]byte
	putHex(id[:], seq.Add(1))
	return requestHeadersMsg(string(id[:]))
}

// stream runs one ext_proc exchange the way Envoy does for one request.
func (l *grpcLoad) stream(ctx context.Context, c extprocv3.ExternalProcessorClient) error {
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

// closedLoop: workers send back to back.
func (l *grpcLoad) closedLoop(workers int, d time.Duration) result {
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
func (l *grpcLoad) openLoop(rate int, d time.Duration) result {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	total := int(d.Seconds() * float64(rate))
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, total)
	lag := make([]time.Duration, total)
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
				lag[i] = time.Since(sched)
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
	r.lag = lag
	return r
}
