// Command metrics is the metrics-ingest benchmark of issue 2: it runs the
// real `nxwatcher serve` binary and Debian's Prometheus one after the other
// on the same load, and reports samples/s per CPU-core-second of the server
// process and RSS per active series.
//
//	go run ./bench/metrics -mode=both -series=200000 -duration=60s
//
// Modes:
//   - remote-write: `-writers` concurrent senders push all `-series` series
//     in requests of `-batch` series (prompb + snappy, remote write 1.0), one
//     new sample per series per round, as fast as the server answers (or one
//     round per `-interval`).
//   - scrape: an HTTP server inside this process exposes `-targets` targets
//     of series/targets series each (path /t/N, one listener on 127.0.0.1),
//     scraped every `-scrape-interval` through static_configs with a
//     `__metrics_path__` label per target.
//
// Figures: server CPU is utime+stime from /proc/PID/stat over the measured
// window (so the load generator, which shares the cores, is not charged to the
// server; its own CPU is reported separately); samples/s is the server's
// prometheus_tsdb_head_samples_appended_total rate; RSS is VmRSS at the end
// and VmHWM (peak) from /proc/PID/status, divided by
// prometheus_tsdb_head_series. Everything listens on loopback; temp dirs are
// removed at the end.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nx-watcher/nxwatcher/bench/internal/benchproc"
)

type options struct {
	mode           string
	servers        string
	series         int
	duration       time.Duration
	warmup         time.Duration
	settle         time.Duration
	writers        int
	batch          int
	interval       time.Duration
	rw2            bool
	targets        int
	scrapeInterval time.Duration
	prometheus     string
	victoria       string
	nxwatcher      string
	keep           bool
}

type result struct {
	server, mode   string
	headSeries     float64
	samplesPerSec  float64
	clientPerSec   float64 // remote-write: samples in 2xx answers per second
	cores          float64 // server CPU seconds / wall seconds
	rssEnd, rssHWM int64
	loadgenCores   float64
	loadavg        string
	failures       int64
	firstErr       string
}

func (r result) perCore() float64 {
	if r.cores == 0 {
		return 0
	}
	return r.samplesPerSec / r.cores
}

func main() {
	var o options
	flag.StringVar(&o.mode, "mode", "both", "remote-write, scrape or both")
	flag.StringVar(&o.servers, "servers", "nxwatcher,prometheus", "servers to run, in order: nxwatcher, prometheus, victoriametrics (remote-write only)")
	flag.IntVar(&o.series, "series", 200000, "active series")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "measured window per run")
	flag.DurationVar(&o.warmup, "warmup", 10*time.Second, "wait after all series exist, before measuring")
	flag.DurationVar(&o.settle, "settle-timeout", 3*time.Minute, "give up if the series do not all appear within this")
	flag.IntVar(&o.writers, "writers", 4, "remote-write: concurrent senders")
	flag.IntVar(&o.batch, "batch", 2000, "remote-write: series per request")
	flag.DurationVar(&o.interval, "interval", 0, "remote-write: min time between two samples of a series (0: as fast as possible)")
	flag.BoolVar(&o.rw2, "rw2", false, "remote-write: send remote write 2.0 (Prometheus 2.42 does not accept it: use -servers=nxwatcher)")
	flag.IntVar(&o.targets, "targets", 100, "scrape: number of targets (series/targets series each)")
	flag.DurationVar(&o.scrapeInterval, "scrape-interval", 5*time.Second, "scrape: scrape interval")
	flag.StringVar(&o.prometheus, "prometheus", "/usr/bin/prometheus", "Prometheus binary")
	flag.StringVar(&o.victoria, "victoria-metrics", "/usr/bin/victoria-metrics", "VictoriaMetrics binary (server victoriametrics, remote-write mode only)")
	flag.StringVar(&o.nxwatcher, "nxwatcher", "", "prebuilt nxwatcher binary (default: go build ./cmd/nxwatcher into the temp dir)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir (configs, logs, data)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/metrics:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	var modes []string
	switch o.mode {
	case "both":
		modes = []string{"remote-write", "scrape"}
	case "remote-write", "scrape":
		modes = []string{o.mode}
	default:
		return fmt.Errorf("unknown -mode %q", o.mode)
	}
	if o.series <= 0 || o.batch <= 0 || o.writers <= 0 || o.targets <= 0 {
		return errors.New("-series, -batch, -writers and -targets must be positive")
	}
	tmp, err := os.MkdirTemp("", "nxw-bench-metrics-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "keeping", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if o.nxwatcher == "" && strings.Contains(o.servers, "nxwatcher") {
		o.nxwatcher = filepath.Join(tmp, "nxwatcher")
		benchproc.Logf("building nxwatcher into %s", o.nxwatcher)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", o.nxwatcher, "./cmd/nxwatcher")
		cmd.Dir, err = benchproc.ModuleRoot()
		if err != nil {
			return err
		}
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build: %w", err)
		}
	}

	var results []result
	for _, mode := range modes {
		for _, name := range strings.Split(o.servers, ",") {
			dir := filepath.Join(tmp, mode+"-"+name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			r, err := runOne(ctx, o, mode, strings.TrimSpace(name), dir)
			if !o.keep {
				os.RemoveAll(dir) // free the disk before the next run
			}
			if err != nil {
				return fmt.Errorf("%s/%s: %w", mode, name, err)
			}
			results = append(results, r)
		}
	}
	printTable(os.Stdout, o, results)
	return nil
}

