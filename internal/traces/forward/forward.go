// Package forward exports every span nxwatcher accepts to OTLP endpoints
// (`traces.forward`: Tempo, an OpenTelemetry Collector, another nxwatcher),
// over OTLP/gRPC or OTLP/HTTP protobuf, at least once: each accepted
// request is first written to a per-endpoint disk backlog (the logs
// forwarder's Backlog), and a sender per endpoint exports it in order,
// retrying with exponential backoff on the codes OTLP calls retryable
// (gRPC UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, ABORTED,
// OUT_OF_RANGE, DATA_LOSS, CANCELLED; HTTP 429, 502, 503, 504 and network
// errors) and dropping (and counting) a request refused with any other.
// The position in the backlog advances only after the endpoint answered.
// After a crash the last unacknowledged request is exported again.
//
// Forwarder implements the OTLP receiver's TracesConsumer; put it before the
// trace store in the consumer chain so a span is in the backlog before the
// sender is acknowledged (see docs/scale-out.md).
package forward

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/nx-watcher/nxwatcher/internal/backlog"
	"github.com/nx-watcher/nxwatcher/internal/tenancy"
	"github.com/nx-watcher/nxwatcher/internal/units"
	"github.com/nx-watcher/nxwatcher/internal/version"
)

// EndpointConfig is one entry of `traces.forward`.
type EndpointConfig struct {
	// Endpoint is host:port for grpc, a base URL for http (the path
	// /v1/traces is added unless the URL already ends with it).
	Endpoint string `yaml:"endpoint"`
	// Protocol is grpc (default) or http (OTLP/HTTP protobuf).
	Protocol string `yaml:"protocol"`
	// Name names the endpoint in metrics and its backlog directory.
	Name    string            `yaml:"name"`
	Headers map[string]string `yaml:"headers"`
	// TLS configures TLS; Insecure sends grpc in plain text (http follows
	// the URL's scheme).
	TLS         commoncfg.TLSConfig `yaml:"tls"`
	Insecure    bool                `yaml:"insecure"`
	Timeout     model.Duration      `yaml:"timeout"`
	MinBackoff  model.Duration      `yaml:"min_backoff"`
	MaxBackoff  model.Duration      `yaml:"max_backoff"`
	MaxBacklog  units.Bytes         `yaml:"max_backlog"`
	SegmentSize units.Bytes         `yaml:"segment_size"`
}

// SetDefaults fills unset fields.
func (c *EndpointConfig) SetDefaults() {
	if c.Protocol == "" {
		c.Protocol = "grpc"
	}
	if c.Timeout == 0 {
		c.Timeout = model.Duration(10 * time.Second)
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = model.Duration(500 * time.Millisecond)
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = model.Duration(5 * time.Minute)
	}
	if c.MaxBacklog == 0 {
		c.MaxBacklog = units.Bytes(1 << 30)
	}
	if c.SegmentSize == 0 {
		c.SegmentSize = units.Bytes(8 << 20)
	}
}

// Validate reports every problem of the endpoint at once.
func (c *EndpointConfig) Validate() error {
	var errs []error
	switch c.Protocol {
	case "grpc":
		if c.Endpoint == "" || strings.Contains(c.Endpoint, "://") {
			errs = append(errs, fmt.Errorf("endpoint: want host:port for grpc, got %q", c.Endpoint))
		}
	case "http":
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("endpoint: want an http(s) URL for http, got %q", c.Endpoint))
		}
	default:
		errs = append(errs, fmt.Errorf("protocol: %q is neither grpc nor http", c.Protocol))
	}
	if c.MinBackoff > c.MaxBackoff {
		errs = append(errs, errors.New("min_backoff must not exceed max_backoff"))
	}
	if c.MaxBacklog < 2*c.SegmentSize {
		errs = append(errs, errors.New("max_backlog must hold at least two segments (2 × segment_size)"))
	}
	return errors.Join(errs...)
}

func (c *EndpointConfig) name() string {
	if c.Name != "" {
		return c.Name
	}
	return c.Protocol + "_" + c.Endpoint
}

// Mode is `traces.mode`: store (the default) or forward-only, which keeps
// no local trace store and serves no Tempo API; the OTLP receiver's trace
// consumer is the forwarder (and the metrics-generator, which still feeds
// the local TSDB). ADR 0008.
type Mode = backlog.Mode

