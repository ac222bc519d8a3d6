package demo

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"go.yaml.in/yaml/v3"

	"github.com/nx-watcher/nxwatcher/internal/app"
	"github.com/nx-watcher/nxwatcher/internal/config"
)

// DefaultIncidentCycle is how often the incidents come round. Each lasts
// 30% of the cycle, long enough for the slowest rule's `for: 10m`.
const DefaultIncidentCycle = time.Hour

// DefaultRate is the default request rate through Traefik (requests/s).
const DefaultRate = 20

// Options configure a demo. The first three are serve's bootstrap flags.
type Options struct {
	// ConfigFile is a serve config; "" runs the embedded default. The demo
	// adds its scrape jobs and rule file to whatever it holds.
	ConfigFile string
	// StoragePath holds all data; "" uses a temporary directory removed
	// by Close.
	StoragePath string
	// ListenAddress is serve's HTTP listener ("" = 127.0.0.1:9090).
	ListenAddress string
	// Rate is the simulated request rate through Traefik at the day's
	// peak, in requests per second; every request is traced and logged.
	Rate float64
	// IncidentCycle is the period of the incident schedule. Below one hour
	// the alert rules' `for` durations shrink in proportion, so every alert
	// can still fire within a cycle.
	IncidentCycle time.Duration
	// ScrapeInterval is the scrape and rule evaluation interval of the
	// demo's jobs (15s; tests use 1s). Below 15s the metrics-generator's
	// collection interval follows it.
	ScrapeInterval time.Duration
	// TickInterval is how often the simulation advances (1s).
	TickInterval time.Duration
	// Backfill, when positive, writes this much metric history (ending
	// now) before the live simulation starts, so dashboards over the last
	// day have data at once. Logs and traces are not backfilled.
	Backfill time.Duration
	// Logger receives serve's and the demo's logs; nil discards them.
	Logger *slog.Logger

	// startAt is when the demo started: the incident schedule counts from it.
	startAt time.Time
}

