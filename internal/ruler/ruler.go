package ruler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"

	"github.com/nx-watcher/nxwatcher/internal/weburl"
)

// Deps are the ruler's collaborators.
type Deps struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Queryable is read by rule expressions and by the restore of `for`
	// state (ALERTS_FOR_STATE); Appendable receives recorded series and
	// ALERTS / ALERTS_FOR_STATE. A *tsdb.DB is both.
	Queryable  storage.Queryable
	Appendable storage.AppendableV2
	Engine     promql.QueryEngine
	// External is Prometheus's --web.external-url, path prefix included
	// (e.g. https://nx.example.com/prometheus): the base of alert generator
	// URLs (<External>/graph?g0.expr=…) and $externalURL in templates. A
	// trailing "/" is dropped.
	External *url.URL
	// Notify, when set, receives every alert in-process (the embedded
	// Alertmanager's Send), after external labels and alert_relabel_configs,
	// exactly as an external Alertmanager would see it.
	Notify func(alerts ...*notifier.Alert)
	// NotifyURL is listed by Alertmanagers() for the in-process path, e.g.
	// "http://localhost:9090/api/v2/alerts", so /api/v1/alertmanagers shows
	// the embedded Alertmanager next to the external ones. Optional.
	NotifyURL string
	// SDMetrics are the service-discovery metrics shared with the scrape
	// discovery manager (discovery.CreateAndRegisterSDMetrics can run only
	// once per registry). When nil the notifier's discovery keeps them on a
	// private registry.
	SDMetrics *discovery.SDMetrics
}

// Ruler evaluates the rule files of a prometheus.yml with Prometheus's
// rules manager and sends the alerts to the Alertmanagers of its
// alerting section (Prometheus's notifier, with its own discovery) and
// in-process to Deps.Notify.
type Ruler struct {
	logger      *slog.Logger
	cfg         Config
	externalURL string
	notify      func(alerts ...*notifier.Alert)
	notifyURL   *url.URL

	rules     *rules.Manager
	notifier  *notifier.Manager
	discovery *discovery.Manager
	ctx       context.Context
	cancel    context.CancelFunc

	// What the in-process path applies, as the notifier does for its own.
	sendMu         sync.RWMutex
	externalLabels labels.Labels
	relabelConfigs []*relabel.Config

	applyMu   sync.Mutex
	loader    *preparedLoader
	ruleFiles atomic.Pointer[[]string]
	metrics   *metrics
}

