package logstore

import (
	"fmt"
	"testing"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
)

// After a stream fills a chunk, its next open chunk has room for a chunk of
// the same shape: filling it never moves (regrows) a column.
func TestFilledStreamNextChunkPresized(t *testing.T) {
	const target = 4 << 10
	h := newHead(0)
	s := h.create(1, labels.FromStrings("app", "a"))
	md := labels.FromStrings("detected_level", "info")
	i := 0
	add := func() {
		h.appendEntries(s, []Entry{{Timestamp: int64(i), Line: fmt.Sprintf("level=info i=%d msg=\"request served\"", i), Metadata: md}}, target)
		i++
	}
	for len(s.chunks) == 0 {
		add()
	}
	add() // the first entry of the successor
	cols := func() [4]*byte {
		o := &s.open
		return [4]*byte{unsafe.SliceData(o.ts), unsafe.SliceData(o.lens), unsafe.SliceData(o.md), unsafe.SliceData(o.lines)}
	}
	first := cols()
	for len(s.chunks) == 1 {
		if cols() != first {
			t.Fatalf("entry %d: a column of the successor chunk was regrown (size %d of %d)", i, s.open.size(), target)
		}
		add()
	}
	if s.chunks[0].meta.Entries+s.chunks[1].meta.Entries+s.open.entries != i {
		t.Fatalf("entries: %d + %d + %d, want %d", s.chunks[0].meta.Entries, s.chunks[1].meta.Entries, s.open.entries, i)
	}
}