// The modes.
const (
	ModeStore       = backlog.ModeStore
	ModeForwardOnly = backlog.ModeForwardOnly
)

// ValidateMode checks traces.mode against traces.forward.
func ValidateMode(m Mode, endpoints []EndpointConfig) error {
	return m.Check("traces", len(endpoints))
}

// Deps are what the forwarder takes from the composition root.
type Deps struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Forwarder holds one backlog and exporter per endpoint. The endpoints can
// be changed while it runs (ApplyConfig).
type Forwarder struct {
	set    *backlog.Set
	m      *metrics
	logger *slog.Logger
}

type endpoint struct {
	cfg    EndpointConfig
	name   string
	export func(ctx context.Context, tenant string, body []byte) (retry bool, code string, err error)
	conn   *grpc.ClientConn
	logger *slog.Logger
	m      *metrics
}

// Open opens (or recovers) every endpoint's backlog under dir. With no
// endpoint it opens nothing on disk; ConsumeTraces then does nothing until
// ApplyConfig adds one. Backlogs under dir of endpoints no longer
// configured are dropped (see ApplyConfig).
func Open(dir string, cfgs []EndpointConfig, deps Deps) (*Forwarder, error) {
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &Forwarder{m: newMetrics(deps.Registerer), logger: logger.With("component", "traces-forward")}
	f.set = backlog.NewSet(dir, f.logger, func(name string, n int64) {
		f.m.droppedBytes.WithLabelValues(name, "endpoint_removed").Add(float64(n))
		f.m.backlog.DeleteLabelValues(name)
	})
	if err := f.ApplyConfig(cfgs); err != nil {
		return nil, err
	}
	return f, nil
}

// ValidateEndpoints reports every problem of a traces.forward list at
// once: each endpoint's, and two endpoints with one name.
func ValidateEndpoints(cfgs []EndpointConfig) error {
	return backlog.ValidateEndpoints("traces.forward", cfgs, func(c *EndpointConfig) (string, error) {
		c.SetDefaults()
		return c.name(), c.Validate()
	})
}

// CheckConfig builds what ApplyConfig would (TLS files, gRPC targets)
// without changing anything: the prepare half of a reload.
func (f *Forwarder) CheckConfig(cfgs []EndpointConfig) error {
	_, err := f.specs(cfgs, true)
	return err
}

// ApplyConfig puts a new traces.forward list in force, all or nothing,
// while the forwarder runs (reload). An endpoint is known by its name
// (default: protocol_endpoint): one whose name stays keeps its backlog, and
// if anything else changed its exporter restarts with the new settings; an
// endpoint whose name is gone has its unsent backlog dropped, logged and
// counted in nxwatcher_traces_forward_dropped_bytes_total{reason="endpoint_removed"}
// (ADR 0008). To move an endpoint without losing its backlog, give it a
// name.
func (f *Forwarder) ApplyConfig(cfgs []EndpointConfig) error {
	specs, err := f.specs(cfgs, false)
	if err != nil {
		return err
	}
	if err := f.set.Apply(specs); err != nil {
		return fmt.Errorf("traces.forward: %w", err)
	}
	f.m.endpoints.Set(float64(len(specs)))
	for name, n := range f.set.Pending() {
		f.m.backlog.WithLabelValues(name).Set(float64(n))
	}
	return nil
}

func (f *Forwarder) specs(cfgs []EndpointConfig, check bool) ([]backlog.Spec, error) {
	if err := ValidateEndpoints(cfgs); err != nil {
		return nil, err
	}
	specs := make([]backlog.Spec, 0, len(cfgs))
	fail := func(err error) ([]backlog.Spec, error) {
		for _, sp := range specs {
			sp.Close()
		}
		return nil, err
	}
	for i, cfg := range cfgs {
		cfg.SetDefaults()
		name := cfg.name()
		e := &endpoint{cfg: cfg, name: name, m: f.m, logger: f.logger.With("endpoint", name)}
		if err := e.dial(); err != nil {
			return fail(fmt.Errorf("traces.forward[%d]: %w", i, err))
		}
		specs = append(specs, backlog.Spec{
			Name: name, SegmentSize: int64(cfg.SegmentSize), MaxSize: int64(cfg.MaxBacklog),
			Config: cfg, Run: e.run, Close: e.closeConn,
		})
	}
	if check {
		return fail(nil)
	}
	return specs, nil
}

