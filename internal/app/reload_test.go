package app

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A reload whose rule file is broken must change nothing: not the scrape
// pools, not the log limits, not GOGC, not the config the status API shows.
func TestReloadWithBrokenRuleFileAppliesNothing(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.rules.yml")
	if err := os.WriteFile(good, []byte("groups:\n  - name: g\n    rules:\n      - record: r:up\n        expr: up\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.rules.yml")
	if err := os.WriteFile(bad, []byte("groups:\n  - name: g\n    rules:\n      - record: r:up\n        expr: sum(up\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgText := func(job, ruleFile string, gogc, maxLine int) string {
		return "logs:\n  limits:\n    max_line_size: " + itoa(maxLine) + "\n" +
			"metrics:\n  prometheus:\n" +
			"    runtime: {gogc: " + itoa(gogc) + "}\n" +
			"    global: {scrape_interval: 1h}\n" +
			"    rule_files: ['" + ruleFile + "']\n" +
			"    scrape_configs:\n      - job_name: " + job + "\n        static_configs: [{targets: ['127.0.0.1:1']}]\n"
	}
	oldGC := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(oldGC) })

	ts := startServer(t, cfgText("one", good, 91, 4096))
	if got := debug.SetGCPercent(-1); got != 91 {
		debug.SetGCPercent(got)
		t.Fatalf("GOGC after start = %d, want 91", got)
	} else {
		debug.SetGCPercent(got)
	}

	writeConfig(t, ts.configFile, cfgText("two", bad, 57, 100))
	code, body := ts.post(t, "/-/reload", "", nil, nil)
	if code != http.StatusInternalServerError || !strings.Contains(body, "bad.rules.yml") {
		t.Fatalf("reload with a broken rule file = %d %q, want 500 naming the file", code, body)
	}

	// Nothing of the rejected config is in force.
	if got := debug.SetGCPercent(-1); got != 91 {
		debug.SetGCPercent(got)
		t.Fatalf("GOGC after a rejected reload = %d, want 91 (unchanged)", got)
	} else {
		debug.SetGCPercent(got)
	}
	tg, err := ts.promAPI(t).Targets(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range tg.Active {
		if a.ScrapePool != "one" {
			t.Fatalf("scrape pool %q active after a rejected reload", a.ScrapePool)
		}
	}
	_, cfgBody := ts.get(t, "/api/v1/status/config")
	if !strings.Contains(cfgBody, "job_name: one") || strings.Contains(cfgBody, "job_name: two") {
		t.Fatalf("status/config after a rejected reload shows the new config:\n%s", cfgBody)
	}
	// The old log limit (4096 bytes) still holds: a 1000-byte line is taken.
	line := strings.Repeat("x", 1000)
	push := `{"streams":[{"stream":{"app":"a"},"values":[["` + itoa64(time.Now().UnixNano()) + `","` + line + `"]]}]}`
	if code, body := ts.post(t, "/loki/api/v1/push", "application/json", strings.NewReader(push), nil); code != http.StatusNoContent {
		t.Fatalf("push of a 1000-byte line after a rejected reload = %d %s (the rejected 100-byte limit leaked in)", code, body)
	}
	// runtimeinfo and the gauge agree that the reload failed.
	var ri struct {
		Data struct {
			ReloadConfigSuccess bool   `json:"reloadConfigSuccess"`
			StorageRetention    string `json:"storageRetention"`
		} `json:"data"`
	}
	_, riBody := ts.get(t, "/api/v1/status/runtimeinfo")
	if err := json.Unmarshal([]byte(riBody), &ri); err != nil {
		t.Fatal(err)
	}
	if ri.Data.ReloadConfigSuccess || ts.metricValue(t, "nxwatcher_config_last_reload_successful") != 0 {
		t.Fatalf("reloadConfigSuccess=%v, gauge=%v: both must say the reload failed", ri.Data.ReloadConfigSuccess, ts.metricValue(t, "nxwatcher_config_last_reload_successful"))
	}
	if ri.Data.StorageRetention != "30d" {
		t.Fatalf("storageRetention = %q, want the retention in force, 30d", ri.Data.StorageRetention)
	}

	// A config that does not even load keeps runtimeinfo and gauge in step too.
	writeConfig(t, ts.configFile, "metrics: [not, a, mapping]\n")
	if code, _ := ts.post(t, "/-/reload", "", nil, nil); code != http.StatusInternalServerError {
		t.Fatalf("reload of an unloadable config = %d, want 500", code)
	}
	// And a good one puts everything in force at once.
	writeConfig(t, ts.configFile, cfgText("two", good, 57, 100))
	if code, body := ts.post(t, "/-/reload", "", nil, nil); code != http.StatusOK {
		t.Fatalf("good reload = %d %s", code, body)
	}
	if got := debug.SetGCPercent(-1); got != 57 {
		debug.SetGCPercent(got)
		t.Fatalf("GOGC after a good reload = %d, want 57", got)
	} else {
		debug.SetGCPercent(got)
	}
	_, riBody = ts.get(t, "/api/v1/status/runtimeinfo")
	if err := json.Unmarshal([]byte(riBody), &ri); err != nil {
		t.Fatal(err)
	}
	if !ri.Data.ReloadConfigSuccess || ts.metricValue(t, "nxwatcher_config_last_reload_successful") != 1 {
		t.Fatalf("after a good reload: reloadConfigSuccess=%v gauge=%v", ri.Data.ReloadConfigSuccess, ts.metricValue(t, "nxwatcher_config_last_reload_successful"))
	}
}

func itoa(n int) string     { return strconv.Itoa(n) }
func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

// --web.external-url reaches the alerts: the generator URL the ruler puts on
// each alert, as the embedded Alertmanager shows it, starts with it, and the
// routes move below its path.
func TestExternalURLInAlertGeneratorURL(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "r.yml")
	if err := os.WriteFile(rules, []byte("groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: Always\n        expr: vector(1)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ts := startServerWith(t, "metrics:\n  prometheus:\n    global: {evaluation_interval: 1s, scrape_interval: 1h}\n    rule_files: ['"+rules+"']\n",
		func(o *Options) { o.ExternalURL = "https://nx.example.com:8443/prom/" })
	if !strings.HasSuffix(ts.url, "/prom") {
		t.Fatalf("route prefix not taken from the external URL: %s", ts.url)
	}
	var body string
	waitFor(t, 20*time.Second, "alert in the Alertmanager", func() bool {
		_, body = ts.get(t, "/api/v2/alerts")
		return strings.Contains(body, `"Always"`)
	})
	if !strings.Contains(body, `"generatorURL":"https://nx.example.com:8443/prom/graph?g0.expr=`) {
		t.Fatalf("generatorURL does not start with the external URL:\n%s", body)
	}
}
