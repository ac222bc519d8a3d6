package collector

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/promslog"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/nx-watcher/nxwatcher/internal/app"
	"github.com/nx-watcher/nxwatcher/internal/config"
)

const designDocConfig = "../../deploy/collector/otel-collector.yaml"

// startServe runs an in-process `nxwatcher serve` with its OTLP listeners on
// 127.0.0.1:0 and returns its HTTP base URL and OTLP gRPC address.
func startServe(t *testing.T) (baseURL, otlpGRPC string) {
	t.Helper()
	dir := t.TempDir()
	a, err := app.New(app.Options{
		StoragePath:   filepath.Join(dir, "data"),
		ListenAddress: "127.0.0.1:0",
		Flags:         map[string]string{"storage.path": filepath.Join(dir, "data")},
	}, app.Deps{Logger: promslog.NewNopLogger(), AdjustConfig: func(c *config.Config) {
		c.OTLP.GRPCEndpoint = "127.0.0.1:0"
		c.OTLP.HTTPEndpoint = "127.0.0.1:0"
	}})
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("serve Run: %v", err)
		}
		if err := a.Close(); err != nil {
			t.Errorf("serve Close: %v", err)
		}
	})
	baseURL = "http://" + a.Addr().String()
	waitFor(t, 20*time.Second, "serve ready", func() bool {
		code, _ := httpGet(baseURL + "/-/ready")
		return code == http.StatusOK
	})
	g, _ := a.OTLPAddrs()
	return baseURL, g.String()
}

func canDial(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

type runningCollector struct {
	grpc, http, metrics string
	stderr              *syncBuffer
}

// startCollector runs the collector with configs and the given --set values
// plus loopback endpoints for the OTLP receiver and the telemetry address
// (the design doc's 0.0.0.0:4317/4318/8888 are moved by --set, as an
// operator would).
func startCollector(t *testing.T, configs []string, sets ...string) *runningCollector {
	t.Helper()
	rc := &runningCollector{grpc: freeAddr(t), http: freeAddr(t), metrics: freeAddr(t), stderr: &syncBuffer{}}
	sets = append([]string{
		"receivers.otlp.protocols.grpc.endpoint=" + rc.grpc,
		"receivers.otlp.protocols.http.endpoint=" + rc.http,
		"service.telemetry.metrics.address=" + rc.metrics,
	}, sets...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Configs: configs, Sets: sets, Stderr: rc.stderr, KeepGRPCLogger: true})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("collector Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("collector did not stop within 30s")
		}
		if t.Failed() {
			t.Logf("collector log:\n%s", rc.stderr.String())
		}
	})
	waitFor(t, 20*time.Second, "collector telemetry endpoint", func() bool {
		select {
		case err := <-done:
			t.Fatalf("collector Run returned early: %v\n%s", err, rc.stderr.String())
		default:
		}
		code, _ := httpGet("http://" + rc.metrics + "/metrics")
		return code == http.StatusOK && canDial(rc.grpc) && canDial(rc.http)
	})
	return rc
}

