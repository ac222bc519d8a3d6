package otlp_test

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nx-watcher/nxwatcher/internal/otlp"
	"github.com/nx-watcher/nxwatcher/internal/testclock"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// TestStorePartialSuccessAndRetries drives the real trace store through the
// gRPC receiver as app wires it: a request with one oversized trace is
// answered OK with partial_success counting exactly that trace's spans, and
// a retried request is answered OK without storing anything twice.
func TestStorePartialSuccessAndRetries(t *testing.T) {
	opts := tracestore.DefaultOptions()
	opts.Now = testclock.Now
	opts.MaxTraceBytes = 8 << 10
	db, err := tracestore.Open(t.TempDir(), opts, tracestore.Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r, err := otlp.New(otlp.DefaultConfig(), otlp.Deps{
		Traces:     otlp.TracesInvalidOn(db, tracestore.ErrInvalidID, tracestore.ErrTraceTooLarge),
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
	client := ptraceotlp.NewGRPCClient(conn)

	g := storetest.NewGen(5, testclock.Now().Add(-10e9).UnixNano())
	smallID, td := g.Trace(4)
	bigID, big := g.Trace(150)
	big.ResourceSpans().MoveAndAppendTo(td.ResourceSpans())
	resp, err := client.Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(td))
	if err != nil {
		t.Fatalf("export with one oversized trace: %v, want OK with partial success", err)
	}
	if ps := resp.PartialSuccess(); ps.RejectedSpans() != 150 || ps.ErrorMessage() == "" {
		t.Fatalf("partial success = %d %q, want 150 and a reason", ps.RejectedSpans(), ps.ErrorMessage())
	}
	if _, found, _ := db.TraceByID(t.Context(), smallID); !found {
		t.Fatal("small trace not stored")
	}
	if _, found, _ := db.TraceByID(t.Context(), bigID); found {
		t.Fatal("oversized trace stored")
	}

	// A retried request: OK, no partial success, nothing stored twice.
	_, retry := g.Trace(6)
	for i := 0; i < 3; i++ {
		cp := ptrace.NewTraces()
		retry.CopyTo(cp)
		resp, err := client.Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(cp))
		if err != nil || resp.PartialSuccess().RejectedSpans() != 0 {
			t.Fatalf("retry %d: %v, rejected %d", i, err, resp.PartialSuccess().RejectedSpans())
		}
	}
	id := retry.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()
	got, found, err := db.TraceByID(t.Context(), id)
	if err != nil || !found || got.SpanCount() != 6 {
		t.Fatalf("retried trace: found=%v err=%v spans=%d, want 6", found, err, got.SpanCount())
	}
}
