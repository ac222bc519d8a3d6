package otlpbench

import (
	"context"
	"encoding/binary"
	"log/slog"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nx-watcher/nxwatcher/internal/otlp"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore"
)

// stampTraceIDs writes gen into bytes 4..11 of every trace ID (constant in
// batch's IDs), keeping the grouping of spans into traces.
func stampTraceIDs(td ptrace.Traces, gen uint64) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			sp := sss.At(j).Spans()
			for k := 0; k < sp.Len(); k++ {
				s := sp.At(k)
				id := s.TraceID()
				binary.LittleEndian.PutUint64(id[4:12], gen)
				s.SetTraceID(id)
			}
		}
	}
}

// countingStore counts what the trace store acknowledged.
type countingStore struct {
	countingConsumer
	db *tracestore.DB
}

func (c *countingStore) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	n := td.SpanCount() // the store may take ownership of td
	if err := c.db.ConsumeTraces(ctx, td); err != nil {
		return err
	}
	c.spans.Add(int64(n))
	return nil
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// BenchmarkGRPCExportDurable is BenchmarkGRPCExport into the real trace
// store: every acknowledged span is in its WAL. Besides spans/s it reports
// spans per CPU-second of the whole process (client encoding included), the
// figure to hold against the 100k spans/s per core target. Block cutting and
// compaction run later (trace_idle) and are measured by bench/traces.
func BenchmarkGRPCExportDurable(b *testing.B) {
	opts := tracestore.DefaultOptions()
	opts.Retention = 100_000 * time.Hour // the batches carry 2023 timestamps
	db, err := tracestore.Open(b.TempDir(), opts, tracestore.Deps{Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	c := &countingStore{db: db}
	r := newReceiver(b, otlp.TracesInvalidOn(c, tracestore.ErrInvalidID, tracestore.ErrTraceTooLarge))
	addr := serve(b, r.RunGRPC)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := ptraceotlp.NewGRPCClient(conn)
	reqs := make([]ptraceotlp.ExportRequest, 256)
	for i := range reqs {
		reqs[i] = ptraceotlp.NewExportRequestFromTraces(batch(i))
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(2)
	start, cpu0 := time.Now(), cpuSeconds()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := next.Add(1)
			req := reqs[int(k)%len(reqs)]
			// A batch comes round again only after 255 others, so no two
			// clients hold it; new trace IDs make it new data, not a retry
			// the store would drop as duplicate spans.
			stampTraceIDs(req.Traces(), uint64(k))
			if _, err := client.Export(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	cpu := cpuSeconds() - cpu0
	reportSpans(b, &c.countingConsumer, start)
	if cpu > 0 {
		b.ReportMetric(float64(c.spans.Load())/cpu, "spans/cpu-s")
	}
}
