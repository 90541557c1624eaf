package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// longKey is an x-request-id of 60 KiB that differs from its neighbours at
// both ends and nowhere else.
func longKey(buf []byte, i int) string {
	binary.BigEndian.PutUint64(buf[:8], uint64(i))
	binary.BigEndian.PutUint64(buf[len(buf)-8:], uint64(i))
	return "x-request-id=" + string(buf)
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestMemoryStoreHeapBound fills stores with 60 KiB keys and the largest
// records: the live heap they keep stays within the byte budget the docs
// state (capacity × MemoryBytesPerRecord, and one largest record) plus the
// index, and the newest records still restore under their long keys.
func TestMemoryStoreHeapBound(t *testing.T) {
	for _, capacity := range []int{1, 64, 1024} {
		t.Run("capacity "+strconv.Itoa(capacity), func(t *testing.T) {
			buf := bytes.Repeat([]byte("k"), 60<<10)
			rec := func(i int) []byte {
				r := bytes.Repeat([]byte{byte(i)}, MaxRecordBytes)
				binary.BigEndian.PutUint64(r, uint64(i))
				return r
			}
			before := liveHeap()
			s := NewMemoryStore(capacity, time.Hour, nil)
			const n = 1024
			for i := 0; i < n; i++ {
				if err := s.Put(longKey(buf, i), rec(i)); err != nil {
					t.Fatal(err)
				}
			}
			grown := int64(liveHeap()) - int64(before)
			// The index: slots, table, and the allocator's size-class rounding
			// of the buffers (at most an eighth).
			bound := int64(MemoryBudget(capacity))*9/8 + int64(capacity)*96 + 64<<10
			t.Logf("%d records of %d-byte keys: live heap +%d bytes (bound %d)", n, len(longKey(buf, 0)), grown, bound)
			if grown > bound {
				t.Errorf("live heap grew by %d bytes, bound %d", grown, bound)
			}
			// The newest records that fit the budget restore.
			fit := min(4, MemoryBudget(capacity)/(32+MaxRecordBytes))
			for i := n - 1; i >= n-fit; i-- {
				got, ok, err := s.Get(nil, longKey(buf, i))
				if err != nil || !ok || !bytes.Equal(got, rec(i)) {
					t.Fatalf("record %d under its 60 KiB key: found %v, err %v", i, ok, err)
				}
			}
			runtime.KeepAlive(s)
		})
	}
}

// TestMemoryStoreLongKeys: keys beyond MaxKeyBytes are kept as digests and
// still tell apart keys that differ in one byte anywhere; a short key made of
// a long key's digest bytes does not find its record.
func TestMemoryStoreLongKeys(t *testing.T) {
	s := NewMemoryStore(64, time.Hour, nil)
	base := strings.Repeat("r", 200)
	keys := []string{
		"x-request-id=" + base,
		"x-request-id=" + base[:100] + "s" + base[101:],
		"x-request-id=" + base + "t",
		"x-request-id=" + strings.Repeat("r", MaxKeyBytes-len("x-request-id=")),   // at the limit: kept as is
		"x-request-id=" + strings.Repeat("r", MaxKeyBytes-len("x-request-id=")+1), // one over: hashed
	}
	for i, k := range keys {
		s.Put(k, []byte{byte(i)})
	}
	for i, k := range keys {
		if got, ok, _ := s.Get(nil, k); !ok || !bytes.Equal(got, []byte{byte(i)}) {
			t.Errorf("key %d: got %q %v", i, got, ok)
		}
	}
	d := sha256.Sum256([]byte(keys[0]))
	if got, ok, _ := s.Get(nil, string(d[:])); ok {
		t.Errorf("the digest of a long key, used as a key, found %q", got)
	}
	if s.Bytes() > s.Budget() {
		t.Errorf("bytes %d over budget %d", s.Bytes(), s.Budget())
	}
}

// TestMemoryStoreByteBudget: the byte budget evicts the records written
// longest ago, renewals count as writes, records over MaxRecordBytes are
// refused, and the accounted bytes never exceed the budget nor drift.
func TestMemoryStoreByteBudget(t *testing.T) {
	s := NewMemoryStore(8, time.Hour, nil) // budget: one largest record and its key
	if got, want := s.Budget(), MaxKeyBytes+MaxRecordBytes; got != want {
		t.Fatalf("budget %d, want %d", got, want)
	}
	third := make([]byte, MaxRecordBytes/3)
	s.Put("a", third)
	s.Put("b", third)
	s.Put("c", third)
	s.Put("a", third) // renewed: now the newest
	s.Put("d", third) // over budget: b, the oldest, goes
	for k, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if _, ok, _ := s.Get(nil, k); ok != want {
			t.Errorf("%s found %v, want %v", k, ok, want)
		}
	}
	if err := s.Put("big", make([]byte, MaxRecordBytes+1)); err != ErrRecordTooLarge {
		t.Errorf("record over MaxRecordBytes: %v, want ErrRecordTooLarge", err)
	}
	s.Put("max", make([]byte, MaxRecordBytes))
	if s.Len() != 1 {
		t.Errorf("after the largest record, %d records, want 1", s.Len())
	}
	for i := 0; i < 1000; i++ {
		s.Put(strconv.Itoa(i%70), make([]byte, i*37%MaxRecordBytes))
		if s.Bytes() > s.Budget() {
			t.Fatalf("put %d: bytes %d over budget %d", i, s.Bytes(), s.Budget())
		}
	}
	sum := 0
	for i := range s.slots {
		if s.slots[i].used {
			sum += cap(s.slots[i].buf)
		} else if s.slots[i].buf != nil {
			t.Errorf("unused slot %d keeps a buffer", i)
		}
	}
	if sum != s.Bytes() {
		t.Errorf("accounted %d bytes, buffers hold %d", s.Bytes(), sum)
	}
}
