package logstore

import (
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// Tiered compaction (ADR 0095): blocks merge only with blocks of their own
// level, CompactionFanout at a time, so a day of small flushes is written
// once per level instead of once per merge into one growing block.
func TestTieredCompaction(t *testing.T) {
	db := openTest(t, t.TempDir(), func(o *Options) { o.CompactionFanout = DefaultOptions().CompactionFanout })
	defer db.Close()
	if db.opts.CompactionFanout != 8 {
		t.Fatalf("default fanout %d", db.opts.CompactionFanout)
	}
	ls := labels.FromStrings("app", "tiers")
	k := 0
	var want []Entry
	flush := func() {
		t.Helper()
		app := db.Appender()
		for range 50 {
			e := Entry{Timestamp: base + int64(k), Line: fmt.Sprintf("level=info msg=%q n=%d", "served request", k)}
			app.Append(ls, e)
			want = append(want, e)
			k++
		}
		if _, err := app.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := db.FlushHead(); err != nil {
			t.Fatal(err)
		}
		for { // what Run would do over several rounds
			n := len(db.Blocks())
			if err := db.Compact(); err != nil {
				t.Fatal(err)
			}
			if len(db.Blocks()) == n {
				break
			}
		}
	}
	levels := func() []int {
		var ls []int
		for _, b := range db.Blocks() {
			ls = append(ls, b.Compaction.Level)
		}
		return ls
	}
	for range 7 {
		flush()
	}
	if got := levels(); fmt.Sprint(got) != "[1 1 1 1 1 1 1]" {
		t.Fatalf("7 flushes: levels %v, want seven level-1 blocks", got)
	}
	flush()
	if got := levels(); fmt.Sprint(got) != "[2]" {
		t.Fatalf("8 flushes: levels %v, want one level-2 block", got)
	}
	flush() // the new block is not merged into the bigger one
	if got := levels(); fmt.Sprint(got) != "[2 1]" {
		t.Fatalf("9 flushes: levels %v", got)
	}
	for range 64 - 9 {
		flush()
	}
	if got := levels(); fmt.Sprint(got) != "[3]" {
		t.Fatalf("64 flushes: levels %v, want one level-3 block", got)
	}
	got := readAll(t, db, SelectHints{}, labels.MustNewMatcher(labels.MatchEqual, "app", "tiers"))[ls.String()]
	if !sameEntries(got, want) {
		t.Fatalf("read %d entries, want %d", len(got), len(want))
	}
	// Each flushed byte was written by the flush and by two merges.
	flushed, compacted := testCounter(db.m.blockBytesFlush), testCounter(db.m.blockBytesCompaction)
	if wa := (flushed + compacted) / flushed; wa > 3.2 || wa < 2 {
		t.Fatalf("write amplification %.2f (flushed %v, compacted %v), want about 3", wa, flushed, compacted)
	}
}
