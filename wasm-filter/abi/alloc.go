package abi

import "unsafe"

// allocator serves proxy_on_memory_allocate. The host asks the guest for a
// buffer, writes a host-owned value into it and hands its address back through
// a return slot of the host call that asked for the value. Between the
// allocation and the moment the SDK holds a real Go pointer to the buffer, the
// only reference to it is a 32-bit address in linear memory, which the garbage
// collector does not see. The allocator therefore keeps every buffer it handed
// out reachable until the end of the host call (release).
//
// The interface is the seam for a later arena allocator (no heap allocation and
// so no GC inside proxy_on_memory_allocate). An arena reuses memory after
// release, so it must only be installed once the SDK's results that alias the
// buffers (the SDK builds strings over them without copying) are copied or
// consumed before the next host call.
type allocator interface {
	// allocate returns the address of size bytes, valid until release.
	allocate(size uint32) uintptr
	// take returns the buffer that allocate handed out at addr, checked
	// against the size the host reports, or nil if addr is not one of ours.
	take(addr uintptr, size uint32) *byte
	// release ends the host call: the SDK now references what it took.
	release()
}

var _ allocator = (*pinningAllocator)(nil)

// pinningAllocator allocates from the Go heap and pins each buffer in a slice
// until release. Almost every host call allocates at most once, so the pin
// list stays at its initial capacity and release allocates nothing.
type pinningAllocator struct {
	pins [][]byte
}

func newPinningAllocator() *pinningAllocator {
	return &pinningAllocator{pins: make([][]byte, 0, 4)}
}

func (a *pinningAllocator) allocate(size uint32) uintptr {
	// A zero-size request still needs a distinct, valid address: Envoy and
	// other hosts treat 0 as allocation failure.
	n := size
	if n == 0 {
		n = 1
	}
	buf := make([]byte, n)
	a.pins = append(a.pins, buf)
	return uintptr(unsafe.Pointer(&buf[0]))
}

func (a *pinningAllocator) take(addr uintptr, size uint32) *byte {
	for _, buf := range a.pins {
		if uintptr(unsafe.Pointer(&buf[0])) == addr {
			if uint64(size) > uint64(len(buf)) {
				return nil
			}
			return &buf[0]
		}
	}
	return nil
}

func (a *pinningAllocator) release() {
	clear(a.pins) // drop the references so the GC may free what the SDK no longer uses
	a.pins = a.pins[:0]
}

var _ allocator = (*scratchAllocator)(nil)

// scratchAllocator serves host calls whose result the caller consumes before
// its next host call (a property, one header, a shared-data value that is
// decoded at once): it bump-allocates from one reused buffer, so such calls
// allocate nothing once the buffer has grown to fit. A buffer outgrown in the
// middle of a host call stays referenced until release, because the host
// still holds its address.
type scratchAllocator struct {
	buf     []byte
	used    int
	retired [][]byte
}

func (a *scratchAllocator) allocate(size uint32) uintptr {
	n := max(int(size), 1) // 0 means failure to the host
	if a.used+n > len(a.buf) {
		if a.used > 0 {
			a.retired = append(a.retired, a.buf)
		}
		a.buf, a.used = make([]byte, max(2*len(a.buf), n, 256)), 0
	}
	p := &a.buf[a.used]
	a.used += n
	return uintptr(unsafe.Pointer(p))
}

func (a *scratchAllocator) take(addr uintptr, size uint32) *byte {
	if p := within(a.buf, addr, size); p != nil {
		return p
	}
	for _, b := range a.retired {
		if p := within(b, addr, size); p != nil {
			return p
		}
	}
	return nil
}

// within returns the byte of b at addr if [addr, addr+size) lies in b.
func within(b []byte, addr uintptr, size uint32) *byte {
	if len(b) == 0 {
		return nil
	}
	base := uintptr(unsafe.Pointer(&b[0]))
	if addr < base || addr-base+uintptr(size) > uintptr(len(b)) {
		return nil
	}
	return &b[addr-base]
}

func (a *scratchAllocator) release() {
	a.used = 0
	clear(a.retired)
	a.retired = a.retired[:0]
}
