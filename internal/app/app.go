// Package app is the composition root of `nxwatcher serve`: New opens every
// component in order and stacks their closers, Run holds one oklog/run group
// of loops, Reload re-applies the config file to every reloadable component.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	promconfig "github.com/prometheus/prometheus/config"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"k8s.io/klog/v2"

	"github.com/nx-watcher/nxwatcher/internal/alerting"
	"github.com/nx-watcher/nxwatcher/internal/config"
	logsforward "github.com/nx-watcher/nxwatcher/internal/logs/forward"
	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
	"github.com/nx-watcher/nxwatcher/internal/logs/lokiapi"
	"github.com/nx-watcher/nxwatcher/internal/metrics"
	"github.com/nx-watcher/nxwatcher/internal/metrics/promapi"
	"github.com/nx-watcher/nxwatcher/internal/otlp"
	"github.com/nx-watcher/nxwatcher/internal/ruler"
	"github.com/nx-watcher/nxwatcher/internal/server"
	"github.com/nx-watcher/nxwatcher/internal/tenancy"
	tracesforward "github.com/nx-watcher/nxwatcher/internal/traces/forward"
	"github.com/nx-watcher/nxwatcher/internal/traces/generator"
	"github.com/nx-watcher/nxwatcher/internal/traces/tempoapi"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore"
	"github.com/nx-watcher/nxwatcher/internal/ui"
	"github.com/nx-watcher/nxwatcher/internal/version"
)

// Options are the bootstrap settings; everything else is in the config file.
type Options struct {
	// ConfigFile is the serve config; "" runs the embedded default.
	ConfigFile    string
	StoragePath   string
	ListenAddress string
	// ExternalURL is how users reach us (--web.external-url): links in
	// alerts and notifications use it. "" derives it from the host name and
	// the listener's port, as Prometheus does.
	ExternalURL string
	// RoutePrefix is the path prefix of every route of the main listener
	// (--web.route-prefix). "" takes the path of the external URL.
	RoutePrefix string
	// WebConfigFile is an exporter-toolkit web config (TLS, basic auth) for
	// the main and Alertmanager listeners (--web.config.file).
	WebConfigFile string
	// EnableLifecycle serves /-/reload and /-/quit over HTTP
	// (--web.enable-lifecycle); without it they answer 403, as Prometheus.
	// SIGHUP reloads either way.
	EnableLifecycle bool
	// EnableAdminAPI serves the TSDB admin endpoints (--web.enable-admin-api).
	EnableAdminAPI bool
	// Flags are shown by /api/v1/status/flags.
	Flags map[string]string
	// BeforeReady, when set, runs once the first config is in force and
	// before /-/ready answers 200 (serve returns start-up's memory there,
	// ADR 0088).
	BeforeReady func()
}

// Deps are what the process gives the app.
type Deps struct {
	Logger *slog.Logger
	// Registry defaults to a fresh private registry.
	Registry *prometheus.Registry
	// AdjustConfig, when set, edits every loaded config before it is used;
	// tests move fixed ports (OTLP 4317/4318) to 127.0.0.1:0 with it.
	AdjustConfig func(*config.Config)
}

// App is a running `nxwatcher serve`.
type App struct {
	opts   Options
	deps   Deps
	logger *slog.Logger

	server *server.Server
	// db and engine in server mode; metricsAgent instead of both in agent
	// mode (metrics.mode: agent).
	db           *metrics.TSDB
	engine       *metrics.Engine
	metricsAgent *metrics.Agent
	scraper      *metrics.Scraper

	ruler *ruler.Ruler
	logs  *logstore.DB
	// logSet and traceSet hold one store per tenant when tenancy is on
	// (logs.auth_enabled, traces.multitenancy_enabled); logs and traces
	// are then tenant "fake"'s store, for the UI's status pages.
	logSet   *tenancy.Set[*logstore.DB]
	traceSet *tenancy.Set[*tracestore.DB]
	loki     *lokiapi.API

	// Optional roles; nil when their section turns them off.
	alertmanager *alerting.Alertmanager
	amServer     *server.Server
	traces       *tracestore.DB
	// tracesForward exports accepted spans on (traces.forward); nil when
	// no endpoint is configured.
	tracesForward *tracesforward.Forwarder
	logsForward   *logsforward.Forwarder
	generator     *generator.Generator
	otlp          *otlp.Receiver
	otlpGRPC      net.Listener
	otlpHTTP      net.Listener
	ui            *ui.UI
	uiServer      *server.Server

	// firstApplied closes when the first config is in force; loops that
	// must not start before it (the ruler) wait for it.
	firstApplied chan struct{}
	// quit closes on /-/quit; Run returns when it does.
	quit     chan struct{}
	quitOnce sync.Once

	externalURL *url.URL
	routePrefix string

	closers []func() error

	reloadMu sync.Mutex
	current  atomic.Pointer[config.Config]
	// started is the config read at start-up: the keys a reload cannot
	// change keep its values.
	started    *config.Config
	ready      atomic.Bool
	lastReload atomic.Pointer[time.Time]
	reloadOK   atomic.Bool

	reloadSuccess   prometheus.Gauge
	reloadTimestamp prometheus.Gauge
	reloads         *prometheus.CounterVec
}