// TestDesignDocPipelineToServe: OTel SDK (gRPC and HTTP) → collector running
// the design doc's otel-collector.yaml → serve; every span is found by trace
// ID through the Tempo API with cluster=bana-production on its resource, and
// the collector's own metrics are served on the converted telemetry address.
func TestDesignDocPipelineToServe(t *testing.T) {
	serveURL, serveGRPC := startServe(t)
	col := startCollector(t, []string{designDocConfig},
		"exporters.otlp/tempo.endpoint="+serveGRPC,
		"processors.batch.timeout=200ms", // the doc's 5s works too; this keeps the test short
	)
	if n := strings.Count(col.stderr.String(), "service::telemetry::metrics::address was removed"); n != 1 {
		t.Errorf("converter warned %d times, want 1", n)
	}

	grpcExp, err := otlptracegrpc.New(t.Context(), otlptracegrpc.WithEndpoint(col.grpc), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	httpExp, err := otlptracehttp.New(t.Context(), otlptracehttp.WithEndpoint(col.http), otlptracehttp.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	const tracesPerExporter, spansPerTrace = 20, 3
	var ids []trace.TraceID
	for _, e := range []struct {
		name string
		exp  sdktrace.SpanExporter
	}{{"grpc", grpcExp}, {"http", httpExp}} {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(e.exp),
			sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName("checkout-"+e.name))))
		tracer := tp.Tracer("collector-e2e")
		for i := range tracesPerExporter {
			ctx, root := tracer.Start(t.Context(), fmt.Sprintf("GET /cart/%d", i), trace.WithSpanKind(trace.SpanKindServer))
			for j := 1; j < spansPerTrace; j++ {
				_, child := tracer.Start(ctx, fmt.Sprintf("SELECT %d", j))
				child.End()
			}
			root.End()
			ids = append(ids, root.SpanContext().TraceID())
		}
		if err := tp.Shutdown(t.Context()); err != nil {
			t.Fatalf("%s export: %v", e.name, err)
		}
	}

	for _, id := range ids {
		hexID := hex.EncodeToString(id[:])
		var spans, withCluster int
		waitFor(t, 30*time.Second, "trace "+hexID+" in serve", func() bool {
			code, body := httpGet(serveURL + "/api/traces/" + hexID)
			if code != http.StatusOK {
				return false
			}
			spans, withCluster = countSpans(t, body)
			return spans == spansPerTrace
		})
		if withCluster != spans {
			t.Errorf("trace %s: %d of %d spans have cluster=bana-production on their resource", hexID, withCluster, spans)
		}
	}

	// The exporter counts spans as sent after serve's answer arrives, which
	// can be after the trace is queryable: poll the counters.
	want := fmt.Sprint(len(ids) * spansPerTrace)
	var metrics string
	for _, name := range []string{"otelcol_receiver_accepted_spans", "otelcol_exporter_sent_spans"} {
		waitFor(t, 10*time.Second, name+" = "+want, func() bool {
			_, metrics = httpGet("http://" + col.metrics + "/metrics")
			return sumMetric(metrics, name) == want
		})
	}
	for _, name := range []string{"otelcol_processor_incoming_items", "otelcol_exporter_queue_size"} {
		if !strings.Contains(metrics, name) {
			t.Errorf("telemetry has no %s", name)
		}
	}
	if t.Failed() {
		t.Logf("telemetry:\n%s", metrics)
	}
}

// countSpans counts the spans of a Tempo trace-by-ID response and those whose
// resource has cluster=bana-production.
func countSpans(t *testing.T, body string) (spans, withCluster int) {
	t.Helper()
	var got struct {
		Batches []struct {
			Resource struct {
				Attributes []struct {
					Key   string `json:"key"`
					Value struct {
						StringValue string `json:"stringValue"`
					} `json:"value"`
				} `json:"attributes"`
			} `json:"resource"`
			ScopeSpans []struct {
				Spans []json.RawMessage `json:"spans"`
			} `json:"scopeSpans"`
		} `json:"batches"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("decode trace: %v\n%s", err, body)
	}
	for _, b := range got.Batches {
		cluster := false
		for _, a := range b.Resource.Attributes {
			if a.Key == "cluster" && a.Value.StringValue == "bana-production" {
				cluster = true
			}
		}
		for _, ss := range b.ScopeSpans {
			spans += len(ss.Spans)
			if cluster {
				withCluster += len(ss.Spans)
			}
		}
	}
	return spans, withCluster
}

// sumMetric adds the sample values of every series of one metric name in a
// Prometheus text exposition, printed as an integer.
func sumMetric(exposition, name string) string {
	var sum float64
	for _, line := range strings.Split(exposition, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		var v float64
		fields := strings.Fields(line)
		if _, err := fmt.Sscan(fields[len(fields)-1], &v); err == nil {
			sum += v
		}
	}
	return fmt.Sprint(int64(sum))
}

func httpGet(url string) (int, string) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor polls cond every 50 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
