package generator

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/tsdb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/goleak"

	"github.com/nx-watcher/nxwatcher/internal/testclock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openDB(t *testing.T) *tsdb.DB {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), slog.New(slog.DiscardHandler), prometheus.NewRegistry(), tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// fakeClock is the generator's time, moved by the test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newGenerator(t *testing.T, cfg Config, db *tsdb.DB) (*Generator, *fakeClock) {
	t.Helper()
	g, err := New(cfg, Deps{Appendable: db, Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: testclock.Now().Add(-20 * time.Minute).Truncate(time.Second)}
	g.now = clock.now
	return g, clock
}

// query runs an instant query and renders `{labels} value` lines, sorted.
func query(t *testing.T, db *tsdb.DB, q string, at time.Time) []string {
	t.Helper()
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	qry, err := eng.NewInstantQuery(t.Context(), db, nil, q, at)
	if err != nil {
		t.Fatalf("parse %s: %v", q, err)
	}
	defer qry.Close()
	res := qry.Exec(t.Context())
	if res.Err != nil {
		t.Fatalf("query %s: %v", q, res.Err)
	}
	vec, err := res.Vector()
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	var out []string
	for _, s := range vec {
		out = append(out, s.Metric.String()+" "+strconv.FormatFloat(s.F, 'g', 10, 64))
	}
	sort.Strings(out)
	return out
}

func expectQuery(t *testing.T, db *tsdb.DB, at time.Time, q string, want ...string) {
	t.Helper()
	got := query(t, db, q, at)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s\n got: %q\nwant: %q", q, got, want)
	}
}

type spanSpec struct {
	service  string
	name     string
	kind     ptrace.SpanKind
	trace    byte
	id       byte
	parent   byte
	duration time.Duration
	failed   bool
	attrs    map[string]string
}

func traces(start time.Time, specs ...spanSpec) ptrace.Traces {
	td := ptrace.NewTraces()
	for _, sp := range specs {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", sp.service)
		s := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		s.SetTraceID(pcommon.TraceID{sp.trace, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
		s.SetSpanID(pcommon.SpanID{sp.id, 1, 1, 1, 1, 1, 1, 1})
		if sp.parent != 0 {
			s.SetParentSpanID(pcommon.SpanID{sp.parent, 1, 1, 1, 1, 1, 1, 1})
		}
		s.SetName(sp.name)
		s.SetKind(sp.kind)
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(sp.duration)))
		if sp.failed {
			s.Status().SetCode(ptrace.StatusCodeError)
		}
		for k, v := range sp.attrs {
			s.Attributes().PutStr(k, v)
		}
	}
	return td
}

