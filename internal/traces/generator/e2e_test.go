package generator

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/nx-watcher/nxwatcher/internal/otlp"
	"github.com/nx-watcher/nxwatcher/internal/testclock"
)

// TestSDKToServiceGraph runs the whole ingest path: two services
// instrumented with the OTel Go SDK export over OTLP/gRPC to the receiver,
// whose fan-out feeds a store stand-in and the generator; the service-graph
// edge between them must then be in PromQL.
func TestSDKToServiceGraph(t *testing.T) {
	db := openDB(t)
	cfg := DefaultConfig()
	g, err := New(cfg, Deps{Appendable: db, Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	g.now = testclock.Now
	var stored sync.Map
	store := otlp.TracesConsumerFunc(func(_ context.Context, td ptrace.Traces) error {
		stored.Store(td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SpanID(), true)
		return nil
	})
	logger := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	fan, err := otlp.NewTracesFanout(logger, reg, store, otlp.Follower{Name: "generator", Traces: g})
	if err != nil {
		t.Fatal(err)
	}
	recv, err := otlp.New(otlp.DefaultConfig(), otlp.Deps{Traces: fan, Logger: logger, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = recv.RunGRPC(ctx, ln) }()
	defer func() { cancel(); wg.Wait() }()

	provider := func(service string) *sdktrace.TracerProvider {
		exp, err := otlptracegrpc.New(t.Context(), otlptracegrpc.WithEndpoint(ln.Addr().String()), otlptracegrpc.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		return sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
			sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))))
	}
	frontend, backend := provider("frontend"), provider("cart")
	prop := propagation.TraceContext{}

	for range 3 {
		// frontend calls cart: the client span's context travels in
		// traceparent, as it would in HTTP headers.
		cctx, client := frontend.Tracer("http").Start(t.Context(), "GET /cart", trace.WithSpanKind(trace.SpanKindClient))
		carrier := propagation.MapCarrier{}
		prop.Inject(cctx, carrier)
		_, server := backend.Tracer("http").Start(prop.Extract(context.Background(), carrier), "GET /cart", trace.WithSpanKind(trace.SpanKindServer))
		time.Sleep(2 * time.Millisecond)
		server.End()
		client.End()
	}
	for _, tp := range []*sdktrace.TracerProvider{frontend, backend} {
		if err := tp.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	stored.Range(func(any, any) bool { n++; return true })
	if n != 6 {
		t.Fatalf("store got %d export batches, want 6 (one per span)", n)
	}
	g.collect(t.Context())
	at := testclock.Now()
	expectQuery(t, db, at, `traces_service_graph_request_total`,
		`{__name__="traces_service_graph_request_total", client="frontend", server="cart", source="tempo"} 3`)
	expectQuery(t, db, at, `sum by (span_kind) (traces_spanmetrics_calls_total)`,
		`{span_kind="SPAN_KIND_CLIENT"} 3`, `{span_kind="SPAN_KIND_SERVER"} 3`)
}
