package tracestore

import (
	"encoding/binary"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/testclock"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// BenchmarkConsumeTraces measures durable ingest: each op is one request of
// 100 traces (~550 spans) acknowledged after its WAL write. Requests are
// cycled with their trace IDs restamped each time (stampTraceIDs), so no op
// is a retry that deduplication would drop.
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
	cpu0 := processCPU()
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		td := reqs[i%len(reqs)]
		stampTraceIDs(td, uint64(i))
		if err := db.ConsumeTraces(b.Context(), td); err != nil {
			b.Fatal(err)
		}
		n += td.SpanCount()
	}
	b.StopTimer()
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "spans/s")
	// CPU time of the whole process per span: the figure that holds under
	// contention from other work on the machine (wall time does not).
	b.ReportMetric((processCPU()-cpu0).Seconds()*1e9/float64(n), "cpu-ns/span")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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

// stampTraceIDs writes gen into bytes 8..15 of every trace ID of td: the
// traces stay distinct from each other and from every other generation.
func stampTraceIDs(td ptrace.Traces, gen uint64) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			sp := sss.At(j).Spans()
			for k := 0; k < sp.Len(); k++ {
				s := sp.At(k)
				id := s.TraceID()
				binary.LittleEndian.PutUint64(id[8:], gen)
				s.SetTraceID(id)
			}
		}
	}
}
