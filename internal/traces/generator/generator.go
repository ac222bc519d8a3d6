// Package generator is the metrics-generator: it derives Tempo's
// service-graph and span metrics from spans and writes them into Prometheus
// storage (and, optionally, to remote-write endpoints), so Grafana's service
// map and RED panels work against nx-watcher as they do against Tempo.
//
// Metric and label names are Tempo's, from its public documentation:
//
//	traces_spanmetrics_calls_total        {service, span_name, span_kind, status_code[, status_message], dims...}
//	traces_spanmetrics_latency            histogram (seconds), same labels
//	traces_spanmetrics_size_total         bytes of the spans, same labels
//	traces_service_graph_request_total         {client, server, connection_type, dims...}
//	traces_service_graph_request_failed_total  same labels
//	traces_service_graph_request_server_seconds histogram, same labels
//	traces_service_graph_request_client_seconds histogram, same labels
//	traces_service_graph_unpaired_spans_total  {client|server, connection_type}
//	traces_service_graph_dropped_spans_total   {client|server, connection_type}
//
// plus the configured external labels (source="tempo" by default) on every
// series. Values are cumulative and written at each collection interval at
// wall-clock time, as Tempo's registry does.
//
// Use: g, err := generator.New(cfg, deps); g.ConsumeTraces from the OTLP
// fan-out; run g.Run(ctx) in the run group.
package generator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/otlp"
)

// Deps are the generator's collaborators; all are required.
type Deps struct {
	// Appendable is the metrics TSDB (a *tsdb.DB).
	Appendable storage.Appendable
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Generator implements otlp.TracesConsumer and writes derived metrics.
type Generator struct {
	cfg        Config
	appendable storage.Appendable
	logger     *slog.Logger
	reg        *registry
	spans      *spanMetrics   // nil when disabled
	graph      *serviceGraphs // nil when disabled
	remotes    []*remoteWriter
	now        func() time.Time
	metrics    *selfMetrics
	svcs       []string // scratch of ConsumeRawTraces, guarded by the registry lock
}

// New checks cfg and builds a generator.
func New(cfg Config, deps Deps) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new metrics-generator: %w", err)
	}
	if deps.Appendable == nil || deps.Logger == nil || deps.Registerer == nil {
		return nil, errors.New("new metrics-generator: deps need an appendable, a logger and a registerer")
	}
	g := &Generator{
		cfg:        cfg,
		appendable: deps.Appendable,
		logger:     deps.Logger.With("component", "metrics_generator"),
		reg:        newRegistry(cfg.ExternalLabels, cfg.MaxActiveSeries),
		now:        time.Now,
	}
	if cfg.SpanMetrics.Enabled {
		g.spans = newSpanMetrics(cfg.SpanMetrics, g.reg)
	}
	if cfg.ServiceGraphs.Enabled {
		g.graph = newServiceGraphs(cfg.ServiceGraphs, g.reg)
	}
	for _, rw := range cfg.RemoteWrite {
		g.remotes = append(g.remotes, newRemoteWriter(rw))
	}
	m, err := newSelfMetrics(deps.Registerer, g)
	if err != nil {
		return nil, fmt.Errorf("new metrics-generator: %w", err)
	}
	g.metrics = m
	return g, nil
}

// ConsumeTraces derives metrics from td. It only updates in-memory totals;
// nothing here fails, so it never makes a sender retry.
func (g *Generator) ConsumeTraces(_ context.Context, td ptrace.Traces) error {
	now := g.now()
	g.reg.mu.Lock()
	defer g.reg.mu.Unlock()
	rss := td.ResourceSpans()
	var n int
	var view spanView
	for i := range rss.Len() {
		rs := rss.At(i)
		res := rs.Resource().Attributes()
		svc := serviceName(res)
		sss := rs.ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				view.fromPdata(spans.At(k), res)
				g.record(&view, svc, now)
				n++
			}
		}
	}
	g.metrics.spans.Add(float64(n))
	return nil
}

func (g *Generator) record(span *spanView, svc string, now time.Time) {
	if g.spans != nil {
		g.spans.record(span, svc, now)
	}
	if g.graph != nil {
		g.graph.record(span, svc, now)
	}
}

// TakesRawTraces implements otlp.RawTracesConsumer.
func (g *Generator) TakesRawTraces() bool { return true }

