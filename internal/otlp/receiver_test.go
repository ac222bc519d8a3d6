package otlp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The OTel SDK's HTTP exporters keep idle keep-alive connections in
		// a shared transport; their loops end when the server closes them.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// recorder is a consumer for all three signals that keeps a copy of what
// arrived, and can be told to fail or to block.
type recorder struct {
	mu      sync.Mutex
	traces  []ptrace.Traces
	logs    []plog.Logs
	metrics []pmetric.Metrics
	err     error
	// gate, when set, makes every call wait until it is closed; entered
	// receives a value when a call starts waiting.
	gate    chan struct{}
	entered chan struct{}
}

func (c *recorder) wait(ctx context.Context) error {
	c.mu.Lock()
	gate, entered := c.gate, c.entered
	c.mu.Unlock()
	if gate == nil {
		return nil
	}
	if entered != nil {
		entered <- struct{}{}
	}
	select {
	case <-gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *recorder) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	if err := c.wait(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	cp := ptrace.NewTraces()
	td.CopyTo(cp)
	c.traces = append(c.traces, cp)
	return nil
}

func (c *recorder) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	if err := c.wait(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	cp := plog.NewLogs()
	ld.CopyTo(cp)
	c.logs = append(c.logs, cp)
	return nil
}

func (c *recorder) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	if err := c.wait(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	cp := pmetric.NewMetrics()
	md.CopyTo(cp)
	c.metrics = append(c.metrics, cp)
	return nil
}

func (c *recorder) setErr(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
}

func (c *recorder) spans() []ptrace.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return allSpans(c.traces)
}

// allSpans lists the spans of tds in order.
func allSpans(tds []ptrace.Traces) []ptrace.Span {
	var out []ptrace.Span
	for _, td := range tds {
		rss := td.ResourceSpans()
		for i := range rss.Len() {
			sss := rss.At(i).ScopeSpans()
			for j := range sss.Len() {
				ss := sss.At(j).Spans()
				for k := range ss.Len() {
					out = append(out, ss.At(k))
				}
			}
		}
	}
	return out
}

func (c *recorder) logRecords() []plog.LogRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []plog.LogRecord
	for _, ld := range c.logs {
		rls := ld.ResourceLogs()
		for i := range rls.Len() {
			sls := rls.At(i).ScopeLogs()
			for j := range sls.Len() {
				lrs := sls.At(j).LogRecords()
				for k := range lrs.Len() {
					out = append(out, lrs.At(k))
				}
			}
		}
	}
	return out
}

func (c *recorder) metricCount() (metrics, points int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, md := range c.metrics {
		metrics += md.MetricCount()
		points += md.DataPointCount()
	}
	return metrics, points
}

type testServer struct {
	recv     *Receiver
	reg      *prometheus.Registry
	grpcAddr string
	httpAddr string
}

// startServer runs the receiver on two 127.0.0.1:0 listeners until the
// test ends.
func startServer(t *testing.T, cfg Config, deps Deps) *testServer {
	t.Helper()
	return startServerWebConfig(t, cfg, deps, "")
}

