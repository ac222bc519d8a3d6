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
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/backlog"
	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
	"github.com/nx-watcher/nxwatcher/internal/version"
)

// Stream is a batch of accepted entries of one stream.
type Stream struct {
	Labels  labels.Labels
	Entries []logstore.Entry
}

// Deps are what the forwarder takes from the composition root.
type Deps struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Forwarder holds one backlog and sender per endpoint.
type Forwarder struct {
	endpoints []*endpoint
	m         *metrics
	logger    *slog.Logger
}

type endpoint struct {
	cfg     EndpointConfig
	name    string
	client  *http.Client
	backlog *backlog.Backlog
	logger  *slog.Logger
	m       *metrics
	sleep   func(context.Context, time.Duration) bool
}

// Open opens (or recovers) the backlog of every endpoint under dir.
func Open(dir string, cfgs []EndpointConfig, deps Deps) (*Forwarder, error) {
	f := &Forwarder{m: newMetrics(deps.Registerer), logger: deps.Logger.With("component", "logs-forward")}
	seen := map[string]bool{}
	for i, cfg := range cfgs {
		cfg.SetDefaults()
		if err := cfg.Validate(); err != nil {
			f.Close()
			return nil, fmt.Errorf("logs.forward[%d]: %w", i, err)
		}
		name := cfg.name()
		if seen[name] {
			f.Close()
			return nil, fmt.Errorf("logs.forward[%d]: two endpoints named %q: set name", i, name)
		}
		seen[name] = true
		hc, err := commoncfg.NewClientFromConfig(cfg.HTTPClientConfig, "logs-forward", commoncfg.WithUserAgent("nxwatcher/"+version.Version))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("logs.forward[%d]: %w", i, err)
		}
		hc.Timeout = time.Duration(cfg.Timeout)
		b, err := backlog.Open(filepath.Join(dir, dirName(name)), int64(cfg.SegmentSize), int64(cfg.MaxBacklog))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("logs.forward[%d] %s: %w", i, name, err)
		}
		e := &endpoint{cfg: cfg, name: name, client: hc, backlog: b, m: f.m, logger: f.logger.With("endpoint", name), sleep: backlog.SleepCtx}
		f.endpoints = append(f.endpoints, e)
		f.m.backlog.WithLabelValues(name).Set(float64(b.PendingBytes()))
	}
	return f, nil
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func dirName(name string) string { return unsafeChars.ReplaceAllString(name, "_") }

// Append writes the streams to every endpoint's backlog. When it returns
// nil they will be pushed, even across a crash of the process.
func (f *Forwarder) Append(streams []Stream) error {
	if f == nil || len(f.endpoints) == 0 {
		return nil
	}
	body, entries := encode(streams)
	if entries == 0 {
		return nil
	}
	rec := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(rec, uint32(entries))
	copy(rec[4:], body)
	var errs []error
	for _, e := range f.endpoints {
		if err := e.backlog.Append(rec); err != nil {
			errs = append(errs, fmt.Errorf("forward to %s: %w", e.name, err))
			continue
		}
		f.m.entries.WithLabelValues(e.name).Add(float64(entries))
		if d := e.backlog.TakeDropped(); d > 0 {
			f.m.droppedBytes.WithLabelValues(e.name, "backlog_full").Add(float64(d))
		}
	}
	return errors.Join(errs...)
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

// Run pushes every endpoint's backlog until ctx ends.
func (f *Forwarder) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, e := range f.endpoints {
		wg.Add(1)
		go func() { defer wg.Done(); e.run(ctx) }()
	}
	wg.Wait()
	return nil
}

// Close syncs and closes the backlogs; call it after Run returned.
func (f *Forwarder) Close() error {
	var errs []error
	for _, e := range f.endpoints {
		errs = append(errs, e.backlog.Close())
	}
	return errors.Join(errs...)
}

func (e *endpoint) run(ctx context.Context) {
	e.backlog.Drain(ctx, backlog.Sender{
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
	entries := float64(binary.BigEndian.Uint32(rec[:4]))
	body := rec[4:]
	backoff := time.Duration(e.cfg.MinBackoff)
	for {
		status, err := e.post(ctx, body)
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

func (e *endpoint) post(ctx context.Context, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	for k, v := range e.cfg.Headers {
		req.Header.Set(k, v)
	}
	if e.cfg.TenantID != "" {
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
			Help: "Backlog bytes dropped unsent: backlog_full (over max_backlog) or corrupt."}, []string{"endpoint", "reason"}),
		failedRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nxwatcher_logs_forward_failed_requests_total",
			Help: "Pushes that failed and will be retried, by status code or error."}, []string{"endpoint", "code"}),
		backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nxwatcher_logs_forward_backlog_bytes",
			Help: "Backlog bytes not yet acknowledged by the endpoint."}, []string{"endpoint"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nxwatcher_logs_forward_last_success_timestamp_seconds",
			Help: "When the endpoint last acknowledged a push."}, []string{"endpoint"}),
	}
	if reg != nil {
		reg.MustRegister(m.entries, m.sentEntries, m.sentBytes, m.droppedEntries, m.droppedBytes, m.failedRequests, m.backlog, m.lastSuccess)
	}
	return m
}
