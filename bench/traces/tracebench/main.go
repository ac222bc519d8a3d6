// Command tracebench loads the trace store with generated traces and reports
// ingest rate (durable: each batch acknowledged after its WAL write), bytes
// per span on disk, trace-by-ID latency percentiles and a TraceQL search.
//
//	go run ./bench/traces/tracebench -spans 1000000
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/tempoapi"
	"github.com/nx-watcher/nxwatcher/internal/traces/traceql"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

func main() {
	spans := flag.Int("spans", 1_000_000, "spans to ingest")
	batch := flag.Int("batch", 100, "traces per ConsumeTraces call")
	lookups := flag.Int("lookups", 2000, "random trace-by-ID lookups")
	dir := flag.String("dir", "", "data directory (default: a temporary one, removed after)")
	cutEvery := flag.Int("cut-every", 500_000, "cut the head into a block after this many spans, as Run would (0 = only at the end)")
	page := flag.Int("page", 0, "uncompressed data page size in bytes (0 = store default)")
	flag.Int64Var(&maxCompactionSpans, "max-compaction-spans", 0, "spans one compaction may write (0 = the store default, traces.max_compaction_spans)")
	query := flag.String("q", `{ resource.service.name = "payment" && span.http.status_code = 500 }`, "TraceQL search to time")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.IntVar(&searchWorkers, "search-workers", 0, "goroutines a search decodes on (0 = min(GOMAXPROCS, 8), the default; 1 = the caller's only)")
	flag.BoolVar(&projectFlag, "project", true, "decode only what /api/search decodes of each trace (false: whole traces, as before 2026-11-30 evening)")
	flag.BoolVar(&colFilterFlag, "column-filter", true, "drop candidates whose columns do not match before decoding them, as /api/search does (format 8 blocks)")
	flag.StringVar(&searchPath, "search-path", "columns", "comma-separated, each measured in turn on the same store: columns: /api/search's work (each matching trace's answer built, then dropped), answers from block columns where they can be (ADR 0110); decode: the same with every answered trace decoded; eval: decode and evaluate only, no answers (the measure before 2026-12-01 04:00)")
	flag.IntVar(&searchRounds, "search-rounds", 1, "no-limit searches per -search-path (one limit-20 search each)")
	flag.BoolVar(&encodeFlag, "encode", false, "with -search-path columns or decode: also write each answer as JSON (not kept)")
	flag.BoolVar(&searchOnly, "search-only", false, "skip ingest: open the store an earlier run left in -dir and only search it")
	flag.StringVar(&memprofile, "memprofile", "", "write a heap profile (live objects) after compaction to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "tracebench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "tracebench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*spans, *batch, *lookups, *page, *cutEvery, *dir, *query); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "tracebench:", err)
		os.Exit(1)
	}
}

