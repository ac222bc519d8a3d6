// Package lokiapi serves Loki's HTTP API over logstore and logql: push
// (protobuf+snappy, JSON, gzip), OTLP logs, queries, labels, series, index
// stats and volume, what Grafana's Logs Drilldown asks (detected labels,
// fields and field values, patterns), and tail over WebSocket. Pushes get
// Loki 3's discovered labels (service_name, detected_level); log queries
// sent with X-Loki-Response-Encoding-Flags: categorize-labels answer in
// Loki's categorised encoding.
//
// The package registers no routes itself. Routes returns the table the
// server mounts; paths use net/http patterns ({name} is a path value):
//
//	POST      /loki/api/v1/push                 Push
//	POST      /otlp/v1/logs                     OTLPLogs (also mount on the OTLP port at /v1/logs)
//	GET, POST /loki/api/v1/query                Query
//	GET, POST /loki/api/v1/query_range          QueryRange
//	GET, POST /loki/api/v1/labels               Labels
//	GET, POST /loki/api/v1/label/{name}/values  LabelValues
//	GET, POST /loki/api/v1/series               Series
//	GET, POST /loki/api/v1/index/stats          IndexStats
//	GET, POST /loki/api/v1/index/volume         IndexVolume
//	GET, POST /loki/api/v1/index/volume_range   IndexVolumeRange
//	GET, POST /loki/api/v1/format_query         FormatQuery
//	GET, POST /loki/api/v1/detected_labels      DetectedLabels
//	GET, POST /loki/api/v1/detected_fields      DetectedFields
//	GET, POST /loki/api/v1/detected_field/{name}/values  DetectedFieldValues
//	GET, POST /loki/api/v1/patterns             Patterns
//	GET       /loki/api/v1/status/buildinfo     BuildInfo
//	GET       /loki/api/v1/tail                 Tail (WebSocket)
//	GET       /ready                            ReadyHandler
//
// Tenancy (logs.auth_enabled, as Loki's auth_enabled; ADR 0034): off, every
// request is tenant "fake" and Deps.Store (or Deps.Tenants("fake")) serves
// it. On, every request but buildinfo, format_query and /ready needs
// X-Scope-OrgID (401 "no org id" without, 400 for an ID outside Loki's
// rules), and Deps.Tenants gives each tenant its own store: a tenant never
// sees another's streams, labels, series or tails.
//
// Query concurrency (logs.querier, ADR 0035): query, query_range, labels,
// label values, series, index stats and volume, detected_* and patterns
// pass a tenancy.Gate: max_concurrent at once, then up to
// max_outstanding_per_tenant of a tenant wait up to queue_timeout; the rest
// get 429 "too many outstanding requests" and count in
// nxwatcher_logs_queries_rejected_total{reason}.
//
// Forward-only (ADR 0036): with Deps.Store and Deps.Tenants nil and
// Deps.Forward set, the node keeps no logs. Routes stays the same: push
// (Loki and OTLP) validates what it can without a store (labels, line size,
// timestamps, metadata, ingestion rate) and hands accepted streams to
// Forward; every read endpoint and tail answers 400 saying the node is
// forward-only.
package lokiapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"golang.org/x/time/rate"

	"github.com/nx-watcher/nxwatcher/internal/logs/logql"
	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
	"github.com/nx-watcher/nxwatcher/internal/tenancy"
)

// Store is what the API needs from the log store; *logstore.DB implements it.
type Store interface {
	logql.Storage
	Appender() *logstore.Appender
	Ready() bool
	SetLimits(logstore.Limits)
}

// Deps are the API's collaborators.
type Deps struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Store is the one store when tenancy is off. Leave it nil and set
	// Tenants for per-tenant stores (required with auth_enabled), or leave
	// both nil with Forward set for a forward-only node.
	Store Store
	// Tenants gives a tenant's store: write true for a push (opened and
	// created on first use), false for a query (a shared empty store when
	// the tenant never wrote). TenantStores adapts a tenancy.Set.
	Tenants func(tenant string, write bool) (Store, error)
	// Now is the clock, for tests; defaults to time.Now.
	Now func() time.Time
	// Version is reported by /loki/api/v1/status/buildinfo.
	Version string
	// Forward, when set, gets every stream of a push the limits accepted,
	// once the store has committed it (logs.forward). A retry's lines the
	// store already held are passed again: forwarding is at least once.
	// An error answers the push 503, so the sender retries.
	Forward func([]AcceptedStream) error
}