func (o *Options) defaults() {
	if o.ListenAddress == "" {
		o.ListenAddress = "127.0.0.1:9090"
	}
	if o.Rate <= 0 {
		o.Rate = DefaultRate
	}
	if o.IncidentCycle <= 0 {
		o.IncidentCycle = DefaultIncidentCycle
	}
	if o.ScrapeInterval <= 0 {
		o.ScrapeInterval = 15 * time.Second
	}
	if o.TickInterval <= 0 {
		o.TickInterval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Incidents are the incidents in progress at one moment.
type Incidents struct {
	ErrorBurst           bool // 5xx burst on the backend service (HighErrorRate)
	CrashLoop            bool // the identity pod crash-loops (PodCrashLooping, IdentityServiceDown)
	RedisMemory          bool // Redis at 95% of maxmemory (RedisHighMemory)
	KafkaUnderReplicated bool // broker 1 reports under-replicated partitions (KafkaUnderReplicated)
	PGConnections        bool // a connection leak: 92 PostgreSQL connections (PostgreSQLHighConnections)
	DiskFull             bool // the PostgreSQL PVC at 91% (HighDiskUsage)
}

// schedule is each incident's window as fractions of the cycle.
var schedule = []struct {
	from, to float64
	set      func(*Incidents)
}{
	{0.05, 0.35, func(i *Incidents) { i.ErrorBurst = true }},
	{0.15, 0.45, func(i *Incidents) { i.CrashLoop = true }},
	{0.30, 0.60, func(i *Incidents) { i.RedisMemory = true }},
	{0.45, 0.80, func(i *Incidents) { i.KafkaUnderReplicated = true }},
	{0.55, 0.85, func(i *Incidents) { i.PGConnections = true }},
	{0.60, 0.95, func(i *Incidents) { i.DiskFull = true }},
}

// incidentsAt is the schedule at offset since the demo started.
func incidentsAt(offset, cycle time.Duration) Incidents {
	phase := float64((offset%cycle+cycle)%cycle) / float64(cycle)
	var in Incidents
	for _, s := range schedule {
		if phase >= s.from && phase < s.to {
			s.set(&in)
		}
	}
	return in
}

func (o Options) incidents(now time.Time) Incidents {
	return incidentsAt(now.Sub(o.startAt), o.IncidentCycle)
}

// crashEvery is the mean time between restarts of the crash-looping pod.
func (o Options) crashEvery() time.Duration { return o.IncidentCycle / 40 }

//go:embed rules/bana.rules.yml
var banaRules []byte

// Demo is a running serve plus the simulated bana platform.
type Demo struct {
	opts     Options
	app      *app.App
	platform *platform
	tempDir  string
	dataDir  string
	rules    string
	adminPw  string
	adminSrc string
	adminUsr string
}

// New opens serve (app.New) with the demo's scrape jobs and rules added to
// its config, and the simulated platform's exporters listening.
func New(opts Options) (_ *Demo, err error) {
	opts.defaults()
	opts.startAt = time.Now()
	d := &Demo{opts: opts}
	d.platform = newPlatform(opts)
	if err := d.platform.listen(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			d.platform.close()
			if d.tempDir != "" {
				_ = os.RemoveAll(d.tempDir)
			}
		}
	}()
	d.dataDir = opts.StoragePath
	if d.dataDir == "" {
		if d.tempDir, err = os.MkdirTemp("", "nxwatcher-demo-"); err != nil {
			return nil, fmt.Errorf("demo: temp dir: %w", err)
		}
		d.dataDir = d.tempDir
	}
	demoDir := filepath.Join(d.dataDir, "demo")
	if err := os.MkdirAll(demoDir, 0o755); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	rules, err := scaleRules(banaRules, ruleScale(opts.IncidentCycle))
	if err != nil {
		return nil, fmt.Errorf("demo: rules: %w", err)
	}
	d.rules = filepath.Join(demoDir, "bana.rules.yml")
	if err := os.WriteFile(d.rules, rules, 0o644); err != nil {
		return nil, fmt.Errorf("demo: write rules: %w", err)
	}
	pwFile := filepath.Join(demoDir, "admin-password")
	jobs, err := promconfig.Load(d.platform.scrapeConfig(opts.ScrapeInterval), opts.Logger)
	if err != nil {
		return nil, fmt.Errorf("demo: scrape config: %w", err)
	}
	adjust := func(c *config.Config) {
		pc := c.Metrics.Parsed
		if pc == nil {
			return
		}
		// The simulated platform's jobs replace same-named jobs of the
		// config (the design doc's prometheus.yml names the real ones).
		demoJobs := map[string]bool{}
		for _, sc := range jobs.ScrapeConfigs {
			demoJobs[sc.JobName] = true
		}
		kept := pc.ScrapeConfigs[:0:0]
		for _, sc := range pc.ScrapeConfigs {
			if demoJobs[sc.JobName] {
				opts.Logger.Warn("Demo replaces the config's scrape job with its simulated one", "job", sc.JobName)
				continue
			}
			kept = append(kept, sc)
		}
		pc.ScrapeConfigs = append(kept, jobs.ScrapeConfigs...)
		pc.RuleFiles = append(pc.RuleFiles, d.rules)
		if opts.Backfill > 0 {
			// History goes in through the TSDB's out-of-order window.
			if pc.StorageConfig.TSDBConfig == nil {
				pc.StorageConfig.TSDBConfig = &promconfig.TSDBConfig{}
			}
			if w := (opts.Backfill + time.Hour).Milliseconds(); pc.StorageConfig.TSDBConfig.OutOfOrderTimeWindow < w {
				pc.StorageConfig.TSDBConfig.OutOfOrderTimeWindow = w
			}
		}
		if opts.ScrapeInterval < time.Duration(pc.GlobalConfig.EvaluationInterval) {
			pc.GlobalConfig.EvaluationInterval = model.Duration(opts.ScrapeInterval)
		}
		if opts.ScrapeInterval < time.Duration(c.Traces.Generator.CollectionInterval) {
			c.Traces.Generator.CollectionInterval = model.Duration(opts.ScrapeInterval)
		}
		if opts.ConfigFile == "" {
			// Free ports, so the demo runs beside other programs.
			c.OTLP.GRPCEndpoint = "127.0.0.1:0"
			c.OTLP.HTTPEndpoint = "127.0.0.1:0"
		}
		d.adminUsr = c.UI.AdminUser
		if v := os.Getenv("GF_SECURITY_ADMIN_USER"); v != "" {
			d.adminUsr = v
		}
		switch {
		case os.Getenv("GF_SECURITY_ADMIN_PASSWORD") != "" || os.Getenv("GF_SECURITY_ADMIN_PASSWORD__FILE") != "":
			d.adminSrc = "from GF_SECURITY_ADMIN_PASSWORD"
		case c.UI.AdminPasswordFile != "":
			d.adminSrc = "from " + c.UI.AdminPasswordFile
		default:
			c.UI.AdminPasswordFile = pwFile
		}
	}
	if _, statErr := os.Stat(pwFile); statErr != nil {
		b := make([]byte, 9)
		_, _ = rand.Read(b)
		if err := os.WriteFile(pwFile, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("demo: admin password: %w", err)
		}
	}
	if b, err := os.ReadFile(pwFile); err == nil {
		d.adminPw = strings.TrimSpace(string(b))
	}
	a, err := app.New(app.Options{
		ConfigFile:      opts.ConfigFile,
		StoragePath:     d.dataDir,
		ListenAddress:   opts.ListenAddress,
		EnableLifecycle: true,
		Flags: map[string]string{
			"config.file": opts.ConfigFile, "storage.path": d.dataDir, "web.listen-address": opts.ListenAddress,
		},
	}, app.Deps{Logger: opts.Logger, AdjustConfig: adjust})
	if err != nil {
		return nil, fmt.Errorf("demo: start serve: %w", err)
	}
	d.app = a
	return d, nil
}

// ruleScale shrinks the rules' `for` durations for a cycle shorter than
// the default, keeping the design doc's ratio of incident length to `for`.
func ruleScale(cycle time.Duration) float64 {
	if cycle >= DefaultIncidentCycle {
		return 1
	}
	return float64(cycle) / float64(DefaultIncidentCycle)
}

// scaleRules multiplies every rule's `for` by f (at least 1s when set).
func scaleRules(src []byte, f float64) ([]byte, error) {
	if f == 1 {
		return src, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	var walk func(n *yaml.Node) error
	walk = func(n *yaml.Node) error {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Value == "for" && v.Kind == yaml.ScalarNode {
					dur, err := model.ParseDuration(v.Value)
					if err != nil {
						return fmt.Errorf("line %d: %w", v.Line, err)
					}
					scaled := max(time.Duration(float64(dur)*f).Round(time.Millisecond), time.Second)
					v.Value = model.Duration(scaled).String()
					continue
				}
				if err := walk(v); err != nil {
					return err
				}
			}
			return nil
		}
		for _, c := range n.Content {
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(&doc); err != nil {
		return nil, err
	}
	return yaml.Marshal(&doc)
}

// URL is serve's base URL.
func (d *Demo) URL() string {
	return "http://" + loopback(d.app.Addr())
}

// UIURL is where a person opens the UI: the UI's own port when the config
// gives it one, else / of the main listener.
func (d *Demo) UIURL() string {
	if a := d.app.UIAddr(); a != nil {
		return "http://" + loopback(a) + "/"
	}
	return d.URL() + "/"
}

func loopback(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// Banner is what `nxwatcher demo` prints once serve is up.
func (d *Demo) Banner(w io.Writer) {
	fmt.Fprintf(w, "nxwatcher demo: the bana platform simulated at %.4g requests/s, incidents every %s\n", d.opts.Rate, d.opts.IncidentCycle)
	fmt.Fprintf(w, "  UI:       %s\n", d.UIURL())
	if d.adminSrc != "" {
		fmt.Fprintf(w, "  login:    %s (password %s)\n", d.adminUsr, d.adminSrc)
	} else {
		fmt.Fprintf(w, "  login:    %s / %s\n", d.adminUsr, d.adminPw)
	}
	fmt.Fprintf(w, "  APIs:     %s (Prometheus /api/v1, Loki /loki/api/v1, Tempo /api, Alertmanager /api/v2)\n", d.URL())
	if g, h := d.app.OTLPAddrs(); g != nil {
		fmt.Fprintf(w, "  OTLP:     grpc %s, http %s\n", loopback(g), loopback(h))
	}
	fmt.Fprintf(w, "  data:     %s", d.dataDir)
	if d.tempDir != "" {
		fmt.Fprint(w, " (temporary, removed on exit)")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  dashboards: deploy/dashboards (Traefik, Backend, PostgreSQL, Redis, Kafka, Node, BullMQ, Service Map)\n")
}

// Run runs serve and the simulation until ctx ends. ready, when not nil,
// is called once serve is ready and the simulation has started.
func (d *Demo) Run(ctx context.Context, ready func()) error {
	appCtx, stopApp := context.WithCancel(context.Background())
	defer stopApp()
	appDone := make(chan error, 1)
	go func() { appDone <- d.app.Run(appCtx) }()

	select {
	case <-d.app.FirstApplied():
	case err := <-appDone:
		return fmt.Errorf("demo: serve stopped: %w", err)
	case <-ctx.Done():
		stopApp()
		<-appDone
		return nil
	}
	// The stores may still be replaying their WALs: wait for /-/ready, as
	// a client would, before sending and before saying we are up.
	if err := waitReady(ctx, d.URL()+"/-/ready", appDone); err != nil {
		stopApp()
		if !errors.Is(err, errAppStopped) {
			<-appDone
		}
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if d.opts.Backfill > 0 {
		began := time.Now()
		if err := d.backfill(ctx, d.opts.Backfill); err != nil {
			stopApp()
			<-appDone
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		d.opts.Logger.Info("Demo backfilled metric history", "span", d.opts.Backfill, "took", time.Since(began))
	}
	sim, err := newEmitters(d.opts, d.URL(), d.app)
	if err != nil {
		stopApp()
		<-appDone
		return err
	}
	simCtx, stopSim := context.WithCancel(ctx)
	simDone := make(chan struct{})
	go func() {
		defer close(simDone)
		d.simulate(simCtx, sim)
	}()
	if ready != nil {
		ready()
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-appDone:
		appDone <- runErr
	}
	// Stop the senders first and flush them, then serve.
	stopSim()
	<-simDone
	sim.close()
	stopApp()
	if err := <-appDone; err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("demo: serve: %w", err)
	}
	return nil
}

var errAppStopped = errors.New("demo: serve stopped before it was ready")

// waitReady polls url until it answers 200, ctx ends or serve stops.
func waitReady(ctx context.Context, url string, appDone <-chan error) error {
	client := &http.Client{Timeout: 2 * time.Second}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if resp, err := client.Get(url); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-appDone:
			return fmt.Errorf("%w: %v", errAppStopped, err)
		case <-t.C:
		}
	}
}

// simulate advances the platform every tick and sends its logs and traces.
func (d *Demo) simulate(ctx context.Context, em *emitters) {
	t := time.NewTicker(d.opts.TickInterval)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			reqs := d.platform.tick(now, now.Sub(last))
			last = now
			em.emit(ctx, now, reqs, d.opts.incidents(now))
		}
	}
}

// Close closes serve, the exporters and the temporary data directory.
func (d *Demo) Close() error {
	var errs []error
	if d.app != nil {
		errs = append(errs, d.app.Close())
	}
	d.platform.close()
	if d.tempDir != "" {
		errs = append(errs, os.RemoveAll(d.tempDir))
	}
	return errors.Join(errs...)
}
