// Package tempoapi serves Tempo's HTTP query API over the trace store and the
// TraceQL engine, with Tempo's paths, parameters, status codes and JSON and
// protobuf shapes, so Grafana's Tempo data source works unchanged.
//
// The package registers no routes itself. Routes returns the table below;
// patterns use Go 1.22 ServeMux syntax and handlers read r.PathValue("id")
// and r.PathValue("tag"), so mount them on an http.ServeMux with exactly
// these patterns:
//
//	GET /api/traces/{id}                    TraceByID        (JSON {"batches":[...]} or protobuf tempopb.Trace by Accept)
//	GET /api/v2/traces/{id}                 TraceByIDV2      (JSON {"trace":{"resourceSpans":[...]}} or protobuf TraceByIDResponse by Accept)
//	GET /api/search                         Search           (q, tags, minDuration, maxDuration, limit, spss, start, end)
//	GET /api/search/tags                    SearchTags       ({"tagNames":[...]})
//	GET /api/v2/search/tags                 SearchTagsV2     ({"scopes":[{"name":..,"tags":[..]}]}; scope=span|resource|event|link|intrinsic|...)
//	GET /api/search/tag/{tag}/values        SearchTagValues  ({"tagValues":["..."]})
//	GET /api/v2/search/tag/{tag}/values     SearchTagValuesV2 ({"tagValues":[{"type":..,"value":..}]}; q= filters by TraceQL)
//	GET /api/metrics/query_range            MetricsQueryRange   (TraceQL metrics: q, start, end, since, step, exemplars)
//	GET /api/metrics/query                  MetricsQueryInstant (TraceQL metrics, one value per series: q, start, end, since)
//	GET /api/echo                           Echo             ("echo")
//	GET /api/status/buildinfo               BuildInfo        (Tempo-style build info JSON)
//	GET /ready                              Ready            ("ready" / 503)
//
// Tenancy (traces.multitenancy_enabled, as Tempo's multitenancy_enabled;
// ADR 0034): with Deps.MultitenancyEnabled every request but echo,
// buildinfo and ready needs X-Scope-OrgID (401 "no org id" without, 400 for
// an ID outside the documented rules) and reads only that tenant's store
// from Deps.Tenants: another tenant's trace is 404, its tags and values are
// absent. Off, every request reads the one store (tenant "fake").
//
// Query concurrency (ADR 0035): search, tag values with q= and the TraceQL
// metrics endpoints pass a tenancy.Gate (traces.search.max_concurrent_queries
// at once, max_outstanding_per_tenant waiting up to queue_timeout); the rest
// are answered 429 "job queue full" and counted in
// nxwatcher_tempoapi_queries_rejected_total{reason}.
package tempoapi

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/tenancy"
	"github.com/nx-watcher/nxwatcher/internal/traces/traceql"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore"
	"github.com/nx-watcher/nxwatcher/internal/units"
)

// Config holds the query limits; the foundation embeds it as `traces.search`.
type Config struct {
	// DefaultLimit is the number of traces /api/search returns without limit=.
	DefaultLimit int `yaml:"default_limit"`
	// MaxLimit caps limit=; larger values are clamped.
	MaxLimit int `yaml:"max_limit"`
	// DefaultSpansPerSpanSet is spss when the request does not say.
	DefaultSpansPerSpanSet int `yaml:"default_spans_per_span_set"`
	// MaxSpansPerSpanSet caps spss.
	MaxSpansPerSpanSet int `yaml:"max_spans_per_span_set"`
	// MaxSearchDuration rejects start..end windows longer than this (0 = no limit).
	MaxSearchDuration model.Duration `yaml:"max_search_duration"`
	// QueryTimeout bounds each request.
	QueryTimeout model.Duration `yaml:"query_timeout"`
	// MaxTagValues caps the values one tag-values request returns.
	MaxTagValues int `yaml:"max_tag_values"`
	// MaxInspectedTraces caps the traces one search decodes and evaluates
	// (0 = no limit); the search then answers with what it found so far.
	MaxInspectedTraces int `yaml:"max_inspected_traces"`
	// MaxInspectedBytes caps the protobuf bytes one search decodes (0 = no limit).
	MaxInspectedBytes units.Bytes `yaml:"max_inspected_bytes"`
	// MaxTraceBytes makes searches skip any one trace larger than this
	// without decoding it (0 = no limit), as Tempo's max_bytes_per_trace does.
	MaxTraceBytes units.Bytes `yaml:"max_trace_bytes"`
	// MetricsMaxDuration rejects TraceQL metrics queries over a longer
	// start..end range (0 = no limit).
	MetricsMaxDuration model.Duration `yaml:"metrics_max_duration"`
	// MetricsMaxSeries rejects TraceQL metrics queries that make more by()
	// groups than this (0 = no limit).
	MetricsMaxSeries int `yaml:"metrics_max_series"`
	// MetricsMaxExemplars caps the exemplars of one metrics answer (and the
	// exemplars= parameter); 0 turns exemplars off.
	MetricsMaxExemplars int `yaml:"metrics_max_exemplars"`
	// MaxConcurrentQueries is Tempo's querier max_concurrent_queries
	// (default 20): searches, filtered tag values and metrics queries run
	// at once. 0 = no limit.
	MaxConcurrentQueries int `yaml:"max_concurrent_queries"`
	// MaxOutstandingPerTenant is Tempo's query-frontend
	// max_outstanding_per_tenant (default 2000): queries of one tenant
	// that may wait for a slot; more are refused with 429 at once.
	MaxOutstandingPerTenant int `yaml:"max_outstanding_per_tenant"`
	// QueueTimeout is how long a query waits for a slot before 429 (ours).
	QueueTimeout model.Duration `yaml:"queue_timeout"`
}

