package promsink

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/nx-watcher/nxwatcher/internal/otlp"
	"github.com/nx-watcher/nxwatcher/internal/testclock"
)

// FuzzConsumeMetrics sends any decodable OTLP metrics to a sink over a real
// TSDB: no panic, and a partial success never claims more refused data
// points than the request held.
func FuzzConsumeMetrics(f *testing.F) {
	var m pmetric.ProtoMarshaler
	for _, ts := range []time.Time{testclock.Now(), testclock.Now().Add(time.Hour), time.Unix(0, 0)} {
		b, err := m.MarshalMetrics(metricsBatch(ts))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	opts := tsdb.DefaultOptions()
	opts.OutOfOrderTimeWindow = 0
	// No WAL: the target checks answers, not durability, and each commit's
	// WAL write was a third of an execution (the fuzzer's minimisation of a
	// new input runs it tens of thousands of times).
	opts.WALSegmentSize = -1
	db, err := tsdb.Open(f.TempDir(), slog.New(slog.DiscardHandler), prometheus.NewRegistry(), opts, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = db.Close() })
	s, err := New(Options{Now: testclock.Now}, Deps{Appendable: db, Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var u pmetric.ProtoUnmarshaler
		md, err := u.UnmarshalMetrics(data)
		if err != nil {
			return
		}
		err = s.ConsumeMetrics(t.Context(), md)
		var ps *otlp.PartialSuccessError
		if errors.As(err, &ps) && (ps.Rejected <= 0 || ps.Rejected > int64(md.DataPointCount())) {
			t.Fatalf("partial success of %d data points for a request of %d", ps.Rejected, md.DataPointCount())
		}
	})
}
