// Package promapi serves Prometheus's HTTP API (/api/v1) with Prometheus's
// own web/api/v1 package, so paths, parameters, status codes and JSON are
// upstream's. It is the only place that calls v1.NewAPI: its positional
// parameter list changes between Prometheus releases (ADR 0002).
package promapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	grafanaregexp "github.com/grafana/regexp"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/route"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/agent"
	"github.com/prometheus/prometheus/util/features"
	"github.com/prometheus/prometheus/util/notifications"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/nx-watcher/nxwatcher/internal/metrics"
)

// Options are the knobs of the API that come from config and flags.
type Options struct {
	ListenAddress string
	ExternalURL   *url.URL
	StorageDir    string
	Flags         map[string]string
	LookbackDelta time.Duration
	QueryTimeout  time.Duration
	Version       v1.PrometheusVersion

	RemoteWriteReceiver bool
	OTLPReceiver        bool
	// EnableAdmin serves the TSDB admin endpoints (delete_series,
	// clean_tombstones, snapshot), as --web.enable-admin-api does; off, they
	// answer Prometheus's "admin APIs disabled".
	EnableAdmin bool
}

// Deps are the engines the API reads from and writes to.
type Deps struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer

	Engine promql.QueryEngine
	// DB is the server-mode storage; in agent mode (metrics.mode: agent)
	// set Agent instead and the query endpoints answer as
	// `prometheus --agent` does ("unavailable with Prometheus Agent").
	DB      *metrics.TSDB
	Agent   *metrics.Agent
	Targets v1.TargetRetriever
	Pools   v1.ScrapePoolsRetriever

	// Rules and Alertmanagers may be nil until the alerting role is wired.
	Rules         func(context.Context) v1.RulesRetriever
	Alertmanagers func(context.Context) v1.AlertmanagerRetriever

	// Config returns the Prometheus config in force.
	Config func() promconfig.Config
	// Runtime fills the reload fields of /api/v1/status/runtimeinfo.
	Runtime func() (reloadOK bool, lastReload time.Time)
	// Retention is the storageRetention of runtimeinfo: the retention in
	// force, as Prometheus prints its flags ("30d or 8GiB").
	Retention func() string
	// Ready wraps handlers so they answer 503 until the first config applies.
	Ready func(http.HandlerFunc) http.HandlerFunc
	// Instrument counts each route under its name.
	Instrument func(name string, h http.HandlerFunc) http.HandlerFunc
}

// Prometheus's defaults for the remote-read knobs we don't expose.
const (
	remoteReadSampleLimit      = 5e7
	remoteReadConcurrencyLimit = 10
	remoteReadMaxBytesInFrame  = 1 << 20
)

// New returns a handler for everything under /api/v1.
func New(opts Options, deps Deps) http.Handler {
	startTime := time.Now()
	rulesRetriever := deps.Rules
	if rulesRetriever == nil {
		rulesRetriever = func(context.Context) v1.RulesRetriever { return noRules{} }
	}
	amRetriever := deps.Alertmanagers
	if amRetriever == nil {
		amRetriever = func(context.Context) v1.AlertmanagerRetriever { return noAlertmanagers{} }
	}
	host, scheme := opts.ListenAddress, "http"
	if opts.ExternalURL != nil {
		host, scheme = opts.ExternalURL.Host, opts.ExternalURL.Scheme
	}
	runtimeInfo := func() (v1.RuntimeInfo, error) {
		ok, last := deps.Runtime()
		cwd, _ := os.Getwd()
		hostname, _ := os.Hostname()
		retention := ""
		if deps.Retention != nil {
			retention = deps.Retention()
		}
		return v1.RuntimeInfo{
			StartTime:           startTime,
			CWD:                 cwd,
			Hostname:            hostname,
			ServerTime:          time.Now().UTC(),
			ReloadConfigSuccess: ok,
			LastConfigTime:      last,
			GoroutineCount:      runtime.NumGoroutine(),
			GOMAXPROCS:          runtime.GOMAXPROCS(0),
			GOMEMLIMIT:          debug.SetMemoryLimit(-1),
			GOGC:                os.Getenv("GOGC"),
			GODEBUG:             os.Getenv("GODEBUG"),
			StorageRetention:    retention,
		}, nil
	}
	version := opts.Version
	var (
		queryable  storage.SampleAndChunkQueryable
		appendable storage.AppendableV2
		exemplars  storage.ExemplarQueryable
		admin      v1.TSDBAdminStats
	)
	isAgent := deps.DB == nil && deps.Agent != nil
	if isAgent {
		queryable, appendable, exemplars, admin = deps.Agent, deps.Agent, deps.Agent.DB, agentAdminStats{}
	} else {
		// The local TSDB merged with remote_read endpoints; the remote-write
		// receiver appends as scrapes do.
		queryable, appendable, exemplars, admin = deps.DB, deps.DB, deps.DB.DB, adminStats{deps.DB}
	}
	apiLogger := deps.Logger.With("component", "api")
	openAPI := &lazyOpenAPI{opts: v1.OpenAPIOptions{ExternalURL: externalURLString(opts), Version: version.Version}, logger: apiLogger}
	api := v1.NewAPI(
		deps.Engine,
		queryable,
		appendable,
		exemplars,
		func(context.Context) v1.ScrapePoolsRetriever { return deps.Pools },
		func(context.Context) v1.TargetRetriever { return deps.Targets },
		amRetriever,
		deps.Config,
		opts.Flags,
		v1.GlobalURLOptions{ListenAddress: opts.ListenAddress, Host: host, Scheme: scheme},
		deps.Ready,
		admin,
		opts.StorageDir,
		opts.EnableAdmin && !isAgent, // admin API (delete series, snapshot): off by default, as upstream
		false,                        // search API
		0,
		apiLogger,
		rulesRetriever,
		remoteReadSampleLimit,
		remoteReadConcurrencyLimit,
		remoteReadMaxBytesInFrame,
		isAgent,
		grafanaregexp.MustCompile("^(?:.*)$"),
		runtimeInfo,
		&version,
		func() []notifications.Notification { return nil },
		func() (<-chan notifications.Notification, func(), bool) { return nil, func() {}, false },
		deps.Gatherer,
		deps.Registerer,
		nil,
		false, // the remote-write receiver is served below (rw1Handler), in front of the same upstream handler
		rwMessageTypes,
		opts.OTLPReceiver,
		false, // OTLP delta to cumulative
		false, // native OTLP delta ingestion
		opts.LookbackDelta,
		false, // type and unit labels
		false, // append metadata from remote write
		nil,
		features.NewRegistry(),
		v1.OpenAPIOptions{IncludePaths: []string{openAPINoPath}}, // built on first use: openAPI below
		nil,
		false, // query cost
		opts.QueryTimeout,
	)
	router := route.New().WithPrefix("/api/v1")
	if deps.Instrument != nil {
		// The router names routes without its prefix; count them by full path.
		router = router.WithInstrumentation(func(name string, h http.HandlerFunc) http.HandlerFunc {
			return deps.Instrument("/api/v1"+name, h)
		})
	}
	api.Register(router)
	// GET /api/v1/openapi.yaml as upstream registers it (behind Ready,
	// counted under its path); other methods reach the router and get its
	// 405 as before.
	openAPIGet := wrapRoute(deps, "/api/v1/openapi.yaml", openAPI.ServeHTTP)
	var write http.HandlerFunc
	if opts.RemoteWriteReceiver {
		// Without it /api/v1/write answers upstream's 404 "needs to be enabled".
		write = wrapRoute(deps, "/api/v1/write", newRW1Handler(apiLogger, deps.Registerer, appendable, rwMessageTypes).ServeHTTP)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case write != nil && r.Method == http.MethodPost && r.URL.Path == "/api/v1/write":
			write(w, r)
		case r.Method == http.MethodGet && r.URL.Path == "/api/v1/openapi.yaml":
			openAPIGet(w, r)
		default:
			router.ServeHTTP(w, r)
		}
	})
}