// startServerWebConfig is startServer with both listeners secured by an
// exporter-toolkit web config file ("" for none).
func startServerWebConfig(t *testing.T, cfg Config, deps Deps, webConfigFile string) *testServer {
	t.Helper()
	reg := prometheus.NewRegistry()
	deps.Registerer = reg
	deps.Logger = slog.New(slog.DiscardHandler)
	r, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("new receiver: %v", err)
	}
	if err := r.UseWebConfig(webConfigFile); err != nil {
		t.Fatalf("web config: %v", err)
	}
	grpcLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := r.RunGRPC(ctx, grpcLn); err != nil {
			t.Errorf("run grpc: %v", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := r.RunHTTP(ctx, httpLn); err != nil {
			t.Errorf("run http: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return &testServer{recv: r, reg: reg, grpcAddr: grpcLn.Addr().String(), httpAddr: httpLn.Addr().String()}
}

func (s *testServer) refused(signal, transport, reason string) float64 {
	return testutil.ToFloat64(s.recv.metrics.refused.WithLabelValues(signal, transport, reason))
}

func (s *testServer) accepted(signal, transport string) float64 {
	return testutil.ToFloat64(s.recv.metrics.acceptedItems.WithLabelValues(signal, transport))
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.MaxRequestBytes = 1 << 20
	cfg.MemoryLimit = 8 << 20
	return cfg
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	bad := Config{GRPCEndpoint: "nohostport", HTTPEndpoint: "", MaxRequestBytes: 0, MemoryLimit: -1, RetryAfter: -1}
	err := bad.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, key := range []string{"otlp.grpc_endpoint", "otlp.http_endpoint", "otlp.max_request_bytes", "otlp.memory_limit", "otlp.retry_after"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error %q does not name %s", err, key)
		}
	}
	small := DefaultConfig()
	small.MemoryLimit = small.MaxRequestBytes - 1
	if err := small.Validate(); err == nil || !strings.Contains(err.Error(), "below max_request_bytes") {
		t.Errorf("memory limit below request size: got %v", err)
	}
}

func TestNewNeedsLoggerAndRegisterer(t *testing.T) {
	if _, err := New(DefaultConfig(), Deps{}); err == nil {
		t.Fatal("want error without logger and registerer")
	}
}

func TestFanoutPrimaryDecides(t *testing.T) {
	primary, follower := &recorder{}, &recorder{}
	reg := prometheus.NewRegistry()
	f, err := NewTracesFanout(slog.New(slog.DiscardHandler), reg, primary, Follower{Name: "generator", Traces: follower})
	if err != nil {
		t.Fatal(err)
	}
	td := ptrace.NewTraces()
	td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty().SetName("a")
	if err := f.ConsumeTraces(t.Context(), td); err != nil {
		t.Fatal(err)
	}
	if len(primary.spans()) != 1 || len(follower.spans()) != 1 {
		t.Fatalf("primary got %d, follower %d spans; want 1 each", len(primary.spans()), len(follower.spans()))
	}
	// A failing primary fails the request and the follower sees nothing,
	// so a retry is not counted twice.
	primary.setErr(errors.New("disk full"))
	if err := f.ConsumeTraces(t.Context(), td); err == nil {
		t.Fatal("want primary error")
	}
	if len(follower.spans()) != 1 {
		t.Fatalf("follower saw a batch the primary refused")
	}
	// A failing follower is counted, not returned.
	primary.setErr(nil)
	follower.setErr(errors.New("generator busy"))
	if err := f.ConsumeTraces(t.Context(), td); err != nil {
		t.Fatalf("follower error leaked: %v", err)
	}
	if got := testutil.ToFloat64(f.failures.WithLabelValues("generator")); got != 1 {
		t.Fatalf("follower failures = %v, want 1", got)
	}
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return b
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestInvalidOnAdapters(t *testing.T) {
	errTooLarge := errors.New("trace too large")
	errClosed := errors.New("store closed")
	var next error
	store := TracesConsumerFunc(func(context.Context, ptrace.Traces) error { return next })
	c := TracesInvalidOn(store, errTooLarge)
	for _, tt := range []struct {
		err         error
		wantInvalid bool
	}{
		{fmt.Errorf("trace 0a: %w", errTooLarge), true},
		{errClosed, false},
		{nil, false},
	} {
		next = tt.err
		got := c.ConsumeTraces(t.Context(), ptrace.NewTraces())
		if errors.Is(got, ErrInvalidInput) != tt.wantInvalid || !errors.Is(got, tt.err) {
			t.Errorf("%v -> %v, want invalid=%v and the original kept", tt.err, got, tt.wantInvalid)
		}
	}
	var logErr error = errTooLarge
	if err := LogsInvalidOn(LogsConsumerFunc(func(context.Context, plog.Logs) error { return logErr }), errTooLarge).ConsumeLogs(t.Context(), plog.NewLogs()); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("logs adapter: %v", err)
	}
	if err := MetricsInvalidOn(MetricsConsumerFunc(func(context.Context, pmetric.Metrics) error { return errClosed }), errTooLarge).ConsumeMetrics(t.Context(), pmetric.NewMetrics()); errors.Is(err, ErrInvalidInput) {
		t.Errorf("metrics adapter marked an unrelated error invalid: %v", err)
	}
}

func TestHTTPServerTimeouts(t *testing.T) {
	r, err := New(DefaultConfig(), Deps{Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	srv := r.httpServer(t.Context())
	if srv.ReadHeaderTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes != 1<<20 {
		t.Fatalf("OTLP/HTTP server: read header %s, idle %s, max header bytes %d; want all set", srv.ReadHeaderTimeout, srv.IdleTimeout, srv.MaxHeaderBytes)
	}
}

func TestGRPCIdleConnectionsClosed(t *testing.T) {
	old := grpcMaxConnectionIdle
	grpcMaxConnectionIdle = 200 * time.Millisecond
	defer func() { grpcMaxConnectionIdle = old }()
	r, err := New(DefaultConfig(), Deps{Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(),
		Traces: TracesConsumerFunc(func(context.Context, ptrace.Traces) error { return nil })})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.RunGRPC(ctx, ln) }()
	defer func() { cancel(); <-done }()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := ptraceotlp.NewGRPCClient(conn).Export(t.Context(), ptraceotlp.NewExportRequest()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for conn.GetState() != connectivity.Idle {
		if time.Now().After(deadline) {
			t.Fatalf("idle connection still %s after 10 s; the server never closed it", conn.GetState())
		}
		time.Sleep(20 * time.Millisecond) // poll, bounded above
	}
}