func (e *endpoint) dial() error {
	tlsCfg, err := commoncfg.NewTLSConfig(&e.cfg.TLS)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	timeout := time.Duration(e.cfg.Timeout)
	if e.cfg.Protocol == "http" {
		u := strings.TrimSuffix(e.cfg.Endpoint, "/")
		if !strings.HasSuffix(u, "/v1/traces") {
			u += "/v1/traces"
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tlsCfg
		hc := &http.Client{Transport: tr, Timeout: timeout}
		e.export = func(ctx context.Context, tenant string, body []byte) (bool, string, error) {
			return e.postHTTP(ctx, hc, u, tenant, body)
		}
		return nil
	}
	creds := credentials.NewTLS(tlsCfg)
	if e.cfg.Insecure {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(e.cfg.Endpoint, grpc.WithTransportCredentials(creds), grpc.WithUserAgent("nxwatcher/"+version.Version))
	if err != nil {
		return fmt.Errorf("grpc: %w", err)
	}
	e.conn = conn
	client := ptraceotlp.NewGRPCClient(conn)
	e.export = func(ctx context.Context, tenant string, body []byte) (bool, string, error) {
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			return false, "corrupt", err
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if len(e.cfg.Headers) > 0 || tenant != "" {
			md := metadata.New(e.cfg.Headers)
			if tenant != "" {
				md.Set("x-scope-orgid", tenant)
			}
			ctx = metadata.NewOutgoingContext(ctx, md)
		}
		_, err := client.Export(ctx, req)
		if err == nil {
			return false, "OK", nil
		}
		st := status.Convert(err)
		switch st.Code() {
		case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded, codes.Aborted,
			codes.OutOfRange, codes.DataLoss, codes.Canceled:
			return true, st.Code().String(), err
		}
		return false, st.Code().String(), err
	}
	return nil
}

func (e *endpoint) postHTTP(ctx context.Context, hc *http.Client, u, tenant string, body []byte) (bool, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return false, "error", err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("User-Agent", "nxwatcher/"+version.Version)
	for k, v := range e.cfg.Headers {
		req.Header.Set(k, v)
	}
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return true, "error", err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	code := strconv.Itoa(resp.StatusCode)
	switch {
	case resp.StatusCode/100 == 2:
		return false, code, nil
	case resp.StatusCode == 429 || resp.StatusCode == 502 || resp.StatusCode == 503 || resp.StatusCode == 504:
		return true, code, fmt.Errorf("status %d", resp.StatusCode)
	}
	return false, code, fmt.Errorf("status %d", resp.StatusCode)
}

func (e *endpoint) closeConn() {
	if e.conn != nil {
		e.conn.Close()
	}
}

// ConsumeTraces writes the spans to every endpoint's backlog. When it
// returns nil they are on disk (they survive a kill -9 of the process at
// once, a power loss after backlog.SyncInterval) and will be exported. In
// forward-only mode (traces.mode: forward-only) the forwarder is the OTLP
// receiver's only consumer: the sender is acknowledged only after this
// returned nil.
func (f *Forwarder) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	if f == nil || f.set.Len() == 0 || td.SpanCount() == 0 {
		return nil
	}
	t0 := time.Now()
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		return fmt.Errorf("traces forward: marshal: %w", err)
	}
	spans := td.SpanCount()
	// The receiver's tenant (traces.multitenancy_enabled) is sent on as
	// X-Scope-OrgID; tenancy off is tenant "fake", sent as none.
	tenant, _ := tenancy.FromContext(ctx)
	if tenant == tenancy.Default {
		tenant = ""
	}
	rec := backlog.EncodeRecord(tenant, spans, body)
	err = f.set.Append(rec, func(name string, dropped int64) {
		f.m.spans.WithLabelValues(name).Add(float64(spans))
		if dropped > 0 {
			f.m.droppedBytes.WithLabelValues(name, "backlog_full").Add(float64(dropped))
		}
	})
	if err != nil {
		f.m.appendFailures.Inc()
		return fmt.Errorf("traces %w", err)
	}
	f.m.appendDuration.Observe(time.Since(t0).Seconds())
	return nil
}

// Endpoints is the number of endpoints in force; with none, ConsumeTraces does
// nothing, so a caller can skip building its input.
func (f *Forwarder) Endpoints() int {
	if f == nil {
		return 0
	}
	return f.set.Len()
}

