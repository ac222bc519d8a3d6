package tracestore

import (
	"fmt"
	"slices"
	"testing"

	"github.com/klauspost/compress/zstd"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// BenchmarkCutLevel cuts a head of 20k traces (~110k spans) into a level-0
// block at each zstd level and reports the process CPU per span and the
// block's bytes per span (ADR 0112 chose the level from it).
func BenchmarkCutLevel(b *testing.B) {
	reqs := cutBenchRequests()
	defer func(l zstd.EncoderLevel) { cutEncoderLevel = l }(cutEncoderLevel)
	for _, lvl := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault} {
		b.Run(fmt.Sprint(lvl), func(b *testing.B) {
			cutEncoderLevel = lvl
			benchCuts(b, reqs)
		})
	}
}

func TestSortByIDMatchesCompareIDs(t *testing.T) {
	g := storetest.NewGen(32, testBase.UnixNano())
	var ts []*headTrace
	for i := range 500 {
		id := g.TraceID()
		if i%50 == 1 { // the same high word as the trace before
			copy(id[:8], ts[i-1].id[:8])
		}
		ts = append(ts, &headTrace{id: id})
	}
	want := slices.Clone(ts)
	slices.SortFunc(want, func(a, b *headTrace) int { return compareIDs(a.id, b.id) })
	sortByID(ts)
	if !slices.Equal(ts, want) {
		t.Fatal("sortByID's order differs from compareIDs'")
	}
}

// cutBenchRequests is the cut benchmarks' head: 200 requests of 100 traces
// (20k traces, ~110k spans).
func cutBenchRequests() []ptrace.Traces {
	g := storetest.NewGen(31, testBase.UnixNano())
	var reqs []ptrace.Traces
	for range 200 {
		td := ptrace.NewTraces()
		for j := range 100 {
			g.AppendTrace(td, g.TraceID(), 3+j%6, pcommon.SpanID{})
		}
		reqs = append(reqs, td)
	}
	return reqs
}

// benchCuts times a cut of reqs per iteration and reports the process CPU
// per span and the block's bytes per span.
func benchCuts(b *testing.B, reqs []ptrace.Traces) {
	b.ReportAllocs()
	var cpu, bytes, spans float64
	for b.Loop() {
		c, size, n := timeOneCut(b, reqs)
		cpu, bytes, spans = cpu+c, bytes+float64(size), spans+float64(n)
	}
	b.ReportMetric(cpu*1e9/spans, "cut-cpu-ns/span")
	b.ReportMetric(bytes/spans, "bytes/span")
}

// timeOneCut ingests reqs into a fresh store with the timer stopped, then
// times its cut: the cut's CPU-seconds and its block's bytes and spans.
func timeOneCut(b *testing.B, reqs []ptrace.Traces) (cpu float64, size int64, spans int) {
	b.StopTimer()
	defer b.StartTimer()
	db, err := Open(b.TempDir(), DefaultOptions(), Deps{})
	if err != nil {
		b.Fatal(err)
	}
	for _, td := range reqs {
		if err := db.ConsumeTraces(b.Context(), td); err != nil {
			b.Fatal(err)
		}
	}
	b.StartTimer()
	c0 := processCPU()
	if err := db.Flush(); err != nil {
		b.Fatal(err)
	}
	cpu = (processCPU() - c0).Seconds()
	b.StopTimer()
	size, spans = db.blocks[0].size, db.blocks[0].meta.Spans
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	return cpu, size, spans
}
