package agent

import "github.com/prometheus/client_golang/prometheus"

// agentMetrics keep Promtail's names where Promtail has the metric, so its
// dashboards and alerts keep working; our own are nxwatcher_agent_*.
type agentMetrics struct {
	readBytes       *prometheus.CounterVec
	readLines       *prometheus.CounterVec
	filesActive     prometheus.Gauge
	targetsActive   prometheus.Gauge
	sentEntries     *prometheus.CounterVec
	sentBytes       *prometheus.CounterVec
	encodedBytes    *prometheus.CounterVec
	droppedEntries  *prometheus.CounterVec
	droppedBytes    *prometheus.CounterVec
	retries         *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	dropped         *prometheus.CounterVec
	truncated       prometheus.Counter
	readErrors      prometheus.Counter
	openErrors      prometheus.Counter
	rotations       *prometheus.CounterVec
	positionsErrors prometheus.Counter
	invalidUTF8     prometheus.Counter
}

func newAgentMetrics(reg prometheus.Registerer) *agentMetrics {
	m := &agentMetrics{
		readBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promtail_read_bytes_total", Help: "Number of bytes read.",
		}, []string{"path"}),
		readLines: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promtail_read_lines_total", Help: "Number of lines read.",
		}, []string{"path"}),
		filesActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "promtail_files_active_total", Help: "Number of active files.",
		}),
		targetsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "promtail_targets_active_total", Help: "Number of active targets.",
		}),
		sentEntries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promtail_sent_entries_total", Help: "Number of log entries sent to the ingester.",
		}, []string{"host"}),
		sentBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promtail_sent_bytes_total", Help: "Number of bytes sent.",
		}, []string{"host"}),
		encodedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promtail_encoded_bytes_total", Help: "Number of bytes encoded and ready to send.",
		}, []string{"host"}),
		droppedEntries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promtail_dropped_entries_total", Help: "Number of log entries dropped because they failed to be sent to the ingester after all retries, or were refused.",
		}, []string{"host", "reason"}),
		droppedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promtail_dropped_bytes_total", Help: "Number of bytes dropped because they failed to be sent to the ingester after all retries, or were refused.",
		}, []string{"host", "reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promtail_batch_retries_total", Help: "Number of times batches have had to be retried.",
		}, []string{"host"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "promtail_request_duration_seconds", Help: "Duration of send requests.",
		}, []string{"host", "status_code"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_agent_dropped_lines_total", Help: "Lines the agent dropped before any client, by reason.",
		}, []string{"reason"}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nxwatcher_agent_truncated_lines_total", Help: "Lines longer than limits_config.max_line_size, cut to that size.",
		}),
		readErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nxwatcher_agent_read_errors_total", Help: "Failed reads of tailed files.",
		}),
		openErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nxwatcher_agent_open_errors_total", Help: "Files matched by a target that could not be opened (permissions, not a regular file).",
		}),
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_agent_rotations_total", Help: "File rotations followed, by kind (rename, truncate).",
		}, []string{"kind"}),
		positionsErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nxwatcher_agent_positions_errors_total", Help: "Positions files that could not be read (ignored) or written.",
		}),
		invalidUTF8: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nxwatcher_agent_invalid_utf8_lines_total", Help: "Lines with invalid UTF-8, shipped with the bad bytes replaced by U+FFFD.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.readBytes, m.readLines, m.filesActive, m.targetsActive, m.sentEntries, m.sentBytes,
			m.encodedBytes, m.droppedEntries, m.droppedBytes, m.retries, m.requestDuration, m.dropped,
			m.truncated, m.readErrors, m.openErrors, m.rotations, m.positionsErrors, m.invalidUTF8)
	}
	return m
}
