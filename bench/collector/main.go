// Command collector measures `nxwatcher collector` on the design doc's
// pipeline (otlp → memory_limiter → batch → resource → otlp export) to a
// counting OTLP gRPC sink: spans/s per CPU-second of the collector process at
// the highest rate it takes, and its RSS at a fixed rate (20k spans/s).
//
// The collector runs in a child process (this binary re-executed with
// -child) so its CPU (utime+stime from /proc/PID/stat) and RSS (VmRSS/VmHWM)
// are its own; the load generator and the sink run in the parent.
//
//	go run ./bench/collector                        # both: max rate, then 20k spans/s
//	go run ./bench/collector -mode=max -duration=30s
//	go run ./bench/collector -mode=rate -rate=20000
//	go run ./bench/collector -mode=overload   # slow sink, memory_limiter at 64 MiB
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/encoding/gzip" // the otlp_grpc exporter sends gzip

	"github.com/nx-watcher/nxwatcher/internal/collector"
)

func main() {
	child := flag.Bool("child", false, "internal: run the collector (args after -- are --config/--set)")
	mode := flag.String("mode", "both", "max, rate, both or overload (a sink slower than the load; memory_limiter must refuse, the process stay bounded, and all accepted spans arrive)")
	limitMiB := flag.Int("limit-mib", 64, "memory_limiter limit_mib in -mode=overload (spike = limit/4, check every 100ms)")
	sinkDelay := flag.Duration("sink-delay", 20*time.Millisecond, "time the sink takes per request in -mode=overload")
	duration := flag.Duration("duration", 20*time.Second, "measured window per mode")
	warmup := flag.Duration("warmup", 5*time.Second, "load before the window")
	rate := flag.Int("rate", 20000, "spans/s in -mode=rate")
	batch := flag.Int("batch", 500, "spans per export request")
	senders := flag.Int("senders", 4, "concurrent gRPC senders")
	config := flag.String("config", "deploy/collector/otel-collector.yaml", "collector config (the design doc's)")
	upstream := flag.String("upstream", "", "run this otelcol binary (e.g. one built with the Collector's builder) as the collector instead of nxwatcher's; the config's telemetry.metrics.address is replaced by a reader, which upstream requires")
	flag.Parse()
	upstreamBin = *upstream
	if *child {
		os.Exit(runChild(flag.Args()))
	}
	for _, m := range modes(*mode) {
		r, err := measure(m, *config, *duration, *warmup, *rate, *batch, *senders, *limitMiB, *sinkDelay)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		fmt.Println(r)
	}
}

// upstreamBin, when set, is the collector binary the bench runs instead of
// this one's -child mode.
var upstreamBin string

// upstreamConfig writes config without its service.telemetry block (the
// design doc's last lines), which an otelcol ≥ v0.128 refuses.
func upstreamConfig(config string) (string, error) {
	b, err := os.ReadFile(config)
	if err != nil {
		return "", err
	}
	text := string(b)
	if i := strings.Index(text, "\n  telemetry:\n"); i >= 0 {
		text = text[:i+1]
	}
	f, err := os.CreateTemp("", "otelcol-upstream-*.yaml")
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, err = f.WriteString(text)
	return f.Name(), err
}

func modes(m string) []string {
	if m == "both" {
		return []string{"max", "rate"}
	}
	return []string{m}
}

// runChild is the collector process: it runs until SIGTERM.
func runChild(args []string) int {
	var configs, sets []string
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "--config="):
			configs = append(configs, strings.TrimPrefix(a, "--config="))
		case strings.HasPrefix(a, "--set="):
			sets = append(sets, strings.TrimPrefix(a, "--set="))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := collector.Run(ctx, collector.Options{Configs: configs, Sets: sets, Stderr: os.Stderr}); err != nil {
		fmt.Fprintln(os.Stderr, "collector:", err)
		return 1
	}
	return 0
}

type sink struct {
	ptraceotlp.UnimplementedGRPCServer
	spans atomic.Int64
	delay time.Duration
}

func (s *sink) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	time.Sleep(s.delay)
	s.spans.Add(int64(req.Traces().SpanCount()))
	return ptraceotlp.NewExportResponse(), nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// request builds one export request of n spans shaped like a traced HTTP
