package generator

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/prometheus/common/model"
)

// Config is the metrics-generator section (`traces: generator:` in the
// serve config). Keys follow Tempo's `metrics_generator` block where one
// exists, so a Tempo user finds the same knobs under the same names.
type Config struct {
	// CollectionInterval is how often the current values of all active
	// series are written (Tempo: registry.collection_interval).
	CollectionInterval model.Duration `yaml:"collection_interval"`
	// StaleDuration drops series not updated for this long
	// (Tempo: registry.stale_duration).
	StaleDuration model.Duration `yaml:"stale_duration"`
	// ExternalLabels are added to every series (Tempo:
	// registry.external_labels); the seed sets source: tempo.
	ExternalLabels map[string]string `yaml:"external_labels"`
	// MaxActiveSeries caps the series held; new ones past it are dropped
	// and counted. 0 means no cap.
	MaxActiveSeries int `yaml:"max_active_series"`
	// RemoteWrite lists Prometheus remote-write endpoints that also get
	// every collection (Tempo: storage.remote_write). The local TSDB is
	// written regardless.
	RemoteWrite []RemoteWriteConfig `yaml:"remote_write"`

	ServiceGraphs ServiceGraphsConfig `yaml:"service_graphs"`
	SpanMetrics   SpanMetricsConfig   `yaml:"span_metrics"`
}

// RemoteWriteConfig is one remote-write target.
type RemoteWriteConfig struct {
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers"`
	// Timeout bounds one push; default 10s.
	Timeout model.Duration `yaml:"timeout"`
}

// ServiceGraphsConfig configures the service-graph processor.
type ServiceGraphsConfig struct {
	Enabled bool `yaml:"enabled"`
	// Wait is how long a client or server span waits for its pair.
	Wait model.Duration `yaml:"wait"`
	// MaxItems caps the unpaired edges held; more are dropped and counted.
	MaxItems int `yaml:"max_items"`
	// HistogramBuckets are the upper bounds, in seconds, of the latency
	// histograms.
	HistogramBuckets []float64 `yaml:"histogram_buckets"`
	// Dimensions are span or resource attributes added as labels.
	Dimensions []string `yaml:"dimensions"`
	// EnableClientServerPrefix labels dimensions client_<name> and
	// server_<name>, each from its own side; otherwise one <name> label,
	// the server side's value winning.
	EnableClientServerPrefix bool `yaml:"enable_client_server_prefix"`
	// PeerAttributes name the uninstrumented server of a client span that
	// never finds its pair (a virtual node), first match wins.
	PeerAttributes []string `yaml:"peer_attributes"`
}

// SpanMetricsConfig configures the span-metrics processor.
type SpanMetricsConfig struct {
	Enabled             bool                `yaml:"enabled"`
	HistogramBuckets    []float64           `yaml:"histogram_buckets"`
	Dimensions          []string            `yaml:"dimensions"`
	IntrinsicDimensions IntrinsicDimensions `yaml:"intrinsic_dimensions"`
}

// IntrinsicDimensions switches the default span-metrics labels.
type IntrinsicDimensions struct {
	Service       bool `yaml:"service"`
	SpanName      bool `yaml:"span_name"`
	SpanKind      bool `yaml:"span_kind"`
	StatusCode    bool `yaml:"status_code"`
	StatusMessage bool `yaml:"status_message"`
}

// DefaultConfig mirrors Tempo's defaults, with the seed's external label.
func DefaultConfig() Config {
	return Config{
		CollectionInterval: model.Duration(15 * time.Second),
		StaleDuration:      model.Duration(15 * time.Minute),
		ExternalLabels:     map[string]string{"source": "tempo"},
		ServiceGraphs: ServiceGraphsConfig{
			Enabled:          true,
			Wait:             model.Duration(10 * time.Second),
			MaxItems:         10000,
			HistogramBuckets: []float64{0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8},
			PeerAttributes:   []string{"peer.service", "db.name", "db.system"},
		},
		SpanMetrics: SpanMetricsConfig{
			Enabled:          true,
			HistogramBuckets: []float64{0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384},
			IntrinsicDimensions: IntrinsicDimensions{
				Service: true, SpanName: true, SpanKind: true, StatusCode: true,
			},
		},
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.CollectionInterval <= 0 {
		errs = append(errs, fmt.Errorf("generator.collection_interval: must be positive, got %s", c.CollectionInterval))
	}
	if c.StaleDuration <= c.CollectionInterval {
		errs = append(errs, fmt.Errorf("generator.stale_duration: %s must exceed collection_interval %s", c.StaleDuration, c.CollectionInterval))
	}
	for name := range c.ExternalLabels {
		if !model.LegacyValidation.IsValidLabelName(name) {
			errs = append(errs, fmt.Errorf("generator.external_labels: %q is not a valid label name", name))
		}
	}
	if c.MaxActiveSeries < 0 {
		errs = append(errs, fmt.Errorf("generator.max_active_series: must not be negative, got %d", c.MaxActiveSeries))
	}
	for i, rw := range c.RemoteWrite {
		u, err := url.Parse(rw.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("generator.remote_write[%d].url: %q is not an http(s) URL", i, rw.URL))
		}
		if rw.Timeout < 0 {
			errs = append(errs, fmt.Errorf("generator.remote_write[%d].timeout: must not be negative", i))
		}
	}
	if sg := c.ServiceGraphs; sg.Enabled {
		if sg.Wait <= 0 {
			errs = append(errs, fmt.Errorf("generator.service_graphs.wait: must be positive, got %s", sg.Wait))
		}
		if sg.MaxItems <= 0 {
			errs = append(errs, fmt.Errorf("generator.service_graphs.max_items: must be positive, got %d", sg.MaxItems))
		}
		if err := validateBuckets(sg.HistogramBuckets); err != nil {
			errs = append(errs, fmt.Errorf("generator.service_graphs.histogram_buckets: %w", err))
		}
	}
	if sm := c.SpanMetrics; sm.Enabled {
		if err := validateBuckets(sm.HistogramBuckets); err != nil {
			errs = append(errs, fmt.Errorf("generator.span_metrics.histogram_buckets: %w", err))
		}
	}
	return errors.Join(errs...)
}

func validateBuckets(b []float64) error {
	if len(b) == 0 {
		return errors.New("need at least one bucket")
	}
	if !slices.IsSorted(b) || len(slices.Compact(slices.Clone(b))) != len(b) {
		return fmt.Errorf("%v must be strictly increasing", b)
	}
	return nil
}