func TestServiceGraphClientServerPairInPromQL(t *testing.T) {
	db := openDB(t)
	g, clock := newGenerator(t, DefaultConfig(), db)
	start := clock.now()

	client := spanSpec{service: "frontend", name: "GET /checkout", kind: ptrace.SpanKindClient, trace: 1, id: 10, duration: 200 * time.Millisecond}
	server := spanSpec{service: "checkout", name: "POST /checkout", kind: ptrace.SpanKindServer, trace: 1, id: 11, parent: 10, duration: 150 * time.Millisecond, failed: true}
	// The server span arrives first, in its own request: pairing must not
	// depend on order or batching.
	if err := g.ConsumeTraces(t.Context(), traces(start, server)); err != nil {
		t.Fatal(err)
	}
	clock.add(2 * time.Second)
	if err := g.ConsumeTraces(t.Context(), traces(start, client)); err != nil {
		t.Fatal(err)
	}
	clock.add(time.Second)
	g.collect(t.Context())
	at := clock.now()

	edge := `client="frontend", server="checkout", source="tempo"`
	expectQuery(t, db, at, `traces_service_graph_request_total`, `{__name__="traces_service_graph_request_total", `+edge+`} 1`)
	expectQuery(t, db, at, `traces_service_graph_request_failed_total`, `{__name__="traces_service_graph_request_failed_total", `+edge+`} 1`)
	expectQuery(t, db, at, `traces_service_graph_request_server_seconds_bucket{le=~"0.1|0.2|\\+Inf"}`,
		`{__name__="traces_service_graph_request_server_seconds_bucket", client="frontend", le="0.1", server="checkout", source="tempo"} 0`,
		`{__name__="traces_service_graph_request_server_seconds_bucket", client="frontend", le="0.2", server="checkout", source="tempo"} 1`,
		`{__name__="traces_service_graph_request_server_seconds_bucket", client="frontend", le="+Inf", server="checkout", source="tempo"} 1`)
	expectQuery(t, db, at, `traces_service_graph_request_server_seconds_sum`, `{__name__="traces_service_graph_request_server_seconds_sum", `+edge+`} 0.15`)
	expectQuery(t, db, at, `traces_service_graph_request_server_seconds_count`, `{__name__="traces_service_graph_request_server_seconds_count", `+edge+`} 1`)
	expectQuery(t, db, at, `traces_service_graph_request_client_seconds_sum`, `{__name__="traces_service_graph_request_client_seconds_sum", `+edge+`} 0.2`)
	expectQuery(t, db, at, `histogram_quantile(0.5, traces_service_graph_request_client_seconds_bucket)`, `{`+edge+`} 0.15`)

	// Span metrics for both spans.
	expectQuery(t, db, at, `traces_spanmetrics_calls_total`,
		`{__name__="traces_spanmetrics_calls_total", service="checkout", source="tempo", span_kind="SPAN_KIND_SERVER", span_name="POST /checkout", status_code="STATUS_CODE_ERROR"} 1`,
		`{__name__="traces_spanmetrics_calls_total", service="frontend", source="tempo", span_kind="SPAN_KIND_CLIENT", span_name="GET /checkout", status_code="STATUS_CODE_UNSET"} 1`)
	expectQuery(t, db, at, `traces_spanmetrics_latency_sum{service="frontend"}`,
		`{__name__="traces_spanmetrics_latency_sum", service="frontend", source="tempo", span_kind="SPAN_KIND_CLIENT", span_name="GET /checkout", status_code="STATUS_CODE_UNSET"} 0.2`)
	var sizer ptrace.ProtoMarshaler
	td := traces(start, client)
	wantSize := sizer.SpanSize(td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0))
	expectQuery(t, db, at, `sum(traces_spanmetrics_size_total{service="frontend"})`, `{} `+strconv.Itoa(wantSize))

	// More requests, a second collection: the counters keep counting and
	// increase() sees every request, the first ones included.
	for i := range 3 {
		clock.add(time.Second)
		c, s := client, server
		c.trace, s.trace = byte(2+i), byte(2+i)
		s.failed = false
		if err := g.ConsumeTraces(t.Context(), traces(clock.now(), c, s)); err != nil {
			t.Fatal(err)
		}
	}
	clock.add(15 * time.Second)
	g.collect(t.Context())
	at = clock.now()
	expectQuery(t, db, at, `traces_service_graph_request_total`, `{__name__="traces_service_graph_request_total", `+edge+`} 4`)
	expectQuery(t, db, at, `increase(traces_service_graph_request_total[10m])`, `{`+edge+`} 4`)
	expectQuery(t, db, at, `traces_service_graph_request_failed_total`, `{__name__="traces_service_graph_request_failed_total", `+edge+`} 1`)
	if n := g.pendingEdges(); n != 0 {
		t.Errorf("%d edges left pending after every pair arrived", n)
	}
}

func TestServiceGraphVirtualNodesAndUnpaired(t *testing.T) {
	db := openDB(t)
	g, clock := newGenerator(t, DefaultConfig(), db)
	start := clock.now()
	td := traces(start,
		// A database call: no server span will ever come.
		spanSpec{service: "checkout", name: "SELECT", kind: ptrace.SpanKindClient, trace: 1, id: 1, duration: 30 * time.Millisecond,
			attrs: map[string]string{"db.system": "postgresql", "db.name": "orders"}},
		// A client span whose server never reports and has no peer hint.
		spanSpec{service: "checkout", name: "GET /stock", kind: ptrace.SpanKindClient, trace: 2, id: 2, duration: 10 * time.Millisecond},
		// A root server span: called from outside, by the "user".
		spanSpec{service: "frontend", name: "GET /", kind: ptrace.SpanKindServer, trace: 3, id: 3, duration: 500 * time.Millisecond},
		// A server span whose client is lost.
		spanSpec{service: "stock", name: "GET /stock", kind: ptrace.SpanKindServer, trace: 4, id: 4, parent: 99, duration: 5 * time.Millisecond},
	)
	if err := g.ConsumeTraces(t.Context(), td); err != nil {
		t.Fatal(err)
	}
	// Before the wait is over nothing is settled.
	clock.add(5 * time.Second)
	g.expire(clock.now())
	if n := g.pendingEdges(); n != 3 {
		t.Fatalf("%d pending edges before wait ended, want 3", n)
	}
	clock.add(6 * time.Second)
	g.expire(clock.now())
	if n := g.pendingEdges(); n != 0 {
		t.Fatalf("%d pending edges after wait, want 0", n)
	}
	g.collect(t.Context())
	at := clock.now()
	expectQuery(t, db, at, `traces_service_graph_request_total`,
		`{__name__="traces_service_graph_request_total", client="checkout", connection_type="database", server="orders", source="tempo"} 1`,
		`{__name__="traces_service_graph_request_total", client="user", connection_type="virtual_node", server="frontend", source="tempo"} 1`)
	expectQuery(t, db, at, `traces_service_graph_unpaired_spans_total`,
		`{__name__="traces_service_graph_unpaired_spans_total", client="checkout", source="tempo"} 1`,
		`{__name__="traces_service_graph_unpaired_spans_total", server="stock", source="tempo"} 1`)
	// Only the side that sent a span has a latency.
	expectQuery(t, db, at, `traces_service_graph_request_client_seconds_count`,
		`{__name__="traces_service_graph_request_client_seconds_count", client="checkout", connection_type="database", server="orders", source="tempo"} 1`)
	expectQuery(t, db, at, `traces_service_graph_request_server_seconds_count`,
		`{__name__="traces_service_graph_request_server_seconds_count", client="user", connection_type="virtual_node", server="frontend", source="tempo"} 1`)
}

