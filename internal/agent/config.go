package agent

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery"
	_ "github.com/prometheus/prometheus/discovery/file"       // file_sd_configs
	_ "github.com/prometheus/prometheus/discovery/kubernetes" // kubernetes_sd_configs; static_configs is built in
	"github.com/prometheus/prometheus/model/relabel"
	"go.yaml.in/yaml/v2"
)

// Config is a promtail.yaml: the keys Promtail documents that the agent
// implements. Unknown keys are errors naming the key and its line.
type Config struct {
	Server        ServerConfig    `yaml:"server"`
	Positions     PositionsConfig `yaml:"positions"`
	Clients       []ClientConfig  `yaml:"clients"`
	Limits        LimitsConfig    `yaml:"limits_config"`
	ScrapeConfigs []ScrapeConfig  `yaml:"scrape_configs"`
	TargetConfig  TargetConfig    `yaml:"target_config"`
	// Client is Promtail's older single-client key.
	Client *ClientConfig `yaml:"client,omitempty"`
}

// ServerConfig is Promtail's server block. gRPC keys are accepted and
// ignored (the agent serves HTTP only); Warnings says so once.
type ServerConfig struct {
	HTTPListenAddress string `yaml:"http_listen_address"`
	HTTPListenPort    int    `yaml:"http_listen_port"`
	GRPCListenAddress string `yaml:"grpc_listen_address"`
	GRPCListenPort    int    `yaml:"grpc_listen_port"`
	LogLevel          string `yaml:"log_level"`
	LogFormat         string `yaml:"log_format"`
	Disable           bool   `yaml:"disable"`
	// RegisterInstrumentation is accepted; /metrics is always served.
	RegisterInstrumentation *bool          `yaml:"register_instrumentation"`
	GracefulShutdownTimeout model.Duration `yaml:"graceful_shutdown_timeout"`
	ProfilingEnabled        bool           `yaml:"profiling_enabled"`
	// HTTPTLSConfig serves the agent's HTTP over TLS (Promtail's
	// server.http_tls_config).
	HTTPTLSConfig *HTTPTLSConfig `yaml:"http_tls_config,omitempty"`
	// EnableRuntimeReload serves POST /reload (Promtail's
	// server.enable_runtime_reload).
	EnableRuntimeReload bool `yaml:"enable_runtime_reload"`
}

// HTTPTLSConfig is Promtail's server.http_tls_config: the agent's own
// certificate and, optionally, client certificates it requires.
type HTTPTLSConfig struct {
	CertFile       string `yaml:"cert_file"`
	KeyFile        string `yaml:"key_file"`
	ClientAuthType string `yaml:"client_auth_type"`
	ClientCAFile   string `yaml:"client_ca_file"`
}

var clientAuthTypes = map[string]bool{
	"": true, "NoClientCert": true, "RequestClientCert": true, "RequireAnyClientCert": true,
	"VerifyClientCertIfGiven": true, "RequireAndVerifyClientCert": true,
}

func (t *HTTPTLSConfig) validate() []error {
	var errs []error
	if t.CertFile == "" || t.KeyFile == "" {
		errs = append(errs, errors.New("server.http_tls_config: cert_file and key_file are both required"))
	}
	if !clientAuthTypes[t.ClientAuthType] {
		errs = append(errs, fmt.Errorf("server.http_tls_config.client_auth_type: %q is not one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert", t.ClientAuthType))
	}
	if (t.ClientAuthType == "VerifyClientCertIfGiven" || t.ClientAuthType == "RequireAndVerifyClientCert") && t.ClientCAFile == "" {
		errs = append(errs, fmt.Errorf("server.http_tls_config: client_auth_type %s needs client_ca_file", t.ClientAuthType))
	}
	return errs
}

// PositionsConfig is Promtail's positions block.
type PositionsConfig struct {
	Filename          string         `yaml:"filename"`
	SyncPeriod        model.Duration `yaml:"sync_period"`
	IgnoreInvalidYAML bool           `yaml:"ignore_invalid_yaml"`
}

// BackoffConfig is a client's retry policy.
type BackoffConfig struct {
	MinPeriod  model.Duration `yaml:"min_period"`
	MaxPeriod  model.Duration `yaml:"max_period"`
	MaxRetries int            `yaml:"max_retries"`
}

// ClientConfig is one entry of clients: a Loki push endpoint.
type ClientConfig struct {
	URL                    string                     `yaml:"url"`
	BatchWait              model.Duration             `yaml:"batchwait"`
	BatchSize              int                        `yaml:"batchsize"`
	Backoff                BackoffConfig              `yaml:"backoff_config"`
	Timeout                model.Duration             `yaml:"timeout"`
	TenantID               string                     `yaml:"tenant_id"`
	ExternalLabels         model.LabelSet             `yaml:"external_labels"`
	DropRateLimitedBatches bool                       `yaml:"drop_rate_limited_batches"`
	HTTPClientConfig       commoncfg.HTTPClientConfig `yaml:",inline"`
	// Headers are extra request headers (Promtail's headers key).
	Headers map[string]string `yaml:"headers"`
}

