// Command remote measures remote write out: nxwatcher and Debian's
// Prometheus scrape the same synthetic load, once alone and once forwarding
// every sample by remote_write to a sink in this process; the difference is
// what forwarding costs (CPU per 100k samples/s sent, extra RSS).
//
//	go run ./bench/remote                          # 200k samples/s, both servers
//	go run ./bench/remote -servers=nxwatcher -rw2  # remote write 2.0 (2.42 cannot send it)
//
// Server CPU is utime+stime of the server process from /proc/PID/stat over
// the measured window; the load generator and the sink run in this process
// and are reported apart (loadgen cores).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nx-watcher/nxwatcher/bench/internal/benchproc"
)

type options struct {
	servers        string
	series         int
	targets        int
	scrapeInterval time.Duration
	duration       time.Duration
	warmup         time.Duration
	settle         time.Duration
	rw2            bool
	prometheus     string
	nxwatcher      string
	keep           bool
}

type result struct {
	server, mode  string
	headSeries    float64
	appendedPerS  float64
	sentPerS      float64
	pending       float64
	cores         float64
	rssEnd, rssHW int64
	loadgenCores  float64
	loadavg       string
	sinkBytesPerS float64
}

func main() {
	var o options
	flag.StringVar(&o.servers, "servers", "nxwatcher,prometheus", "servers to run, in order")
	flag.IntVar(&o.series, "series", 200000, "scraped series (targets × series per target)")
	flag.IntVar(&o.targets, "targets", 100, "scrape targets")
	flag.DurationVar(&o.scrapeInterval, "scrape-interval", time.Second, "scrape interval (series/interval = samples/s)")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "measured window per run")
	flag.DurationVar(&o.warmup, "warmup", 15*time.Second, "wait after every series is in the head, before measuring")
	flag.DurationVar(&o.settle, "settle-timeout", 3*time.Minute, "give up if the series do not all appear within this")
	flag.BoolVar(&o.rw2, "rw2", false, "send remote write 2.0 (Prometheus 2.42 cannot: use -servers=nxwatcher)")
	flag.StringVar(&o.prometheus, "prometheus", "/usr/bin/prometheus", "Prometheus binary")
	flag.StringVar(&o.nxwatcher, "nxwatcher", "", "prebuilt nxwatcher binary (default: go build ./cmd/nxwatcher into the temp dir)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir (configs, logs, data)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench/remote:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	tmp, err := os.MkdirTemp("", "bench-remote-")
	if err != nil {
		return err
	}
	if o.keep {
		benchproc.Logf("keeping %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if o.nxwatcher == "" && strings.Contains(o.servers, "nxwatcher") {
		root, err := benchproc.ModuleRoot()
		if err != nil {
			return err
		}
		o.nxwatcher = filepath.Join(tmp, "nxwatcher")
		benchproc.Logf("building nxwatcher")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", o.nxwatcher, "./cmd/nxwatcher")
		cmd.Dir, cmd.Stdout, cmd.Stderr = root, os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build nxwatcher: %w", err)
		}
	}
	var results []result
	for _, name := range strings.Split(o.servers, ",") {
		for _, mode := range []string{"scrape only", "scrape + remote write"} {
			dir := filepath.Join(tmp, strings.ReplaceAll(name+"-"+mode, " ", "_"))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			r, err := runOne(ctx, o, name, mode, dir)
			if err != nil {
				return fmt.Errorf("%s, %s: %w", name, mode, err)
			}
			results = append(results, r)
		}
	}
	printTable(os.Stdout, o, results)
	return nil
}

// sink accepts remote write requests and counts them; it does not decode,
// so its CPU stays small next to the servers'.
type sink struct {
	ln       net.Listener
	srv      *http.Server
	requests atomic.Int64
	bytes    atomic.Int64
}

