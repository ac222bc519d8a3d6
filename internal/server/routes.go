package server

import (
	"fmt"
	"net/http"
	"strings"
)

// Handlers are the endpoints the roles provide. Nil handlers are not routed.
type Handlers struct {
	// Lifecycle, as Prometheus serves it.
	Healthy http.HandlerFunc
	Ready   http.HandlerFunc
	Reload  http.HandlerFunc

	// Metrics is our own /metrics.
	Metrics http.Handler

	// PrometheusAPI serves everything under /api/v1 (query, series, targets,
	// status, remote write, OTLP metrics); it names its own routes.
	PrometheusAPI http.Handler
}

// Routes is the whole URL surface of the main listener, in one place.
func Routes(h Handlers, in *Instrumentation) http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, handler http.Handler) {
		if handler == nil {
			return
		}
		name := pattern
		if i := strings.IndexByte(pattern, ' '); i >= 0 {
			name = pattern[i+1:]
		}
		mux.Handle(pattern, in.Wrap(name, handler))
	}

	handle("GET /-/healthy", h.Healthy)
	handle("HEAD /-/healthy", h.Healthy)
	handle("GET /-/ready", h.Ready)
	handle("HEAD /-/ready", h.Ready)
	handle("POST /-/reload", h.Reload)
	handle("PUT /-/reload", h.Reload)
	handle("GET /metrics", h.Metrics)

	// The Prometheus API instruments its own routes by name.
	if h.PrometheusAPI != nil {
		mux.Handle("/api/v1/", h.PrometheusAPI)
	}

	mux.HandleFunc("GET /{$}", index)
	return mux
}

// index lists what answers here until the UI lands.
func index(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, `nxwatcher

  /api/v1/...        Prometheus HTTP API (query, query_range, series, labels, targets, status, ...)
  /api/v1/write      Prometheus remote write receiver (1.0 and 2.0)
  /api/v1/otlp/v1/metrics  OTLP metrics
  /metrics           nxwatcher's own metrics
  /-/healthy /-/ready /-/reload
`)
}
