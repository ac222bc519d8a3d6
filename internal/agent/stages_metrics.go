package agent

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
)

// MetricConfig is one metric of the metrics stage.
type MetricConfig struct {
	Type            string         `yaml:"type"`
	Description     string         `yaml:"description"`
	Source          string         `yaml:"source"`
	Prefix          string         `yaml:"prefix"`
	MaxIdleDuration model.Duration `yaml:"max_idle_duration"`
	Config          struct {
		Value           *string   `yaml:"value"`
		Action          string    `yaml:"action"`
		MatchAll        bool      `yaml:"match_all"`
		CountEntryBytes bool      `yaml:"count_entry_bytes"`
		Buckets         []float64 `yaml:"buckets"`
	} `yaml:"config"`
}

// customMetrics holds every metrics-stage series of an agent and exposes them
// on its registry. Series carry the entry's labels, so they are kept in a map
// keyed by fingerprint rather than in fixed-label vectors.
type customMetrics struct {
	mu     sync.Mutex
	byName map[string]*customMetric
}

type customMetric struct {
	name, help, kind string
	buckets          []float64
	maxIdle          time.Duration
	series           map[model.Fingerprint]*customSeries
}

type customSeries struct {
	labels  model.LabelSet
	value   float64
	count   uint64
	sum     float64
	buckets []uint64
	touched time.Time
}

func newCustomMetrics(reg prometheus.Registerer) *customMetrics {
	m := &customMetrics{byName: map[string]*customMetric{}}
	if reg != nil {
		reg.MustRegister(m)
	}
	return m
}

// Describe sends nothing: the set of metrics changes with the config.
func (m *customMetrics) Describe(chan<- *prometheus.Desc) {}

// Collect sends every live series, forgetting idle ones.
func (m *customMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	for _, cm := range m.byName {
		for fp, s := range cm.series {
			if cm.maxIdle > 0 && now.Sub(s.touched) > cm.maxIdle {
				delete(cm.series, fp)
				continue
			}
			names := make([]string, 0, len(s.labels))
			for n := range s.labels {
				names = append(names, string(n))
			}
			sort.Strings(names)
			vals := make([]string, len(names))
			for i, n := range names {
				vals[i] = string(s.labels[model.LabelName(n)])
			}
			desc := prometheus.NewDesc(cm.name, cm.help, names, nil)
			var metric prometheus.Metric
			var err error
			switch cm.kind {
			case "counter":
				metric, err = prometheus.NewConstMetric(desc, prometheus.CounterValue, s.value, vals...)
			case "gauge":
				metric, err = prometheus.NewConstMetric(desc, prometheus.GaugeValue, s.value, vals...)
			default:
				bk := make(map[float64]uint64, len(cm.buckets))
				var cum uint64
				for i, b := range cm.buckets {
					cum += s.buckets[i]
					bk[b] = cum
				}
				metric, err = prometheus.NewConstHistogram(desc, s.count, s.sum, bk, vals...)
			}
			if err == nil {
				ch <- metric
			}
		}
	}
}

type metricsStage struct {
	d       *PipelineDeps
	metrics []*metricRule
}

type metricRule struct {
	cfg    MetricConfig
	kind   string
	metric *customMetric
	owner  *customMetrics
}

