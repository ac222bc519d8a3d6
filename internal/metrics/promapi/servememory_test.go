package promapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
	promconfig "github.com/prometheus/prometheus/config"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/nx-watcher/nxwatcher/internal/metrics"
)

// testDeps opens what New needs, for tests that call New themselves.
func testDeps(tb testing.TB) (Options, Deps) {
	tb.Helper()
	logger := promslog.NewNopLogger()
	reg := prometheus.NewRegistry()
	cfg := metrics.DefaultConfig()
	if err := cfg.Resolve(".", logger); err != nil {
		tb.Fatal(err)
	}
	mdeps := metrics.Deps{Logger: logger, Registerer: reg}
	db, err := metrics.OpenTSDB(tb.TempDir(), cfg, mdeps)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	engine, err := metrics.NewEngine(cfg.Query, tb.TempDir(), mdeps)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { engine.Close() })
	ext, _ := url.Parse("http://nx.example:9090/")
	opts := Options{ListenAddress: "127.0.0.1:0", ExternalURL: ext, RemoteWriteReceiver: true, OTLPReceiver: true,
		LookbackDelta: 5 * time.Minute, QueryTimeout: time.Minute, Version: v1.PrometheusVersion{Version: "3.9.1"}}
	deps := Deps{
		Logger: logger, Registerer: reg, Gatherer: reg, Engine: engine, DB: db,
		Targets: noTargets{}, Pools: noTargets{},
		Config:  func() promconfig.Config { return *cfg.Parsed },
		Runtime: func() (bool, time.Time) { return true, time.Now() },
		Ready:   func(h http.HandlerFunc) http.HandlerFunc { return h },
	}
	return opts, deps
}

// New does not build Prometheus's whole OpenAPI document: before ADR 0088
// it allocated ~38 MB for it at every start (80 % of serve's start-up
// allocations), which left the Go heap's pages resident at ready.
func TestNewDoesNotBuildOpenAPIDocument(t *testing.T) {
	opts, deps := testDeps(t)
	// Each New registers its metrics: a fresh registry each time.
	deps.Registerer = prometheus.NewRegistry()
	New(opts, deps) // warm: package-level lazies, the regexp cache
	deps.Registerer = prometheus.NewRegistry()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	New(opts, deps)
	runtime.ReadMemStats(&after)
	// v1.NewAPI still builds a document without paths (its components,
	// ~22 MB: it has no option to skip them); with every path it was
	// ~38 MB more.
	if got := after.TotalAlloc - before.TotalAlloc; got > 32<<20 {
		t.Errorf("New allocated %.1f MiB; want < 32 MiB (is the whole OpenAPI document built eagerly again?)", float64(got)/(1<<20))
	} else {
		t.Logf("New allocated %.1f MiB", float64(got)/(1<<20))
	}
}

// GET /api/v1/openapi.yaml answers what Prometheus's own builder, given
// the options v1.NewAPI used to get, answers: same status, headers and
// bytes, for both OpenAPI versions; other methods still get the router's
// answer, and the route still waits for Ready.
func TestOpenAPIAnswerIsUpstreams(t *testing.T) {
	opts, deps := testDeps(t)
	var instrumented []string
	deps.Instrument = func(name string, h http.HandlerFunc) http.HandlerFunc {
		instrumented = append(instrumented, name)
		return h
	}
	ready := false
	deps.Ready = func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !ready {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
			h(w, r)
		}
	}
	h := New(opts, deps)
	ref := v1.NewOpenAPIBuilder(v1.OpenAPIOptions{ExternalURL: "http://nx.example:9090/", Version: "3.9.1"}, promslog.NewNopLogger())

	get := func(handler http.HandlerFunc, method, target string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		handler(rec, httptest.NewRequest(method, target, nil))
		return rec
	}
	if rec := get(h.ServeHTTP, http.MethodGet, "/api/v1/openapi.yaml"); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("before ready: %d, want 503", rec.Code)
	}
	ready = true
	for _, q := range []string{"", "?openapi_version=3.2", "?openapi_version=3.1.0"} {
		got := get(h.ServeHTTP, http.MethodGet, "/api/v1/openapi.yaml"+q)
		want := get(ref.ServeOpenAPI, http.MethodGet, "/api/v1/openapi.yaml"+q)
		if got.Code != want.Code || got.Body.String() != want.Body.String() {
			t.Errorf("%q: %d, %d bytes; want %d, %d bytes", q, got.Code, got.Body.Len(), want.Code, want.Body.Len())
		}
		for _, k := range []string{"Content-Type", "Cache-Control"} {
			if got.Header().Get(k) != want.Header().Get(k) {
				t.Errorf("%q: %s %q, want %q", q, k, got.Header().Get(k), want.Header().Get(k))
			}
		}
		if !strings.Contains(got.Body.String(), "/query_range:") {
			t.Errorf("%q: document lacks /query_range", q)
		}
	}
	if rec := get(h.ServeHTTP, http.MethodPost, "/api/v1/openapi.yaml"); rec.Code != http.StatusMethodNotAllowed {
		b, _ := io.ReadAll(rec.Body)
		t.Errorf("POST: %d %s, want the router's 405", rec.Code, b)
	}
	found := false
	for _, n := range instrumented {
		found = found || n == "/api/v1/openapi.yaml"
	}
	if !found {
		t.Errorf("/api/v1/openapi.yaml not instrumented; instrumented: %v", instrumented)
	}
}
