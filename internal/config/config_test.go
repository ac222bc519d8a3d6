package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/discovery/kubernetes"

	"github.com/nx-watcher/nxwatcher/internal/units"
)

var nop = promslog.NewNopLogger()

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultScrapesItself(t *testing.T) {
	cfg, err := Default("localhost:9999", nop)
	if err != nil {
		t.Fatal(err)
	}
	pc := cfg.Metrics.Parsed
	if len(pc.ScrapeConfigs) != 1 || pc.ScrapeConfigs[0].JobName != "nxwatcher" {
		t.Fatalf("default scrape configs = %v, want one job nxwatcher", pc.ScrapeConfigs)
	}
	if got := pc.ScrapeConfigs[0].ServiceDiscoveryConfigs; len(got) != 1 || !strings.Contains(pc.String(), "localhost:9999") {
		t.Fatalf("default does not target the listener:\n%s", pc.String())
	}
	if time.Duration(cfg.Metrics.Retention) != 30*24*time.Hour {
		t.Fatalf("default retention = %v, want 30d", cfg.Metrics.Retention)
	}
}

// The embedded default keeps 20,000 exemplars (ADR 0084); a pasted
// prometheus.yml without the key keeps Prometheus's 100,000.
func TestDefaultExemplarBuffer(t *testing.T) {
	cfg, err := Default("localhost:9999", nop)
	if err != nil {
		t.Fatal(err)
	}
	if ex := cfg.Metrics.Parsed.StorageConfig.ExemplarsConfig; ex == nil || ex.MaxExemplars != 20000 {
		t.Fatalf("embedded default exemplars = %+v, want max_exemplars 20000", ex)
	}
	pasted, err := Parse([]byte("metrics:\n  prometheus:\n    global: {scrape_interval: 15s}\n"), ".", nop)
	if err != nil {
		t.Fatal(err)
	}
	if ex := pasted.Metrics.Parsed.StorageConfig.ExemplarsConfig; ex != nil && ex.MaxExemplars != 100000 {
		t.Fatalf("pasted prometheus.yml exemplars = %+v, want Prometheus's default", ex)
	}
}

func TestUnknownKeyNamesKeyAndLine(t *testing.T) {
	for _, tc := range []struct {
		name, text, wantKey, wantLine string
	}{
		{"top level", "metrics:\n  retention: 30d\nmetricz: {}\n", "metricz", "line 3"},
		{"nested", "metrics:\n  retention: 30d\n  query:\n    timeot: 1m\n", "timeot", "line 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text), ".", nop)
			if err == nil {
				t.Fatal("want an error for an unknown key")
			}
			if !strings.Contains(err.Error(), tc.wantKey) || !strings.Contains(err.Error(), tc.wantLine) {
				t.Fatalf("error %q does not name %q at %q", err, tc.wantKey, tc.wantLine)
			}
		})
	}
}

func TestUnknownKeyInPrometheusSectionIsUpstreamErrorAtFileLine(t *testing.T) {
	text := "metrics:\n" +
		"  retention: 1d\n" +
		"  prometheus:\n" +
		"    global:\n" +
		"      scrape_intervall: 15s\n"
	_, err := Parse([]byte(text), ".", nop)
	if err == nil {
		t.Fatal("want an error from Prometheus's parser")
	}
	// Prometheus's own message, with the line shifted to the serve config file.
	if !strings.Contains(err.Error(), "field scrape_intervall not found") || !strings.Contains(err.Error(), "line 5") {
		t.Fatalf("error = %q, want upstream's message at line 5", err)
	}
}