func newMetricsStage(cfgs map[string]*MetricConfig, d *PipelineDeps) (*metricsStage, error) {
	s := &metricsStage{d: d}
	names := make([]string, 0, len(cfgs))
	for n := range cfgs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := cfgs[n]
		if c == nil {
			return nil, fmt.Errorf("metrics: %s: empty", n)
		}
		kind := strings.ToLower(c.Type)
		action := c.Config.Action
		switch kind {
		case "counter":
			if action != "inc" && action != "add" {
				return nil, fmt.Errorf("metrics: %s: counter action must be inc or add", n)
			}
			if c.Config.MatchAll && c.Config.Value != nil {
				return nil, fmt.Errorf("metrics: %s: match_all and value cannot both be set", n)
			}
		case "gauge":
			switch action {
			case "set", "inc", "dec", "add", "sub":
			default:
				return nil, fmt.Errorf("metrics: %s: gauge action must be set, inc, dec, add or sub", n)
			}
		case "histogram":
			if len(c.Config.Buckets) == 0 {
				c.Config.Buckets = prometheus.DefBuckets
			}
			sort.Float64s(c.Config.Buckets)
		default:
			return nil, fmt.Errorf("metrics: %s: type %q is not Counter, Gauge or Histogram", n, c.Type)
		}
		if c.Source == "" && !c.Config.MatchAll {
			c.Source = n
		}
		prefix := c.Prefix
		if prefix == "" {
			prefix = "promtail_custom_"
		}
		full := prefix + n
		if !model.IsValidLegacyMetricName(full) {
			return nil, fmt.Errorf("metrics: %q is not a valid metric name", full)
		}
		owner := d.Metrics.custom
		owner.mu.Lock()
		cm := owner.byName[full]
		if cm == nil {
			cm = &customMetric{name: full, help: c.Description, kind: kind, buckets: c.Config.Buckets, maxIdle: time.Duration(c.MaxIdleDuration), series: map[model.Fingerprint]*customSeries{}}
			owner.byName[full] = cm
		}
		owner.mu.Unlock()
		if cm.kind != kind {
			return nil, fmt.Errorf("metrics: %s is already a %s", full, cm.kind)
		}
		s.metrics = append(s.metrics, &metricRule{cfg: *c, kind: kind, metric: cm, owner: owner})
	}
	return s, nil
}

func (*metricsStage) name() string { return "metrics" }

func (s *metricsStage) apply(e *Entry) bool {
	for _, r := range s.metrics {
		if err := r.observe(e); err != nil {
			s.d.stageError("metrics", err)
		}
	}
	return true
}

func (r *metricRule) observe(e *Entry) error {
	c := r.cfg
	var val string
	if !c.Config.MatchAll || c.Source != "" {
		v, ok := e.lookup(c.Source)
		if !ok {
			if c.Config.MatchAll {
				v = e.Line
			} else {
				return nil
			}
		}
		val = v
	}
	if c.Config.Value != nil && val != *c.Config.Value {
		return nil
	}
	delta := 1.0
	needNum := false
	switch {
	case r.kind == "counter" && c.Config.Action == "add":
		needNum = true
	case r.kind == "gauge" && c.Config.Action != "inc" && c.Config.Action != "dec":
		needNum = true
	case r.kind == "histogram":
		needNum = true
	}
	if c.Config.CountEntryBytes {
		delta = float64(len(e.Line))
	} else if needNum {
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return fmt.Errorf("metric %s: %w", r.metric.name, err)
		}
		delta = f
	}
	ls := make(model.LabelSet, len(e.Labels))
	for k, v := range e.Labels {
		if !strings.HasPrefix(string(k), "__") {
			ls[k] = v
		}
	}
	fp := ls.Fingerprint()
	r.owner.mu.Lock()
	defer r.owner.mu.Unlock()
	ser := r.metric.series[fp]
	if ser == nil {
		ser = &customSeries{labels: ls, buckets: make([]uint64, len(r.metric.buckets))}
		r.metric.series[fp] = ser
	}
	ser.touched = time.Now()
	switch r.kind {
	case "counter":
		if delta < 0 {
			return errors.New("counter cannot decrease")
		}
		ser.value += delta
	case "gauge":
		switch c.Config.Action {
		case "set":
			ser.value = delta
		case "inc", "add":
			ser.value += delta
		case "dec", "sub":
			ser.value -= delta
		}
	case "histogram":
		ser.count++
		ser.sum += delta
		for i, b := range r.metric.buckets {
			if delta <= b {
				ser.buckets[i]++
				break
			}
		}
	}
	return nil
}