// New loads the config and opens every component in order. On error,
// whatever was opened is closed again.
func New(opts Options, deps Deps) (_ *App, err error) {
	if deps.Logger == nil {
		return nil, errors.New("app: a logger is required")
	}
	reg := deps.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	a := &App{opts: opts, deps: deps, logger: deps.Logger, firstApplied: make(chan struct{}), quit: make(chan struct{})}
	defer func() {
		if err != nil {
			if cerr := a.Close(); cerr != nil {
				a.logger.Error("Close after failed start", "err", cerr)
			}
		}
	}()
	klog.SetSlogLogger(deps.Logger.With("component", "k8s_client_runtime"))
	a.registerOwnMetrics(reg)

	a.server, err = server.Listen(opts.ListenAddress, deps.Logger)
	if err != nil {
		return nil, err
	}
	a.push(a.server.Close)
	if err := a.server.UseWebConfig(opts.WebConfigFile); err != nil {
		return nil, err
	}

	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	a.current.Store(cfg)
	a.started = cfg

	mdeps := metrics.Deps{Logger: deps.Logger, Registerer: reg}
	if err := a.openMetrics(cfg, mdeps); err != nil {
		return nil, err
	}
	a.push(a.scraper.Close)
	a.externalURL, a.routePrefix, err = webURLs(opts.ExternalURL, opts.RoutePrefix, a.server.Addr())
	if err != nil {
		return nil, err
	}
	if err := a.openAlerting(cfg, reg); err != nil {
		return nil, err
	}
	if err := a.openLogs(cfg, reg); err != nil {
		return nil, err
	}
	if err := a.openTraces(cfg, reg); err != nil {
		return nil, err
	}
	if err := a.openOTLP(cfg, reg); err != nil {
		return nil, err
	}
	if err := a.openUI(cfg, reg); err != nil {
		return nil, err
	}

	gatherer := prometheus.Gatherers{reg, prometheus.DefaultGatherer}
	instr := server.NewInstrumentation(reg)
	h := server.Handlers{
		Healthy:       healthy,
		Ready:         a.serveReady,
		Reload:        lifecycleDisabled,
		Quit:          lifecycleDisabled,
		Metrics:       promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true}),
		PrometheusAPI: a.prometheusAPI(cfg, reg, gatherer, instr),
	}
	if opts.EnableLifecycle {
		h.Reload, h.Quit = a.serveReload, a.serveQuit
	}
	if a.alertmanager != nil {
		h.AlertmanagerAPI = a.alertmanager.Handler()
	}
	for _, r := range a.loki.Routes() {
		if r.Path == "/ready" {
			continue // one /ready for every role
		}
		h.Loki = append(h.Loki, server.Route{Method: r.Method, Path: r.Path, Handler: r.Handler})
	}
	if a.traces != nil {
		tdeps := tempoapi.Deps{Store: a.traces, Logger: deps.Logger, Registerer: reg}
		if a.traceSet != nil {
			tdeps.Store, tdeps.Tenants, tdeps.MultitenancyEnabled = nil, tempoapi.TenantStores(a.traceSet), true
		}
		tempo, err := tempoapi.New(cfg.Traces.Search, tdeps)
		if err != nil {
			return nil, fmt.Errorf("tempo api: %w", err)
		}
		for _, r := range tempo.Routes() {
			if r.Path == "/ready" {
				continue // one /ready for every role, below
			}
			h.Tempo = append(h.Tempo, server.Route{Method: r.Method, Path: r.Path, Handler: r.Handler})
		}
	}
	if a.otlp != nil {
		for _, r := range a.otlp.Routes() {
			h.OTLP = append(h.OTLP, server.Route{Method: r.Method, Path: r.Path, Handler: r.Handler})
		}
	}
	for _, r := range a.ui.Routes() {
		h.UI = append(h.UI, server.Route{Method: r.Method, Path: r.Path, Handler: r.Handler})
	}
	// A web page on another site must not make a visitor's browser change
	// our state (silences, pushes, reload): cross-origin browser requests
	// that are not GET/HEAD/OPTIONS are refused. Clients that are not
	// browsers (curl, exporters, Grafana's backend) send no Sec-Fetch-Site
	// or Origin header and pass.
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
	}))
	routes := csrf.Handler(server.WithPrefix(a.routePrefix, server.Routes(h, instr)))
	a.server.Serve(routes)
	if a.uiServer != nil {
		// The UI's own port: the same routes, every request behind a session.
		a.uiServer.Serve(a.ui.Protect(routes))
	}
	a.logger.Info("Web routes", "external_url", a.externalURL.String(), "route_prefix", a.routePrefix)
	if a.amServer != nil {
		a.amServer.Serve(server.AlertmanagerRoutes(h, instr))
	}
	return a, nil
}

