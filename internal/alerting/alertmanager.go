package alerting

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/api"
	amconfig "github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/config/receiver"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/eventrecorder"
	"github.com/prometheus/alertmanager/featurecontrol"
	"github.com/prometheus/alertmanager/inhibit"
	"github.com/prometheus/alertmanager/marker"
	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/provider/mem"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/alertmanager/timeinterval"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/notifier"

	"github.com/nx-watcher/nxwatcher/internal/weburl"
)

// Upstream defaults that have no config key here.
const (
	alertGCInterval             = 30 * time.Minute
	dispatchMaintenanceInterval = 30 * time.Second
	defaultExternalURL          = "http://localhost:9093"
)

// Deps are the embedded Alertmanager's collaborators.
type Deps struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// External is the externally visible URL of the Alertmanager, path
	// prefix included (Alertmanager's --web.external-url, e.g.
	// https://nx.example.com/alertmanager). It is {{ .ExternalURL }} in
	// templates (and so the base of silence links and the webhook payload's
	// externalURL) without a trailing "/". Default http://localhost:9093.
	External *url.URL
	// RoutePrefix is the path Handler serves under (Alertmanager's
	// --web.route-prefix): the API is at RoutePrefix+"/api/v2/". Empty
	// means the path of the external URL, as upstream defaults; "/" when
	// a proxy strips the prefix.
	RoutePrefix string
}

// externalURL returns a copy of u (default http://localhost:9093)
// without a trailing "/" in its path, as Prometheus and Alertmanager
// normalise --web.external-url.
func externalURL(u *url.URL) (*url.URL, error) {
	if u == nil {
		var err error
		if u, err = url.Parse(defaultExternalURL); err != nil {
			return nil, err
		}
	}
	return weburl.Normalize(u)
}

// Alertmanager is an Alertmanager built from upstream's packages: alert
// store, silences, notification log, inhibitor, dispatcher, notification
// pipeline and the API v2. Construct it with New, call ApplyConfig to
// reload, Run for background maintenance, Close to stop.
type Alertmanager struct {
	logger      *slog.Logger
	cfg         Config
	externalURL *url.URL
	routePrefix string
	startTime   time.Time
	metrics     *metrics

	recorder          eventrecorder.Recorder
	alerts            *mem.Alerts
	stopAlerts        context.CancelFunc
	silences          *silence.Silences
	silencer          *silence.Silencer
	nflog             *nflog.Log
	groupMarker       marker.GroupMarker
	api               *lazyAPI
	handler           http.Handler
	pipelineBuilder   *notify.PipelineBuilder
	dispatcherMetrics *dispatch.DispatcherMetrics

	silencesFile string
	nflogFile    string
	journalFile  string
	snapshotMu   sync.Mutex // one writer per snapshot file

	mu         sync.Mutex // serialises ApplyConfig and Close
	closed     bool
	dispatcher atomic.Pointer[dispatch.Dispatcher]
	inhibitor  atomic.Pointer[inhibit.Inhibitor]
	amConfig   atomic.Pointer[amconfig.Config]
	routes     atomic.Pointer[dispatch.Route]

	// journal holds notification-log entries since the last snapshot
	// (see durableNflog).
	journal *nflogJournal
}