// AcceptedStream is one stream's entries of a push that passed the limits.
type AcceptedStream struct {
	// Tenant is the push's tenant ("fake" with tenancy off); a forwarder
	// sends it on as X-Scope-OrgID.
	Tenant  string
	Labels  labels.Labels
	Entries []logstore.Entry
}

// Route is one entry of the route table.
type Route struct {
	Method  string
	Path    string
	Handler http.HandlerFunc
}

// TenantStores adapts a set of per-tenant log stores to Deps.Tenants.
func TenantStores(set *tenancy.Set[*logstore.DB]) func(tenant string, write bool) (Store, error) {
	return func(tenant string, write bool) (Store, error) {
		get := set.Read
		if write {
			get = set.Get
		}
		db, err := get(tenant)
		if err != nil {
			return nil, err
		}
		return db, nil
	}
}

// API serves the Loki HTTP API.
type API struct {
	store   Store // the one store, or nil
	tenants func(string, bool) (Store, error)
	auth    bool // logs.auth_enabled, fixed at New
	forward func([]AcceptedStream) error
	version string
	logger  *slog.Logger
	now     func() time.Time
	m       *apiMetrics
	limits  atomic.Pointer[Limits]
	engine  atomic.Pointer[logql.Engine]
	// limiters (one per tenant, as Loki's ingestion_rate_mb is per
	// tenant) are replaced, full, whenever the rate or burst changes: a
	// limiter adjusted in place keeps its (possibly empty) bucket, and
	// rate.Limiter's SetLimit/SetBurst read the wall clock while pushes use
	// the injected one. Only a.now drives them.
	limiters  atomic.Pointer[tenantLimiters]
	limiterMu sync.Mutex
	gate      atomic.Pointer[tenancy.Gate]
	// limited records the *Limits last given to each per-tenant store.
	limited sync.Map // Store → *Limits

	labelCacheMu sync.Mutex
	labelCache   map[string]cachedLabels

	tails   tailSet
	tailWG  sync.WaitGroup
	closing chan struct{}
	closeMu sync.Once
}

// New builds the API. cfg must have passed Validate.
func New(cfg Config, deps Deps) (*API, error) {
	switch {
	case deps.Store == nil && deps.Tenants == nil && deps.Forward == nil:
		return nil, errors.New("new loki api: no store, no per-tenant stores and no forwarder")
	case deps.Store != nil && deps.Tenants != nil:
		return nil, errors.New("new loki api: give Store or Tenants, not both")
	case cfg.AuthEnabled && deps.Store != nil:
		return nil, errors.New("new loki api: logs.auth_enabled needs per-tenant stores (Deps.Tenants), not one Store")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	a := &API{
		store:      deps.Store,
		tenants:    deps.Tenants,
		auth:       cfg.AuthEnabled,
		forward:    deps.Forward,
		version:    deps.Version,
		logger:     deps.Logger.With("component", "lokiapi"),
		now:        deps.Now,
		labelCache: map[string]cachedLabels{},
		closing:    make(chan struct{}),
		tails:      tailSet{m: map[*tailer]struct{}{}},
	}
	m, err := newAPIMetrics(deps.Registerer)
	if err != nil {
		return nil, fmt.Errorf("new loki api: %w", err)
	}
	a.m = m
	if err := a.ApplyConfig(cfg); err != nil {
		return nil, err
	}
	return a, nil
}

// ApplyConfig re-applies the limits (on reload). Storage settings that need
// a reopen (WAL, retention) are read by the store only at Open.
func (a *API) ApplyConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("apply logs config: %w", err)
	}
	// logs.auth_enabled stays as started: the stores were opened for it.
	// A reload that changes it succeeds for its other keys; the app warns
	// that the key is restart-only (internal/app/restartonly.go).
	l := cfg.Limits
	a.limits.Store(&l)
	a.engine.Store(logql.NewEngine(l.engineOpts()))
	a.setRate(l.IngestionRateMB, l.IngestionBurstSizeMB)
	if gc := cfg.Querier.gateConfig(); a.gate.Load() == nil || a.gate.Load().Config() != gc {
		a.gate.Store(tenancy.NewGate(gc))
	}
	if a.store != nil {
		a.store.SetLimits(l.storeLimits())
	}
	// Per-tenant stores get the new limits when next used (storeFor).
	return nil
}

