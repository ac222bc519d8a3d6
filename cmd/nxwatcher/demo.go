package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/prometheus/common/promslog"

	"github.com/nx-watcher/nxwatcher/internal/demo"
)

const demoUsage = `usage: nxwatcher demo [flags]

Runs serve plus a simulated bana platform (Traefik, the backend services,
PostgreSQL, Redis, Kafka, nodes, kubelet/cAdvisor, kube-state-metrics,
BullMQ) that is scraped, pushes logs through the Loki API and sends traces
over OTLP, with a daily traffic curve and recurring incidents that make the
design doc's alert rules fire. Prints the UI's URL and login.

flags:
`

// demoCmd is `nxwatcher demo`.
func demoCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config.file", "", "serve config file (YAML); empty runs the embedded default. The demo adds its scrape jobs and rules to it")
	storagePath := fs.String("storage.path", "", "directory for all stored data; empty uses a temporary directory removed on exit")
	listen := fs.String("web.listen-address", "127.0.0.1:9090", "address of the HTTP listener")
	rate := fs.Float64("rate", demo.DefaultRate, "requests per second through the simulated Traefik at the day's peak (each one logged and traced); raise it to use the demo as a load generator")
	cycle := fs.Duration("incident-cycle", demo.DefaultIncidentCycle, "period of the incident schedule; shorter cycles shrink the alert rules' `for` in proportion")
	scrape := fs.Duration("scrape-interval", 15*time.Second, "scrape and rule evaluation interval of the demo's jobs")
	backfill := fs.Duration("backfill", 0, "write this much metric history (ending now) before starting, e.g. 24h, so dashboards over the last day have data at once; logs and traces are not backfilled")
	logLevel := levelFlag{promslog.NewLevel()}
	_ = logLevel.Set("warn")
	fs.Var(logLevel, "log.level", "log level: debug, info, warn, error")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), demoUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "demo: unexpected arguments %q\n\n", fs.Args())
		fs.Usage()
		return 2
	}
	if *rate <= 0 || *cycle <= 0 || *scrape <= 0 {
		fmt.Fprintln(stderr, "demo: --rate, --incident-cycle and --scrape-interval must be positive")
		return 2
	}
	if *backfill < 0 {
		fmt.Fprintln(stderr, "demo: --backfill must not be negative")
		return 2
	}
	logger := promslog.New(&promslog.Config{Level: logLevel.Level, Writer: stderr})

	ctx, _, stopSignals := handleSignals(func(sig os.Signal) {
		logger.Warn("Received signal, stopping", "signal", sig.String())
	})
	defer stopSignals()

	d, err := demo.New(demo.Options{
		ConfigFile:     *configFile,
		StoragePath:    *storagePath,
		ListenAddress:  *listen,
		Rate:           *rate,
		IncidentCycle:  *cycle,
		ScrapeInterval: *scrape,
		Backfill:       *backfill,
		Logger:         logger,
	})
	if err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 1
	}
	runErr := d.Run(ctx, func() { d.Banner(stdout) })
	if err := d.Close(); err != nil {
		fmt.Fprintf(stderr, "demo: close: %v\n", err)
		return 1
	}
	if runErr != nil {
		fmt.Fprintf(stderr, "demo: %v\n", runErr)
		return 1
	}
	return 0
}