// LimitsConfig is Promtail's limits_config.
type LimitsConfig struct {
	ReadlineRateEnabled bool    `yaml:"readline_rate_enabled"`
	ReadlineRate        float64 `yaml:"readline_rate"`
	ReadlineBurst       int     `yaml:"readline_burst"`
	ReadlineRateDrop    bool    `yaml:"readline_rate_drop"`
	MaxStreams          int     `yaml:"max_streams"`
	MaxLineSize         int     `yaml:"max_line_size"`
	MaxLineSizeTruncate bool    `yaml:"max_line_size_truncate"`
}

// TargetConfig is Promtail's target_config.
type TargetConfig struct {
	SyncPeriod model.Duration `yaml:"sync_period"`
}

// ScrapeConfig is one job: discovery, relabelling and stages.
type ScrapeConfig struct {
	JobName                 string            `yaml:"job_name"`
	PipelineStages          []StageConfig     `yaml:"pipeline_stages,omitempty"`
	RelabelConfigs          []*relabel.Config `yaml:"relabel_configs,omitempty"`
	ServiceDiscoveryConfigs discovery.Configs `yaml:"-"`
	// LokiPushAPI makes the job a push target instead of tailing files.
	LokiPushAPI *PushTargetConfig `yaml:"loki_push_api,omitempty"`
	// Syslog makes the job a syslog receiver.
	Syslog *SyslogTargetConfig `yaml:"syslog,omitempty"`
}

// UnmarshalYAML inlines the *_sd_configs keys the way Prometheus does.
func (c *ScrapeConfig) UnmarshalYAML(unmarshal func(any) error) error {
	*c = ScrapeConfig{}
	if err := discovery.UnmarshalYAMLWithInlineConfigs(c, unmarshal); err != nil {
		return err
	}
	if c.JobName == "" {
		return errors.New("scrape_configs: job_name is empty")
	}
	for _, r := range c.RelabelConfigs {
		if r == nil {
			return fmt.Errorf("scrape_configs %q: empty relabel rule", c.JobName)
		}
	}
	return nil
}

// MarshalYAML writes the discovery configs back inline.
func (c ScrapeConfig) MarshalYAML() (any, error) {
	return discovery.MarshalYAMLWithInlineConfigs(c)
}

// Defaults, as Promtail documents them.
const (
	defaultHTTPPort     = 9080
	defaultSyncPeriod   = 10 * time.Second
	defaultBatchWait    = time.Second
	defaultBatchSize    = 1 << 20
	defaultMinBackoff   = 500 * time.Millisecond
	defaultMaxBackoff   = 5 * time.Minute
	defaultMaxRetries   = 10
	defaultTimeout      = 10 * time.Second
	defaultTargetSync   = 10 * time.Second
	defaultMaxLineBytes = 256 << 10
)

// DefaultConfig is what an empty promtail.yaml means.
func DefaultConfig() Config {
	return Config{
		Server:       ServerConfig{HTTPListenPort: defaultHTTPPort},
		Positions:    PositionsConfig{Filename: "/var/log/positions.yaml", SyncPeriod: model.Duration(defaultSyncPeriod)},
		TargetConfig: TargetConfig{SyncPeriod: model.Duration(defaultTargetSync)},
	}
}

func (c *ClientConfig) applyDefaults() {
	if c.BatchWait == 0 {
		c.BatchWait = model.Duration(defaultBatchWait)
	}
	if c.BatchSize == 0 {
		c.BatchSize = defaultBatchSize
	}
	if c.Backoff.MinPeriod == 0 {
		c.Backoff.MinPeriod = model.Duration(defaultMinBackoff)
	}
	if c.Backoff.MaxPeriod == 0 {
		c.Backoff.MaxPeriod = model.Duration(defaultMaxBackoff)
	}
	if c.Backoff.MaxRetries == 0 {
		c.Backoff.MaxRetries = defaultMaxRetries
	}
	if c.Timeout == 0 {
		c.Timeout = model.Duration(defaultTimeout)
	}
}

