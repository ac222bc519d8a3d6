package tracestore

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cutIovMax bounds one preadv's vectors (Linux's IOV_MAX is 1024); a
// variable so tests can split a read.
var cutIovMax = 1024

// readDirect reads slots (one file's pieces in file order, coalesced into
// [start, end)) with preadv straight to where each piece goes in buf: the
// copy out of a read window was ~0.18 µs/span of a 10M-span cut (ADR 0120
// addendum). Gaps between pieces and the WAL's fragment headers land in a
// scratch buffer. ok is false when the pieces do not fit this scheme
// (overlapping pieces); the caller then reads through the window.
func (cr *cutReader) readDirect(f *headFile, slots []cutSlot, start, end int64) (ok bool, err error) {
	if cr.scratch == nil {
		cr.scratch = make([]byte, 64<<10)
	}
	iovs, off, pos := cr.iovs[:0], start, start
	flush := func() error {
		want := 0
		for _, v := range iovs {
			want += len(v)
		}
		got, err := cr.preadv(f, iovs, off)
		if err == nil && got < want {
			err = errors.New("short read")
		}
		if err != nil {
			return fmt.Errorf("read head pieces from %s at %d: %w", f.f.Name(), off, err)
		}
		off += int64(want)
		iovs = iovs[:0]
		return nil
	}
	add := func(b []byte) error {
		if len(iovs) == cutIovMax {
			if err := flush(); err != nil {
				return err
			}
		}
		iovs = append(iovs, b)
		return nil
	}
	for _, s := range slots {
		if s.ref.off < pos {
			cr.iovs = iovs
			return false, nil
		}
		for gap := s.ref.off - pos; gap > 0; {
			k := min(gap, int64(len(cr.scratch)))
			if err := add(cr.scratch[:k]); err != nil {
				return true, err
			}
			gap -= k
		}
		dst, at := cr.buf[s.dst:s.dst+int(s.ref.n)], s.ref.off
		for len(dst) > 0 {
			k := min(int64(len(dst)), walPageSize-at%walPageSize)
			if err := add(dst[:k]); err != nil {
				return true, err
			}
			if dst = dst[k:]; len(dst) > 0 {
				if err := add(cr.scratch[:walRecordHeader]); err != nil {
					return true, err
				}
			}
			at += k + walRecordHeader
		}
		pos = pieceEnd(s.ref)
	}
	var ferr error
	if len(iovs) > 0 {
		ferr = flush()
	}
	cr.iovs = iovs
	return true, ferr
}

// preadv is unix.Preadv with the cut's own vector table: unix.Preadv
// allocates one per call (~6 MB per 110k-span read-back).
func (cr *cutReader) preadv(f *headFile, iovs [][]byte, off int64) (int, error) {
	vec := cr.iovecs[:0]
	for _, b := range iovs {
		v := unix.Iovec{Base: &b[0]}
		v.SetLen(len(b))
		vec = append(vec, v)
	}
	cr.iovecs = vec
	rc, err := f.f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n uintptr
	var errno syscall.Errno
	lo, hi := uintptr(off), uintptr(uint64(off)>>(unsafe.Sizeof(uintptr(0))*8-1)>>1)
	if err := rc.Control(func(fd uintptr) {
		for {
			n, _, errno = unix.Syscall6(unix.SYS_PREADV, fd, uintptr(unsafe.Pointer(&vec[0])), uintptr(len(vec)), lo, hi, 0)
			if errno != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return 0, err
	}
	runtime.KeepAlive(iovs)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// allocBatch maps n bytes of anonymous memory for a cut's batch buffer.
// A 16 MiB buffer from the Go heap grew the heap once per cut and made the
// runtime return as much to the OS on the spot (madvise under
// mallocgcLarge, bench/README.md
// ## traces); a mapping is faulted in as it fills and gone at freeBatch, so
// an idle store keeps none of it. Falls back to the heap if mmap fails.
func allocBatch(n int) []byte {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return make([]byte, 0, n)
	}
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
	return b[:0]
}

// freeBatch unmaps what allocBatch mapped (a heap fallback is left to the GC).
func freeBatch(b []byte) {
	_ = unix.Munmap(b[:cap(b)])
}

// iovecTable is readDirect's preadv vectors, kept for the cut.
type iovecTable []unix.Iovec
