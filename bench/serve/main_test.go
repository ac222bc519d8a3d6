package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/promslog"
	"go.uber.org/goleak"

	"github.com/nx-watcher/nxwatcher/bench/internal/benchproc"
	"github.com/nx-watcher/nxwatcher/internal/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestServeConfigsLoad: the configs the bench writes for each profile (the
// ConfigMap files with loopback listeners and the demo's jobs) still load
// with serve's own checker, so the bench does not rot when the manifests
// change.
func TestServeConfigsLoad(t *testing.T) {
	root, err := benchproc.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	ports := map[string]string{"web": "19090", "am": "19093", "ui": "13000", "grpc": "14317", "http": "14318"}
	scrape := "  - job_name: \"traefik\"\n    scrape_interval: 15s\n    scrape_timeout: 10s\n    static_configs:\n" +
		"      - targets: [\"127.0.0.1:18080\"]\n        labels:\n          __metrics_path__: \"/metrics\"\n          namespace: \"nx-internal\"\n"
	for _, profile := range []string{"default", "staging", "production"} {
		t.Run(profile, func(t *testing.T) {
			dir := t.TempDir()
			path, err := writeServeConfig(root, dir, profile, ports, scrape)
			if err != nil {
				t.Fatal(err)
			}
			kind, warnings, err := config.Check(path, promslog.NewNopLogger())
			if err != nil || kind != config.KindServe {
				t.Fatalf("check %s: %s %v", path, kind, err)
			}
			if len(warnings) > 0 {
				t.Errorf("warnings: %q", warnings)
			}
			cfg, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if profile != "default" {
				if strings.Contains(string(cfg), `":`) {
					t.Errorf("a listener is left on all interfaces:\n%s", cfg)
				}
				prom, err := os.ReadFile(filepath.Join(dir, "prometheus.yml"))
				if err != nil {
					t.Fatal(err)
				}
				// The ConfigMap's non-scrape settings are kept.
				if !strings.Contains(string(prom), "max_exemplars") {
					t.Errorf("prometheus.yml lost the ConfigMap's storage section:\n%s", prom)
				}
			}
		})
	}
}
