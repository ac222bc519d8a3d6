package tracestore

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// BenchmarkBackgroundCompact cuts four level-0 blocks of ~27k spans each
// (a tenth of their traces continue in the next block, as traces that
// outlive a cut do) and reports the process CPU of compacting them into
// one, per span, and the compacted block's bytes per span.
func BenchmarkBackgroundCompact(b *testing.B) {
	g := storetest.NewGen(37, testBase.UnixNano())
	const blocks, reqsPerBlock = 4, 50
	var cuts [blocks][]ptrace.Traces
	var carry []pcommon.TraceID
	for c := range cuts {
		var next []pcommon.TraceID
		for r := range reqsPerBlock {
			td := ptrace.NewTraces()
			for j := range 100 {
				id := g.TraceID()
				if r == 0 && j < len(carry) {
					id = carry[j] // a later piece of a trace cut before
				}
				g.AppendTrace(td, id, 3+j%6, pcommon.SpanID{})
				if r == reqsPerBlock-1 && j%10 == 0 {
					next = append(next, id)
				}
			}
			cuts[c] = append(cuts[c], td)
		}
		carry = next
	}
	b.ReportAllocs()
	var cpu, bytes, spans float64
	for b.Loop() {
		b.StopTimer()
		db, err := Open(b.TempDir(), DefaultOptions(), Deps{})
		if err != nil {
			b.Fatal(err)
		}
		for _, reqs := range cuts {
			for _, td := range reqs {
				if err := db.ConsumeTraces(b.Context(), td); err != nil {
					b.Fatal(err)
				}
			}
			if err := db.Flush(); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		c0 := processCPU()
		if err := db.Compact(b.Context()); err != nil {
			b.Fatal(err)
		}
		cpu += (processCPU() - c0).Seconds()
		b.StopTimer()
		if len(db.blocks) != 1 {
			b.Fatalf("%d blocks after compaction", len(db.blocks))
		}
		bytes += float64(db.blocks[0].size)
		spans += float64(db.blocks[0].meta.Spans)
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(cpu*1e9/spans, "compact-cpu-ns/span")
	b.ReportMetric(bytes/spans, "bytes/span")
}