func startSink() (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{ln: ln}
	s.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		s.bytes.Add(n)
		s.requests.Add(1)
		if strings.Contains(r.Header.Get("Content-Type"), "io.prometheus.write.v2.Request") {
			// A 2.0 receiver must say it wrote something, or the sender
			// takes the answer for a 1.0-only receiver's and retries. The
			// sink does not decode, so it cannot count: it says 1.
			w.Header().Set("X-Prometheus-Remote-Write-Samples-Written", "1")
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *sink) url() string { return "http://" + s.ln.Addr().String() + "/api/v1/write" }

func (s *sink) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

func runOne(ctx context.Context, o options, name, mode, dir string) (res result, err error) {
	res = result{server: name, mode: mode}
	per := o.series / o.targets
	targets, err := benchproc.StartTargets(o.targets, per)
	if err != nil {
		return res, err
	}
	defer targets.Close()
	promYAML := benchproc.ScrapeConfig(targets.Addr(), o.targets, o.scrapeInterval)
	var sk *sink
	if mode != "scrape only" {
		sk, err = startSink()
		if err != nil {
			return res, err
		}
		defer sk.close()
		promYAML += "remote_write:\n  - url: " + sk.url() + "\n    name: bench\n"
		if o.rw2 {
			promYAML += "    protobuf_message: io.prometheus.write.v2.Request\n"
		}
	}
	benchproc.Logf("%s / %s: starting", name, mode)
	var s *benchproc.Server
	switch name {
	case "nxwatcher":
		s, err = benchproc.StartNXWatcher(ctx, o.nxwatcher, dir, promYAML)
	case "prometheus":
		s, err = benchproc.StartPrometheus(ctx, o.prometheus, dir, promYAML)
	default:
		return res, fmt.Errorf("unknown server %q", name)
	}
	defer s.Stop()
	if err != nil {
		return res, err
	}
	want := per * o.targets
	settleStart := time.Now()
	for {
		m, err := s.Metric("prometheus_tsdb_head_series")
		if err == nil && m["prometheus_tsdb_head_series"] >= float64(want) {
			break
		}
		if time.Since(settleStart) > o.settle {
			return res, fmt.Errorf("head has %.0f series after %s (want %d)", m["prometheus_tsdb_head_series"], o.settle, want)
		}
		if err := benchproc.Sleep(ctx, s, time.Second); err != nil {
			return res, err
		}
	}
	benchproc.Logf("%s / %s: %d series after %s; warming up %s", name, mode, want, time.Since(settleStart).Round(time.Second), o.warmup)
	if err := benchproc.Sleep(ctx, s, o.warmup); err != nil {
		return res, err
	}
	const (
		appended = "prometheus_tsdb_head_samples_appended_total"
		sent     = "prometheus_remote_storage_samples_total"
		pending  = "prometheus_remote_storage_samples_pending"
	)
	m0, err := s.Metric(appended, sent)
	if err != nil {
		return res, err
	}
	cpu0, err := benchproc.ProcCPU(s.Pid())
	if err != nil {
		return res, err
	}
	self0, _ := benchproc.ProcCPU(os.Getpid())
	var bytes0 int64
	if sk != nil {
		bytes0 = sk.bytes.Load()
	}
	t0 := time.Now()
	res.loadavg = benchproc.LoadAvg()
	benchproc.Logf("%s / %s: measuring %s (loadavg %s)", name, mode, o.duration, res.loadavg)
	for time.Since(t0) < o.duration {
		if err := benchproc.Sleep(ctx, s, min(time.Second, o.duration-time.Since(t0))); err != nil {
			return res, err
		}
	}
	wall := time.Since(t0).Seconds()
	cpu1, err := benchproc.ProcCPU(s.Pid())
	if err != nil {
		return res, err
	}
	self1, _ := benchproc.ProcCPU(os.Getpid())
	m1, err := s.Metric(appended, sent, pending, "prometheus_tsdb_head_series")
	if err != nil {
		return res, err
	}
	res.rssEnd, res.rssHW, err = benchproc.ProcMem(s.Pid())
	if err != nil {
		return res, err
	}
	res.appendedPerS = (m1[appended] - m0[appended]) / wall
	res.sentPerS = (m1[sent] - m0[sent]) / wall
	res.pending = m1[pending]
	res.cores = (cpu1 - cpu0) / wall
	res.loadgenCores = (self1 - self0) / wall
	res.headSeries = m1["prometheus_tsdb_head_series"]
	if sk != nil {
		res.sinkBytesPerS = float64(sk.bytes.Load()-bytes0) / wall
	}
	benchproc.Logf("%s / %s: appended %.0f/s, sent %.0f/s, %.2f cores, RSS %.0f MiB (peak %.0f), pending %.0f",
		name, mode, res.appendedPerS, res.sentPerS, res.cores, benchproc.MiB(res.rssEnd), benchproc.MiB(res.rssHW), res.pending)
	return res, nil
}

func printTable(w io.Writer, o options, rs []result) {
	proto := "1.0"
	if o.rw2 {
		proto = "2.0"
	}
	fmt.Fprintf(w, "\n%d targets × %d series every %s; remote write %s to an in-process sink; window %s after %s warm-up\n\n",
		o.targets, o.series/o.targets, o.scrapeInterval, proto, o.duration, o.warmup)
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| server\t mode\t head series\t appended/s\t sent/s\t pending at end\t server cores\t RSS MiB end\t RSS MiB peak\t sink KB/s\t loadgen cores\t loadavg\t")
	fmt.Fprintln(tw, "|---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "| %s\t %s\t %.0f\t %.0f\t %.0f\t %.0f\t %.3f\t %.0f\t %.0f\t %.0f\t %.2f\t %s\t\n",
			r.server, r.mode, r.headSeries, r.appendedPerS, r.sentPerS, r.pending, r.cores, benchproc.MiB(r.rssEnd), benchproc.MiB(r.rssHW),
			r.sinkBytesPerS/1024, r.loadgenCores, r.loadavg)
	}
	tw.Flush()
	byKey := map[string]result{}
	for _, r := range rs {
		byKey[r.server+"/"+r.mode] = r
	}
	cost := map[string][2]float64{}
	for _, name := range strings.Split(o.servers, ",") {
		base, ok1 := byKey[name+"/scrape only"]
		fw, ok2 := byKey[name+"/scrape + remote write"]
		if !ok1 || !ok2 || fw.sentPerS <= 0 {
			continue
		}
		// The scrape-only run may append at a different rate (missed
		// scrapes on a busy machine), so its CPU is scaled to the
		// forwarding run's append rate before it is subtracted.
		scrapeCores := base.cores * fw.appendedPerS / base.appendedPerS
		perCore := (fw.cores - scrapeCores) / (fw.sentPerS / 100_000)
		extra := benchproc.MiB(fw.rssEnd - base.rssEnd)
		cost[name] = [2]float64{perCore, extra}
		fmt.Fprintf(w, "\n%s: remote write out costs %.3f cores per 100k samples/s sent (%.3f cores − %.3f for scraping %.0f samples/s, at %.0f samples/s sent) and %+.0f MiB RSS at the end of the window (peak %+.0f MiB)",
			name, perCore, fw.cores, scrapeCores, fw.appendedPerS, fw.sentPerS, extra, benchproc.MiB(fw.rssHW-base.rssHW))
	}
	if n, ok := cost["nxwatcher"]; ok {
		if p, ok := cost["prometheus"]; ok && p[0] != 0 {
			fmt.Fprintf(w, "\n\nnxwatcher/prometheus: CPU per 100k samples/s sent %.2f×", n[0]/p[0])
		}
	}
	fmt.Fprintln(w)
}
