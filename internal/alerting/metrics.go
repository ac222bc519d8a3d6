package alerting

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"
)

type labelsLabel = labels.Label

type metrics struct {
	requestDuration *prometheus.HistogramVec
	receivers       prometheus.Gauge
	integrations    prometheus.Gauge
	inhibitionRules prometheus.Gauge
	reloads         *prometheus.CounterVec
	inProcess       *prometheus.CounterVec
	snapshotErrors  *prometheus.CounterVec
	snapshotBytes   *prometheus.GaugeVec
	rejected        *prometheus.CounterVec
}

// newMetrics registers upstream's own Alertmanager process metrics (the
// names dashboards know) and ours.
func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		requestDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "alertmanager_http_request_duration_seconds",
			Help:                            "Histogram of latencies for HTTP requests.",
			Buckets:                         prometheus.DefBuckets,
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"handler", "method", "code"}),
		receivers: f.NewGauge(prometheus.GaugeOpts{
			Name: "alertmanager_receivers",
			Help: "Number of configured receivers.",
		}),
		integrations: f.NewGauge(prometheus.GaugeOpts{
			Name: "alertmanager_integrations",
			Help: "Number of configured integrations.",
		}),
		inhibitionRules: f.NewGauge(prometheus.GaugeOpts{
			Name: "alertmanager_inhibition_rules",
			Help: "Number of configured inhibition rules.",
		}),
		reloads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_alerting_config_reloads_total",
			Help: "Alertmanager configuration reloads by result.",
		}, []string{"result"}),
		inProcess: f.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_alerting_inprocess_alerts_total",
			Help: "Alerts handed in-process by the ruler, by result (accepted, invalid, failed).",
		}, []string{"result"}),
		snapshotErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_alerting_snapshot_errors_total",
			Help: "Failed snapshot writes of silences or the notification log.",
		}, []string{"state"}),
		snapshotBytes: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nxwatcher_alerting_snapshot_size_bytes",
			Help: "Size of the last snapshot written, by state (silences, nflog).",
		}, []string{"state"}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_alerting_api_rejected_requests_total",
			Help: "API v2 requests answered with a 4xx status, by endpoint.",
		}, []string{"endpoint"}),
	}
}
