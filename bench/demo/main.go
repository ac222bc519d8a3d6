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
	backfill := flag.Duration("backfill", 0, "the demo's --backfill; its wall and CPU time are reported apart")
	flag.Parse()

	d, err := demo.New(demo.Options{ListenAddress: "127.0.0.1:0", Rate: *rate, IncidentCycle: *cycle, Backfill: *backfill})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	bf0, bfStart := cpuSeconds(), time.Now()
	go func() { done <- d.Run(ctx, func() { close(ready) }) }()
	<-ready
	if *backfill > 0 {
		fmt.Printf("start-up with --backfill=%s: %.1f s wall, %.1f CPU-seconds\n", *backfill, time.Since(bfStart).Seconds(), cpuSeconds()-bf0)
	}
	time.Sleep(*warmup)

	c0 := counters(d.URL())
	cpu0, t0 := cpuSeconds(), time.Now()
	time.Sleep(*duration)
	cpu1, t1 := cpuSeconds(), time.Now()
	c1 := counters(d.URL())
	// Requests through the Prometheus API: rate() copes with the counter
	// reset where a backfilled history meets the live exporters. The
	// window is widened by two scrape intervals so it holds at least two
	// scrapes however short the run.
	reqs := instant(d.URL(), fmt.Sprintf("sum(rate(traefik_service_requests_total[%ds]))", int(t1.Sub(t0).Seconds())+30))
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
	fmt.Printf("load: %.1f requests/s through Traefik, %.0f spans/s accepted, %.0f log lines/s appended\n",
		reqs, (c1.spans-c0.spans)/wall, (c1.lines-c0.lines)/wall)
	if reqs > 0 {
		fmt.Printf("CPU per 1000 requests: %.3f CPU-seconds\n", used/(reqs*wall)*1000)
	}
	fmt.Printf("RSS at end: %s, peak: %s\n", rss, hwm)
}

type totals struct{ spans, lines float64 }

// counters reads serve's own counters of accepted spans and appended log
// lines.
func counters(base string) totals {
	var t totals
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

// instant is the single value of an instant query, 0 when there is none.
func instant(base, q string) float64 {
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&r) != nil || len(r.Data.Result) != 1 {
		return 0
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, _ := strconv.ParseFloat(s, 64)
	return v
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
