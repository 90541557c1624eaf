package engine

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestMemoryStoreTTL(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	s := NewMemoryStore(4, 10*time.Second, clk.Now)
	if err := s.Put("k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	clk.Advance(9 * time.Second)
	if rec, ok, _ := s.Get(nil, "k"); !ok || string(rec) != "v1" {
		t.Fatalf("before TTL: got %q %v", rec, ok)
	}
	clk.Advance(time.Second)
	if _, ok, _ := s.Get(nil, "k"); ok {
		t.Fatal("record still served at its TTL")
	}
	// A new Put of the same key renews it.
	s.Put("k", []byte("v2"))
	if rec, ok, _ := s.Get(nil, "k"); !ok || string(rec) != "v2" {
		t.Fatalf("after renewal: got %q %v", rec, ok)
	}
}

func TestMemoryStoreFullOverwritesOldest(t *testing.T) {
	s := NewMemoryStore(3, time.Minute, nil)
	for i := 0; i < 10; i++ {
		s.Put(fmt.Sprintf("k%d", i), []byte{byte(i)})
		if s.Len() > 3 {
			t.Fatalf("store grew to %d records, capacity 3", s.Len())
		}
	}
	for i := 0; i < 7; i++ {
		if _, ok, _ := s.Get(nil, fmt.Sprintf("k%d", i)); ok {
			t.Errorf("k%d survived, want overwritten", i)
		}
	}
	for i := 7; i < 10; i++ {
		if rec, ok, _ := s.Get(nil, fmt.Sprintf("k%d", i)); !ok || rec[0] != byte(i) {
			t.Errorf("k%d lost", i)
		}
	}
}

func TestMemoryStoreCopiesInput(t *testing.T) {
	s := NewMemoryStore(2, time.Minute, nil)
	buf := []byte("abc")
	s.Put("k", buf)
	buf[0] = 'X'
	if rec, _, _ := s.Get(nil, "k"); string(rec) != "abc" {
		t.Fatalf("store aliased the caller's buffer: %q", rec)
	}
}

func TestMemoryStoreSoleOwnership(t *testing.T) {
	s := NewMemoryStore(2, time.Minute, nil)
	s.PutSole(1, []byte("a"))
	s.PutSole(2, []byte("b"))
	s.ClearSole(1) // request 1 ends: request 2 still holds the record
	if owner, rec, ok, _ := s.Sole(nil); !ok || owner != 2 || string(rec) != "b" {
		t.Fatalf("sole = %d %q %v, want 2 b true", owner, rec, ok)
	}
	s.ClearSole(2)
	if _, _, ok, _ := s.Sole(nil); ok {
		t.Fatal("sole record held after its owner ended")
	}
	if n, _ := s.AddInFlight(-1); n != 0 {
		t.Fatalf("in-flight went below zero: %d", n)
	}
}

func TestMemoryStoreConcurrent(t *testing.T) {
	s := NewMemoryStore(64, time.Minute, nil)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				k := fmt.Sprintf("g%d-%d", g, i%100)
				s.Put(k, []byte(k))
				if rec, ok, _ := s.Get(nil, k); ok && string(rec) != k {
					t.Errorf("got %q for %q", rec, k)
					return
				}
				s.AddInFlight(1)
				s.AddInFlight(-1)
			}
		}(g)
	}
	wg.Wait()
	if s.Len() > 64 {
		t.Fatalf("store grew past capacity: %d", s.Len())
	}
	if n, _ := s.AddInFlight(0); n != 0 {
		t.Fatalf("in-flight = %d after balanced adds", n)
	}
}
