// Package agent is the log shipper role (`nxwatcher agent`): a drop-in for
// Promtail that reads a promtail.yaml, discovers files with Prometheus's own
// service discovery and relabelling, tails them through Promtail's pipeline
// stages and pushes them to Loki's /loki/api/v1/push (ours or any Loki).
//
// The agent serves its own HTTP (the HTTP routes below, on
// server.http_listen_port):
//
//	GET /metrics            Prometheus metrics (Promtail's names where they exist)
//	GET /ready              200 once discovery has produced its first targets
//	GET /targets            plain page of active file targets and their labels
//	GET /service-discovery  plain page of discovered targets before and after relabelling
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/kubernetes"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"golang.org/x/time/rate"
)

// Deps are what the agent reports to.
type Deps struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
}

// Options are settings that are not in promtail.yaml.
type Options struct {
	// NodeName keeps only pods of this node (NODE_NAME, else HOSTNAME, as
	// Promtail's chart sets it); empty keeps all.
	NodeName string
	// PodLogsDir is where the kubelet writes pod logs (/var/log/pods).
	PodLogsDir string
	// PollInterval is how often a file at its end is checked (250ms).
	PollInterval time.Duration
	// ShutdownTimeout bounds the final push on shutdown (5s).
	ShutdownTimeout time.Duration
	// DryRun, when set, receives every entry (time, labels, line) instead of
	// the clients, and positions are never saved (Promtail's -dry-run).
	DryRun io.Writer
}

// Agent ships log files to Loki clients.
type Agent struct {
	cfg     *Config
	opts    Options
	logger  *slog.Logger
	deps    Deps
	m       *agentMetrics
	pm      *pipelineMetrics
	pos     *Positions
	clients []*client
	limiter *rate.Limiter

	sdMetrics *discovery.SDMetrics
	dm        *discovery.Manager
	dmCancel  context.CancelFunc

	ready atomic.Bool

	mu       sync.Mutex
	groups   map[string][]*targetgroup.Group
	active   []fileTarget        // last computed, for /targets
	sd       []discovered        // for /service-discovery
	tailers  map[string]*running // by path
	openLog  map[string]bool     // paths whose open failure was logged
	derived  map[string]bool     // jobs whose __path__ was derived (logged once)
	jobsByNm map[string]*ScrapeConfig

	sm      *sourceMetrics
	sources []*lineSource
	pushes  []*pushTarget
	syslogs []*syslogTarget
}

type fileTarget struct {
	job    string
	path   string
	labels model.LabelSet
}

type discovered struct {
	job    string
	before labels.Labels
	after  labels.Labels
	kept   bool
	reason string
}

type running struct {
	cancel context.CancelFunc
	done   chan struct{}
	labels model.LabelSet
}