func (a *App) prometheusAPI(cfg *config.Config, reg *prometheus.Registry, gatherer prometheus.Gatherer, instr *server.Instrumentation) http.Handler {
	d := promapi.Deps{
		Logger:     a.logger,
		Registerer: reg,
		Gatherer:   gatherer,
		Engine:     a.engine,
		DB:         a.db,
		Agent:      a.metricsAgent,
		Targets:    a.scraper,
		Pools:      a.scraper,
		Config:     func() promconfig.Config { return *a.current.Load().Metrics.Parsed },
		Runtime: func() (bool, time.Time) {
			t := a.lastReload.Load()
			if t == nil {
				return false, time.Time{}
			}
			return a.reloadOK.Load(), *t
		},
		Retention:  func() string { return retentionString(a.current.Load().Metrics) },
		Ready:      a.readyOnly,
		Instrument: instr.WrapFunc,
	}
	if a.ruler != nil {
		d.Rules = func(context.Context) v1.RulesRetriever { return a.ruler.Manager() }
		d.Alertmanagers = func(context.Context) v1.AlertmanagerRetriever { return a.ruler }
	}
	return promapi.New(promapi.Options{
		ListenAddress:       a.server.Addr().String(),
		ExternalURL:         a.externalURL,
		StorageDir:          a.opts.StoragePath,
		Flags:               a.opts.Flags,
		LookbackDelta:       time.Duration(cfg.Metrics.Query.LookbackDelta),
		QueryTimeout:        time.Duration(cfg.Metrics.Query.Timeout),
		Version:             prometheusVersion(),
		RemoteWriteReceiver: cfg.Metrics.RemoteWriteReceiver,
		OTLPReceiver:        cfg.Metrics.OTLPReceiver,
		EnableAdmin:         a.opts.EnableAdminAPI,
	}, d)
}

// Addr is the address of the main listener.
func (a *App) Addr() net.Addr { return a.server.Addr() }

func (a *App) push(closer func() error) { a.closers = append(a.closers, closer) }

// Close closes every opened component in reverse order.
func (a *App) Close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i]())
	}
	a.closers = nil
	return errors.Join(errs...)
}

// Run applies the first config, marks the app ready, and runs every loop
// until ctx ends or one fails. Stores are closed by Close, after Run.
func (a *App) Run(ctx context.Context) error {
	var g run.Group
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return a.server.Run(ctx) }, func(error) { cancel() })
	}
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return a.scraper.Run(ctx) }, func(error) { cancel() })
	}
	a.addRoleLoops(ctx, &g)
	{
		// The first config is applied inside the group, so /-/ready says 503
		// until it is in force.
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			if err := a.apply(a.current.Load()); err != nil {
				return fmt.Errorf("apply initial config: %w", err)
			}
			if a.opts.BeforeReady != nil {
				a.opts.BeforeReady()
			}
			close(a.firstApplied)
			a.ready.Store(true)
			a.logger.Info("Server is ready")
			<-ctx.Done()
			return nil
		}, func(error) { cancel() })
	}
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			select {
			case <-ctx.Done():
			case <-a.quit:
				a.logger.Warn("Received termination request via web service, exiting gracefully...")
			}
			return nil
		}, func(error) { cancel() })
	}
	err := g.Run()
	a.ready.Store(false)
	return err
}

