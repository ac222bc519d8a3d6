package tracestore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// keepRig is a store whose level-0 blocks were cut from cuts, with what
// compaction should find in them: each block's compressed pages and the
// stored bytes of every piece of a trace in more than one block.
type keepRig struct {
	db     *DB
	dir    string
	want   sent
	pages  [][]byte
	merged int64
}

func newKeepRig(t *testing.T, cuts [][]ptrace.Traces) *keepRig {
	t.Helper()
	r := &keepRig{dir: t.TempDir()}
	r.db, _ = openTest(t, r.dir, nil)
	t.Cleanup(func() { _ = r.db.Close() })
	r.want = ingestCuts(t, r.db, cuts)
	r.inspect(t)
	return r
}

// inspect records the store's pages and merged piece bytes as they are now.
func (r *keepRig) inspect(t *testing.T) {
	t.Helper()
	r.pages, r.merged = nil, 0
	pieces := map[TraceID][]int64{}
	for _, b := range r.db.blocks {
		for _, p := range b.pages {
			buf := make([]byte, p.clen)
			if _, err := b.data.ReadAt(buf, int64(p.off)); err != nil {
				t.Fatal(err)
			}
			r.pages = append(r.pages, buf)
		}
		cu := b.cursor()
		for ord := range b.n {
			id, e, err := cu.at(ord)
			if err != nil {
				t.Fatal(err)
			}
			pieces[id] = append(pieces[id], int64(e.len))
		}
	}
	for _, ls := range pieces {
		for _, l := range ls {
			if len(ls) > 1 {
				r.merged += l
			}
		}
	}
}

// compactOne compacts and returns the one block left.
func (r *keepRig) compactOne(t *testing.T) *block {
	t.Helper()
	if err := r.db.compact(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(r.db.blocks) != 1 {
		t.Fatalf("%d blocks after compaction", len(r.db.blocks))
	}
	return r.db.blocks[0]
}

// keptPages counts the recorded source pages found whole in b's data file.
func (r *keepRig) keptPages(t *testing.T, b *block) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(b.dir, dataFile))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range r.pages {
		if bytes.Contains(data, p) {
			n++
		}
	}
	return n
}

// checkDecodedOnce walks b in ID order, as searches and compaction do, and
// fails if a page was decoded more than once.
func checkDecodedOnce(t *testing.T, b *block) {
	t.Helper()
	var all int64
	for _, p := range b.pages {
		all += int64(p.clen)
	}
	pr, cu := b.newPageReader(), b.cursor()
	for ord := range b.n {
		_, e, err := cu.at(ord)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pr.storedTrace(e); err != nil {
			t.Fatal(err)
		}
	}
	if pr.decoded > all {
		t.Fatalf("a walk in ID order decoded %d bytes of pages, the block has %d (%d runs)", pr.decoded, all, len(b.runStarts()))
	}
}

// TestCompactionKeepsPages: compaction copies its sources' zstd pages as
// they are and writes only the traces it merges from pieces (ADR 0125); the
// block holds the same records and columns as one that rewrote every page,
// answers the same after a restart, and a walk in ID order decodes each of
// its pages once.
func TestCompactionKeepsPages(t *testing.T) {
	defer func(v int) { chunkTraces = v }(chunkTraces)
	chunkTraces = 16
	cuts := genCutsEvery(47, 5, 200, 20)
	kept := newKeepRig(t, cuts)
	if kept.merged == 0 {
		t.Fatal("no trace in pieces: the test data lost its point")
	}
	kb := kept.compactOne(t)
	if len(kb.runStarts()) != 6 || kb.meta.UnreferencedBytes != kept.merged {
		t.Fatalf("%d page runs, %d unreferenced bytes; want 6 (5 kept, 1 written) and %d", len(kb.runStarts()), kb.meta.UnreferencedBytes, kept.merged)
	}
	if g := testutil.ToFloat64(kept.db.m.unreferenced); g != float64(kept.merged) {
		t.Fatalf("nxwatcher_tracestore_unreferenced_bytes %v, want %d", g, kept.merged)
	}
	if n := kept.keptPages(t, kb); n != len(kept.pages) {
		t.Fatalf("%d of %d source pages kept", n, len(kept.pages))
	}
	checkDecodedOnce(t, kb)

	defer func(v bool) { compactKeepPages = v }(compactKeepPages)
	compactKeepPages = false
	rewritten := newKeepRig(t, cuts)
	rb := rewritten.compactOne(t)
	compactKeepPages = true
	if len(rb.runStarts()) != 1 || rb.meta.UnreferencedBytes != 0 || rewritten.keptPages(t, rb) != 0 {
		t.Fatalf("rewritten: %d runs, %d unreferenced bytes", len(rb.runStarts()), rb.meta.UnreferencedBytes)
	}
	checkSameBlocks(t, kb, rb)
	checkAll(t, kept.db, kept.want)

	if err := kept.db.Close(); err != nil {
		t.Fatal(err)
	}
	kept.db, _ = openTest(t, kept.dir, nil)
	checkAll(t, kept.db, kept.want)

	// A second tier: the level-1 block (6 runs) and three cuts more. Runs
	// stay within maxCopiedRuns: one cut is rewritten with the new merges.
	inherited := kb.meta.UnreferencedBytes
	more := genCutsEvery(48, 3, 200, 20)
	for id, td := range ingestCuts(t, kept.db, more) {
		kept.want.add(id, td)
	}
	kb = kept.compactOne(t)
	if len(kb.runStarts()) != maxCopiedRuns+1 || kb.meta.UnreferencedBytes < inherited || kb.meta.Level != 2 {
		t.Fatalf("second tier: level %d, %d runs, %d unreferenced bytes (%d inherited)", kb.meta.Level, len(kb.runStarts()), kb.meta.UnreferencedBytes, inherited)
	}
	checkDecodedOnce(t, kb)
	checkAll(t, kept.db, kept.want)
}

