// Package otlpbench measures OTLP ingest: spans per second through the
// gRPC and HTTP receivers into a consumer, and through the
// metrics-generator. Commands and figures: bench/README.md, "## otlp".
package otlpbench

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/encoding/gzip"

	"github.com/nx-watcher/nxwatcher/internal/otlp"
	"github.com/nx-watcher/nxwatcher/internal/traces/generator"
)

const spansPerRequest = 1000

// batch builds one export request shaped like an instrumented HTTP service:
// 10 traces of 100 spans, 8 span attributes, 5 resource attributes.
func batch(seed int) ptrace.Traces {
	td := ptrace.NewTraces()
	for svc := range 5 {
		rs := td.ResourceSpans().AppendEmpty()
		ra := rs.Resource().Attributes()
		ra.PutStr("service.name", fmt.Sprintf("service-%d", svc))
		ra.PutStr("service.namespace", "bana")
		ra.PutStr("k8s.pod.name", fmt.Sprintf("service-%d-7d9f8b6c5-x2x9p", svc))
		ra.PutStr("k8s.namespace.name", "nx-backend")
		ra.PutStr("telemetry.sdk.language", "go")
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp")
		for i := range spansPerRequest / 5 {
			s := ss.Spans().AppendEmpty()
			n := seed*spansPerRequest + svc*1000 + i
			s.SetTraceID(pcommon.TraceID{byte(n >> 24), byte(n >> 16), byte(n >> 8 & 0xf0), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, byte(i / 100)})
			s.SetSpanID(pcommon.SpanID{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), 1, 2, 3, 4})
			if i%100 != 0 {
				s.SetParentSpanID(pcommon.SpanID{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n - 1), 1, 2, 3, 4})
			}
			s.SetName(fmt.Sprintf("GET /api/v1/items/{id}/%d", i%20))
			s.SetKind(ptrace.SpanKind(1 + i%5))
			start := time.Unix(1_700_000_000, int64(n)*1000)
			s.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
			s.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(i%50) * time.Millisecond)))
			a := s.Attributes()
			a.PutStr("http.request.method", "GET")
			a.PutStr("url.path", fmt.Sprintf("/api/v1/items/%d", n))
			a.PutInt("http.response.status_code", 200)
			a.PutStr("server.address", "nx-traefik.nx-internal.svc.cluster.local")
			a.PutInt("server.port", 8080)
			a.PutStr("network.protocol.version", "1.1")
			a.PutStr("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)")
			a.PutStr("client.address", "10.42.0.17")
		}
	}
	return td
}

type countingConsumer struct{ spans atomic.Int64 }

func (c *countingConsumer) ConsumeTraces(_ context.Context, td ptrace.Traces) error {
	c.spans.Add(int64(td.SpanCount()))
	return nil
}

func newReceiver(b *testing.B, traces otlp.TracesConsumer) *otlp.Receiver {
	cfg := otlp.DefaultConfig()
	cfg.MemoryLimit = 1 << 30
	r, err := otlp.New(cfg, otlp.Deps{Traces: traces, Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

func serve(b *testing.B, run func(context.Context, net.Listener) error) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = run(ctx, ln) }()
	b.Cleanup(func() { cancel(); wg.Wait() })
	return ln.Addr().String()
}

func reportSpans(b *testing.B, c *countingConsumer, start time.Time) {
	elapsed := time.Since(start).Seconds()
	if got, want := c.spans.Load(), int64(b.N)*spansPerRequest; got != want {
		b.Fatalf("consumer got %d spans, sent %d", got, want)
	}
	b.ReportMetric(float64(c.spans.Load())/elapsed, "spans/s")
}

// BenchmarkGRPCExport sends 1000-span requests over OTLP/gRPC from 4
// concurrent clients; client and server share the process and its cores.
func BenchmarkGRPCExport(b *testing.B) {
	for _, compression := range []string{"none", "gzip"} {
		b.Run(compression, func(b *testing.B) {
			c := &countingConsumer{}
			r := newReceiver(b, c)
			addr := serve(b, r.RunGRPC)
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			client := ptraceotlp.NewGRPCClient(conn)
			var opts []grpc.CallOption
			if compression == "gzip" {
				opts = append(opts, grpc.UseCompressor("gzip"))
			}
			req := ptraceotlp.NewExportRequestFromTraces(batch(0))
			b.ReportAllocs()
			b.SetParallelism(2)
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := client.Export(context.Background(), req, opts...); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			reportSpans(b, c, start)
		})
	}
}

// BenchmarkHTTPExport is the same over OTLP/HTTP protobuf.
func BenchmarkHTTPExport(b *testing.B) {
	c := &countingConsumer{}
	r := newReceiver(b, c)
	addr := serve(b, r.RunHTTP)
	body, err := ptraceotlp.NewExportRequestFromTraces(batch(0)).MarshalProto()
	if err != nil {
		b.Fatal(err)
	}
	url := "http://" + addr + otlp.PathTraces
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	b.ReportAllocs()
	b.SetParallelism(2)
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(url, "application/x-protobuf", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_ = resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	reportSpans(b, c, start)
}

// BenchmarkGeneratorConsume measures the metrics-generator's per-span
// work (span metrics and service-graph pairing), without the periodic
// TSDB write, which costs per series, not per span.
func BenchmarkGeneratorConsume(b *testing.B) {
	g, err := generator.New(generator.DefaultConfig(), generator.Deps{
		Appendable: nopAppendable{}, Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		b.Fatal(err)
	}
	td := batch(0)
	b.ReportAllocs()
	start := time.Now()
	b.ResetTimer()
	for b.Loop() {
		if err := g.ConsumeTraces(context.Background(), td); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*spansPerRequest)/time.Since(start).Seconds(), "spans/s")
}

type nopAppendable struct{}

func (nopAppendable) Appender(context.Context) storage.Appender { return nil }
