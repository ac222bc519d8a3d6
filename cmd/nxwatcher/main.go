// Command nxwatcher is the one binary of nx-watcher: `serve` runs the whole
// observability stack, `check` validates configs, `version` prints the build.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/common/promslog"

	"github.com/nx-watcher/nxwatcher/internal/app"
	"github.com/nx-watcher/nxwatcher/internal/version"
)

const usage = `usage: nxwatcher <command> [flags]

commands:
  serve                 run the all-in-one server (metrics, alerting, logs, traces)
  check config FILE...  validate a serve config or a bare prometheus.yml
  check rules FILE...   validate rule files (as promtool check rules)
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
		return serve(args[1:], stderr)
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

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config.file", "", "serve config file (YAML); empty runs the embedded default")
	storagePath := fs.String("storage.path", "./data", "directory for all stored data")
	listen := fs.String("web.listen-address", ":9090", "address of the HTTP listener")
	logLevel := promslog.NewLevel()
	fs.Var(logLevel, "log.level", "log level: debug, info, warn, error")
	logFormat := promslog.NewFormat()
	fs.Var(logFormat, "log.format", "log format: logfmt or json")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "serve: unexpected arguments %q\n", fs.Args())
		return 2
	}
	logger := promslog.New(&promslog.Config{Level: logLevel, Format: logFormat, Writer: stderr})
	setAutoMemLimit(logger)

	flags := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { flags[f.Name] = f.Value.String() })

	a, err := app.New(app.Options{
		ConfigFile:    *configFile,
		StoragePath:   *storagePath,
		ListenAddress: *listen,
		Flags:         flags,
	}, app.Deps{Logger: logger})
	if err != nil {
		logger.Error("Cannot start", "err", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
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
