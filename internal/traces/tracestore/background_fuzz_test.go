package tracestore

import (
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// FuzzCompactFromColumns feeds corrupt columns files to what compaction
// reads of a source's columns (colSource: seek, fill, then the column
// writer's addWalked with codes translated by putAttrs): errors, never a
// panic.
func FuzzCompactFromColumns(f *testing.F) {
	src := seedColumnsFile(f, 3)
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = enc.Close() })
	name := filepath.Join(f.TempDir(), columnsFile)
	out := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		b := withColumnsFile(t, src, name, data)
		cs := newColSource(b)
		if cs == nil {
			return
		}
		cw, err := newColWriter(out, enc)
		if err != nil {
			t.Fatal(err)
		}
		defer cw.abort()
		for ord := 0; ord < b.n; ord++ {
			ok, err := cs.seek(ord)
			if err != nil {
				return
			}
			if ok {
				cs.fill(&cw.walk)
				if cs.translate { // as blockWriter.add: codes translated (putAttrs)
					cw.src = cs
				}
				cw.addWalked(0, 0)
				cw.src = nil
				cs.markDead(cw)
			}
			if ord%5 == 4 { // a new merged group: translations start over
				if err := cw.flushGroup(); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}

// FuzzS2Page feeds arbitrary frames and lengths to decodeS2Page (a
// level-0 data page, format 11): an error or the bytes that were encoded,
// never a panic or an allocation past the page table's length.
func FuzzS2Page(f *testing.F) {
	f.Add(appendS2Page(nil, []byte("hello hello hello hello")), 23)
	f.Add(appendS2Page(nil, nil), 0)
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0}, 1<<20)
	f.Fuzz(func(t *testing.T, frame []byte, ulen int) {
		if ulen < 0 || ulen > 4<<20 {
			return
		}
		out, err := decodeS2Page(frame, nil, ulen)
		if err != nil {
			return
		}
		if len(out) != ulen {
			t.Fatalf("%d bytes, want %d", len(out), ulen)
		}
		if again := appendS2Page(nil, out); len(again) == 0 {
			t.Fatal("empty frame")
		}
	})
}

// FuzzStrippedRecord feeds arbitrary bytes to the format 12 record codec
// (ADR 0123): a trace the stripper takes restores to the same bytes, and
// restoring any bytes as a stripped record gives an error or a trace,
// never a panic.
func FuzzStrippedRecord(f *testing.F) {
	g := storetest.NewGen(79, testBase.UnixNano())
	for _, n := range []int{1, 3, 7} {
		id, traces := g.Trace(n)
		td, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(traces)
		if err != nil {
			f.Fatal(err)
		}
		var w colWalker
		if err := w.walk(td); err != nil {
			f.Fatal(err)
		}
		var st spanStripper
		rec, ok := appendStripped(nil, td, TraceID(id), &w, &st)
		if !ok {
			f.Fatal("seed not stripped")
		}
		f.Add(td, id[:])
		f.Add(ascendingSpans(f, td), id[:])
		f.Add(rec, id[:])
	}
	f.Fuzz(func(t *testing.T, td, idb []byte) {
		var id TraceID
		copy(id[:], idb)
		stripRoundTrip(t, td, id)
		ids := make([]byte, 8*16)
		times := make([]uint64, 2*16)
		for n := 0; n <= 16; n += 4 {
			sr := &spanRestorer{id: id, ids: ids[:8*n], times: times[:2*n]}
			out, _, err := appendRestored(nil, td, sr, nil)
			if err != nil {
				continue
			}
			// lengths are rewritten shortest, so only the span count is certain
			if _, got, ok := spanFieldsOf(out); ok && len(got) != 2*n {
				t.Fatalf("restored %d spans, want %d", len(got)/2, n)
			}
		}
	})
}