func TestMessagingAndDroppedAndDimensions(t *testing.T) {
	db := openDB(t)
	cfg := DefaultConfig()
	cfg.ServiceGraphs.MaxItems = 1
	cfg.ServiceGraphs.Dimensions = []string{"deployment.environment"}
	cfg.SpanMetrics.Dimensions = []string{"http.method", "status_code"}
	cfg.ExternalLabels = map[string]string{"source": "tempo", "cluster": "bana"}
	g, clock := newGenerator(t, cfg, db)
	start := clock.now()
	td := traces(start,
		spanSpec{service: "orders", name: "publish", kind: ptrace.SpanKindProducer, trace: 1, id: 1, duration: time.Millisecond,
			attrs: map[string]string{"deployment.environment": "prod", "http.method": "POST", "status_code": "201"}},
		// The store is full (max_items 1): this one is dropped and counted.
		spanSpec{service: "orders", name: "GET", kind: ptrace.SpanKindClient, trace: 2, id: 2, duration: time.Millisecond},
		spanSpec{service: "mailer", name: "consume", kind: ptrace.SpanKindConsumer, trace: 1, id: 3, parent: 1, duration: 2 * time.Millisecond},
	)
	if err := g.ConsumeTraces(t.Context(), td); err != nil {
		t.Fatal(err)
	}
	clock.add(time.Second)
	g.collect(t.Context())
	at := clock.now()
	expectQuery(t, db, at, `traces_service_graph_request_total`,
		`{__name__="traces_service_graph_request_total", client="orders", cluster="bana", connection_type="messaging_system", deployment_environment="prod", server="mailer", source="tempo"} 1`)
	expectQuery(t, db, at, `traces_service_graph_dropped_spans_total`,
		`{__name__="traces_service_graph_dropped_spans_total", client="orders", cluster="bana", source="tempo"} 1`)
	expectQuery(t, db, at, `traces_spanmetrics_calls_total{span_name="publish"}`,
		`{__name__="traces_spanmetrics_calls_total", __status_code="201", cluster="bana", http_method="POST", service="orders", source="tempo", span_kind="SPAN_KIND_PRODUCER", span_name="publish", status_code="STATUS_CODE_UNSET"} 1`)
}

func TestStaleSeriesAreDroppedAndMarked(t *testing.T) {
	db := openDB(t)
	cfg := DefaultConfig()
	cfg.StaleDuration.Set("1m")
	g, clock := newGenerator(t, cfg, db)
	if err := g.ConsumeTraces(t.Context(), traces(clock.now(),
		spanSpec{service: "a", name: "x", kind: ptrace.SpanKindInternal, trace: 1, id: 1, duration: time.Millisecond})); err != nil {
		t.Fatal(err)
	}
	clock.add(time.Second)
	g.collect(t.Context())
	if got := len(query(t, db, `traces_spanmetrics_calls_total`, clock.now())); got != 1 {
		t.Fatalf("%d series before going stale", got)
	}
	before := g.reg.activeSeries()
	clock.add(2 * time.Minute)
	g.collect(t.Context())
	if got := query(t, db, `traces_spanmetrics_calls_total`, clock.now()); len(got) != 0 {
		t.Fatalf("stale series still answers: %q", got)
	}
	if after := g.reg.activeSeries(); before == 0 || after != 0 {
		t.Fatalf("active series %d -> %d, want all dropped", before, after)
	}
}