// New builds an agent; nothing runs until Run.
func New(cfg *Config, opts Options, deps Deps) (*Agent, error) {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Registerer == nil {
		r := prometheus.NewRegistry()
		deps.Registerer, deps.Gatherer = r, r
	}
	if opts.PodLogsDir == "" {
		opts.PodLogsDir = "/var/log/pods"
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 250 * time.Millisecond
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 5 * time.Second
	}
	logger := deps.Logger.With("component", "agent")
	for _, w := range cfg.Warnings() {
		logger.Warn(w)
	}
	a := &Agent{
		cfg: cfg, opts: opts, logger: logger, deps: deps,
		m:       newAgentMetrics(deps.Registerer),
		pm:      newPipelineMetrics(deps.Registerer),
		tailers: map[string]*running{}, openLog: map[string]bool{}, derived: map[string]bool{},
		jobsByNm: map[string]*ScrapeConfig{},
	}
	pos, warn, err := LoadPositions(cfg.Positions.Filename, cfg.Positions.IgnoreInvalidYAML)
	if err != nil {
		return nil, err
	}
	if warn != nil {
		a.m.positionsErrors.Inc()
		logger.Error("positions file ignored; every file is read from its start", "err", warn)
	}
	a.pos = pos
	for i, cc := range cfg.Clients {
		c, err := newClient(i, cc, a.m, logger)
		if err != nil {
			return nil, err
		}
		c.maxStreams = cfg.Limits.MaxStreams
		c.dryRun = opts.DryRun
		a.clients = append(a.clients, c)
	}
	if l := cfg.Limits; l.ReadlineRateEnabled {
		burst := l.ReadlineBurst
		if burst <= 0 {
			burst = int(l.ReadlineRate)
		}
		a.limiter = rate.NewLimiter(rate.Limit(l.ReadlineRate), max(burst, 1))
	}
	sdm, err := discovery.CreateAndRegisterSDMetrics(deps.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register discovery metrics: %w", err)
	}
	a.sdMetrics = sdm
	ctx, cancel := context.WithCancel(context.Background())
	a.dm = discovery.NewManager(ctx, logger.With("component", "discovery"), deps.Registerer, sdm,
		discovery.Name("agent"), discovery.Updatert(time.Second))
	if a.dm == nil {
		cancel()
		return nil, errors.New("create discovery manager: see log")
	}
	a.dmCancel = cancel
	a.sm = newSourceMetrics(deps.Registerer)
	if err := a.startSources(); err != nil {
		cancel()
		a.closeSources()
		return nil, err
	}
	sd := map[string]discovery.Configs{}
	for i := range cfg.ScrapeConfigs {
		sc := &cfg.ScrapeConfigs[i]
		a.jobsByNm[sc.JobName] = sc
		cfgs := make(discovery.Configs, 0, len(sc.ServiceDiscoveryConfigs))
		for _, c := range sc.ServiceDiscoveryConfigs {
			if k, ok := c.(*kubernetes.SDConfig); ok && k.Role == kubernetes.RolePod && opts.NodeName != "" && len(k.Selectors) == 0 {
				// Ask the API server for this node's pods only.
				kc := *k
				kc.Selectors = []kubernetes.SelectorConfig{{Role: kubernetes.RolePod, Field: "spec.nodeName=" + opts.NodeName}}
				c = &kc
			}
			cfgs = append(cfgs, c)
		}
		sd[sc.JobName] = cfgs
	}
	if err := a.dm.ApplyConfig(sd); err != nil {
		cancel()
		a.closeSources()
		return nil, fmt.Errorf("apply discovery config: %w", err)
	}
	return a, nil
}

// Run ships until ctx ends, then stops the readers, pushes what they read
// (within the shutdown timeout) and saves positions.
func (a *Agent) Run(ctx context.Context) error {
	dmDone := make(chan error, 1)
	go func() { dmDone <- a.dm.Run() }()

	sendCtx, sendCancel := context.WithCancel(context.Background())
	defer sendCancel()
	var cwg sync.WaitGroup
	for _, c := range a.clients {
		cwg.Add(1)
		go func() { defer cwg.Done(); c.run(sendCtx) }()
	}

	tailCtx, tailCancel := context.WithCancel(ctx)
	defer tailCancel()
	var swg sync.WaitGroup
	for _, p := range a.pushes {
		swg.Add(1)
		go func() { defer swg.Done(); p.run(tailCtx) }()
	}
	for _, s := range a.syslogs {
		swg.Add(1)
		go func() { defer swg.Done(); s.run(tailCtx) }()
	}
	for _, s := range a.sources {
		swg.Add(1)
		go func() { defer swg.Done(); s.flushLoop(tailCtx, a.opts.PollInterval) }()
	}
	resync := time.NewTicker(time.Duration(a.cfg.TargetConfig.SyncPeriod))
	defer resync.Stop()
	save := time.NewTicker(time.Duration(a.cfg.Positions.SyncPeriod))
	defer save.Stop()

loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case tgs := <-a.dm.SyncCh():
			a.mu.Lock()
			a.groups = tgs
			a.mu.Unlock()
			a.syncTargets(tailCtx)
			a.ready.Store(true)
		case <-resync.C:
			a.syncTargets(tailCtx)
		case <-save.C:
			a.savePositions()
		}
	}

	// Stop discovery and the readers, then drain the clients.
	a.dmCancel()
	tailCancel()
	a.mu.Lock()
	for _, r := range a.tailers {
		<-r.done
	}
	a.mu.Unlock()
	// Network sources stop before the client queues close: nothing may
	// hand an entry to a closed queue.
	for _, p := range a.pushes {
		p.stop()
	}
	swg.Wait()
	for _, c := range a.clients {
		close(c.in)
	}
	drained := make(chan struct{})
	go func() { cwg.Wait(); close(drained) }()
	t := time.NewTimer(a.opts.ShutdownTimeout)
	select {
	case <-drained:
	case <-t.C:
		a.logger.Warn("shutdown timeout: unsent lines will be read again at the next start")
		sendCancel()
		<-drained
	}
	t.Stop()
	<-dmDone
	a.savePositions()
	return nil
}

