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
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
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

	cpu0, t0 := cpuSeconds(), time.Now()
	time.Sleep(*duration)
	cpu1, t1 := cpuSeconds(), time.Now()
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
	fmt.Printf("RSS at end: %s, peak: %s\n", rss, hwm)
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