func (c Config) gateConfig() tenancy.GateConfig {
	return tenancy.GateConfig{MaxConcurrent: c.MaxConcurrentQueries, MaxQueuedPerTenant: c.MaxOutstandingPerTenant, MaxWait: time.Duration(c.QueueTimeout)}
}

// DefaultConfig mirrors Tempo's defaults where Tempo has one.
func DefaultConfig() Config {
	return Config{
		DefaultLimit:           20,
		MaxLimit:               1000,
		DefaultSpansPerSpanSet: 3,
		MaxSpansPerSpanSet:     100,
		MaxSearchDuration:      0,
		QueryTimeout:           model.Duration(30 * time.Second),
		MaxTagValues:           1000,
		// Each ~10 s of one core at the rate bench/README.md measured (892k
		// traces, 1.8 GB decoded in ~20 s), inside query_timeout; a search's
		// seen-set of 500k trace IDs is ~25 MiB.
		MaxInspectedTraces: 500_000,
		MaxInspectedBytes:  1 << 30,
		MaxTraceBytes:      50 << 20, // the store's default max_trace_bytes at ingest
		// Tempo's query-frontend defaults: metrics queries over at most 3h,
		// up to 100 exemplars. 1000 series keeps one answer under ~10 MB at
		// 240 points per series.
		MetricsMaxDuration:      model.Duration(3 * time.Hour),
		MetricsMaxSeries:        1000,
		MetricsMaxExemplars:     100,
		MaxConcurrentQueries:    20,
		MaxOutstandingPerTenant: 2000,
		QueueTimeout:            model.Duration(30 * time.Second),
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.DefaultLimit <= 0 {
		errs = append(errs, fmt.Errorf("traces.search.default_limit must be positive, got %d", c.DefaultLimit))
	}
	if c.MaxLimit < c.DefaultLimit {
		errs = append(errs, fmt.Errorf("traces.search.max_limit (%d) must be at least default_limit (%d)", c.MaxLimit, c.DefaultLimit))
	}
	if c.DefaultSpansPerSpanSet <= 0 {
		errs = append(errs, fmt.Errorf("traces.search.default_spans_per_span_set must be positive, got %d", c.DefaultSpansPerSpanSet))
	}
	if c.MaxSpansPerSpanSet < c.DefaultSpansPerSpanSet {
		errs = append(errs, fmt.Errorf("traces.search.max_spans_per_span_set (%d) must be at least default_spans_per_span_set (%d)", c.MaxSpansPerSpanSet, c.DefaultSpansPerSpanSet))
	}
	if c.MaxSearchDuration < 0 {
		errs = append(errs, fmt.Errorf("traces.search.max_search_duration must not be negative"))
	}
	if c.QueryTimeout <= 0 {
		errs = append(errs, fmt.Errorf("traces.search.query_timeout must be positive"))
	}
	if c.MaxTagValues <= 0 {
		errs = append(errs, fmt.Errorf("traces.search.max_tag_values must be positive, got %d", c.MaxTagValues))
	}
	if c.MaxInspectedTraces < 0 {
		errs = append(errs, fmt.Errorf("traces.search.max_inspected_traces must not be negative, got %d", c.MaxInspectedTraces))
	}
	if c.MaxInspectedBytes < 0 {
		errs = append(errs, fmt.Errorf("traces.search.max_inspected_bytes must not be negative, got %d", c.MaxInspectedBytes))
	}
	if c.MaxTraceBytes < 0 {
		errs = append(errs, fmt.Errorf("traces.search.max_trace_bytes must not be negative, got %d", c.MaxTraceBytes))
	}
	if c.MetricsMaxDuration < 0 {
		errs = append(errs, fmt.Errorf("traces.search.metrics_max_duration must not be negative"))
	}
	if c.MetricsMaxSeries < 0 {
		errs = append(errs, fmt.Errorf("traces.search.metrics_max_series must not be negative, got %d", c.MetricsMaxSeries))
	}
	if c.MetricsMaxExemplars < 0 {
		errs = append(errs, fmt.Errorf("traces.search.metrics_max_exemplars must not be negative, got %d", c.MetricsMaxExemplars))
	}
	if c.MaxConcurrentQueries < 0 || c.MaxOutstandingPerTenant < 0 || c.QueueTimeout < 0 {
		errs = append(errs, fmt.Errorf("traces.search.max_concurrent_queries, max_outstanding_per_tenant and queue_timeout must not be negative (max_concurrent_queries 0 = no limit)"))
	}
	return errors.Join(errs...)
}

// Store is what the API needs from the trace store; *tracestore.DB implements it.
type Store interface {
	TraceBytesByID(ctx context.Context, id tracestore.TraceID) ([]byte, bool, error)
	Search(ctx context.Context, req tracestore.SearchRequest, fn func(tracestore.TraceID, ptrace.Traces) (bool, error)) (tracestore.SearchStats, error)
	TagNames(ctx context.Context, start, end time.Time) ([]string, error)
	TagValues(ctx context.Context, key string, start, end time.Time, limit int) ([]tracestore.TypedValue, error)
	Ready() bool
}

// BuildInfo is reported by /api/status/buildinfo. Grafana reads Version to
// pick features, so it defaults to the Tempo release we are compatible with.
type BuildInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	Branch    string `json:"branch"`
	BuildUser string `json:"buildUser"`
	BuildDate string `json:"buildDate"`
	GoVersion string `json:"goVersion"`
}

