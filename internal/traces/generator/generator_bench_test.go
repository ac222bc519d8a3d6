package generator

import (
	"context"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/testclock"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// nopAppendable is never written to: ConsumeTraces only updates totals.
type nopAppendable struct{}

func (nopAppendable) Appender(context.Context) storage.Appender { return nil }

// BenchmarkConsumeTraces measures the default generator (span metrics and
// service graphs) per span, on requests of 100 traces as
// bench/traces/otlpload sends them.
func BenchmarkConsumeTraces(b *testing.B) {
	g, err := New(DefaultConfig(), Deps{Appendable: nopAppendable{}, Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	gen := storetest.NewGen(7, testclock.Now().UnixNano())
	reqs := make([]ptrace.Traces, 16)
	spans := 0
	for i := range reqs {
		reqs[i] = ptrace.NewTraces()
		for j := 0; j < 100; j++ {
			gen.AppendTrace(reqs[i], gen.TraceID(), 5, pcommon.SpanID{})
		}
		spans += reqs[i].SpanCount()
	}
	b.ReportAllocs()
	cpu0 := processCPU()
	n := 0
	for i := 0; b.Loop(); i++ {
		td := reqs[i%len(reqs)]
		if err := g.ConsumeTraces(b.Context(), td); err != nil {
			b.Fatal(err)
		}
		n += td.SpanCount()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/span")
	// CPU of the whole process per span: what holds on a shared machine.
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(n), "cpu-ns/span")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
