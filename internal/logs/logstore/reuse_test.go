package logstore

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// With ReuseBuffers the iterator recycles a chunk's buffer once its entries
// were yielded; a caller that copies each line before the next call to Next
// must see exactly what it sees without reuse: overlapping flushed blocks
// (interleaved timestamps), the head's spilled and open chunks, duplicates
// across them (dropped by the merge, which compares lines of chunks whose
// buffers were returned), both directions, with and without a time range.
func TestReuseBuffersSameEntries(t *testing.T) {
	poisonReleased = true
	defer func() { poisonReleased = false }()
	db := openTest(t, t.TempDir(), nil) // 4 KiB chunks: many buffers, reused often
	defer db.Close()
	ls := labels.FromStrings("app", "reuse")
	var dups []Entry // every fifth entry of the blocks, sent again into the head
	for pass := range 3 {
		app := db.Appender()
		if pass == 2 {
			for _, e := range dups {
				app.Append(ls, e)
			}
		}
		for i := pass; pass < 2 && i < 6000; i += 2 { // even, then odd timestamps: overlapping blocks
			e := Entry{Timestamp: base + int64(i/3)*1000, Line: fmt.Sprintf("level=info pass=%d i=%d msg=\"line %06d\"", pass, i, i)}
			if i%5 == 0 {
				dups = append(dups, e)
			}
			app.Append(ls, e)
		}
		if _, err := app.Commit(); err != nil {
			t.Fatal(err)
		}
		if pass < 2 {
			if err := db.FlushHead(); err != nil {
				t.Fatal(err)
			}
		}
	}
	m := labels.MustNewMatcher(labels.MatchEqual, "app", "reuse")
	for _, h := range []SelectHints{{}, {Backward: true}, {Start: base + 200_000, End: base + 1_500_000}} {
		want := readAll(t, db, h, m)
		h.ReuseBuffers = true
		got := readAll(t, db, h, m)
		if len(want[ls.String()]) < 3000 {
			t.Fatalf("fixture: %d entries", len(want[ls.String()]))
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("hints %+v: %d entries with reuse, %d without, or different lines", h, len(got[ls.String()]), len(want[ls.String()]))
		}
	}
}
