package tracestore

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// A group header whose per-trace span counts add past the int range must
// be refused before the sum wraps negative (it sized a slice with a
// negative length and panicked).
func TestGroupTimesSpanCountOverflow(t *testing.T) {
	var raw []byte
	raw = binary.AppendUvarint(raw, 2)          // traces
	raw = binary.AppendUvarint(raw, 0)          // base
	raw = binary.AppendUvarint(raw, ^uint64(1)) // regular, 2^63-1 spans
	raw = binary.AppendUvarint(raw, 0)
	raw = binary.AppendUvarint(raw, 2) // regular, one more span
	raw = binary.AppendUvarint(raw, 0)
	raw = append(raw, 0, 0)       // no names, no services
	raw = append(raw, 1, 0, 1, 0) // start and duration planes of width 0
	tg := &timeGroup{}
	ok, err := tg.parse(raw, &colGroupRef{traces: 2, spans: math.MaxInt64})
	if ok || err == nil {
		t.Fatalf("parse = %v, %v; want an error", ok, err)
	}
}

// The column table's span count per group is bounded by the block's.
func TestColumnTableSpansBoundedByMeta(t *testing.T) {
	db, err := Open(t.TempDir(), DefaultOptions(), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	g := storetest.NewGen(2, testBase.UnixNano())
	for i := 0; i < 10; i++ {
		_, td := g.Trace(3)
		if err := db.ConsumeTraces(context.Background(), td); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	db.mu.RLock()
	src := db.blocks[0]
	db.mu.RUnlock()
	fh, err := os.Open(filepath.Join(src.dir, columnsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	b := &block{dec: src.dec, cols: fh, n: src.n, meta: src.meta}
	if _, err := b.readColTable(); err != nil {
		t.Fatalf("intact table: %v", err)
	}
	b.meta.Spans = 1 // fewer than any group of 3-span traces holds
	if _, err := b.readColTable(); !errors.Is(err, errCorruptColumns) {
		t.Fatalf("table with more spans per group than the block: err = %v, want errCorruptColumns", err)
	}
}
