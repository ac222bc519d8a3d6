package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	commonversion "github.com/prometheus/common/version"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/nx-watcher/nxwatcher/internal/alerting"
	"github.com/nx-watcher/nxwatcher/internal/config"
	logsforward "github.com/nx-watcher/nxwatcher/internal/logs/forward"
	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
	"github.com/nx-watcher/nxwatcher/internal/logs/lokiapi"
	"github.com/nx-watcher/nxwatcher/internal/metrics"
	"github.com/nx-watcher/nxwatcher/internal/otlp"
	"github.com/nx-watcher/nxwatcher/internal/otlp/promsink"
	"github.com/nx-watcher/nxwatcher/internal/ruler"
	"github.com/nx-watcher/nxwatcher/internal/server"
	"github.com/nx-watcher/nxwatcher/internal/tenancy"
	tracesforward "github.com/nx-watcher/nxwatcher/internal/traces/forward"
	"github.com/nx-watcher/nxwatcher/internal/traces/generator"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore"
	"github.com/nx-watcher/nxwatcher/internal/ui"
	"github.com/nx-watcher/nxwatcher/internal/version"
	"github.com/nx-watcher/nxwatcher/internal/weburl"
)

// openAlerting opens the embedded Alertmanager (when enabled) and the ruler
// that feeds it and the external Alertmanagers of the prometheus section.
func (a *App) openAlerting(cfg *config.Config, reg prometheus.Registerer) error {
	var notify func(...*notifier.Alert)
	notifyURL := ""
	if cfg.Alerting.Enabled {
		// Alertmanager's API reports prometheus/common/version, a process-wide
		// value; amtool checks it, so it says which Alertmanager we speak for.
		commonversion.Version = version.AlertmanagerAPI
		commonversion.Revision = version.Get().Revision
		am, err := alerting.New(cfg.Alerting, filepath.Join(a.opts.StoragePath, "alerting"), alerting.Deps{
			// The route prefix is stripped by the main listener, so the
			// Alertmanager API sits at /api/v2/ below it.
			Logger: a.logger, Registerer: reg, External: a.externalURL, RoutePrefix: "/",
		})
		if err != nil {
			return fmt.Errorf("open alertmanager: %w", err)
		}
		a.alertmanager = am
		a.push(am.Close)
		notify = am.Send
		notifyURL = a.externalURL.String() + "/api/v2/alerts"
		if addr := cfg.Alerting.ListenAddress; addr != "" {
			a.amServer, err = server.Listen(addr, a.logger.With("listener", "alertmanager"))
			if err != nil {
				return fmt.Errorf("alertmanager listener: %w", err)
			}
			a.push(a.amServer.Close)
			if err := a.amServer.UseWebConfig(a.opts.WebConfigFile); err != nil {
				return err
			}
		}
	}
	if a.db == nil {
		return nil // agent mode: no rules (refused at load), as prometheus --agent
	}
	r, err := ruler.New(cfg.Rules, ruler.Deps{
		Logger:     a.logger,
		Registerer: reg,
		Queryable:  a.db,
		Appendable: a.db,
		Engine:     a.engine,
		External:   a.externalURL,
		Notify:     notify,
		NotifyURL:  notifyURL,
		SDMetrics:  a.scraper.SDMetrics(),
	})
	if err != nil {
		return fmt.Errorf("open ruler: %w", err)
	}
	a.ruler = r
	a.push(r.Close)
	return nil
}

