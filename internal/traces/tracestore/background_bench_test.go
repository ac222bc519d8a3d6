package tracestore

import (
	"fmt"
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

// BenchmarkBackgroundCutRead reports the process CPU of cutting a head
// of 20k traces (110k spans, ~4 pieces each over 800 requests) per span,
// for read-back batches of 4 MiB (a fifth of the head, as 16 MiB is of a
// 500k-span cut) and several coalescing gaps.
func BenchmarkBackgroundCutRead(b *testing.B) {
	g := storetest.NewGen(33, testBase.UnixNano())
	ids := make([]pcommon.TraceID, 20000)
	for i := range ids {
		ids[i] = g.TraceID()
	}
	var reqs []ptrace.Traces
	for r := range 800 {
		td := ptrace.NewTraces()
		for j := range 100 {
			k := (r%200)*100 + j // each trace gets a piece in 4 requests
			g.AppendTrace(td, ids[k], 1+(k+r/200)%3, pcommon.SpanID{})
		}
		reqs = append(reqs, td)
	}
	defer func(bb int, gap int64) { cutBatchBytes, cutReadGap = bb, gap }(cutBatchBytes, cutReadGap)
	for _, gap := range []int64{0, 16 << 10, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("gap=%dk", gap>>10), func(b *testing.B) {
			cutBatchBytes, cutReadGap = 4<<20, gap
			b.ReportAllocs()
			var cpu, spans float64
			for b.Loop() {
				c, _, n := timeOneCut(b, reqs)
				cpu, spans = cpu+c, spans+float64(n)
			}
			b.ReportMetric(cpu*1e9/spans, "cut-cpu-ns/span")
		})
	}
}

// BenchmarkBackgroundCutReadBack times only the cut's read-back (cutReader.each
// over BenchmarkBackgroundCutRead's head, 16 MiB batches, 64 KiB gaps) through
// the read window and with preadv into the batch buffer.
func BenchmarkBackgroundCutReadBack(b *testing.B) {
	g := storetest.NewGen(33, testBase.UnixNano())
	ids := make([]pcommon.TraceID, 20000)
	for i := range ids {
		ids[i] = g.TraceID()
	}
	db, err := Open(b.TempDir(), DefaultOptions(), Deps{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	spans := 0
	for r := range 800 {
		td := ptrace.NewTraces()
		for j := range 100 {
			k := (r%200)*100 + j
			g.AppendTrace(td, ids[k], 1+(k+r/200)%3, pcommon.SpanID{})
		}
		spans += td.SpanCount()
		if err := db.ConsumeTraces(b.Context(), td); err != nil {
			b.Fatal(err)
		}
	}
	sel := db.head.all()
	sortByID(sel)
	defer func(d bool) { cutDirect = d }(cutDirect)
	for _, direct := range []bool{false, true} {
		b.Run(fmt.Sprintf("direct=%v", direct), func(b *testing.B) {
			cutDirect = direct
			b.ReportAllocs()
			var cpu float64
			n := 0
			for b.Loop() {
				var cr cutReader
				c0 := processCPU()
				if err := cr.each(sel, func(*headTrace, []byte) error { return nil }); err != nil {
					b.Fatal(err)
				}
				cr.release()
				cpu += (processCPU() - c0).Seconds()
				n++
			}
			b.ReportMetric(cpu*1e9/float64(n*spans), "read-cpu-ns/span")
		})
	}
}

// BenchmarkBackgroundCutStrip cuts a head of 20k traces (~110k spans) with
// format 12's stripped records and without (format 11's zeroed fields),
// alternately, and reports the process CPU per span and the level-0
// block's bytes per span (ADR 0123).
func BenchmarkBackgroundCutStrip(b *testing.B) {
	reqs := cutBenchRequests()
	defer func(s bool) { stripSpanFields = s }(stripSpanFields)
	for _, strip := range []bool{true, false} {
		b.Run(fmt.Sprintf("strip=%v", strip), func(b *testing.B) {
			stripSpanFields = strip
			benchCuts(b, reqs)
		})
	}
}
