package metrics

import (
	"errors"
	"fmt"
	"net/url"
	"reflect"

	"github.com/prometheus/common/promslog"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/storage/remote"
)

// prometheusKeys says, for every key of a prometheus.yml that Prometheus's
// parser accepts, what puts it in force here. A key whose whole subtree one
// upstream component consumes (a scrape config, a remote_write entry) is
// listed once. "unsupported: …" keys are refused by Resolve when set to
// anything but their default. TestEveryPrometheusKeyHasAnEffect walks the
// Config struct and fails on a key missing here, so a Prometheus upgrade
// that adds one cannot slip through as silently ignored.
var prometheusKeys = map[string]string{
	"global.scrape_interval":                         "scrape manager (defaults of scrape_configs)",
	"global.scrape_timeout":                          "scrape manager (defaults of scrape_configs)",
	"global.scrape_protocols":                        "scrape manager (defaults of scrape_configs)",
	"global.evaluation_interval":                     "ruler (rules.Manager.Update) and PromQL's default subquery step",
	"global.rule_query_offset":                       "unsupported: the ruler does not pass a default rule query offset; set query_offset per rule group",
	"global.query_log_file":                          "Engine.ApplyConfig (PromQL query log)",
	"global.query_max_series":                        "unsupported: Prometheus applies it only with its query-cost feature, which nxwatcher does not have; use metrics.query.max_samples",
	"global.query_max_samples_read":                  "unsupported: Prometheus applies it only with its query-cost feature, which nxwatcher does not have; use metrics.query.max_samples",
	"global.query_max_duration":                      "unsupported: Prometheus applies it only with its query-cost feature, which nxwatcher does not have; use metrics.query.timeout",
	"global.scrape_failure_log_file":                 "scrape manager (defaults of scrape_configs)",
	"global.external_labels":                         "remote write queues, remote read filtering, ruler and notifier",
	"global.body_size_limit":                         "scrape manager (defaults of scrape_configs)",
	"global.sample_limit":                            "scrape manager (defaults of scrape_configs)",
	"global.target_limit":                            "scrape manager (defaults of scrape_configs)",
	"global.label_limit":                             "scrape manager (defaults of scrape_configs)",
	"global.label_name_length_limit":                 "scrape manager (defaults of scrape_configs)",
	"global.label_value_length_limit":                "scrape manager (defaults of scrape_configs)",
	"global.keep_dropped_targets":                    "scrape manager (defaults of scrape_configs)",
	"global.metric_name_validation_scheme":           "scrape manager (defaults of scrape_configs)",
	"global.metric_name_escaping_scheme":             "scrape manager (defaults of scrape_configs)",
	"global.scrape_native_histograms":                "scrape manager (defaults of scrape_configs)",
	"global.convert_classic_histograms_to_nhcb":      "scrape manager (defaults of scrape_configs)",
	"global.always_scrape_classic_histograms":        "scrape manager (defaults of scrape_configs)",
	"global.extra_scrape_metrics":                    "scrape manager (defaults of scrape_configs)",
	"runtime.gogc":                                   "app: debug.SetGCPercent on every load",
	"runtime.log_level":                              "unsupported: the log level is the --log.level flag",
	"alerting.alert_relabel_configs":                 "ruler's notifier",
	"alerting.alertmanagers":                         "ruler's notifier and its discovery",
	"rule_files":                                     "ruler",
	"scrape_config_files":                            "scrape manager (Config.GetScrapeConfigs)",
	"scrape_configs":                                 "scrape and discovery managers",
	"storage.tsdb.out_of_order_time_window":          "TSDB (Open and ApplyConfig)",
	"storage.tsdb.stale_series_compaction_threshold": "TSDB ApplyConfig",
	"storage.tsdb.chunk_encoding.floats":             "TSDB ApplyConfig",
	"storage.tsdb.retention.time":                    "TSDB ApplyConfig (wins over metrics.retention)",
	"storage.tsdb.retention.size":                    "TSDB ApplyConfig (wins over metrics.retention_size)",
	"storage.tsdb.retention.percentage":              "TSDB ApplyConfig",
	"storage.exemplars.max_exemplars":                "TSDB (Open and ApplyConfig)",
	"tracing":                                        "unsupported: nxwatcher does not export traces of its own queries and scrapes",
	"remote_write":                                   "remote write queues (storage/remote)",
	"remote_read":                                    "remote read queriers (storage/remote) behind every PromQL query",
	"otlp":                                           "OTLP metrics receivers (/api/v1/otlp/v1/metrics and the OTLP gRPC/HTTP receiver)",
}