// TestCompactionRewritesPages: sources whose pages compaction cannot keep
// are rewritten: s2 pages (formats 11 and 12), pages mostly of pieces
// merged into new records, and sources past maxCopiedRuns runs.
func TestCompactionRewritesPages(t *testing.T) {
	t.Run("s2", func(t *testing.T) {
		defer func(v bool) { level0S2 = v }(level0S2)
		level0S2 = true
		r := newKeepRig(t, genCutsEvery(49, 3, 120, 20))
		b := r.compactOne(t)
		if len(b.runStarts()) != 1 || r.keptPages(t, b) != 0 {
			t.Fatalf("%d runs, %d pages kept", len(b.runStarts()), r.keptPages(t, b))
		}
		checkAll(t, r.db, r.want)
	})
	t.Run("pieces", func(t *testing.T) {
		r := newKeepRig(t, genCutsEvery(50, 3, 120, 1)) // every trace goes on in the next cut
		b := r.compactOne(t)
		if len(b.runStarts()) != 1 || b.meta.UnreferencedBytes != 0 || r.keptPages(t, b) != 0 {
			t.Fatalf("%d runs, %d unreferenced bytes, %d pages kept", len(b.runStarts()), b.meta.UnreferencedBytes, r.keptPages(t, b))
		}
		checkAll(t, r.db, r.want)
	})
	t.Run("runs", func(t *testing.T) {
		r := newKeepRig(t, genCutsEvery(51, maxCopiedRuns+3, 60, 30))
		b := r.compactOne(t)
		if len(b.runStarts()) != maxCopiedRuns+1 {
			t.Fatalf("%d runs from %d sources, want %d", len(b.runStarts()), maxCopiedRuns+3, maxCopiedRuns+1)
		}
		if n := r.keptPages(t, b); n == 0 || n == len(r.pages) {
			t.Fatalf("%d of %d source pages kept", n, len(r.pages))
		}
		checkDecodedOnce(t, b)
		checkAll(t, r.db, r.want)
	})
}

// TestSearchDecodesEachPageOnce: a search that decodes every trace of a
// block of several page runs, on several workers, decodes each page once
// (pageOwner: with batches going to whichever worker was free, both
// decoded most pages).
func TestSearchDecodesEachPageOnce(t *testing.T) {
	for _, workers := range []int{2, 3} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			r := &keepRig{dir: t.TempDir()}
			r.db, _ = openTest(t, r.dir, func(o *Options) { o.SearchWorkers = workers })
			t.Cleanup(func() { _ = r.db.Close() })
			r.want = ingestCuts(t, r.db, genCutsEvery(52, 5, 300, 20))
			b := r.compactOne(t)
			if len(b.runStarts()) != 6 || len(b.pages) < 30 {
				t.Fatalf("%d runs, %d pages", len(b.runStarts()), len(b.pages))
			}
			before := pagesDecoded.Load()
			n := 0
			if _, err := r.db.Search(t.Context(), SearchRequest{}, func(TraceID, ptrace.Traces) (bool, error) {
				n++
				return true, nil
			}); err != nil {
				t.Fatal(err)
			}
			if decoded := pagesDecoded.Load() - before; n != len(r.want) || decoded > int64(len(b.pages)) {
				t.Fatalf("%d of %d traces found, %d page decodes for %d pages", n, len(r.want), decoded, len(b.pages))
			}
		})
	}
}

// TestPageFrameSizeChecked: a zstd page whose frame claims other than the
// page table's length is refused before it is decoded (DecodeAll would
// allocate the claim first).
func TestPageFrameSizeChecked(t *testing.T) {
	enc := newTestEncoder(t)
	page := bytes.Repeat([]byte("span name and attributes "), 400)
	frame := enc.EncodeAll(page, nil)
	if err := checkFrameSize(frame, len(page)); err != nil {
		t.Fatal(err)
	}
	huge := enc.EncodeAll(make([]byte, 64<<20), nil) // a few KB claiming 64 MiB
	for _, c := range []struct {
		frame []byte
		want  int
	}{{frame, len(page) - 1}, {huge, len(page)}, {frame[:2], len(page)}} {
		if err := checkFrameSize(c.frame, c.want); !errors.Is(err, errCorruptPage) {
			t.Fatalf("a %d-byte frame for a %d-byte page: %v", len(c.frame), c.want, err)
		}
	}
}
