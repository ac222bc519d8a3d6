package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/nx-watcher/nxwatcher/internal/agent"
	"github.com/nx-watcher/nxwatcher/internal/procmem"
	"github.com/nx-watcher/nxwatcher/internal/version"
)

const agentUsage = `usage: nxwatcher agent -config.file=promtail.yaml [flags]

Ships log files to Loki like Promtail, reading a promtail.yaml as it is.
Flags are spelled as Promtail spells them (one or two dashes).

flags:
`

// agentCmd is `nxwatcher agent`: it runs until SIGTERM or SIGINT; SIGHUP
// reloads the config file.
func agentCmd(args []string, stdout, stderr io.Writer) int {
	ctx, reloads, stop := handleSignals(nil)
	defer stop()
	return runAgent(ctx, args, stdout, stderr, nil, reloads)
}

// runAgent parses flags and runs the agent until ctx ends; each receive on
// reload re-reads the config file. listening, when not nil, receives the
// HTTP listener's address once it is up (tests).
func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer, listening chan<- string, reload <-chan struct{}) int {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config.file", "", "promtail.yaml to read (required)")
	expandEnv := fs.Bool("config.expand-env", false, "replace ${VAR} and ${VAR:-default} in the config file with environment variables")
	checkSyntax := fs.Bool("check-syntax", false, "validate the config file and exit")
	printConfig := fs.Bool("print-config-stderr", false, "print the parsed config to stderr at start")
	dryRun := fs.Bool("dry-run", false, "print entries (time, labels, line) to stdout instead of pushing them; positions are not saved")
	httpPort := fs.Int("server.http-listen-port", -1, "override server.http_listen_port (0 picks a free port)")
	httpAddr := fs.String("server.http-listen-address", "", "override server.http_listen_address")
	webConfig := fs.String("web.config.file", "", "exporter-toolkit web config (TLS, client certificates, basic auth) for the agent's HTTP listener, re-read on every connection; not together with server.http_tls_config")
	enableReload := fs.Bool("server.enable-runtime-reload", false, "serve POST /reload, which re-reads the config file like SIGHUP (also server.enable_runtime_reload)")
	logLevel := levelFlag{promslog.NewLevel()}
	fs.Var(logLevel, "log.level", "log level: debug, info, warn, error")
	logFormat := formatFlag{promslog.NewFormat()}
	fs.Var(logFormat, "log.format", "log format: logfmt or json")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), agentUsage)
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
		fmt.Fprintf(stderr, "agent: unexpected arguments %q\n\n", fs.Args())
		fs.Usage()
		return 2
	}
	if *configFile == "" {
		fmt.Fprint(stderr, "agent: -config.file is required\n\n")
		fs.Usage()
		return 2
	}
	cfg, err := agent.LoadFile(*configFile, *expandEnv)
	if err != nil {
		fmt.Fprintf(stderr, "agent: %v\n", err)
		return 1
	}
	if *checkSyntax {
		fmt.Fprintf(stdout, "Valid config file! No syntax issues found\n")
		return 0
	}
	if *httpPort >= 0 {
		cfg.Server.HTTPListenPort = *httpPort
	}
	if *httpAddr != "" {
		cfg.Server.HTTPListenAddress = *httpAddr
	}
	if cfg.Server.LogLevel != "" && !flagSet(fs, "log.level") {
		if err := logLevel.Set(cfg.Server.LogLevel); err != nil {
			fmt.Fprintf(stderr, "agent: server.log_level: %v\n", err)
			return 1
		}
	}
	if *webConfig != "" && cfg.Server.HTTPTLSConfig != nil {
		fmt.Fprintf(stderr, "agent: --web.config.file and server.http_tls_config both set: use one\n")
		return 1
	}
	if *webConfig != "" {
		if err := web.Validate(*webConfig); err != nil {
			fmt.Fprintf(stderr, "agent: web config %s: %v\n", *webConfig, err)
			return 1
		}
	}
	var tlsConfig *tls.Config
	if t := cfg.Server.HTTPTLSConfig; t != nil {
		tc, err := web.ConfigToTLSConfig(&web.TLSConfig{TLSCertPath: t.CertFile, TLSKeyPath: t.KeyFile, ClientAuth: t.ClientAuthType, ClientCAs: t.ClientCAFile})
		if err != nil {
			fmt.Fprintf(stderr, "agent: server.http_tls_config: %v\n", err)
			return 1
		}
		tlsConfig = tc
	}
	logger := promslog.New(&promslog.Config{Level: logLevel.Level, Format: logFormat.Format, Writer: stderr})
	setAutoMemLimit(logger)
	if *printConfig {
		fmt.Fprintf(stderr, "%+v\n", *cfg)
	}

	nodeName := os.Getenv("NODE_NAME")
	if nodeName == "" {
		nodeName = os.Getenv("HOSTNAME")
	}
	info := version.Get()
	logger.Info("Starting nxwatcher agent", "version", info.Version, "revision", info.Revision, "config", *configFile, "node", nodeName)

	// build makes an agent with its own registry, so a reload starts from
	// clean metrics instead of registering twice.
	build := func(cfg *agent.Config) (*agent.Agent, http.Handler, error) {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		opts := agent.Options{NodeName: nodeName}
		if *dryRun {
			opts.DryRun = stdout
		}
		a, err := agent.New(cfg, opts, agent.Deps{Logger: logger, Registerer: reg, Gatherer: reg})
		if err != nil {
			return nil, nil, err
		}
		return a, a.Handler(), nil
	}
	a, h, err := build(cfg)
	if err != nil {
		logger.Error("Cannot start", "err", err)
		return 1
	}
	var current atomic.Pointer[http.Handler]
	current.Store(&h)
	addr := net.JoinHostPort(cfg.Server.HTTPListenAddress, strconv.Itoa(cfg.Server.HTTPListenPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		a.Close()
		logger.Error("Cannot listen", "addr", addr, "err", err)
		return 1
	}
	// POST /reload (Promtail's runtime reload) asks the run loop below to
	// reload and answers with the outcome.
	reloadReqs := make(chan chan error)
	loopDone := make(chan struct{}) // closed when the run loop has ended
	mux := http.NewServeMux()
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*current.Load()).ServeHTTP(w, r) }))
	if *enableReload || cfg.Server.EnableRuntimeReload {
		mux.HandleFunc("/reload", func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", http.MethodPost)
				http.Error(w, "use POST", http.StatusMethodNotAllowed)
				return
			}
			res := make(chan error, 1)
			select {
			case reloadReqs <- res:
			case <-r.Context().Done():
				return
			case <-loopDone:
				http.Error(w, "shutting down", http.StatusServiceUnavailable)
				return
			}
			select {
			case err := <-res:
				if err != nil {
					http.Error(w, "reload failed: "+err.Error(), http.StatusInternalServerError)
					return
				}
				fmt.Fprintln(w, "config reloaded")
			case <-r.Context().Done():
			}
		})
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	srvDone := make(chan error, 1)
	switch {
	case *webConfig != "":
		go func() { srvDone <- web.Serve(ln, srv, &web.FlagConfig{WebConfigFile: webConfig}, logger) }()
	case tlsConfig != nil:
		srv.TLSConfig = tlsConfig
		go func() { srvDone <- srv.ServeTLS(ln, "", "") }()
	default:
		go func() { srvDone <- srv.Serve(ln) }()
	}
	logger.Info("Listening", "addr", ln.Addr().String())
	settle := time.AfterFunc(procmem.StartupSettle, func() { procmem.ReleaseStartupPages(logger) })
	defer settle.Stop()
	if listening != nil {
		listening <- ln.Addr().String()
	}

	// Reload = stop the running agent (it pushes what it read and saves
	// positions), then start one on the new config, which resumes from
	// those positions. A config that does not load keeps the old agent.
	var runErr error
