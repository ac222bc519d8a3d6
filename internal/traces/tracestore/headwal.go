package tracestore

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"sync"
	"weak"

	"github.com/prometheus/prometheus/tsdb/wlog"
)

// The head keeps its pieces where the WAL (or the last checkpoint) already
// holds them, not on the Go heap (ADR 0111): a pieceRef says which file and
// where. The WAL is written uncompressed, so a piece's bytes lie in the
// segment as they were logged, cut only by the 32 KiB pages of Prometheus's
// WAL format (tsdb/wlog, docs/format/wal.md in Prometheus): a record is
// split into fragments, each with a 7-byte header, and a fragment that is
// not the record's last runs to the end of its page. walPos mirrors that
// placement; every position is checked against the file's size after the
// write, and a record whose position does not check out stays in memory.

const (
	walPageSize     = 32 << 10 // tsdb/wlog pageSize
	walRecordHeader = 7        // tsdb/wlog recordHeaderSize
)

// headFile is a file that head pieces point into: a WAL segment or a
// checkpoint segment, open read-only; or bytes in memory (pieces replayed
// before Open's checkpoint, or a record whose position did not check out).
// The file stays open while anything points into it, even once the WAL has
// deleted it: a query holding a head snapshot across a cut still reads it.
// Unreachable files are closed by os.File's own cleanup; Close closes the
// rest.
type headFile struct {
	f   *os.File
	mem []byte
}

// pieceRef locates a piece's n bytes. For a file, off is where the first
// byte lies; the bytes run to the end of that page and go on after the next
// page's fragment header. For memory, off indexes mem.
type pieceRef struct {
	file *headFile
	off  int64
	n    uint32
}

// appendTo appends the piece's bytes to dst.
func (r pieceRef) appendTo(dst []byte) ([]byte, error) { return r.appendVia(dst, nil) }

// appendVia is appendTo reading through w (nil: one pread per page run).
func (r pieceRef) appendVia(dst []byte, w *pieceWindow) ([]byte, error) {
	if r.file.f == nil {
		return append(dst, r.file.mem[r.off:r.off+int64(r.n)]...), nil
	}
	start := len(dst)
	dst = slices.Grow(dst, int(r.n))[:start+int(r.n)]
	buf, off := dst[start:], r.off
	for len(buf) > 0 {
		k := min(int64(len(buf)), walPageSize-off%walPageSize)
		var err error
		if w != nil {
			err = w.readAt(r.file, buf[:k], off)
		} else {
			_, err = r.file.f.ReadAt(buf[:k], off)
		}
		if err != nil {
			return dst[:start], fmt.Errorf("read head piece from %s at %d: %w", r.file.f.Name(), off, err)
		}
		buf = buf[k:]
		off += k + walRecordHeader // only used when more follows: off+k is then a page start
	}
	return dst, nil
}

// pieceWindow reads pieces through one window of a file: pieces read in
// file order cost one pread per window instead of one each (writeCheckpoint
// reads the traces that stay in the head that way). WAL and checkpoint
// files are only ever appended to, so bytes once read stay true.
type pieceWindow struct {
	file *headFile
	off  int64
	buf  []byte
}

const pieceWindowSize = 1 << 20

func (w *pieceWindow) readAt(hf *headFile, dst []byte, off int64) error {
	end := off + int64(len(dst))
	if hf != w.file || off < w.off || end > w.off+int64(len(w.buf)) {
		if len(dst) > pieceWindowSize/2 {
			_, err := hf.f.ReadAt(dst, off)
			return err
		}
		if w.buf == nil {
			w.buf = make([]byte, pieceWindowSize)
		}
		n, err := hf.f.ReadAt(w.buf[:cap(w.buf)], off)
		if n < len(dst) {
			w.file = nil
			return err
		}
		w.file, w.off, w.buf = hf, off, w.buf[:n]
	}
	copy(dst, w.buf[off-w.off:end-w.off])
	return nil
}

// walPos mirrors where tsdb/wlog puts records logged one per Log call.
type walPos struct {
	seg         int
	done        int // pages completed in seg
	alloc       int // bytes used in the current page
	pagesPerSeg int
}

func newWALPos(seg int, offset int64, segmentSize int) walPos {
	return walPos{seg: seg, done: int(offset / walPageSize), alloc: int(offset % walPageSize), pagesPerSeg: segmentSize / walPageSize}
}

// offset is the segment's size once the record before has been flushed.
func (p *walPos) offset() int64 { return int64(p.done)*walPageSize + int64(p.alloc) }

