package promsink

import (
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/nx-watcher/nxwatcher/internal/testclock"
)

// BenchmarkConsumeMetrics sends a batch of 100 resources x 10 gauges (1,000
// data points, as an OTel SDK's periodic export from a fleet) per op into a
// real TSDB; the time window check is one pass over the points.
func BenchmarkConsumeMetrics(b *testing.B) {
	db := openDB(b)
	s, err := New(Options{Now: testclock.Now}, Deps{Appendable: db, Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	start := testclock.Now().Add(-time.Hour)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		md := fleetBatch(start.Add(time.Duration(i) * time.Second))
		b.StartTimer()
		if err := s.ConsumeMetrics(b.Context(), md); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/point")
	// Process CPU (user + system, GC and the TSDB's goroutines included; the
	// untimed batch building too), the figure that holds on a shared machine.
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N)/1000, "cpu-ns/point")
}

// processCPU is the process's user + system CPU time so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWindowCount is the time-window pass alone over the same batch.
func BenchmarkWindowCount(b *testing.B) {
	now := testclock.Now()
	md := fleetBatch(now)
	w := window{min: now.Add(-DefaultMaxAge).UnixMilli(), max: now.Add(maxAheadTime).UnixMilli()}
	b.ReportAllocs()
	for b.Loop() {
		if p, f := w.count(md); p+f != 0 {
			b.Fatal(p, f)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/point")
}

// fleetBatch is 100 resources x 10 gauges, one point each at ts.
func fleetBatch(ts time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	for r := 0; r < 100; r++ {
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr("service.name", "svc")
		rm.Resource().Attributes().PutInt("service.instance.id", int64(r))
		rm.Resource().Attributes().PutStr("k8s.cluster.name", "bana")
		ms := rm.ScopeMetrics().AppendEmpty().Metrics()
		for m := 0; m < 10; m++ {
			g := ms.AppendEmpty()
			g.SetName("gauge_" + string(rune('a'+m)))
			dp := g.SetEmptyGauge().DataPoints().AppendEmpty()
			dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
			dp.SetDoubleValue(float64(m))
		}
	}
	return md
}
