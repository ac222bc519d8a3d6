package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/nx-watcher/nxwatcher/internal/config"
)

// testServer is an in-process `nxwatcher serve` on 127.0.0.1:0.
type testServer struct {
	app        *App
	url        string
	configFile string
	dataDir    string
	cancel     context.CancelFunc
	done       chan error
}

// startServer runs serve with the given config text ("" = embedded default).
func startServer(t *testing.T, configText string) *testServer {
	t.Helper()
	return startServerWith(t, configText, nil)
}

// startServerWith is startServer with edited Options; ts.url includes the
// route prefix the options resolve to.
func startServerWith(t *testing.T, configText string, edit func(*Options)) *testServer {
	t.Helper()
	dir := t.TempDir()
	ts := &testServer{dataDir: filepath.Join(dir, "data")}
	if configText != "" {
		ts.configFile = filepath.Join(dir, "serve.yml")
		writeConfig(t, ts.configFile, configText)
	}
	opts := Options{
		ConfigFile:    ts.configFile,
		StoragePath:   ts.dataDir,
		ListenAddress: "127.0.0.1:0",
		// Most tests reload over HTTP; TestLifecycleAPIOffByDefault turns it off.
		EnableLifecycle: true,
		Flags:           map[string]string{"storage.path": ts.dataDir},
	}
	if edit != nil {
		edit(&opts)
	}
	a, err := New(opts, Deps{Logger: promslog.NewNopLogger(), AdjustConfig: loopbackOTLP})
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	ts.app = a
	ts.url = "http://" + a.Addr().String() + strings.TrimSuffix(a.routePrefix, "/")
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	ts.done = make(chan error, 1)
	go func() { ts.done <- a.Run(ctx) }()
	t.Cleanup(func() { ts.stop(t) })
	waitFor(t, 10*time.Second, "ready", func() bool {
		resp, err := http.Get(ts.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return ts
}

// loopbackOTLP moves the OTLP listeners off the fixed 4317/4318.
func loopbackOTLP(c *config.Config) {
	c.OTLP.GRPCEndpoint = "127.0.0.1:0"
	c.OTLP.HTTPEndpoint = "127.0.0.1:0"
}

func (ts *testServer) stop(t *testing.T) {
	if ts.cancel == nil {
		return
	}
	ts.cancel()
	ts.cancel = nil
	if err := <-ts.done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
	if err := ts.app.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func writeConfig(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (ts *testServer) promAPI(t *testing.T) promv1.API {
	t.Helper()
	c, err := api.NewClient(api.Config{Address: ts.url})
	if err != nil {
		t.Fatal(err)
	}
	return promv1.NewAPI(c)
}

func (ts *testServer) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(ts.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (ts *testServer) post(t *testing.T, path, contentType string, body io.Reader, headers map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue reads one sample of our own /metrics, -1 when absent.
func (ts *testServer) metricValue(t *testing.T, series string) float64 {
	t.Helper()
	_, body := ts.get(t, "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, series+" ") {
			var v float64
			if _, err := fmt.Sscanf(strings.TrimPrefix(line, series+" "), "%g", &v); err == nil {
				return v
			}
		}
	}
	return -1
}

func remoteWriter(t *testing.T, url string) *remoteapi.API {
	t.Helper()
	w, err := remoteapi.NewAPI(url, remoteapi.WithAPIBackoff(remoteapi.BackoffConfig{Min: time.Millisecond, Max: time.Millisecond, MaxRetries: 1}))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// writeV1 sends one series with the given samples via remote write 1.0.
func writeV1(t *testing.T, w *remoteapi.API, name string, lbls map[string]string, samples ...prompb.Sample) error {
	t.Helper()
	ls := []prompb.Label{{Name: "__name__", Value: name}}
	for k, v := range lbls {
		ls = append(ls, prompb.Label{Name: k, Value: v})
	}
	_, err := w.Write(t.Context(), remoteapi.WriteV1MessageType, &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{{Labels: ls, Samples: samples}},
	})
	return err
}

func TestDefaultConfigScrapesItselfAndAnswersTheAPI(t *testing.T) {
	ts := startServer(t, "")
	papi := ts.promAPI(t)
	ctx := t.Context()

	waitFor(t, 30*time.Second, "self scrape", func() bool {
		v, _, _, err := papi.Query(ctx, `up{job="nxwatcher"}`, time.Now())
		if err != nil {
			return false
		}
		vec, ok := v.(model.Vector)
		return ok && len(vec) == 1 && vec[0].Value == 1
	})

	// Self-monitoring families the issue asks for, on the served scrape.
	for _, q := range []string{
		`go_goroutines{job="nxwatcher"}`,
		`process_resident_memory_bytes{job="nxwatcher"}`,
		`prometheus_tsdb_head_series{job="nxwatcher"}`,
		`prometheus_target_scrape_pool_targets{job="nxwatcher"}`,
		`nxwatcher_config_last_reload_successful{job="nxwatcher"}`,
		`nxwatcher_http_requests_total{job="nxwatcher"}`,
		`nxwatcher_build_info{job="nxwatcher"}`,
	} {
		v, _, _, err := papi.Query(ctx, q, time.Now())
		if err != nil {
			t.Fatalf("query %s: %v", q, err)
		}
		if len(v.(model.Vector)) == 0 {
			t.Errorf("query %s: empty; the family is not on /metrics", q)
		}
	}

	targets, err := papi.Targets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(targets.Active) != 1 || targets.Active[0].Health != promv1.HealthGood {
		t.Fatalf("targets = %+v, want one healthy self target", targets.Active)
	}
	bi, err := papi.Buildinfo(ctx)
	if err != nil || bi.Version == "" {
		t.Fatalf("buildinfo = %+v, %v", bi, err)
	}
	rt, err := papi.Runtimeinfo(ctx)
	if err != nil || !rt.ReloadConfigSuccess {
		t.Fatalf("runtimeinfo = %+v, %v", rt, err)
	}
	flags, err := papi.Flags(ctx)
	if err != nil || flags["storage.path"] != ts.dataDir {
		t.Fatalf("flags = %v, %v", flags, err)
	}
	cfg, err := papi.Config(ctx)
	if err != nil || !strings.Contains(cfg.YAML, "job_name: nxwatcher") {
		t.Fatalf("config = %q, %v", cfg.YAML, err)
	}
	tsdbStatus, err := papi.TSDB(ctx)
	if err != nil || tsdbStatus.HeadStats.NumSeries == 0 {
		t.Fatalf("status/tsdb = %+v, %v", tsdbStatus, err)
	}
	meta, err := papi.Metadata(ctx, "go_goroutines", "")
	if err != nil || len(meta["go_goroutines"]) == 0 {
		t.Fatalf("metadata = %v, %v", meta, err)
	}
	names, _, _, err := papi.LabelNames(ctx, nil, time.Now().Add(-time.Hour), time.Now())
	if err != nil || !containsLabel(names, "job") {
		t.Fatalf("labels = %v, %v", names, err)
	}
	jobs, _, _, err := papi.LabelValues(ctx, "job", nil, time.Now().Add(-time.Hour), time.Now())
	if err != nil || len(jobs) != 1 || jobs[0] != model.LabelValue("nxwatcher") {
		t.Fatalf("label values = %v, %v", jobs, err)
	}
	series, _, _, err := papi.Series(ctx, []string{`up`}, time.Now().Add(-time.Hour), time.Now())
	if err != nil || len(series) != 1 {
		t.Fatalf("series = %v, %v", series, err)
	}
	code, body := ts.get(t, "/api/v1/format_query?query=sum(rate(x[5m]))by(job)")
	if code != 200 || !strings.Contains(body, `sum by (job) (rate(x[5m]))`) {
		t.Fatalf("format_query = %d %s", code, body)
	}
}

func containsLabel(list model.LabelNames, s string) bool {
	for _, x := range list {
		if string(x) == s {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestRemoteWriteThenQuery(t *testing.T) {
	ts := startServer(t, "metrics:\n  prometheus:\n    global: {scrape_interval: 1h}\n")
	papi := ts.promAPI(t)
	w := remoteWriter(t, ts.url)
	now := time.Now().Truncate(time.Second)

	// 1.0: a counter with 11 samples, 10s apart.
	var samples []prompb.Sample
	for i := range 11 {
		samples = append(samples, prompb.Sample{Timestamp: now.Add(time.Duration(i-10) * 10 * time.Second).UnixMilli(), Value: float64(i * 10)})
	}
	if err := writeV1(t, w, "rw_v1_total", map[string]string{"job": "rw"}, samples...); err != nil {
		t.Fatalf("remote write 1.0: %v", err)
	}

	// 2.0: a gauge with an exemplar, symbols table and all.
	stats, err := w.Write(t.Context(), remoteapi.WriteV2MessageType, &writev2.Request{
		Symbols: []string{"", "__name__", "rw_v2_gauge", "job", "rw", "trace_id", "abc123"},
		Timeseries: []writev2.TimeSeries{{
			LabelsRefs: []uint32{1, 2, 3, 4},
			Samples:    []writev2.Sample{{Value: 42, Timestamp: now.UnixMilli()}},
			Exemplars:  []writev2.Exemplar{{LabelsRefs: []uint32{5, 6}, Value: 42, Timestamp: now.UnixMilli()}},
			Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE},
		}},
	})
	if err != nil {
		t.Fatalf("remote write 2.0: %v", err)
	}
	if stats.Samples != 1 || stats.Exemplars != 1 {
		t.Fatalf("remote write 2.0 stats = %+v, want 1 sample and 1 exemplar", stats)
	}

	v, _, _, err := papi.Query(t.Context(), `rw_v2_gauge`, now)
	if err != nil || len(v.(model.Vector)) != 1 || v.(model.Vector)[0].Value != 42 {
		t.Fatalf("query rw_v2_gauge = %v, %v", v, err)
	}
	v, _, _, err = papi.Query(t.Context(), `increase(rw_v1_total[2m])`, now)
	if err != nil || len(v.(model.Vector)) != 1 || v.(model.Vector)[0].Value != 100 {
		t.Fatalf("increase(rw_v1_total[2m]) = %v, %v; want 100", v, err)
	}
	m, _, _, err := papi.QueryRange(t.Context(), `rw_v1_total`, promv1.Range{Start: now.Add(-100 * time.Second), End: now, Step: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if mat := m.(model.Matrix); len(mat) != 1 || len(mat[0].Values) != 11 {
		t.Fatalf("query_range = %v, want 11 points", m)
	}
	ex, err := papi.QueryExemplars(t.Context(), `rw_v2_gauge`, now.Add(-time.Minute), now.Add(time.Minute))
	if err != nil || len(ex) != 1 || len(ex[0].Exemplars) != 1 || ex[0].Exemplars[0].Labels["trace_id"] != "abc123" {
		t.Fatalf("query_exemplars = %+v, %v", ex, err)
	}
}

func TestOTLPMetricsEndpoint(t *testing.T) {
	ts := startServer(t, "metrics:\n  prometheus:\n    global: {scrape_interval: 1h}\n")
	now := time.Now().UnixNano()
	body := fmt.Sprintf(`{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},
	  "scopeMetrics":[{"metrics":[{"name":"queue.depth","gauge":{"dataPoints":[{"asInt":"7","timeUnixNano":"%d"}]}}]}]}]}`, now)
	code, resp := ts.post(t, "/api/v1/otlp/v1/metrics", "application/json", strings.NewReader(body), nil)
	if code != http.StatusOK {
		t.Fatalf("OTLP JSON = %d %s", code, resp)
	}
	v, _, _, err := ts.promAPI(t).Query(t.Context(), `queue_depth{job="checkout"}`, time.Now())
	if err != nil || len(v.(model.Vector)) != 1 || v.(model.Vector)[0].Value != 7 {
		t.Fatalf("query OTLP gauge = %v, %v", v, err)
	}
}

func TestReadyOnlyAfterFirstConfig(t *testing.T) {
	a, err := New(Options{StoragePath: t.TempDir(), ListenAddress: "127.0.0.1:0"}, Deps{Logger: promslog.NewNopLogger(), AdjustConfig: loopbackOTLP})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, h := range []http.HandlerFunc{a.serveReady, a.readyOnly(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })} {
		rec := httptest.NewRecorder()
		h(rec, httptest.NewRequest(http.MethodGet, "/-/ready", nil))
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("before the first config: %d, want 503", rec.Code)
		}
	}
	if err := a.apply(a.current.Load()); err != nil {
		t.Fatal(err)
	}
	a.ready.Store(true) // what Run does after the first apply
	rec := httptest.NewRecorder()
	a.serveReady(rec, httptest.NewRequest(http.MethodGet, "/-/ready", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("after the first config: %d, want 200", rec.Code)
	}
}

func TestReloadGoodAndBadConfig(t *testing.T) {
	first := "metrics:\n  prometheus:\n    global: {scrape_interval: 1h}\n    scrape_configs:\n      - job_name: one\n        static_configs: [{targets: ['127.0.0.1:1']}]\n"
	ts := startServer(t, first)
	papi := ts.promAPI(t)
	pools := func() []string {
		tg, err := papi.Targets(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, a := range tg.Active {
			out = append(out, a.ScrapePool)
		}
		return out
	}
	waitFor(t, 10*time.Second, "job one", func() bool { return contains(pools(), "one") })

	// Good config: job two replaces job one.
	writeConfig(t, ts.configFile, strings.ReplaceAll(first, "job_name: one", "job_name: two"))
	if code, body := ts.post(t, "/-/reload", "", nil, nil); code != http.StatusOK {
		t.Fatalf("reload good config = %d %s", code, body)
	}
	waitFor(t, 10*time.Second, "job two", func() bool { p := pools(); return contains(p, "two") && !contains(p, "one") })
	if v := ts.metricValue(t, "nxwatcher_config_last_reload_successful"); v != 1 {
		t.Fatalf("last_reload_successful = %v after a good reload", v)
	}

	// Bad config: rejected with upstream's error; job two keeps running.
	writeConfig(t, ts.configFile, first+"    unknown_key: true\n")
	code, body := ts.post(t, "/-/reload", "", nil, nil)
	if code != http.StatusInternalServerError || !strings.Contains(body, "failed to reload config") || !strings.Contains(body, "unknown_key") {
		t.Fatalf("reload bad config = %d %q, want 500 naming unknown_key", code, body)
	}
	if v := ts.metricValue(t, "nxwatcher_config_last_reload_successful"); v != 0 {
		t.Fatalf("last_reload_successful = %v after a bad reload, want 0", v)
	}
	if p := pools(); !contains(p, "two") {
		t.Fatalf("pools after a rejected reload = %v, want two still running", p)
	}
	if v := ts.metricValue(t, `nxwatcher_config_reloads_total{result="failure"}`); v != 1 {
		t.Fatalf("reloads_total failure = %v, want 1", v)
	}
}

// TestBeforeReadyRunsBeforeReady: the BeforeReady hook runs once the
// first config is in force, and /-/ready stays 503 (FirstApplied open)
// until it returns.
func TestBeforeReadyRunsBeforeReady(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	ts := &testServer{dataDir: filepath.Join(t.TempDir(), "data")}
	a, err := New(Options{StoragePath: ts.dataDir, ListenAddress: "127.0.0.1:0", BeforeReady: func() {
		if calls.Add(1) == 1 {
			close(entered)
		}
		<-release
	}}, Deps{Logger: promslog.NewNopLogger(), AdjustConfig: loopbackOTLP})
	if err != nil {
		t.Fatal(err)
	}
	ts.app, ts.url = a, "http://"+a.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel, ts.done = cancel, make(chan error, 1)
	go func() { ts.done <- a.Run(ctx) }()
	t.Cleanup(func() { ts.stop(t) })
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		close(release)
		t.Fatal("BeforeReady never ran")
	}
	if code, _ := ts.get(t, "/-/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("/-/ready while BeforeReady runs: %d, want 503", code)
	}
	select {
	case <-a.FirstApplied():
		t.Error("FirstApplied closed while BeforeReady runs")
	default:
	}
	close(release)
	waitFor(t, 10*time.Second, "ready", func() bool { code, _ := ts.get(t, "/-/ready"); return code == http.StatusOK })
	if n := calls.Load(); n != 1 {
		t.Errorf("BeforeReady ran %d times, want once", n)
	}
}
