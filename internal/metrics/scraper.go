package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	_ "github.com/prometheus/prometheus/discovery/file"       // file_sd_configs
	_ "github.com/prometheus/prometheus/discovery/kubernetes" // kubernetes_sd_configs; the only other SD we register
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/logging"
)

// Scraper runs Prometheus's discovery and scrape managers over one appender.
// Besides the scrape manager's targets it reports service discoveries that
// cannot start (no Kubernetes API) as down targets, so /api/v1/targets says why
// a job has nothing to scrape.
type Scraper struct {
	logger    *slog.Logger
	sdMetrics *discovery.SDMetrics
	discovery *discovery.Manager
	scrape    *scrape.Manager
	sdStatus  *discoveryStatus
	cancel    context.CancelFunc
}

// NewScraper builds the managers; nothing runs until Run. When app is the
// metrics storage (*TSDB, *Agent) it learns the scrape manager, whose target
// metadata remote write sends.
func NewScraper(app storage.AppendableV2, deps Deps) (*Scraper, error) {
	logger := deps.Logger.With("component", "scrape")
	sdMetrics, err := discovery.CreateAndRegisterSDMetrics(deps.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register discovery metrics: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	dm := discovery.NewManager(ctx, deps.Logger.With("component", "discovery manager scrape"), deps.Registerer, sdMetrics, discovery.Name("scrape"))
	if dm == nil {
		cancel()
		return nil, errors.New("create discovery manager: see log")
	}
	sm, err := scrape.NewManager(&scrape.Options{
		// Apply discovered targets quickly instead of after Prometheus's 5s.
		DiscoveryReloadInterval:  model.Duration(time.Second),
		DiscoveryReloadOnStartup: true,
		AppendMetadata:           true,
	}, logger, func(path string) (*logging.JSONFileLogger, error) {
		return logging.NewJSONFileLogger(path)
	}, nil, app, deps.Registerer)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("create scrape manager: %w", err)
	}
	if r, ok := app.(interface{ SetScrapeManager(*scrape.Manager) }); ok {
		// Remote write's metadata_config sends the targets' metadata.
		r.SetScrapeManager(sm)
	}
	return &Scraper{logger: logger, sdMetrics: sdMetrics, discovery: dm, scrape: sm, sdStatus: newDiscoveryStatus(), cancel: cancel}, nil
}

// ApplyConfig applies scrape configs, then their discovery, in the order
// Prometheus's main uses so no target is discovered for a missing pool.
func (s *Scraper) ApplyConfig(pc *promconfig.Config) error {
	if err := s.scrape.ApplyConfig(pc); err != nil {
		return fmt.Errorf("apply scrape config: %w", err)
	}
	scfgs, err := pc.GetScrapeConfigs()
	if err != nil {
		return fmt.Errorf("load scrape configs: %w", err)
	}
	sd := make(map[string]discovery.Configs, len(scfgs))
	jobs := make(map[string]bool, len(scfgs))
	for _, sc := range scfgs {
		jobs[sc.JobName] = true
		cfgs := make(discovery.Configs, 0, len(sc.ServiceDiscoveryConfigs))
		for _, c := range sc.ServiceDiscoveryConfigs {
			if _, static := c.(discovery.StaticConfig); static {
				cfgs = append(cfgs, c)
				continue
			}
			cfgs = append(cfgs, retryingConfig{Config: c, status: s.sdStatus})
		}
		sd[sc.JobName] = cfgs
	}
	s.sdStatus.retain(jobs)
	if err := s.discovery.ApplyConfig(sd); err != nil {
		return fmt.Errorf("apply discovery config: %w", err)
	}
	return nil
}

// Run scrapes until ctx ends or a manager fails, then stops both.
func (s *Scraper) Run(ctx context.Context) error {
	discDone := make(chan error, 1)
	go func() { discDone <- s.discovery.Run() }()
	scrapeDone := make(chan error, 1)
	go func() { scrapeDone <- s.scrape.Run(s.discovery.SyncCh()) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-scrapeDone:
		scrapeDone <- err
	case err = <-discDone:
		discDone <- err
	}
	s.scrape.Stop()
	s.cancel()
	<-scrapeDone
	<-discDone
	if err != nil {
		return fmt.Errorf("scrape: %w", err)
	}
	return nil
}

// Close ends discovery when Run never ran (a failed start); idempotent.
func (s *Scraper) Close() error {
	s.cancel()
	return nil
}

// SDMetrics are the service-discovery metrics, registered once per registry;
// other discovery managers (the notifier's) share them.
func (s *Scraper) SDMetrics() *discovery.SDMetrics { return s.sdMetrics }

// ScrapePools lists the scrape pools (for /api/v1/scrape_pools).
func (s *Scraper) ScrapePools() []string { return s.scrape.ScrapePools() }

