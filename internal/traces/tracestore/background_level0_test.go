package tracestore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// TestLevel0PagesS2: a cut writes format 11 with s2 data pages; the same
// traces read back by ID and search before and after compaction, which
// writes zstd pages; a level-0 block written with zstd pages (format 10's
// way) still reads.
func TestLevel0PagesS2(t *testing.T) {
	for _, s2Pages := range []bool{true, false} {
		t.Run(map[bool]string{true: "s2", false: "zstd"}[s2Pages], func(t *testing.T) {
			defer func(v bool) { level0S2 = v }(level0S2)
			level0S2 = s2Pages
			db, _ := openTest(t, t.TempDir(), nil)
			defer db.Close()
			want := ingestCuts(t, db, genCuts(43, 3, 90))
			wantCodec := map[bool]string{true: pageCodecS2}[s2Pages]
			for _, b := range db.blocks {
				if b.meta.Version != formatVersion || b.meta.Level != 0 || b.meta.PageCodec != wantCodec || len(b.pages) < 2 {
					t.Fatalf("level-0 block: version %d level %d codec %q, %d pages", b.meta.Version, b.meta.Level, b.meta.PageCodec, len(b.pages))
				}
			}
			checkAll(t, db, want)
			if err := db.compact(t.Context()); err != nil {
				t.Fatal(err)
			}
			if len(db.blocks) != 1 || db.blocks[0].meta.PageCodec != "" || db.blocks[0].meta.Level != 1 {
				t.Fatalf("compacted: %d blocks, codec %q", len(db.blocks), db.blocks[0].meta.PageCodec)
			}
			checkAll(t, db, want)
		})
	}
}

// addSent records every trace of td in want.
func addSent(want sent, td ptrace.Traces) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				one := ptrace.NewTraces()
				rs := one.ResourceSpans().AppendEmpty()
				rss.At(i).Resource().CopyTo(rs.Resource())
				ss := rs.ScopeSpans().AppendEmpty()
				sss.At(j).Scope().CopyTo(ss.Scope())
				spans.At(k).CopyTo(ss.Spans().AppendEmpty())
				want.add(spans.At(k).TraceID(), one)
			}
		}
	}
}

// TestLevel0PageCorrupt: a flipped byte in an s2 page, or a page table
// that disagrees with it, is an error on read, not a panic or wrong bytes.
func TestLevel0PageCorrupt(t *testing.T) {
	page := bytes.Repeat([]byte("span name and attributes "), 400)
	frame := appendS2Page([]byte("prefix"), page)[len("prefix"):]
	if got, err := decodeS2Page(frame, nil, len(page)); err != nil || !bytes.Equal(got, page) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := decodeS2Page(frame, nil, len(page)-1); !errors.Is(err, errCorruptPage) {
		t.Fatalf("wrong length: %v", err)
	}
	for i := range frame {
		bad := slices.Clone(frame)
		bad[i] ^= 0x10
		if _, err := decodeS2Page(bad, nil, len(page)); !errors.Is(err, errCorruptPage) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	if _, err := decodeS2Page(frame[:3], nil, len(page)); !errors.Is(err, errCorruptPage) {
		t.Fatalf("short: %v", err)
	}

	// The same through a block: lookups of traces on the damaged page fail.
	dir := t.TempDir()
	db, _ := openTest(t, dir, nil)
	want := sent{}
	for _, td := range genCuts(44, 1, 60)[0] {
		addSent(want, td)
		if err := db.ConsumeTraces(t.Context(), td); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	b := db.blocks[0]
	name := filepath.Join(b.dir, dataFile)
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	p := b.pages[0]
	data[p.off+uint64(p.clen)/2] ^= 0xff
	if err := os.WriteFile(name, data, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, _ = openTest(t, dir, nil)
	defer db.Close()
	failed := 0
	for id := range want {
		if _, _, err := db.TraceByID(t.Context(), id); err != nil {
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no lookup failed on a corrupt page")
	}
}

// TestCutReader: the cut's batched read-back in file order gives each
// trace the bytes one pread per piece gives, in ID order, whatever the
// batch size, gap and read bound (one trace per batch, reads of one
// piece, a trace larger than a batch, reads across WAL pages).
func TestCutReader(t *testing.T) {
	db, _ := openTest(t, t.TempDir(), nil)
	defer db.Close()
	for _, cut := range genCuts(45, 3, 200) {
		for _, td := range cut {
			if err := db.ConsumeTraces(t.Context(), td); err != nil {
				t.Fatal(err)
			}
		}
	}
	sel := db.head.all()
	sortByID(sel)
	multi, crossing := 0, 0
	for _, tr := range sel {
		if len(tr.pieces) > 1 {
			multi++
		}
		for _, p := range tr.pieces {
			if p.file.f != nil && pieceEnd(p)-p.off > int64(p.n) {
				crossing++
			}
		}
	}
	if len(sel) < 500 || multi == 0 || crossing == 0 {
		t.Fatalf("%d traces, %d in several pieces, %d pieces across WAL pages", len(sel), multi, crossing)
	}
	defer func(b int, g, m int64, d bool, v int) {
		cutBatchBytes, cutReadGap, cutReadMax, cutDirect, cutIovMax = b, g, m, d, v
	}(cutBatchBytes, cutReadGap, cutReadMax, cutDirect, cutIovMax)
	for _, c := range []struct {
		batch     int
		gap, most int64
		direct    bool // preadv into the batch (Linux) or through the window
		iovs      int
	}{
		{16 << 20, 16 << 10, 1 << 20, false, 1024}, {1, 16 << 10, 1 << 20, false, 1024}, {4 << 10, 0, 1 << 20, false, 1024},
		{64 << 10, 1 << 30, 40 << 10, false, 1024}, {64 << 10, 1 << 10, 1, false, 1024},
		{16 << 20, 16 << 10, 1 << 20, true, 1024}, {1, 16 << 10, 1 << 20, true, 1024}, {4 << 10, 0, 1 << 20, true, 1024},
		{64 << 10, 1 << 30, 40 << 10, true, 1024}, {64 << 10, 1 << 10, 1, true, 1024},
		// gaps past readDirect's 64 KiB scratch, reads split every 3 vectors
		{16 << 20, 1 << 30, 1 << 30, true, 3}, {16 << 20, 1 << 30, 1 << 30, true, 1024},
	} {
		cutBatchBytes, cutReadGap, cutReadMax, cutDirect, cutIovMax = c.batch, c.gap, c.most, c.direct, c.iovs
		var cr cutReader
		i := 0
		err := cr.each(sel, func(tr *headTrace, data []byte) error {
			if tr != sel[i] {
				t.Fatalf("%+v: trace %d out of order", c, i)
			}
			want, err := tr.data()
			if err != nil {
				return err
			}
			if !bytes.Equal(data, want) {
				t.Fatalf("%+v: trace %x: %d bytes differ from its pieces' %d", c, tr.id, len(data), len(want))
			}
			i++
			return nil
		})
		cr.release()
		if err != nil || i != len(sel) {
			t.Fatalf("%+v: %d of %d traces: %v", c, i, len(sel), err)
		}
	}
}
