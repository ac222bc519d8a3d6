package promapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
	promconfig "github.com/prometheus/prometheus/config"

	"github.com/nx-watcher/nxwatcher/internal/metrics"
)

// TestAgentModeAnswersAsPrometheusAgent: with the agent storage the query
// endpoints refuse as `prometheus --agent` does, the status ones work.
func TestAgentModeAnswersAsPrometheusAgent(t *testing.T) {
	logger := promslog.NewNopLogger()
	reg := prometheus.NewRegistry()
	cfg := metrics.DefaultConfig()
	cfg.Mode = metrics.ModeAgent
	if err := cfg.Resolve(".", logger); err != nil {
		t.Fatal(err)
	}
	deps := metrics.Deps{Logger: logger, Registerer: reg}
	ag, err := metrics.OpenAgent(t.TempDir(), cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	defer ag.Close()
	h := New(Options{ListenAddress: "127.0.0.1:0", LookbackDelta: 5 * time.Minute, QueryTimeout: time.Minute}, Deps{
		Logger: logger, Registerer: reg, Gatherer: reg, Agent: ag,
		Targets: noTargets{}, Pools: noTargets{},
		Config:  func() promconfig.Config { return *cfg.Parsed },
		Runtime: func() (bool, time.Time) { return true, time.Now() },
		Ready:   func(h http.HandlerFunc) http.HandlerFunc { return h },
	})
	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{"/api/v1/query?query=up", http.StatusUnprocessableEntity, "unavailable with Prometheus Agent"},
		{"/api/v1/labels", http.StatusUnprocessableEntity, "unavailable with Prometheus Agent"},
		{"/api/v1/status/config", http.StatusOK, `"status":"success"`},
		{"/api/v1/targets", http.StatusOK, `"status":"success"`},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != tc.code || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: %d %s, want %d with %q", tc.path, rec.Code, body, tc.code, tc.want)
		}
	}
}