func (a *Agent) savePositions() {
	if a.opts.DryRun != nil {
		return
	}
	if err := a.pos.Save(); err != nil {
		a.m.positionsErrors.Inc()
		a.logger.Error("save positions", "err", err)
	}
}

// Close ends discovery when Run never ran (a failed start); idempotent.
func (a *Agent) Close() error {
	a.dmCancel()
	a.closeSources()
	return nil
}

// startSources opens the listeners of network sources (loki_push_api), so
// a busy port fails the start.
func (a *Agent) startSources() error {
	for i := range a.cfg.ScrapeConfigs {
		sc := &a.cfg.ScrapeConfigs[i]
		pd := &PipelineDeps{Logger: a.logger, Metrics: a.pm, Job: sc.JobName}
		if sc.Syslog != nil {
			src, err := newLineSource(sc, "syslog", sc.Syslog.Labels, pd, a.sm, a.sendAll)
			if err != nil {
				return fmt.Errorf("job %q: %w", sc.JobName, err)
			}
			st, err := newSyslogTarget(src, *sc.Syslog, a.logger)
			if err != nil {
				return err
			}
			a.sources = append(a.sources, src)
			a.syslogs = append(a.syslogs, st)
			continue
		}
		if sc.LokiPushAPI == nil {
			continue
		}
		src, err := newLineSource(sc, "loki_push_api", sc.LokiPushAPI.Labels, pd, a.sm, a.sendAll)
		if err != nil {
			return fmt.Errorf("job %q: %w", sc.JobName, err)
		}
		pt, err := newPushTarget(src, *sc.LokiPushAPI, a.logger)
		if err != nil {
			return err
		}
		a.sources = append(a.sources, src)
		a.pushes = append(a.pushes, pt)
	}
	return nil
}

// closeSources releases listeners when Run never ran; idempotent.
func (a *Agent) closeSources() {
	for _, p := range a.pushes {
		_ = p.ln.Close()
	}
	for _, s := range a.syslogs {
		s.close()
	}
}

// SyslogAddrs lists the listen address of each syslog job.
func (a *Agent) SyslogAddrs() map[string]string {
	m := map[string]string{}
	for _, s := range a.syslogs {
		m[s.src.job] = s.addr()
	}
	return m
}

// PushAddrs lists the listen address of each loki_push_api job.
func (a *Agent) PushAddrs() map[string]string {
	m := map[string]string{}
	for _, p := range a.pushes {
		m[p.src.job] = p.ln.Addr().String()
	}
	return m
}

// sendAll hands an entry to every client, blocking while one is full,
// until ctx ends.
func (a *Agent) sendAll(ctx context.Context, e Entry) {
	for _, c := range a.clients {
		select {
		case c.in <- e:
		case <-ctx.Done():
			return
		}
	}
}

// Ready says whether the first discovery result has been applied.
func (a *Agent) Ready() bool { return a.ready.Load() }