// Deps are the API's collaborators.
type Deps struct {
	// Store is the one store with tenancy off. Leave it nil and set
	// Tenants for per-tenant stores.
	Store Store
	// Tenants gives a tenant's store for reading: its own, or an empty one
	// when it never wrote. TenantStores adapts a tenancy.Set.
	Tenants func(tenant string) (Store, error)
	// MultitenancyEnabled is traces.multitenancy_enabled (Tempo's
	// multitenancy_enabled): X-Scope-OrgID required, Tenants required.
	MultitenancyEnabled bool
	Logger              *slog.Logger
	Registerer          prometheus.Registerer
	BuildInfo           BuildInfo
	// Now is the clock behind relative ranges (since=, a missing end);
	// nil means time.Now.
	Now func() time.Time
}

// TenantStores adapts a set of per-tenant trace stores to Deps.Tenants.
func TenantStores(set *tenancy.Set[*tracestore.DB]) func(tenant string) (Store, error) {
	return func(tenant string) (Store, error) {
		db, err := set.Read(tenant)
		if err != nil {
			return nil, err
		}
		return db, nil
	}
}

// API holds the handlers.
type API struct {
	cfg      Config
	store    Store
	tenants  func(string) (Store, error)
	auth     bool
	gate     *tenancy.Gate
	rejected *prometheus.CounterVec
	logger   *slog.Logger
	build    BuildInfo
	now      func() time.Time
	requests *prometheus.CounterVec
	bad      *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// truncated counts searches answered partially, by the limit reached.
	truncated *prometheus.CounterVec
	// noColumnAnswers makes /api/search decode every trace it answers
	// (tests compare both paths).
	noColumnAnswers bool
	// columnAnswered counts traces answered from columns (tests; written
	// only by the search's own goroutine).
	columnAnswered int
}

