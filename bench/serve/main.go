// Command serve measures the memory (VmRSS, VmHWM, RssAnon, RssFile) and
// CPU-seconds of the real `nxwatcher serve` binary, idle or at the
// `nxwatcher demo` rate, with the embedded default config or the
// Kubernetes staging/production ConfigMap (deploy/kubernetes/.../files).
//
// The load at the demo rate comes from a second process, `nxwatcher demo`
// (the load generator, not measured): the serve under test scrapes the
// demo's simulated exporters (the same targets, job names and target labels,
// read from the demo's /api/v1/targets), and the demo's own serve forwards
// every log line it accepts (logs.forward, Loki push) and, when the profile
// has traces, every span (traces.forward, OTLP/gRPC) to the serve under test.
// So the serve under test gets exactly the demo's scrape, log and trace load.
// -extra-series adds synthetic series (served by this process) to reach a
// larger scrape set, and -agent runs one `nxwatcher agent` tailing docker
// json-file logs this process appends to, pushing to the serve under test.
//
//	go run ./bench/serve -scenario=idle                                   # default config, no load
//	go run ./bench/serve -scenario=demo                                   # default config at the demo rate
//	go run ./bench/serve -scenario=demo -profile=staging -agent           # issue 14: staging serve + one agent
//	go run ./bench/serve -scenario=demo -profile=staging -agent -extra-series=26000
//
// GOGC/GOMEMLIMIT for the serve under test: -gogc, -gomemlimit (as the
// manifests set them). -gctrace writes the Go GC trace into serve's log and
// reports the live heap after the last GC.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nx-watcher/nxwatcher/bench/internal/benchproc"
	"github.com/nx-watcher/nxwatcher/internal/demo"
)

type options struct {
	bin, scenario, profile  string
	rate                    float64
	extraSeries             int
	agent                   bool
	agentRate, agentFiles   int
	warmup, duration, every time.Duration
	gogc, gomemlimit        string
	gctrace, keep           bool
	out                     string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "nxwatcher", "", "nxwatcher binary; empty builds one (CGO_ENABLED=0, -trimpath -s -w, as the image)")
	flag.StringVar(&o.scenario, "scenario", "demo", "idle (no load) or demo (the `nxwatcher demo` load)")
	flag.StringVar(&o.profile, "profile", "default", "serve config: default (embedded), staging or production (deploy/kubernetes ConfigMap files), or file:PATH (idle only; NXWATCHER_SELF_TARGET is filled in)")
	flag.Float64Var(&o.rate, "rate", demo.DefaultRate, "the demo's --rate (requests/s at the day's peak)")
	flag.IntVar(&o.extraSeries, "extra-series", 0, "synthetic series added to the scrape set (20 targets, served by this process)")
	flag.BoolVar(&o.agent, "agent", false, "run one `nxwatcher agent` shipping docker json-file logs to the serve under test")
	flag.IntVar(&o.agentRate, "agent-rate", 30, "lines/s the agent's files grow by")
	flag.IntVar(&o.agentFiles, "agent-files", 10, "log files the agent tails")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Minute, "time before the measured window (CPU counts from its end)")
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "measured window")
	flag.DurationVar(&o.every, "every", time.Minute, "sample interval")
	flag.StringVar(&o.gogc, "gogc", "", "GOGC of the serve under test (empty: inherit)")
	flag.StringVar(&o.gomemlimit, "gomemlimit", "", "GOMEMLIMIT of the serve under test (empty: inherit)")
	flag.BoolVar(&o.gctrace, "gctrace", false, "GODEBUG=gctrace=1 for the serve under test; report the live heap after the last GC")
	flag.StringVar(&o.out, "out", "", "work directory (data, configs, logs); empty: a temporary one, removed unless -keep")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench/serve:", err)
		os.Exit(1)
	}
}

// proc is a child process of the bench.
type proc struct {
	name, log string
	cmd       *exec.Cmd
	exited    chan struct{}
}

func start(name, dir, bin string, env []string, args ...string) (*proc, error) {
	p := &proc{name: name, log: filepath.Join(dir, name+".log"), exited: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	go func() { _ = p.cmd.Wait(); f.Close(); close(p.exited) }()
	return p, nil
}

func (p *proc) stop() {
	if p == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func (p *proc) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited; log tail:\n%s", p.name, benchproc.Tail(p.log))
	default:
		return nil
	}
}