// syncTargets turns discovery results into files and starts and stops
// tailers to match.
func (a *Agent) syncTargets(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var targets []fileTarget
	var sd []discovered
	jobs := make([]string, 0, len(a.groups))
	for j := range a.groups {
		jobs = append(jobs, j)
	}
	sort.Strings(jobs)
	for _, job := range jobs {
		sc := a.jobsByNm[job]
		if sc == nil {
			continue
		}
		for _, tg := range a.groups[job] {
			if tg == nil {
				continue
			}
			for _, t := range tg.Targets {
				ft, d := a.target(sc, tg.Labels, t)
				sd = append(sd, d)
				if d.kept {
					targets = append(targets, ft...)
				}
			}
			if len(tg.Targets) == 0 && len(tg.Labels) > 0 {
				ft, d := a.target(sc, tg.Labels, nil)
				sd = append(sd, d)
				if d.kept {
					targets = append(targets, ft...)
				}
			}
		}
	}
	a.sd = sd
	want := map[string]fileTarget{}
	for _, ft := range targets {
		matches, err := globPaths(ft.path)
		if err != nil {
			continue
		}
		for _, p := range matches {
			if strings.HasSuffix(p, ".gz") || isRotatedName(p) {
				continue
			}
			if ex := ft.labels["__path_exclude__"]; ex != "" && pathMatches(string(ex), p) {
				continue
			}
			if _, dup := want[p]; dup {
				continue
			}
			ls := make(model.LabelSet, len(ft.labels)+1)
			for k, v := range ft.labels {
				if !strings.HasPrefix(string(k), "__") || k == tenantLabel {
					ls[k] = v
				}
			}
			ls["filename"] = model.LabelValue(p)
			want[p] = fileTarget{job: ft.job, path: p, labels: ls}
		}
	}
	active := make([]fileTarget, 0, len(want))
	for _, ft := range want {
		active = append(active, ft)
	}
	sort.Slice(active, func(i, j int) bool { return active[i].path < active[j].path })
	a.active = active
	a.m.targetsActive.Set(float64(len(targets)))

	// Stop tailers of files no longer wanted, and forget ended ones.
	for p, r := range a.tailers {
		ended := false
		select {
		case <-r.done:
			ended = true
		default:
		}
		ft, ok := want[p]
		if ok && !ended && ft.labels.Equal(r.labels) {
			continue
		}
		if !ended {
			r.cancel()
			<-r.done
			a.m.filesActive.Dec()
		}
		delete(a.tailers, p)
		if _, err := os.Stat(p); os.IsNotExist(err) {
			a.pos.Remove(p)
		} else {
			a.pos.Untrack(p)
		}
	}
	for p, ft := range want {
		if _, ok := a.tailers[p]; ok {
			continue
		}
		a.startTailer(ctx, ft)
	}
}

// isRotatedName is true for rotated leftovers like x.log.1 or
// 0.log.20240101-120000.
func isRotatedName(p string) bool {
	base := filepath.Base(p)
	i := strings.Index(base, ".log.")
	return i >= 0 && i+5 < len(base)
}

func (a *Agent) startTailer(ctx context.Context, ft fileTarget) {
	sc := a.jobsByNm[ft.job]
	pipe, err := NewPipeline(sc.PipelineStages, &PipelineDeps{Logger: a.logger, Metrics: a.pm, Job: ft.job})
	if err != nil {
		a.logger.Error("build pipeline", "job", ft.job, "err", err)
		return
	}
	maxLine := a.cfg.Limits.MaxLineSize
	if maxLine <= 0 {
		maxLine = defaultMaxLineBytes
	}
	t := &tailer{
		path: ft.path, labels: ft.labels, pipeline: pipe, pos: a.pos,
		clients: len(a.clients), maxLine: maxLine, poll: a.opts.PollInterval,
		limiter: a.limiter, dropOnRL: a.cfg.Limits.ReadlineRateDrop,
		m: a.m, logger: a.logger,
		readBytesC: a.m.readBytes.WithLabelValues(ft.path),
		readLinesC: a.m.readLines.WithLabelValues(ft.path),
	}
	// The tailer's own context: stopping one target must also end a
	// hand-off blocked on a full client queue.
	tctx, cancel := context.WithCancel(ctx)
	t.out = a.fanOut(tctx)
	start, _ := a.pos.Get(ft.path)
	if err := t.open(start); err != nil {
		cancel()
		a.m.openErrors.Inc()
		if !a.openLog[ft.path] {
			a.openLog[ft.path] = true
			a.logger.Warn("cannot tail file; will retry at each target sync", "path", ft.path, "err", err)
		}
		return
	}
	delete(a.openLog, ft.path)
	r := &running{cancel: cancel, done: make(chan struct{}), labels: ft.labels}
	a.tailers[ft.path] = r
	a.m.filesActive.Inc()
	go func() {
		defer close(r.done)
		t.run(tctx)
	}()
}

// fanOut hands an entry to every client, blocking while one is full: a
// slow or down server slows reading instead of filling memory.
func (a *Agent) fanOut(ctx context.Context) func(Entry) {
	return func(e Entry) {
		for _, c := range a.clients {
			select {
			case c.in <- e:
			case <-ctx.Done():
				return
			}
		}
	}
}