// New builds the API. It fails on an invalid config, a missing store or a
// metrics registration conflict.
func New(cfg Config, deps Deps) (*API, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("tempoapi: %w", err)
	}
	switch {
	case deps.Store == nil && deps.Tenants == nil:
		return nil, errors.New("tempoapi: no store")
	case deps.Store != nil && deps.Tenants != nil:
		return nil, errors.New("tempoapi: give Store or Tenants, not both")
	case deps.MultitenancyEnabled && deps.Tenants == nil:
		return nil, errors.New("tempoapi: traces.multitenancy_enabled needs per-tenant stores (Deps.Tenants)")
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b := deps.BuildInfo
	if b.Version == "" {
		b.Version = "2.7.1"
	}
	if b.GoVersion == "" {
		b.GoVersion = runtime.Version()
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	a := &API{cfg: cfg, store: deps.Store, tenants: deps.Tenants, auth: deps.MultitenancyEnabled, gate: tenancy.NewGate(cfg.gateConfig()),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_tempoapi_queries_rejected_total",
			Help: "Searches and metrics queries refused with 429 by the query concurrency limit, by reason: queue_full or queue_timeout.",
		}, []string{"reason"}),
		logger: logger.With("component", "tempoapi"), build: b, now: now,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_tempoapi_requests_total", Help: "Tempo API requests by handler and status code.",
		}, []string{"handler", "code"}),
		bad: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_tempoapi_bad_requests_total", Help: "Tempo API requests rejected as invalid, by handler.",
		}, []string{"handler"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "nxwatcher_tempoapi_request_duration_seconds", Help: "Tempo API request latency by handler.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}, []string{"handler"}),
	}
	a.truncated = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nxwatcher_tempoapi_search_truncated_total",
		Help: "Searches answered with partial results because a limit was reached (max_inspected_traces, max_inspected_bytes, query_timeout).",
	}, []string{"limit"})
	for _, l := range []string{tracestore.TruncatedMaxTraces, tracestore.TruncatedMaxBytes, truncatedTimeout} {
		a.truncated.WithLabelValues(l)
	}
	a.rejected.WithLabelValues("queue_full")
	a.rejected.WithLabelValues("queue_timeout")
	if deps.Registerer != nil {
		for _, c := range []prometheus.Collector{a.requests, a.bad, a.duration, a.truncated, a.rejected} {
			if err := deps.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("tempoapi: register metrics: %w", err)
			}
		}
	}
	return a, nil
}

// Route is one entry of the route table.
type Route struct {
	Method  string
	Path    string // Go 1.22 ServeMux pattern without the method
	Handler http.HandlerFunc
}

// Routes returns the route table documented in the package comment.
func (a *API) Routes() []Route {
	return []Route{
		{http.MethodGet, "/api/traces/{id}", a.TraceByID},
		{http.MethodGet, "/api/v2/traces/{id}", a.TraceByIDV2},
		{http.MethodGet, "/api/search", a.Search},
		{http.MethodGet, "/api/search/tags", a.SearchTags},
		{http.MethodGet, "/api/v2/search/tags", a.SearchTagsV2},
		{http.MethodGet, "/api/search/tag/{tag}/values", a.SearchTagValues},
		{http.MethodGet, "/api/v2/search/tag/{tag}/values", a.SearchTagValuesV2},
		{http.MethodGet, "/api/metrics/query_range", a.MetricsQueryRange},
		{http.MethodGet, "/api/metrics/query", a.MetricsQueryInstant},
		{http.MethodGet, "/api/echo", a.Echo},
		{http.MethodGet, "/api/status/buildinfo", a.BuildInfo},
		{http.MethodGet, "/ready", a.Ready},
	}
}

// statusWriter records the status for metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (a *API) instrument(name string, w http.ResponseWriter, fn func(w http.ResponseWriter)) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	fn(sw)
	a.requests.WithLabelValues(name, strconv.Itoa(sw.code)).Inc()
	a.duration.WithLabelValues(name).Observe(time.Since(start).Seconds())
}

func (a *API) badRequest(name string, w http.ResponseWriter, format string, args ...any) {
	a.bad.WithLabelValues(name).Inc()
	http.Error(w, fmt.Sprintf(format, args...), http.StatusBadRequest)
}