// waitHTTP polls url until it answers 200.
func waitHTTP(ctx context.Context, p *proc, u string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err := p.alive(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: %s not 200 after %s", p.name, u, within)
}

func run(ctx context.Context, o options) (err error) {
	root, err := benchproc.ModuleRoot()
	if err != nil {
		return err
	}
	dir, cleanup, err := benchproc.WorkDir(o.out, "bench-serve-", o.keep)
	if err != nil {
		return err
	}
	defer cleanup()
	if o.bin == "" {
		o.bin = filepath.Join(dir, "nxwatcher")
		benchproc.Logf("building %s", o.bin)
		b := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", o.bin, "./cmd/nxwatcher")
		b.Dir, b.Stdout, b.Stderr = root, os.Stderr, os.Stderr
		b.Env = append(os.Environ(), "CGO_ENABLED=0")
		if err := b.Run(); err != nil {
			return fmt.Errorf("build: %w", err)
		}
	}
	ports := map[string]string{}
	for _, k := range []string{"web", "am", "ui", "grpc", "http", "gen"} {
		if ports[k], err = benchproc.FreePort(); err != nil {
			return err
		}
	}
	sutBase := "http://127.0.0.1:" + ports["web"]
	traces := o.profile == "production" || o.profile == "default"

	// The load generator first: the serve under test scrapes its exporters.
	var gen *proc
	var scrape string
	if o.scenario == "demo" {
		genCfg := "# bench/serve: the load generator's serve; forwards what it accepts\n" +
			"otlp: {grpc_endpoint: '127.0.0.1:0', http_endpoint: '127.0.0.1:0'}\n" +
			"metrics:\n  retention: 1d\n  prometheus:\n    global: {scrape_interval: 15s}\n" +
			"logs:\n  retention: 1d\n  forward: [{url: '" + sutBase + "/loki/api/v1/push', name: sut}]\n" +
			"traces:\n  retention: 1h\n"
		if traces {
			genCfg += "  forward: [{endpoint: '127.0.0.1:" + ports["grpc"] + "', insecure: true, name: sut}]\n"
		}
		if err := os.WriteFile(filepath.Join(dir, "gen.yml"), []byte(genCfg), 0o644); err != nil {
			return err
		}
		gen, err = start("demo", dir, o.bin, nil, "demo", "--config.file="+filepath.Join(dir, "gen.yml"),
			"--storage.path="+filepath.Join(dir, "gen-data"), "--web.listen-address=127.0.0.1:"+ports["gen"],
			fmt.Sprintf("--rate=%g", o.rate), "--log.level=warn")
		if err != nil {
			return err
		}
		defer gen.stop()
		if err := waitHTTP(ctx, gen, "http://127.0.0.1:"+ports["gen"]+"/-/ready", 2*time.Minute); err != nil {
			return err
		}
		if scrape, err = demoScrapeConfigs(ctx, "http://127.0.0.1:"+ports["gen"], ports["gen"]); err != nil {
			return err
		}
	}
	if o.extraSeries > 0 {
		const targets = 20
		ts, err := benchproc.StartTargets(targets, o.extraSeries/targets)
		if err != nil {
			return err
		}
		defer ts.Close()
		scrape += "  - job_name: synthetic\n    static_configs:\n"
		for t := range targets {
			scrape += fmt.Sprintf("      - targets: ['%s']\n        labels: {__metrics_path__: '/t/%d', shard: 's%d'}\n", ts.Addr(), t, t)
		}
	}
	var agentAddr string
	if o.agent {
		p, err := benchproc.FreePort()
		if err != nil {
			return err
		}
		agentAddr = "127.0.0.1:" + p
		scrape += "  - job_name: nxwatcher-agent\n    static_configs: [{targets: ['" + agentAddr + "']}]\n"
	}
	cfgPath, err := writeServeConfig(root, dir, o.profile, ports, scrape)
	if err != nil {
		return err
	}
	var env []string
	if o.gogc != "" {
		env = append(env, "GOGC="+o.gogc)
	}
	if o.gomemlimit != "" {
		env = append(env, "GOMEMLIMIT="+o.gomemlimit)
	}
	if o.gctrace {
		env = append(env, "GODEBUG=gctrace=1")
	}
	args := []string{"serve", "--storage.path=" + filepath.Join(dir, "data"), "--web.listen-address=127.0.0.1:" + ports["web"]}
	if cfgPath != "" {
		args = append(args, "--config.file="+cfgPath)
	}
	sut, err := start("serve", dir, o.bin, env, args...)
	if err != nil {
		return err
	}
	defer sut.stop()
	if err := waitHTTP(ctx, sut, sutBase+"/-/ready", 2*time.Minute); err != nil {
		return err
	}
	benchproc.Logf("serve (pid %d) ready at %s, profile %s, scenario %s; work dir %s", sut.cmd.Process.Pid, sutBase, o.profile, o.scenario, dir)

	var agent *proc
	var writer *logWriter
	if o.agent {
		if agent, writer, err = startAgent(ctx, dir, o, sutBase, agentAddr); err != nil {
			return err
		}
		defer agent.stop()
		defer writer.stop()
	}

	return measure(ctx, o, sutBase, sut, agent, gen, writer)
}

// demoScrapeConfigs turns the demo's active targets (all but its own
// /metrics) into static scrape jobs with the same names and target labels.
func demoScrapeConfigs(ctx context.Context, genBase, genPort string) (string, error) {
	type target struct {
		Labels         map[string]string `json:"labels"`
		ScrapePool     string            `json:"scrapePool"`
		ScrapeURL      string            `json:"scrapeUrl"`
		ScrapeInterval string            `json:"scrapeInterval"`
		ScrapeTimeout  string            `json:"scrapeTimeout"`
	}
	var body struct {
		Data struct {
			ActiveTargets []target `json:"activeTargets"`
		} `json:"data"`
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, genBase+"/api/v1/targets?state=active", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", fmt.Errorf("demo targets: %w", err)
	}
	pools := map[string][]target{}
	for _, t := range body.Data.ActiveTargets {
		u, err := url.Parse(t.ScrapeURL)
		if err != nil || strings.HasSuffix(u.Host, ":"+genPort) {
			continue // the demo's serve itself
		}
		pools[t.ScrapePool] = append(pools[t.ScrapePool], t)
	}
	if len(pools) == 0 {
		return "", errors.New("the demo has no exporter targets")
	}
	names := make([]string, 0, len(pools))
	for n := range pools {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		ts := pools[n]
		fmt.Fprintf(&b, "  - job_name: %q\n    scrape_interval: %s\n    scrape_timeout: %s\n    static_configs:\n", n, ts[0].ScrapeInterval, ts[0].ScrapeTimeout)
		for _, t := range ts {
			u, _ := url.Parse(t.ScrapeURL)
			fmt.Fprintf(&b, "      - targets: [%q]\n        labels:\n          __metrics_path__: %q\n", u.Host, u.Path)
			keys := make([]string, 0, len(t.Labels))
			for k := range t.Labels {
				if k != "job" {
					keys = append(keys, k)
				}
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(&b, "          %s: %q\n", k, t.Labels[k])
			}
		}
	}
	return b.String(), nil
}

// writeServeConfig writes the serve config of the profile with every
// listener on a free loopback port and scrape jobs appended to its own.
func writeServeConfig(root, dir, profile string, ports map[string]string, scrape string) (string, error) {
	self := "  - job_name: nx-watcher\n    static_configs: [{targets: ['127.0.0.1:" + ports["web"] + "']}]\n"
	switch profile {
	case "default":
		if scrape == "" {
			return "", nil // the embedded default, as `nxwatcher serve` with no flags
		}
		b, err := os.ReadFile(filepath.Join(root, "internal/config/default.yml"))
		if err != nil {
			return "", err
		}
		rules := filepath.Join(root, "deploy/rules/bana.rules.yml")
		// default.yml's scrape_configs sit under metrics.prometheus.
		jobs := strings.ReplaceAll(strings.TrimRight(scrape, "\n"), "\n", "\n    ")
		cfg := strings.Replace(string(b), "NXWATCHER_SELF_TARGET", "127.0.0.1:"+ports["web"], 1) + "    " + jobs + "\n" +
			"    rule_files: ['" + rules + "']\n" +
			"otlp: {grpc_endpoint: '127.0.0.1:" + ports["grpc"] + "', http_endpoint: '127.0.0.1:" + ports["http"] + "'}\n"
		p := filepath.Join(dir, "nxwatcher.yml")
		return p, os.WriteFile(p, []byte(cfg), 0o644)
	case "staging", "production":
		src := filepath.Join(root, "deploy/kubernetes/base/files")
		main := filepath.Join(src, "nxwatcher.yml")
		if profile == "production" {
			main = filepath.Join(root, "deploy/kubernetes/overlays/production/files/nxwatcher.yml")
		}
		b, err := os.ReadFile(main)
		if err != nil {
			return "", err
		}
		cfg := strings.NewReplacer(`":9093"`, `"127.0.0.1:`+ports["am"]+`"`, `":3000"`, `"127.0.0.1:`+ports["ui"]+`"`,
			`":4317"`, `"127.0.0.1:`+ports["grpc"]+`"`, `":4318"`, `"127.0.0.1:`+ports["http"]+`"`).Replace(string(b))
		for _, f := range []string{"alertmanager.yml", "alerts.yml"} {
			b, err := os.ReadFile(filepath.Join(src, f))
			if err != nil {
				return "", err
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
				return "", err
			}
		}
		// The ConfigMap's prometheus.yml discovers Kubernetes targets; here
		// its scrape jobs are replaced by the demo's exporters, and the rest
		// (global, storage, runtime) is kept.
		var prom map[string]any
		if b, err = os.ReadFile(filepath.Join(src, "prometheus.yml")); err != nil {
			return "", err
		}
		if err := yaml.Unmarshal(b, &prom); err != nil {
			return "", err
		}
		var jobs map[string]any
		if err := yaml.Unmarshal([]byte("scrape_configs:\n"+self+scrape), &jobs); err != nil {
			return "", fmt.Errorf("scrape jobs: %w", err)
		}
		prom["scrape_configs"], prom["rule_files"] = jobs["scrape_configs"], []string{"alerts.yml"}
		if b, err = yaml.Marshal(prom); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), b, 0o644); err != nil {
			return "", err
		}
		p := filepath.Join(dir, "nxwatcher.yml")
		return p, os.WriteFile(p, []byte(cfg), 0o644)
	}
	if path, ok := strings.CutPrefix(profile, "file:"); ok && scrape == "" {
		// A variant of the default for the idle scenario: the self-scrape
		// placeholder is filled in as for the embedded default.
		b, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		p := filepath.Join(dir, "nxwatcher.yml")
		return p, os.WriteFile(p, []byte(strings.ReplaceAll(string(b), "NXWATCHER_SELF_TARGET", "127.0.0.1:"+ports["web"])), 0o644)
	}
	return "", fmt.Errorf("unknown -profile %q (file:PATH only with -scenario=idle)", profile)
}

