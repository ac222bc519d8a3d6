package logstore

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
)

func commitEntries(t *testing.T, db *DB, ls labels.Labels, es []Entry) {
	t.Helper()
	app := db.Appender()
	for _, e := range es {
		app.Append(ls, e)
	}
	rej, err := app.Commit()
	if err != nil || len(rej) > 0 {
		t.Fatalf("commit: %v %v", rej, err)
	}
}

func dupCount(t *testing.T, reg *prometheus.Registry, stage string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "nxwatcher_logstore_duplicate_entries_dropped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "stage" && l.GetValue() == stage {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func openReg(t *testing.T, dir string) (*DB, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts := DefaultOptions()
	opts.ChunkTargetSize = 4 << 10
	db, err := Open(dir, opts, Deps{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return db, reg
}

// batch is n entries one millisecond apart from base, plus an entry that
// shares the first one's timestamp with another line (not a duplicate).
func dedupBatch(n int) []Entry {
	es := make([]Entry, 0, n+1)
	for i := range n {
		es = append(es, Entry{Timestamp: base + int64(i)*int64(time.Millisecond), Line: fmt.Sprintf("line %d", i)})
	}
	return append(es, Entry{Timestamp: base, Line: "same time, other line"})
}

func wantOnce(t *testing.T, db *DB, ls labels.Labels, es []Entry) {
	t.Helper()
	got := readAll(t, db, SelectHints{}, labels.MustNewMatcher(labels.MatchEqual, "app", ls.Get("app")))[ls.String()]
	seen := map[string]int{}
	for _, e := range got {
		seen[fmt.Sprint(e.Timestamp, e.Line)]++
	}
	for _, e := range es {
		if c := seen[fmt.Sprint(e.Timestamp, e.Line)]; c != 1 {
			t.Fatalf("entry %d %q stored %d times", e.Timestamp, e.Line, c)
		}
	}
	if len(got) != len(es) {
		t.Fatalf("got %d entries, want %d", len(got), len(es))
	}
}

// A retried batch, a batch holding its own duplicates and an out-of-order
// retry are stored once; the same timestamp with another line is kept.
func TestDedupAtIngest(t *testing.T) {
	db, reg := openReg(t, t.TempDir())
	defer db.Close()
	ls := labels.FromStrings("app", "dedup")
	es := dedupBatch(500)
	commitEntries(t, db, ls, es)
	commitEntries(t, db, ls, es)                               // the sender's retry
	commitEntries(t, db, ls, append(es[10:20:20], es[5:8]...)) // part of it, out of order
	inBatch := []Entry{{Timestamp: base + int64(time.Hour), Line: "twice in one push"}, {Timestamp: base + int64(time.Hour), Line: "twice in one push"}}
	commitEntries(t, db, ls, inBatch)
	wantOnce(t, db, ls, append(es, inBatch[0]))
	if n := dupCount(t, reg, "ingest"); n != float64(len(es)+13+1) {
		t.Fatalf("ingest duplicates counted %v, want %d", n, len(es)+13+1)
	}
	if _, entries, _ := db.HeadStats(); entries != int64(len(es)+1) {
		t.Fatalf("head holds %d entries, want %d", entries, len(es)+1)
	}
}

// After a crash (the WAL is replayed) or a clean reopen, a retry of what was
// acknowledged before is not stored again.
func TestDedupAfterWALReplay(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(fmt.Sprintf("crash=%v", crash), func(t *testing.T) {
			dir := t.TempDir()
			db, _ := openReg(t, dir)
			ls := labels.FromStrings("app", "replay")
			es := dedupBatch(300)
			commitEntries(t, db, ls, es)
			if crash {
				// A copy of the files as they are with the store still
				// open is what kill -9 leaves (the WAL, no clean close).
				crashed := t.TempDir()
				if err := os.CopyFS(crashed, os.DirFS(dir)); err != nil {
					t.Fatal(err)
				}
				db.Close()
				dir = crashed
			} else if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db, reg := openReg(t, dir)
			defer db.Close()
			commitEntries(t, db, ls, es)
			wantOnce(t, db, ls, es)
			if n := dupCount(t, reg, "ingest"); n != float64(len(es)) {
				t.Fatalf("duplicates counted %v, want %d", n, len(es))
			}
		})
	}
}

// A retry that reaches the store after the original was flushed to a block
// lands in the new head; queries merging head and block yield it once, and
// compaction keeps one copy.
func TestDedupAtQueryAcrossHeadAndBlocks(t *testing.T) {
	db, reg := openReg(t, t.TempDir())
	defer db.Close()
	ls := labels.FromStrings("app", "flushed")
	es := dedupBatch(400)
	commitEntries(t, db, ls, es)
	if err := db.FlushHead(); err != nil {
		t.Fatal(err)
	}
	commitEntries(t, db, ls, es)
	wantOnce(t, db, ls, es)
	if n := dupCount(t, reg, "query"); n != float64(len(es)) {
		t.Fatalf("query duplicates counted %v, want %d", n, len(es))
	}
	// Backward too.
	got := readAll(t, db, SelectHints{Backward: true}, labels.MustNewMatcher(labels.MatchEqual, "app", "flushed"))[ls.String()]
	if len(got) != len(es) {
		t.Fatalf("backward: %d entries, want %d", len(got), len(es))
	}
	if err := db.FlushHead(); err != nil {
		t.Fatal(err)
	}
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	wantOnce(t, db, ls, es)
	if bs := db.Blocks(); len(bs) == 1 && bs[0].Stats.Entries != int64(len(es)) {
		t.Fatalf("compacted block holds %d entries, want %d", bs[0].Stats.Entries, len(es))
	}
}

// The index finds every key it holds, in order or not, across page
// boundaries and runs of equal timestamps, and nothing else.
func TestDedupIndex(t *testing.T) {
	var d dedupIndex
	var keys []dedupKey
	for i := range 3 * dedupPage {
		ts := int64(i / 3) // runs of three equal timestamps spanning pages
		keys = append(keys, dedupKey{ts, uint64(i)})
	}
	for i := range 50 {
		keys = append(keys, dedupKey{int64(i * 5), uint64(1e6 + i)}) // out of order
	}
	for _, k := range keys {
		if d.has(k) {
			t.Fatalf("%v found before it was added", k)
		}
		d.add(k)
		if !d.has(k) {
			t.Fatalf("%v not found after it was added", k)
		}
	}
	for _, k := range keys {
		if !d.has(k) {
			t.Fatalf("%v lost", k)
		}
		if d.has(dedupKey{k.ts, k.line + 5e6}) || d.has(dedupKey{k.ts + 1e9, k.line}) {
			t.Fatalf("phantom near %v", k)
		}
	}
	if len(d.ooo) != 50 {
		t.Fatalf("%d keys out of order, want 50", len(d.ooo))
	}
}

// BenchmarkDedupPerLine is what ingest dedup adds per line of an in-order
// push against a head stream already holding 100k entries: hashing the
// line, the (skipped) duplicate check and the key insertion. Compare with
// BenchmarkPush's cpu-ns/line in bench/logs.
func BenchmarkDedupPerLine(b *testing.B) {
	s := &memStream{maxT: minTime}
	line := "level=info caller=handler.go:123 method=GET path=/api/v1/users/4242 status=200 duration=12.3ms trace_id=0123456789abcdef0123456789abcdef msg=\"request served\""
	ts := base
	for range 100_000 {
		ts++
		e := Entry{Timestamp: ts, Line: line}
		s.seen.add(keyOf(&e))
		s.maxT = ts
	}
	batch := make([]Entry, 1000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range batch {
			ts++
			batch[j] = Entry{Timestamp: ts, Line: line}
		}
		es, _ := s.dedup(batch)
		for k := range es {
			s.seen.add(keyOf(&es[k]))
		}
		s.maxT = ts
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/line")
}
