// Package config is the schema of the one YAML file that `nxwatcher serve`
// reads: strict decoding (unknown keys name their line), defaults, Validate,
// and the native sections parsed by their upstream parsers.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	promconfig "github.com/prometheus/prometheus/config"
	"go.yaml.in/yaml/v3"

	"github.com/nx-watcher/nxwatcher/internal/alerting"
	logsforward "github.com/nx-watcher/nxwatcher/internal/logs/forward"
	"github.com/nx-watcher/nxwatcher/internal/logs/lokiapi"
	"github.com/nx-watcher/nxwatcher/internal/metrics"
	"github.com/nx-watcher/nxwatcher/internal/otlp"
	"github.com/nx-watcher/nxwatcher/internal/ruler"
	"github.com/nx-watcher/nxwatcher/internal/traces/forward"
	"github.com/nx-watcher/nxwatcher/internal/traces/generator"
	"github.com/nx-watcher/nxwatcher/internal/traces/tempoapi"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore"
	"github.com/nx-watcher/nxwatcher/internal/ui"
)

// Config is the whole serve config. Each section belongs to the package that
// runs it; this package only puts them together.
type Config struct {
	Metrics  metrics.Config  `yaml:"metrics"`
	Rules    ruler.Config    `yaml:"rules"`
	Alerting alerting.Config `yaml:"alerting"`
	Logs     Logs            `yaml:"logs"`
	Traces   Traces          `yaml:"traces"`
	OTLP     OTLP            `yaml:"otlp"`
	UI       ui.Config       `yaml:"ui"`

	// File is where the config was read from ("" for the embedded default).
	File string `yaml:"-"`
}

// Logs is the log store and the Loki API, plus where accepted lines are
// forwarded (scale-out).
type Logs struct {
	lokiapi.Config `yaml:",inline"`
	// Forward pushes every accepted line on to Loki-compatible endpoints.
	Forward []logsforward.EndpointConfig `yaml:"forward"`
	// Mode forward-only keeps no local log store: lines go only to Forward.
	Mode logsforward.Mode `yaml:"mode"`
}

// UnmarshalYAML decodes the Loki API's keys with their defaults (as
// lokiapi.Config does on its own) next to forward, in one strict pass: the
// embedded Config's own UnmarshalYAML would otherwise be promoted and
// refuse forward.
func (l *Logs) UnmarshalYAML(unmarshal func(any) error) error {
	type plainLoki lokiapi.Config // no methods: decoded field by field
	aux := struct {
		Loki    plainLoki                    `yaml:",inline"`
		Forward []logsforward.EndpointConfig `yaml:"forward"`
		Mode    logsforward.Mode             `yaml:"mode"`
	}{Loki: plainLoki(lokiapi.DefaultConfig()), Mode: logsforward.ModeStore}
	if err := unmarshal(&aux); err != nil {
		return err
	}
	l.Config, l.Forward, l.Mode = lokiapi.Config(aux.Loki), aux.Forward, aux.Mode
	return nil
}

// Traces is the `traces:` section: the trace store, its search API and the
// metrics-generator.
type Traces struct {
	// Enabled runs the trace store, Tempo API and generator (the staging
	// profile turns them off, as the design doc has no Tempo there).
	Enabled bool `yaml:"enabled"`
	// MultitenancyEnabled requires X-Scope-OrgID on OTLP trace pushes and
	// the Tempo API and keeps each tenant's traces apart (Tempo's key).
	MultitenancyEnabled bool `yaml:"multitenancy_enabled"`
	tracestore.Config   `yaml:",inline"`
	Search              tempoapi.Config  `yaml:"search"`
	Generator           generator.Config `yaml:"generator"`
	// Forward exports every accepted span on over OTLP (scale-out).
	Forward []forward.EndpointConfig `yaml:"forward"`
	// Mode forward-only keeps no local trace store: spans go only to Forward.
	Mode forward.Mode `yaml:"mode"`
}

// OTLP is the `otlp:` section: the OTLP/gRPC and OTLP/HTTP receivers.
type OTLP struct {
	// Enabled opens the OTLP listeners.
	Enabled     bool `yaml:"enabled"`
	otlp.Config `yaml:",inline"`
}

// DefaultConfig is what every key defaults to when left out.
func DefaultConfig() Config {
	return Config{
		Metrics:  metrics.DefaultConfig(),
		Rules:    ruler.DefaultConfig(),
		Alerting: alerting.DefaultConfig(),
		Logs:     Logs{Config: lokiapi.DefaultConfig(), Mode: logsforward.ModeStore},
		Traces: Traces{
			Enabled:   true,
			Config:    tracestore.DefaultConfig(),
			Search:    tempoapi.DefaultConfig(),
			Generator: generator.DefaultConfig(),
			Mode:      forward.ModeStore,
		},
		OTLP: OTLP{Enabled: true, Config: otlp.DefaultConfig()},
		UI:   ui.DefaultConfig(),
	}
}

//go:embed default.yml
var embeddedDefault string

// SelfTargetPlaceholder in default.yml is replaced by the address the server
// listens on, so the default config scrapes our own /metrics.
const SelfTargetPlaceholder = "NXWATCHER_SELF_TARGET"

