package app

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"

	"github.com/nx-watcher/nxwatcher/internal/testbin"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startNodeExporter(t *testing.T) string {
	t.Helper()
	bin := testbin.Require(t, "prometheus-node-exporter", "prometheus-node-exporter")
	addr := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--web.listen-address="+addr, "--collector.disable-defaults", "--collector.cpu", "--collector.meminfo", "--collector.loadavg")
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	waitFor(t, 10*time.Second, "node exporter", func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return addr
}

func TestScrapesRealNodeExporterWithRelabelling(t *testing.T) {
	addr := startNodeExporter(t)
	ts := startServer(t, fmt.Sprintf(`metrics:
  prometheus:
    global: {scrape_interval: 1s, scrape_timeout: 1s}
    scrape_configs:
      - job_name: node
        honor_labels: false
        scheme: http
        metrics_path: /metrics
        static_configs: [{targets: ['%s'], labels: {pool: default}}]
        relabel_configs:
          - target_label: env
            replacement: test
        metric_relabel_configs:
          - source_labels: [__name__]
            regex: node_scrape_collector_.*
            action: drop
`, addr))
	papi := ts.promAPI(t)
	waitFor(t, 20*time.Second, "node exporter scraped", func() bool {
		return seriesCountNoFail(papi, `node_load1{job="node",env="test",pool="default"}`) == 1
	})
	if n := seriesCountNoFail(papi, `node_cpu_seconds_total{job="node"}`); n == 0 {
		t.Fatal("no node_cpu_seconds_total from the node exporter")
	}
	if n := seriesCountNoFail(papi, `{__name__=~"node_scrape_collector_.*"}`); n != 0 {
		t.Fatalf("metric_relabel_configs drop ignored: %d series", n)
	}
	if n := seriesCountNoFail(papi, `scrape_samples_scraped{job="node"}`); n != 1 {
		t.Fatal("scrape_samples_scraped missing for the node job")
	}
	meta, err := papi.TargetsMetadata(t.Context(), `{job="node"}`, "node_load1", "1")
	if err != nil || len(meta) != 1 || meta[0].Type != "gauge" {
		t.Fatalf("targets/metadata = %+v, %v", meta, err)
	}
}

func seriesCountNoFail(papi promv1.API, q string) int {
	v, _, _, err := papi.Query(context.Background(), q, time.Now())
	if err != nil {
		return -1
	}
	return len(v.(model.Vector))
}

func TestFileSDFollowsTheFile(t *testing.T) {
	dir := t.TempDir()
	targets := filepath.Join(dir, "targets.json")
	writeConfig(t, targets, `[{"targets": ["127.0.0.1:1"], "labels": {"team": "a"}}]`)
	ts := startServer(t, fmt.Sprintf("metrics:\n  prometheus:\n    global: {scrape_interval: 1h}\n    scrape_configs:\n      - job_name: files\n        file_sd_configs: [{files: ['%s'], refresh_interval: 1s}]\n", targets))
	papi := ts.promAPI(t)
	activeTeam := func() string {
		tg, err := papi.Targets(t.Context())
		if err != nil || len(tg.Active) != 1 {
			return ""
		}
		return string(tg.Active[0].Labels["team"])
	}
	waitFor(t, 10*time.Second, "file target a", func() bool { return activeTeam() == "a" })
	writeConfig(t, targets, `[{"targets": ["127.0.0.1:1"], "labels": {"team": "b"}}]`)
	waitFor(t, 15*time.Second, "file target b", func() bool { return activeTeam() == "b" })
}

// TestSeedConfigWithoutKubernetes runs the design doc's prometheus.yml on a
// machine with no Kubernetes API: serve starts, the kubernetes discovery
// error shows in /api/v1/targets, and unresolvable static targets are down.
func TestSeedConfigWithoutKubernetes(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	seed, err := os.ReadFile("../config/testdata/seed-serve.yml")
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, string(seed))
	papi := ts.promAPI(t)

	byPool := func() map[string][]promv1.ActiveTarget {
		tg, err := papi.Targets(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]promv1.ActiveTarget{}
		for _, a := range tg.Active {
			out[a.ScrapePool] = append(out[a.ScrapePool], a)
		}
		return out
	}
	waitFor(t, 15*time.Second, "kubernetes discovery error in targets", func() bool {
		b := byPool()["nx-backend"]
		return len(b) == 1 && b[0].Health == promv1.HealthBad && strings.Contains(b[0].LastError, "kubernetes")
	})
	if got := byPool()["nx-backend"][0].LastError; !strings.Contains(got, "in-cluster") {
		t.Errorf("nx-backend error = %q, want the in-cluster config error", got)
	}
	// Static targets resolve nowhere here; each is scraped once within 15s and shows down.
	waitFor(t, 40*time.Second, "static seed targets down", func() bool {
		pools := byPool()
		for _, job := range []string{"traefik", "postgresql", "redis", "kafka"} {
			for _, a := range pools[job] {
				if a.Health != promv1.HealthBad || a.LastError == "" {
					return false
				}
			}
			if len(pools[job]) == 0 {
				return false
			}
		}
		return len(pools["kafka"]) == 3
	})
	if code, _ := ts.get(t, "/-/healthy"); code != http.StatusOK {
		t.Fatal("not healthy with the seed config")
	}
}