// service (a handful of attributes, parent links, one resource).
func request(n, seed int) ptraceotlp.ExportRequest {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	rs.Resource().Attributes().PutStr("k8s.pod.name", "checkout-7d9f8c6b5-x2x7p")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("bench")
	now := time.Now()
	for i := range n {
		sp := ss.Spans().AppendEmpty()
		var tid [16]byte
		var sid [8]byte
		copy(tid[:], fmt.Sprintf("%08x%08x", seed, i/8))
		copy(sid[:], fmt.Sprintf("%08x", i))
		sp.SetTraceID(tid)
		sp.SetSpanID(sid)
		sp.SetName("GET /api/cart")
		sp.SetKind(ptrace.SpanKindServer)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(3 * time.Millisecond)))
		sp.Attributes().PutStr("http.request.method", "GET")
		sp.Attributes().PutStr("url.path", "/api/cart")
		sp.Attributes().PutInt("http.response.status_code", 200)
		sp.Attributes().PutStr("server.address", "checkout.shop.svc")
	}
	return ptraceotlp.NewExportRequestFromTraces(td)
}

type result struct {
	mode                 string
	sent, delivered      int64
	window               time.Duration
	cpu                  float64
	rssEnd, rssPeak      int64
	loadgenCPU, loadavg  float64
	refusedRequests      int64
	targetRate, duration int
	// overload: totals over the whole run and whether all arrived.
	acceptedTotal, deliveredTotal int64
	drained                       time.Duration
}

func (r result) String() string {
	if r.mode == "overload" {
		return fmt.Sprintf("mode=overload window=%s accepted_total=%d delivered_total=%d all_delivered=%v drain=%s refused_requests=%d collector_cpu_s=%.2f rss_end_mib=%.1f rss_peak_mib=%.1f loadavg=%.2f",
			r.window, r.acceptedTotal, r.deliveredTotal, r.acceptedTotal == r.deliveredTotal, r.drained, r.refusedRequests, r.cpu,
			float64(r.rssEnd)/(1<<20), float64(r.rssPeak)/(1<<20), r.loadavg)
	}
	spansPerSec := float64(r.delivered) / r.window.Seconds()
	perCPU := float64(r.delivered) / r.cpu
	return fmt.Sprintf("mode=%s rate_target=%d window=%s delivered=%d sent=%d refused_requests=%d spans/s=%.0f collector_cpu_s=%.2f (cores=%.2f) spans_per_cpu_s=%.0f rss_end_mib=%.1f rss_peak_mib=%.1f loadgen_cpu_s=%.2f loadavg=%.2f",
		r.mode, r.targetRate, r.window, r.delivered, r.sent, r.refusedRequests, spansPerSec, r.cpu, r.cpu/r.window.Seconds(), perCPU,
		float64(r.rssEnd)/(1<<20), float64(r.rssPeak)/(1<<20), r.loadgenCPU, r.loadavg)
}