func (a *API) serverError(name string, w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.DeadlineExceeded) {
		http.Error(w, "query timed out", http.StatusGatewayTimeout)
		return
	}
	if errors.Is(err, context.Canceled) || r.Context().Err() != nil {
		// Tempo and Prometheus use 499 for a client that went away.
		w.WriteHeader(499)
		return
	}
	a.logger.Error("query failed", "handler", name, "err", err)
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// ParseTraceID accepts 1 to 32 hex digits; shorter IDs are zero-padded on
// the left as Tempo does for 64-bit IDs.
func ParseTraceID(s string) (pcommon.TraceID, error) {
	var id pcommon.TraceID
	if len(s) == 0 || len(s) > 32 {
		return id, fmt.Errorf("invalid trace id %q: want 1 to 32 hex digits", s)
	}
	padded := strings.Repeat("0", 32-len(s)) + s
	b, err := hex.DecodeString(padded)
	if err != nil {
		return id, fmt.Errorf("invalid trace id %q: not hex", s)
	}
	copy(id[:], b)
	return id, nil
}

func wantsProtobuf(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/protobuf")
}

// storeFor resolves the request's tenant and its store, answering 401,
// 400 or 500 itself when it cannot.
func (a *API) storeFor(name string, w http.ResponseWriter, r *http.Request) (Store, string, bool) {
	tenant, err := tenancy.FromHTTP(r, a.auth)
	if err != nil {
		if tenancy.Status(err) == http.StatusBadRequest {
			a.bad.WithLabelValues(name).Inc()
		}
		http.Error(w, err.Error(), tenancy.Status(err))
		return nil, "", false
	}
	if a.tenants == nil {
		return a.store, tenant, true
	}
	st, err := a.tenants(tenant)
	if err != nil {
		a.logger.Error("open trace store", "tenant", tenant, "err", err)
		http.Error(w, fmt.Sprintf("open trace store of tenant %s: %v", tenant, err), http.StatusInternalServerError)
		return nil, "", false
	}
	return st, tenant, true
}

// enter takes a query slot for tenant, answering 429 itself when none
// frees up in time.
func (a *API) enter(w http.ResponseWriter, r *http.Request, tenant string) (func(), bool) {
	release, err := a.gate.Enter(r.Context(), tenant)
	if err == nil {
		return release, true
	}
	if !tenancy.Refused(err) {
		w.WriteHeader(499) // the client went away while waiting
		return nil, false
	}
	reason := "queue_full"
	if errors.Is(err, tenancy.ErrQueueTimeout) {
		reason = "queue_timeout"
	}
	a.rejected.WithLabelValues(reason).Inc()
	// Tempo's words for a full queue, with ours on why.
	http.Error(w, "job queue full: "+err.Error(), http.StatusTooManyRequests)
	return nil, false
}

func (a *API) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), time.Duration(a.cfg.QueryTimeout))
}

// TraceByID serves GET /api/traces/{id}.
func (a *API) TraceByID(w http.ResponseWriter, r *http.Request) {
	a.instrument("trace_by_id", w, func(w http.ResponseWriter) { a.traceByID("trace_by_id", w, r, false) })
}

// TraceByIDV2 serves GET /api/v2/traces/{id}.
func (a *API) TraceByIDV2(w http.ResponseWriter, r *http.Request) {
	a.instrument("trace_by_id_v2", w, func(w http.ResponseWriter) { a.traceByID("trace_by_id_v2", w, r, true) })
}

func (a *API) traceByID(name string, w http.ResponseWriter, r *http.Request, v2 bool) {
	id, err := ParseTraceID(r.PathValue("id"))
	if err != nil {
		a.badRequest(name, w, "%v", err)
		return
	}
	if _, _, err := parseRange(r); err != nil {
		a.badRequest(name, w, "%v", err)
		return
	}
	store, _, ok := a.storeFor(name, w, r)
	if !ok {
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	data, found, err := store.TraceBytesByID(ctx, id)
	if err != nil {
		a.serverError(name, w, r, err)
		return
	}
	if !found {
		http.Error(w, "trace not found", http.StatusNotFound)
		return
	}
	if wantsProtobuf(r) {
		w.Header().Set("Content-Type", "application/protobuf")
		if v2 {
			// TraceByIDResponse{trace = 1}: a length-delimited field around tempopb.Trace.
			hdr := binary.AppendUvarint([]byte{0x0a}, uint64(len(data)))
			_, _ = w.Write(hdr)
		}
		_, _ = w.Write(data) // tempopb.Trace and OTLP TracesData share field 1
		return
	}
	var u ptrace.ProtoUnmarshaler
	td, err := u.UnmarshalTraces(data)
	if err != nil {
		a.serverError(name, w, r, fmt.Errorf("decode stored trace: %w", err))
		return
	}
	var b []byte
	if v2 {
		b = append(b, `{"trace":`...)
		b = appendTraceJSONAs(b, td, "resourceSpans")
		b = append(b, '}')
	} else {
		b = appendTraceJSON(b, td)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// parseRange reads start and end (Unix seconds); zero means open.
func parseRange(r *http.Request) (time.Time, time.Time, error) {
	var start, end time.Time
	q := r.URL.Query()
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"start", &start}, {"end", &end}} {
		s := q.Get(p.name)
		if s == "" {
			continue
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			return start, end, fmt.Errorf("invalid %s %q: want Unix seconds", p.name, s)
		}
		*p.dst = time.Unix(v, 0)
	}
	if !start.IsZero() && !end.IsZero() && end.Before(start) {
		return start, end, fmt.Errorf("invalid range: end %d before start %d", end.Unix(), start.Unix())
	}
	return start, end, nil
}

// Echo serves GET /api/echo; Grafana calls it to test the data source.
func (a *API) Echo(w http.ResponseWriter, r *http.Request) {
	a.instrument("echo", w, func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("echo"))
	})
}

