package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/nx-watcher/nxwatcher/bench/internal/benchproc"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore"
)

// openStore opens a trace store directory as serve would (default
// options), and reports the open time and the live Go heap it added, for
// extrapolating store memory to more spans. The directory is only read
// (and its WAL replayed; a tracebench directory has an empty one).
func openStore(ctx context.Context, dir string) error {
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
	_ = ctx
	return db.Close()
}
