// Command demo measures what `nxwatcher demo` costs: it runs the demo
// (serve plus the simulated bana platform, in this process, as the
// subcommand does) at the given rate and reports the process's CPU
// (utime+stime from getrusage, not wall time) per minute of demo, and its
// RSS.
//
//	go run ./bench/demo                          # default rate, 30s warm-up, 2m window
//	go run ./bench/demo -rate=50 -duration=5m    # as a load generator
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nx-watcher/nxwatcher/internal/demo"
)

func main() {
	rate := flag.Float64("rate", demo.DefaultRate, "requests/s at the day's peak (the demo's --rate)")
	cycle := flag.Duration("incident-cycle", demo.DefaultIncidentCycle, "the demo's --incident-cycle")
	warmup := flag.Duration("warmup", 30*time.Second, "time before the measured window")
	duration := flag.Duration("duration", 2*time.Minute, "measured window")
	flag.Parse()

	d, err := demo.New(demo.Options{ListenAddress: "127.0.0.1:0", Rate: *rate, IncidentCycle: *cycle})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- d.Run(ctx, func() { close(ready) }) }()
	<-ready
	time.Sleep(*warmup)

	c0 := counters(d.URL())
	cpu0, t0 := cpuSeconds(), time.Now()
	time.Sleep(*duration)
	cpu1, t1 := cpuSeconds(), time.Now()
	c1 := counters(d.URL())
	rss, hwm := memStatus()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	_ = d.Close()

	wall := t1.Sub(t0).Seconds()
	used := cpu1 - cpu0
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("rate=%g req/s  window=%s  warm-up=%s  GOMAXPROCS=%d  loadavg at end: %s\n", *rate, *duration, *warmup, runtime.GOMAXPROCS(0), strings.TrimSpace(string(load)))
	fmt.Printf("CPU: %.2f CPU-seconds per minute of demo = %.3f cores (serve + simulator, one process)\n", used/wall*60, used/wall)
	reqs := (c1.requests - c0.requests) / wall
	fmt.Printf("load: %.1f requests/s through Traefik, %.0f spans/s accepted, %.0f log lines/s appended\n",
		reqs, (c1.spans-c0.spans)/wall, (c1.lines-c0.lines)/wall)
	if reqs > 0 {
		fmt.Printf("CPU per 1000 requests: %.3f CPU-seconds\n", used/(reqs*wall)*1000)
	}
	fmt.Printf("RSS at end: %s, peak: %s\n", rss, hwm)
}

type totals struct{ requests, spans, lines float64 }

// counters reads the demo's request count (through the Prometheus API) and
// serve's own counters of accepted spans and appended log lines.
func counters(base string) totals {
	var t totals
	if resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape("sum(traefik_service_requests_total)")); err == nil {
		var r struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if json.NewDecoder(resp.Body).Decode(&r) == nil && len(r.Data.Result) == 1 {
			if s, ok := r.Data.Result[0].Value[1].(string); ok {
				t.requests, _ = strconv.ParseFloat(s, 64)
			}
		}
		resp.Body.Close()
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return t
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch {
		case strings.HasPrefix(line, "nxwatcher_otlp_accepted_items_total{") && strings.Contains(line, `signal="traces"`):
			t.spans += v
		case strings.HasPrefix(line, "nxwatcher_logstore_entries_appended_total"):
			t.lines += v
		}
	}
	return t
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func memStatus() (rss, hwm string) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?", "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "VmRSS:" {
			rss = f[1] + " " + f[2]
		}
		if len(f) >= 3 && f[0] == "VmHWM:" {
			hwm = f[1] + " " + f[2]
		}
	}
	return rss, hwm
}
