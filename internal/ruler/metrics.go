package ruler

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	reloads       *prometheus.CounterVec
	sentInProcess prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		reloads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_ruler_config_reloads_total",
			Help: "Rule configuration reloads by result.",
		}, []string{"result"}),
		sentInProcess: f.NewCounter(prometheus.CounterOpts{
			Name: "nxwatcher_ruler_inprocess_alerts_sent_total",
			Help: "Alerts handed to the embedded Alertmanager in-process.",
		}),
	}
}
