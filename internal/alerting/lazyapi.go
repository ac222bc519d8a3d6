package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-openapi/strfmt"
	"github.com/prometheus/alertmanager/api"
	apimetrics "github.com/prometheus/alertmanager/api/metrics"
	openapimodels "github.com/prometheus/alertmanager/api/v2/models"
	amconfig "github.com/prometheus/alertmanager/config"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/route"
)

// lazyAPI is Alertmanager's API v2 (api.New) built on its first request
// instead of at start-up (ADR 0087). Building it loads and analyses the
// embedded swagger spec with go-openapi and builds its router: ~2.7 MiB of
// live heap that a server nobody asks about its alerts never needs (the
// ruler hands alerts over in-process, not through the API).
//
// Once built it answers exactly as if built at start-up:
//   - the configuration in force is handed over on build and on every
//     later Update;
//   - GET /api/v2/status reports the Alertmanager's start time as
//     "uptime" (upstream stamps the API's construction time);
//   - the metrics api.New registers (alertmanager_alerts_received_total,
//     alertmanager_alerts_invalid_total, alertmanager_http_requests_in_flight,
//     alertmanager_http_concurrency_limit_exceeded_total) are exported
//     from New on, at zero until the API exists (apiMetrics).
type lazyAPI struct {
	opts   api.Options // without Registry: apiMetrics supplies it
	prefix string      // route prefix, as api.Register takes it
	start  time.Time   // the Alertmanager's start: /api/v2/status's uptime
	logger *slog.Logger

	metrics *apiMetrics
	handler atomic.Pointer[http.Handler] // set once built

	mu        sync.Mutex // serialises build and Update
	api       *api.API
	conf      *amconfig.Config
	setStatus func(context.Context, model.LabelSet)
}

func newLazyAPI(opts api.Options, prefix string, start time.Time, reg prometheus.Registerer) (*lazyAPI, error) {
	m, err := newAPIMetrics(reg)
	if err != nil {
		return nil, err
	}
	opts.Registry = nil
	return &lazyAPI{opts: opts, prefix: prefix, start: start, logger: opts.Logger, metrics: m}, nil
}

// Update is api.API.Update: it hands conf over now if the API is built,
// else when it is.
func (l *lazyAPI) Update(conf *amconfig.Config, setStatus func(context.Context, model.LabelSet)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.conf, l.setStatus = conf, setStatus
	if l.api != nil {
		l.api.Update(conf, setStatus)
	}
}

// built reports whether the API has been built (for tests).
func (l *lazyAPI) built() bool { return l.handler.Load() != nil }

// get returns the API's handler, building the API on the first call.
func (l *lazyAPI) get() (http.Handler, error) {
	if h := l.handler.Load(); h != nil {
		return *h, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if h := l.handler.Load(); h != nil {
		return *h, nil
	}
	opts := l.opts
	capture := l.metrics.capture()
	opts.Registry = capture
	a, err := api.New(opts)
	if err != nil {
		return nil, fmt.Errorf("build alertmanager api: %w", err)
	}
	if l.conf != nil {
		a.Update(l.conf, l.setStatus)
	}
	var h http.Handler = a.Register(route.New(), l.prefix)
	l.api = a
	l.metrics.use(capture)
	l.handler.Store(&h)
	return h, nil
}

func (l *lazyAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, err := l.get()
	if err != nil {
		l.logger.Error("Alertmanager API unavailable", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/api/v2/status") {
		l.serveStatus(h, w, r)
		return
	}
	h.ServeHTTP(w, r)
}

// serveStatus answers GET /api/v2/status with "uptime" set to the
// Alertmanager's start instead of the API's build time; every other byte
// is upstream's.
func (l *lazyAPI) serveStatus(h http.Handler, w http.ResponseWriter, r *http.Request) {
	rec := &bufferedResponse{header: w.Header(), status: http.StatusOK}
	h.ServeHTTP(rec, r)
	body := rec.body.Bytes()
	if rec.status == http.StatusOK {
		var st openapimodels.AlertmanagerStatus
		if err := json.Unmarshal(body, &st); err == nil && st.Uptime != nil {
			built, err1 := json.Marshal(st.Uptime)
			started, err2 := json.Marshal(strfmt.DateTime(l.start))
			if err1 == nil && err2 == nil {
				body = bytes.Replace(body, append([]byte(`"uptime":`), built...), append([]byte(`"uptime":`), started...), 1)
			}
		}
	}
	w.WriteHeader(rec.status)
	_, _ = w.Write(body)
}

// apiMetrics exports the metrics api.New registers. It is registered at
// New as an unchecked collector (it describes nothing up front): until the
// API is built it collects zero-valued copies made from the same
// definitions, afterwards the API's own collectors.
type apiMetrics struct {
	mu   sync.Mutex
	zero []prometheus.Collector
	live []prometheus.Collector
}

func newAPIMetrics(reg prometheus.Registerer) (*apiMetrics, error) {
	m := &apiMetrics{}
	zero := &captureRegisterer{check: prometheus.NewRegistry()}
	// The same constructors and definitions as api.New's (see
	// TestLazyAPIMetricsMatchUpstream).
	apimetrics.NewAlerts(zero)
	zero.MustRegister(
		prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "alertmanager_http_requests_in_flight",
			Help:        "Current number of HTTP requests being processed.",
			ConstLabels: prometheus.Labels{"method": "get"},
		}),
		prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "alertmanager_http_concurrency_limit_exceeded_total",
			Help:        "Total number of times an HTTP request failed because the concurrency limit was reached.",
			ConstLabels: prometheus.Labels{"method": "get"},
		}),
	)
	m.zero = zero.collectors
	if err := reg.Register(m); err != nil {
		return nil, fmt.Errorf("register alertmanager api metrics: %w", err)
	}
	return m, nil
}

// capture is the Registerer handed to api.New.
func (m *apiMetrics) capture() *captureRegisterer {
	return &captureRegisterer{check: prometheus.NewRegistry()}
}

// use switches collection to what api.New registered.
func (m *apiMetrics) use(c *captureRegisterer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.live = c.collectors
}

// Describe describes nothing: an unchecked collector, since the API's
// collectors exist only once it is built.
func (m *apiMetrics) Describe(chan<- *prometheus.Desc) {}

func (m *apiMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	cs := m.live
	if cs == nil {
		cs = m.zero
	}
	m.mu.Unlock()
	for _, c := range cs {
		c.Collect(ch)
	}
}

// captureRegisterer records the collectors registered with it, checked
// for consistency by a private registry.
type captureRegisterer struct {
	check      *prometheus.Registry
	collectors []prometheus.Collector
}

func (c *captureRegisterer) Register(col prometheus.Collector) error {
	if err := c.check.Register(col); err != nil {
		return err
	}
	c.collectors = append(c.collectors, col)
	return nil
}

func (c *captureRegisterer) MustRegister(cols ...prometheus.Collector) {
	for _, col := range cols {
		if err := c.Register(col); err != nil {
			panic(err)
		}
	}
}

func (c *captureRegisterer) Unregister(col prometheus.Collector) bool {
	i := slices.Index(c.collectors, col)
	if i < 0 {
		return false
	}
	c.collectors = slices.Delete(c.collectors, i, i+1)
	return c.check.Unregister(col)
}