// errForwardOnly answers reads on a node that keeps no logs.
var errForwardOnly = &httpError{status: http.StatusBadRequest, msg: "this node is forward-only (logs.forward without a local log store): it accepts pushes and answers no queries; query the Loki it forwards to"}

// httpError is an error with the status to answer it with.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// tenantOf reads the request's tenant: "fake" with tenancy off; with it
// on, X-Scope-OrgID, required and valid.
func (a *API) tenantOf(r *http.Request) (string, error) {
	t, err := tenancy.FromHTTP(r, a.auth)
	if err != nil {
		return "", &httpError{status: tenancy.Status(err), msg: err.Error()}
	}
	return t, nil
}

// storeFor is tenant's store: for a push (write) opened on first use; for
// a query the tenant's, or an empty one when it never wrote. nil, nil on
// a forward-only node.
func (a *API) storeFor(tenant string, write bool) (Store, error) {
	if a.tenants == nil {
		return a.store, nil
	}
	st, err := a.tenants(tenant, write)
	if err != nil {
		return nil, fmt.Errorf("open log store of tenant %s: %w", tenant, err)
	}
	if lim := a.limits.Load(); lim != nil {
		if prev, ok := a.limited.Load(st); !ok || prev.(*Limits) != lim {
			st.SetLimits(lim.storeLimits())
			a.limited.Store(st, lim)
		}
	}
	return st, nil
}

// readStore is storeFor(tenant, false), refusing on a forward-only node.
func (a *API) readStore(tenant string) (Store, error) {
	st, err := a.storeFor(tenant, false)
	if err == nil && st == nil {
		return nil, errForwardOnly
	}
	return st, err
}

// setRate installs a new, full limiter when the rate or burst changed, so a
// fresh server (or a reload that raises the limit) accepts a whole burst at
// once, as Loki's distributor does. An unchanged limit keeps the limiter and
// its bucket, so a reload does not refill it.
func (a *API) setRate(rateMB, burstMB float64) {
	limit, burst := rate.Inf, 0
	if rateMB > 0 {
		limit, burst = rate.Limit(rateMB*(1<<20)), int(burstMB*(1<<20))
	}
	a.limiterMu.Lock()
	defer a.limiterMu.Unlock()
	if cur := a.limiters.Load(); cur != nil && cur.limit == limit && cur.burst == burst {
		return
	}
	a.limiters.Store(&tenantLimiters{limit: limit, burst: burst, m: map[string]*rate.Limiter{}})
}

// tenantLimiters are the ingestion rate limiters of one rate and burst,
// one per tenant, each full when first used.
type tenantLimiters struct {
	limit rate.Limit
	burst int
	mu    sync.Mutex
	m     map[string]*rate.Limiter
}

func (t *tenantLimiters) get(tenant string) *rate.Limiter {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.m[tenant]
	if l == nil {
		l = rate.NewLimiter(t.limit, t.burst)
		t.m[tenant] = l
	}
	return l
}

// Ready reports whether the store is open and serving (the "fake"
// tenant's with per-tenant stores; always on a forward-only node).
func (a *API) Ready() bool {
	st, err := a.storeFor(tenancy.Default, false)
	if err != nil {
		return false
	}
	return st == nil || st.Ready()
}

// Close ends running tails and waits for them.
func (a *API) Close() error {
	a.closeMu.Do(func() { close(a.closing) })
	a.tailWG.Wait()
	return nil
}

