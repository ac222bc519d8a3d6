package otlp

import (
	"context"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/metric"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// emitTraces makes a small trace with every span feature (parent links,
// attributes, events, links, status, kinds) through exp, and returns what
// the SDK itself recorded so the test can compare field by field.
func emitTraces(t *testing.T, exp sdktrace.SpanExporter) tracetest.SpanStubs {
	t.Helper()
	ctx := t.Context()
	mem := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSyncer(exp),
		sdktrace.WithSyncer(mem),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "checkout"))),
	)
	tr := tp.Tracer("nxwatcher/test")
	ctx, root := tr.Start(ctx, "GET /cart", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.method", "GET"), attribute.Int("http.status_code", 200)))
	_, other := tr.Start(context.Background(), "background job")
	other.End()
	_, child := tr.Start(ctx, "SELECT cart", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithLinks(trace.Link{SpanContext: other.SpanContext(), Attributes: []attribute.KeyValue{attribute.Bool("follows", true)}}))
	child.AddEvent("rows fetched", trace.WithAttributes(attribute.Int64("rows", 42)))
	child.SetStatus(codes.Error, "timeout")
	child.End()
	root.End()
	sent := mem.GetSpans() // before Shutdown, which empties it
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown tracer provider: %v", err)
	}
	return sent
}

func assertSameSpans(t *testing.T, want tracetest.SpanStubs, got []ptrace.Span) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("received %d spans, sent %d", len(got), len(want))
	}
	byID := map[pcommon.SpanID]ptrace.Span{}
	for _, s := range got {
		byID[s.SpanID()] = s
	}
	for _, w := range want {
		g, ok := byID[pcommon.SpanID(w.SpanContext.SpanID())]
		if !ok {
			t.Fatalf("span %s (%s) not received", w.Name, w.SpanContext.SpanID())
		}
		if g.TraceID() != pcommon.TraceID(w.SpanContext.TraceID()) {
			t.Errorf("%s: trace id %s, want %s", w.Name, g.TraceID(), w.SpanContext.TraceID())
		}
		if g.ParentSpanID() != pcommon.SpanID(w.Parent.SpanID()) {
			t.Errorf("%s: parent %s, want %s", w.Name, g.ParentSpanID(), w.Parent.SpanID())
		}
		if g.Name() != w.Name {
			t.Errorf("name %q, want %q", g.Name(), w.Name)
		}
		if int(g.Kind()) != int(w.SpanKind) {
			t.Errorf("%s: kind %v, want %v", w.Name, g.Kind(), w.SpanKind)
		}
		if g.StartTimestamp().AsTime().UnixNano() != w.StartTime.UnixNano() || g.EndTimestamp().AsTime().UnixNano() != w.EndTime.UnixNano() {
			t.Errorf("%s: times %v..%v, want %v..%v", w.Name, g.StartTimestamp(), g.EndTimestamp(), w.StartTime, w.EndTime)
		}
		if g.Attributes().Len() != len(w.Attributes) {
			t.Errorf("%s: %d attributes, want %d", w.Name, g.Attributes().Len(), len(w.Attributes))
		}
		for _, kv := range w.Attributes {
			v, ok := g.Attributes().Get(string(kv.Key))
			if !ok || v.AsString() != kv.Value.Emit() {
				t.Errorf("%s: attribute %s = %v, want %v", w.Name, kv.Key, v.AsString(), kv.Value.Emit())
			}
		}
		if g.Events().Len() != len(w.Events) {
			t.Fatalf("%s: %d events, want %d", w.Name, g.Events().Len(), len(w.Events))
		}
		for i, ev := range w.Events {
			ge := g.Events().At(i)
			if ge.Name() != ev.Name || ge.Attributes().Len() != len(ev.Attributes) {
				t.Errorf("%s: event %d = %q with %d attrs, want %q with %d", w.Name, i, ge.Name(), ge.Attributes().Len(), ev.Name, len(ev.Attributes))
			}
		}
		if g.Links().Len() != len(w.Links) {
			t.Fatalf("%s: %d links, want %d", w.Name, g.Links().Len(), len(w.Links))
		}
		for i, l := range w.Links {
			gl := g.Links().At(i)
			if gl.SpanID() != pcommon.SpanID(l.SpanContext.SpanID()) || gl.TraceID() != pcommon.TraceID(l.SpanContext.TraceID()) {
				t.Errorf("%s: link %d points at %s/%s", w.Name, i, gl.TraceID(), gl.SpanID())
			}
		}
		// The SDK numbers Error=1, Ok=2; OTLP numbers Ok=1, Error=2.
		wantCode := map[codes.Code]ptrace.StatusCode{codes.Unset: ptrace.StatusCodeUnset, codes.Ok: ptrace.StatusCodeOk, codes.Error: ptrace.StatusCodeError}[w.Status.Code]
		if g.Status().Code() != wantCode || g.Status().Message() != w.Status.Description {
			t.Errorf("%s: status %v %q, want %v %q", w.Name, g.Status().Code(), g.Status().Message(), w.Status.Code, w.Status.Description)
		}
	}
}

