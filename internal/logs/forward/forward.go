// Package forward pushes every log line nxwatcher accepts to
// Loki-compatible endpoints (`logs.forward`), protobuf + snappy as Loki's
// /loki/api/v1/push takes it, at least once: each accepted batch is first
// written to a per-endpoint disk backlog (see backlog.go), and a sender per
// endpoint pushes the backlog in order, retrying with exponential backoff
// on network errors, 429 and 5xx, and advancing its saved position only
// after the endpoint acknowledged a push. A push the endpoint refuses with
// another 4xx is dropped and counted, as Promtail does. The backlog is
// bounded (max_backlog): past it the oldest unsent segment is dropped and
// counted. After a crash the last unacknowledged push is sent again; Loki
// (and nxwatcher's own push endpoint) drop the exact duplicates.
//
// The store's push path calls Append after its own commit, before it
// answers the client (see the hook described in docs/scale-out.md).
package forward

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/backlog"
	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
	"github.com/nx-watcher/nxwatcher/internal/tenancy"
	"github.com/nx-watcher/nxwatcher/internal/version"
)

// Stream is a batch of accepted entries of one stream.
type Stream struct {
	Labels  labels.Labels
	Entries []logstore.Entry
	// Tenant is the X-Scope-OrgID the line was pushed with (logs.auth_enabled);
	// "" or "fake" when tenancy is off. It is sent on, and wins over the
	// endpoint's tenant_id, as a Promtail tenant stage wins over its client's.
	Tenant string
}

// Deps are what the forwarder takes from the composition root.
type Deps struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Forwarder holds one backlog and sender per endpoint. The endpoints can
// be changed while it runs (ApplyConfig).
type Forwarder struct {
	set    *backlog.Set
	m      *metrics
	logger *slog.Logger
	// sleep waits between retries; tests shorten it.
	sleep func(context.Context, time.Duration) bool
}

type endpoint struct {
	cfg    EndpointConfig
	name   string
	client *http.Client
	logger *slog.Logger
	m      *metrics
	sleep  func(context.Context, time.Duration) bool
}

// Open opens (or recovers) the backlog of every endpoint under dir. With
// no endpoint it opens nothing on disk; Append then does nothing until
// ApplyConfig adds one. Backlogs under dir of endpoints no longer
// configured are dropped (see ApplyConfig).
func Open(dir string, cfgs []EndpointConfig, deps Deps) (*Forwarder, error) {
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &Forwarder{m: newMetrics(deps.Registerer), logger: logger.With("component", "logs-forward"), sleep: backlog.SleepCtx}
	f.set = backlog.NewSet(dir, f.logger, func(name string, n int64) {
		f.m.droppedBytes.WithLabelValues(name, "endpoint_removed").Add(float64(n))
		f.m.backlog.DeleteLabelValues(name)
	})
	if err := f.ApplyConfig(cfgs); err != nil {
		return nil, err
	}
	return f, nil
}

// ValidateEndpoints reports every problem of a logs.forward list at once:
// each endpoint's, and two endpoints with one name.
func ValidateEndpoints(cfgs []EndpointConfig) error {
	return backlog.ValidateEndpoints("logs.forward", cfgs, func(c *EndpointConfig) (string, error) {
		c.SetDefaults()
		return c.name(), c.Validate()
	})
}

// CheckConfig builds what ApplyConfig would, without changing anything: the
// prepare half of a reload.
func (f *Forwarder) CheckConfig(cfgs []EndpointConfig) error {
	_, err := f.specs(cfgs, true)
	return err
}