// place advances p over a record of n bytes and returns the segment and
// offset of its first fragment header (wlog.(*WL).log).
func (p *walPos) place(n int) (seg int, start int64) {
	if walPageSize-p.alloc < walRecordHeader {
		p.done, p.alloc = p.done+1, 0
	}
	left := walPageSize - p.alloc - walRecordHeader + (walPageSize-walRecordHeader)*(p.pagesPerSeg-p.done-1)
	if n > left {
		p.seg, p.done, p.alloc = p.seg+1, 0, 0
	}
	seg, start = p.seg, p.offset()
	for i := 0; i == 0 || n > 0; i++ {
		l := min(n, walPageSize-p.alloc-walRecordHeader)
		p.alloc += l + walRecordHeader
		if walPageSize-p.alloc < walRecordHeader {
			p.done, p.alloc = p.done+1, 0
		}
		n -= l
	}
	return seg, start
}

// walDataOffset is the file offset of byte l of a record whose first
// fragment header is at start.
func walDataOffset(start int64, l int) int64 {
	inPage := start % walPageSize
	first := walPageSize - inPage - walRecordHeader
	if int64(l) < first {
		return start + walRecordHeader + int64(l)
	}
	rest := int64(l) - first
	const payload = walPageSize - walRecordHeader
	return start - inPage + walPageSize + rest/payload*walPageSize + walRecordHeader + rest%payload
}

// headWAL follows the live WAL's write position and keeps its segments open
// for reading. Guarded by DB.appendMu.
type headWAL struct {
	dir     string
	segSize int
	pos     walPos
	files   map[int]*headFile
	// mismatches counts records whose position did not check out.
	mismatches int

	openMu sync.Mutex // guards opened; checkpoints open files outside appendMu
	opened []weak.Pointer[headFile]
}

func newHeadWAL(dir string, segSize int, w *wlog.WL) (*headWAL, error) {
	hw := &headWAL{dir: dir, segSize: segSize, files: map[int]*headFile{}}
	if err := hw.resync(w); err != nil {
		return nil, err
	}
	return hw, nil
}

// resync reads the WAL's write position from wlog itself.
func (hw *headWAL) resync(w *wlog.WL) error {
	seg, off, err := w.LastSegmentAndOffset()
	if err != nil {
		return fmt.Errorf("wal position: %w", err)
	}
	hw.pos = newWALPos(seg, int64(off), hw.segSize)
	return nil
}

// newSegment follows WL.NextSegment, which returned next.
func (hw *headWAL) newSegment(next int) { hw.pos = newWALPos(next, 0, hw.segSize) }

func (hw *headWAL) file(seg int) (*headFile, error) {
	if f := hw.files[seg]; f != nil {
		return f, nil
	}
	f, err := os.Open(wlog.SegmentName(hw.dir, seg))
	if err != nil {
		return nil, err
	}
	hf := &headFile{f: f}
	hw.files[seg] = hf
	hw.track(hf)
	return hf, nil
}

// locate sets the refs of pieces, just logged as rec (encodeRecord set
// their offs). A record whose position does not check out is kept in
// memory and the position is read again from wlog.
func (hw *headWAL) locate(w *wlog.WL, rec []byte, pieces []tracePiece) {
	seg, start := hw.pos.place(len(rec))
	if hf, err := hw.file(seg); err == nil {
		if fi, err := hf.f.Stat(); err == nil && fi.Size() == hw.pos.offset() {
			for i := range pieces {
				pieces[i].ref = pieceRef{file: hf, off: walDataOffset(start, pieces[i].off), n: uint32(len(pieces[i].data))}
			}
			return
		}
	}
	hw.mismatches++
	mem := &headFile{mem: bytes.Clone(rec)}
	for i := range pieces {
		pieces[i].ref = pieceRef{file: mem, off: int64(pieces[i].off), n: uint32(len(pieces[i].data))}
	}
	_ = hw.resync(w) // on error the next record checks out or stays in memory too
}

// truncated forgets segments before first (the WAL has deleted them).
func (hw *headWAL) truncated(first int) {
	for seg := range hw.files {
		if seg < first {
			delete(hw.files, seg)
		}
	}
}

// track lists a file opened for the head, weakly: a file nothing points
// into any more is closed by the os package's cleanup, and closeAll closes
// the rest when the store closes.
func (hw *headWAL) track(hf *headFile) {
	hw.openMu.Lock()
	defer hw.openMu.Unlock()
	hw.opened = slices.DeleteFunc(hw.opened, func(p weak.Pointer[headFile]) bool { return p.Value() == nil })
	hw.opened = append(hw.opened, weak.Make(hf))
}

// closeAll closes every file opened for the head.
func (hw *headWAL) closeAll() {
	hw.openMu.Lock()
	defer hw.openMu.Unlock()
	for _, p := range hw.opened {
		if hf := p.Value(); hf != nil {
			_ = hf.f.Close()
		}
	}
	hw.opened = nil
}
