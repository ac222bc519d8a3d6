package otlp

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

type capturedErrors struct {
	mu   sync.Mutex
	errs []string
}

func (c *capturedErrors) Handle(err error) {
	c.mu.Lock()
	c.errs = append(c.errs, err.Error())
	c.mu.Unlock()
}

func (c *capturedErrors) all() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.errs, "\n")
}

// TestSDKSeesPartialSuccess: the OTel Go SDK's exporters, answered with a
// partial success, send the request once (no retry) and report the exact
// rejected count and the reason (this SDK version returns them as the
// export's error; older ones passed them to the global error handler).
func TestSDKSeesPartialSuccess(t *testing.T) {
	caught := &capturedErrors{}
	prev := otel.GetErrorHandler()
	otel.SetErrorHandler(caught)
	t.Cleanup(func() { otel.SetErrorHandler(prev) })

	var calls atomic.Int64
	srv := startServer(t, testConfig(), Deps{Traces: TracesConsumerFunc(func(context.Context, ptrace.Traces) error {
		calls.Add(1)
		return &PartialSuccessError{Rejected: 1, Reason: "1 span refused: trace larger than max_trace_bytes"}
	})})
	// Two real spans, recorded by the SDK itself.
	mem := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(mem))
	ctx, root := tp.Tracer("t").Start(t.Context(), "root")
	_, child := tp.Tracer("t").Start(ctx, "child")
	child.End()
	root.End()
	spans := mem.GetSpans().Snapshots() // before Shutdown, which empties it
	_ = tp.Shutdown(context.Background())
	if len(spans) != 2 {
		t.Fatalf("recorded %d spans", len(spans))
	}
	for name, newExp := range map[string]func() (sdktrace.SpanExporter, error){
		"grpc": func() (sdktrace.SpanExporter, error) {
			return otlptracegrpc.New(t.Context(), otlptracegrpc.WithEndpoint(srv.grpcAddr), otlptracegrpc.WithInsecure())
		},
		"http": func() (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(t.Context(), otlptracehttp.WithEndpoint(srv.httpAddr), otlptracehttp.WithInsecure())
		},
	} {
		t.Run(name, func(t *testing.T) {
			exp, err := newExp()
			if err != nil {
				t.Fatal(err)
			}
			defer exp.Shutdown(context.Background())
			before, callsBefore := len(caught.all()), calls.Load()
			var got string
			if err := exp.ExportSpans(t.Context(), spans); err != nil {
				got = err.Error()
			}
			got += caught.all()[before:]
			if !strings.Contains(got, "partial success") || !strings.Contains(got, "1 spans rejected") || !strings.Contains(got, "max_trace_bytes") {
				t.Fatalf("SDK reported %q, want the partial success with the rejected count and the reason", got)
			}
			if n := calls.Load() - callsBefore; n != 1 {
				t.Fatalf("the SDK sent the request %d times, want once", n)
			}
		})
	}
}