// ConsumeRawTraces is ConsumeTraces for a request the OTLP receiver walked
// without pdata (ADR 0118): the same series and values from the walk's
// span view, skipping the spans the store did not take. A request with a
// list or map attribute (whose string form is pdata's JSON), or one a
// consumer before decoded, goes through pdata.
func (g *Generator) ConsumeRawTraces(ctx context.Context, req *otlp.RawTracesRequest) error {
	if _, decoded := req.Decoded(); decoded || req.ComplexAttributes() {
		td, err := req.Traces()
		if err != nil {
			return err
		}
		return g.ConsumeTraces(ctx, td)
	}
	now := g.now()
	g.reg.mu.Lock()
	defer g.reg.mu.Unlock()
	svcs := g.svcs[:0]
	for range req.ResourceCount() {
		svcs = append(svcs, svcUnknown)
	}
	g.svcs = svcs
	var n int
	var view spanView
	spans := req.Spans()
	for i := range spans {
		s := &spans[i]
		if s.Dropped {
			continue
		}
		res := req.ResourceAttributes(s.Resource)
		if svcs[s.Resource] == svcUnknown {
			svcs[s.Resource] = rawLookup(res, "service.name")
		}
		view.fromRaw(s, req.SpanAttributes(i), res)
		g.record(&view, svcs[s.Resource], now)
		n++
	}
	clear(g.svcs)
	g.metrics.spans.Add(float64(n))
	return nil
}

// svcUnknown marks a resource whose service name is not looked up yet.
const svcUnknown = "\x00unknown"

// Run expires unpaired service-graph edges and writes all series every
// collection interval until ctx ends, then writes once more so the last
// counts are not lost on shutdown.
func (g *Generator) Run(ctx context.Context) error {
	collect := time.NewTicker(time.Duration(g.cfg.CollectionInterval))
	defer collect.Stop()
	expiry := time.NewTicker(g.expiryInterval())
	defer expiry.Stop()
	for {
		select {
		case <-ctx.Done():
			// Flush with a fresh deadline: ctx is already cancelled.
			flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			g.collect(flushCtx)
			cancel()
			return nil
		case <-expiry.C:
			g.expire(g.now())
		case <-collect.C:
			g.collect(ctx)
		}
	}
}

func (g *Generator) expiryInterval() time.Duration {
	d := time.Second
	if g.graph != nil {
		d = min(d, max(time.Duration(g.cfg.ServiceGraphs.Wait)/4, 10*time.Millisecond))
	}
	return d
}

func (g *Generator) expire(now time.Time) {
	if g.graph == nil {
		return
	}
	g.reg.mu.Lock()
	defer g.reg.mu.Unlock()
	g.graph.expire(now)
}

// collect writes every active series to the TSDB and the remote-write
// targets. Failures are logged and counted: the next collection carries
// the same cumulative values, so nothing is lost for good.
func (g *Generator) collect(ctx context.Context) {
	start := time.Now()
	samples, err := g.reg.collect(ctx, g.appendable, g.now(), time.Duration(g.cfg.StaleDuration))
	g.metrics.collectDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		g.metrics.collections.WithLabelValues("failure").Inc()
		g.logger.Warn("write generated metrics", "err", err)
	} else {
		g.metrics.collections.WithLabelValues("success").Inc()
	}
	for _, rw := range g.remotes {
		if err := rw.write(ctx, samples); err != nil {
			g.metrics.remoteWrites.WithLabelValues("failure").Inc()
			g.logger.Warn("remote-write generated metrics", "url", rw.url, "err", err)
			continue
		}
		g.metrics.remoteWrites.WithLabelValues("success").Inc()
	}
}

type selfMetrics struct {
	spans           prometheus.Counter
	collections     *prometheus.CounterVec
	remoteWrites    *prometheus.CounterVec
	collectDuration prometheus.Histogram
}

func newSelfMetrics(reg prometheus.Registerer, g *Generator) (*selfMetrics, error) {
	m := &selfMetrics{
		spans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nxwatcher_generator_spans_received_total",
			Help: "Spans the metrics-generator derived metrics from.",
		}),
		collections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_generator_collections_total",
			Help: "Writes of all generated series to the metrics storage, by result.",
		}, []string{"result"}),
		remoteWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_generator_remote_write_requests_total",
			Help: "Remote-write pushes of generated series, by result.",
		}, []string{"result"}),
		collectDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nxwatcher_generator_collection_duration_seconds",
			Help:    "Time to write all generated series to the metrics storage.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
	}
	cs := []prometheus.Collector{m.spans, m.collections, m.remoteWrites, m.collectDuration,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nxwatcher_generator_active_series",
			Help: "Series the metrics-generator holds and writes each collection.",
		}, func() float64 { return float64(g.reg.activeSeries()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "nxwatcher_generator_series_limited_total",
			Help: "New series refused because max_active_series was reached.",
		}, func() float64 { return float64(g.reg.limitedSeries()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nxwatcher_generator_pending_edges",
			Help: "Service-graph edges waiting for their client or server span.",
		}, func() float64 { return float64(g.pendingEdges()) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	for _, r := range []string{"success", "failure"} {
		m.collections.WithLabelValues(r)
		m.remoteWrites.WithLabelValues(r)
	}
	return m, nil
}

func (g *Generator) pendingEdges() int {
	if g.graph == nil {
		return 0
	}
	g.reg.mu.Lock()
	defer g.reg.mu.Unlock()
	return len(g.graph.pending)
}