// TargetsActive lists scraped targets plus one down target per job whose
// service discovery cannot start.
func (s *Scraper) TargetsActive() map[string][]*scrape.Target {
	active := s.scrape.TargetsActive()
	for job, failures := range s.sdStatus.snapshot() {
		sc, err := s.scrape.ScrapePoolConfig(job)
		if err != nil {
			continue
		}
		for _, f := range failures {
			active[job] = append(active[job], discoveryFailureTarget(sc, f))
		}
	}
	return active
}

// TargetsDropped is the scrape manager's dropped targets.
func (s *Scraper) TargetsDropped() map[string][]*scrape.Target { return s.scrape.TargetsDropped() }

// TargetsDroppedCounts is the scrape manager's dropped target counts.
func (s *Scraper) TargetsDroppedCounts() map[string]int { return s.scrape.TargetsDroppedCounts() }

// ScrapePoolConfig returns the config of a scrape pool.
func (s *Scraper) ScrapePoolConfig(name string) (*promconfig.ScrapeConfig, error) {
	return s.scrape.ScrapePoolConfig(name)
}

func discoveryFailureTarget(sc *promconfig.ScrapeConfig, f discoveryFailure) *scrape.Target {
	lset := labels.FromStrings(
		model.AddressLabel, f.mechanism+"_sd",
		model.SchemeLabel, sc.Scheme,
		model.MetricsPathLabel, sc.MetricsPath,
		model.JobLabel, sc.JobName,
		model.ScrapeIntervalLabel, sc.ScrapeInterval.String(),
		model.ScrapeTimeoutLabel, sc.ScrapeTimeout.String(),
	)
	t := scrape.NewTarget(lset, sc, model.LabelSet{model.AddressLabel: model.LabelValue(f.mechanism + "_sd")}, nil)
	t.Report(f.since, 0, fmt.Errorf("service discovery %s cannot start: %w", f.mechanism, f.err))
	return t
}

// retryingConfig wraps a service discovery whose discoverer can fail to be
// created (kubernetes outside a cluster). Prometheus gives up on such a
// discovery for good; we retry with backoff and report the error.
type retryingConfig struct {
	discovery.Config
	status *discoveryStatus
}

func (c retryingConfig) NewDiscoverer(o discovery.DiscovererOptions) (discovery.Discoverer, error) {
	return &retryingDiscoverer{inner: c.Config, opts: o, status: c.status}, nil
}

type retryingDiscoverer struct {
	inner  discovery.Config
	opts   discovery.DiscovererOptions
	status *discoveryStatus
}

const (
	discoveryRetryMin = time.Second
	discoveryRetryMax = 2 * time.Minute
)

func (d *retryingDiscoverer) Run(ctx context.Context, up chan<- []*targetgroup.Group) {
	backoff := discoveryRetryMin
	for {
		disc, err := d.inner.NewDiscoverer(d.opts)
		if err == nil {
			d.status.clear(d.opts.SetName, d.inner.Name())
			disc.Run(ctx, up)
			return
		}
		d.status.set(d.opts.SetName, d.inner.Name(), err)
		d.opts.Logger.Error("Cannot create service discovery, will retry", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			d.status.clear(d.opts.SetName, d.inner.Name())
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, discoveryRetryMax)
	}
}

type discoveryFailure struct {
	mechanism string
	err       error
	since     time.Time
}

// discoveryStatus remembers, per scrape job, the discoveries that cannot start.
type discoveryStatus struct {
	mu       sync.Mutex
	failures map[string]map[string]discoveryFailure
}

func newDiscoveryStatus() *discoveryStatus {
	return &discoveryStatus{failures: map[string]map[string]discoveryFailure{}}
}

func (s *discoveryStatus) set(job, mechanism string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failures[job] == nil {
		s.failures[job] = map[string]discoveryFailure{}
	}
	since := time.Now()
	if old, ok := s.failures[job][mechanism]; ok {
		since = old.since
	}
	s.failures[job][mechanism] = discoveryFailure{mechanism: mechanism, err: err, since: since}
}

func (s *discoveryStatus) clear(job, mechanism string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.failures[job], mechanism)
	if len(s.failures[job]) == 0 {
		delete(s.failures, job)
	}
}

// retain forgets jobs that a reload removed.
func (s *discoveryStatus) retain(jobs map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for job := range s.failures {
		if !jobs[job] {
			delete(s.failures, job)
		}
	}
}

func (s *discoveryStatus) snapshot() map[string][]discoveryFailure {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]discoveryFailure, len(s.failures))
	for job, m := range s.failures {
		for _, f := range m {
			out[job] = append(out[job], f)
		}
		sort.Slice(out[job], func(i, j int) bool { return out[job][i].mechanism < out[job][j].mechanism })
	}
	return out
}
