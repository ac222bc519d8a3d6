package tracestore

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// TestCompactionWaitsForClosedWindow: Run/Maintain leaves a window that can
// still receive cuts alone and merges it once, after it closed.
func TestCompactionWaitsForClosedWindow(t *testing.T) {
	now := testBase.Add(10 * time.Minute)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	db, _ := openTest(t, t.TempDir(), func(o *Options) {
		o.Now = clock
		o.Retention = 1000 * time.Hour
		o.CompactionWindow = time.Hour
	})
	defer db.Close()
	ids := blockPerTrace(t, db, 9, 3)
	db.Maintain(t.Context())
	if n, _ := db.blockStats(); n != 3 {
		t.Fatalf("open window compacted: %d blocks, want 3", n)
	}
	mu.Lock()
	now = testBase.Truncate(time.Hour).Add(time.Hour + 11*time.Minute)
	mu.Unlock()
	db.Maintain(t.Context())
	if n, _ := db.blockStats(); n != 1 {
		t.Fatalf("closed window not compacted: %d blocks, want 1", n)
	}
	for _, id := range ids {
		if _, found, err := db.TraceByID(t.Context(), id); err != nil || !found {
			t.Fatalf("trace %x after compaction: found=%v err=%v", id, found, err)
		}
	}
}

// A compaction writes at most MaxCompactionSpans spans, taking the smallest
// blocks first, and leaves a block of that size alone (ADR 0122): six
// blocks of 4 spans with a bound of 10 become three blocks of 8, which are
// not merged again, and every trace still reads back.
func TestCompactionBoundedBySpans(t *testing.T) {
	db, _ := openTest(t, t.TempDir(), func(o *Options) {
		o.Retention = 1000 * time.Hour
		o.MaxCompactionSpans = 10
	})
	defer db.Close()
	ids := blockPerTrace(t, db, 11, 6)
	if err := db.Compact(t.Context()); err != nil {
		t.Fatal(err)
	}
	db.mu.RLock()
	var spans []int
	for _, b := range db.blocks {
		spans = append(spans, b.meta.Spans)
	}
	db.mu.RUnlock()
	if !slices.Equal(spans, []int{8, 8, 8}) {
		t.Fatalf("blocks after compaction hold %v spans, want [8 8 8]", spans)
	}
	for _, id := range ids {
		if _, found, err := db.TraceByID(t.Context(), id); err != nil || !found {
			t.Fatalf("trace %x after compaction: found=%v err=%v", id, found, err)
		}
	}
}

// blockPerTrace stores n traces of 4 spans (generator seed seed), each
// flushed into its own block, and returns their IDs.
func blockPerTrace(t *testing.T, db *DB, seed uint64, n int) []TraceID {
	t.Helper()
	g := storetest.NewGen(seed, testBase.UnixNano())
	var ids []TraceID
	for range n {
		id, td := g.Trace(4)
		ids = append(ids, id)
		if err := db.ConsumeTraces(t.Context(), td); err != nil {
			t.Fatal(err)
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}