func TestSeedPrometheusConfigLoadsUnchanged(t *testing.T) {
	inline, err := LoadFile("testdata/seed-serve.yml", nop)
	if err != nil {
		t.Fatalf("seed config as prometheus: section: %v", err)
	}
	fromFile := writeFile(t, "serve.yml", "metrics:\n  prometheus_config_file: "+mustAbs(t, "../../deploy/prometheus/prometheus.yml")+"\n")
	byPath, err := LoadFile(fromFile, nop)
	if err != nil {
		t.Fatalf("seed config by path: %v", err)
	}
	for name, cfg := range map[string]*Config{"inline": inline, "by path": byPath} {
		pc := cfg.Metrics.Parsed
		var jobs []string
		for _, sc := range pc.ScrapeConfigs {
			jobs = append(jobs, sc.JobName)
		}
		if got, want := strings.Join(jobs, ","), "traefik,nx-backend,postgresql,redis,kafka"; got != want {
			t.Errorf("%s: jobs = %s, want %s", name, got, want)
		}
		backend := pc.ScrapeConfigs[1]
		if _, ok := backend.ServiceDiscoveryConfigs[0].(*kubernetes.SDConfig); !ok {
			t.Errorf("%s: nx-backend SD = %T, want kubernetes", name, backend.ServiceDiscoveryConfigs[0])
		}
		if len(backend.RelabelConfigs) != 3 {
			t.Errorf("%s: nx-backend relabel configs = %d, want 3", name, len(backend.RelabelConfigs))
		}
		if len(pc.AlertingConfig.AlertmanagerConfigs) != 1 || len(pc.RuleFiles) != 1 {
			t.Errorf("%s: alerting/rule_files not carried over: %+v %v", name, pc.AlertingConfig, pc.RuleFiles)
		}
		if pc.GlobalConfig.ScrapeInterval != model.Duration(15*time.Second) {
			t.Errorf("%s: scrape_interval = %v", name, pc.GlobalConfig.ScrapeInterval)
		}
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestValidateReportsEveryProblem(t *testing.T) {
	text := "metrics:\n  retention: 0s\n  retention_size: 0B\n  prometheus: {global: {}}\n  prometheus_config_file: x.yml\n  query:\n    max_samples: -1\n"
	_, err := Parse([]byte(text), ".", nop)
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"retention or retention_size", "not both", "max_samples"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestSizesAndDurations(t *testing.T) {
	cfg, err := Parse([]byte("metrics:\n  retention: 15d\n  retention_size: 8GiB\n"), ".", nop)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Metrics.RetentionSize != 8*units.Bytes(1<<30) || time.Duration(cfg.Metrics.Retention) != 15*24*time.Hour {
		t.Fatalf("got retention %v size %v", cfg.Metrics.Retention, cfg.Metrics.RetentionSize)
	}
}

func TestRelativePathsResolveAgainstConfigDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "prom.yml"), []byte("scrape_configs:\n  - job_name: a\n    file_sd_configs: [{files: [targets.json]}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	serve := filepath.Join(dir, "serve.yml")
	if err := os.WriteFile(serve, []byte("metrics:\n  prometheus_config_file: prom.yml\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadFile(serve, nop)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cfg.Metrics.Parsed.String(), filepath.Join(dir, "targets.json")) {
		t.Fatalf("file_sd path not resolved against %s:\n%s", dir, cfg.Metrics.Parsed.String())
	}
}

func TestCheckFile(t *testing.T) {
	for _, tc := range []struct {
		name, text, kind, wantErr string
	}{
		{"serve config", "metrics:\n  retention: 1d\n", KindServe, ""},
		{"bare prometheus.yml", "global: {scrape_interval: 10s}\nscrape_configs: [{job_name: x, static_configs: [{targets: ['a:1']}]}]\n", KindPrometheus, ""},
		{"bad prometheus.yml", "scrape_configs: [{job_name: x, scrape_interval: banana}]\n", KindPrometheus, "banana"},
		{"bad serve config", "metrics:\n  prometheus:\n    scrape_configs: [{job_name: x}, {job_name: x}]\n", KindServe, `found multiple scrape configs with job name "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind, err := CheckFile(writeFile(t, "c.yml", tc.text), nop)
			if kind != tc.kind {
				t.Errorf("kind = %q, want %q", kind, tc.kind)
			}
			if tc.wantErr == "" && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// Blank lines, comments and flow style inside a pasted body must not shift
// the line an upstream error points at.
func TestPastedBodyErrorLinesSurviveBlankLinesAndComments(t *testing.T) {
	text := "metrics:\n" + //                       1
		"  retention: 1d\n" + //                     2
		"  prometheus:\n" + //                       3
		"    # scrape every job every 15s\n" + //   4
		"    global: {scrape_interval: 15s}\n" + // 5
		"\n" + //                                    6
		"\n" + //                                    7
		"    scrape_configs:\n" + //                 8
		"\n" + //                                    9
		"      - job_name: a\n" + //                 10
		"        # the target below\n" + //          11
		"        static_configs: [{targets: ['x:1']}]\n" + // 12
		"\n" + //                                    13
		"      - job_name: b\n" + //                 14
		"        scrape_intervall: 5s\n" //          15
	_, err := Parse([]byte(text), ".", nop)
	if err == nil {
		t.Fatal("want an error from Prometheus's parser")
	}
	if !strings.Contains(err.Error(), "scrape_intervall") || !strings.Contains(err.Error(), "line 15") {
		t.Fatalf("error = %q, want it at line 15 of the file", err)
	}
}

// check config checks everything serve would load: rule files, and the
// Alertmanager body's templates and credential files, with relative paths
// against the config file's directory.
func TestCheckFollowsReferencedFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("good.rules.yml", "groups: [{name: g, rules: [{record: 'r:up', expr: up}]}]\n")
	write("bad.rules.yml", "groups: [{name: g, rules: [{record: 'r:up', expr: 'sum(up'}]}]\n")
	write("good.tmpl", `{{ define "x" }}ok{{ end }}`)
	write("bad.tmpl", `{{ define "x" }}{{ .Broken `)
	for _, tc := range []struct {
		name, text, kind, wantErr, wantWarning string
	}{
		{"serve with good rules", "metrics:\n  prometheus:\n    rule_files: [good.rules.yml]\n", KindServe, "", ""},
		{"serve with a broken rule file", "metrics:\n  prometheus:\n    rule_files: [bad.rules.yml]\n", KindServe, "bad.rules.yml", ""},
		{"serve with a missing rule file", "metrics:\n  prometheus:\n    rule_files: [missing.yml]\n", KindServe, "", "missing.yml"},
		{"prometheus.yml with a broken rule file", "global: {}\nrule_files: [bad.rules.yml]\n", KindPrometheus, "bad.rules.yml", ""},
		{"serve with a good template", "alerting:\n  alertmanager:\n    templates: [good.tmpl]\n    route: {receiver: x}\n    receivers: [{name: x}]\n", KindServe, "", ""},
		{"serve with a broken template", "alerting:\n  alertmanager:\n    templates: [bad.tmpl]\n    route: {receiver: x}\n    receivers: [{name: x}]\n", KindServe, "bad.tmpl", ""},
		{"serve with a missing credential file", "alerting:\n  alertmanager:\n    route: {receiver: x}\n    receivers: [{name: x, webhook_configs: [{url_file: nope.txt}]}]\n", KindServe, "nope.txt", ""},
		{"bare alertmanager.yml", "route: {receiver: x}\nreceivers: [{name: x}]\ntemplates: [good.tmpl]\n", KindAlertmanager, "", ""},
		{"bare alertmanager.yml with a broken template", "route: {receiver: x}\nreceivers: [{name: x}]\ntemplates: [bad.tmpl]\n", KindAlertmanager, "bad.tmpl", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind, warnings, err := Check(write("c.yml", tc.text), nop)
			if kind != tc.kind {
				t.Errorf("kind = %q, want %q", kind, tc.kind)
			}
			if tc.wantErr == "" && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error = %v, want it to name %q", err, tc.wantErr)
			}
			if tc.wantWarning != "" && !strings.Contains(strings.Join(warnings, "\n"), tc.wantWarning) {
				t.Fatalf("warnings = %q, want one naming %q", warnings, tc.wantWarning)
			}
		})
	}
}

// logs.storage.cold_compression reaches the log store's options, and an
// unknown codec is refused naming the key.
func TestLogsColdCompression(t *testing.T) {
	c, err := Parse([]byte("logs:\n  storage:\n    cold_compression: s2\n"), t.TempDir(), promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Logs.StoreOptions().ColdCompression; got != "s2" {
		t.Errorf("ColdCompression = %q, want s2", got)
	}
	if c, err := Parse(nil, t.TempDir(), promslog.NewNopLogger()); err != nil || c.Logs.StoreOptions().ColdCompression != "zstd" {
		t.Errorf("default: %v %v", c.Logs.StoreOptions().ColdCompression, err)
	}
	if _, err := Parse([]byte("logs:\n  storage:\n    cold_compression: lz4\n"), t.TempDir(), promslog.NewNopLogger()); err == nil || !strings.Contains(err.Error(), "logs.storage.cold_compression") {
		t.Errorf("lz4: %v", err)
	}
}