func run(nSpans, batch, nLookups, page, cutEvery int, dir, query string) error {
	if searchOnly && dir == "" {
		return fmt.Errorf("-search-only needs -dir")
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "tracebench")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	opts := tracestore.DefaultOptions()
	opts.SearchWorkers = searchWorkers
	opts.MaxCompactionSpans = maxCompactionSpans
	if page > 0 {
		opts.PageSize = page
	}
	db, err := tracestore.Open(dir, opts, tracestore.Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer db.Close()
	ctx := context.Background()
	if searchOnly {
		// A store an earlier run left in -dir: only the searches.
		return search(ctx, db, query, 0)
	}
	// Trace times start at a full hour (1 ms apart: ~30 minutes for 10M
	// spans), so they stay in one compaction window whatever the time of
	// the run: data across an hour was compacted per window, different
	// work from run to run (bench/README.md, session 25).
	base := time.Now().Add(-2 * time.Hour).Truncate(time.Hour).UnixNano()
	g := storetest.NewGen(42, base)

	// Requests are generated in chunks outside the timed sections, so that
	// 10M+ spans do not need all their pdata in memory at once.
	type req struct {
		td  ptrace.Traces
		ids []pcommon.TraceID
		n   int
	}
	const chunkSpans = 200_000
	total := 0
	gen := func() []req {
		var reqs []req
		for c := 0; c < chunkSpans && total < nSpans; {
			r := req{td: ptrace.NewTraces()}
			for i := 0; i < batch && total < nSpans; i++ {
				id := g.TraceID()
				n := 3 + i%6 // 3..8 spans, ~5.5 on average
				g.AppendTrace(r.td, id, n, pcommon.SpanID{})
				r.ids = append(r.ids, id)
				r.n += n
				total += n
				c += n
			}
			reqs = append(reqs, r)
		}
		return reqs
	}
	var ids []pcommon.TraceID
	var elapsed, cpu time.Duration
	var cutTime, cutCPU time.Duration
	sinceCut := 0
	for total < nSpans {
		reqs := gen()
		runtime.GC()
		start, cpuStart := time.Now(), cpuTime()
		for _, r := range reqs {
			if err := db.ConsumeTraces(ctx, r.td); err != nil {
				return err
			}
			ids = append(ids, r.ids...)
			if sinceCut += r.n; cutEvery > 0 && sinceCut >= cutEvery {
				t0, c0 := time.Now(), cpuTime()
				if err := db.Flush(); err != nil {
					return err
				}
				cutTime += time.Since(t0)
				cutCPU += cpuTime() - c0
				elapsed -= time.Since(t0)
				cpu -= cpuTime() - c0
				sinceCut = 0
			}
		}
		elapsed += time.Since(start)
		cpu += cpuTime() - cpuStart
	}
	heads := db.HeadStats()
	fmt.Printf("ingest: %d spans in %d traces, %.2fs wall, %.2fs CPU: %.0f spans/s wall, %.0f spans/s per CPU-second\n",
		total, len(ids), elapsed.Seconds(), cpu.Seconds(), float64(total)/elapsed.Seconds(), float64(total)/cpu.Seconds())

	_, walBytes := dirSizes(dir)
	fmt.Printf("head after ingest: %d traces, %.1f MiB protobuf; wal %.1f MiB = %.1f bytes/span\n", heads.Traces, float64(heads.Bytes)/(1<<20),
		float64(walBytes)/(1<<20), float64(walBytes)/float64(total))

	start, cpuStart := time.Now(), cpuTime()
	if err := db.Flush(); err != nil {
		return err
	}
	cutTime += time.Since(start)
	cutCPU += cpuTime() - cpuStart
	fmt.Printf("cutting level-0 blocks: %.2fs wall, %.2fs CPU (%.0f spans/s per CPU-second)\n", cutTime.Seconds(),
		cutCPU.Seconds(), float64(total)/cutCPU.Seconds())
	blockBytes, _ := dirSizes(dir)
	fmt.Printf("disk (level 0): %.1f bytes/span\n", float64(blockBytes)/float64(total))
	// A second, small block in the same window makes compaction rewrite everything.
	extra := ptrace.NewTraces()
	g.AppendTrace(extra, g.TraceID(), 3, pcommon.SpanID{})
	if err := db.ConsumeTraces(ctx, extra); err != nil {
		return err
	}
	if err := db.Flush(); err != nil {
		return err
	}
	if err := lookups(ctx, db, ids, nLookups, "level-0 blocks"); err != nil {
		return err
	}
	heap("before compaction", len(ids))
	start, cpuStart = time.Now(), cpuTime()
	if err := db.Compact(ctx); err != nil { // as Run does once the window has closed
		return err
	}
	fmt.Printf("compaction: %.2fs wall, %.2fs CPU\n", time.Since(start).Seconds(), (cpuTime() - cpuStart).Seconds())
	blockBytes, _ = dirSizes(dir)
	fmt.Printf("disk (compacted): blocks %d bytes = %.1f bytes/span\n", blockBytes, float64(blockBytes)/float64(total))
	fmt.Printf("  by file:")
	for _, kv := range fileSizes(dir) {
		fmt.Printf(" %s %.1f", kv.name, float64(kv.size)/float64(total))
	}
	fmt.Printf(" bytes/span\n")

	if err := lookups(ctx, db, ids, nLookups, "compacted"); err != nil {
		return err
	}
	heap("after compaction", len(ids))
	return search(ctx, db, query, len(ids))
}

// search times -search-path's searches for query on db (nIDs: the trace
// IDs the benchmark holds, for the heap figure).
func search(ctx context.Context, db *tracestore.DB, query string, nIDs int) error {
	q, err := traceql.Parse(query)
	if err != nil {
		return err
	}
	hints := q.Hints()
	var conds []tracestore.Cond
	for _, h := range hints {
		c := tracestore.Cond{Keys: h.Keys}
		for _, v := range h.Values {
			c.Values = append(c.Values, tracestore.EncodeValue(tracestore.TypedValue{Type: v.Type, Value: v.Value}))
		}
		conds = append(conds, c)
	}
	// -project decodes what /api/search decodes (tempoapi.SearchProjection).
	var project *tracestore.Projection
	if projectFlag {
		project = tempoapi.SearchProjection(q)
	}
	type run struct {
		path  string
		limit int
	}
	var runs []run
	for _, path := range strings.Split(searchPath, ",") {
		runs = append(runs, run{path, 20})
		for r := 0; r < max(1, searchRounds); r++ {
			runs = append(runs, run{path, 1 << 30})
		}
	}
	for _, rn := range runs {
		searchPath, limit := rn.path, rn.limit
		runtime.GC()
		start := time.Now()
		cpuStart := cpuTime()
		matched := 0
		req := tracestore.SearchRequest{Conds: conds, Project: project}
		if colFilterFlag {
			tempoapi.ApplyColumnFilter(&req, q) // as /api/search does (ADR 0100)
		}
		var st tracestore.SearchStats
		answer := ""
		if searchPath == "eval" {
			st, err = db.Search(ctx, req, func(_ tracestore.TraceID, td ptrace.Traces) (bool, error) {
				if len(q.Eval(traceql.NewTrace(td))) > 0 {
					matched++
				}
				return matched < limit, nil
			})
		} else {
			// /api/search's whole work: answers built (from the columns
			// where they can be, ADR 0110) and written as JSON.
			var jsonBytes int
			matched, jsonBytes, st, err = tempoapi.BenchSearch(ctx, db, query, limit, searchPath == "columns", encodeFlag)
			answer = ", answers built"
			if encodeFlag {
				answer = fmt.Sprintf(", answers %.1f MB of JSON", float64(jsonBytes)/1e6)
			}
		}
		if err != nil {
			return err
		}
		wall, cpu := time.Since(start), cpuTime()-cpuStart
		fmt.Printf("search (%s) %s limit=%d: %d matched, %d traces inspected, %.1f MB inspected%s, %s wall, %.3f CPU-s (GOMAXPROCS %d, load %s)\n", searchPath, query, min(limit, 1<<20), matched,
			st.InspectedTraces, float64(st.InspectedBytes)/1e6, answer, wall.Round(time.Millisecond), cpu.Seconds(), runtime.GOMAXPROCS(0), loadAvg())
	}
	heap("end", nIDs)
	return nil
}

var (
	searchPath    string
	searchRounds  int
	encodeFlag    bool
	memprofile    string
	colFilterFlag bool
	projectFlag   bool
	searchWorkers int
	// maxCompactionSpans is -max-compaction-spans.
	maxCompactionSpans int64
	searchOnly         bool
)

// loadAvg is the 1-minute load average ("?" where /proc/loadavg is not).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// heap prints the live heap after a GC; the benchmark itself holds the trace
// IDs it looks up (16 bytes each).
func heap(when string, nIDs int) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("go heap %s: %.1f MiB live after GC (of which %.1f MiB are the benchmark's trace IDs)\n", when,
		float64(ms.HeapAlloc)/(1<<20), float64(nIDs*16)/(1<<20))
	if memprofile != "" && when == "after compaction" {
		if f, err := os.Create(memprofile); err == nil {
			_ = pprof.WriteHeapProfile(f)
			_ = f.Close()
		}
	}
}