// Default is the embedded config used when no file is given.
func Default(selfTarget string, logger *slog.Logger) (*Config, error) {
	text := strings.ReplaceAll(embeddedDefault, SelfTargetPlaceholder, selfTarget)
	cfg, err := Parse([]byte(text), ".", logger)
	if err != nil {
		return nil, fmt.Errorf("embedded default config: %w", err)
	}
	return cfg, nil
}

// LoadFile reads, validates and resolves a serve config file.
func LoadFile(path string, logger *slog.Logger) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(b, filepath.Dir(path), logger)
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	cfg.File = path
	return cfg, nil
}

// Parse decodes a serve config strictly, validates it and resolves its
// native sections; relative paths resolve against baseDir.
func Parse(data []byte, baseDir string, logger *slog.Logger) (*Config, error) {
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse yaml: %w", err)
	}
	cfg.resolvePaths(baseDir)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Metrics.Resolve(baseDir, logger); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// resolvePaths makes file paths of native sections relative to the file
// they were written in.
func (c *Config) resolvePaths(baseDir string) {
	c.Alerting.BaseDir = baseDir
	c.UI.ResolvePaths(baseDir)
	if p := c.Alerting.AlertmanagerConfigFile; p != "" && !filepath.IsAbs(p) {
		c.Alerting.AlertmanagerConfigFile = filepath.Join(baseDir, p)
	}
}

// Validate reports every problem of every section at once.
func (c *Config) Validate() error {
	errs := []error{
		c.Metrics.Validate(),
		prefixed("rules", c.Rules.Validate()),
		c.Alerting.Validate(),
		prefixed("logs", c.Logs.Validate()),
		prefixed("ui", c.UI.Validate()),
	}
	if c.Traces.Enabled {
		errs = append(errs,
			prefixed("traces", c.Traces.Config.Validate()),
			prefixed("traces.search", c.Traces.Search.Validate()),
			prefixed("traces.generator", c.Traces.Generator.Validate()))
		errs = append(errs, forward.ValidateEndpoints(c.Traces.Forward), forward.ValidateMode(c.Traces.Mode, c.Traces.Forward))
	} else if c.Traces.Mode.ForwardOnly() {
		errs = append(errs, errors.New("traces.mode: forward-only needs traces.enabled (the OTLP receiver forwards spans only when traces are on)"))
	}
	errs = append(errs, logsforward.ValidateEndpoints(c.Logs.Forward), logsforward.ValidateMode(c.Logs.Mode, c.Logs.Forward))
	if c.OTLP.Enabled {
		errs = append(errs, prefixed("otlp", c.OTLP.Config.Validate()))
	}
	return errors.Join(errs...)
}

// prefixed names the section of an error unless the section already did.
func prefixed(section string, err error) error {
	if err == nil || strings.HasPrefix(err.Error(), section) {
		return err
	}
	return fmt.Errorf("%s: %w", section, err)
}

// String prints the config back as YAML, native sections included.
func (c *Config) String() string {
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Sprintf("<config: %v>", err)
	}
	return string(b)
}

// Kinds of file that CheckFile recognises.
const (
	KindServe        = "nxwatcher serve config"
	KindPrometheus   = "prometheus config"
	KindAlertmanager = "alertmanager config"
)

// CheckFile is Check without the warnings.
func CheckFile(path string, logger *slog.Logger) (kind string, err error) {
	kind, _, err = Check(path, logger)
	return kind, err
}

// Check checks a file as serve would load it: a serve config (every
// section, the Alertmanager body's templates and credential files, and the
// rule files its prometheus section names), or a bare prometheus.yml (with
// its rule files), or a bare alertmanager.yml. Relative paths resolve
// against the file's directory. Warnings (a rule_files pattern that
// matches nothing) do not fail the check.
func Check(path string, logger *slog.Logger) (kind string, warnings []string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	var top map[string]yaml.Node
	if err := yaml.Unmarshal(b, &top); err != nil {
		return "", nil, fmt.Errorf("parse yaml: %w", err)
	}
	switch {
	case alerting.IsAlertmanagerYAML(b):
		return KindAlertmanager, nil, alerting.CheckAlertmanagerFile(path)
	case isServeConfig(top):
		cfg, err := LoadFile(path, logger)
		if err != nil {
			return KindServe, nil, err
		}
		warnings, err = ruler.CheckConfig(cfg.Metrics.Parsed)
		return KindServe, warnings, err
	default:
		pc, err := promconfig.LoadFile(path, false, logger)
		if err != nil {
			return KindPrometheus, nil, err
		}
		warnings, err = ruler.CheckConfig(pc)
		return KindPrometheus, warnings, err
	}
}

func isServeConfig(top map[string]yaml.Node) bool {
	// alerting: and otlp: exist in both formats; these keys only in prometheus.yml.
	for _, key := range []string{"global", "scrape_configs", "scrape_config_files", "rule_files", "remote_write", "remote_read", "storage", "runtime", "tracing"} {
		if _, ok := top[key]; ok {
			return false
		}
	}
	return true
}
