package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func named(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(name)) }
}

func TestRoutesSendEachPathToItsRole(t *testing.T) {
	reg := prometheus.NewRegistry()
	in := NewInstrumentation(reg)
	h := Routes(Handlers{
		Healthy:         named("healthy"),
		Ready:           named("ready"),
		Reload:          named("reload"),
		Quit:            named("quit"),
		Metrics:         named("metrics"),
		PrometheusAPI:   named("prometheus"),
		AlertmanagerAPI: named("alertmanager"),
		Loki:            []Route{{Method: "GET", Path: "/loki/api/v1/query", Handler: named("loki")}},
		Tempo: []Route{
			{Method: "GET", Path: "/api/v2/traces/{id}", Handler: named("tempo-v2")},
			{Method: "GET", Path: "/api/v2/search/tags", Handler: named("tempo-tags")},
		},
		OTLP: []Route{{Method: "POST", Path: "/v1/traces", Handler: named("otlp")}},
	}, in)
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/-/healthy", "healthy"},
		{"GET", "/-/ready", "ready"},
		{"GET", "/ready", "ready"},
		{"POST", "/-/reload", "reload"},
		{"PUT", "/-/quit", "quit"},
		{"GET", "/metrics", "metrics"},
		{"GET", "/api/v1/query", "prometheus"},
		{"POST", "/api/v1/write", "prometheus"},
		{"GET", "/api/v2/alerts", "alertmanager"},
		{"POST", "/api/v2/silences", "alertmanager"},
		{"GET", "/api/v2/traces/abc", "tempo-v2"},
		{"GET", "/api/v2/search/tags", "tempo-tags"},
		{"GET", "/loki/api/v1/query", "loki"},
		{"POST", "/v1/traces", "otlp"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != 200 || rec.Body.String() != tc.want {
			t.Errorf("%s %s -> %d %q, want %q", tc.method, tc.path, rec.Code, rec.Body.String(), tc.want)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/-/reload", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload = %d, want 405", rec.Code)
	}
	if got := testutil.ToFloat64(in.requests.WithLabelValues("/loki/api/v1/query", "200")); got != 1 {
		t.Errorf("loki query counted %v times, want 1", got)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if !strings.Contains(rec.Body.String(), "/api/v1/") {
		t.Errorf("index page = %q", rec.Body.String())
	}
}

func TestAlertmanagerPortServesAPIAndMetrics(t *testing.T) {
	in := NewInstrumentation(prometheus.NewRegistry())
	h := AlertmanagerRoutes(Handlers{
		Healthy: named("healthy"), Ready: named("ready"), Reload: named("reload"),
		Metrics: named("metrics"), AlertmanagerAPI: named("alertmanager"),
	}, in)
	for path, want := range map[string]string{"/metrics": "metrics", "/api/v2/status": "alertmanager", "/-/healthy": "healthy"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 || rec.Body.String() != want {
			t.Errorf("GET %s on the Alertmanager port -> %d %q, want %q", path, rec.Code, rec.Body.String(), want)
		}
	}
}

func TestWithPrefixMovesEveryRouteBelowThePrefix(t *testing.T) {
	h := WithPrefix("/nx/", Routes(Handlers{Ready: named("ready"), PrometheusAPI: named("prometheus")}, NewInstrumentation(prometheus.NewRegistry())))
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/nx/-/ready", 200, "ready"},
		{"/nx/api/v1/query", 200, "prometheus"},
		{"/-/ready", 404, ""},
		{"/", 302, ""},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
		if rec.Code != tc.code || (tc.body != "" && rec.Body.String() != tc.body) {
			t.Errorf("GET %s -> %d %q, want %d %q", tc.path, rec.Code, rec.Body.String(), tc.code, tc.body)
		}
	}
	if loc := func() string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		return rec.Header().Get("Location")
	}(); loc != "/nx/" {
		t.Errorf("redirect of / = %q, want /nx/", loc)
	}
	if WithPrefix("/", named("x")) == nil {
		t.Fatal("root prefix must serve the handler")
	}
}
