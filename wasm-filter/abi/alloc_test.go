package abi

import (
	"testing"
	"unsafe"
)

func TestPinningAllocatorTakeAndRelease(t *testing.T) {
	a := newPinningAllocator()
	addr := a.allocate(16)
	other := a.allocate(0)
	if addr == 0 || other == 0 || addr == other {
		t.Fatalf("allocate gave %#x and %#x", addr, other)
	}
	p := a.take(addr, 16)
	if p == nil || uintptr(unsafe.Pointer(p)) != addr {
		t.Fatalf("take(%#x) = %p", addr, p)
	}
	if a.take(addr, 17) != nil {
		t.Fatal("take accepted a size larger than the allocation")
	}
	if a.take(addr+1, 1) != nil {
		t.Fatal("take accepted an address that was never handed out")
	}
	a.release()
	if len(a.pins) != 0 || cap(a.pins) != 4 {
		t.Fatalf("release left len %d cap %d", len(a.pins), cap(a.pins))
	}
	if a.take(addr, 16) != nil {
		t.Fatal("take found a buffer after release")
	}
}

func TestPinningAllocatorSteadyStateAllocs(t *testing.T) {
	a := newPinningAllocator()
	// One allocation per host call is the common case: only the buffer itself
	// may be allocated, never the pin list.
	allocs := testing.AllocsPerRun(100, func() {
		addr := a.allocate(64)
		_ = a.take(addr, 64)
		a.release()
	})
	if allocs > 1 {
		t.Fatalf("%v allocations per host call, want at most 1", allocs)
	}
}

func TestScratchAllocatorReusesAndGrows(t *testing.T) {
	var a scratchAllocator
	first := a.allocate(100)
	if p := a.take(first, 100); p == nil || uintptr(unsafe.Pointer(p)) != first {
		t.Fatalf("take(%#x) = %p", first, p)
	}
	second := a.allocate(10_000) // outgrows the buffer mid-call
	if a.take(first, 100) == nil || a.take(second, 10_000) == nil {
		t.Fatal("a buffer handed out in this host call was lost when the scratch grew")
	}
	if a.take(second, 10_001) != nil {
		t.Fatal("take accepted a size past the buffer")
	}
	a.release()
	if len(a.retired) != 0 {
		t.Fatalf("release kept %d retired buffers", len(a.retired))
	}
	again := a.allocate(10_000)
	if again != second {
		t.Fatalf("after release the scratch gave %#x, want the same buffer %#x", again, second)
	}
	if a.allocate(0) == 0 {
		t.Fatal("a zero-size allocation returned address 0")
	}
	a.release()
	allocs := testing.AllocsPerRun(100, func() {
		addr := a.allocate(64)
		_ = a.take(addr, 64)
		a.release()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per host call once grown, want 0", allocs)
	}
}