// New builds the rules manager, the notifier and the notifier's discovery
// manager. Nothing evaluates or sends until Run; ApplyConfig may come
// before Run (and should, as in Prometheus).
func New(cfg Config, deps Deps) (*Ruler, error) {
	switch {
	case deps.Logger == nil:
		return nil, errors.New("new ruler: logger is required")
	case deps.Registerer == nil:
		return nil, errors.New("new ruler: registerer is required")
	case deps.Queryable == nil || deps.Appendable == nil:
		return nil, errors.New("new ruler: queryable and appendable are required")
	case deps.Engine == nil:
		return nil, errors.New("new ruler: engine is required")
	case deps.External == nil:
		return nil, errors.New("new ruler: external url is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new ruler: %w", err)
	}
	extURL, err := weburl.Normalize(deps.External)
	if err != nil {
		return nil, fmt.Errorf("new ruler: external url: %w", err)
	}
	var notifyURL *url.URL
	if deps.NotifyURL != "" {
		if notifyURL, err = url.Parse(deps.NotifyURL); err != nil {
			return nil, fmt.Errorf("new ruler: notify url: %w", err)
		}
	}
	logger := deps.Logger
	r := &Ruler{
		notifyURL:   notifyURL,
		logger:      logger.With("component", "ruler"),
		cfg:         cfg,
		externalURL: extURL.String(),
		notify:      deps.Notify,
		metrics:     newMetrics(deps.Registerer),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())

	sdMetrics := deps.SDMetrics
	if sdMetrics == nil {
		sdMetrics, err = discovery.CreateAndRegisterSDMetrics(prometheus.NewRegistry())
		if err != nil {
			r.cancel()
			return nil, fmt.Errorf("new ruler: discovery metrics: %w", err)
		}
	}
	r.discovery = discovery.NewManager(r.ctx, logger.With("component", "discovery manager notify"),
		deps.Registerer, sdMetrics, discovery.Name("notify"))
	if r.discovery == nil {
		r.cancel()
		return nil, errors.New("new ruler: create notifier discovery manager: see log")
	}
	r.notifier = notifier.NewManager(&notifier.Options{
		QueueCapacity:   cfg.NotificationQueueCapacity,
		DrainOnShutdown: true,
		Registerer:      deps.Registerer,
	}, model.UTF8Validation, logger.With("component", "notifier"))

	r.loader = &preparedLoader{parser: parser.NewParser(parser.Options{}), logger: logger}
	r.rules = rules.NewManager(&rules.ManagerOptions{
		GroupLoader:          r.loader,
		NameValidationScheme: model.UTF8Validation,
		ExternalURL:          extURL,
		QueryFunc:            rules.EngineQueryFunc(deps.Engine, deps.Queryable),
		NotifyFunc:           rules.SendAlerts(sender{r}, r.externalURL),
		Context:              r.ctx,
		AppendableV2:         deps.Appendable,
		Queryable:            deps.Queryable,
		Logger:               logger.With("component", "rule manager"),
		Registerer:           deps.Registerer,
		OutageTolerance:      time.Duration(cfg.OutageTolerance),
		ForGracePeriod:       time.Duration(cfg.ForGracePeriod),
		ResendDelay:          time.Duration(cfg.ResendDelay),
	})
	return r, nil
}

// ApplyConfig applies a prometheus.yml already parsed by Prometheus's
// config package: Prepare, then commit. If a rule file is broken the error
// names file:line:column and the rules already running are kept.
func (r *Ruler) ApplyConfig(pc *promconfig.Config) error {
	commit, err := r.Prepare(pc)
	if err != nil {
		return err
	}
	commit()
	return nil
}

// Prepare loads and checks everything pc asks of the ruler without
// touching what runs: rule_files globs (already relative to the config
// file's directory after Prometheus's config.Load/SetDirectory) are
// expanded, every file is read and parsed with its PromQL and templates
// checked, and the HTTP clients of alerting.alertmanagers are built. On
// error nothing changed (counted in nxwatcher_ruler_config_reloads_total).
//
// commit applies, in Prometheus's order, the notifier, its discovery, the
// in-process external labels and relabelling, and the rule groups. The
// groups come from the files as Prepare read them, so a file edited
// between Prepare and commit cannot make commit fail; commit has no error
// to return. Of two prepared configs the one committed last wins.
func (r *Ruler) Prepare(pc *promconfig.Config) (commit func(), err error) {
	files, parsed, err := loadRuleFiles(pc.RuleFiles)
	if err == nil {
		err = checkAlertmanagerClients(pc)
	}
	if err != nil {
		r.metrics.reloads.WithLabelValues("failure").Inc()
		return nil, fmt.Errorf("prepare rules config: %w", err)
	}
	var once sync.Once
	return func() { once.Do(func() { r.commit(pc, files, parsed) }) }, nil
}