func lookups(ctx context.Context, db *tracestore.DB, ids []pcommon.TraceID, n int, label string) error {
	rng := rand.New(rand.NewPCG(1, 2))
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		id := ids[rng.IntN(len(ids))]
		t0 := time.Now()
		_, found, err := db.TraceByID(ctx, id)
		lat = append(lat, time.Since(t0))
		if err != nil || !found {
			return fmt.Errorf("lookup %s: found=%v err=%v", id, found, err)
		}
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
	fmt.Printf("trace by ID, %s (%d lookups, decoded): p50 %s p90 %s p99 %s max %s\n", label, n, pct(0.5), pct(0.9), pct(0.99), lat[len(lat)-1])
	return nil
}

type nameSize struct {
	name string
	size int64
}

// fileSizes sums block file sizes by file name (data, index, columns, meta.json).
func fileSizes(dir string) []nameSize {
	m := map[string]int64{}
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		if rel, _ := filepath.Rel(dir, p); !filepath.HasPrefix(rel, "wal") {
			m[filepath.Base(p)] += info.Size()
		}
		return nil
	})
	var out []nameSize
	for k, v := range m {
		out = append(out, nameSize{k, v})
	}
	slices.SortFunc(out, func(a, b nameSize) int { return strings.Compare(a.name, b.name) })
	return out
}

func dirSizes(dir string) (blocks, wal int64) {
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if filepath.HasPrefix(rel, "wal") {
			wal += info.Size()
		} else {
			blocks += info.Size()
		}
		return nil
	})
	return blocks, wal
}
