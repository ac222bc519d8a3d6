// Command heap writes a heap profile of serve (internal/app, in this
// process, as `nxwatcher serve` builds it) idle with the embedded default
// config or, with -demo, at the `nxwatcher demo` load (internal/demo in this
// process, so its simulator's allocations appear too: read the profile by
// package). serve serves no /debug/pprof, hence this command.
//
//	go run ./bench/serve/heap -duration=2m -o bench/out/heap-idle.pprof
//	go run ./bench/serve/heap -demo -profile=staging -duration=5m -o bench/out/heap-staging.pprof
//	go tool pprof -top -sample_index=inuse_space bench/out/heap-idle.pprof
//
// -memprofilerate=4096 samples every 4 KiB allocated instead of the
// runtime's 512 KiB, so items of a few hundred KiB are told apart (the
// allocations of package init, before main, keep the default rate).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/nx-watcher/nxwatcher/bench/internal/benchproc"
	"github.com/nx-watcher/nxwatcher/internal/app"
	"github.com/nx-watcher/nxwatcher/internal/demo"
)

func main() {
	withDemo := flag.Bool("demo", false, "run the demo's simulated platform against serve (the demo load)")
	profile := flag.String("profile", "default", "serve config: default (embedded) or staging (deploy/kubernetes/base/files, listeners on loopback, Kubernetes jobs left out)")
	duration := flag.Duration("duration", 2*time.Minute, "time before the profile is written")
	out := flag.String("o", "heap.pprof", "heap profile path")
	rate := flag.Int("memprofilerate", runtime.MemProfileRate, "runtime.MemProfileRate: bytes allocated per heap profile sample")
	flag.Parse()
	runtime.MemProfileRate = *rate
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *withDemo, *profile, *duration, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench/serve/heap:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, withDemo bool, profile string, d time.Duration, out string) error {
	dir, err := os.MkdirTemp("", "bench-serve-heap-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var cfg string
	switch profile {
	case "staging":
		cfg, err = stagingConfig(dir)
	default:
		cfg, err = defaultConfig(dir)
	}
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	runCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if withDemo {
		dm, err := demo.New(demo.Options{ConfigFile: cfg, StoragePath: filepath.Join(dir, "data"), ListenAddress: "127.0.0.1:0", Logger: logger})
		if err != nil {
			return err
		}
		defer dm.Close()
		if err := dm.Run(runCtx, func() { benchproc.Logf("demo running at %s", dm.URL()) }); err != nil {
			return err
		}
		// Run returns after the window; the stores are still open until
		// Close, so profile now.
		return writeProfile(out)
	}
	a, err := app.New(app.Options{ConfigFile: cfg, StoragePath: filepath.Join(dir, "data"), ListenAddress: "127.0.0.1:0",
		Flags: map[string]string{"config.file": cfg, "storage.path": filepath.Join(dir, "data")}}, app.Deps{Logger: logger})
	if err != nil {
		return err
	}
	defer a.Close()
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	<-runCtx.Done()
	if err := writeProfile(out); err != nil {
		return err
	}
	if err := <-done; err != nil && !strings.Contains(err.Error(), "context") {
		return err
	}
	return nil
}

func writeProfile(path string) error {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	benchproc.Logf("heap after GC: alloc %.1f MiB, inuse %.1f MiB, sys %.1f MiB, stacks %.1f MiB; profile %s",
		benchproc.MiB(int64(ms.HeapAlloc)), benchproc.MiB(int64(ms.HeapInuse)), benchproc.MiB(int64(ms.Sys)), benchproc.MiB(int64(ms.StackInuse)), path)
	return pprof.WriteHeapProfile(f)
}

// defaultConfig is the embedded default with OTLP on free loopback ports
// (the bench runs beside other servers).
func defaultConfig(dir string) (string, error) {
	root, err := benchproc.ModuleRoot()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(root, "internal/config/default.yml"))
	if err != nil {
		return "", err
	}
	cfg := string(b) + "otlp: {grpc_endpoint: '127.0.0.1:0', http_endpoint: '127.0.0.1:0'}\n"
	p := filepath.Join(dir, "nxwatcher.yml")
	return p, os.WriteFile(p, []byte(cfg), 0o644)
}

// stagingConfig is the staging ConfigMap's serve config with loopback
// listeners and a prometheus.yml holding only the rules (the demo adds its
// scrape jobs; the Kubernetes discovery jobs need a cluster).
func stagingConfig(dir string) (string, error) {
	root, err := benchproc.ModuleRoot()
	if err != nil {
		return "", err
	}
	src := filepath.Join(root, "deploy/kubernetes/base/files")
	b, err := os.ReadFile(filepath.Join(src, "nxwatcher.yml"))
	if err != nil {
		return "", err
	}
	cfg := strings.NewReplacer(`":9093"`, `"127.0.0.1:0"`, `":3000"`, `"127.0.0.1:0"`).Replace(string(b))
	for _, f := range []string{"alertmanager.yml", "alerts.yml"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte("global: {scrape_interval: 15s, evaluation_interval: 15s}\nrule_files: ['alerts.yml']\nscrape_configs: []\n"), 0o644); err != nil {
		return "", err
	}
	p := filepath.Join(dir, "nxwatcher.yml")
	return p, os.WriteFile(p, []byte(cfg), 0o644)
}
