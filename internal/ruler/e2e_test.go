package ruler

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/nx-watcher/nxwatcher/internal/alerting"
	"github.com/nx-watcher/nxwatcher/internal/config/native"
)

var discard = slog.New(slog.DiscardHandler)

type webhook struct {
	srv  *httptest.Server
	mu   sync.Mutex
	msgs []map[string]any
}

func newWebhook(t *testing.T) *webhook {
	w := &webhook{}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		w.mu.Lock()
		w.msgs = append(w.msgs, m)
		w.mu.Unlock()
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhook) messages() []map[string]any {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]map[string]any(nil), w.msgs...)
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// appendTraefik writes 5 minutes of traefik counters ending now: identity
// fails 10 of 110 requests per scrape, billing 1 of 101.
func appendTraefik(t *testing.T, db *tsdb.DB) {
	t.Helper()
	app := db.AppenderV2(t.Context())
	now := time.Now()
	for i := 0; i <= 30; i++ {
		ts := now.Add(time.Duration(i-30) * 10 * time.Second).UnixMilli()
		for _, s := range []struct {
			service, code string
			perStep       float64
		}{{"identity", "200", 100}, {"identity", "503", 10}, {"billing", "200", 100}, {"billing", "500", 1}} {
			ls := labels.FromStrings("__name__", "traefik_service_requests_total", "service", s.service, "code", s.code)
			if _, err := app.Append(0, ls, 0, ts, float64(i)*s.perStep, nil, nil, storage.AppendV2Options{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

// banaRulesWithFor writes the bana rules with every `for` shortened, so
// pending → firing happens within the test.
func banaRulesWithFor(t *testing.T, dir, forDur string) string {
	t.Helper()
	b, err := os.ReadFile(banaRules)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer("for: 5m", "for: "+forDur, "for: 10m", "for: "+forDur, "for: 1m", "for: "+forDur).Replace(string(b))
	p := filepath.Join(dir, "bana.rules.yml")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type stack struct {
	db     *tsdb.DB
	engine *promql.Engine
}

func openStack(t *testing.T, dir string) *stack {
	t.Helper()
	db, err := tsdb.Open(dir, discard, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return &stack{db: db, engine: promql.NewEngine(promql.EngineOpts{
		Logger: discard, MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute,
	})}
}

// startRuler builds a ruler over the stack and runs it until the returned
// stop function is called.
func startRuler(t *testing.T, st *stack, promYAML string, notify func(...*notifier.Alert)) (*Ruler, func()) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ResendDelay = model.Duration(200 * time.Millisecond)
	r, err := New(cfg, Deps{
		Logger: discard, Registerer: prometheus.NewRegistry(),
		Queryable: st.db, Appendable: st.db, Engine: st.engine,
		External: &url.URL{Scheme: "http", Host: "nxwatcher.example:9090"}, Notify: notify,
		NotifyURL: "http://nxwatcher.example:9090/api/v2/alerts",
	})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := promconfig.Load(promYAML, discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ApplyConfig(pc); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("ruler run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return r, stop
}

func highErrorRate(r *Ruler) *rules.AlertingRule {
	for _, ar := range r.Manager().AlertingRules() {
		if ar.Name() == "HighErrorRate" {
			return ar
		}
	}
	return nil
}

func TestEndToEndHighErrorRateReachesWebhook(t *testing.T) {
	dir := t.TempDir()
	st := openStack(t, filepath.Join(dir, "tsdb"))
	appendTraefik(t, st.db)
	rulesFile := banaRulesWithFor(t, dir, "2s")

	// The embedded Alertmanager, routing to a test webhook.
	hook := newWebhook(t)
	amCfg := alerting.DefaultConfig()
	amCfg.Alertmanager = native.Section{Text: fmt.Sprintf(`route:
  receiver: oncall
  group_by: [alertname, service]
  group_wait: 100ms
  group_interval: 500ms
  repeat_interval: 1h
receivers:
  - name: oncall
    webhook_configs: [{url: %q}]
`, hook.srv.URL), Line: 1}
	am, err := alerting.New(amCfg, filepath.Join(dir, "am"), alerting.Deps{Logger: discard, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = am.Close() })

	// An external Alertmanager (another embedded one on its own port) that
	// the notifier reaches through prometheus.yml's alerting section.
	extAM, err := alerting.New(alerting.DefaultConfig(), filepath.Join(dir, "ext-am"), alerting.Deps{Logger: discard, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = extAM.Close() })
	extMux := http.NewServeMux()
	extMux.Handle("/api/v2/", extAM.Handler())
	extSrv := httptest.NewServer(extMux)
	t.Cleanup(extSrv.Close)
	extURL, _ := url.Parse(extSrv.URL)

	promYAML := fmt.Sprintf(`global:
  evaluation_interval: 250ms
  external_labels: {cluster: bana-staging}
alerting:
  alertmanagers:
    - static_configs:
        - targets: [%q]
rule_files: [%q]
`, extURL.Host, rulesFile)
	r, stopRuler := startRuler(t, st, promYAML, am.Send)

	// Pending first, then firing.
	eventually(t, 5*time.Second, "HighErrorRate pending", func() bool {
		ar := highErrorRate(r)
		return ar != nil && ar.State() == rules.StatePending
	})
	if hook.messages() != nil {
		t.Fatal("webhook notified while pending")
	}
	eventually(t, 10*time.Second, "HighErrorRate firing", func() bool {
		return highErrorRate(r).State() == rules.StateFiring
	})
	eventually(t, 10*time.Second, "webhook notification", func() bool { return len(hook.messages()) > 0 })

	msg := hook.messages()[0]
	if msg["status"] != "firing" || msg["receiver"] != "oncall" {
		t.Fatalf("notification status/receiver: %v/%v", msg["status"], msg["receiver"])
	}
	alerts := msg["alerts"].([]any)
	if len(alerts) != 1 {
		t.Fatalf("notification has %d alerts, want 1 (only identity is above 5%%): %v", len(alerts), alerts)
	}
	a := alerts[0].(map[string]any)
	wantLabels := map[string]any{"alertname": "HighErrorRate", "service": "identity", "severity": "critical", "cluster": "bana-staging"}
	if got := a["labels"].(map[string]any); fmt.Sprint(got) != fmt.Sprint(wantLabels) {
		t.Fatalf("labels = %v, want %v", got, wantLabels)
	}
	if got := a["annotations"].(map[string]any)["summary"]; got != "Service identity has >5% error rate" {
		t.Fatalf("summary = %v", got)
	}
	if gu, _ := a["generatorURL"].(string); !strings.HasPrefix(gu, "http://nxwatcher.example:9090/graph?g0.expr=") {
		t.Fatalf("generatorURL = %q", gu)
	}

	// The external Alertmanager got the same alert through the notifier.
	eventually(t, 10*time.Second, "alert at the external Alertmanager", func() bool {
		resp, err := http.Get(extSrv.URL + "/api/v2/alerts?filter=alertname%3D%22HighErrorRate%22")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var got []struct {
			Labels map[string]string `json:"labels"`
		}
		if json.NewDecoder(resp.Body).Decode(&got) != nil || len(got) != 1 {
			return false
		}
		return got[0].Labels["service"] == "identity" && got[0].Labels["cluster"] == "bana-staging"
	})
	if n := len(r.Notifier().Alertmanagers()); n != 1 {
		t.Fatalf("notifier knows %d alertmanagers, want 1", n)
	}
	ams := r.Alertmanagers()
	if len(ams) != 2 || ams[0].Host != extURL.Host || ams[1].String() != "http://nxwatcher.example:9090/api/v2/alerts" {
		t.Fatalf("Alertmanagers() = %v", ams)
	}

	// ALERTS and ALERTS_FOR_STATE were written to the TSDB.
	for _, q := range []string{`ALERTS{alertname="HighErrorRate",alertstate="firing",service="identity"}`, `ALERTS_FOR_STATE{alertname="HighErrorRate",service="identity"}`} {
		qry, err := st.engine.NewInstantQuery(t.Context(), st.db, nil, q, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		res := qry.Exec(t.Context())
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		if v, _ := res.Vector(); len(v) != 1 {
			t.Fatalf("%s: %v", q, res.Value)
		}
		qry.Close()
	}

	// Restart the ruler over the same TSDB: the `for` state comes back
	// from ALERTS_FOR_STATE, so the alert keeps its original ActiveAt.
	activeAt := highErrorRate(r).ActiveAlerts()[0].ActiveAt
	stopRuler()
	r2, _ := startRuler(t, st, promYAML, am.Send)
	eventually(t, 10*time.Second, "restored HighErrorRate", func() bool {
		ar := highErrorRate(r2)
		return ar != nil && ar.Restored() && len(ar.ActiveAlerts()) == 1
	})
	got := highErrorRate(r2).ActiveAlerts()[0].ActiveAt
	if d := got.Sub(activeAt); d < -time.Second || d > time.Second {
		t.Fatalf("restored ActiveAt = %v, want %v (from ALERTS_FOR_STATE)", got, activeAt)
	}
}

func TestApplyConfigRejectsBrokenRuleFileAndKeepsOldRules(t *testing.T) {
	dir := t.TempDir()
	st := openStack(t, filepath.Join(dir, "tsdb"))
	good := banaRulesWithFor(t, dir, "5m")
	r, _ := startRuler(t, st, fmt.Sprintf("rule_files: [%q]\n", good), nil)
	if n := len(r.Manager().AlertingRules()); n != 7 {
		t.Fatalf("loaded %d alerting rules, want 7", n)
	}

	bad := filepath.Join(dir, "broken.yml")
	if err := os.WriteFile(bad, []byte("groups:\n  - name: broken\n    rules:\n      - alert: X\n        expr: sum(rate(x[5m])\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pc, err := promconfig.Load(fmt.Sprintf("rule_files: [%q, %q]\n", good, bad), discard)
	if err != nil {
		t.Fatal(err)
	}
	err = r.ApplyConfig(pc)
	if err == nil {
		t.Fatal("broken rule file accepted")
	}
	if !strings.Contains(err.Error(), bad+": 5:15:") {
		t.Fatalf("error lacks file:line:col: %v", err)
	}
	if n := len(r.Manager().AlertingRules()); n != 7 {
		t.Fatalf("after failed reload %d alerting rules, want the old 7", n)
	}
	if got := r.RuleFiles(); len(got) != 1 || got[0] != good {
		t.Fatalf("rule files in force = %v", got)
	}
}

func TestRelabelAlertsAppliesExternalLabelsWithoutMutating(t *testing.T) {
	in := &notifier.Alert{Labels: labels.FromStrings("alertname", "A", "cluster", "own")}
	in2 := &notifier.Alert{Labels: labels.FromStrings("alertname", "B")}
	out := relabelAlerts(nil, labels.FromStrings("cluster", "bana", "region", "hn"), []*notifier.Alert{in, in2})
	if len(out) != 2 {
		t.Fatalf("got %d alerts", len(out))
	}
	if out[0].Labels.Get("cluster") != "own" || out[0].Labels.Get("region") != "hn" {
		t.Fatalf("alert A labels = %v (own labels win over external ones)", out[0].Labels)
	}
	if out[1].Labels.Get("cluster") != "bana" {
		t.Fatalf("alert B labels = %v", out[1].Labels)
	}
	if in.Labels.Has("region") || in2.Labels.Has("cluster") {
		t.Fatal("input alerts were modified")
	}
}