// openLogs opens the log store (none with logs.mode: forward-only), the
// forwarder (always, so a reload can add its first endpoint) and the Loki
// API over them.
func (a *App) openLogs(cfg *config.Config, reg prometheus.Registerer) error {
	fwd, err := logsforward.Open(filepath.Join(a.opts.StoragePath, "logs-forward"), cfg.Logs.Forward, logsforward.Deps{Logger: a.logger, Registerer: reg})
	if err != nil {
		return err
	}
	a.logsForward = fwd
	a.push(fwd.Close)
	ldeps := lokiapi.Deps{Logger: a.logger, Registerer: reg}
	ldeps.Forward = func(accepted []lokiapi.AcceptedStream) error {
		if fwd.Endpoints() == 0 {
			return nil
		}
		streams := make([]logsforward.Stream, len(accepted))
		for i, s := range accepted {
			streams[i] = logsforward.Stream{Labels: s.Labels, Entries: s.Entries, Tenant: s.Tenant}
		}
		return fwd.Append(streams)
	}
	dir := filepath.Join(a.opts.StoragePath, "logs")
	switch {
	case cfg.Logs.Mode.ForwardOnly():
		// No store: an accepted push is acknowledged once it is in the
		// forward backlogs (ADR 0008); queries are refused.
		a.logger.Info("Logs are forward-only: no local log store", "endpoints", fwd.Endpoints())
	case cfg.Logs.AuthEnabled:
		// One store per tenant (ADR 0034); "fake" keeps today's directory.
		set := tenancy.NewSet(dir, func(tenant, dir string) (*logstore.DB, error) {
			return logstore.Open(dir, cfg.Logs.StoreOptions(), logstore.Deps{
				Logger:     a.logger.With("tenant", tenant),
				Registerer: tenancy.Registerer(reg, tenant, true),
			})
		})
		a.push(set.Close)
		db, err := set.Get(tenancy.Default)
		if err != nil {
			return fmt.Errorf("open log store: %w", err)
		}
		a.logs, a.logSet = db, set
		ldeps.Tenants = lokiapi.TenantStores(set)
	default:
		db, err := logstore.Open(dir, cfg.Logs.StoreOptions(), logstore.Deps{Logger: a.logger, Registerer: reg})
		if err != nil {
			return fmt.Errorf("open log store: %w", err)
		}
		a.logs = db
		a.push(db.Close)
		ldeps.Store = db
	}
	api, err := lokiapi.New(cfg.Logs.Config, ldeps)
	if err != nil {
		return fmt.Errorf("loki api: %w", err)
	}
	a.loki = api
	a.push(api.Close) // ends tails before the store closes
	return nil
}

// otlpLogs hands OTLP logs to the Loki API's mapping; pushes Loki would
// refuse for good (400) become OTLP's permanent invalid-input errors.
func (a *App) otlpLogs() otlp.LogsConsumer {
	return otlp.LogsConsumerFunc(func(ctx context.Context, ld plog.Logs) error {
		err := a.loki.ConsumeLogs(ctx, ld)
		var pe *lokiapi.PushError
		if errors.As(err, &pe) && pe.Status >= 400 && pe.Status < 500 && pe.Status != 429 {
			return fmt.Errorf("%w: %w", otlp.ErrInvalidInput, err)
		}
		return err
	})
}

// openMetrics opens the metrics storage: the TSDB and the PromQL engine,
// or in agent mode (metrics.mode: agent, as prometheus --agent) only a WAL
// that feeds remote_write. Scrapes append to whichever is open.
func (a *App) openMetrics(cfg *config.Config, mdeps metrics.Deps) error {
	var err error
	if cfg.Metrics.Mode == metrics.ModeAgent {
		if a.metricsAgent, err = metrics.OpenAgent(filepath.Join(a.opts.StoragePath, "metrics-agent"), cfg.Metrics, mdeps); err != nil {
			return err
		}
		a.push(a.metricsAgent.Close)
	} else {
		if a.db, err = metrics.OpenTSDB(filepath.Join(a.opts.StoragePath, "metrics"), cfg.Metrics, mdeps); err != nil {
			return err
		}
		a.push(a.db.Close)
		if a.engine, err = metrics.NewEngine(cfg.Metrics.Query, filepath.Join(a.opts.StoragePath, "metrics"), mdeps); err != nil {
			return err
		}
		a.push(a.engine.Close)
	}
	if a.scraper, err = metrics.NewScraper(a.metricsAppendable(), mdeps); err != nil {
		return err
	}
	a.push(a.scraper.Close)
	return nil
}

// metricsAppendable is where samples go: the TSDB, or the agent's WAL.
func (a *App) metricsAppendable() interface {
	storage.Appendable
	storage.AppendableV2
} {
	if a.metricsAgent != nil {
		return a.metricsAgent
	}
	return a.db
}

