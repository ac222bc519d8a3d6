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
	// Quit asks the process to exit (/-/quit).
	Quit http.HandlerFunc

	// Metrics is our own /metrics.
	Metrics http.Handler

	// PrometheusAPI serves everything under /api/v1 (query, series, targets,
	// status, remote write, OTLP metrics); it names its own routes.
	PrometheusAPI http.Handler

	// AlertmanagerAPI serves Alertmanager's API v2 under /api/v2/.
	AlertmanagerAPI http.Handler

	// Loki is Loki's HTTP API (push, query, labels, series, tail, OTLP logs).
	Loki []Route
	// Tempo is Tempo's HTTP API (trace by ID, search, tags).
	Tempo []Route
	// OTLP is OTLP/HTTP (/v1/traces, /v1/logs, /v1/metrics), also served on
	// its own port.
	OTLP []Route
	// UI is the web UI: its pages at "/" and its /api/ui helpers. A route
	// without a method matches every method (its handler checks). Without
	// it "/" shows a plain list of the APIs.
	UI []Route
}

// Route is one entry of a role's route table.
type Route struct {
	Method  string
	Path    string // a ServeMux pattern without the method
	Handler http.HandlerFunc
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
	handle("POST /-/quit", h.Quit)
	handle("PUT /-/quit", h.Quit)
	handle("GET /metrics", h.Metrics)

	// The Prometheus API instruments its own routes by name.
	if h.PrometheusAPI != nil {
		mux.Handle("/api/v1/", h.PrometheusAPI)
	}
	// Alertmanager API v2; Tempo's /api/v2/traces and /api/v2/search
	// patterns below are more specific and win.
	handle("/api/v2/", h.AlertmanagerAPI)
	handle("GET /ready", h.Ready)
	for _, r := range h.Loki {
		handle(r.Method+" "+r.Path, r.Handler)
	}
	for _, r := range h.Tempo {
		handle(r.Method+" "+r.Path, r.Handler)
	}
	for _, r := range h.OTLP {
		handle(r.Method+" "+r.Path, r.Handler)
	}
	for _, r := range h.UI {
		handle(strings.TrimSpace(r.Method+" "+r.Path), r.Handler)
	}
	if len(h.UI) == 0 {
		mux.HandleFunc("GET /{$}", index)
	}
	return mux
}

// AlertmanagerRoutes is the surface of the optional second port that serves
// only Alertmanager (":9093" in the manifests).
func AlertmanagerRoutes(h Handlers, in *Instrumentation) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/v2/", in.Wrap("alertmanager:/api/v2/", h.AlertmanagerAPI))
	mux.Handle("GET /-/healthy", in.Wrap("alertmanager:/-/healthy", h.Healthy))
	mux.Handle("GET /-/ready", in.Wrap("alertmanager:/-/ready", h.Ready))
	mux.Handle("POST /-/reload", in.Wrap("alertmanager:/-/reload", h.Reload))
	if h.Quit != nil {
		mux.Handle("POST /-/quit", in.Wrap("alertmanager:/-/quit", h.Quit))
	}
	if h.Metrics != nil {
		// Alertmanager serves its metrics on its own port; scrape configs
		// written for it keep working.
		mux.Handle("GET /metrics", in.Wrap("alertmanager:/metrics", h.Metrics))
	}
	return mux
}

// WithPrefix serves h under a route prefix (--web.route-prefix), as
// Prometheus does: every route moves below the prefix and "/" redirects to
// it. A prefix of "/" serves h unchanged.
func WithPrefix(prefix string, h http.Handler) http.Handler {
	prefix = "/" + strings.Trim(prefix, "/")
	if prefix == "/" {
		return h
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, prefix+"/", http.StatusFound)
	})
	mux.Handle(prefix+"/", http.StripPrefix(prefix, h))
	return mux
}

// index lists what answers here until the UI lands.
func index(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, `nxwatcher

  /api/v1/...        Prometheus HTTP API (query, query_range, series, labels, targets, status, ...)
  /api/v1/write      Prometheus remote write receiver (1.0 and 2.0)
  /api/v1/otlp/v1/metrics  OTLP metrics
  /loki/api/v1/...   Loki HTTP API (push, query, query_range, labels, series, tail, index/stats, index/volume,
                     detected_labels, detected_fields, detected_field/<name>/values, patterns)
  /otlp/v1/logs      OTLP logs, mapped as Loki 3 does
  /api/v2/...        Alertmanager API v2 (alerts, silences, status, receivers)
  /api/traces/<id> /api/v2/traces/<id> /api/search /api/metrics/query_range ...   Tempo HTTP API
  /v1/traces /v1/metrics /v1/logs                         OTLP/HTTP (also on the OTLP port)
  /metrics           nxwatcher's own metrics
  /api/ui/...        the web UI's login and helpers (the UI itself is at / when built in)
  /-/healthy /-/ready /-/reload /-/quit
`)
}
