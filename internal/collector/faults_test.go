package collector

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/encoding/gzip" // the otlp_grpc exporter sends gzip by default
	"google.golang.org/grpc/status"
)

// sink is an OTLP gRPC trace endpoint that counts the spans it accepts.
type sink struct {
	ptraceotlp.UnimplementedGRPCServer
	spans atomic.Int64
}

func (s *sink) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	s.spans.Add(int64(req.Traces().SpanCount()))
	return ptraceotlp.NewExportResponse(), nil
}

// serveSink starts a sink on addr and returns it; it stops at test end.
func serveSink(t *testing.T, addr string) *sink {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{}
	srv := grpc.NewServer()
	ptraceotlp.RegisterGRPCServer(srv, s)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return s
}

// makeTraces builds n spans in one resource, each with its own trace ID.
func makeTraces(n, seed int) ptrace.Traces {
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	now := time.Now()
	for i := range n {
		sp := ss.Spans().AppendEmpty()
		sp.SetName("op")
		var tid [16]byte
		var sid [8]byte
		copy(tid[:], fmt.Sprintf("%08d%08d", seed, i))
		copy(sid[:], fmt.Sprintf("%08d", i))
		sp.SetTraceID(tid)
		sp.SetSpanID(sid)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
	}
	return td
}

func grpcClient(t *testing.T, addr string) ptraceotlp.GRPCClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return ptraceotlp.NewGRPCClient(cc)
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const sinkConfig = `receivers:
  otlp:
    protocols:
      grpc:
      http:
processors:
  batch:
    timeout: 100ms
exporters:
  otlp_grpc:
    endpoint: 127.0.0.1:1
    tls:
      insecure: true
    retry_on_failure:
      initial_interval: 50ms
      max_interval: 200ms
      max_elapsed_time: 5m
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp_grpc]
`

// TestExporterTargetDownThenBack: spans accepted while the exporter's target
// is down wait in the sending queue and are retried; once the target comes
// up, every one is delivered.
func TestExporterTargetDownThenBack(t *testing.T) {
	target := freeAddr(t) // nothing listens here yet
	col := startCollector(t, []string{writeFile(t, sinkConfig)}, "exporters.otlp_grpc.endpoint="+target)
	client := grpcClient(t, col.grpc)
	const batches, perBatch = 10, 100
	for i := range batches {
		if _, err := client.Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(makeTraces(perBatch, i))); err != nil {
			t.Fatalf("export %d while the target is down: %v", i, err)
		}
	}
	// The exporter must have failed at least once before the target is up.
	waitFor(t, 20*time.Second, "a retried send", func() bool {
		return strings.Contains(col.stderr.String(), "Will retry the request after interval")
	})
	s := serveSink(t, target)
	waitFor(t, 30*time.Second, "all spans at the revived target", func() bool {
		return s.spans.Load() == batches*perBatch
	})
	// The exporter counts a span as sent only after the target's answer
	// arrives, which is after the sink counted it: poll, don't sample once.
	waitFor(t, 10*time.Second, fmt.Sprintf("otelcol_exporter_sent_spans = %d", batches*perBatch), func() bool {
		_, m := httpGet("http://" + col.metrics + "/metrics")
		return sumMetric(m, "otelcol_exporter_sent_spans") == fmt.Sprint(batches*perBatch)
	})
}

// TestMemoryLimiterRefusesRetryably: with a limit far below this process's
// heap the memory_limiter refuses all data, and the receiver answers with
// retryable errors (gRPC Unavailable/ResourceExhausted, HTTP 503/429) instead
// of accepting and dropping.
func TestMemoryLimiterRefusesRetryably(t *testing.T) {
	cfg := `receivers:
  otlp:
    protocols:
      grpc:
      http:
processors:
  memory_limiter:
    check_interval: 10ms
    limit_mib: 2
    spike_limit_mib: 1
exporters:
  debug:
    verbosity: basic
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter]
      exporters: [debug]
`
	col := startCollector(t, []string{writeFile(t, cfg)})
	client := grpcClient(t, col.grpc)
	var lastErr error
	waitFor(t, 10*time.Second, "a refusal", func() bool {
		_, lastErr = client.Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(makeTraces(10, 1)))
		return lastErr != nil
	})
	if c := status.Code(lastErr); c != codes.Unavailable && c != codes.ResourceExhausted {
		t.Errorf("gRPC refusal code = %v (%v), want Unavailable or ResourceExhausted", c, lastErr)
	}
	body, err := ptraceotlp.NewExportRequestFromTraces(makeTraces(10, 2)).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+col.http+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("HTTP refusal status = %d, want 503 or 429", resp.StatusCode)
	}
	_, m := httpGet("http://" + col.metrics + "/metrics")
	if got := sumMetric(m, "otelcol_receiver_refused_spans"); got == "0" {
		t.Errorf("otelcol_receiver_refused_spans = 0 after refusals")
	}
}

// TestDefaultConfigRuns: with no --config the built-in gateway config runs
// (its fixed ports moved by --set, as tests must) and forwards spans.
func TestDefaultConfigRuns(t *testing.T) {
	target := freeAddr(t)
	s := serveSink(t, target)
	health := freeAddr(t)
	col := startCollector(t, nil,
		"exporters.otlp_grpc.endpoint="+target,
		"extensions.health_check.endpoint="+health,
		"processors.batch.timeout=100ms",
	)
	if code, body := httpGet("http://" + health + "/"); code != http.StatusOK {
		t.Errorf("health_check = %d %s", code, body)
	}
	client := grpcClient(t, col.grpc)
	if _, err := client.Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(makeTraces(25, 7))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "25 spans at the sink", func() bool { return s.spans.Load() == 25 })
}