// exportOverSDKGRPC starts a receiver with traces as its consumer and
// sends emitTraces' spans to it with the OTel SDK's gRPC exporter (gzip).
func exportOverSDKGRPC(t *testing.T, traces TracesConsumer) (*testServer, tracetest.SpanStubs) {
	t.Helper()
	srv := startServer(t, testConfig(), Deps{Traces: traces})
	exp, err := otlptracegrpc.New(t.Context(),
		otlptracegrpc.WithEndpoint(srv.grpcAddr), otlptracegrpc.WithInsecure(),
		otlptracegrpc.WithCompressor("gzip"))
	if err != nil {
		t.Fatal(err)
	}
	return srv, emitTraces(t, exp)
}

func TestSDKTraceExporterGRPC(t *testing.T) {
	rec := &recorder{}
	srv, sent := exportOverSDKGRPC(t, rec)
	assertSameSpans(t, sent, rec.spans())
	if got := srv.accepted(SignalTraces, transportGRPC); got != float64(len(sent)) {
		t.Errorf("accepted spans metric = %v, want %d", got, len(sent))
	}
	if rs := rec.traces[0].ResourceSpans().At(0).Resource(); func() string { v, _ := rs.Attributes().Get("service.name"); return v.AsString() }() != "checkout" {
		t.Errorf("resource lost service.name")
	}
}

func TestSDKTraceExporterHTTP(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, testConfig(), Deps{Traces: rec})
	exp, err := otlptracehttp.New(t.Context(),
		otlptracehttp.WithEndpoint(srv.httpAddr), otlptracehttp.WithInsecure(),
		otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
	if err != nil {
		t.Fatal(err)
	}
	sent := emitTraces(t, exp)
	assertSameSpans(t, sent, rec.spans())
	if got := srv.accepted(SignalTraces, transportHTTP); got != float64(len(sent)) {
		t.Errorf("accepted spans metric = %v, want %d", got, len(sent))
	}
}

func emitLogs(t *testing.T, exp sdklog.Exporter) {
	t.Helper()
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewSimpleProcessor(exp)))
	logger := lp.Logger("nxwatcher/test")
	for i, body := range []string{"first line", "second line"} {
		var r otellog.Record
		r.SetBody(attribute.StringValue(body))
		r.SetSeverity(otellog.SeverityWarn)
		r.AddAttributes(attribute.Int("n", i))
		logger.Emit(t.Context(), r)
	}
	if err := lp.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown logger provider: %v", err)
	}
}