// logWriter appends docker json-file lines to files at a steady rate.
type logWriter struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	written int64
	mu      sync.Mutex
}

func (w *logWriter) stop() { w.cancel(); w.wg.Wait() }

func (w *logWriter) count() int64 { w.mu.Lock(); defer w.mu.Unlock(); return w.written }

func startAgent(ctx context.Context, dir string, o options, sutBase, addr string) (*proc, *logWriter, error) {
	logs := filepath.Join(dir, "containers")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, nil, err
	}
	cfg := fmt.Sprintf(`server: {http_listen_address: 127.0.0.1, http_listen_port: %s}
positions: {filename: %s/positions.yaml}
clients: [{url: %s/loki/api/v1/push}]
scrape_configs:
  - job_name: kubernetes-pods
    pipeline_stages: [{docker: {}}]
    static_configs: [{targets: [localhost], labels: {job: kubernetes-pods, namespace: nx-backend, __path__: %s/*.log}}]
`, addr[strings.LastIndexByte(addr, ':')+1:], dir, sutBase, logs)
	cfgPath := filepath.Join(dir, "promtail.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, nil, err
	}
	files := make([]*os.File, o.agentFiles)
	for i := range files {
		f, err := os.OpenFile(filepath.Join(logs, fmt.Sprintf("pod-%02d_nx-backend_app-%02d.log", i, i)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, err
		}
		files[i] = f
	}
	a, err := start("agent", dir, o.bin, nil, "agent", "--config.file="+cfgPath)
	if err != nil {
		return nil, nil, err
	}
	if err := waitHTTP(ctx, a, "http://"+addr+"/ready", time.Minute); err != nil {
		a.stop()
		return nil, nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &logWriter{cancel: cancel}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer func() {
			for _, f := range files {
				f.Close()
			}
		}()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		var due float64
		n := 0
		for {
			select {
			case <-wctx.Done():
				return
			case now := <-t.C:
				due += float64(o.agentRate) / 10
				for ; due >= 1; due-- {
					line := fmt.Sprintf(`time=%s level=info msg="request served" method=GET path=/api/v1/orders/%d status=200 duration_ms=%d trace_id=%016x`,
						now.UTC().Format(time.RFC3339Nano), n%977, n%250, uint64(n)*2654435761)
					rec, _ := json.Marshal(map[string]string{"log": line + "\n", "stream": "stdout", "time": now.UTC().Format(time.RFC3339Nano)})
					_, _ = files[n%len(files)].Write(append(rec, '\n'))
					n++
					w.mu.Lock()
					w.written++
					w.mu.Unlock()
				}
			}
		}
	}()
	return a, w, nil
}

