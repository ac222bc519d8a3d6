package ruler

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nx-watcher/nxwatcher/internal/testbin"
)

const banaRules = "../../deploy/rules/bana.rules.yml"
const banaTests = "../../deploy/rules/bana.rules.test.yml"

func TestBanaRulesCheck(t *testing.T) {
	var out bytes.Buffer
	if err := CheckRuleFiles(&out, banaRules); err != nil {
		t.Fatalf("check: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "SUCCESS: 7 rules found") {
		t.Fatalf("output:\n%s", out.String())
	}
}

func TestBanaRulesUnitTests(t *testing.T) {
	var out bytes.Buffer
	if TestRuleFiles(&out, banaTests) {
		t.Fatalf("bana unit tests failed:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "SUCCESS") {
		t.Fatalf("output:\n%s", out.String())
	}
}

// copyRules puts the bana rules and tests into a temp dir, with the rule
// file rewritten by edit.
func copyRules(t *testing.T, edit func(string) string) string {
	t.Helper()
	dir := t.TempDir()
	r, err := os.ReadFile(banaRules)
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(banaTests)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bana.rules.yml"), []byte(edit(string(r))), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bana.rules.test.yml"), tests, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The unit tests must catch a rule that no longer fires and one that
// fires too early; each mutation must fail the named test.
func TestBanaUnitTestsCatchBrokenRules(t *testing.T) {
	cases := []struct {
		name, from, to, wantFail string
	}{
		{"threshold raised", "> 0.05", "> 0.5", "alertname: HighErrorRate"},
		{"for shortened", "for: 10m\n        labels:\n          severity: critical", "for: 1m\n        labels:\n          severity: critical", "alertname: KafkaUnderReplicated"},
		{"annotation changed", "is crash looping", "loops", "alertname: PodCrashLooping"},
		{"matcher widened", `service="identity"}`, `service=~".+"}`, "alertname: IdentityServiceDown"},
		{"ratio inverted", "redis_memory_used_bytes / redis_memory_max_bytes", "redis_memory_max_bytes / redis_memory_used_bytes", "alertname: RedisHighMemory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyRules(t, func(s string) string {
				if !strings.Contains(s, tc.from) {
					t.Fatalf("rule file has no %q", tc.from)
				}
				return strings.Replace(s, tc.from, tc.to, 1)
			})
			var out bytes.Buffer
			if !TestRuleFiles(&out, filepath.Join(dir, "bana.rules.test.yml")) {
				t.Fatalf("broken rule passed:\n%s", out.String())
			}
			if !strings.Contains(out.String(), tc.wantFail) {
				t.Fatalf("output does not name %q:\n%s", tc.wantFail, out.String())
			}
		})
	}
}

func TestCheckRuleFilesReportsPosition(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(bad, []byte("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(x[5m] > 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := CheckRuleFiles(&out, bad)
	if err == nil {
		t.Fatalf("broken file passed:\n%s", out.String())
	}
	if !strings.Contains(out.String(), bad+": 5:15:") || !strings.Contains(out.String(), "FAILED") {
		t.Fatalf("output lacks file:line:col:\n%s", out.String())
	}
}

func TestUnitTestFeatures(t *testing.T) {
	dir := t.TempDir()
	rules := `groups:
  - name: rec
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
  - name: alerts
    rules:
      - alert: JobDown
        expr: job:up:sum == 0
        for: 2m
        labels: {team: "{{ $externalLabels.cluster }}"}
        annotations:
          value: "{{ $value }} at {{ $externalURL }}"
`
	tests := `rule_files: [r.yml]
evaluation_interval: 1m
group_eval_order: [rec, alerts]
tests:
  - name: down
    interval: 1m
    external_labels: {cluster: bana}
    external_url: http://prom.example
    input_series:
      - series: 'up{job="a", instance="1"}'
        values: '1 1 0 0 0 0 _ 0'
      - series: 'up{job="a", instance="2"}'
        values: '0x7'
    alert_rule_test:
      - eval_time: 3m
        alertname: JobDown
        exp_alerts: []
      - eval_time: 5m
        alertname: JobDown
        exp_alerts:
          - exp_labels: {job: a, team: bana}
            exp_annotations: {value: "0 at http://prom.example"}
    promql_expr_test:
      - expr: job:up:sum
        eval_time: 1m
        exp_samples:
          - labels: 'job:up:sum{job="a"}'
            value: 1
      - expr: count(ALERTS{alertstate="firing"})
        eval_time: 5m
        exp_samples:
          - labels: '{}'
            value: 1
`
	// start_timestamp is newer than Debian's promtool 2.42.
	startTS := `
  - name: start timestamp
    start_timestamp: 1700000000
    input_series:
      - series: 'x'
        values: '1+1x3'
    promql_expr_test:
      - expr: timestamp(x)
        eval_time: 2m
        exp_samples:
          - labels: '{}'
            value: 1700000120
`
	if err := os.WriteFile(filepath.Join(dir, "r.yml"), []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	tf := filepath.Join(dir, "t.yml")
	if err := os.WriteFile(tf, []byte(tests), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if TestRuleFiles(&out, tf) {
		t.Fatalf("failed:\n%s", out.String())
	}
	// Debian's promtool must agree on the same file.
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.CommandContext(t.Context(), promtool, "test", "rules", tf)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool disagrees: %v\n%s", err, b)
		}
	}
	tests += startTS
	if err := os.WriteFile(tf, []byte(tests), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if TestRuleFiles(&out, tf) {
		t.Fatalf("failed:\n%s", out.String())
	}

	// And a wrong expectation fails with promtool's message shape.
	wrong := strings.Replace(tests, "value: 1700000120", "value: 1700000180", 1)
	if err := os.WriteFile(tf, []byte(wrong), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if !TestRuleFiles(&out, tf) {
		t.Fatal("wrong expectation passed")
	}
	if !strings.Contains(out.String(), `expr: "timestamp(x)", time: 2m`) || !strings.Contains(out.String(), "got: [{} 1.70000012e+09]") {
		t.Fatalf("output:\n%s", out.String())
	}
}

func TestUnitTestFileErrors(t *testing.T) {
	dir := t.TempDir()
	tf := filepath.Join(dir, "t.yml")
	if err := os.WriteFile(tf, []byte("rule_files: []\ntests:\n  - interval: 1m\n    unknown_key: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if !TestRuleFiles(&out, tf) || !strings.Contains(out.String(), "unknown_key") {
		t.Fatalf("unknown key accepted:\n%s", out.String())
	}
}

// CI installs Debian's promtool; the rule tests must pass there too.
func TestDebianPromtoolAgrees(t *testing.T) {
	promtool := testbin.Require(t, "promtool", "prometheus")
	for _, args := range [][]string{{"check", "rules", banaRules}, {"test", "rules", banaTests}} {
		b, err := exec.CommandContext(t.Context(), promtool, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %v: %v\n%s", args, err, b)
		}
	}
}

// BenchmarkBanaUnitTests times a full `test rules` run of the bana tests
// (seven groups, each with its own TSDB and evaluation loop).
func BenchmarkBanaUnitTests(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if TestRuleFiles(io.Discard, banaTests) {
			b.Fatal("bana unit tests failed")
		}
	}
}