func runOne(ctx context.Context, o options, mode, name, dir string) (res result, err error) {
	res = result{server: name, mode: mode}
	var promYAML string
	var targets *benchproc.TargetServer
	if mode == "scrape" {
		per := o.series / o.targets
		targets, err = benchproc.StartTargets(o.targets, per)
		if err != nil {
			return res, err
		}
		defer targets.Close()
		promYAML = benchproc.ScrapeConfig(targets.Addr(), o.targets, o.scrapeInterval)
	} else {
		promYAML = "global:\n  scrape_interval: 15s\n"
	}

	benchproc.Logf("%s/%s: starting", mode, name)
	var s server
	switch name {
	case "nxwatcher":
		var p *benchproc.Server
		p, err = benchproc.StartNXWatcher(ctx, o.nxwatcher, dir, promYAML)
		if p != nil {
			s = procServer{p}
		}
	case "prometheus":
		var p *benchproc.Server
		p, err = benchproc.StartPrometheus(ctx, o.prometheus, dir, promYAML)
		if p != nil {
			s = procServer{p}
		}
	case "victoriametrics":
		if mode != "remote-write" {
			return res, fmt.Errorf("victoriametrics runs only in -mode=remote-write")
		}
		var v *vmServer
		v, err = startVictoriaMetrics(ctx, o.victoria, dir)
		if v != nil {
			s = v
		}
	default:
		return res, fmt.Errorf("unknown server %q", name)
	}
	if s != nil {
		defer s.Stop()
	}
	if err != nil {
		return res, err
	}

	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var st rwStats
	loadDone := make(chan struct{})
	if mode == "remote-write" {
		go func() {
			defer close(loadDone)
			runRemoteWrite(loadCtx, s.base()+"/api/v1/write", o.series, o.batch, o.writers, o.interval, o.rw2, &st)
		}()
	} else {
		close(loadDone)
	}
	defer func() { stopLoad(); <-loadDone }()

	// Wait for every series to be in the head, then warm up.
	want := o.series
	if mode == "scrape" {
		want = o.series / o.targets * o.targets
	}
	settleStart := time.Now()
	for {
		m, err := s.Metric("prometheus_tsdb_head_series")
		if err == nil && m["prometheus_tsdb_head_series"] >= float64(want) {
			break
		}
		if time.Since(settleStart) > o.settle {
			return res, fmt.Errorf("head has %.0f series after %s (want %d); failures %d, first error %v",
				m["prometheus_tsdb_head_series"], o.settle, want, st.failures.Load(), st.firstErr.Load())
		}
		if err := sleep(ctx, s, time.Second); err != nil {
			return res, err
		}
	}
	benchproc.Logf("%s/%s: %d series in the head after %s; warming up %s", mode, name, want, time.Since(settleStart).Round(time.Second), o.warmup)
	if err := sleep(ctx, s, o.warmup); err != nil {
		return res, err
	}

	// Measured window.
	const appended = "prometheus_tsdb_head_samples_appended_total"
	m0, err := s.Metric(appended)
	if err != nil {
		return res, err
	}
	cpu0, err := benchproc.ProcCPU(s.Pid())
	if err != nil {
		return res, err
	}
	self0, _ := benchproc.ProcCPU(os.Getpid())
	client0 := st.samples.Load()
	t0 := time.Now()
	res.loadavg = benchproc.LoadAvg()
	benchproc.Logf("%s/%s: measuring %s (loadavg %s)", mode, name, o.duration, res.loadavg)
	for time.Since(t0) < o.duration {
		if err := sleep(ctx, s, min(time.Second, o.duration-time.Since(t0))); err != nil {
			return res, err
		}
	}
	wall := time.Since(t0).Seconds()
	cpu1, err := benchproc.ProcCPU(s.Pid())
	if err != nil {
		return res, err
	}
	self1, _ := benchproc.ProcCPU(os.Getpid())
	m1, err := s.Metric(appended, "prometheus_tsdb_head_series")
	if err != nil {
		return res, err
	}
	res.rssEnd, res.rssHWM, err = benchproc.ProcMem(s.Pid())
	if err != nil {
		return res, err
	}
	res.samplesPerSec = (m1[appended] - m0[appended]) / wall
	res.clientPerSec = float64(st.samples.Load()-client0) / wall
	res.cores = (cpu1 - cpu0) / wall
	res.loadgenCores = (self1 - self0) / wall
	res.headSeries = m1["prometheus_tsdb_head_series"]
	res.failures = st.failures.Load()
	if e, ok := st.firstErr.Load().(string); ok {
		res.firstErr = e
	}
	benchproc.Logf("%s/%s: %.0f samples/s, %.2f cores, %.0f samples/s/core, RSS %.0f MiB (peak %.0f MiB), %.0f series",
		mode, name, res.samplesPerSec, res.cores, res.perCore(), benchproc.MiB(res.rssEnd), benchproc.MiB(res.rssHWM), res.headSeries)
	return res, nil
}