func mean(xs []int64) float64 {
	var sum float64
	for _, x := range xs {
		sum += float64(x)
	}
	return sum / float64(len(xs))
}

// status reads the named kB fields of /proc/PID/status, in bytes.
func status(pid int) map[string]int64 {
	out := map[string]int64{}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !strings.HasPrefix(k, "Vm") && !strings.HasPrefix(k, "Rss") {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) >= 1 {
			kb, _ := strconv.ParseInt(fs[0], 10, 64)
			out[k] = kb << 10
		}
	}
	return out
}

var gcLine = regexp.MustCompile(`gc \d+ @[\d.]+s .*?, (\d+)->(\d+)->(\d+) MB, (\d+) MB goal`)

// lastGC is the heap at GC start, end and live (MB) of the last gctrace line.
func lastGC(log string) string {
	b, _ := os.ReadFile(log)
	m := gcLine.FindAllSubmatch(b, -1)
	if len(m) == 0 {
		return "-"
	}
	l := m[len(m)-1]
	return fmt.Sprintf("%s->%s MB live, goal %s (%d GCs)", l[2], l[3], l[4], len(m))
}

func measure(ctx context.Context, o options, sutBase string, sut, agent, gen *proc, w *logWriter) error {
	s := &benchproc.Server{Name: "serve", Base: sutBase}
	mnames := []string{"prometheus_tsdb_head_series", "go_memstats_heap_inuse_bytes", "go_memstats_heap_alloc_bytes",
		"go_memstats_sys_bytes", "go_memstats_stack_inuse_bytes", "nxwatcher_logstore_entries_appended_total",
		"nxwatcher_otlp_accepted_items_total", "prometheus_tsdb_head_samples_appended_total"}
	type sample struct {
		t         time.Duration
		st        map[string]int64
		ast       map[string]int64
		cpu, acpu float64
		m         map[string]float64
	}
	take := func(t0 time.Time) sample {
		sm := sample{t: time.Since(t0).Round(time.Second), st: status(sut.cmd.Process.Pid)}
		sm.cpu, _ = benchproc.ProcCPU(sut.cmd.Process.Pid)
		sm.m, _ = s.Metric(mnames...)
		if agent != nil {
			sm.ast = status(agent.cmd.Process.Pid)
			sm.acpu, _ = benchproc.ProcCPU(agent.cmd.Process.Pid)
		}
		return sm
	}
	check := func() error {
		for _, p := range []*proc{sut, agent, gen} {
			if p != nil {
				if err := p.alive(); err != nil {
					return err
				}
			}
		}
		return nil
	}
	mib := func(b int64) string { return fmt.Sprintf("%.0f", benchproc.MiB(b)) }
	fmt.Printf("# bench/serve scenario=%s profile=%s rate=%g extra-series=%d agent=%v gogc=%q gomemlimit=%q load=%s\n",
		o.scenario, o.profile, o.rate, o.extraSeries, o.agent, o.gogc, o.gomemlimit, benchproc.LoadAvg())
	fmt.Println("| t | serve RSS | HWM | anon | file | heap inuse | go sys | head series | agent RSS | agent HWM | sum RSS | serve CPU-s | load |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	t0 := time.Now()
	var first, last sample
	var window []int64 // serve's VmRSS at each sample of the window
	var peakSum int64
	row := func(sm sample) {
		ar, ah := "-", "-"
		sum := sm.st["VmRSS"]
		if sm.ast != nil {
			ar, ah = mib(sm.ast["VmRSS"]), mib(sm.ast["VmHWM"])
			sum += sm.ast["VmRSS"]
		}
		peakSum = max(peakSum, sum)
		fmt.Printf("| %s | %s | %s | %s | %s | %.0f | %.0f | %.0f | %s | %s | %s | %.1f | %s |\n", sm.t, mib(sm.st["VmRSS"]), mib(sm.st["VmHWM"]),
			mib(sm.st["RssAnon"]), mib(sm.st["RssFile"]), sm.m["go_memstats_heap_inuse_bytes"]/(1<<20), sm.m["go_memstats_sys_bytes"]/(1<<20),
			sm.m["prometheus_tsdb_head_series"], ar, ah, mib(sum), sm.cpu, benchproc.LoadAvg())
	}
	end := o.warmup + o.duration
	for {
		if err := check(); err != nil {
			return err
		}
		sm := take(t0)
		row(sm)
		if first.st == nil && sm.t >= o.warmup {
			first = sm
		}
		if first.st != nil {
			window = append(window, sm.st["VmRSS"])
		}
		last = sm
		if sm.t >= end {
			break
		}
		next := min(o.every, end-time.Since(t0))
		if first.st == nil && time.Since(t0) < o.warmup {
			next = min(next, o.warmup-time.Since(t0))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(max(next, time.Second)):
		}
	}
	win := (last.t - first.t).Seconds()
	fmt.Printf("\nwindow %s (after %s warm-up), load %s\n", last.t-first.t, o.warmup, benchproc.LoadAvg())
	fmt.Printf("serve: RSS %s MiB at end, peak (VmHWM) %s MiB, anon %s MiB, file %s MiB; %.2f CPU-s in the window = %.4f core\n",
		mib(last.st["VmRSS"]), mib(last.st["VmHWM"]), mib(last.st["RssAnon"]), mib(last.st["RssFile"]), last.cpu-first.cpu, (last.cpu-first.cpu)/win)
	if len(window) > 0 {
		// serve releases memory after quiet minutes (ADR 0086): its RSS
		// is a saw-tooth, so one sample at the end says less than these.
		fmt.Printf("serve RSS over the window: mean %.1f MiB, min %s, max %s (%d samples every %s)\n",
			benchproc.MiB(int64(mean(window))), mib(slices.Min(window)), mib(slices.Max(window)), len(window), o.every)
	}
	if win > 0 {
		fmt.Printf("serve ingest in the window: %.0f samples/s, %.1f log lines/s, %.1f spans/s; %.0f head series\n",
			(last.m["prometheus_tsdb_head_samples_appended_total"]-first.m["prometheus_tsdb_head_samples_appended_total"])/win,
			(last.m["nxwatcher_logstore_entries_appended_total"]-first.m["nxwatcher_logstore_entries_appended_total"])/win,
			(last.m["nxwatcher_otlp_accepted_items_total"]-first.m["nxwatcher_otlp_accepted_items_total"])/win,
			last.m["prometheus_tsdb_head_series"])
	}
	if agent != nil {
		fmt.Printf("agent: RSS %s MiB at end, peak %s MiB, anon %s MiB; %.2f CPU-s in the window = %.4f core; %d lines written in all\n",
			mib(last.ast["VmRSS"]), mib(last.ast["VmHWM"]), mib(last.ast["RssAnon"]), last.acpu-first.acpu, (last.acpu-first.acpu)/win, w.count())
		fmt.Printf("serve + agent: %s MiB RSS at end, %s MiB highest sampled sum, %s MiB if both peaks coincided\n",
			mib(last.st["VmRSS"]+last.ast["VmRSS"]), mib(peakSum), mib(last.st["VmHWM"]+last.ast["VmHWM"]))
	}
	if o.gctrace {
		fmt.Printf("serve GC: %s\n", lastGC(sut.log))
	}
	return nil
}