// New builds the Alertmanager, loads silences and the notification log
// from dataDir (they survive restarts) and applies cfg. Callers check
// cfg.Enabled before calling New.
func New(cfg Config, dataDir string, deps Deps) (am *Alertmanager, err error) {
	if deps.Logger == nil {
		return nil, errors.New("new alertmanager: logger is required")
	}
	if deps.Registerer == nil {
		return nil, errors.New("new alertmanager: registerer is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new alertmanager: %w", err)
	}
	amConf, err := cfg.LoadAlertmanagerConfig()
	if err != nil {
		return nil, fmt.Errorf("new alertmanager: %w", err)
	}
	extURL, err := externalURL(deps.External)
	if err != nil {
		return nil, fmt.Errorf("new alertmanager: external url: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("new alertmanager: create data dir: %w", err)
	}

	logger := deps.Logger.With("component", "alertmanager")
	reg := deps.Registerer
	a := &Alertmanager{
		logger:       logger,
		cfg:          cfg,
		externalURL:  extURL,
		routePrefix:  weburl.RoutePrefix(deps.RoutePrefix, extURL),
		startTime:    time.Now(),
		metrics:      newMetrics(reg),
		recorder:     eventrecorder.NopRecorder(),
		groupMarker:  marker.NewGroupMarker(),
		silencesFile: filepath.Join(dataDir, "silences"),
		nflogFile:    filepath.Join(dataDir, "nflog"),
		journalFile:  filepath.Join(dataDir, "nflog.journal"),
	}
	// Undo what was built if a later step fails.
	defer func() {
		if err != nil {
			a.closeAll()
		}
	}()

	flags, err := featurecontrol.NewFlags(logger, "")
	if err != nil {
		return nil, fmt.Errorf("new alertmanager: feature flags: %w", err)
	}
	retention := time.Duration(cfg.Retention)

	a.nflog, err = nflog.New(nflog.Options{
		SnapshotFile: snapshotIfExists(a.nflogFile),
		Retention:    retention,
		Logger:       logger.With("component", "nflog"),
		Metrics:      reg,
	})
	if err != nil {
		return nil, fmt.Errorf("new alertmanager: open notification log %s: %w", a.nflogFile, err)
	}
	a.journal, err = openNflogJournal(a.journalFile, a.nflog)
	if err != nil {
		return nil, fmt.Errorf("new alertmanager: notification log %s: %w", a.journalFile, err)
	}
	a.silences, err = silence.New(silence.Options{
		SnapshotFile:  snapshotIfExists(a.silencesFile),
		Retention:     retention,
		Logger:        logger.With("component", "silences"),
		Metrics:       reg,
		EventRecorder: a.recorder,
	})
	if err != nil {
		return nil, fmt.Errorf("new alertmanager: open silences %s: %w", a.silencesFile, err)
	}
	a.silencer = silence.NewSilencer(a.silences, logger, a.recorder)

	alertsCtx, stopAlerts := context.WithCancel(context.Background())
	a.stopAlerts = stopAlerts
	a.alerts, err = mem.NewAlerts(alertsCtx, alertGCInterval, 0, a.silencer, logger, a.recorder, reg, flags)
	if err != nil {
		return nil, fmt.Errorf("new alertmanager: alert store: %w", err)
	}

	// The API v2 is built on its first request (ADR 0087).
	a.api, err = newLazyAPI(api.Options{
		Alerts:          a.alerts,
		Silences:        a.silences,
		GroupMutedFunc:  a.groupMarker.Muted,
		Logger:          logger.With("component", "api"),
		RequestDuration: a.metrics.requestDuration,
		GroupFunc: func(ctx context.Context, rf func(*dispatch.Route) bool, af func(*alert.Alert, time.Time) bool) (dispatch.AlertGroups, map[model.Fingerprint][]string, error) {
			d := a.dispatcher.Load()
			if d == nil {
				return nil, nil, errors.New("no configuration applied")
			}
			return d.Groups(ctx, rf, af)
		},
	}, a.routePrefix, a.startTime, reg)
	if err != nil {
		return nil, fmt.Errorf("new alertmanager: api: %w", err)
	}
	a.handler = a.countRejected(a.persistSilenceChanges(a.api))

	a.pipelineBuilder = notify.NewPipelineBuilder(reg, flags, a.recorder)
	a.dispatcherMetrics = dispatch.NewDispatcherMetrics(false, reg, flags)

	st, err := a.build(amConf)
	if err != nil {
		return nil, fmt.Errorf("new alertmanager: %w", err)
	}
	a.swap(st)
	return a, nil
}

func snapshotIfExists(path string) string {
	if _, err := os.Stat(path); err != nil {
		return ""
	}
	return path
}

// ApplyConfig reloads the alertmanager.yml named by cfg: Prepare, then
// commit. A config that does not load is rejected and the running one is
// kept.
func (a *Alertmanager) ApplyConfig(cfg Config) error {
	commit, err := a.Prepare(cfg)
	if err != nil {
		return err
	}
	commit()
	return nil
}

// Prepare builds the whole new state for cfg — parses the alertmanager.yml,
// resolves and checks its files, parses the templates, builds every
// receiver's integrations, the route tree, the time intervals and the
// inhibition rules — without touching what runs. On error nothing changed
// (the failure is counted in nxwatcher_alerting_config_reloads_total).
// commit swaps the prepared state in; it cannot fail, so a caller can
// prepare every component first and then commit all of them or none. A
// commit after Close does nothing; of two prepared states the one committed
// last wins. Retention, maintenance interval and listen address take effect
// only at the next start.
func (a *Alertmanager) Prepare(cfg Config) (commit func(), err error) {
	st, err := a.prepare(cfg)
	if err != nil {
		a.metrics.reloads.WithLabelValues("failure").Inc()
		return nil, fmt.Errorf("prepare alertmanager config: %w", err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if a.swap(st) {
				a.metrics.reloads.WithLabelValues("success").Inc()
			}
		})
	}, nil
}