// target relabels one discovered target and finds its path.
func (a *Agent) target(sc *ScrapeConfig, group, t model.LabelSet) ([]fileTarget, discovered) {
	lb := labels.NewBuilder(labels.EmptyLabels())
	for k, v := range group {
		lb.Set(string(k), string(v))
	}
	for k, v := range t {
		lb.Set(string(k), string(v))
	}
	before := lb.Labels()
	d := discovered{job: sc.JobName, before: before}
	if !relabel.ProcessBuilder(lb, sc.RelabelConfigs...) {
		d.reason = "dropped by relabel_configs"
		return nil, d
	}
	after := lb.Labels()
	d.after = after
	if a.opts.NodeName != "" {
		host := after.Get("__host__")
		if host == "" {
			host = before.Get("__meta_kubernetes_pod_node_name")
		}
		if host != "" && host != a.opts.NodeName {
			d.reason = "on another node"
			return nil, d
		}
	}
	path := after.Get("__path__")
	if path == "" {
		uid := before.Get("__meta_kubernetes_pod_uid")
		container := before.Get("__meta_kubernetes_pod_container_name")
		if uid == "" || container == "" {
			d.reason = "no __path__ label"
			return nil, d
		}
		path = filepath.Join(a.opts.PodLogsDir,
			before.Get("__meta_kubernetes_namespace")+"_"+before.Get("__meta_kubernetes_pod_name")+"_"+uid,
			container, "*.log")
		if !a.derived[sc.JobName] {
			a.derived[sc.JobName] = true
			a.logger.Info("no __path__ after relabelling: using the kubelet's pod log path", "job", sc.JobName,
				"pattern", filepath.Join(a.opts.PodLogsDir, "<namespace>_<pod>_<uid>/<container>/*.log"))
		}
	}
	ls := make(model.LabelSet, after.Len())
	after.Range(func(l labels.Label) { ls[model.LabelName(l.Name)] = model.LabelValue(l.Value) })
	d.kept = true
	return []fileTarget{{job: sc.JobName, path: path, labels: ls}}, d
}

// Routes lists the agent's own HTTP endpoints.
func (a *Agent) Routes() []Route {
	return []Route{
		{Method: http.MethodGet, Path: "/metrics", Handler: promhttp.HandlerFor(a.deps.Gatherer, promhttp.HandlerOpts{}).ServeHTTP},
		{Method: http.MethodGet, Path: "/ready", Handler: a.serveReady},
		{Method: http.MethodGet, Path: "/targets", Handler: a.serveTargets},
		{Method: http.MethodGet, Path: "/service-discovery", Handler: a.serveSD},
	}
}

// Route is one HTTP endpoint.
type Route struct {
	Method, Path string
	Handler      http.HandlerFunc
}

// Handler serves Routes on one mux.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, r := range a.Routes() {
		mux.HandleFunc(r.Method+" "+r.Path, r.Handler)
	}
	return mux
}

func (a *Agent) serveReady(w http.ResponseWriter, _ *http.Request) {
	if !a.Ready() {
		http.Error(w, "Not ready: waiting for the first discovery result", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "Ready")
}

func (a *Agent) serveTargets(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	active := a.active
	a.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "%d active file targets\n\n", len(active))
	for _, t := range active {
		pos, _ := a.pos.Get(t.path)
		fmt.Fprintf(w, "%s\t%s\tposition=%d\t%s\n", t.job, t.path, pos, t.labels)
	}
	if len(a.pushes)+len(a.syslogs) > 0 {
		fmt.Fprintf(w, "\n%d network sources\n\n", len(a.pushes)+len(a.syslogs))
	}
	for _, p := range a.pushes {
		fmt.Fprintf(w, "%s\tloki_push_api\t%s\n", p.src.job, p.ln.Addr())
	}
	for _, s := range a.syslogs {
		proto := "tcp"
		if s.udp != nil {
			proto = "udp"
		}
		fmt.Fprintf(w, "%s\tsyslog/%s\t%s\n", s.src.job, proto, s.addr())
	}
}

func (a *Agent) serveSD(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	sd := a.sd
	a.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, d := range sd {
		state := "kept"
		if !d.kept {
			state = "dropped: " + d.reason
		}
		fmt.Fprintf(w, "job=%s %s\n  discovered: %s\n  relabelled: %s\n", d.job, state, d.before, d.after)
	}
}