// Run exports every endpoint's backlog (endpoints added by ApplyConfig
// included) and fsyncs the backlogs every backlog.SyncInterval, until ctx
// ends. It returns only then, even with no endpoint.
func (f *Forwarder) Run(ctx context.Context) error { return f.set.Run(ctx) }

// Close closes the backlogs and connections; call it after Run returned.
func (f *Forwarder) Close() error { return f.set.Close() }

func (e *endpoint) run(ctx context.Context, b *backlog.Backlog) {
	b.Drain(ctx, backlog.Sender{
		Send:      e.send,
		Sleep:     backlog.SleepCtx,
		RetryWait: time.Duration(e.cfg.MinBackoff),
		Corrupt:   func(n int64) { e.m.droppedBytes.WithLabelValues(e.name, "corrupt").Add(float64(n)) },
		Pending:   func(n int64) { e.m.backlog.WithLabelValues(e.name).Set(float64(n)) },
		Logger:    e.logger,
	})
}

func (e *endpoint) send(ctx context.Context, rec []byte) bool {
	tenant, n, body, err := backlog.DecodeRecord(rec)
	if err != nil {
		e.m.droppedBytes.WithLabelValues(e.name, "corrupt").Add(float64(len(rec)))
		return true
	}
	spans := float64(n)
	backoff := time.Duration(e.cfg.MinBackoff)
	for {
		retry, code, err := e.export(ctx, tenant, body)
		switch {
		case err == nil:
			e.m.sentSpans.WithLabelValues(e.name).Add(spans)
			return true
		case !retry && ctx.Err() == nil:
			e.m.droppedSpans.WithLabelValues(e.name, code).Add(spans)
			e.logger.Warn("Endpoint refused an export; dropping it", "code", code, "err", err)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		e.m.failedRequests.WithLabelValues(e.name, code).Inc()
		if !backlog.SleepCtx(ctx, backoff) {
			return false
		}
		backoff = min(2*backoff, time.Duration(e.cfg.MaxBackoff))
	}
}

type metrics struct {
	spans, sentSpans, droppedSpans, droppedBytes, failedRequests *prometheus.CounterVec
	backlog                                                      *prometheus.GaugeVec
	endpoints                                                    prometheus.Gauge
	appendFailures                                               prometheus.Counter
	appendDuration                                               prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		spans: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nxwatcher_traces_forward_spans_total",
			Help: "Spans written to the endpoint's backlog."}, []string{"endpoint"}),
		sentSpans: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nxwatcher_traces_forward_sent_spans_total",
			Help: "Spans the endpoint acknowledged."}, []string{"endpoint"}),
		droppedSpans: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nxwatcher_traces_forward_dropped_spans_total",
			Help: "Spans dropped because the endpoint refused them with a non-retryable code."}, []string{"endpoint", "code"}),
		droppedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nxwatcher_traces_forward_dropped_bytes_total",
			Help: "Backlog bytes dropped unsent: backlog_full (over max_backlog), corrupt, or endpoint_removed (by a reload or restart)."}, []string{"endpoint", "reason"}),
		failedRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nxwatcher_traces_forward_failed_requests_total",
			Help: "Exports that failed and will be retried, by code."}, []string{"endpoint", "code"}),
		backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nxwatcher_traces_forward_backlog_bytes",
			Help: "Backlog bytes not yet acknowledged by the endpoint."}, []string{"endpoint"}),
		endpoints: prometheus.NewGauge(prometheus.GaugeOpts{Name: "nxwatcher_traces_forward_endpoints",
			Help: "Forward endpoints in force."}),
		appendFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "nxwatcher_traces_forward_append_failures_total",
			Help: "Accepted requests that could not be written to every backlog (the sender gets a retryable error)."}),
		appendDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "nxwatcher_traces_forward_append_duration_seconds",
			Help:    "Time to encode a request and write it to every backlog (the forwarder's share of an export's latency).",
			Buckets: prometheus.ExponentialBuckets(25e-6, 4, 8)}),
	}
	if reg != nil {
		reg.MustRegister(m.spans, m.sentSpans, m.droppedSpans, m.droppedBytes, m.failedRequests, m.backlog,
			m.endpoints, m.appendFailures, m.appendDuration)
	}
	return m
}