func (a *Alertmanager) prepare(cfg Config) (*amState, error) {
	conf, err := cfg.LoadAlertmanagerConfig()
	if err != nil {
		return nil, err
	}
	return a.build(conf)
}

// amState is everything config-scoped, built before anything is swapped.
type amState struct {
	conf         *amconfig.Config
	tmpl         *template.Template
	routes       *dispatch.Route
	receivers    map[string][]notify.Integration
	active       int
	integrations int
	intervals    map[string][]timeinterval.TimeInterval
}

// build does every fallible step of a reload (the order follows
// upstream's app/reloader.go) and touches nothing that runs.
func (a *Alertmanager) build(conf *amconfig.Config) (*amState, error) {
	tmpl, err := template.FromGlobs(conf.Templates)
	if err != nil {
		return nil, fmt.Errorf("parse templates: %w", err)
	}
	tmpl.ExternalURL = a.externalURL

	routes := dispatch.NewRoute(conf.Route, nil)
	active := map[string]struct{}{}
	routes.Walk(func(r *dispatch.Route) { active[r.RouteOpts.Receiver] = struct{}{} })

	receivers := make(map[string][]notify.Integration, len(active))
	integrations := 0
	for _, rcv := range conf.Receivers {
		if _, ok := active[rcv.Name]; !ok {
			continue // upstream skips receivers no route uses
		}
		ints, err := receiver.BuildReceiverIntegrations(rcv, tmpl, a.logger)
		if err != nil {
			return nil, fmt.Errorf("receiver %q: %w", rcv.Name, err)
		}
		receivers[rcv.Name] = ints
		integrations += len(ints)
	}

	intervals := make(map[string][]timeinterval.TimeInterval, len(conf.MuteTimeIntervals)+len(conf.TimeIntervals))
	for _, ti := range conf.MuteTimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	for _, ti := range conf.TimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	return &amState{
		conf: conf, tmpl: tmpl, routes: routes, receivers: receivers,
		active: len(active), integrations: integrations, intervals: intervals,
	}, nil
}

// swap stops the running inhibitor and dispatcher and starts the prepared
// ones. Nothing in it fails; it reports false when the Alertmanager is
// closed.
func (a *Alertmanager) swap(st *amState) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	if old := a.inhibitor.Load(); old != nil {
		old.Stop()
	}
	if old := a.dispatcher.Load(); old != nil {
		old.Stop()
	}
	conf := st.conf
	inhibitor := inhibit.NewInhibitor(a.alerts, conf.InhibitRules, a.logger, a.recorder)
	pipeline := a.pipelineBuilder.New(st.receivers, noWait, inhibitor, a.silencer,
		timeinterval.NewIntervener(st.intervals), a.groupMarker, durableNflog{a}, nil)

	a.metrics.receivers.Set(float64(st.active))
	a.metrics.integrations.Set(float64(st.integrations))
	a.metrics.inhibitionRules.Set(float64(len(conf.InhibitRules)))

	a.api.Update(conf, func(ctx context.Context, ls model.LabelSet) {
		if in := a.inhibitor.Load(); in != nil {
			in.Mutes(ctx, ls)
		}
		a.silencer.Mutes(ctx, ls)
	})
	a.amConfig.Store(conf)

	d := dispatch.NewDispatcher(a.alerts, st.routes, pipeline, a.groupMarker, notifyTimeout,
		dispatchMaintenanceInterval, nil, a.logger, a.recorder, a.dispatcherMetrics, st.tmpl)

	// The inhibitor loads current alerts before the dispatcher starts, so
	// nothing inhibited slips out.
	go inhibitor.Run()
	inhibitor.WaitForLoading()
	a.inhibitor.Store(inhibitor)
	go d.Run(a.startTime)
	d.WaitForLoading()
	a.dispatcher.Store(d)
	a.routes.Store(st.routes)
	return true
}

