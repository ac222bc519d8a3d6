package promsink

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nx-watcher/nxwatcher/internal/otlp"
	"github.com/nx-watcher/nxwatcher/internal/testclock"
)

// TestPartialSuccessOverGRPC sends a metrics request with one out-of-order
// data point through the real OTLP gRPC receiver into the sink: the answer
// is OK with rejected_data_points = 1, and the other points are stored.
func TestPartialSuccessOverGRPC(t *testing.T) {
	db := openDB(t)
	r, err := otlp.New(otlp.DefaultConfig(), otlp.Deps{
		Metrics:    newSink(t, db),
		Logger:     slog.New(slog.DiscardHandler),
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = r.RunGRPC(ctx, ln) }()
	defer func() { cancel(); wg.Wait() }()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pmetricotlp.NewGRPCClient(conn)

	ts := testclock.Now().Add(-time.Minute).Truncate(time.Millisecond)
	if resp, err := client.Export(t.Context(), pmetricotlp.NewExportRequestFromMetrics(metricsBatch(ts))); err != nil || resp.PartialSuccess().RejectedDataPoints() != 0 {
		t.Fatalf("first batch: %v, rejected %d", err, resp.PartialSuccess().RejectedDataPoints())
	}
	next := metricsBatch(ts.Add(10 * time.Second))
	gauge := next.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(1).Gauge().DataPoints().At(0)
	gauge.SetTimestamp(pcommon.NewTimestampFromTime(ts.Add(-30 * time.Second)))
	resp, err := client.Export(t.Context(), pmetricotlp.NewExportRequestFromMetrics(next))
	if err != nil {
		t.Fatalf("batch with one stale point: %v, want OK with partial success", err)
	}
	if ps := resp.PartialSuccess(); ps.RejectedDataPoints() != 1 || !strings.Contains(ps.ErrorMessage(), "out of order") {
		t.Fatalf("partial success = %d %q, want 1 out-of-order point", ps.RejectedDataPoints(), ps.ErrorMessage())
	}
	if got := query(t, db, `count_over_time(orders_total[1m])`, ts.Add(11*time.Second)); len(got) != 2 || !strings.HasSuffix(got[0], " 2") {
		t.Fatalf("orders_total samples = %q, want both batches stored", got)
	}
}