func measure(mode, config string, duration, warmup time.Duration, rate, batch, senders, limitMiB int, sinkDelay time.Duration) (result, error) {
	res := result{mode: mode, targetRate: rate}
	if mode == "max" {
		res.targetRate = 0
	}
	sinkAddr, err := freeAddr()
	if err != nil {
		return res, err
	}
	l, err := net.Listen("tcp", sinkAddr)
	if err != nil {
		return res, err
	}
	s := &sink{}
	if mode == "overload" {
		s.delay = sinkDelay
	}
	srv := grpc.NewServer()
	ptraceotlp.RegisterGRPCServer(srv, s)
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()

	grpcAddr, _ := freeAddr()
	httpAddr, _ := freeAddr()
	metricsAddr, _ := freeAddr()
	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	abs, _ := filepath.Abs(config)
	args := []string{"-child", "--",
		"--config=" + abs,
		"--set=receivers.otlp.protocols.grpc.endpoint=" + grpcAddr,
		"--set=receivers.otlp.protocols.http.endpoint=" + httpAddr,
		"--set=exporters.otlp/tempo.endpoint=" + sinkAddr,
		"--set=service.telemetry.metrics.address=" + metricsAddr,
		"--set=service.telemetry.logs.level=warn",
	}
	if mode == "overload" {
		args = append(args,
			fmt.Sprintf("--set=processors.memory_limiter.limit_mib=%d", limitMiB),
			fmt.Sprintf("--set=processors.memory_limiter.spike_limit_mib=%d", limitMiB/4),
			"--set=processors.memory_limiter.check_interval=100ms",
		)
	}
	cmd := exec.Command(self, args...)
	if upstreamBin != "" {
		cfg, err := upstreamConfig(abs)
		if err != nil {
			return res, err
		}
		defer os.Remove(cfg)
		host, port, _ := net.SplitHostPort(metricsAddr)
		uargs := []string{"--config=" + cfg}
		for _, a := range args[3:] {
			if !strings.HasPrefix(a, "--set=service.telemetry.metrics.address=") {
				uargs = append(uargs, a)
			}
		}
		uargs = append(uargs, fmt.Sprintf("--set=service.telemetry.metrics.readers=[{pull: {exporter: {prometheus: {host: %q, port: %s}}}}]", host, port))
		cmd = exec.Command(upstreamBin, uargs...)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return res, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	pid := cmd.Process.Pid
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", grpcAddr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("collector did not listen on %s", grpcAddr)
		}
		time.Sleep(100 * time.Millisecond)
	}

	cc, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return res, err
	}
	defer cc.Close()
	client := ptraceotlp.NewGRPCClient(cc)
	reqs := make([]ptraceotlp.ExportRequest, 16)
	for i := range reqs {
		reqs[i] = request(batch, i)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var sent, refused atomic.Int64
	var wg sync.WaitGroup
	// Paced mode: one token per request, spread over the senders.
	var tokens chan struct{}
	if mode == "rate" {
		tokens = make(chan struct{}, senders)
		interval := time.Duration(float64(time.Second) * float64(batch) / float64(rate))
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					select {
					case tokens <- struct{}{}:
					default: // senders behind: the rate is not met, counted by `sent`
					}
				}
			}
		}()
	}
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := i; ; n++ {
				if tokens != nil {
					select {
					case <-ctx.Done():
						return
					case <-tokens:
					}
				} else if ctx.Err() != nil {
					return
				}
				if _, err := client.Export(ctx, reqs[n%len(reqs)]); err != nil {
					if ctx.Err() != nil {
						return
					}
					refused.Add(1)
					continue
				}
				sent.Add(int64(batch))
			}
		}()
	}

	time.Sleep(warmup)
	cpu0, err := procCPU(pid)
	if err != nil {
		cancel()
		wg.Wait()
		return res, err
	}
	self0, _ := procCPU(os.Getpid())
	sent0, deliv0 := sent.Load(), s.spans.Load()
	start := time.Now()
	var peak int64
	for time.Since(start) < duration {
		time.Sleep(time.Second)
		if rss, _, err := procRSS(pid); err == nil && rss > peak {
			peak = rss
		}
	}
	res.window = time.Since(start)
	cpu1, _ := procCPU(pid)
	self1, _ := procCPU(os.Getpid())
	res.sent, res.delivered = sent.Load()-sent0, s.spans.Load()-deliv0
	res.refusedRequests = refused.Load()
	res.cpu = cpu1 - cpu0
	res.loadgenCPU = self1 - self0
	res.rssEnd, res.rssPeak, _ = procRSS(pid)
	if peak > res.rssPeak {
		res.rssPeak = peak
	}
	res.loadavg = loadavg()
	cancel()
	wg.Wait()
	if mode == "overload" {
		// Everything the receiver accepted must arrive once the load stops.
		res.acceptedTotal = sent.Load()
		drainStart := time.Now()
		for s.spans.Load() < res.acceptedTotal && time.Since(drainStart) < 120*time.Second {
			time.Sleep(100 * time.Millisecond)
			if _, hwm, err := procRSS(pid); err == nil && hwm > res.rssPeak {
				res.rssPeak = hwm
			}
		}
		res.drained = time.Since(drainStart).Round(100 * time.Millisecond)
		res.deliveredTotal = s.spans.Load()
	}
	if res.cpu <= 0 {
		return res, errors.New("no collector CPU measured")
	}
	return res, nil
}

// procCPU is utime+stime of pid in seconds.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// fields[0] is state (field 3); utime is field 14, stime 15.
	ut, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	return (ut + st) / 100, nil // USER_HZ is 100 on Linux
}

// procRSS returns VmRSS and VmHWM of pid in bytes.
func procRSS(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v << 10
		case "VmHWM:":
			hwm = v << 10
		}
	}
	return rss, hwm, nil
}

func loadavg() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