// Config returns the alertmanager.yml in force (for tests and status).
func (a *Alertmanager) Config() *amconfig.Config { return a.amConfig.Load() }

func noWait() time.Duration { return 0 }

// notifyTimeout is upstream's per-notification timeout without a cluster.
func notifyTimeout(d time.Duration) time.Duration {
	return max(d, notify.MinTimeout)
}

// Handler serves Alertmanager's API v2 under RoutePrefix+"/api/v2/"
// (upstream paths, parameters and JSON shapes). Mount it at that path on
// any listener (mux.Handle(am.APIPath(), am.Handler())).
func (a *Alertmanager) Handler() http.Handler { return a.handler }

// APIPath is where Handler expects to be mounted: RoutePrefix+"/api/v2/".
func (a *Alertmanager) APIPath() string {
	return strings.TrimSuffix(a.routePrefix, "/") + "/api/v2/"
}

// ExternalURL is the normalised external URL ({{ .ExternalURL }}).
func (a *Alertmanager) ExternalURL() *url.URL {
	c := *a.externalURL
	return &c
}

// Send hands alerts from the ruler straight to the alert store, with the
// same defaults and validation as POST /api/v2/alerts. Invalid alerts are
// counted and dropped; the valid ones are kept.
func (a *Alertmanager) Send(alerts ...*notifier.Alert) {
	if len(alerts) == 0 {
		return
	}
	now := time.Now()
	resolveTimeout := 5 * time.Minute
	if c := a.amConfig.Load(); c != nil && c.Global != nil {
		resolveTimeout = time.Duration(c.Global.ResolveTimeout)
	}
	valid := make([]*alert.Alert, 0, len(alerts))
	for _, na := range alerts {
		al := fromNotifier(na, now, resolveTimeout)
		if err := al.Validate(); err != nil {
			a.metrics.inProcess.WithLabelValues("invalid").Inc()
			continue
		}
		valid = append(valid, al)
	}
	if err := a.alerts.Put(context.Background(), valid...); err != nil {
		a.metrics.inProcess.WithLabelValues("failed").Add(float64(len(valid)))
		a.logger.Error("store alerts from ruler", "err", err)
		return
	}
	a.metrics.inProcess.WithLabelValues("accepted").Add(float64(len(valid)))
}

func fromNotifier(na *notifier.Alert, now time.Time, resolveTimeout time.Duration) *alert.Alert {
	ls := make(model.LabelSet, na.Labels.Len())
	na.Labels.Range(func(l labelsLabel) {
		if l.Value != "" {
			ls[model.LabelName(l.Name)] = model.LabelValue(l.Value)
		}
	})
	an := make(model.LabelSet, na.Annotations.Len())
	na.Annotations.Range(func(l labelsLabel) {
		an[model.LabelName(l.Name)] = model.LabelValue(l.Value)
	})
	al := &alert.Alert{
		Alert: model.Alert{
			Labels:       ls,
			Annotations:  an,
			StartsAt:     na.StartsAt,
			EndsAt:       na.EndsAt,
			GeneratorURL: na.GeneratorURL,
		},
		UpdatedAt: now,
	}
	if al.StartsAt.IsZero() {
		if al.EndsAt.IsZero() {
			al.StartsAt = now
		} else {
			al.StartsAt = al.EndsAt
		}
	}
	if al.EndsAt.IsZero() {
		al.Timeout = true
		al.EndsAt = now.Add(resolveTimeout)
	}
	return al
}