// openTraces opens the trace store (none with traces.mode: forward-only),
// the forwarder (always, so a reload can add its first endpoint) and the
// metrics-generator.
func (a *App) openTraces(cfg *config.Config, reg prometheus.Registerer) error {
	if !cfg.Traces.Enabled {
		return nil
	}
	fwd, err := tracesforward.Open(filepath.Join(a.opts.StoragePath, "traces-forward"), cfg.Traces.Forward, tracesforward.Deps{Logger: a.logger, Registerer: reg})
	if err != nil {
		return err
	}
	a.tracesForward = fwd
	a.push(fwd.Close)
	dir := filepath.Join(a.opts.StoragePath, "traces")
	switch {
	case cfg.Traces.Mode.ForwardOnly():
		a.logger.Info("Traces are forward-only: no local trace store", "endpoints", fwd.Endpoints())
	case cfg.Traces.MultitenancyEnabled:
		// One store per tenant (ADR 0034); "fake" keeps today's directory.
		set := tenancy.NewSet(dir, func(tenant, dir string) (*tracestore.DB, error) {
			return tracestore.Open(dir, cfg.Traces.Options(), tracestore.Deps{
				Logger:     a.logger.With("tenant", tenant),
				Registerer: tenancy.Registerer(reg, tenant, true),
			})
		})
		a.push(set.Close)
		db, err := set.Get(tenancy.Default)
		if err != nil {
			return fmt.Errorf("open trace store: %w", err)
		}
		a.traces, a.traceSet = db, set
	default:
		db, err := tracestore.Open(dir, cfg.Traces.Options(), tracestore.Deps{Logger: a.logger, Registerer: reg})
		if err != nil {
			return fmt.Errorf("open trace store: %w", err)
		}
		a.traces = db
		a.push(db.Close)
	}
	gen, err := generator.New(cfg.Traces.Generator, generator.Deps{Appendable: a.metricsAppendable(), Logger: a.logger, Registerer: reg})
	if err != nil {
		return fmt.Errorf("open metrics-generator: %w", err)
	}
	a.generator = gen
	return nil
}

// otlpMetricsMaxAge is the oldest OTLP data point the TSDB would still keep
// (ADR 0106): the retention time in force, or the out-of-order window if
// that is longer; 0 (promsink's 30-day default) under a size-only retention.
// It is read at start-up; a reload that changes retention does not move it.
func otlpMetricsMaxAge(cfg metrics.Config) time.Duration {
	tc := metrics.TSDBConfig(cfg).StorageConfig.TSDBConfig
	age := time.Duration(tc.Retention.Time)
	if age <= 0 {
		return 0
	}
	if ooo := time.Duration(tc.OutOfOrderTimeWindow) * time.Millisecond; ooo > age {
		age = ooo
	}
	return age
}