// Parse reads a promtail.yaml strictly. With expandEnv, ${VAR} and
// ${VAR:-default} are replaced first, as Promtail's -config.expand-env does.
func Parse(data []byte, expandEnv bool) (*Config, error) {
	if expandEnv {
		data = []byte(ExpandEnv(string(data)))
	}
	cfg := DefaultConfig()
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		if m := unsupportedSource.FindStringSubmatch(err.Error()); m != nil {
			return nil, fmt.Errorf("parse promtail config: %w (the agent reads files, loki_push_api and syslog; Promtail's %s source is not implemented: see docs/agent.md)", err, m[1])
		}
		return nil, fmt.Errorf("parse promtail config: %w", err)
	}
	if cfg.Client != nil {
		cfg.Clients = append(cfg.Clients, *cfg.Client)
		cfg.Client = nil
	}
	for i := range cfg.Clients {
		cfg.Clients[i].applyDefaults()
	}
	if cfg.Positions.SyncPeriod == 0 {
		cfg.Positions.SyncPeriod = model.Duration(defaultSyncPeriod)
	}
	if cfg.TargetConfig.SyncPeriod == 0 {
		cfg.TargetConfig.SyncPeriod = model.Duration(defaultTargetSync)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// LoadFile reads and parses a promtail.yaml file.
func LoadFile(path string, expandEnv bool) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load promtail config: %w", err)
	}
	cfg, err := Parse(data, expandEnv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Warnings lists accepted-but-ignored settings, each once.
func (c *Config) Warnings() []string {
	var w []string
	if c.Server.GRPCListenAddress != "" || c.Server.GRPCListenPort != 0 {
		w = append(w, "server.grpc_listen_address/grpc_listen_port are ignored: the agent serves HTTP only")
	}
	return w
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Clients) == 0 {
		errs = append(errs, errors.New("clients: at least one client is required"))
	}
	for i, cl := range c.Clients {
		u, err := url.Parse(cl.URL)
		if err != nil || u.Scheme == "" || u.Host == "" {
			errs = append(errs, fmt.Errorf("clients[%d].url: %q is not an absolute URL", i, cl.URL))
		}
		if cl.BatchSize < 0 {
			errs = append(errs, fmt.Errorf("clients[%d].batchsize: must not be negative", i))
		}
		if cl.Backoff.MinPeriod > cl.Backoff.MaxPeriod {
			errs = append(errs, fmt.Errorf("clients[%d].backoff_config: min_period above max_period", i))
		}
		if err := cl.HTTPClientConfig.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("clients[%d]: %w", i, err))
		}
		if err := cl.ExternalLabels.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("clients[%d].external_labels: %w", i, err))
		}
	}
	if c.Server.HTTPListenPort < 0 || c.Server.HTTPListenPort > 65535 {
		errs = append(errs, fmt.Errorf("server.http_listen_port: %d out of range", c.Server.HTTPListenPort))
	}
	if c.Server.HTTPTLSConfig != nil {
		errs = append(errs, c.Server.HTTPTLSConfig.validate()...)
	}
	if c.Limits.ReadlineRateEnabled && c.Limits.ReadlineRate <= 0 {
		errs = append(errs, errors.New("limits_config.readline_rate: must be positive when readline_rate_enabled"))
	}
	jobs := map[string]bool{}
	for _, sc := range c.ScrapeConfigs {
		if jobs[sc.JobName] {
			errs = append(errs, fmt.Errorf("scrape_configs: job_name %q appears twice", sc.JobName))
		}
		jobs[sc.JobName] = true
		for i, r := range sc.RelabelConfigs {
			if err := r.Validate(model.LegacyValidation); err != nil {
				errs = append(errs, fmt.Errorf("scrape_configs %q: relabel_configs[%d]: %w", sc.JobName, i, err))
			}
		}
		sources := 0
		if len(sc.ServiceDiscoveryConfigs) > 0 {
			sources++
		}
		if sc.LokiPushAPI != nil {
			sources++
		}
		if sc.Syslog != nil {
			sources++
			for _, err := range sc.Syslog.validate() {
				errs = append(errs, fmt.Errorf("scrape_configs %q: %w", sc.JobName, err))
			}
		}
		if sources > 1 {
			errs = append(errs, fmt.Errorf("scrape_configs %q: one job has one source (files by discovery, loki_push_api or syslog): use one job each", sc.JobName))
		}
		if sc.LokiPushAPI != nil {
			if tc := sc.LokiPushAPI.Server.HTTPTLSConfig; tc != nil {
				for _, err := range tc.validate() {
					errs = append(errs, fmt.Errorf("scrape_configs %q: loki_push_api.%w", sc.JobName, err))
				}
			}
			if err := sc.LokiPushAPI.Labels.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("scrape_configs %q: loki_push_api.labels: %w", sc.JobName, err))
			}
		}
		if _, err := NewPipeline(sc.PipelineStages, nil); err != nil {
			errs = append(errs, fmt.Errorf("scrape_configs %q: pipeline_stages: %w", sc.JobName, err))
		}
	}
	return errors.Join(errs...)
}

// unsupportedSource matches the strict decoder's error for a Promtail
// scrape source the agent does not have.
var unsupportedSource = regexp.MustCompile(`field (journal|gelf|windows_events|kafka|cloudflare|heroku_drain|gcplog|azure_event_hubs|docker_sd_configs) not found in type agent\.ScrapeConfig`)

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\$`)

// ExpandEnv replaces ${VAR} and ${VAR:-default}; $$ is a literal $.
func ExpandEnv(s string) string {
	return envRef.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		sub := envRef.FindStringSubmatch(m)
		if v, ok := os.LookupEnv(sub[1]); ok && v != "" {
			return v
		}
		if strings.Contains(m, ":-") {
			return sub[2]
		}
		return ""
	})
}