// ApplyConfig puts a new logs.forward list in force, all or nothing, while
// the forwarder runs (reload). An endpoint is known by its name (default:
// the URL's host and path): one whose name stays keeps its backlog, and if
// anything else changed (URL, auth, limits) its sender restarts with the
// new settings; an endpoint whose name is gone has its unsent backlog
// dropped, logged and counted in
// nxwatcher_logs_forward_dropped_bytes_total{reason="endpoint_removed"}
// (ADR 0008). To move an endpoint to a new URL without losing its
// backlog, give it a name.
func (f *Forwarder) ApplyConfig(cfgs []EndpointConfig) error {
	specs, err := f.specs(cfgs, false)
	if err != nil {
		return err
	}
	if err := f.set.Apply(specs); err != nil {
		return fmt.Errorf("logs.forward: %w", err)
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
	for i, cfg := range cfgs {
		cfg.SetDefaults()
		name := cfg.name()
		hc, err := commoncfg.NewClientFromConfig(cfg.HTTPClientConfig, "logs-forward", commoncfg.WithUserAgent("nxwatcher/"+version.Version))
		if err != nil {
			return nil, fmt.Errorf("logs.forward[%d]: %w", i, err)
		}
		hc.Timeout = time.Duration(cfg.Timeout)
		if check {
			hc.CloseIdleConnections()
			continue
		}
		e := &endpoint{cfg: cfg, name: name, client: hc, m: f.m, logger: f.logger.With("endpoint", name), sleep: f.sleep}
		specs = append(specs, backlog.Spec{
			Name: name, SegmentSize: int64(cfg.SegmentSize), MaxSize: int64(cfg.MaxBacklog),
			Config: cfg, Run: e.run, Close: hc.CloseIdleConnections,
		})
	}
	return specs, nil
}

// Append writes the streams to every endpoint's backlog. When it returns
// nil they are on disk (they survive a kill -9 of the process at once, a
// power loss after backlog.SyncInterval) and will be pushed. In
// forward-only mode (logs.mode: forward-only) this is the only copy, so a
// push is acknowledged only after Append returned nil.
func (f *Forwarder) Append(streams []Stream) error {
	if f == nil || f.set.Len() == 0 || len(streams) == 0 {
		return nil
	}
	t0 := time.Now()
	for tenant, streams := range byTenant(streams) {
		body, entries := encode(streams)
		if entries == 0 {
			continue
		}
		rec := backlog.EncodeRecord(tenant, entries, body)
		err := f.set.Append(rec, func(name string, dropped int64) {
			f.m.entries.WithLabelValues(name).Add(float64(entries))
			if dropped > 0 {
				f.m.droppedBytes.WithLabelValues(name, "backlog_full").Add(float64(dropped))
			}
		})
		if err != nil {
			f.m.appendFailures.Inc()
			return err
		}
	}
	f.m.appendDuration.Observe(time.Since(t0).Seconds())
	return nil
}

// byTenant splits a push by tenant; tenancy off ("" or "fake") is tenant "".
func byTenant(streams []Stream) iter.Seq2[string, []Stream] {
	return func(yield func(string, []Stream) bool) {
		tenantOf := func(s Stream) string {
			if s.Tenant == tenancy.Default {
				return ""
			}
			return s.Tenant
		}
		first := tenantOf(streams[0])
		mixed := false
		for _, s := range streams[1:] {
			if tenantOf(s) != first {
				mixed = true
				break
			}
		}
		if !mixed { // the usual case: one push, one tenant
			yield(first, streams)
			return
		}
		groups := map[string][]Stream{}
		var order []string
		for _, s := range streams {
			t := tenantOf(s)
			if _, ok := groups[t]; !ok {
				order = append(order, t)
			}
			groups[t] = append(groups[t], s)
		}
		for _, t := range order {
			if !yield(t, groups[t]) {
				return
			}
		}
	}
}

// encode builds the snappy-compressed protobuf push body.
func encode(streams []Stream) ([]byte, int) {
	req := push.PushRequest{Streams: make([]push.Stream, 0, len(streams))}
	n := 0
	for _, s := range streams {
		if len(s.Entries) == 0 {
			continue
		}
		ps := push.Stream{Labels: s.Labels.String(), Entries: make([]push.Entry, len(s.Entries))}
		for i, e := range s.Entries {
			pe := push.Entry{Timestamp: time.Unix(0, e.Timestamp).UTC(), Line: e.Line}
			e.Metadata.Range(func(l labels.Label) {
				pe.StructuredMetadata = append(pe.StructuredMetadata, push.LabelAdapter{Name: l.Name, Value: l.Value})
			})
			ps.Entries[i] = pe
		}
		n += len(s.Entries)
		req.Streams = append(req.Streams, ps)
	}
	raw, err := req.Marshal()
	if err != nil {
		panic(fmt.Sprintf("marshal push request: %v", err)) // only fails on impossible states
	}
	return snappy.Encode(nil, raw), n
}

// Endpoints is the number of endpoints in force; with none, Append does
// nothing, so a caller can skip building its input.
func (f *Forwarder) Endpoints() int {
	if f == nil {
		return 0
	}
	return f.set.Len()
}

// Run pushes every endpoint's backlog (endpoints added by ApplyConfig
// included) and fsyncs the backlogs every backlog.SyncInterval, until ctx
// ends. It returns only then, even with no endpoint.
func (f *Forwarder) Run(ctx context.Context) error { return f.set.Run(ctx) }

// Close syncs and closes the backlogs; call it after Run returned.
func (f *Forwarder) Close() error { return f.set.Close() }

func (e *endpoint) run(ctx context.Context, b *backlog.Backlog) {
	b.Drain(ctx, backlog.Sender{
		Send:      e.send,
		Sleep:     e.sleep,
		RetryWait: time.Duration(e.cfg.MinBackoff),
		Corrupt:   func(n int64) { e.m.droppedBytes.WithLabelValues(e.name, "corrupt").Add(float64(n)) },
		Pending:   func(n int64) { e.m.backlog.WithLabelValues(e.name).Set(float64(n)) },
		Logger:    e.logger,
	})
}

// send pushes one record until it is acknowledged or refused for good;
// false when ctx ended first.
func (e *endpoint) send(ctx context.Context, rec []byte) bool {
	tenant, n, body, err := backlog.DecodeRecord(rec)
	if err != nil {
		e.m.droppedBytes.WithLabelValues(e.name, "corrupt").Add(float64(len(rec)))
		return true
	}
	entries := float64(n)
	backoff := time.Duration(e.cfg.MinBackoff)
	for {
		status, err := e.post(ctx, tenant, body)
		switch {
		case err == nil && status/100 == 2:
			e.m.sentEntries.WithLabelValues(e.name).Add(entries)
			e.m.sentBytes.WithLabelValues(e.name).Add(float64(len(body)))
			e.m.lastSuccess.WithLabelValues(e.name).SetToCurrentTime()
			return true
		case err == nil && status/100 == 4 && status != http.StatusTooManyRequests:
			e.m.droppedEntries.WithLabelValues(e.name, strconv.Itoa(status)).Add(entries)
			e.logger.Warn("Endpoint refused a push; dropping it", "status", status, "entries", entries)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		code := "error"
		if err == nil {
			code = strconv.Itoa(status)
		}
		e.m.failedRequests.WithLabelValues(e.name, code).Inc()
		e.logger.Debug("Push failed; retrying", "status", code, "err", err, "backoff", backoff)
		if !e.sleep(ctx, backoff) {
			return false
		}
		backoff = min(2*backoff, time.Duration(e.cfg.MaxBackoff))
	}
}

func (e *endpoint) post(ctx context.Context, tenant string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	for k, v := range e.cfg.Headers {
		req.Header.Set(k, v)
	}
	switch {
	case tenant != "":
		req.Header.Set("X-Scope-OrgID", tenant)
	case e.cfg.TenantID != "":
		req.Header.Set("X-Scope-OrgID", e.cfg.TenantID)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

type metrics struct {
	entries, sentEntries, sentBytes *prometheus.CounterVec
	droppedEntries, droppedBytes    *prometheus.CounterVec
	failedRequests                  *prometheus.CounterVec
	backlog, lastSuccess            *prometheus.GaugeVec
	endpoints                       prometheus.Gauge
	appendFailures                  prometheus.Counter
	appendDuration                  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nxwatcher_logs_forward_entries_total",
			Help: "Log entries written to the endpoint's backlog."}, []string{"endpoint"}),
		sentEntries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nxwatcher_logs_forward_sent_entries_total",
			Help: "Log entries the endpoint acknowledged."}, []string{"endpoint"}),
		sentBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nxwatcher_logs_forward_sent_bytes_total",
			Help: "Compressed push bytes the endpoint acknowledged."}, []string{"endpoint"}),
		droppedEntries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nxwatcher_logs_forward_dropped_entries_total",
			Help: "Log entries dropped because the endpoint refused their push with a 4xx other than 429 (status)."}, []string{"endpoint", "status"}),
		droppedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nxwatcher_logs_forward_dropped_bytes_total",
			Help: "Backlog bytes dropped unsent: backlog_full (over max_backlog), corrupt, or endpoint_removed (by a reload or restart)."}, []string{"endpoint", "reason"}),
		failedRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nxwatcher_logs_forward_failed_requests_total",
			Help: "Pushes that failed and will be retried, by status code or error."}, []string{"endpoint", "code"}),
		backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nxwatcher_logs_forward_backlog_bytes",
			Help: "Backlog bytes not yet acknowledged by the endpoint."}, []string{"endpoint"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nxwatcher_logs_forward_last_success_timestamp_seconds",
			Help: "When the endpoint last acknowledged a push."}, []string{"endpoint"}),
		endpoints: prometheus.NewGauge(prometheus.GaugeOpts{Name: "nxwatcher_logs_forward_endpoints",
			Help: "Forward endpoints in force."}),
		appendFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "nxwatcher_logs_forward_append_failures_total",
			Help: "Accepted batches that could not be written to every backlog (the push is answered 5xx so the client retries)."}),
		appendDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "nxwatcher_logs_forward_append_duration_seconds",
			Help:    "Time to encode a batch and write it to every backlog (the forwarder's share of a push's latency).",
			Buckets: prometheus.ExponentialBuckets(25e-6, 4, 8)}),
	}
	if reg != nil {
		reg.MustRegister(m.entries, m.sentEntries, m.sentBytes, m.droppedEntries, m.droppedBytes, m.failedRequests, m.backlog, m.lastSuccess,
			m.endpoints, m.appendFailures, m.appendDuration)
	}
	return m
}
