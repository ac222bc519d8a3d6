package agent

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/discovery/kubernetes"
)

func TestDesignDocConfigLoadsUnchanged(t *testing.T) {
	cfg, err := LoadFile("../../deploy/agent/promtail.yaml", false)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.HTTPListenPort != 9080 || cfg.Positions.Filename != "/tmp/positions.yaml" {
		t.Fatalf("server/positions: %+v %+v", cfg.Server, cfg.Positions)
	}
	if len(cfg.Clients) != 1 || cfg.Clients[0].URL != "http://nx-loki.nx-watcher.svc.cluster.local:3100/loki/api/v1/push" {
		t.Fatalf("clients: %+v", cfg.Clients)
	}
	c := cfg.Clients[0]
	if time.Duration(c.BatchWait) != time.Second || c.BatchSize != 1<<20 || c.Backoff.MaxRetries != 10 {
		t.Fatalf("client defaults: %+v", c)
	}
	if len(cfg.ScrapeConfigs) != 1 {
		t.Fatal("scrape configs")
	}
	sc := cfg.ScrapeConfigs[0]
	if sc.JobName != "kubernetes-pods" || len(sc.RelabelConfigs) != 3 || len(sc.PipelineStages) != 1 || sc.PipelineStages[0].Docker == nil {
		t.Fatalf("scrape config: %+v", sc)
	}
	if len(sc.ServiceDiscoveryConfigs) != 1 {
		t.Fatalf("sd configs: %v", sc.ServiceDiscoveryConfigs)
	}
	k, ok := sc.ServiceDiscoveryConfigs[0].(*kubernetes.SDConfig)
	if !ok || k.Role != kubernetes.RolePod {
		t.Fatalf("sd config: %#v", sc.ServiceDiscoveryConfigs[0])
	}
}

func TestConfigStrict(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown top key", "clients: [{url: http://x/loki/api/v1/push}]\nfoo: 1\n", "line 2: field foo not found"},
		{"unknown client key", "clients:\n  - url: http://x/\n    batchwaitt: 1s\n", "line 3: field batchwaitt not found"},
		{"unknown stage", "clients: [{url: http://x/}]\nscrape_configs:\n  - job_name: a\n    pipeline_stages:\n      - dockr: {}\n", "field dockr not found"},
		{"unknown stage key", "clients: [{url: http://x/}]\nscrape_configs:\n  - job_name: a\n    pipeline_stages:\n      - regex:\n          expresion: x\n", "line 6: field expresion not found"},
		{"unknown sd", "clients: [{url: http://x/}]\nscrape_configs:\n  - job_name: a\n    consul_sd_configs: []\n", "consul_sd_configs not found"},
		{"no clients", "server: {http_listen_port: 1}\n", "at least one client"},
		{"bad url", "clients: [{url: nothing}]\n", "not an absolute URL"},
		{"bad regex", "clients: [{url: http://x/}]\nscrape_configs:\n  - job_name: a\n    pipeline_stages:\n      - regex: {expression: '('}\n", "regex"},
		{"two keys in a stage", "clients: [{url: http://x/}]\nscrape_configs:\n  - job_name: a\n    pipeline_stages:\n      - {docker: {}, cri: {}}\n", "exactly one key"},
		{"duplicate job", "clients: [{url: http://x/}]\nscrape_configs:\n  - job_name: a\n  - job_name: a\n", "appears twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), false)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestConfigFull(t *testing.T) {
	t.Setenv("NXW_TEST_TENANT", "team-a")
	y := `
server:
  http_listen_address: 127.0.0.1
  http_listen_port: 9080
  grpc_listen_port: 0
positions:
  filename: /tmp/p.yaml
  sync_period: 5s
  ignore_invalid_yaml: true
clients:
  - url: http://loki:3100/loki/api/v1/push
    batchwait: 2s
    batchsize: 524288
    backoff_config: {min_period: 1s, max_period: 1m, max_retries: 3}
    timeout: 5s
    tenant_id: ${NXW_TEST_TENANT}
    external_labels: {cluster: c1}
    basic_auth: {username: u, password: p}
    tls_config: {insecure_skip_verify: true}
    drop_rate_limited_batches: true
limits_config:
  readline_rate_enabled: true
  readline_rate: 1000
  readline_burst: 2000
  max_streams: 100
target_config:
  sync_period: 3s
scrape_configs:
  - job_name: static
    static_configs:
      - targets: [localhost]
        labels: {job: varlogs, __path__: /var/log/*.log}
  - job_name: files
    file_sd_configs:
      - files: [/etc/targets/*.yaml]
`
	cfg, err := Parse([]byte(y), true)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Clients[0]
	if c.TenantID != "team-a" || c.BatchSize != 524288 || c.Backoff.MaxRetries != 3 || c.ExternalLabels["cluster"] != "c1" || c.HTTPClientConfig.BasicAuth == nil {
		t.Fatalf("client: %+v", c)
	}
	if time.Duration(cfg.TargetConfig.SyncPeriod) != 3*time.Second || !cfg.Positions.IgnoreInvalidYAML || cfg.Limits.ReadlineBurst != 2000 {
		t.Fatalf("%+v", cfg)
	}
	if len(cfg.ScrapeConfigs[0].ServiceDiscoveryConfigs) != 1 || len(cfg.ScrapeConfigs[1].ServiceDiscoveryConfigs) != 1 {
		t.Fatal("sd configs")
	}
}

func TestExpandEnv(t *testing.T) {
	t.Setenv("NXW_A", "a")
	os.Unsetenv("NXW_UNSET")
	got := ExpandEnv("${NXW_A}-${NXW_UNSET:-dflt}-${NXW_UNSET}-$$")
	if got != "a-dflt--$" {
		t.Fatal(got)
	}
}