func TestMaxActiveSeries(t *testing.T) {
	db := openDB(t)
	cfg := DefaultConfig()
	cfg.ServiceGraphs.Enabled = false
	cfg.MaxActiveSeries = 3 // calls, latency and size of one span name
	g, clock := newGenerator(t, cfg, db)
	for _, name := range []string{"a", "b"} {
		if err := g.ConsumeTraces(t.Context(), traces(clock.now(),
			spanSpec{service: "s", name: name, kind: ptrace.SpanKindServer, trace: 1, id: 1, duration: time.Millisecond})); err != nil {
			t.Fatal(err)
		}
	}
	if got, limited := g.reg.activeSeries(), g.reg.limitedSeries(); got != 3 || limited != 3 {
		t.Fatalf("active %d limited %d, want 3 and 3", got, limited)
	}
}

func TestRemoteWrite(t *testing.T) {
	type got struct {
		series []prompb.TimeSeries
		header http.Header
	}
	received := make(chan got, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		raw, err := snappy.Decode(nil, body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		var req prompb.WriteRequest
		if err := req.Unmarshal(raw); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		received <- got{series: req.Timeseries, header: r.Header.Clone()}
	}))
	defer srv.Close()

	db := openDB(t)
	cfg := DefaultConfig()
	cfg.RemoteWrite = []RemoteWriteConfig{{URL: srv.URL + "/api/v1/write", Headers: map[string]string{"X-Scope-OrgID": "bana"}}}
	g, clock := newGenerator(t, cfg, db)
	if err := g.ConsumeTraces(t.Context(), traces(clock.now(),
		spanSpec{service: "frontend", name: "GET /", kind: ptrace.SpanKindServer, trace: 1, id: 1, duration: time.Millisecond})); err != nil {
		t.Fatal(err)
	}
	clock.add(time.Second)
	g.collect(t.Context())
	r := <-received
	if r.header.Get("Content-Encoding") != "snappy" || r.header.Get("X-Prometheus-Remote-Write-Version") != "0.1.0" || r.header.Get("X-Scope-OrgID") != "bana" {
		t.Errorf("headers %v", r.header)
	}
	found := false
	for _, ts := range r.series {
		var name, source string
		for _, l := range ts.Labels {
			switch l.Name {
			case "__name__":
				name = l.Value
			case "source":
				source = l.Value
			}
		}
		if name == "traces_service_graph_request_total" && source == "tempo" {
			last := ts.Samples[len(ts.Samples)-1]
			if last.Value == 1 && last.Timestamp == clock.now().UnixMilli() {
				found = true
			} else if last.Value != 0 {
				t.Errorf("request_total sample %v at %d", last.Value, last.Timestamp)
			}
		}
	}
	if !found {
		t.Fatalf("remote write carried no traces_service_graph_request_total=1 at collection time")
	}
}

func TestRunCollectsAndFlushesOnStop(t *testing.T) {
	db := openDB(t)
	cfg := DefaultConfig()
	cfg.CollectionInterval.Set("50ms")
	g, err := New(cfg, Deps{Appendable: db, Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	g.now = testclock.Now // the samples' time and the query's must agree on any date
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	if err := g.ConsumeTraces(ctx, traces(testclock.Now(),
		spanSpec{service: "a", name: "x", kind: ptrace.SpanKindServer, trace: 1, id: 1, duration: time.Millisecond})); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(query(t, db, `traces_spanmetrics_calls_total`, testclock.Now())) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run never wrote the series")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.CollectionInterval = 0
	cfg.ExternalLabels = map[string]string{"bad-name": "x"}
	cfg.RemoteWrite = []RemoteWriteConfig{{URL: "ftp://x"}}
	cfg.ServiceGraphs.HistogramBuckets = []float64{1, 0.5}
	cfg.ServiceGraphs.MaxItems = 0
	cfg.SpanMetrics.HistogramBuckets = nil
	err := cfg.Validate()
	for _, key := range []string{"collection_interval", "external_labels", "remote_write[0].url", "service_graphs.histogram_buckets", "service_graphs.max_items", "span_metrics.histogram_buckets"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("error %v does not name %s", err, key)
		}
	}
}

func TestSanitizeLabelName(t *testing.T) {
	for in, want := range map[string]string{"http.method": "http_method", "k8s.pod.name": "k8s_pod_name", "9lives": "_9lives", "a-b/c": "a_b_c"} {
		if got := sanitizeLabelName(in); got != want {
			t.Errorf("%q -> %q, want %q", in, got, want)
		}
	}
	if math.IsNaN(durationSeconds(ptrace.NewSpan())) {
		t.Error("duration of an empty span is NaN")
	}
}