run:
	for {
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- a.Run(runCtx) }()
		var next *agent.Agent
		var nextH http.Handler
		// tryReload loads the file and, when it loads, replaces the
		// running agent (setting next). reloadErr says why a reload did
		// not take; the result is an error only when no agent can run.
		var reloadErr error
		tryReload := func() error {
			ncfg, err := agent.LoadFile(*configFile, *expandEnv)
			if err != nil {
				logger.Error("Reload failed; the running config stays", "err", err)
				reloadErr = err
				return nil
			}
			ncfg.Server = cfg.Server // the listener stays as it is
			stop()
			if err := <-done; err != nil {
				logger.Error("Agent stopped with an error", "err", err)
			}
			if next, nextH, err = build(ncfg); err != nil {
				logger.Error("Reload failed; starting the previous config again", "err", err)
				reloadErr = err
				if next, nextH, err = build(cfg); err != nil {
					return err
				}
				return nil
			}
			reloadErr = nil
			cfg = ncfg
			logger.Info("Reloaded", "config", *configFile)
			return nil
		}
		for next == nil {
			select {
			case <-ctx.Done():
				stop()
				runErr = <-done
				break run
			case runErr = <-done:
				stop()
				break run
			case <-reload:
				if fatal := tryReload(); fatal != nil {
					runErr = fatal
					break run
				}
			case res := <-reloadReqs:
				fatal := tryReload()
				res <- reloadErr
				if fatal != nil {
					runErr = fatal
					break run
				}
			}
		}
		a = next
		current.Store(&nextH)
	}
	close(loopDone)
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	if err := <-srvDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Error("HTTP server", "err", err)
	}
	if runErr != nil {
		logger.Error("Agent stopped with an error", "err", runErr)
		return 1
	}
	logger.Info("Stopped cleanly")
	return 0
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// checkAgentConfig validates promtail.yaml files, for `nxwatcher check
// agent-config FILE...`.
func checkAgentConfig(files []string, stdout, stderr io.Writer) int {
	failed := false
	for _, f := range files {
		cfg, err := agent.LoadFile(f, false)
		if err != nil {
			fmt.Fprintf(stderr, "FAILED: %v\n", err)
			failed = true
			continue
		}
		for _, w := range cfg.Warnings() {
			fmt.Fprintf(stderr, "  WARNING: %s: %s\n", f, w)
		}
		fmt.Fprintf(stdout, "SUCCESS: %s is a valid promtail config\n", f)
	}
	if failed {
		return 1
	}
	return 0
}