func printTable(w *os.File, o options, rs []result) {
	proto := "1.0"
	if o.rw2 {
		proto = "2.0"
	}
	fmt.Fprintf(w, "\n%d series; remote-write %s: %d writers × %d series/request, interval %s; scrape: %d targets × %d series every %s; window %s after %s warm-up\n\n",
		o.series, proto, o.writers, o.batch, o.interval, o.targets, o.series/o.targets, o.scrapeInterval, o.duration, o.warmup)
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| server\t mode\t active series\t samples/s\t server cores\t samples/s per core\t RSS MiB end\t RSS MiB peak\t bytes/series end\t bytes/series peak\t loadgen cores\t loadavg\t")
	fmt.Fprintln(tw, "|---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "| %s\t %s\t %.0f\t %.0f\t %.2f\t %.0f\t %.0f\t %.0f\t %.0f\t %.0f\t %.2f\t %s\t\n",
			r.server, r.mode, r.headSeries, r.samplesPerSec, r.cores, r.perCore(), benchproc.MiB(r.rssEnd), benchproc.MiB(r.rssHWM),
			float64(r.rssEnd)/r.headSeries, float64(r.rssHWM)/r.headSeries, r.loadgenCores, r.loadavg)
	}
	tw.Flush()
	for _, r := range rs {
		if r.mode == "remote-write" {
			fmt.Fprintf(w, "\n%s remote-write: client saw %.0f samples/s acknowledged, %d failed requests", r.server, r.clientPerSec, r.failures)
			if r.firstErr != "" {
				fmt.Fprintf(w, " (first: %s)", r.firstErr)
			}
		}
	}
	fmt.Fprintln(w)
	byKey := map[string]result{}
	for _, r := range rs {
		byKey[r.server+"/"+r.mode] = r
	}
	for _, mode := range []string{"remote-write", "scrape"} {
		n, ok1 := byKey["nxwatcher/"+mode]
		for _, peer := range []string{"prometheus", "victoriametrics"} {
			p, ok2 := byKey[peer+"/"+mode]
			if !ok1 || !ok2 {
				continue
			}
			fmt.Fprintf(w, "\nnxwatcher/%s, %s: samples/s per core %.2f×, bytes/series end %.2f×, peak %.2f×, samples/s %.2f×",
				peer, mode, n.perCore()/p.perCore(), (float64(n.rssEnd)/n.headSeries)/(float64(p.rssEnd)/p.headSeries),
				(float64(n.rssHWM)/n.headSeries)/(float64(p.rssHWM)/p.headSeries), n.samplesPerSec/p.samplesPerSec)
		}
	}
	fmt.Fprintln(w)
}