func (r *Ruler) commit(pc *promconfig.Config, files []string, parsed map[string]*rulefmt.RuleGroups) {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	var errs []error
	// Prometheus main's order: notifier, then its discovery, then rules.
	if err := r.notifier.ApplyConfig(pc); err != nil {
		errs = append(errs, fmt.Errorf("notifier: %w", err))
	}
	sd := make(map[string]discovery.Configs)
	for k, v := range pc.AlertingConfig.AlertmanagerConfigs.ToMap() {
		sd[k] = v.ServiceDiscoveryConfigs
	}
	if err := r.discovery.ApplyConfig(sd); err != nil {
		errs = append(errs, fmt.Errorf("notifier discovery: %w", err))
	}
	r.sendMu.Lock()
	r.externalLabels = pc.GlobalConfig.ExternalLabels
	r.relabelConfigs = pc.AlertingConfig.AlertRelabelConfigs
	r.sendMu.Unlock()

	interval := time.Duration(pc.GlobalConfig.EvaluationInterval)
	if interval <= 0 {
		interval = time.Duration(promconfig.DefaultGlobalConfig.EvaluationInterval)
	}
	r.loader.set(parsed)
	if err := r.rules.Update(interval, files, pc.GlobalConfig.ExternalLabels, r.externalURL, nil); err != nil {
		errs = append(errs, fmt.Errorf("rules: %w", err))
	}
	r.ruleFiles.Store(&files)
	if err := errors.Join(errs...); err != nil {
		// Prepare checked what these steps check; this is not expected.
		r.logger.Error("Commit of a prepared rules config failed in part", "err", err)
		r.metrics.reloads.WithLabelValues("failure").Inc()
		return
	}
	r.metrics.reloads.WithLabelValues("success").Inc()
}

// checkAlertmanagerClients builds the HTTP client of every
// alerting.alertmanagers entry, the notifier's only fallible step (it
// would otherwise fail half-way through notifier.ApplyConfig).
func checkAlertmanagerClients(pc *promconfig.Config) error {
	var errs []error
	for k, am := range pc.AlertingConfig.AlertmanagerConfigs.ToMap() {
		c, err := commoncfg.NewClientFromConfig(am.HTTPClientConfig, "alertmanager")
		if err != nil {
			errs = append(errs, fmt.Errorf("alerting.alertmanagers %s: %w", k, err))
			continue
		}
		c.CloseIdleConnections()
	}
	return errors.Join(errs...)
}

// globRuleFiles expands rule_files patterns as Prometheus does (they are
// already relative to the config file's directory after config.Load).
func globRuleFiles(patterns []string) ([]string, error) {
	var files []string
	for _, pat := range patterns {
		fs, err := filepath.Glob(pat)
		if err != nil {
			return nil, fmt.Errorf("rule_files %q: %w", pat, err)
		}
		files = append(files, fs...)
	}
	return files, nil
}

