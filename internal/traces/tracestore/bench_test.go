package tracestore

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/testclock"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// BenchmarkConsumeTraces measures durable ingest: each op is one request of
// 100 traces (~550 spans) acknowledged after its WAL write.
func BenchmarkConsumeTraces(b *testing.B) {
	db, err := Open(b.TempDir(), DefaultOptions(), Deps{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	g := storetest.NewGen(1, testclock.Now().UnixNano())
	reqs := make([]ptrace.Traces, 64)
	spans := 0
	for i := range reqs {
		reqs[i] = ptrace.NewTraces()
		for j := 0; j < 100; j++ {
			g.AppendTrace(reqs[i], g.TraceID(), 3+j%6, pcommon.SpanID{})
		}
		spans += reqs[i].SpanCount()
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		td := reqs[i%len(reqs)]
		if err := db.ConsumeTraces(b.Context(), td); err != nil {
			b.Fatal(err)
		}
		n += td.SpanCount()
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "spans/s")
}

// BenchmarkTraceByID looks up random traces in a compacted block.
func BenchmarkTraceByID(b *testing.B) {
	db, err := Open(b.TempDir(), DefaultOptions(), Deps{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	g := storetest.NewGen(2, testclock.Now().UnixNano())
	var ids []TraceID
	for i := 0; i < 200; i++ {
		td := ptrace.NewTraces()
		for j := 0; j < 100; j++ {
			id := g.TraceID()
			g.AppendTrace(td, id, 3+j%6, pcommon.SpanID{})
			ids = append(ids, id)
		}
		if err := db.ConsumeTraces(b.Context(), td); err != nil {
			b.Fatal(err)
		}
		if i%50 == 49 {
			if err := db.Flush(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := db.compact(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, found, err := db.TraceByID(b.Context(), ids[(i*7919)%len(ids)]); err != nil || !found {
			b.Fatal(found, err)
		}
	}
}
