package tracestore

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/tsdb/wlog"
	"github.com/prometheus/prometheus/util/compression"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/testclock"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// TestWALPosFollowsWlog logs records of every size class (within a page,
// across pages, larger than a segment's remainder) and checks walPos lands
// where wlog says it wrote, and that walDataOffset finds any byte range.
func TestWALPosFollowsWlog(t *testing.T) {
	for _, segSize := range []int{64 << 10, 1 << 20} {
		t.Run(fmt.Sprint(segSize), func(t *testing.T) {
			dir := t.TempDir()
			w, err := wlog.NewSize(nil, nil, dir, segSize, compression.None)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			seg, off, err := w.LastSegmentAndOffset()
			if err != nil {
				t.Fatal(err)
			}
			pos := newWALPos(seg, int64(off), segSize)
			rng := rand.New(rand.NewPCG(1, 2))
			sizes := []int{0, 1, walPageSize - 2*walRecordHeader, walPageSize - walRecordHeader, walPageSize, 3 * walPageSize, segSize / 2}
			for i := range 400 {
				n := rng.IntN(3 * walPageSize)
				if i < len(sizes) {
					n = sizes[i]
				}
				if i%37 == 0 { // land exactly at a page's end
					n = walPageSize - walRecordHeader - int(pos.alloc)
					if n < 0 {
						n = 0
					}
				}
				rec := make([]byte, n)
				for j := range rec {
					rec[j] = byte(rng.Uint32())
				}
				if err := w.Log(rec); err != nil {
					t.Fatal(err)
				}
				s, start := pos.place(n)
				gotSeg, gotOff, err := w.LastSegmentAndOffset()
				if err != nil {
					t.Fatal(err)
				}
				if gotSeg != pos.seg || int64(gotOff) != pos.offset() {
					t.Fatalf("record %d (%d bytes): wlog at %d/%d, walPos at %d/%d", i, n, gotSeg, gotOff, pos.seg, pos.offset())
				}
				if n == 0 {
					continue
				}
				f, err := os.Open(wlog.SegmentName(dir, s))
				if err != nil {
					t.Fatal(err)
				}
				for range 3 {
					a := rng.IntN(n)
					b := a + 1 + rng.IntN(n-a)
					ref := pieceRef{file: &headFile{f: f}, off: walDataOffset(start, a), n: uint32(b - a)}
					got, err := ref.appendTo([]byte("x"))
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got[1:], rec[a:b]) {
						t.Fatalf("record %d bytes [%d,%d) read back wrong", i, a, b)
					}
				}
				_ = f.Close()
			}
		})
	}
}

// headOnDisk fails unless every head piece points into a file.
func headOnDisk(t *testing.T, db *DB) {
	t.Helper()
	for _, tr := range db.head.all() {
		for _, p := range tr.pieces {
			if p.file.f == nil {
				t.Fatalf("trace %s: a piece is held in memory", tr.id)
			}
		}
	}
	if db.hw.mismatches != 0 {
		t.Fatalf("%d wal records were not where walPos put them", db.hw.mismatches)
	}
}

// TestHeadReadsPiecesFromWAL: the head holds no span bytes, only places in
// the WAL and checkpoint; idle cuts move the traces that stay into the
// checkpoint and delete the segments, late spans still join their trace,
// and a reopen rebuilds the same head (on disk again).
func TestHeadReadsPiecesFromWAL(t *testing.T) {
	dir := t.TempDir()
	var clock atomic.Int64
	clock.Store(testBase.Add(time.Hour).UnixNano())
	mod := func(o *Options) {
		o.Now = func() time.Time { return time.Unix(0, clock.Load()) }
		o.WALSegmentSize = 64 << 10
		o.TraceIdle = 10 * time.Second
		o.MaxBlockDuration = time.Second
	}
	db, _ := openTest(t, dir, mod)
	g := storetest.NewGen(11, testBase.UnixNano())
	want := sent{}
	var ids []pcommon.TraceID
	var roots []pcommon.SpanID
	for round := range 6 {
		for i := range 60 {
			var id pcommon.TraceID
			var td ptrace.Traces
			if i%4 == 3 && len(ids) > 0 { // late spans of an older trace
				k := (i * 7) % len(ids)
				id, td = ids[k], ptrace.NewTraces()
				g.AppendTrace(td, id, 2, roots[k])
			} else {
				id, td = g.Trace(1 + i%6)
				ids = append(ids, id)
				roots = append(roots, td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SpanID())
			}
			if err := db.ConsumeTraces(t.Context(), td); err != nil {
				t.Fatal(err)
			}
			want.add(id, td)
			clock.Add(int64(100 * time.Millisecond))
		}
		headOnDisk(t, db)
		checkAll(t, db, want)
		if err := db.cut(false); err != nil { // the traces idle 10 s go, the rest is checkpointed
			t.Fatal(err)
		}
		headOnDisk(t, db)
		if round == 2 {
			segs, err := filepath.Glob(filepath.Join(dir, "wal", "0*"))
			if err != nil || len(segs) > 2 {
				t.Fatalf("segments after a cut: %v (%v)", segs, err)
			}
		}
		checkAll(t, db, want)
	}
	if db.head.stats().traces == 0 || len(db.blocks) == 0 {
		t.Fatalf("want traces both in the head and in blocks: head %d, blocks %d", db.head.stats().traces, len(db.blocks))
	}
	before := db.head.stats()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, _ = openTest(t, dir, mod)
	defer db.Close()
	if got := db.head.stats(); got != before {
		t.Fatalf("head after reopen %+v, before %+v", got, before)
	}
	headOnDisk(t, db)
	checkAll(t, db, want)
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	checkAll(t, db, want)
}