// Reload re-reads the config file and applies it. A config that does not
// load or apply is rejected as a whole; what runs keeps running.
func (a *App) Reload() error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	cfg, err := a.loadConfig()
	if err == nil {
		err = a.applyLocked(cfg)
	} else {
		a.recordApply(err)
	}
	a.reloads.WithLabelValues(resultLabel(err)).Inc()
	if err != nil {
		a.logger.Error("Reload rejected; the previous config keeps running", "err", err)
		return err
	}
	a.logger.Info("Reloaded config", "file", a.opts.ConfigFile)
	return nil
}

func (a *App) apply(cfg *config.Config) error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	return a.applyLocked(cfg)
}

// applyLocked puts a config in force all or nothing: every component first
// builds and checks its new state (rule files, Alertmanager templates and
// receivers, scrape and log limits) while the old one keeps running; only
// when all succeed is each swapped in, in Prometheus's order (storage, then
// scrape, rules, notifications). The config shown by the status APIs is the
// one in force.
func (a *App) applyLocked(cfg *config.Config) error {
	commit, err := a.prepare(cfg)
	if err == nil {
		err = commit()
		if err != nil {
			// A swap that fails after the checks passed is a bug or a
			// resource error; put the previous config back in force.
			if prev := a.current.Load(); prev != nil && prev != cfg {
				if rerr := a.restore(prev); rerr != nil {
					a.logger.Error("Restore previous config after a failed swap", "err", rerr)
				}
			}
		}
	}
	if err == nil {
		a.current.Store(cfg)
		if keys := restartOnlyChanges(a.started, cfg); len(keys) > 0 {
			a.logger.Warn("Config keys changed that take effect only at the next start; the running values stay", "keys", strings.Join(keys, ","))
		}
	}
	a.recordApply(err)
	return err
}

// restore puts the previous config back after a swap failed half-way.
func (a *App) restore(prev *config.Config) error {
	commit, err := a.prepare(prev)
	if err != nil {
		return err
	}
	return commit()
}

// recordApply keeps runtimeinfo's reloadConfigSuccess and the
// nxwatcher_config_last_reload_successful gauge in agreement.
func (a *App) recordApply(err error) {
	now := time.Now()
	a.lastReload.Store(&now)
	a.reloadOK.Store(err == nil)
	if err != nil {
		a.reloadSuccess.Set(0)
		return
	}
	a.reloadSuccess.Set(1)
	a.reloadTimestamp.Set(float64(now.UnixNano()) / 1e9)
}

// prepare checks cfg against every component without changing what runs and
// returns the swap that puts it in force.
func (a *App) prepare(cfg *config.Config) (func() error, error) {
	var errs []error
	if _, err := cfg.Metrics.Parsed.GetScrapeConfigs(); err != nil {
		errs = append(errs, fmt.Errorf("scrape configs: %w", err))
	}
	if err := cfg.Logs.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("logs: %w", err))
	}
	errs = append(errs, a.logsForward.CheckConfig(cfg.Logs.Forward))
	if a.tracesForward != nil {
		errs = append(errs, a.tracesForward.CheckConfig(cfg.Traces.Forward))
	}
	commitRules, commitAM := func() {}, func() {}
	if a.ruler != nil {
		c, err := a.ruler.Prepare(cfg.Metrics.Parsed)
		if err != nil {
			errs = append(errs, err)
		} else {
			commitRules = c
		}
	}
	if a.alertmanager != nil {
		c, err := a.alertmanager.Prepare(cfg.Alerting)
		if err != nil {
			errs = append(errs, err)
		} else {
			commitAM = c
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return func() error { return a.swap(cfg, commitRules, commitAM) }, nil
}

// swap puts a prepared config in force, in Prometheus's order: storage,
// scrape, rules and notifications. Rules and Alertmanager swap what their
// Prepare built and cannot fail.
func (a *App) swap(cfg *config.Config, commitRules, commitAM func()) error {
	var errs []error
	if a.metricsAgent != nil {
		errs = append(errs, a.metricsAgent.ApplyConfig(cfg.Metrics.Parsed))
	} else {
		errs = append(errs, a.db.ApplyConfig(metrics.TSDBConfig(cfg.Metrics)),
			a.engine.ApplyConfig(cfg.Metrics.Parsed)) // evaluation interval, query_log_file
	}
	errs = append(errs, a.scraper.ApplyConfig(cfg.Metrics.Parsed))
	commitRules()
	commitAM()
	errs = append(errs, a.loki.ApplyConfig(cfg.Logs.Config), a.ui.ApplyConfig(cfg.UI))
	// Forward endpoints: a changed one keeps its backlog, a removed one's is
	// dropped and counted (ADR 0008).
	errs = append(errs, a.logsForward.ApplyConfig(cfg.Logs.Forward))
	if a.tracesForward != nil {
		errs = append(errs, a.tracesForward.ApplyConfig(cfg.Traces.Forward))
	}
	// prometheus.yml's runtime.gogc (default 75, or $GOGC) sets the process's
	// GC target, as Prometheus applies it on every load.
	if old := debug.SetGCPercent(cfg.Metrics.Parsed.Runtime.GoGC); old != cfg.Metrics.Parsed.Runtime.GoGC {
		a.logger.Info("Updated GOGC", "old", old, "new", cfg.Metrics.Parsed.Runtime.GoGC)
	}
	return errors.Join(errs...)
}

// retentionString is the metrics retention a config puts in force.
func retentionString(cfg metrics.Config) string { return metrics.RetentionString(cfg) }

// FirstApplied is closed once the first config is in force.
func (a *App) FirstApplied() <-chan struct{} { return a.firstApplied }

func (a *App) loadConfig() (*config.Config, error) {
	var (
		cfg *config.Config
		err error
	)
	if a.opts.ConfigFile != "" {
		cfg, err = config.LoadFile(a.opts.ConfigFile, a.logger)
	} else {
		cfg, err = config.Default(selfTarget(a.server.Addr()), a.logger)
	}
	if err != nil {
		return nil, err
	}
	if a.deps.AdjustConfig != nil {
		a.deps.AdjustConfig(cfg)
	}
	return cfg, nil
}

// selfTarget is a scrape address for our own listener.
func selfTarget(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func (a *App) registerOwnMetrics(reg prometheus.Registerer) {
	a.reloadSuccess = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nxwatcher_config_last_reload_successful",
		Help: "Whether the last configuration reload attempt was successful.",
	})
	a.reloadTimestamp = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nxwatcher_config_last_reload_success_timestamp_seconds",
		Help: "Timestamp of the last successful configuration reload.",
	})
	a.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nxwatcher_config_reloads_total",
		Help: "Configuration reload attempts, by result.",
	}, []string{"result"})
	reg.MustRegister(a.reloadSuccess, a.reloadTimestamp, a.reloads, version.NewCollector())
}