// wrapRoute puts h behind Ready and counts it under name, as the router
// does for the routes it holds.
func wrapRoute(deps Deps, name string, h http.HandlerFunc) http.HandlerFunc {
	if deps.Ready != nil {
		h = deps.Ready(h)
	}
	if deps.Instrument != nil {
		h = deps.Instrument(name, h)
	}
	return h
}

var rwMessageTypes = remoteapi.MessageTypes{remoteapi.WriteV1MessageType, remoteapi.WriteV2MessageType}

func externalURLString(opts Options) string {
	if opts.ExternalURL == nil {
		return ""
	}
	return opts.ExternalURL.String()
}

// adminStats gives *tsdb.DB the Stats and WALReplayStatus shape the API wants.
type adminStats struct{ db *metrics.TSDB }

func (a adminStats) CleanTombstones() error { return a.db.CleanTombstones() }
func (a adminStats) Delete(ctx context.Context, mint, maxt int64, ms ...*labels.Matcher) error {
	return a.db.Delete(ctx, mint, maxt, ms...)
}
func (a adminStats) Snapshot(dir string, withHead bool) error { return a.db.Snapshot(dir, withHead) }
func (a adminStats) Stats(statsByLabelName string, limit int) (*tsdb.Stats, error) {
	return a.db.Head().Stats(statsByLabelName, limit), nil
}
func (a adminStats) WALReplayStatus() (tsdb.WALReplayStatus, error) {
	return a.db.Stats.Head.WALReplayStatus.GetWALReplayStatus(), nil
}
func (a adminStats) BlockMetas() ([]tsdb.BlockMeta, error) {
	blocks := a.db.Blocks()
	metas := make([]tsdb.BlockMeta, 0, len(blocks))
	for _, b := range blocks {
		metas = append(metas, b.Meta())
	}
	return metas, nil
}

// agentAdminStats answers as Prometheus's agent storage does.
type agentAdminStats struct{}

func (agentAdminStats) CleanTombstones() error { return agent.ErrUnsupported }
func (agentAdminStats) Delete(context.Context, int64, int64, ...*labels.Matcher) error {
	return agent.ErrUnsupported
}
func (agentAdminStats) Snapshot(string, bool) error { return agent.ErrUnsupported }
func (agentAdminStats) Stats(string, int) (*tsdb.Stats, error) {
	return nil, agent.ErrUnsupported
}
func (agentAdminStats) WALReplayStatus() (tsdb.WALReplayStatus, error) {
	return tsdb.WALReplayStatus{}, agent.ErrUnsupported
}
func (agentAdminStats) BlockMetas() ([]tsdb.BlockMeta, error) { return nil, agent.ErrUnsupported }

type noRules struct{}

func (noRules) RuleGroups() []*rules.Group           { return nil }
func (noRules) AlertingRules() []*rules.AlertingRule { return nil }

type noAlertmanagers struct{}

func (noAlertmanagers) Alertmanagers() []*url.URL        { return nil }
func (noAlertmanagers) DroppedAlertmanagers() []*url.URL { return nil }
