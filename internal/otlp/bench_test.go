package otlp

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// benchBody is one OTLP/HTTP protobuf request of 100 traces of 5 spans, as
// bench/traces/otlpload sends them.
func benchBody(tb testing.TB) ([]byte, int) {
	g := storetest.NewGen(1, time.Now().UnixNano())
	td := ptrace.NewTraces()
	for range 100 {
		g.AppendTrace(td, g.TraceID(), 5, [8]byte{})
	}
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		tb.Fatal(err)
	}
	return body, td.SpanCount()
}

// BenchmarkHandleTraces is the receiver's own cost per request (read, decode,
// admission, answer) with a consumer that reads every span, as the store
// and the generator do.
func BenchmarkHandleTraces(b *testing.B) {
	body, spans := benchBody(b)
	var seen int
	consumer := TracesConsumerFunc(func(_ context.Context, td ptrace.Traces) error {
		seen += td.SpanCount()
		return nil
	})
	r, err := New(DefaultConfig(), Deps{Traces: consumer, Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, PathTraces, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentTypeProtobuf)
		w := httptest.NewRecorder()
		r.HandleTraces(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
}

// BenchmarkDecodeTraces compares what the receiver does with a request's
// bytes before the consumers: pdata's decode (the pdata path) and the raw
// walk (parseRawTraces, ADR 0118), on otlpload's requests.
func BenchmarkDecodeTraces(b *testing.B) {
	body, spans := benchBody(b)
	b.Run("pdata", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req := ptraceotlp.NewExportRequest()
			if err := req.UnmarshalProto(body); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
	})
	b.Run("raw-walk", func(b *testing.B) {
		b.ReportAllocs()
		var req RawTracesRequest
		for b.Loop() {
			if !parseRawTraces(body, &req) {
				b.Fatal("walk refused otlpload's request")
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
	})
}