// unsupportedSettings lists each refused key with how to read it from a
// parsed config; a value different from the parser's default is refused.
var unsupportedSettings = []struct {
	key string
	get func(*promconfig.Config) any
}{
	{"global.rule_query_offset", func(c *promconfig.Config) any { return c.GlobalConfig.RuleQueryOffset }},
	{"global.query_max_series", func(c *promconfig.Config) any { return c.GlobalConfig.QueryMaxSeries }},
	{"global.query_max_samples_read", func(c *promconfig.Config) any { return c.GlobalConfig.QueryMaxSamplesRead }},
	{"global.query_max_duration", func(c *promconfig.Config) any { return c.GlobalConfig.QueryMaxDuration }},
	{"runtime.log_level", func(c *promconfig.Config) any { return c.Runtime.LogLevel }},
	{"tracing", func(c *promconfig.Config) any { return c.TracingConfig }},
}

// checkSupported refuses keys nxwatcher would accept and then ignore, the
// fields refused by `prometheus --agent` in agent mode, and remote
// endpoints whose clients cannot be built (a TLS file that does not exist,
// two identical remote_write entries) — so `check config` and a reload
// report them instead of the swap.
func checkSupported(pc *promconfig.Config, mode string) error {
	def, err := promconfig.Load("", promslog.NewNopLogger())
	if err != nil {
		return fmt.Errorf("default prometheus config: %w", err)
	}
	var errs []error
	for _, u := range unsupportedSettings {
		if !reflect.DeepEqual(u.get(pc), u.get(def)) {
			errs = append(errs, fmt.Errorf("%s is not supported by nxwatcher (%s)", u.key, prometheusKeys[u.key][len("unsupported: "):]))
		}
	}
	if mode == ModeAgent {
		// Prometheus's own messages (config.LoadFile with agentMode).
		if len(pc.AlertingConfig.AlertmanagerConfigs) > 0 || len(pc.AlertingConfig.AlertRelabelConfigs) > 0 {
			errs = append(errs, errors.New("field alerting is not allowed in agent mode"))
		}
		if len(pc.RuleFiles) > 0 {
			errs = append(errs, errors.New("field rule_files is not allowed in agent mode"))
		}
		if len(pc.RemoteReadConfigs) > 0 {
			errs = append(errs, errors.New("field remote_read is not allowed in agent mode"))
		}
	}
	errs = append(errs, checkRemote(pc))
	return errors.Join(errs...)
}

// checkRemote builds every remote write and read client as
// remote.Storage.ApplyConfig would, without starting anything.
func checkRemote(pc *promconfig.Config) error {
	var errs []error
	for i, rw := range pc.RemoteWriteConfigs {
		if err := checkEndpoint(rw.URL.URL); err != nil {
			errs = append(errs, fmt.Errorf("remote_write %q: %w", rw.URL.Redacted(), err))
			continue
		}
		if _, err := remote.NewWriteClient(fmt.Sprintf("check-%d", i), &remote.ClientConfig{
			URL:              rw.URL,
			WriteProtoMsg:    rw.ProtobufMessage,
			Timeout:          rw.RemoteTimeout,
			HTTPClientConfig: rw.HTTPClientConfig,
			SigV4Config:      rw.SigV4Config,
			AzureADConfig:    rw.AzureADConfig,
			GoogleIAMConfig:  rw.GoogleIAMConfig,
			Headers:          rw.Headers,
			RetryOnRateLimit: rw.QueueConfig.RetryOnRateLimit,
			RoundRobinDNS:    rw.RoundRobinDNS,
		}); err != nil {
			errs = append(errs, fmt.Errorf("remote_write %s: %w", rw.URL.Redacted(), err))
		}
		for _, other := range pc.RemoteWriteConfigs[:i] {
			if reflect.DeepEqual(rw, other) {
				errs = append(errs, fmt.Errorf("duplicate remote write configs are not allowed, found duplicate for URL: %s", rw.URL))
			}
		}
	}
	for i, rr := range pc.RemoteReadConfigs {
		if err := checkEndpoint(rr.URL.URL); err != nil {
			errs = append(errs, fmt.Errorf("remote_read %q: %w", rr.URL.Redacted(), err))
			continue
		}
		if _, err := remote.NewReadClient(fmt.Sprintf("check-%d", i), &remote.ClientConfig{
			URL:              rr.URL,
			Timeout:          rr.RemoteTimeout,
			ChunkedReadLimit: rr.ChunkedReadLimit,
			HTTPClientConfig: rr.HTTPClientConfig,
			Headers:          rr.Headers,
		}); err != nil {
			errs = append(errs, fmt.Errorf("remote_read %s: %w", rr.URL.Redacted(), err))
		}
		for _, other := range pc.RemoteReadConfigs[:i] {
			if reflect.DeepEqual(rr, other) {
				errs = append(errs, fmt.Errorf("duplicate remote read configs are not allowed, found duplicate for URL: %s", rr.URL))
			}
		}
	}
	return errors.Join(errs...)
}

// checkEndpoint refuses a URL that parses but cannot be sent to (Prometheus
// accepts `url: ”` and `localhost:9090/write`, then fails every send).
func checkEndpoint(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("url scheme must be http or https, not %q", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("url has no host")
	}
	return nil
}