// TestHeadSnapshotOutlivesTruncation: a query's head snapshot still reads
// its pieces after a cut has deleted the segments they were in.
func TestHeadSnapshotOutlivesTruncation(t *testing.T) {
	dir := t.TempDir()
	db, _ := openTest(t, dir, func(o *Options) { o.WALSegmentSize = 64 << 10 })
	defer db.Close()
	g := storetest.NewGen(12, testBase.UnixNano())
	id, td := g.Trace(5)
	want := storetest.Merge(td)
	if err := db.ConsumeTraces(t.Context(), td); err != nil {
		t.Fatal(err)
	}
	snap := db.head.get(id)
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(snap.pieces[0].file.f.Name()); !os.IsNotExist(err) {
		t.Fatalf("segment %s still there after the cut (%v)", snap.pieces[0].file.f.Name(), err)
	}
	data, err := snap.data()
	if err != nil {
		t.Fatal(err)
	}
	var u ptrace.ProtoUnmarshaler
	got, err := u.UnmarshalTraces(data)
	if err != nil {
		t.Fatal(err)
	}
	if d := storetest.Diff(want, got); d != "" {
		t.Fatal(d)
	}
}

const headCrashChildEnv = "NXWATCHER_TRACESTORE_HEADWAL_CRASH_CHILD"

// TestHeadWALCrashRecovery is TestCrashRecovery with idle cuts: the head
// keeps traces across cuts, so their pieces move to checkpoints while late
// spans keep arriving. Killed at a random point, the reopened store holds
// every acknowledged span exactly once.
func TestHeadWALCrashRecovery(t *testing.T) {
	if dir := os.Getenv(headCrashChildEnv); dir != "" {
		headCrashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	db, acked, stored := killChildAndReopen(t, "^TestHeadWALCrashRecovery$", headCrashChildEnv)
	headOnDisk(t, db)
	t.Logf("%d acknowledged spans, %d stored, head %+v, %d blocks", len(acked), stored, db.head.stats(), len(db.blocks))
}

// headCrashChild ingests until killed, with late spans and idle cuts on a
// clock that moves 50 ms per request.
func headCrashChild(dir string) {
	var clock atomic.Int64
	clock.Store(testclock.Now().UnixNano())
	opts := DefaultOptions()
	opts.PageSize = 8 << 10
	opts.WALSegmentSize = 64 << 10
	opts.TraceIdle = 2 * time.Second
	opts.MaxBlockDuration = time.Second
	opts.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	db, err := Open(filepath.Join(dir, "db"), opts, Deps{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	acks, err := os.OpenFile(filepath.Join(dir, "acks"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o666)
	if err != nil {
		os.Exit(2)
	}
	g := storetest.NewGen(uint64(os.Getpid()), testclock.Now().UnixNano())
	var ids []pcommon.TraceID
	var roots []pcommon.SpanID
	ctx := context.Background()
	for i := 0; ; i++ {
		var id pcommon.TraceID
		var td ptrace.Traces
		if i%3 == 2 && len(ids) > 0 {
			k := len(ids) - 1 - i%min(len(ids), 60) // a recent trace: often still in the head
			id, td = ids[k], ptrace.NewTraces()
			g.AppendTrace(td, id, 2, roots[k])
		} else {
			id, td = g.Trace(1 + i%5)
			ids = append(ids, id)
			roots = append(roots, td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SpanID())
		}
		if err := db.ConsumeTraces(ctx, td); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		var line strings.Builder
		for _, fp := range storetest.Fingerprints(td) {
			line.WriteString(fp + "\n")
		}
		line.WriteString(".\n")
		_, _ = acks.WriteString(line.String())
		clock.Add(int64(50 * time.Millisecond))
		time.Sleep(200 * time.Microsecond)
		if i%30 == 29 {
			_ = db.cut(false)
		}
	}
}

// TestHeadWALPositionMismatchKeepsPieceInMemory: when the size of the
// segment after a write is not where walPos expected the record to end,
// that record's pieces stay in memory, the position is read again from
// wlog, and the next record is located on disk again.
func TestHeadWALPositionMismatchKeepsPieceInMemory(t *testing.T) {
	db, _ := openTest(t, t.TempDir(), nil)
	defer db.Close()
	g := storetest.NewGen(13, testBase.UnixNano())
	want := sent{}
	db.appendMu.Lock()
	db.hw.pos.alloc += 100 // walPos now disagrees with wlog
	db.appendMu.Unlock()
	id1, td1 := g.Trace(3)
	want.add(id1, td1)
	if err := db.ConsumeTraces(t.Context(), td1); err != nil {
		t.Fatal(err)
	}
	id2, td2 := g.Trace(4)
	want.add(id2, td2)
	if err := db.ConsumeTraces(t.Context(), td2); err != nil {
		t.Fatal(err)
	}
	if db.hw.mismatches != 1 {
		t.Fatalf("%d mismatches, want 1", db.hw.mismatches)
	}
	if p := db.head.get(id1).pieces[0]; p.file.f != nil {
		t.Fatal("the mislocated record's piece points into a file")
	}
	if p := db.head.get(id2).pieces[0]; p.file.f == nil {
		t.Fatal("the next record stayed in memory: the position was not read again")
	}
	checkAll(t, db, want)
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	checkAll(t, db, want)
}