// Routes is the route table documented in the package comment.
func (a *API) Routes() []Route {
	var rs []Route
	both := func(path string, h http.HandlerFunc) {
		rs = append(rs, Route{http.MethodGet, path, h}, Route{http.MethodPost, path, h})
	}
	rs = append(rs, Route{http.MethodPost, "/loki/api/v1/push", a.Push})
	rs = append(rs, Route{http.MethodPost, "/otlp/v1/logs", a.OTLPLogs})
	both("/loki/api/v1/query", a.Query)
	both("/loki/api/v1/query_range", a.QueryRange)
	both("/loki/api/v1/labels", a.Labels)
	both("/loki/api/v1/label/{name}/values", a.LabelValues)
	both("/loki/api/v1/series", a.Series)
	both("/loki/api/v1/index/stats", a.IndexStats)
	both("/loki/api/v1/index/volume", a.IndexVolume)
	both("/loki/api/v1/index/volume_range", a.IndexVolumeRange)
	both("/loki/api/v1/format_query", a.FormatQuery)
	both("/loki/api/v1/detected_labels", a.DetectedLabels)
	both("/loki/api/v1/detected_fields", a.DetectedFields)
	both("/loki/api/v1/detected_field/{name}/values", a.DetectedFieldValues)
	both("/loki/api/v1/patterns", a.Patterns)
	rs = append(rs, Route{http.MethodGet, "/loki/api/v1/status/buildinfo", a.BuildInfo})
	rs = append(rs, Route{http.MethodGet, "/loki/api/v1/tail", a.Tail})
	rs = append(rs, Route{http.MethodGet, "/ready", a.ReadyHandler})
	return rs
}

// ReadyHandler answers /ready like Loki: 200 "ready" or 503.
func (a *API) ReadyHandler(w http.ResponseWriter, r *http.Request) {
	if !a.Ready() {
		http.Error(w, "logstore not ready", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ready\n"))
}

func (a *API) queryContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), time.Duration(a.limits.Load().QueryTimeout))
}

type apiMetrics struct {
	pushRequests     *prometheus.CounterVec
	receivedEntries  *prometheus.CounterVec
	receivedBytes    *prometheus.CounterVec
	discardedEntries *prometheus.CounterVec
	discardedBytes   *prometheus.CounterVec
	queries          *prometheus.CounterVec
	queriesRejected  *prometheus.CounterVec
	queryDuration    *prometheus.HistogramVec
	tails            prometheus.Gauge
}

func newAPIMetrics(reg prometheus.Registerer) (*apiMetrics, error) {
	ns := "nxwatcher_logs_"
	m := &apiMetrics{
		pushRequests:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "push_requests_total", Help: "Push requests by format and HTTP status code."}, []string{"format", "code"}),
		receivedEntries:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "received_entries_total", Help: "Log entries received, before validation."}, []string{"format"}),
		receivedBytes:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "received_bytes_total", Help: "Bytes of log lines received, before validation."}, []string{"format"}),
		discardedEntries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "discarded_entries_total", Help: "Log entries refused, by Loki's reason name."}, []string{"reason"}),
		discardedBytes:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "discarded_bytes_total", Help: "Bytes of log lines refused, by reason."}, []string{"reason"}),
		queries:          prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "queries_total", Help: "Read requests by endpoint and HTTP status code."}, []string{"endpoint", "code"}),
		queriesRejected:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "queries_rejected_total", Help: "Read requests refused with 429 by the query concurrency limit (logs.querier), by reason: queue_full or queue_timeout."}, []string{"reason"}),
		queryDuration:    prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: ns + "query_duration_seconds", Help: "Read request latency by endpoint.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 9)}, []string{"endpoint"}),
		tails:            prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "active_tails", Help: "Open tail WebSockets."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.pushRequests, m.receivedEntries, m.receivedBytes, m.discardedEntries, m.discardedBytes, m.queries, m.queriesRejected, m.queryDuration, m.tails} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	return m, nil
}
