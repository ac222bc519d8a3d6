package ruler

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/notifier"
)

const oneRule = "groups:\n  - name: g\n    rules:\n      - alert: %s\n        expr: vector(1)\n"

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func alertNames(r *Ruler) []string {
	var out []string
	for _, ar := range r.Manager().AlertingRules() {
		out = append(out, ar.Name())
	}
	return out
}

// A failing Prepare leaves rules, rule files and the notifier untouched; a
// successful Prepare changes nothing until commit.
func TestPrepareIsAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	st := openStack(t, filepath.Join(dir, "tsdb"))
	old := filepath.Join(dir, "old.yml")
	writeFile(t, old, fmt.Sprintf(oneRule, "Old"))
	r, _ := startRuler(t, st, fmt.Sprintf("rule_files: [%q]\n", old), nil)

	newFile := filepath.Join(dir, "new.yml")
	writeFile(t, newFile, fmt.Sprintf(oneRule, "New"))
	broken := filepath.Join(dir, "broken.yml")
	writeFile(t, broken, "groups:\n  - name: b\n    rules:\n      - alert: X\n        expr: sum(\n")

	cases := map[string]string{
		"broken rule file": fmt.Sprintf("rule_files: [%q, %q]\n", newFile, broken),
		"alertmanager client": fmt.Sprintf(`rule_files: [%q]
alerting:
  alertmanagers:
    - static_configs: [{targets: ['am.example:9093']}]
      tls_config: {ca_file: %q}
`, newFile, filepath.Join(dir, "missing-ca.pem")),
	}
	for name, text := range cases {
		t.Run(name, func(t *testing.T) {
			pc, err := promconfig.Load(text, discard)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.Prepare(pc); err == nil {
				t.Fatal("Prepare accepted a broken config")
			}
			if got := alertNames(r); len(got) != 1 || got[0] != "Old" {
				t.Fatalf("rules after failed Prepare = %v, want [Old]", got)
			}
			if got := r.RuleFiles(); len(got) != 1 || got[0] != old {
				t.Fatalf("rule files after failed Prepare = %v", got)
			}
		})
	}

	pc, err := promconfig.Load(fmt.Sprintf("rule_files: [%q]\nglobal: {external_labels: {cluster: new}}\n", newFile), discard)
	if err != nil {
		t.Fatal(err)
	}
	commit, err := r.Prepare(pc)
	if err != nil {
		t.Fatal(err)
	}
	if got := alertNames(r); len(got) != 1 || got[0] != "Old" {
		t.Fatalf("rules before commit = %v, want [Old]", got)
	}
	// The file breaks between Prepare and commit: commit applies what
	// Prepare checked.
	writeFile(t, newFile, "groups: [{name: x, rules: [{alert: Y, expr: 'sum('}]}]\n")
	commit()
	if got := alertNames(r); len(got) != 1 || got[0] != "New" {
		t.Fatalf("rules after commit = %v, want [New]", got)
	}
	r.sendMu.RLock()
	cluster := r.externalLabels.Get("cluster")
	r.sendMu.RUnlock()
	if cluster != "new" {
		t.Fatalf("external labels after commit: cluster=%q", cluster)
	}
}

func TestCheckConfigRuleFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "good.yml"), fmt.Sprintf(oneRule, "A"))
	writeFile(t, filepath.Join(dir, "bad.yml"), "groups:\n  - name: b\n    rules:\n      - alert: X\n        expr: sum(\n")
	cfgPath := filepath.Join(dir, "prometheus.yml")
	// Relative patterns resolve against the config file's directory.
	writeFile(t, cfgPath, "rule_files: ['good.yml', 'rules.d/*.yml']\n")
	pc, err := promconfig.LoadFile(cfgPath, false, discard)
	if err != nil {
		t.Fatal(err)
	}
	warn, err := CheckConfig(pc)
	if err != nil {
		t.Fatalf("CheckConfig(good) = %v", err)
	}
	if len(warn) != 1 || !strings.Contains(warn[0], "rules.d/*.yml") {
		t.Fatalf("warnings = %q, want one for the empty glob", warn)
	}

	writeFile(t, cfgPath, "rule_files: ['*.yml']\n")
	pc, err = promconfig.LoadFile(cfgPath, false, discard)
	if err != nil {
		t.Fatal(err)
	}
	_, err = CheckConfig(pc)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "bad.yml")+": 5:") {
		t.Fatalf("CheckConfig(bad) = %v, want file:line", err)
	}
}

// Generator URLs carry the external URL's path prefix, without a doubled
// or trailing "/".
func TestGeneratorURLUsesExternalURLWithPrefix(t *testing.T) {
	dir := t.TempDir()
	st := openStack(t, filepath.Join(dir, "tsdb"))
	rf := filepath.Join(dir, "r.yml")
	writeFile(t, rf, fmt.Sprintf(oneRule, "Always"))
	got := make(chan *notifier.Alert, 16)
	cfg := DefaultConfig()
	cfg.ResendDelay = model.Duration(100 * time.Millisecond)
	ext, _ := url.Parse("https://nx.example.com/prom/")
	r, err := New(cfg, Deps{
		Logger: discard, Registerer: prometheus.NewRegistry(),
		Queryable: st.db, Appendable: st.db, Engine: st.engine,
		External: ext,
		Notify: func(as ...*notifier.Alert) {
			for _, a := range as {
				select {
				case got <- a:
				default:
				}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if ext.String() != "https://nx.example.com/prom/" {
		t.Fatalf("New modified the caller's URL: %v", ext)
	}
	pc, err := promconfig.Load(fmt.Sprintf("global: {evaluation_interval: 100ms}\nrule_files: [%q]\n", rf), discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ApplyConfig(pc); err != nil {
		t.Fatal(err)
	}
	runRuler(t, r)
	select {
	case a := <-got:
		if !strings.HasPrefix(a.GeneratorURL, "https://nx.example.com/prom/graph?g0.expr=") {
			t.Fatalf("generator URL = %q", a.GeneratorURL)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no alert sent")
	}
}

// runRuler runs r until the test ends.
func runRuler(t *testing.T, r *Ruler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ruler run: %v", err)
		}
	})
}
