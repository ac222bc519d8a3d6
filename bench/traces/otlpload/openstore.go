package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/bench/internal/benchproc"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore"
)

// openStore opens a trace store directory as serve would (default
// options), and reports the open time and the live Go heap it added, for
// extrapolating store memory to more spans. The directory is only read
// (and its WAL replayed). With compact, it then compacts every window as
// Run would once closed (tracebench does the same), reports that, and opens
// the compacted store again.
func openStore(ctx context.Context, dir string, compact bool) error {
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	cpu0 := selfCPU()
	start := time.Now()
	db, err := tracestore.Open(dir, tracestore.DefaultOptions(), tracestore.Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	wall, cpu := time.Since(start), selfCPU()-cpu0
	after := heap()
	st := db.Stats()
	rss, hwm, _ := benchproc.ProcMem(os.Getpid())
	fmt.Printf("open %s: %d blocks, %.1f GiB of blocks, head %d spans; %s wall, %.2f CPU-s; live heap after GC %.1f MiB (+%.1f MiB over the empty process); process RSS %.1f MiB, peak %.1f MiB; load %s\n",
		dir, st.Blocks, float64(st.BlockBytes)/(1<<30), st.HeadSpans, wall.Round(time.Millisecond), cpu,
		float64(after)/(1<<20), (float64(after)-float64(before))/(1<<20), benchproc.MiB(rss), benchproc.MiB(hwm), benchproc.LoadAvg())
	if err := lookups(ctx, db, heap); err != nil {
		_ = db.Close()
		return err
	}
	if !compact {
		return db.Close()
	}
	// The head replayed from the WAL is cut first, so the compacted store
	// opens with an empty head and its heap is the blocks' alone.
	cpu0, start = selfCPU(), time.Now()
	if err := db.Flush(); err != nil {
		_ = db.Close()
		return fmt.Errorf("flush: %w", err)
	}
	if err := db.Compact(ctx); err != nil {
		_ = db.Close()
		return fmt.Errorf("compact: %w", err)
	}
	wall, cpu = time.Since(start), selfCPU()-cpu0
	st = db.Stats()
	fmt.Printf("head cut and compacted: %d blocks, %.1f GiB; %s wall, %.1f CPU-s; live heap after GC %.1f MiB; load %s\n",
		st.Blocks, float64(st.BlockBytes)/(1<<30), wall.Round(time.Second), cpu, float64(heap())/(1<<20), benchproc.LoadAvg())
	if err := db.Close(); err != nil {
		return err
	}
	return openStore(ctx, dir, false)
}

// lookups takes up to 1,000 trace IDs from a search (newest data first),
// looks each up by ID and reports the latencies and the live heap after,
// so the figure includes what queries load (postings, caches).
func lookups(ctx context.Context, db *tracestore.DB, heap func() uint64) error {
	var ids []tracestore.TraceID
	start := time.Now()
	if _, err := db.Search(ctx, tracestore.SearchRequest{}, func(id tracestore.TraceID, _ ptrace.Traces) (bool, error) {
		ids = append(ids, id)
		return len(ids) < 1000, nil
	}); err != nil {
		return fmt.Errorf("search: %w", err)
	}
	searched := time.Since(start)
	lat := make([]time.Duration, 0, len(ids))
	for _, id := range ids {
		t0 := time.Now()
		_, found, err := db.TraceByID(ctx, id)
		lat = append(lat, time.Since(t0))
		if err != nil || !found {
			return fmt.Errorf("lookup %x: found=%v err=%v", id[:], found, err)
		}
	}
	if len(lat) == 0 {
		return fmt.Errorf("search found no traces")
	}
	slices.Sort(lat)
	fmt.Printf("  search for 1,000 IDs %s; %d lookups by ID: p50 %s p99 %s max %s; live heap after GC %.1f MiB\n",
		searched.Round(time.Millisecond), len(lat), lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1], float64(heap())/(1<<20))
	return nil
}