// openOTLP binds the OTLP listeners and builds the receiver: traces to the
// store (and the generator behind it), metrics to the TSDB.
func (a *App) openOTLP(cfg *config.Config, reg prometheus.Registerer) error {
	if !cfg.OTLP.Enabled {
		return nil
	}
	sink, err := promsink.New(promsink.Options{
		OTLP:          func() promconfig.OTLPConfig { return a.current.Load().Metrics.Parsed.OTLPConfig },
		LookbackDelta: time.Duration(cfg.Metrics.Query.LookbackDelta),
		MaxAge:        otlpMetricsMaxAge(cfg.Metrics),
	}, promsink.Deps{Appendable: a.metricsAppendable(), Logger: a.logger, Registerer: reg})
	if err != nil {
		return fmt.Errorf("otlp metrics sink: %w", err)
	}
	d := otlp.Deps{
		Metrics: sink, Logs: a.otlpLogs(), Logger: a.logger, Registerer: reg,
		TracesTenancy: cfg.Traces.MultitenancyEnabled, LogsTenancy: cfg.Logs.AuthEnabled,
	}
	// Back-pressure (ADR 0037): while the head and the traces being cut
	// hold traces.max_head_bytes, trace requests are refused retryably
	// before they are read, and the store cuts at once. With tenancy each
	// tenant's store gates only that tenant's requests; a tenant whose
	// store is not open yet has nothing to be behind on.
	switch {
	case a.traceSet != nil:
		set := a.traceSet
		d.TracesFull = func(tenant string) bool {
			db, ok := set.Opened(tenant)
			return ok && db.Behind()
		}
	case a.traces != nil:
		db := a.traces
		d.TracesFull = func(string) bool { return db.Behind() }
	}
	if fwd := a.tracesForward; fwd != nil {
		// Into the forward backlog first: the store drops spans it already
		// holds from td, and a sender's retry must still reach the backlog.
		// A backlog that cannot take them answers 503. Forward-only: the
		// backlog is the only copy.
		var head otlp.TracesConsumer = fwd
		if a.traces != nil {
			var traces otlp.TracesConsumer = a.traces
			if set := a.traceSet; set != nil {
				traces = otlp.TracesByTenant(func(tenant string) (otlp.TracesConsumer, error) {
					db, err := set.Get(tenant)
					if err != nil {
						return nil, err
					}
					return db, nil
				})
			}
			store := otlp.TracesInvalidOn(traces, tracestore.ErrInvalidID, tracestore.ErrTraceTooLarge)
			// With no endpoint the backlog takes nothing, so a raw
			// request reaches the store without a pdata decode (ADR 0118).
			head = otlp.TracesSequence(otlp.TracesWhen(func() bool { return fwd.Endpoints() > 0 }, fwd), store)
		}
		fan, err := otlp.NewTracesFanout(a.logger, reg, head, otlp.Follower{Name: "generator", Traces: a.generator})
		if err != nil {
			return fmt.Errorf("otlp traces fan-out: %w", err)
		}
		d.Traces = fan
	}
	a.otlp, err = otlp.New(cfg.OTLP.Config, d)
	if err != nil {
		return fmt.Errorf("otlp receiver: %w", err)
	}
	if err := a.otlp.UseWebConfig(a.opts.WebConfigFile); err != nil {
		return err
	}
	if a.otlpGRPC, err = net.Listen("tcp", cfg.OTLP.GRPCEndpoint); err != nil {
		return fmt.Errorf("listen otlp grpc %s: %w", cfg.OTLP.GRPCEndpoint, err)
	}
	a.push(closeIgnoringClosed(a.otlpGRPC))
	if a.otlpHTTP, err = net.Listen("tcp", cfg.OTLP.HTTPEndpoint); err != nil {
		return fmt.Errorf("listen otlp http %s: %w", cfg.OTLP.HTTPEndpoint, err)
	}
	a.push(closeIgnoringClosed(a.otlpHTTP))
	olog := a.logger.With("component", "otlp")
	olog.Info("Listening", "protocol", "grpc", "address", a.otlpGRPC.Addr().String())
	olog.Info("Listening", "protocol", "http", "address", a.otlpHTTP.Addr().String())
	return nil
}

// addRoleLoops adds the loops of the optional roles to the run group.
func (a *App) addRoleLoops(ctx context.Context, g *run.Group) {
	add := func(loop func(context.Context) error) {
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return loop(ctx) }, func(error) { cancel() })
	}
	if a.alertmanager != nil {
		add(a.alertmanager.Run)
	}
	if a.amServer != nil {
		add(a.amServer.Run)
	}
	if a.ruler != nil {
		// Rules evaluate only once the first config has given them files.
		add(func(ctx context.Context) error {
			select {
			case <-a.firstApplied:
			case <-ctx.Done():
				return nil
			}
			return a.ruler.Run(ctx)
		})
	}
	switch {
	case a.logSet != nil:
		add(a.logSet.Run)
	case a.logs != nil:
		add(a.logs.Run)
	}
	switch {
	case a.traceSet != nil:
		add(a.traceSet.Run)
	case a.traces != nil:
		add(a.traces.Run)
	}
	if a.generator != nil {
		add(a.generator.Run)
	}
	if a.tracesForward != nil {
		add(a.tracesForward.Run)
	}
	if a.logsForward != nil {
		add(a.logsForward.Run)
	}
	if a.otlp != nil {
		add(func(ctx context.Context) error { return a.otlp.RunGRPC(ctx, a.otlpGRPC) })
		add(func(ctx context.Context) error { return a.otlp.RunHTTP(ctx, a.otlpHTTP) })
	}
	if a.uiServer != nil {
		add(a.uiServer.Run)
	}
}