// TestScrapeHonorLabelsNativeHistogramsExemplars scrapes a client_golang
// target that exposes a job label, a native histogram and an exemplar.
func TestScrapeHonorLabelsNativeHistogramsExemplars(t *testing.T) {
	reg := prometheus.NewRegistry()
	jobbed := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "exported_thing", Help: "h"}, []string{"job"})
	jobbed.WithLabelValues("from-target").Set(3)
	hist := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "request_seconds", Help: "h",
		NativeHistogramBucketFactor: 1.1, NativeHistogramMaxBucketNumber: 100,
	})
	for _, v := range []float64{0.1, 0.2, 0.4, 0.8} {
		hist.(prometheus.ExemplarObserver).ObserveWithExemplar(v, prometheus.Labels{"trace_id": "feedbeef"})
	}
	reg.MustRegister(jobbed, hist)
	target := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	defer target.Close()
	addr := strings.TrimPrefix(target.URL, "http://")

	ts := startServer(t, fmt.Sprintf(`metrics:
  prometheus:
    global: {scrape_interval: 1s, scrape_timeout: 1s}
    scrape_configs:
      - job_name: honored
        honor_labels: true
        scrape_native_histograms: true
        static_configs: [{targets: ['%[1]s']}]
      - job_name: plain
        static_configs: [{targets: ['%[1]s']}]
`, addr))
	papi := ts.promAPI(t)
	waitFor(t, 20*time.Second, "both jobs scraped", func() bool {
		return seriesCountNoFail(papi, `up == 1`) == 2
	})
	// honor_labels keeps the target's job; without it the target's label is renamed.
	if n := seriesCountNoFail(papi, `exported_thing{job="from-target"}`); n != 1 {
		t.Errorf("honor_labels: target job kept in %d series, want 1", n)
	}
	if n := seriesCountNoFail(papi, `exported_thing{job="plain",exported_job="from-target"}`); n != 1 {
		t.Errorf("without honor_labels: exported_job series = %d, want 1", n)
	}
	// The native histogram arrives whole (one series, no _bucket) where asked for.
	v, _, _, err := papi.Query(t.Context(), `histogram_count(request_seconds{job="honored"})`, time.Now())
	if err != nil || len(v.(model.Vector)) != 1 || v.(model.Vector)[0].Value != 4 {
		t.Fatalf("histogram_count of the native histogram = %v, %v; want 4", v, err)
	}
	ex, err := papi.QueryExemplars(t.Context(), `request_seconds_bucket{job="plain"}`, time.Now().Add(-time.Minute), time.Now().Add(time.Minute))
	if err != nil || len(ex) == 0 || ex[0].Exemplars[0].Labels["trace_id"] != "feedbeef" {
		t.Fatalf("exemplars of the classic histogram = %+v, %v", ex, err)
	}
}