func assertLogs(t *testing.T, rec *recorder) {
	t.Helper()
	got := rec.logRecords()
	if len(got) != 2 {
		t.Fatalf("received %d log records, want 2", len(got))
	}
	for i, want := range []string{"first line", "second line"} {
		if got[i].Body().AsString() != want {
			t.Errorf("record %d body %q, want %q", i, got[i].Body().AsString(), want)
		}
		if got[i].SeverityText() != "" && got[i].SeverityNumber() != 13 {
			t.Errorf("record %d severity %v, want WARN (13)", i, got[i].SeverityNumber())
		}
		if n, ok := got[i].Attributes().Get("n"); !ok || n.Int() != int64(i) {
			t.Errorf("record %d attribute n = %v", i, n.AsString())
		}
	}
}

func TestSDKLogExporterGRPC(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, testConfig(), Deps{Logs: rec})
	exp, err := otlploggrpc.New(t.Context(), otlploggrpc.WithEndpoint(srv.grpcAddr), otlploggrpc.WithInsecure(), otlploggrpc.WithCompressor("gzip"))
	if err != nil {
		t.Fatal(err)
	}
	emitLogs(t, exp)
	assertLogs(t, rec)
}

func TestSDKLogExporterHTTP(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, testConfig(), Deps{Logs: rec})
	exp, err := otlploghttp.New(t.Context(), otlploghttp.WithEndpoint(srv.httpAddr), otlploghttp.WithInsecure(), otlploghttp.WithCompression(otlploghttp.GzipCompression))
	if err != nil {
		t.Fatal(err)
	}
	emitLogs(t, exp)
	assertLogs(t, rec)
	if got := srv.accepted(SignalLogs, transportHTTP); got != 2 {
		t.Errorf("accepted log records metric = %v, want 2", got)
	}
}

func emitMetrics(t *testing.T, exp sdkmetric.Exporter) {
	t.Helper()
	reader := sdkmetric.NewPeriodicReader(exp)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	m := mp.Meter("nxwatcher/test")
	c, err := m.Int64Counter("orders", metric.WithUnit("{order}"))
	if err != nil {
		t.Fatal(err)
	}
	c.Add(t.Context(), 3, metric.WithAttributes(attribute.String("shop", "a")))
	c.Add(t.Context(), 4, metric.WithAttributes(attribute.String("shop", "b")))
	h, err := m.Float64Histogram("latency", metric.WithUnit("s"))
	if err != nil {
		t.Fatal(err)
	}
	h.Record(t.Context(), 0.25)
	if err := mp.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown meter provider: %v", err)
	}
}

func assertMetrics(t *testing.T, rec *recorder) {
	t.Helper()
	metrics, points := rec.metricCount()
	if metrics != 2 || points != 3 {
		t.Fatalf("received %d metrics with %d points, want 2 with 3", metrics, points)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	ms := rec.metrics[0].ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	var sum int64
	for i := range ms.Len() {
		if ms.At(i).Name() == "orders" {
			dps := ms.At(i).Sum().DataPoints()
			for j := range dps.Len() {
				sum += dps.At(j).IntValue()
			}
		}
	}
	if sum != 7 {
		t.Errorf("orders sum = %d, want 7", sum)
	}
}

func TestSDKMetricExporterGRPC(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, testConfig(), Deps{Metrics: rec})
	exp, err := otlpmetricgrpc.New(t.Context(), otlpmetricgrpc.WithEndpoint(srv.grpcAddr), otlpmetricgrpc.WithInsecure(), otlpmetricgrpc.WithCompressor("gzip"))
	if err != nil {
		t.Fatal(err)
	}
	emitMetrics(t, exp)
	assertMetrics(t, rec)
}

func TestSDKMetricExporterHTTP(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, testConfig(), Deps{Metrics: rec})
	exp, err := otlpmetrichttp.New(t.Context(), otlpmetrichttp.WithEndpoint(srv.httpAddr), otlpmetrichttp.WithInsecure(), otlpmetrichttp.WithCompression(otlpmetrichttp.GzipCompression))
	if err != nil {
		t.Fatal(err)
	}
	emitMetrics(t, exp)
	assertMetrics(t, rec)
	if got := srv.accepted(SignalMetrics, transportHTTP); got != 3 {
		t.Errorf("accepted data points metric = %v, want 3", got)
	}
}
