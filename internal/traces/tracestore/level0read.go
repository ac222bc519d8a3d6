package tracestore

import (
	"cmp"
	"fmt"
	"slices"
)

// The cut reads the selected traces back from the WAL (ADR 0111) in ID
// order, the order a block holds them. One pread per piece in that order
// was ~0.7 µs/span of a cut (ADR 0120): pieces of consecutive IDs lie
// anywhere in the WAL. cutReader takes the traces a batch at a time
// (consecutive in ID order, up to cutBatchBytes), reads the batch's pieces
// in file order, coalescing pieces up to cutReadGap apart into one read of
// at most cutReadMax, and places each piece where its trace's bytes go in
// the batch buffer. Memory: the batch buffer and one read window.
var (
	cutBatchBytes = 16 << 20
	cutReadGap    = int64(64 << 10)
	cutReadMax    = int64(1 << 20)
)

type cutReader struct {
	buf []byte
	// batch is the memory of buf and win (outside the Go heap on Linux)
	// until release; see allocBatch.
	batch []byte
	ends  []int // end of each batch trace's bytes in buf
	slots []cutSlot
	files map[*headFile]int
	win   pieceWindow
	// readDirect's preadv vectors and the sink for gaps and WAL headers.
	iovs    [][]byte
	iovecs  iovecTable
	scratch []byte
}

// cutDirect reads with readDirect (preadv into the batch) instead of the
// window. Off: it measured no faster (BenchmarkBackgroundCutReadBack 446–678
// against 414–603 read-cpu-ns/span, the cut at 1M 2.34–2.51 against
// 2.12–2.47 CPU-s): the kernel's per-vector work costs what the copy out
// of the window did (ADR 0120 addendum). Kept, tested, for other kernels.
var cutDirect = false

// cutSlot is one piece of a batch: where it lies and where it goes.
type cutSlot struct {
	ref  pieceRef
	file int // order of first sight of ref.file in the batch
	dst  int
}

// pieceEnd is the file offset just past a file piece's last byte: the
// bytes run to the end of their WAL page and go on after the next page's
// fragment header (pieceRef.appendVia).
func pieceEnd(r pieceRef) int64 {
	off, n := r.off, int64(r.n)
	for {
		k := min(n, walPageSize-off%walPageSize)
		if n -= k; n == 0 {
			return off + k
		}
		off += k + walRecordHeader
	}
}

// each calls fn with each trace of sel (ascending IDs) and its bytes, valid
// until fn returns.
func (cr *cutReader) each(sel []*headTrace, fn func(t *headTrace, data []byte) error) error {
	if cr.files == nil {
		cr.files = map[*headFile]int{}
	}
	// One batch buffer for the cut, sized once: growing it batch by batch
	// cost a large allocation (cleared, later returned to the OS) each.
	total := 0
	for _, t := range sel {
		total += t.size
	}
	if n := min(total, cutBatchBytes); cap(cr.buf) < n {
		// The batch buffer and the read window share one allocation.
		cr.release()
		w := int(cutReadMax)
		cr.batch = allocBatch(n + w)
		cr.buf = cr.batch[:0:n]
		cr.win.buf = cr.batch[n : n : n+w]
	}
	for i := 0; i < len(sel); {
		total, j := 0, i
		for j < len(sel) && (j == i || total+sel[j].size <= cutBatchBytes) {
			total += sel[j].size
			j++
		}
		if err := cr.read(sel[i:j]); err != nil {
			return err
		}
		from := 0
		for k, t := range sel[i:j] {
			if err := fn(t, cr.buf[from:cr.ends[k]]); err != nil {
				return err
			}
			from = cr.ends[k]
		}
		i = j
	}
	return nil
}

// release returns the batch buffer's memory. The caller calls it once
// nothing holds bytes that each handed out (after the block is written:
// the block writer copies what it keeps, but may look at the last batch's
// bytes until it finishes).
func (cr *cutReader) release() {
	if cr.batch != nil {
		freeBatch(cr.batch)
	}
	cr.batch, cr.buf, cr.win = nil, nil, pieceWindow{}
}

// read fills buf with the batch's traces back to back.
func (cr *cutReader) read(batch []*headTrace) error {
	clear(cr.files)
	cr.slots, cr.ends = cr.slots[:0], cr.ends[:0]
	pos := 0
	for _, t := range batch {
		for _, p := range t.pieces {
			fi, ok := cr.files[p.file]
			if !ok {
				fi = len(cr.files)
				cr.files[p.file] = fi
			}
			cr.slots = append(cr.slots, cutSlot{ref: p, file: fi, dst: pos})
			pos += int(p.n)
		}
		cr.ends = append(cr.ends, pos)
	}
	if cap(cr.buf) < pos { // a trace larger than a batch
		cr.buf = make([]byte, pos)
	}
	cr.buf = cr.buf[:pos]
	slices.SortFunc(cr.slots, func(a, b cutSlot) int {
		if c := cmp.Compare(a.file, b.file); c != 0 {
			return c
		}
		return cmp.Compare(a.ref.off, b.ref.off)
	})
	for i := 0; i < len(cr.slots); {
		s := cr.slots[i]
		j := i + 1
		if f := s.ref.file; f.f != nil {
			start, end := s.ref.off, pieceEnd(s.ref)
			for j < len(cr.slots) && cr.slots[j].file == s.file {
				e := max(end, pieceEnd(cr.slots[j].ref))
				if cr.slots[j].ref.off-end > cutReadGap || e-start > cutReadMax {
					break
				}
				end = e
				j++
			}
			if cutDirect {
				ok, err := cr.readDirect(f, cr.slots[i:j], start, end)
				if err != nil {
					return err
				}
				if ok {
					i = j
					continue
				}
			}
			if err := cr.fill(f, start, end); err != nil {
				return err
			}
		}
		for _, s := range cr.slots[i:j] {
			// Appends in place: buf[dst:dst] has room for the piece.
			if _, err := s.ref.appendVia(cr.buf[s.dst:s.dst], &cr.win); err != nil {
				return err
			}
		}
		i = j
	}
	return nil
}

// fill reads [start, end) of f into the window (a short read at the end
// of the file is left to appendVia, which reads what it misses itself).
func (cr *cutReader) fill(f *headFile, start, end int64) error {
	w := &cr.win
	if f == w.file && start >= w.off && end <= w.off+int64(len(w.buf)) {
		return nil
	}
	n := int(end - start)
	if cap(w.buf) < n {
		w.buf = make([]byte, max(n, int(cutReadMax)))
	}
	got, err := f.f.ReadAt(w.buf[:n], start)
	if got < n {
		w.file = nil
		if err == nil {
			err = fmt.Errorf("short read")
		}
		return fmt.Errorf("read head pieces from %s at %d: %w", f.f.Name(), start, err)
	}
	w.file, w.off, w.buf = f, start, w.buf[:n]
	return nil
}
