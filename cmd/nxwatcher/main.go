// Command nxwatcher is the one binary of nx-watcher: `serve` runs the whole
// observability stack, `agent` ships a node's logs, `collector` is the OTLP
// gateway, `check` validates
// configs, `version` prints the build.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/prometheus/common/promslog"

	"github.com/nx-watcher/nxwatcher/internal/app"
	"github.com/nx-watcher/nxwatcher/internal/version"
)

const usage = `usage: nxwatcher <command> [flags]

commands:
  serve                 run the all-in-one server (metrics, alerting, logs, traces)
  agent                 ship this node's log files to Loki's push API (reads a promtail.yaml)
  collector             OTLP gateway on the OpenTelemetry Collector (reads an otel-collector.yaml)
  demo                  serve plus a simulated bana platform feeding every dashboard and alert rule
  check config FILE...  validate a serve config, a bare prometheus.yml or alertmanager.yml
                        (with the rule files, templates and credential files they name)
  check rules FILE...   validate rule files (as promtool check rules)
  check agent-config FILE...  validate a promtail.yaml for the agent
  test rules FILE...    run rule unit tests (as promtool test rules)
  version               print the build
`

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

func runMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "agent":
		return agentCmd(args[1:], stdout, stderr)
	case "collector":
		return collectorCmd(args[1:], stdout, stderr)
	case "demo":
		return demoCmd(args[1:], stdout, stderr)
	case "check":
		return check(args[1:], stdout, stderr)
	case "test":
		return testCmd(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		i := version.Get()
		fmt.Fprintf(stdout, "nxwatcher, version %s (revision: %s)\n  go version: %s\n  prometheus api: %s\n",
			i.Version, i.Revision, i.GoVersion, version.PrometheusAPI)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "nxwatcher: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// serveUsage heads `nxwatcher serve --help`; the flags follow it.
const serveUsage = `usage: nxwatcher serve [flags]

Runs the all-in-one server. Only bootstrap settings are flags; everything else
is in the config file (the embedded default when --config.file is not given).

flags:
`

func serve(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config.file", "", "serve config file (YAML); empty runs the embedded default")
	storagePath := fs.String("storage.path", "./data", "directory for all stored data")
	listen := fs.String("web.listen-address", ":9090", "address of the HTTP listener")
	externalURL := fs.String("web.external-url", "", "URL under which nxwatcher is reached from outside (links in alerts and the UI); empty derives it from the host name and port")
	routePrefix := fs.String("web.route-prefix", "", "path prefix of every HTTP route; empty takes the path of --web.external-url")
	enableAdmin := fs.Bool("web.enable-admin-api", false, "serve the TSDB admin endpoints (/api/v1/admin/tsdb/delete_series, clean_tombstones, snapshot), as Prometheus's flag")
	enableLifecycle := fs.Bool("web.enable-lifecycle", false, "serve POST /-/reload and /-/quit over HTTP, as Prometheus's flag; without it they answer 403 (SIGHUP reloads either way)")
	webConfig := fs.String("web.config.file", "", "exporter-toolkit web config (TLS, basic auth) for the HTTP and Alertmanager listeners, as Prometheus's; re-read on every connection")
	logLevel := levelFlag{promslog.NewLevel()}
	fs.Var(logLevel, "log.level", "log level: debug, info, warn, error")
	logFormat := formatFlag{promslog.NewFormat()}
	fs.Var(logFormat, "log.format", "log format: logfmt or json")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), serveUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return 0
		}
		return 2 // flag printed the error and the usage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "serve: unexpected arguments %q\n\n", fs.Args())
		fs.Usage()
		return 2
	}
	logger := promslog.New(&promslog.Config{Level: logLevel.Level, Format: logFormat.Format, Writer: stderr})
	setAutoMemLimit(logger)

	flags := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { flags[f.Name] = f.Value.String() })

	// Signals are ours from the first moment: a SIGTERM or SIGHUP that
	// arrives while the stores replay their WALs must not kill the process
	// with the default action.
	ctx, reloads, stopSignals := handleSignals(func(sig os.Signal) {
		logger.Info("Received signal, stopping", "signal", sig.String())
	})
	defer stopSignals()

	source := *configFile
	if source == "" {
		source = "embedded default"
	}
	info := version.Get()
	logger.Info("Starting nxwatcher", "version", info.Version, "revision", info.Revision, "go", info.GoVersion, "config", source, "storage", *storagePath)

	a, err := app.New(app.Options{
		ConfigFile:      *configFile,
		StoragePath:     *storagePath,
		ListenAddress:   *listen,
		ExternalURL:     *externalURL,
		RoutePrefix:     *routePrefix,
		WebConfigFile:   *webConfig,
		EnableLifecycle: *enableLifecycle,
		EnableAdminAPI:  *enableAdmin,
		Flags:           flags,
		BeforeReady:     func() { serveReleaseBeforeReady(logger) },
	}, app.Deps{Logger: logger})
	if err != nil {
		logger.Error("Cannot start", "err", err)
		return 1
	}
	if ctx.Err() != nil {
		logger.Info("Stopped during start-up")
		if err := a.Close(); err != nil {
			logger.Error("Close", "err", err)
			return 1
		}
		return 0
	}
	go func() {
		select {
		case <-a.FirstApplied():
		case <-ctx.Done():
			return
		}
		go serveMemoryRelease(ctx, logger)
		for {
			select {
			case <-ctx.Done():
				return
			case <-reloads:
				_ = a.Reload() // Reload logs the outcome and keeps the old config on failure.
			}
		}
	}()

	runErr := a.Run(ctx)
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		logger.Error("Stopped with error", "err", runErr)
	}
	if err := a.Close(); err != nil {
		logger.Error("Close", "err", err)
		return 1
	}
	logger.Info("Stopped cleanly")
	if runErr != nil {
		return 1
	}
	return 0
}

// levelFlag and formatFlag let flag.PrintDefaults build their zero values
// (a zero promslog.Level panics in String).
type levelFlag struct{ *promslog.Level }

func (f levelFlag) String() string {
	if f.Level == nil {
		return ""
	}
	return f.Level.String()
}

type formatFlag struct{ *promslog.Format }

func (f formatFlag) String() string {
	if f.Format == nil {
		return ""
	}
	return f.Format.String()
}
