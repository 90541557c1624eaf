package engine

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"slices"
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

func TestMemoryStoreInFlight(t *testing.T) {
	s := NewMemoryStore(2, time.Minute, nil)
	s.Enter(1, []byte("a"))
	s.Enter(2, []byte("b"))
	if n, _, ok, _ := s.Sole(nil); n != 2 || ok {
		t.Fatalf("two in flight: n=%d ok=%v", n, ok)
	}
	s.Leave(2)
	if n, rec, ok, _ := s.Sole(nil); n != 1 || !ok || string(rec) != "a" {
		t.Fatalf("after 2 left: n=%d %q %v, want 1 a true", n, rec, ok)
	}
	s.Leave(7) // unknown owner: ignored
	s.Leave(1)
	if n, _, ok, _ := s.Sole(nil); n != 0 || ok {
		t.Fatalf("none in flight: n=%d ok=%v", n, ok)
	}
	s.Enter(3, nil) // a request without context still counts
	if n, _, ok, _ := s.Sole(nil); n != 1 || ok {
		t.Fatalf("one without record: n=%d ok=%v", n, ok)
	}
}

func TestInFlightSetOverflowAndEncoding(t *testing.T) {
	var s InFlightSet
	for i := 1; i <= MaxInFlightEntries+3; i++ {
		s.Enter(uint64(i), []byte{byte(i)}, 100)
	}
	if s.Count() != MaxInFlightEntries+3 || s.Overflow != 3 {
		t.Fatalf("count=%d overflow=%d", s.Count(), s.Overflow)
	}
	d := DecodeInFlightSet(s.AppendBinary(nil))
	if d.Count() != s.Count() || d.Entries[5].Owner != 6 || d.Entries[5].Rec[0] != 6 {
		t.Fatalf("decoded %+v", d.Entries[5])
	}
	s.Leave(999, 200) // an overflowed request ends
	if s.Overflow != 2 {
		t.Fatalf("overflow=%d after an unknown leave", s.Overflow)
	}
	s.Expire(200+int64(time.Hour), time.Minute)
	if s.Count() != 0 {
		t.Fatalf("expired set still counts %d", s.Count())
	}
	enc := (&InFlightSet{Entries: []InFlightEntry{{Owner: 1, Started: 2, Rec: []byte("xyz")}}}).AppendBinary(nil)
	for cut := 0; cut <= len(enc); cut++ {
		DecodeInFlightSet(enc[:cut]) // must not panic
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
				owner := uint64(g*100000 + i + 1)
				s.Enter(owner, []byte(k))
				s.Leave(owner)
			}
		}(g)
	}
	wg.Wait()
	if s.Len() > 64 {
		t.Fatalf("store grew past capacity: %d", s.Len())
	}
	if n, _, _, _ := s.Sole(nil); n != 0 {
		t.Fatalf("in-flight = %d after balanced enter/leave", n)
	}
}

// TestMemoryStoreAgainstModel drives the store and a plain model (a map and
// a list of keys in write order) with the same random operations, with
// the real hash and with hashes that make keys collide, so that probing and
// the removal of evicted entries are exercised on crowded tables.
func TestMemoryStoreAgainstModel(t *testing.T) {
	hashes := []struct {
		name string
		fn   func(maphash.Seed, string) uint64
	}{
		{"maphash", maphash.String},
		{"all collide", func(maphash.Seed, string) uint64 { return 7 }},
		{"by length", func(_ maphash.Seed, k string) uint64 { return uint64(len(k)) }},
	}
	for _, h := range hashes {
		for _, capacity := range []int{1, 3, 8} {
			t.Run(fmt.Sprintf("%s/capacity %d", h.name, capacity), func(t *testing.T) {
				s := NewMemoryStore(capacity, time.Hour, nil)
				s.hash = h.fn
				model := map[string]string{}
				var ring []string // keys in write order, oldest first
				rng := rand.New(rand.NewPCG(uint64(capacity), 1))
				for op := 0; op < 20000; op++ {
					key := fmt.Sprintf("x-request-id=%d", rng.IntN(3*capacity+2))
					if rng.IntN(2) == 0 {
						rec := fmt.Sprintf("rec-%d", op)
						s.Put(key, []byte(rec))
						if _, ok := model[key]; ok {
							ring = slices.DeleteFunc(ring, func(k string) bool { return k == key })
						} else if len(ring) == capacity {
							delete(model, ring[0])
							ring = ring[1:]
						}
						ring = append(ring, key) // a renewed record is the newest
						model[key] = rec
					}
					got, ok, _ := s.Get(nil, key)
					want, wantOK := model[key]
					if ok != wantOK || string(got) != want {
						t.Fatalf("op %d: Get(%q) = %q %v, model %q %v", op, key, got, ok, want, wantOK)
					}
					if s.Len() != len(model) {
						t.Fatalf("op %d: Len %d, model %d", op, s.Len(), len(model))
					}
				}
			})
		}
	}
}

// BenchmarkMemoryStorePut is the store's part of an ext_proc request: one
// Put of a new x-request-id.
func BenchmarkMemoryStorePut(b *testing.B) {
	s := NewMemoryStore(4096, 30*time.Second, nil)
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = fmt.Sprintf("x-request-id=5f0c7b2e-%016x", i)
	}
	rec := []byte("\x0btraceparent\x00\x3700-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\x0atracestate\x00\x0avendor=abc")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Put(keys[i&(len(keys)-1)], rec)
	}
}
