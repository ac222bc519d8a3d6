package alerting

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-openapi/strfmt"
	amclient "github.com/prometheus/alertmanager/api/v2/client"
	"github.com/prometheus/alertmanager/api/v2/client/silence"
	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nx-watcher/nxwatcher/internal/config/native"
)

// crash stops the goroutines of a without a clean shutdown: no final
// snapshot, as if the process had been killed.
func (a *Alertmanager) crash() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	if in := a.inhibitor.Load(); in != nil {
		in.Stop()
	}
	if d := a.dispatcher.Load(); d != nil {
		d.Stop()
	}
	a.alerts.Close()
	a.stopAlerts()
	_ = a.journal.close() // releases the descriptor; writes are not buffered
}

// nflogOnDisk reports whether every notification logged is on disk.
func (a *Alertmanager) nflogOnDisk() bool {
	j := a.journal
	j.mu.Lock()
	n := j.seq
	j.mu.Unlock()
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	return n > 0 && j.synced >= n
}

func writeTestFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func receiverNames(t *testing.T, srvURL string) []string {
	t.Helper()
	resp, err := http.Get(srvURL + "/api/v2/receivers")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rs []struct {
		Name string `json:"name"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rs); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	slices.Sort(out)
	return out
}

// A Prepare that fails leaves routes, receivers and the config in force
// untouched; one that succeeds changes nothing until commit.
func TestPrepareFailureLeavesRunningStateUntouched(t *testing.T) {
	dir := t.TempDir()
	sink := newWebhookSink(t, 0)
	ta := startAM(t, filepath.Join(dir, "data"), webhookConfig(map[string]string{"default": sink.srv.URL}, ""))
	before := ta.am.Config()

	writeTestFile(t, filepath.Join(dir, "bad.tmpl"), "{{ define \"x\" }}\n{{ .Foo \n{{ end }}\n")
	newRoute := "route:\n  receiver: new\nreceivers:\n  - name: new\n    webhook_configs:\n      - url: " + sink.srv.URL + "\n"
	cases := map[string]string{
		"undefined receiver":      "route:\n  receiver: missing\nreceivers: []\n",
		"template does not parse": newRoute + "templates: ['bad.tmpl']\n",
		"credential file missing": newRoute + "        http_config:\n          authorization: {credentials_file: secret.txt}\n",
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.BaseDir = dir
			cfg.Alertmanager = native.Section{Text: body, Line: 1}
			if _, err := ta.am.Prepare(cfg); err == nil {
				t.Fatal("Prepare accepted a broken config")
			}
			if ta.am.Config() != before {
				t.Fatal("config in force changed")
			}
			if got := receiverNames(t, ta.srv.URL); !slices.Equal(got, []string{"default"}) {
				t.Fatalf("receivers = %v, want [default]", got)
			}
		})
	}
	// Before the fix a missing credential file was accepted and applied;
	// the notifications then failed.
	ta.am.Send(alertFor("StillRouted", "s", "warning"))
	sink.wait(t, 1, 5*time.Second)
	if m := sink.messages()[0]; m.Receiver != "default" {
		t.Fatalf("delivered by %q, want the old receiver", m.Receiver)
	}

	writeTestFile(t, filepath.Join(dir, "secret.txt"), "token")
	good := DefaultConfig()
	good.BaseDir = dir
	good.Alertmanager = native.Section{Text: cases["credential file missing"], Line: 1}
	commit, err := ta.am.Prepare(good)
	if err != nil {
		t.Fatal(err)
	}
	if got := receiverNames(t, ta.srv.URL); !slices.Equal(got, []string{"default"}) {
		t.Fatalf("receivers before commit = %v", got)
	}
	commit()
	if got := receiverNames(t, ta.srv.URL); !slices.Equal(got, []string{"new"}) {
		t.Fatalf("receivers after commit = %v, want [new]", got)
	}
	if v := metricValue(t, ta.reg, "nxwatcher_alerting_config_reloads_total", map[string]string{"result": "failure"}); v != 3 {
		t.Fatalf("failed reloads = %v, want 3", v)
	}
}

// Relative paths of an inline body resolve against the serve config's
// directory; problems with them name the line of the serve file.
func TestInlineBodyPathsResolveAgainstBaseDir(t *testing.T) {
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "templates", "ok.tmpl"), "{{ define \"ok\" }}fine{{ end }}\n")
	writeTestFile(t, filepath.Join(dir, "secrets", "token"), "s3cret")
	body := `route:
  receiver: hook
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:1/
        http_config:
          authorization:
            credentials_file: secrets/token
templates: ['templates/*.tmpl']
`
	cfg := DefaultConfig()
	cfg.BaseDir = dir
	cfg.Alertmanager = native.Section{Text: body, Line: 20}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	conf, err := cfg.LoadAlertmanagerConfig()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "templates", "*.tmpl"); conf.Templates[0] != want {
		t.Fatalf("template glob = %q, want %q", conf.Templates[0], want)
	}
	if got := conf.Receivers[0].WebhookConfigs[0].HTTPConfig.Authorization.CredentialsFile; got != filepath.Join(dir, "secrets", "token") {
		t.Fatalf("credentials_file = %q", got)
	}

	if err := os.Remove(filepath.Join(dir, "secrets", "token")); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, "templates", "bad.tmpl"), "{{ define \"bad\" }}\n{{ .X \n")
	err = cfg.Validate()
	if err == nil {
		t.Fatal("Validate() accepted a missing credential file and a broken template")
	}
	for _, want := range []string{
		// Line 9 of the body is line 28 of the serve file.
		"line 28: receivers[0].webhook_configs[0].http_config.authorization.credentials_file",
		"no such file",
		"line 29: templates:", "bad.tmpl:2",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestCheckAlertmanagerFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "alertmanager.yml")
	writeTestFile(t, path, `global:
  slack_api_url_file: slack-url
route:
  receiver: chat
receivers:
  - name: chat
    slack_configs:
      - channel: '#alerts'
`)
	err := CheckAlertmanagerFile(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "line 2: global.slack_api_url_file") {
		t.Fatalf("CheckAlertmanagerFile(missing slack url file) = %v", err)
	}
	writeTestFile(t, filepath.Join(dir, "slack-url"), "https://hooks.slack.example/x")
	if err := CheckAlertmanagerFile(path); err != nil {
		t.Fatalf("CheckAlertmanagerFile = %v", err)
	}
	writeTestFile(t, path, "route: {receiver: x}\nreceivers: [{name: y}]\n")
	if err := CheckAlertmanagerFile(path); err == nil || !strings.Contains(err.Error(), `undefined receiver "x"`) {
		t.Fatalf("CheckAlertmanagerFile(bad route) = %v", err)
	}
}

// The external URL's path prefix reaches templates ({{ .ExternalURL }},
// the webhook's externalURL) and the API is served under the route prefix.
func TestExternalURLAndRoutePrefix(t *testing.T) {
	sink := newWebhookSink(t, 0)
	cfg := DefaultConfig()
	cfg.Alertmanager = native.Section{Text: webhookConfig(map[string]string{"default": sink.srv.URL}, ""), Line: 1}
	ext, _ := url.Parse("https://nx.example.com/alertmanager/")
	am, err := New(cfg, t.TempDir(), Deps{
		Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(), External: ext,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = am.Close() })
	if am.APIPath() != "/alertmanager/api/v2/" {
		t.Fatalf("APIPath() = %q", am.APIPath())
	}
	mux := http.NewServeMux()
	mux.Handle(am.APIPath(), am.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/alertmanager/api/v2/status")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET status under the prefix: %d %s", resp.StatusCode, b)
	}
	am.Send(alertFor("A", "s", "warning"))
	if got := sink.wait(t, 1, 5*time.Second)[0].ExternalURL; got != "https://nx.example.com/alertmanager" {
		t.Fatalf("externalURL in notification = %q", got)
	}
}

// A notification is on disk when it has been sent: after a crash (no
// Close, no final snapshot) the restarted Alertmanager does not send the
// same group again.
func TestNotificationLogSurvivesCrash(t *testing.T) {
	dir := t.TempDir()
	sink := newWebhookSink(t, 0)
	conf := `route:
  receiver: default
  group_by: [alertname]
  group_wait: 50ms
  group_interval: 1h
  repeat_interval: 1h
  routes:
    - matchers: [alertname="Marker"]
      group_wait: 500ms
receivers:
  - name: default
    webhook_configs: [{url: ` + sink.srv.URL + `}]
`
	cfg := DefaultConfig()
	cfg.Alertmanager = native.Section{Text: conf, Line: 1}
	deps := Deps{Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()}
	am1, err := New(cfg, dir, deps)
	if err != nil {
		t.Fatal(err)
	}
	a := alertFor("Once", "s", "critical")
	am1.Send(a)
	sink.wait(t, 1, 5*time.Second)
	// The pipeline logs a notification after the receiver answered; crash
	// as soon as that entry is on disk (before, it never was).
	deadline := time.Now().Add(5 * time.Second)
	for !am1.nflogOnDisk() {
		if time.Now().After(deadline) {
			t.Fatal("notification log entry not written to disk")
		}
		time.Sleep(5 * time.Millisecond)
	}
	am1.crash()

	deps.Registerer = prometheus.NewRegistry()
	am2, err := New(cfg, dir, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = am2.Close() })
	am2.Send(a)
	// "Marker" waits 10 times longer than "Once" before its first
	// notification: once it has arrived, "Once" had its chance to be resent.
	am2.Send(alertFor("Marker", "s", "critical"))
	sink.wait(t, 2, 5*time.Second)
	msgs := sink.messages()
	var names []string
	for _, m := range msgs {
		names = append(names, m.GroupLabels["alertname"])
	}
	if !slices.Equal(names, []string{"Once", "Marker"}) {
		t.Fatalf("notifications = %v, want [Once Marker] (Once not resent after the crash)", names)
	}
}

// A silence acknowledged by the API is on disk: it survives a crash.
func TestSilenceSurvivesCrash(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	deps := Deps{Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()}
	am1, err := New(cfg, dir, deps)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(am1.Handler())
	body := `{"matchers":[{"name":"alertname","value":"X","isRegex":false}],"startsAt":"` +
		time.Now().Add(-time.Minute).UTC().Format(time.RFC3339) + `","endsAt":"` +
		time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `","createdBy":"a","comment":"b"}`
	resp, err := http.Post(srv.URL+"/api/v2/silences", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("post silence: %d", resp.StatusCode)
	}
	srv.Close()
	am1.crash()

	deps.Registerer = prometheus.NewRegistry()
	am2, err := New(cfg, dir, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = am2.Close() })
	srv2 := httptest.NewServer(am2.Handler())
	t.Cleanup(srv2.Close)
	u, _ := url.Parse(srv2.URL)
	client := amclient.NewHTTPClientWithConfig(strfmt.Default, amclient.DefaultTransportConfig().WithHost(u.Host).WithSchemes([]string{"http"}))
	sils, err := client.Silence.GetSilences(silence.NewGetSilencesParams().WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	if len(sils.Payload) != 1 || *sils.Payload[0].Status.State != models.SilenceStatusStateActive {
		t.Fatalf("silences after crash = %+v, want the one active silence", sils.Payload)
	}
}

func TestIsAlertmanagerYAML(t *testing.T) {
	for text, want := range map[string]bool{
		"route: {receiver: a}\nreceivers: [{name: a}]\n":       true,
		"global: {resolve_timeout: 5m}\nreceivers: []\n":       true,
		"alerting:\n  alertmanager: {route: {receiver: a}}\n":  false,
		"global: {scrape_interval: 15s}\nscrape_configs: []\n": false,
		"metrics: {}\nroute: {receiver: a}\n":                  false,
		"::: not yaml":                                         false,
	} {
		if got := IsAlertmanagerYAML([]byte(text)); got != want {
			t.Errorf("IsAlertmanagerYAML(%q) = %v, want %v", text, got, want)
		}
	}
}
