package alerting

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nx-watcher/nxwatcher/internal/testbin"
)

// amtool runs Debian's real amtool against the test server. HOME is a
// temp dir so no user config file is read.
func amtool(t *testing.T, url string, args ...string) (string, error) {
	t.Helper()
	bin := testbin.Require(t, "amtool", "prometheus-alertmanager")
	if url != "" {
		args = append([]string{"--alertmanager.url=" + url}, args...)
	}
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	// stdout only: amtool warns on stderr when the server's version
	// string differs from its own (it is empty in test binaries).
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}

func TestAmtoolAgainstOurAPI(t *testing.T) {
	ta := startAM(t, t.TempDir(), defaultAlertmanagerYAML)
	ta.am.Send(alertFor("HighErrorRate", "identity", "critical"), alertFor("RedisHighMemory", "redis", "warning"))

	out, err := amtool(t, ta.srv.URL, "alert", "query")
	if err != nil {
		t.Fatalf("amtool alert query: %v\n%s", err, out)
	}
	if !strings.Contains(out, "HighErrorRate") || !strings.Contains(out, "RedisHighMemory") {
		t.Fatalf("alert query output:\n%s", out)
	}
	out, err = amtool(t, ta.srv.URL, "alert", "query", "severity=critical")
	if err != nil || !strings.Contains(out, "HighErrorRate") || strings.Contains(out, "RedisHighMemory") {
		t.Fatalf("filtered alert query: %v\n%s", err, out)
	}

	out, err = amtool(t, ta.srv.URL, "silence", "add", "alertname=HighErrorRate", "service=identity",
		"--author=oncall", "--comment=deploying fix", "--duration=2h")
	if err != nil {
		t.Fatalf("amtool silence add: %v\n%s", err, out)
	}
	id := strings.TrimSpace(out)
	if len(id) != 36 {
		t.Fatalf("silence add printed %q, want a UUID", out)
	}

	out, err = amtool(t, ta.srv.URL, "silence", "query")
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, "deploying fix") {
		t.Fatalf("amtool silence query: %v\n%s", err, out)
	}
	// The silenced alert is now shown as suppressed, hidden from a plain
	// query that excludes silenced alerts.
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err = amtool(t, ta.srv.URL, "alert", "query")
		if err == nil && !strings.Contains(out, "HighErrorRate") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("silenced alert still listed as active: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, err = amtool(t, ta.srv.URL, "alert", "query", "--silenced")
	if err != nil || !strings.Contains(out, "HighErrorRate") {
		t.Fatalf("alert query --silenced: %v\n%s", err, out)
	}

	if out, err = amtool(t, ta.srv.URL, "silence", "expire", id); err != nil {
		t.Fatalf("amtool silence expire: %v\n%s", err, out)
	}
	out, err = amtool(t, ta.srv.URL, "silence", "query")
	if err != nil || strings.Contains(out, id) {
		t.Fatalf("expired silence still active: %v\n%s", err, out)
	}
	out, err = amtool(t, ta.srv.URL, "silence", "query", "--expired")
	if err != nil || !strings.Contains(out, id) {
		t.Fatalf("silence query --expired: %v\n%s", err, out)
	}

	// A bad silence from amtool gets our (upstream's) 400 message.
	out, err = amtool(t, ta.srv.URL, "silence", "add", "alertname=X", "--author=a", "--comment=c", "--start=2999-01-02T00:00:00Z", "--end=2999-01-01T00:00:00Z")
	if err == nil {
		t.Fatalf("bad silence accepted:\n%s", out)
	}
	if !strings.Contains(out, "start") {
		t.Fatalf("bad silence output does not explain: %s", out)
	}
}

// amtool check-config and our Validate agree on the same files.
func TestAmtoolCheckConfigAgreesWithValidate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	bad := filepath.Join(dir, "bad.yml")
	goodYAML := `global:
  resolve_timeout: 5m
route:
  receiver: oncall
  group_by: [alertname, service]
  routes:
    - matchers: [severity="critical"]
      receiver: pager
receivers:
  - name: oncall
    webhook_configs: [{url: "http://hooks.example/alert"}]
  - name: pager
    slack_configs: [{api_url: "https://hooks.slack.example/x", channel: "#oncall"}]
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [service]
`
	if err := os.WriteFile(good, []byte(goodYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(strings.Replace(goodYAML, "receiver: pager", "receiver: pagr", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := amtool(t, "", "check-config", good); err != nil {
		t.Fatalf("amtool rejects good config: %v\n%s", err, out)
	}
	cfg := DefaultConfig()
	cfg.AlertmanagerConfigFile = good
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate rejects good config: %v", err)
	}

	out, err := amtool(t, "", "check-config", bad)
	if err == nil || !strings.Contains(out, `undefined receiver "pagr"`) {
		t.Fatalf("amtool on bad config: %v\n%s", err, out)
	}
	cfg.AlertmanagerConfigFile = bad
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `undefined receiver "pagr"`) {
		t.Fatalf("Validate on bad config: %v", err)
	}
}
