package metrics

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"

	"github.com/nx-watcher/nxwatcher/internal/config/native"
	"github.com/nx-watcher/nxwatcher/internal/units"
)

// Config is the `metrics:` section of the serve config.
type Config struct {
	// Retention bounds how long samples are kept; retention_time in the
	// prometheus section, when set, wins, as it would in Prometheus.
	Retention     model.Duration `yaml:"retention"`
	RetentionSize units.Bytes    `yaml:"retention_size"`

	// Prometheus is the body of a prometheus.yml; PrometheusConfigFile names
	// one instead. Both are parsed by Prometheus's own config package.
	Prometheus           native.Section `yaml:"prometheus"`
	PrometheusConfigFile string         `yaml:"prometheus_config_file"`

	Query QueryConfig `yaml:"query"`

	// RemoteWriteReceiver and OTLPReceiver switch /api/v1/write and
	// /api/v1/otlp/v1/metrics; both are on by default.
	RemoteWriteReceiver bool `yaml:"remote_write_receiver"`
	OTLPReceiver        bool `yaml:"otlp_receiver"`

	// Mode is "server" (a TSDB with queries, rules and alerting) or "agent"
	// (a WAL that only feeds remote_write, as `prometheus --agent`). It
	// takes effect at start-up.
	Mode string `yaml:"mode"`
	// RemoteFlushDeadline is how long remote_write may keep flushing its
	// queues on shutdown or when a reload changes them (Prometheus's
	// --storage.remote.flush-deadline). It takes effect at start-up.
	RemoteFlushDeadline model.Duration `yaml:"remote_flush_deadline"`
	// HeadStripeSize is the number of lock stripes (and pairs of hash maps)
	// of the TSDB head's series table (the agent WAL's in agent mode), a power of two; 0 means the default,
	// 4,096. Prometheus hard-codes 16,384, sized for millions of series: it
	// costs ~4 MiB of heap whatever the head holds. Raise it only for
	// millions of active series appended from many cores. It takes effect
	// at start-up. ADR 0085.
	HeadStripeSize int `yaml:"head_stripe_size"`

	// Parsed is the resolved Prometheus config; set by Resolve, never by YAML.
	Parsed *promconfig.Config `yaml:"-"`
}

// QueryConfig holds PromQL engine limits. They take effect at start-up.
type QueryConfig struct {
	Timeout       model.Duration `yaml:"timeout"`
	MaxSamples    int            `yaml:"max_samples"`
	LookbackDelta model.Duration `yaml:"lookback_delta"`
	// MaxSubquerySteps refuses, before evaluation, a query with a subquery
	// of more steps (its range over its step); Prometheus's engine spends
	// 16 bytes a step on statistics whatever the data. 0 turns it off.
	MaxSubquerySteps int64 `yaml:"max_subquery_steps"`
	// MaxConcurrency is how many PromQL queries run at once, API and rules
	// together (Prometheus's --query.max-concurrency); the rest wait.
	MaxConcurrency int `yaml:"max_concurrency"`
}

// DefaultConfig matches the design doc (30d) and Prometheus's query defaults.
func DefaultConfig() Config {
	return Config{
		Retention: model.Duration(30 * 24 * time.Hour),
		Query: QueryConfig{
			Timeout:       model.Duration(2 * time.Minute),
			MaxSamples:    50_000_000,
			LookbackDelta: model.Duration(5 * time.Minute),
			// 1M steps: a year at 1m, a day at 100ms; 16 MB of statistics.
			MaxSubquerySteps: 1_000_000,
			MaxConcurrency:   20,
		},
		RemoteWriteReceiver: true,
		OTLPReceiver:        true,
		Mode:                ModeServer,
		RemoteFlushDeadline: model.Duration(time.Minute),
		HeadStripeSize:      DefaultHeadStripeSize,
	}
}

// DefaultHeadStripeSize is metrics.head_stripe_size's default (ADR 0085).
const DefaultHeadStripeSize = 4096

// The metrics modes.
const (
	ModeServer = "server"
	ModeAgent  = "agent"
)

// Validate reports every problem of the section at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Retention <= 0 && c.RetentionSize <= 0 {
		errs = append(errs, errors.New("metrics: retention or retention_size must be positive"))
	}
	if c.Retention < 0 {
		errs = append(errs, errors.New("metrics.retention: must not be negative"))
	}
	if c.RetentionSize < 0 {
		errs = append(errs, errors.New("metrics.retention_size: must not be negative"))
	}
	if !c.Prometheus.IsZero() && c.PrometheusConfigFile != "" {
		errs = append(errs, errors.New("metrics: set either prometheus or prometheus_config_file, not both"))
	}
	switch c.Mode {
	case ModeServer, ModeAgent, "":
	default:
		errs = append(errs, fmt.Errorf("metrics.mode: %q is neither %q nor %q", c.Mode, ModeServer, ModeAgent))
	}
	if c.RemoteFlushDeadline < 0 {
		errs = append(errs, errors.New("metrics.remote_flush_deadline: must not be negative"))
	}
	if n := c.HeadStripeSize; n < 0 || n&(n-1) != 0 || n > 1<<20 {
		errs = append(errs, fmt.Errorf("metrics.head_stripe_size: %d is not a power of two up to %d (0 means %d)", n, 1<<20, DefaultHeadStripeSize))
	}
	if c.Query.Timeout <= 0 {
		errs = append(errs, errors.New("metrics.query.timeout: must be positive"))
	}
	if c.Query.MaxConcurrency <= 0 {
		errs = append(errs, errors.New("metrics.query.max_concurrency: must be positive"))
	}
	if c.Query.MaxSubquerySteps < 0 {
		errs = append(errs, errors.New("metrics.query.max_subquery_steps: must not be negative (0 turns the limit off)"))
	}
	if c.Query.MaxSamples <= 0 {
		errs = append(errs, errors.New("metrics.query.max_samples: must be positive"))
	}
	if c.Query.LookbackDelta <= 0 {
		errs = append(errs, errors.New("metrics.query.lookback_delta: must be positive"))
	}
	return errors.Join(errs...)
}

// Resolve parses the Prometheus config with Prometheus's parser. Relative
// paths in it (rule_files, file_sd files, credentials) resolve against the
// directory of the file they were written in.
func (c *Config) Resolve(baseDir string, logger *slog.Logger) error {
	switch {
	case c.PrometheusConfigFile != "":
		path := c.PrometheusConfigFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(baseDir, path)
		}
		pc, err := promconfig.LoadFile(path, false, logger)
		if err != nil {
			return fmt.Errorf("metrics.prometheus_config_file: %w", err)
		}
		c.Parsed = pc
	case !c.Prometheus.IsZero():
		pc, err := promconfig.Load(c.Prometheus.Text, logger)
		if err != nil {
			return c.Prometheus.Explain("metrics.prometheus", err)
		}
		pc.SetDirectory(baseDir)
		c.Parsed = pc
	default:
		pc, err := promconfig.Load("", logger)
		if err != nil {
			return fmt.Errorf("metrics.prometheus: default: %w", err)
		}
		c.Parsed = pc
	}
	if err := checkSupported(c.Parsed, c.Mode); err != nil {
		return fmt.Errorf("metrics.prometheus: %w", err)
	}
	return nil
}