// BuildInfo serves GET /api/status/buildinfo.
func (a *API) BuildInfo(w http.ResponseWriter, r *http.Request) {
	a.instrument("buildinfo", w, func(w http.ResponseWriter) { writeJSON(w, a.build) })
}

// Ready serves GET /ready: 200 "ready" once the store is open, else 503.
func (a *API) Ready(w http.ResponseWriter, r *http.Request) {
	a.instrument("ready", w, func(w http.ResponseWriter) {
		st := a.store
		if a.tenants != nil {
			var err error
			if st, err = a.tenants(tenancy.Default); err != nil {
				http.Error(w, "trace store not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		if !st.Ready() {
			http.Error(w, "trace store not ready", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ready"))
	})
}

// tagNames holds attribute names by scope, from the store's posting keys.
type tagNames struct{ span, resource, event, link []string }

// tagNameLists splits posting keys into span, resource, event and link
// attribute names (intrinsics are listed separately).
func tagNameLists(keys []string) tagNames {
	var n tagNames
	for _, k := range keys {
		switch scope, name := tracestore.SplitTagKey(k); scope {
		case "span":
			n.span = append(n.span, name)
		case "resource":
			n.resource = append(n.resource, name)
		case "event":
			n.event = append(n.event, name)
		case "link":
			n.link = append(n.link, name)
		}
	}
	return n
}

// SearchTags serves GET /api/search/tags (v1: attribute names without
// their scope; scope= narrows them to one scope as in v2).
func (a *API) SearchTags(w http.ResponseWriter, r *http.Request) {
	const name = "search_tags"
	a.instrument(name, w, func(w http.ResponseWriter) {
		start, end, err := parseRange(r)
		if err != nil {
			a.badRequest(name, w, "%v", err)
			return
		}
		scope := r.URL.Query().Get("scope")
		switch scope {
		case "", "none", "all", "span", "resource", "intrinsic", "event", "link", "instrumentation":
		default:
			a.badRequest(name, w, "invalid scope %q: want span, resource, event, link, instrumentation, intrinsic or none", scope)
			return
		}
		store, _, ok := a.storeFor(name, w, r)
		if !ok {
			return
		}
		ctx, cancel := a.ctx(r)
		defer cancel()
		keys, err := store.TagNames(ctx, start, end)
		if err != nil {
			a.serverError(name, w, r, err)
			return
		}
		n := tagNameLists(keys)
		var names []string
		switch scope {
		case "", "all", "none":
			names = slices.Concat(n.span, n.resource, n.event, n.link)
		case "span":
			names = n.span
		case "resource":
			names = n.resource
		case "event":
			names = n.event
		case "link":
			names = n.link
		case "intrinsic":
			names = traceql.Intrinsics()
		}
		names = slices.Clone(names)
		slices.Sort(names)
		names = slices.Compact(names)
		if names == nil {
			names = []string{}
		}
		writeJSON(w, map[string]any{"tagNames": names})
	})
}

type tagScope struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// SearchTagsV2 serves GET /api/v2/search/tags?scope=span|resource|event|link|intrinsic|instrumentation|none.
// Without a scope every scope is listed: span, resource and intrinsic
// always, event, link and instrumentation when some span has them.
func (a *API) SearchTagsV2(w http.ResponseWriter, r *http.Request) {
	const name = "search_tags_v2"
	a.instrument(name, w, func(w http.ResponseWriter) {
		start, end, err := parseRange(r)
		if err != nil {
			a.badRequest(name, w, "%v", err)
			return
		}
		scope := r.URL.Query().Get("scope")
		switch scope {
		case "", "none", "all", "span", "resource", "intrinsic", "event", "link", "instrumentation":
		default:
			a.badRequest(name, w, "invalid scope %q: want span, resource, event, link, instrumentation, intrinsic or none", scope)
			return
		}
		store, _, ok := a.storeFor(name, w, r)
		if !ok {
			return
		}
		ctx, cancel := a.ctx(r)
		defer cancel()
		keys, err := store.TagNames(ctx, start, end)
		if err != nil {
			a.serverError(name, w, r, err)
			return
		}
		n := tagNameLists(keys)
		nonNil := func(s []string) []string {
			if s == nil {
				return []string{}
			}
			return s
		}
		// Instrumentation scope attributes are not indexed: that scope is
		// listed (empty) only when asked for.
		all := []tagScope{{"span", nonNil(n.span)}, {"resource", nonNil(n.resource)}, {"event", nonNil(n.event)},
			{"link", nonNil(n.link)}, {"instrumentation", []string{}}, {"intrinsic", traceql.Intrinsics()}}
		var out []tagScope
		for _, s := range all {
			switch {
			case scope == s.Name:
			case scope != "" && scope != "none" && scope != "all":
				continue
			case len(s.Tags) == 0 && (s.Name == "event" || s.Name == "link" || s.Name == "instrumentation"):
				continue
			}
			out = append(out, s)
		}
		writeJSON(w, map[string]any{"scopes": out})
	})
}

// SearchTagValues serves GET /api/search/tag/{tag}/values (v1: unscoped name).
func (a *API) SearchTagValues(w http.ResponseWriter, r *http.Request) {
	const name = "search_tag_values"
	a.instrument(name, w, func(w http.ResponseWriter) {
		tag := r.PathValue("tag")
		if tag == "" {
			a.badRequest(name, w, "tag name missing")
			return
		}
		start, end, err := parseRange(r)
		if err != nil {
			a.badRequest(name, w, "%v", err)
			return
		}
		store, _, ok := a.storeFor(name, w, r)
		if !ok {
			return
		}
		keys := []string{"span." + tag, "resource." + tag, "event." + tag, "link." + tag}
		switch tag {
		case "name", "status", "kind":
			keys = []string{tag}
		}
		vals, err := a.tagValues(store, r, keys, start, end)
		if err != nil {
			a.serverError(name, w, r, err)
			return
		}
		out := make([]string, 0, len(vals))
		for _, v := range vals {
			out = append(out, v.Value)
		}
		slices.Sort(out)
		writeJSON(w, map[string]any{"tagValues": slices.Compact(out)})
	})
}

// SearchTagValuesV2 serves GET /api/v2/search/tag/{tag}/values with a
// TraceQL attribute such as resource.service.name, .http.method or status.
func (a *API) SearchTagValuesV2(w http.ResponseWriter, r *http.Request) {
	const name = "search_tag_values_v2"
	a.instrument(name, w, func(w http.ResponseWriter) {
		tag := r.PathValue("tag")
		attr, err := traceql.ParseAttribute(tag)
		if err != nil {
			a.badRequest(name, w, "invalid tag %q: %v", tag, err)
			return
		}
		start, end, err := parseRange(r)
		if err != nil {
			a.badRequest(name, w, "%v", err)
			return
		}
		store, tenant, ok := a.storeFor(name, w, r)
		if !ok {
			return
		}
		filter := tagValuesFilter(r.URL.Query().Get("q"))
		keys := traceql.PostingKeys(attr)
		if keys == nil {
			writeJSON(w, map[string]any{"tagValues": []any{}})
			return
		}
		var vals []tracestore.TypedValue
		if filter != nil {
			release, ok := a.enter(w, r, tenant)
			if !ok {
				return
			}
			vals, err = a.filteredTagValues(store, r, attr, filter, start, end)
			release()
		} else {
			vals, err = a.tagValues(store, r, keys, start, end)
		}
		if err != nil {
			a.serverError(name, w, r, err)
			return
		}
		type tv struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		}
		out := make([]tv, 0, len(vals))
		for _, v := range vals {
			out = append(out, tv{v.Type, v.Value})
		}
		writeJSON(w, map[string]any{"tagValues": out})
	})
}

func (a *API) tagValues(store Store, r *http.Request, keys []string, start, end time.Time) ([]tracestore.TypedValue, error) {
	ctx, cancel := a.ctx(r)
	defer cancel()
	seen := map[tracestore.TypedValue]bool{}
	var out []tracestore.TypedValue
	for _, k := range keys {
		vals, err := store.TagValues(ctx, k, start, end, a.cfg.MaxTagValues)
		if err != nil {
			return nil, err
		}
		for _, v := range vals {
			if !seen[v] && len(out) < a.cfg.MaxTagValues {
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	return out, nil
}

// tagValuesFilter turns the q= of a tag values request into the query whose
// matching spans the values come from, nil for none. Grafana's TraceQL
// editor sends the query being typed ("{ resource.service.name = \"a\" &&
// span.http.method = "), so a q that does not parse is not an error: like
// Tempo, keep the conditions of its first spanset filter that parse on
// their own, joined with &&, and drop the rest; none left means unfiltered.
func tagValuesFilter(q string) *traceql.Query {
	if strings.TrimSpace(q) == "" {
		return nil
	}
	query, err := traceql.Parse(q)
	if err != nil {
		body := q
		if i := strings.Index(body, "{"); i >= 0 {
			body = body[i+1:]
		}
		if i := strings.Index(body, "}"); i >= 0 {
			body = body[:i]
		}
		var conds []string
		for _, part := range strings.Split(body, "&&") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			if _, err := traceql.Parse("{ " + part + " }"); err == nil {
				conds = append(conds, part)
			}
		}
		if len(conds) == 0 {
			return nil
		}
		if query, err = traceql.Parse("{ " + strings.Join(conds, " && ") + " }"); err != nil {
			return nil
		}
	}
	if query.MatchesAll() {
		return nil // `{}`: Grafana's unfiltered form
	}
	return query
}

// filteredTagValues answers a tag values request with q=: the values attr
// takes on the spans that q matches (Grafana sends the other filters of its
// search form as q, so each drop-down offers only values that still find
// something). It searches the traces q's hints select, within the search
// limits, and stops at max_tag_values distinct values.
func (a *API) filteredTagValues(store Store, r *http.Request, attr *traceql.Attribute, q *traceql.Query, start, end time.Time) ([]tracestore.TypedValue, error) {
	ctx, cancel := a.ctx(r)
	defer cancel()
	seen := map[tracestore.TypedValue]bool{}
	var out []tracestore.TypedValue
	req := tracestore.SearchRequest{Start: start, End: end, Conds: hintsToConds(q.Hints()),
		Limits: tracestore.SearchLimits{
			MaxTraces:     a.cfg.MaxInspectedTraces,
			MaxBytes:      int64(a.cfg.MaxInspectedBytes),
			MaxTraceBytes: int64(a.cfg.MaxTraceBytes),
		}}
	_, err := store.Search(ctx, req, func(_ tracestore.TraceID, td ptrace.Traces) (bool, error) {
		tr := traceql.NewTraceFor(q, td)
		for _, ss := range q.Eval(tr) {
			for _, i := range ss.Spans {
				for _, v := range attr.Values(tr, i) {
					tv, ok := typedValue(v)
					if !ok || seen[tv] {
						continue
					}
					seen[tv] = true
					out = append(out, tv)
					if len(out) >= a.cfg.MaxTagValues {
						return false, nil
					}
				}
			}
		}
		return true, nil
	})
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return nil, err
	}
	slices.SortFunc(out, func(x, y tracestore.TypedValue) int {
		if c := strings.Compare(x.Type, y.Type); c != 0 {
			return c
		}
		return strings.Compare(x.Value, y.Value)
	})
	return out, nil
}

// typedValue spells a TraceQL value as the tag values API types it.
func typedValue(v traceql.Static) (tracestore.TypedValue, bool) {
	switch v.Kind {
	case traceql.KindString:
		return tracestore.TypedValue{Type: "string", Value: v.S}, true
	case traceql.KindInt:
		return tracestore.TypedValue{Type: "int", Value: strconv.FormatInt(v.I, 10)}, true
	case traceql.KindFloat:
		return tracestore.TypedValue{Type: "float", Value: strconv.FormatFloat(v.F, 'g', -1, 64)}, true
	case traceql.KindBool:
		return tracestore.TypedValue{Type: "bool", Value: strconv.FormatBool(v.B)}, true
	case traceql.KindStatus, traceql.KindSpanKind:
		return tracestore.TypedValue{Type: "keyword", Value: v.Text()}, true
	}
	return tracestore.TypedValue{}, false
}
