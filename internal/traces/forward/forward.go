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
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
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

// Deps are what the forwarder takes from the composition root.
type Deps struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Forwarder holds one backlog and exporter per endpoint.
type Forwarder struct {
	endpoints []*endpoint
	m         *metrics
}

type endpoint struct {
	cfg     EndpointConfig
	name    string
	backlog *backlog.Backlog
	export  func(ctx context.Context, body []byte) (retry bool, code string, err error)
	conn    *grpc.ClientConn
	logger  *slog.Logger
	m       *metrics
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// Open opens (or recovers) every endpoint's backlog under dir.
func Open(dir string, cfgs []EndpointConfig, deps Deps) (*Forwarder, error) {
	f := &Forwarder{m: newMetrics(deps.Registerer)}
	logger := deps.Logger.With("component", "traces-forward")
	seen := map[string]bool{}
	for i, cfg := range cfgs {
		cfg.SetDefaults()
		if err := cfg.Validate(); err != nil {
			f.Close()
			return nil, fmt.Errorf("traces.forward[%d]: %w", i, err)
		}
		name := cfg.name()
		if seen[name] {
			f.Close()
			return nil, fmt.Errorf("traces.forward[%d]: two endpoints named %q: set name", i, name)
		}
		seen[name] = true
		e := &endpoint{cfg: cfg, name: name, m: f.m, logger: logger.With("endpoint", name)}
		if err := e.dial(); err != nil {
			f.Close()
			return nil, fmt.Errorf("traces.forward[%d]: %w", i, err)
		}
		b, err := backlog.Open(filepath.Join(dir, unsafeChars.ReplaceAllString(name, "_")), int64(cfg.SegmentSize), int64(cfg.MaxBacklog))
		if err != nil {
			e.closeConn()
			f.Close()
			return nil, fmt.Errorf("traces.forward[%d] %s: %w", i, name, err)
		}
		e.backlog = b
		f.endpoints = append(f.endpoints, e)
		f.m.backlog.WithLabelValues(name).Set(float64(b.PendingBytes()))
	}
	return f, nil
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
		e.export = func(ctx context.Context, body []byte) (bool, string, error) {
			return e.postHTTP(ctx, hc, u, body)
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
	e.export = func(ctx context.Context, body []byte) (bool, string, error) {
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			return false, "corrupt", err
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if len(e.cfg.Headers) > 0 {
			ctx = metadata.NewOutgoingContext(ctx, metadata.New(e.cfg.Headers))
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

func (e *endpoint) postHTTP(ctx context.Context, hc *http.Client, u string, body []byte) (bool, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return false, "error", err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("User-Agent", "nxwatcher/"+version.Version)
	for k, v := range e.cfg.Headers {
		req.Header.Set(k, v)
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

// ConsumeTraces writes the spans to every endpoint's backlog; when it
// returns nil they will be exported, even across a crash.
func (f *Forwarder) ConsumeTraces(_ context.Context, td ptrace.Traces) error {
	if f == nil || len(f.endpoints) == 0 || td.SpanCount() == 0 {
		return nil
	}
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		return fmt.Errorf("traces forward: marshal: %w", err)
	}
	spans := td.SpanCount()
	rec := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(rec, uint32(spans))
	copy(rec[4:], body)
	var errs []error
	for _, e := range f.endpoints {
		if err := e.backlog.Append(rec); err != nil {
			errs = append(errs, fmt.Errorf("traces forward to %s: %w", e.name, err))
			continue
		}
		f.m.spans.WithLabelValues(e.name).Add(float64(spans))
		if d := e.backlog.TakeDropped(); d > 0 {
			f.m.droppedBytes.WithLabelValues(e.name, "backlog_full").Add(float64(d))
		}
	}
	return errors.Join(errs...)
}

// Run exports every endpoint's backlog until ctx ends.
func (f *Forwarder) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, e := range f.endpoints {
		wg.Add(1)
		go func() { defer wg.Done(); e.run(ctx) }()
	}
	wg.Wait()
	return nil
}

// Close closes the backlogs and connections; call it after Run returned.
func (f *Forwarder) Close() error {
	var errs []error
	for _, e := range f.endpoints {
		errs = append(errs, e.backlog.Close())
		e.closeConn()
	}
	return errors.Join(errs...)
}

func (e *endpoint) run(ctx context.Context) {
	e.backlog.Drain(ctx, backlog.Sender{
		Send:      e.send,
		Sleep:     backlog.SleepCtx,
		RetryWait: time.Duration(e.cfg.MinBackoff),
		Corrupt:   func(n int64) { e.m.droppedBytes.WithLabelValues(e.name, "corrupt").Add(float64(n)) },
		Pending:   func(n int64) { e.m.backlog.WithLabelValues(e.name).Set(float64(n)) },
		Logger:    e.logger,
	})
}

func (e *endpoint) send(ctx context.Context, rec []byte) bool {
	spans := float64(binary.BigEndian.Uint32(rec[:4]))
	backoff := time.Duration(e.cfg.MinBackoff)
	for {
		retry, code, err := e.export(ctx, rec[4:])
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
			Help: "Backlog bytes dropped unsent: backlog_full (over max_backlog) or corrupt."}, []string{"endpoint", "reason"}),
		failedRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nxwatcher_traces_forward_failed_requests_total",
			Help: "Exports that failed and will be retried, by code."}, []string{"endpoint", "code"}),
		backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nxwatcher_traces_forward_backlog_bytes",
			Help: "Backlog bytes not yet acknowledged by the endpoint."}, []string{"endpoint"}),
	}
	if reg != nil {
		reg.MustRegister(m.spans, m.sentSpans, m.droppedSpans, m.droppedBytes, m.failedRequests, m.backlog)
	}
	return m
}