// openUI builds the web UI (login, sessions, the embedded pages) and binds
// its own listener when ui.listen_address is set.
func (a *App) openUI(cfg *config.Config, reg prometheus.Registerer) error {
	u, err := ui.New(cfg.UI, a.opts.StoragePath, ui.Deps{
		Logger:      a.logger,
		Registerer:  reg,
		Version:     version.Get().Version,
		RoutePrefix: a.routePrefix,
		Status:      a.statusSources(),
		Features: &ui.Features{
			Metrics:  true,
			Logs:     a.logs != nil,
			Traces:   a.traces != nil,
			Alerting: a.alertmanager != nil,
		},
	})
	if err != nil {
		return err
	}
	a.ui = u
	a.push(u.Close)
	if addr := cfg.UI.ListenAddress; addr != "" {
		if a.uiServer, err = server.Listen(addr, a.logger.With("listener", "ui")); err != nil {
			return fmt.Errorf("ui listener: %w", err)
		}
		a.push(a.uiServer.Close)
		if err := a.uiServer.UseWebConfig(a.opts.WebConfigFile); err != nil {
			return err
		}
	}
	return nil
}

// statusSources are the store statistics the UI's Status page shows (no
// upstream API has them).
func (a *App) statusSources() map[string]ui.StatusFunc {
	m := map[string]ui.StatusFunc{}
	if a.logs != nil {
		m["logstore"] = a.logStoreStatus
	}
	if a.traces != nil {
		m["tracestore"] = func(context.Context) (any, error) { return a.traces.Stats(), nil }
	}
	return m
}

// logStoreStatus is the log store's head and blocks for the UI's Status
// page (Loki has no API for it).
func (a *App) logStoreStatus(context.Context) (any, error) {
	streams, entries, bytes := a.logs.HeadStats()
	type total struct {
		Blocks    int   `json:"blocks"`
		Streams   int   `json:"streams"`
		Entries   int64 `json:"entries"`
		RawBytes  int64 `json:"rawBytes"`
		SizeBytes int64 `json:"sizeBytes"`
	}
	var blocks total
	for _, b := range a.logs.Blocks() {
		blocks.Blocks++
		blocks.Streams += b.Stats.Streams
		blocks.Entries += b.Stats.Entries
		blocks.RawBytes += b.Stats.RawBytes
		blocks.SizeBytes += b.Stats.SizeBytes
	}
	return map[string]any{
		"activeStreams": a.logs.ActiveStreams(),
		"head":          map[string]any{"streams": streams, "entries": entries, "bytes": bytes, "memoryBytes": a.logs.HeadMemory()},
		"blocks":        blocks,
	}, nil
}

// UIAddr is the UI's own listener; nil when ui.listen_address is empty.
func (a *App) UIAddr() net.Addr {
	if a.uiServer == nil {
		return nil
	}
	return a.uiServer.Addr()
}

// OTLPAddrs are the bound OTLP listeners (gRPC, HTTP); nil when off.
func (a *App) OTLPAddrs() (grpcAddr, httpAddr net.Addr) {
	if a.otlp == nil {
		return nil, nil
	}
	return a.otlpGRPC.Addr(), a.otlpHTTP.Addr()
}

// webURLs resolves --web.external-url and --web.route-prefix as Prometheus
// does: the external URL defaults to http://<host name>:<port>, loses its
// trailing "/", and the route prefix defaults to its path.
func webURLs(external, routePrefix string, addr net.Addr) (*url.URL, string, error) {
	if external == "" {
		_, port, err := net.SplitHostPort(addr.String())
		if err != nil {
			port = "9090"
		}
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		external = "http://" + net.JoinHostPort(host, port)
	}
	if strings.HasPrefix(external, `"`) || strings.HasSuffix(external, `"`) || strings.HasPrefix(external, "'") || strings.HasSuffix(external, "'") {
		return nil, "", fmt.Errorf("--web.external-url %s: must not start or end with quotes", external)
	}
	u, err := url.Parse(external)
	if err != nil {
		return nil, "", fmt.Errorf("--web.external-url: %w", err)
	}
	if u.Scheme == "" || u.Host == "" {
		return nil, "", fmt.Errorf("--web.external-url %q: want an absolute URL such as http://host:9090/prefix", external)
	}
	if u, err = weburl.Normalize(u); err != nil {
		return nil, "", fmt.Errorf("--web.external-url: %w", err)
	}
	return u, weburl.RoutePrefix(routePrefix, u), nil
}

func closeIgnoringClosed(l net.Listener) func() error {
	return func() error {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	}
}
