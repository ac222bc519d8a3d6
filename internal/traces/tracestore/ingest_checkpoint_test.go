package tracestore

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/prometheus/prometheus/tsdb/wlog"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// TestCheckpointManyTracesPerRecord: writeCheckpoint packs traces into
// records of up to checkpointRecordBytes, in WAL order; every returned ref
// reads back exactly the trace's bytes, in rest's order, for traces of one
// piece and of many, small and larger than a record and than a WAL page.
func TestCheckpointManyTracesPerRecord(t *testing.T) {
	db, _ := openRawTestDB(t)
	g := storetest.NewGen(81, testBase.UnixNano())
	var ids []TraceID
	for r := 0; r < 40; r++ {
		td := ptrace.NewTraces()
		for j := 0; j < 50; j++ {
			spans := 2 + j%5
			switch {
			case r == 7 && j == 3:
				spans = 200 // past a 32 KiB page
			case r == 9 && j == 1:
				spans = 1500 // past checkpointRecordBytes
			}
			id := g.TraceID()
			if r > 0 && j < 10 {
				id = ids[(r*13+j)%len(ids)] // more pieces of an earlier trace
			} else {
				ids = append(ids, id)
			}
			g.AppendTrace(td, id, spans, pcommon.SpanID{})
		}
		if err := db.ConsumeTraces(context.Background(), td); err != nil {
			t.Fatal(err)
		}
	}
	rest := db.head.all()
	want := make([][]byte, len(rest))
	multi, big := 0, 0
	for i, tr := range rest {
		b, err := tr.data()
		if err != nil {
			t.Fatal(err)
		}
		want[i] = b
		if len(tr.pieces) > 1 {
			multi++
		}
		if len(b) > checkpointRecordBytes {
			big++
		}
	}
	if multi == 0 || big == 0 {
		t.Fatalf("test data: %d traces of many pieces, %d past a record", multi, big)
	}
	refs, err := db.writeCheckpoint(1000, rest)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != len(rest) {
		t.Fatalf("%d refs for %d traces", len(refs), len(rest))
	}
	for i, ref := range refs {
		got, err := ref.appendTo(nil)
		if err != nil || !bytes.Equal(got, want[i]) {
			t.Fatalf("trace %d (%d bytes): ref reads %d bytes, %v", i, len(want[i]), len(got), err)
		}
	}
	// The checkpoint holds every trace once: replayed, the head is the same.
	recs, err := readCheckpointPieces(t, db, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if recs.pieces != len(rest) || recs.records >= len(rest)/4 {
		t.Fatalf("checkpoint: %d pieces in %d records for %d traces", recs.pieces, recs.records, len(rest))
	}
}

type checkpointCount struct{ records, pieces int }

// readCheckpointPieces counts the records and pieces of checkpoint idx.
func readCheckpointPieces(t *testing.T, db *DB, idx int) (checkpointCount, error) {
	t.Helper()
	var c checkpointCount
	sr, err := wlog.NewSegmentsReader(wlog.CheckpointDir(filepath.Join(db.dir, walDirName), idx))
	if err != nil {
		return c, err
	}
	defer sr.Close()
	r := wlog.NewReader(sr)
	for r.Next() {
		pieces, err := decodeRecord(r.Record())
		if err != nil {
			return c, err
		}
		c.records++
		c.pieces += len(pieces)
	}
	return c, r.Err()
}

// BenchmarkCheckpoint measures writeCheckpoint over a head of 20k traces
// (100k spans, one piece each, as a sustained load leaves them at a cut),
// per span, in process CPU.
func BenchmarkCheckpoint(b *testing.B) {
	db, err := Open(b.TempDir(), DefaultOptions(), Deps{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	g := storetest.NewGen(82, testBase.UnixNano())
	for r := 0; r < 200; r++ {
		td := ptrace.NewTraces()
		for j := 0; j < 100; j++ {
			g.AppendTrace(td, g.TraceID(), 5, pcommon.SpanID{})
		}
		if err := db.ConsumeTraces(context.Background(), td); err != nil {
			b.Fatal(err)
		}
	}
	rest := db.head.all()
	spans := 0
	for _, t := range rest {
		spans += t.spans
	}
	b.ReportAllocs()
	cpu0 := processCPU()
	n := 0
	for i := 0; b.Loop(); i++ {
		if _, err := db.writeCheckpoint(2000+i, rest); err != nil {
			b.Fatal(err)
		}
		n += spans
	}
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(n), "cpu-ns/span")
}
