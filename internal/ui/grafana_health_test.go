package ui

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
	"github.com/nx-watcher/nxwatcher/internal/logs/lokiapi"
	"github.com/nx-watcher/nxwatcher/internal/metrics"
	"github.com/nx-watcher/nxwatcher/internal/metrics/promapi"
	"github.com/nx-watcher/nxwatcher/internal/traces/tempoapi"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore"
)

// TestGrafanaHealthChecksAnswer sends the requests of Grafana 11.5's "Save &
// test" for each provisioned data source to the real APIs over empty stores
// and checks the answers Grafana accepts: Prometheus `1+1` is the scalar 2,
// Loki `vector(1)+vector(1)` at time=4000000000 (read as seconds) is a
// one-sample vector of 2, Tempo's /api/echo is 200 "echo".
func TestGrafanaHealthChecksAnswer(t *testing.T) {
	logger := promslog.NewNopLogger()
	mux := http.NewServeMux()

	// Prometheus.
	mcfg := metrics.DefaultConfig()
	if err := mcfg.Resolve(".", logger); err != nil {
		t.Fatal(err)
	}
	mreg := prometheus.NewRegistry()
	mdeps := metrics.Deps{Logger: logger, Registerer: mreg}
	tsdb, err := metrics.OpenTSDB(t.TempDir(), mcfg, mdeps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tsdb.Close() })
	engine, err := metrics.NewEngine(mcfg.Query, t.TempDir(), mdeps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Close() })
	mux.Handle("/api/v1/", promapi.New(promapi.Options{ListenAddress: "127.0.0.1:0", LookbackDelta: 5 * time.Minute, QueryTimeout: time.Minute}, promapi.Deps{
		Logger: logger, Registerer: mreg, Gatherer: mreg, Engine: engine, DB: tsdb,
		Runtime: func() (bool, time.Time) { return true, time.Now() },
		Ready:   func(h http.HandlerFunc) http.HandlerFunc { return h },
	}))

	// Loki.
	lcfg := lokiapi.DefaultConfig()
	ldb, err := logstore.Open(t.TempDir(), lcfg.StoreOptions(), logstore.Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ldb.Close() })
	loki, err := lokiapi.New(lcfg, lokiapi.Deps{Store: ldb, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { loki.Close() })
	for _, r := range loki.Routes() {
		mux.Handle(r.Method+" "+r.Path, r.Handler)
	}

	// Tempo.
	tdb, err := tracestore.Open(t.TempDir(), tracestore.DefaultConfig().Options(), tracestore.Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tdb.Close() })
	tempo, err := tempoapi.New(tempoapi.DefaultConfig(), tempoapi.Deps{Store: tdb, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range tempo.Routes() {
		if r.Path != "/ready" { // Loki's answers it on the main listener
			mux.Handle(r.Method+" "+r.Path, r.Handler)
		}
	}

	get := func(target string) (int, string) {
		t.Helper()
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	type apiResp struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}

	code, body := get("/api/v1/query?query=1%2B1&time=4000000000")
	var pr apiResp
	if err := json.Unmarshal([]byte(body), &pr); code != 200 || err != nil || pr.Data.ResultType != "scalar" || !strings.HasSuffix(string(pr.Data.Result), `,"2"]`) {
		t.Errorf("Prometheus health check: %d %s", code, body)
	}
	if code, body := get("/api/v1/status/buildinfo"); code != 200 || !strings.Contains(body, `"version"`) {
		t.Errorf("Prometheus buildinfo: %d %s", code, body)
	}

	code, body = get("/loki/api/v1/query?direction=backward&query=vector%281%29%2Bvector%281%29&time=4000000000")
	var lr apiResp
	var vec []struct {
		Value [2]any `json:"value"`
	}
	if err := json.Unmarshal([]byte(body), &lr); code != 200 || err != nil || lr.Data.ResultType != "vector" {
		t.Errorf("Loki health check: %d %s", code, body)
	} else if err := json.Unmarshal(lr.Data.Result, &vec); err != nil || len(vec) != 1 || vec[0].Value[1] != "2" || vec[0].Value[0] != 4e9 {
		t.Errorf("Loki health check result: %s", lr.Data.Result)
	}

	if code, body := get("/api/echo"); code != 200 || strings.TrimSpace(body) != "echo" {
		t.Errorf("Tempo health check: %d %q", code, body)
	}
}