// prometheusVersion is what /api/v1/status/buildinfo reports: the Prometheus
// version whose API we serve, with our own revision (ADR 0002).
func prometheusVersion() v1.PrometheusVersion {
	i := version.Get()
	return v1.PrometheusVersion{
		Version:   version.PrometheusAPI,
		Revision:  i.Revision,
		Branch:    i.Branch,
		BuildUser: i.BuildUser,
		BuildDate: i.BuildDate,
		GoVersion: i.GoVersion,
	}
}

func resultLabel(err error) string {
	if err != nil {
		return "failure"
	}
	return "success"
}

func healthy(w http.ResponseWriter, _ *http.Request) {
	w.WriteHeader(http.StatusOK)
	fmt.Fprintln(w, "nxwatcher is Healthy.")
}

func (a *App) serveReady(w http.ResponseWriter, _ *http.Request) {
	if !a.isReady() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "Service Unavailable")
		return
	}
	w.WriteHeader(http.StatusOK)
	fmt.Fprintln(w, "nxwatcher is Ready.")
}

// readyOnly answers 503 until the first config is in force, as Prometheus does.
func (a *App) readyOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !a.isReady() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "Service Unavailable")
			return
		}
		h(w, r)
	}
}

// isReady is true once the first config is in force and every store is open.
func (a *App) isReady() bool {
	if !a.ready.Load() {
		return false
	}
	if a.traces != nil && !a.traces.Ready() {
		return false
	}
	if !a.loki.Ready() {
		return false
	}
	return true
}

// lifecycleDisabled answers /-/reload and /-/quit without
// --web.enable-lifecycle, in Prometheus's words.
func lifecycleDisabled(w http.ResponseWriter, _ *http.Request) {
	w.WriteHeader(http.StatusForbidden)
	_, _ = w.Write([]byte("Lifecycle API is not enabled."))
}

func (a *App) serveQuit(w http.ResponseWriter, _ *http.Request) {
	a.quitOnce.Do(func() {
		_, _ = w.Write([]byte("Requesting termination... Goodbye!"))
		close(a.quit)
	})
}

func (a *App) serveReload(w http.ResponseWriter, _ *http.Request) {
	if err := a.Reload(); err != nil {
		http.Error(w, fmt.Sprintf("failed to reload config: %s", err), http.StatusInternalServerError)
	}
}