// Run writes snapshots of silences and the notification log every
// maintenance interval and once more when ctx ends.
func (a *Alertmanager) Run(ctx context.Context) error {
	t := time.NewTicker(time.Duration(a.cfg.MaintenanceInterval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			a.maintain()
			return nil
		case <-t.C:
			a.maintain()
		}
	}
}

func (a *Alertmanager) maintain() {
	a.snapshot("silences", a.silences, a.silencesFile)
	a.snapshotMu.Lock()
	defer a.snapshotMu.Unlock()
	size, err := a.journal.compact(a.nflog, a.nflogFile)
	if err != nil {
		a.metrics.snapshotErrors.WithLabelValues("nflog").Inc()
		a.logger.Error("write snapshot", "state", "nflog", "err", err)
		return
	}
	a.metrics.snapshotBytes.WithLabelValues("nflog").Set(float64(size))
}

func (a *Alertmanager) snapshot(name string, s snapshotter, path string) bool {
	a.snapshotMu.Lock()
	defer a.snapshotMu.Unlock()
	return a.snapshotLocked(name, s, path) == nil
}

// snapshotLocked writes one snapshot; the caller holds snapshotMu.
func (a *Alertmanager) snapshotLocked(name string, s snapshotter, path string) error {
	size, err := writeSnapshot(s, path)
	if err != nil {
		a.metrics.snapshotErrors.WithLabelValues(name).Inc()
		a.logger.Error("write snapshot", "state", name, "err", err)
		return err
	}
	a.metrics.snapshotBytes.WithLabelValues(name).Set(float64(size))
	return nil
}

// persistSilenceChanges writes the silence snapshot before a successful
// create or expire is answered, so an acknowledged silence survives a
// crash, not only a clean shutdown.
func (a *Alertmanager) persistSilenceChanges(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mutating := (r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/api/v2/silences")) ||
			(r.Method == http.MethodDelete && strings.Contains(r.URL.Path, "/api/v2/silence/"))
		if !mutating {
			next.ServeHTTP(w, r)
			return
		}
		rec := &bufferedResponse{header: w.Header(), status: http.StatusOK}
		next.ServeHTTP(rec, r)
		if rec.status < 300 && !a.snapshot("silences", a.silences, a.silencesFile) {
			http.Error(w, "silence applied but not persisted; see server log", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(rec.status)
		_, _ = w.Write(rec.body.Bytes())
	})
}

// countRejected counts 4xx answers per endpoint, so bad input shows in
// metrics even where upstream keeps no counter (silences).
func (a *Alertmanager) countRejected(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		if sw.status >= 400 && sw.status < 500 {
			a.metrics.rejected.WithLabelValues(endpointOf(strings.TrimPrefix(r.URL.Path, strings.TrimSuffix(a.routePrefix, "/")))).Inc()
		}
	})
}

// endpointOf maps a request path to a bounded label value.
func endpointOf(path string) string {
	rest, ok := strings.CutPrefix(path, "/api/v2/")
	if !ok {
		return "other"
	}
	switch {
	case rest == "alerts", rest == "alerts/groups", rest == "silences", rest == "receivers", rest == "status":
		return rest
	case strings.HasPrefix(rest, "silence/"):
		return "silence"
	}
	return "other"
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(p)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

type bufferedResponse struct {
	header      http.Header
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if !b.wroteHeader {
		b.status, b.wroteHeader = code, true
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.wroteHeader = true
	return b.body.Write(p)
}

// Close stops the dispatcher and inhibitor, writes final snapshots and
// releases the alert store. It is safe to call more than once.
func (a *Alertmanager) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.mu.Unlock()
	a.closeAll()
	return nil
}

func (a *Alertmanager) closeAll() {
	if in := a.inhibitor.Load(); in != nil {
		in.Stop()
	}
	if d := a.dispatcher.Load(); d != nil {
		d.Stop()
	}
	if a.silences != nil && a.journal != nil {
		a.maintain()
	}
	if a.journal != nil {
		_ = a.journal.close()
	}
	if a.alerts != nil {
		a.alerts.Close()
	}
	if a.stopAlerts != nil {
		a.stopAlerts()
	}
}
