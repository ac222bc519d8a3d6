package otlp

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// rawKeeper takes raw requests and keeps a pdata copy of each, and the
// size of the bytes it was handed.
type rawKeeper struct {
	mu     sync.Mutex
	traces []ptrace.Traces
	bytes  []int
}

func (c *rawKeeper) ConsumeTraces(context.Context, ptrace.Traces) error {
	panic("rawKeeper takes raw requests only")
}

func (c *rawKeeper) TakesRawTraces() bool { return true }

func (c *rawKeeper) ConsumeRawTraces(_ context.Context, req *RawTracesRequest) error {
	td, err := req.Traces()
	if err != nil {
		return err
	}
	kept := ptrace.NewTraces()
	td.CopyTo(kept)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.traces = append(c.traces, kept)
	c.bytes = append(c.bytes, len(req.Body()))
	return nil
}

func (c *rawKeeper) spans() []ptrace.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return allSpans(c.traces)
}

func rawRequestsOver(r *Receiver, transport string) float64 {
	return testutil.ToFloat64(r.metrics.rawTraces.WithLabelValues(transport))
}

// The OTel SDK's gRPC exporter (gzip, as it sends by default in the
// Collector) reaches a raw consumer without a pdata decode, with every span
// field as sent (ADR 0119).
func TestSDKTraceExporterGRPCRawPath(t *testing.T) {
	rec := &rawKeeper{}
	srv, sent := exportOverSDKGRPC(t, rec)
	assertSameSpans(t, sent, rec.spans())
	if got := rawRequestsOver(srv.recv, transportGRPC); got < 1 {
		t.Errorf("raw gRPC requests = %v, want at least 1: the SDK's requests took the pdata path", got)
	}
	if got := rawRequestsOver(srv.recv, transportHTTP); got != 0 {
		t.Errorf("raw HTTP requests = %v, want 0", got)
	}
	if got := srv.accepted(SignalTraces, transportGRPC); got != float64(len(sent)) {
		t.Errorf("accepted spans metric = %v, want %d", got, len(sent))
	}
	var received int
	for _, n := range rec.bytes {
		received += n
	}
	if got := testutil.ToFloat64(srv.recv.metrics.requestBytes.WithLabelValues(SignalTraces, transportGRPC)); got != float64(received) {
		t.Errorf("received bytes metric = %v, want the %d bytes the consumer was handed", got, received)
	}
}

// A server built without GRPCServerOptions (no codec of ours) still takes
// the raw path: pdata's registered codec hands the bytes over and the
// trace service copies them.
func TestGRPCRawPathWithoutServerOptions(t *testing.T) {
	rec := &rawKeeper{}
	r, err := New(testConfig(), Deps{Traces: rec, Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	r.RegisterGRPC(s)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	defer s.Stop()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	td := richTraces()
	resp, err := ptraceotlp.NewGRPCClient(conn).Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(td))
	if err != nil {
		t.Fatal(err)
	}
	if resp.PartialSuccess().RejectedSpans() != 0 {
		t.Fatalf("partial success: %v", resp.PartialSuccess().ErrorMessage())
	}
	if got := rawRequestsOver(r, transportGRPC); got != 1 {
		t.Fatalf("raw gRPC requests = %v, want 1", got)
	}
	want, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ptraceotlp.NewExportRequestFromTraces(rec.traces[0]).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("the consumer got other spans than sent: %d bytes, sent %d", len(got), len(want))
	}
}
