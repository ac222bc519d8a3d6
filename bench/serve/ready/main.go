// Command ready measures what `nxwatcher serve` holds resident at the moment
// it is ready, and in the seconds after, with the embedded default config
// (OTLP on loopback port 0, a fresh storage directory each start). It starts
// each binary given -runs times, alternating them so that before and after
// see the same machine load, polls /-/ready every 10 ms, and reads
// /proc/PID/status (VmRSS, VmHWM, RssAnon, RssFile) and the CPU-seconds
// used at ready and at each offset of -at.
//
//	go run ./bench/serve/ready -nxwatcher=/tmp/before,/tmp/after -runs=10
//	go run ./bench/serve/ready -runs=5          # builds ./cmd/nxwatcher as the image does
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nx-watcher/nxwatcher/bench/internal/benchproc"
)

func main() {
	bins := flag.String("nxwatcher", "", "comma-separated nxwatcher binaries, measured in turn; empty builds ./cmd/nxwatcher (CGO_ENABLED=0, -trimpath -s -w, as the image)")
	runs := flag.Int("runs", 5, "starts of each binary")
	at := flag.String("at", "1s,5s,15s", "comma-separated offsets after ready at which to sample again")
	out := flag.String("out", "", "work directory; empty: a temporary one, removed unless -keep")
	keep := flag.Bool("keep", false, "keep the work directory")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *bins, *runs, *at, *out, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench/serve/ready:", err)
		os.Exit(1)
	}
}

// sample is one reading of a serve process.
type sample struct {
	rss, hwm, anon, file float64 // MiB
	cpu                  float64 // CPU-seconds since start
}

func run(ctx context.Context, binList string, runs int, atList, out string, keep bool) error {
	root, err := benchproc.ModuleRoot()
	if err != nil {
		return err
	}
	dir, cleanup, err := benchproc.WorkDir(out, "bench-serve-ready-", keep)
	if err != nil {
		return err
	}
	defer cleanup()
	var offsets []time.Duration
	for s := range strings.SplitSeq(atList, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("-at: %w", err)
		}
		offsets = append(offsets, d)
	}
	slices.Sort(offsets)
	var bins []string
	if binList == "" {
		bin := filepath.Join(dir, "nxwatcher")
		benchproc.Logf("building %s", bin)
		b := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/nxwatcher")
		b.Dir, b.Stdout, b.Stderr = root, os.Stderr, os.Stderr
		b.Env = append(os.Environ(), "CGO_ENABLED=0")
		if err := b.Run(); err != nil {
			return fmt.Errorf("build: %w", err)
		}
		bins = []string{bin}
	} else {
		bins = strings.Split(binList, ",")
	}
	cfg, err := defaultConfig(root, dir)
	if err != nil {
		return err
	}
	fmt.Printf("# bench/serve/ready runs=%d at=%s load=%s\n", runs, atList, benchproc.LoadAvg())
	// results[bin][0] at ready, [i+1] at offsets[i]
	results := make([][][]sample, len(bins))
	for r := range runs {
		for i, bin := range bins {
			s, err := once(ctx, bin, filepath.Join(dir, fmt.Sprintf("run-%d-%d", i, r)), cfg, offsets)
			if err != nil {
				return fmt.Errorf("%s run %d: %w", bin, r+1, err)
			}
			for j := range s {
				if len(results[i]) <= j {
					results[i] = append(results[i], nil)
				}
				results[i][j] = append(results[i][j], s[j])
			}
			benchproc.Logf("%s run %d: ready RSS %.1f MiB (anon %.1f, file %.1f), peak %.1f, %.2f CPU-s", bin, r+1, s[0].rss, s[0].anon, s[0].file, s[0].hwm, s[0].cpu)
		}
	}
	fmt.Printf("load after: %s\n", benchproc.LoadAvg())
	fmt.Println("| binary | when | RSS mean (min–max) MiB | anon / file mean MiB | VmHWM mean MiB | CPU-s mean |")
	fmt.Println("|---|---|---|---|---|---|")
	for i, bin := range bins {
		for j, ss := range results[i] {
			when := "ready"
			if j > 0 {
				when = "ready + " + offsets[j-1].String()
			}
			rss := stat(ss, func(s sample) float64 { return s.rss })
			fmt.Printf("| %s | %s | %.1f (%.1f–%.1f) | %.1f / %.1f | %.1f | %.2f |\n", bin, when, rss.mean, rss.min, rss.max,
				stat(ss, func(s sample) float64 { return s.anon }).mean, stat(ss, func(s sample) float64 { return s.file }).mean,
				stat(ss, func(s sample) float64 { return s.hwm }).mean, stat(ss, func(s sample) float64 { return s.cpu }).mean)
		}
	}
	return nil
}

type summary struct{ mean, min, max float64 }

func stat(ss []sample, f func(sample) float64) summary {
	s := summary{min: f(ss[0]), max: f(ss[0])}
	for _, x := range ss {
		v := f(x)
		s.mean += v / float64(len(ss))
		s.min, s.max = min(s.min, v), max(s.max, v)
	}
	return s
}

var webRE = regexp.MustCompile(`msg=Listening component=web address=(127\.0\.0\.1:\d+)`)

// once starts serve, samples it at ready and at each offset, and stops it.
func once(ctx context.Context, bin, dir, cfg string, offsets []time.Duration) ([]sample, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "serve.log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"), "--web.listen-address=127.0.0.1:0")
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(exited) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		_ = os.RemoveAll(filepath.Join(dir, "data"))
	}()
	pid := cmd.Process.Pid
	client := &http.Client{Timeout: time.Second}
	var base string
	start := time.Now()
	for {
		if base == "" {
			b, _ := os.ReadFile(logPath)
			if m := webRE.FindSubmatch(b); m != nil {
				base = "http://" + string(m[1])
			}
		}
		if base != "" {
			if resp, err := client.Get(base + "/-/ready"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("serve exited; log tail:\n%s", benchproc.Tail(logPath))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Since(start) > 2*time.Minute {
			return nil, errors.New("not ready after 2m")
		}
	}
	ready := time.Now()
	out := make([]sample, 0, 1+len(offsets))
	s, err := read(pid)
	if err != nil {
		return nil, err
	}
	out = append(out, s)
	for _, d := range offsets {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-exited:
			return nil, fmt.Errorf("serve exited; log tail:\n%s", benchproc.Tail(logPath))
		case <-time.After(time.Until(ready.Add(d))):
		}
		if s, err = read(pid); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// read samples /proc/PID/status and the CPU time.
func read(pid int) (sample, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return sample{}, err
	}
	var s sample
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			s.rss = kb / 1024
		case "VmHWM":
			s.hwm = kb / 1024
		case "RssAnon":
			s.anon = kb / 1024
		case "RssFile":
			s.file = kb / 1024
		}
	}
	s.cpu, err = benchproc.ProcCPU(pid)
	return s, err
}

// defaultConfig is the embedded default with OTLP on loopback port 0 (the
// embedded default binds :4317 and :4318, one serve at a time).
func defaultConfig(root, dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "internal/config/default.yml"))
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "nxwatcher.yml")
	return p, os.WriteFile(p, append(b, "otlp: {grpc_endpoint: '127.0.0.1:0', http_endpoint: '127.0.0.1:0'}\n"...), 0o644)
}
