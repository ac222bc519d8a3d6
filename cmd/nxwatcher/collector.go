package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/collector/featuregate"

	"github.com/nx-watcher/nxwatcher/internal/collector"
	"github.com/nx-watcher/nxwatcher/internal/procmem"
	"github.com/nx-watcher/nxwatcher/internal/version"
)

const collectorUsage = `usage: nxwatcher collector [validate] [--config=FILE]... [--set=KEY=VALUE]...

Runs an OpenTelemetry Collector (built from the Collector's own packages) with
an otel-collector.yaml as it is. Flags are spelled as otelcol spells them.
With no --config it runs the built-in gateway config: OTLP on 0.0.0.0:4317 and
0.0.0.0:4318, memory_limiter and batch, exported to localhost:4317.

commands:
  validate   load and validate the config without running it (as otelcol validate)

flags:
`

type stringsFlag []string

func (s *stringsFlag) String() string     { return "[" + strings.Join(*s, ", ") + "]" }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// collectorCmd is `nxwatcher collector`: it runs until SIGTERM or SIGINT.
func collectorCmd(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// memory_limiter bounds the Go heap, not RSS: under overload with the
	// design doc's limit_mib 400, RSS peaked at 612 MiB (bench/README.md,
	// collector). GOMEMLIMIT from the container limit makes the GC hold it.
	setAutoMemLimit(slog.New(slog.NewTextHandler(stderr, nil)).With("component", "collector"))
	return runCollector(ctx, args, stdout, stderr)
}

// runCollector parses the command line and runs or validates until ctx ends.
func runCollector(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("collector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var configs, sets stringsFlag
	fs.Var(&configs, "config", "location of a config file (a path, or file:/env:/yaml: URI); repeat to merge several")
	fs.Var(&sets, "set", "set a config property, e.g. --set=processors.batch.timeout=2s; overrides --config")
	featuregate.GlobalRegistry().RegisterFlags(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), collectorUsage)
		fs.PrintDefaults()
	}
	parse := func(args []string) bool {
		if err := fs.Parse(args); err != nil {
			return false
		}
		return true
	}
	if !parse(args) {
		return helpOrUsage(fs, args, stdout)
	}
	validate := false
	if fs.NArg() > 0 && fs.Arg(0) == "validate" {
		validate = true
		if !parse(fs.Args()[1:]) {
			return helpOrUsage(fs, args, stdout)
		}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "collector: unexpected arguments %q\n\n", fs.Args())
		fs.Usage()
		return 2
	}
	opts := collector.Options{Configs: configs, Sets: sets, Stderr: stderr, Version: version.Get().Version}
	if validate {
		if err := collector.Validate(ctx, opts); err != nil {
			fmt.Fprintf(stderr, "Error: %v\n", err)
			return 1
		}
		return 0
	}
	settle := time.AfterFunc(procmem.StartupSettle, func() { procmem.ReleaseStartupPages(slog.New(slog.DiscardHandler)) })
	defer settle.Stop()
	if err := collector.Run(ctx, opts); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	return 0
}

func helpOrUsage(fs *flag.FlagSet, args []string, stdout io.Writer) int {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(stdout)
			fs.Usage()
			return 0
		}
	}
	return 2
}