// loadRuleFiles expands the rule_files patterns and parses every file
// fully, reporting all errors with file:line:column (the rules manager
// only logs them).
func loadRuleFiles(patterns []string) ([]string, map[string]*rulefmt.RuleGroups, error) {
	files, err := globRuleFiles(patterns)
	if err != nil {
		return nil, nil, err
	}
	var errs []error
	parsed := make(map[string]*rulefmt.RuleGroups, len(files))
	p := parser.NewParser(parser.Options{})
	for _, f := range files {
		rgs, fileErrs := rulefmt.ParseFile(f, false, model.UTF8Validation, p, slog.New(slog.DiscardHandler))
		if len(fileErrs) > 0 {
			errs = append(errs, fileErrs...)
			continue
		}
		parsed[f] = rgs
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return files, parsed, nil
}

// preparedLoader is the rules manager's GroupLoader: it hands out the rule
// groups Prepare parsed, so commit evaluates exactly what was checked.
// Files it does not hold are read from disk, as upstream's FileLoader.
type preparedLoader struct {
	parser parser.Parser
	logger *slog.Logger
	mu     sync.Mutex
	groups map[string]*rulefmt.RuleGroups
}

func (l *preparedLoader) set(groups map[string]*rulefmt.RuleGroups) {
	l.mu.Lock()
	l.groups = groups
	l.mu.Unlock()
}

func (l *preparedLoader) Load(identifier string, ignoreUnknownFields bool, scheme model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	l.mu.Lock()
	rgs, ok := l.groups[identifier]
	l.mu.Unlock()
	if ok {
		return rgs, nil
	}
	return rulefmt.ParseFile(identifier, ignoreUnknownFields, scheme, l.parser, l.logger)
}

func (l *preparedLoader) Parse(query string) (parser.Expr, error) { return l.parser.ParseExpr(query) }

// RuleFiles lists the files of the rules in force.
func (r *Ruler) RuleFiles() []string {
	if p := r.ruleFiles.Load(); p != nil {
		return *p
	}
	return nil
}

// Manager is the rules manager; it implements web/api/v1's RulesRetriever
// (for /api/v1/rules and /api/v1/alerts).
func (r *Ruler) Manager() *rules.Manager { return r.rules }

// Notifier is the notifier manager (external Alertmanagers only).
func (r *Ruler) Notifier() *notifier.Manager { return r.notifier }

// Alertmanagers lists the active Alertmanagers: the external ones the
// notifier discovered, then Deps.NotifyURL. With DroppedAlertmanagers the
// Ruler implements web/api/v1's AlertmanagerRetriever.
func (r *Ruler) Alertmanagers() []*url.URL {
	out := r.notifier.Alertmanagers()
	if r.notifyURL != nil {
		out = append(out, r.notifyURL)
	}
	return out
}

// Close ends the notifier's discovery when Run never ran (a failed start);
// idempotent.
func (r *Ruler) Close() error {
	r.cancel()
	return nil
}

// DroppedAlertmanagers lists Alertmanagers dropped by relabelling.
func (r *Ruler) DroppedAlertmanagers() []*url.URL { return r.notifier.DroppedAlertmanagers() }

// Run evaluates rules and sends alerts until ctx ends, then stops rule
// evaluation first and drains the notification queue.
func (r *Ruler) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() {
		// Discovery returns its context's error when Run cancels it.
		if err := r.discovery.Run(); err != nil && !errors.Is(err, context.Canceled) {
			r.logger.Error("notifier discovery stopped", "err", err)
		}
	})
	wg.Go(func() { r.notifier.Run(r.discovery.SyncCh()) })
	rulesDone := make(chan struct{})
	go func() {
		defer close(rulesDone)
		r.rules.Run()
	}()

	<-ctx.Done()
	r.rules.Stop()
	<-rulesDone
	r.notifier.Stop()
	r.cancel() // ends discovery
	wg.Wait()
	return nil
}

// sender fans alerts out to the notifier (external Alertmanagers) and
// the in-process Alertmanager.
type sender struct{ r *Ruler }

func (s sender) Send(alerts ...*notifier.Alert) {
	s.r.notifier.Send(alerts...)
	if s.r.notify == nil {
		return
	}
	s.r.sendMu.RLock()
	out := relabelAlerts(s.r.relabelConfigs, s.r.externalLabels, alerts)
	s.r.sendMu.RUnlock()
	if len(out) > 0 {
		s.r.notify(out...)
	}
	s.r.metrics.sentInProcess.Add(float64(len(out)))
}

// relabelAlerts adds external labels and applies alert_relabel_configs,
// as the notifier does before it sends; inputs are not modified.
func relabelAlerts(cfgs []*relabel.Config, external labels.Labels, alerts []*notifier.Alert) []*notifier.Alert {
	lb := labels.NewBuilder(labels.EmptyLabels())
	out := make([]*notifier.Alert, 0, len(alerts))
	for _, a := range alerts {
		lb.Reset(a.Labels)
		external.Range(func(l labels.Label) {
			if a.Labels.Get(l.Name) == "" {
				lb.Set(l.Name, l.Value)
			}
		})
		if !relabel.ProcessBuilder(lb, cfgs...) {
			continue
		}
		if ls := lb.Labels(); !labels.Equal(ls, a.Labels) {
			a = &notifier.Alert{Labels: ls, Annotations: a.Annotations, StartsAt: a.StartsAt, EndsAt: a.EndsAt, GeneratorURL: a.GeneratorURL}
		}
		out = append(out, a)
	}
	return out
}
