package alerting

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-openapi/strfmt"
	"github.com/prometheus/alertmanager/api/v2/client/silence"
	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"

	"github.com/nx-watcher/nxwatcher/internal/config/native"
)

func webhookConfig(urls map[string]string, extra string) string {
	var b strings.Builder
	b.WriteString(`route:
  receiver: ` + firstKey(urls) + `
  group_by: [alertname, service]
  group_wait: 50ms
  group_interval: 300ms
  repeat_interval: 1s
` + extra + `
receivers:
`)
	for name, u := range urls {
		fmt.Fprintf(&b, "  - name: %s\n    webhook_configs:\n      - url: %s\n        send_resolved: true\n", name, u)
	}
	return b.String()
}

func firstKey(m map[string]string) string {
	for k := range m {
		if k == "default" {
			return k
		}
	}
	for k := range m {
		return k
	}
	return ""
}

func alertFor(name, service, severity string) *notifier.Alert {
	return &notifier.Alert{
		Labels:      labels.FromStrings("alertname", name, "service", service, "severity", severity),
		Annotations: labels.FromStrings("summary", "Service "+service+" is on fire"),
		StartsAt:    time.Now(),
		EndsAt:      time.Now().Add(time.Hour),
	}
}

func TestSendDeliversToWebhookWithGroupingAndRepeat(t *testing.T) {
	sink := newWebhookSink(t, 0)
	ta := startAM(t, t.TempDir(), webhookConfig(map[string]string{"default": sink.srv.URL}, ""))

	ta.am.Send(alertFor("HighErrorRate", "identity", "critical"), alertFor("HighErrorRate", "identity", "critical"))
	// A second alert of the same group arriving inside group_wait joins
	// the first notification.
	second := alertFor("HighErrorRate", "identity", "critical")
	second.Labels = labels.FromStrings("alertname", "HighErrorRate", "service", "identity", "severity", "critical", "pod", "b")
	ta.am.Send(second)

	msgs := sink.wait(t, 1, 5*time.Second)
	first := msgs[0]
	if first.Receiver != "default" || first.Status != "firing" {
		t.Fatalf("receiver/status = %q/%q", first.Receiver, first.Status)
	}
	if got := first.GroupLabels; got["alertname"] != "HighErrorRate" || got["service"] != "identity" || len(got) != 2 {
		t.Fatalf("group labels = %v", got)
	}
	if len(first.Alerts) != 2 {
		t.Fatalf("first notification has %d alerts, want 2 (grouped)", len(first.Alerts))
	}
	if first.CommonAnnotations["summary"] != "Service identity is on fire" {
		t.Fatalf("common annotations = %v", first.CommonAnnotations)
	}

	// Nothing changes: the next notification is a repeat, no sooner than
	// repeat_interval (1s) after the first.
	msgs = sink.wait(t, 2, 5*time.Second)
	gap := msgs[1].received.Sub(msgs[0].received)
	if gap < 900*time.Millisecond {
		t.Fatalf("repeat came after %v, want >= repeat_interval 1s", gap)
	}
	if len(msgs[1].Alerts) != 2 {
		t.Fatalf("repeat has %d alerts", len(msgs[1].Alerts))
	}
}

func TestInhibitionSuppressesWarningWhenCriticalFires(t *testing.T) {
	sink := newWebhookSink(t, 0)
	ta := startAM(t, t.TempDir(), webhookConfig(map[string]string{"default": sink.srv.URL}, `
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [service]
`))
	ta.am.Send(alertFor("IdentityServiceDown", "identity", "critical"))
	ta.am.Send(alertFor("PodCrashLooping", "identity", "warning"))
	ta.am.Send(alertFor("PodCrashLooping", "billing", "warning")) // other service: not inhibited

	// Two groups can notify: IdentityServiceDown/identity and
	// PodCrashLooping/billing. Wait for both plus a repeat cycle.
	sink.wait(t, 2, 5*time.Second)
	time.Sleep(600 * time.Millisecond)
	for _, m := range sink.messages() {
		for _, a := range m.Alerts {
			if a.Labels["alertname"] == "PodCrashLooping" && a.Labels["service"] == "identity" {
				t.Fatalf("inhibited alert was delivered: %v", a.Labels)
			}
		}
	}
	seen := map[string]bool{}
	for _, m := range sink.messages() {
		for _, a := range m.Alerts {
			seen[a.Labels["alertname"]+"/"+a.Labels["service"]] = true
		}
	}
	if !seen["IdentityServiceDown/identity"] || !seen["PodCrashLooping/billing"] {
		t.Fatalf("delivered = %v", seen)
	}
}

func TestSilenceSuppressesAndSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	sink := newWebhookSink(t, 0)
	conf := webhookConfig(map[string]string{"default": sink.srv.URL}, "")
	ta := startAM(t, dir, conf)

	now := strfmt.DateTime(time.Now().Add(-time.Minute))
	end := strfmt.DateTime(time.Now().Add(time.Hour))
	name, value, isRegex, isEqual := "service", "identity", false, true
	createdBy, comment := "oncall", "maintenance"
	res, err := ta.client.Silence.PostSilences(silence.NewPostSilencesParams().WithContext(t.Context()).WithSilence(&models.PostableSilence{
		Silence: models.Silence{
			Matchers:  models.Matchers{{Name: &name, Value: &value, IsRegex: &isRegex, IsEqual: &isEqual}},
			StartsAt:  &now,
			EndsAt:    &end,
			CreatedBy: &createdBy,
			Comment:   &comment,
		},
	}))
	if err != nil {
		t.Fatalf("post silence: %v", err)
	}
	id := res.Payload.SilenceID
	if id == "" {
		t.Fatal("empty silence id")
	}

	ta.am.Send(alertFor("HighErrorRate", "identity", "critical"))
	ta.am.Send(alertFor("HighErrorRate", "billing", "critical"))
	sink.wait(t, 1, 5*time.Second)
	time.Sleep(600 * time.Millisecond)
	for _, m := range sink.messages() {
		for _, a := range m.Alerts {
			if a.Labels["service"] == "identity" {
				t.Fatalf("silenced alert delivered: %v", a.Labels)
			}
		}
	}

	// Restart on the same directory: the silence is still there and
	// active.
	ta.stopRun()
	ta2 := startAM(t, dir, conf)
	got, err := ta2.client.Silence.GetSilence(silence.NewGetSilenceParams().WithContext(t.Context()).WithSilenceID(strfmt.UUID(id)))
	if err != nil {
		t.Fatalf("get silence after restart: %v", err)
	}
	if *got.Payload.Status.State != models.SilenceStatusStateActive || *got.Payload.CreatedBy != "oncall" {
		t.Fatalf("silence after restart = %+v", got.Payload)
	}
	before := len(sink.messages())
	ta2.am.Send(alertFor("HighErrorRate", "identity", "critical"))
	time.Sleep(500 * time.Millisecond)
	for _, m := range sink.messages()[before:] {
		for _, a := range m.Alerts {
			if a.Labels["service"] == "identity" {
				t.Fatalf("silenced alert delivered after restart: %v", a.Labels)
			}
		}
	}
}

func TestSilencePersistedBeforeAcknowledged(t *testing.T) {
	dir := t.TempDir()
	ta := startAM(t, dir, defaultAlertmanagerYAML)
	body := `{"matchers":[{"name":"alertname","value":"X","isRegex":false}],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2999-01-01T00:00:00Z","createdBy":"a","comment":"b"}`
	resp, err := http.Post(ta.srv.URL+"/api/v2/silences", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte("silenceID")) {
		t.Fatalf("status %d body %s", resp.StatusCode, b)
	}
	// No clean shutdown: a fresh instance reads only what is on disk.
	// (The first one keeps running until cleanup.)
	other := startAM(t, dir, defaultAlertmanagerYAML)
	sils, err := other.client.Silence.GetSilences(silence.NewGetSilencesParams().WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	if len(sils.Payload) != 1 {
		t.Fatalf("silences on disk after ack = %d, want 1", len(sils.Payload))
	}
}

func TestBadInputToAPI(t *testing.T) {
	ta := startAM(t, t.TempDir(), defaultAlertmanagerYAML)
	cases := []struct {
		name, path, body string
		wantStatus       int
		wantMsg          string
	}{
		{"alerts not json", "/api/v2/alerts", `{not json`, http.StatusBadRequest, "parsing alerts body from"},
		{"alert without labels", "/api/v2/alerts", `[{"labels":{},"annotations":{}}]`, http.StatusBadRequest, "at least one label pair required"},
		{"alert ends before start", "/api/v2/alerts", `[{"labels":{"a":"b"},"startsAt":"2020-01-02T00:00:00Z","endsAt":"2020-01-01T00:00:00Z"}]`, http.StatusBadRequest, "start time must be before end time"},
		{"silence without matchers", "/api/v2/silences", `{"matchers":[],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2999-01-01T00:00:00Z","createdBy":"a","comment":"b"}`, http.StatusUnprocessableEntity, "matchers in body should have at least 1 items"},
		{"silence ends before start", "/api/v2/silences", `{"matchers":[{"name":"a","value":"b","isRegex":false}],"startsAt":"2999-01-01T00:00:00Z","endsAt":"2020-01-01T00:00:00Z","createdBy":"a","comment":"b"}`, http.StatusBadRequest, "Failed to create silence: start time must be before end time"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(ta.srv.URL+tc.path, "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, body %s", resp.StatusCode, b)
			}
			if !strings.Contains(string(b), tc.wantMsg) {
				t.Fatalf("body %q does not contain %q", b, tc.wantMsg)
			}
		})
	}
	if v := metricValue(t, ta.reg, "nxwatcher_alerting_api_rejected_requests_total", map[string]string{"endpoint": "silences"}); v != 2 {
		t.Fatalf("rejected silences = %v, want 2", v)
	}
	if v := metricValue(t, ta.reg, "nxwatcher_alerting_api_rejected_requests_total", map[string]string{"endpoint": "alerts"}); v != 3 {
		t.Fatalf("rejected alerts = %v, want 3", v)
	}
	if v := metricValue(t, ta.reg, "alertmanager_alerts_invalid_total", nil); v < 2 {
		t.Fatalf("alertmanager_alerts_invalid_total = %v, want >= 2", v)
	}
	// Still serving after the bad input.
	resp, err := http.Get(ta.srv.URL + "/api/v2/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status after bad input = %d", resp.StatusCode)
	}
}

func TestInvalidSendIsCountedAndDropped(t *testing.T) {
	ta := startAM(t, t.TempDir(), defaultAlertmanagerYAML)
	bad := &notifier.Alert{Labels: labels.EmptyLabels(), StartsAt: time.Now()}
	ta.am.Send(bad, alertFor("A", "s", "warning"))
	if v := metricValue(t, ta.reg, "nxwatcher_alerting_inprocess_alerts_total", map[string]string{"result": "invalid"}); v != 1 {
		t.Fatalf("invalid = %v", v)
	}
	if v := metricValue(t, ta.reg, "nxwatcher_alerting_inprocess_alerts_total", map[string]string{"result": "accepted"}); v != 1 {
		t.Fatalf("accepted = %v", v)
	}
}

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		name string
		cfg  func() Config
		want []string
	}{
		{"unknown receiver", func() Config {
			c := DefaultConfig()
			c.Alertmanager = native.Section{Text: "route:\n  receiver: nope\nreceivers:\n  - name: default\n", Line: 10}
			return c
		}, []string{"alerting.alertmanager", `undefined receiver "nope"`}},
		{"bad yaml line is a line of the serve file", func() Config {
			c := DefaultConfig()
			c.Alertmanager = native.Section{Text: "route:\n  receiver: default\nreceivers: notalist\n", Line: 10}
			return c
		}, []string{"alerting.alertmanager", "line 12"}},
		{"unknown key", func() Config {
			c := DefaultConfig()
			c.Alertmanager = native.Section{Text: "route:\n  receiver: default\nreceivers:\n  - name: default\nfoo: 1\n", Line: 1}
			return c
		}, []string{"field foo not found"}},
		{"both sources and bad port", func() Config {
			c := DefaultConfig()
			c.Alertmanager = native.Section{Text: defaultAlertmanagerYAML, Line: 1}
			c.AlertmanagerConfigFile = "/etc/am.yml"
			c.ListenAddress = "9093"
			c.Retention = 0
			return c
		}, []string{"not both", "listen_address", "retention"}},
		{"empty sub-route panics upstream", func() Config {
			c := DefaultConfig()
			c.Alertmanager = native.Section{Text: "route:\n  receiver: a\n  routes:\n    -\nreceivers: [{name: a}]\n", Line: 1}
			return c
		}, []string{"alerting.alertmanager", "invalid configuration"}},
		{"missing file", func() Config {
			c := DefaultConfig()
			c.AlertmanagerConfigFile = "/nonexistent/am.yml"
			return c
		}, []string{"alertmanager_config_file (/nonexistent/am.yml)", "no such file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg().Validate()
			if err == nil {
				t.Fatal("Validate() = nil")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
}

func TestReloadRejectsBadConfigAndKeepsOld(t *testing.T) {
	sink := newWebhookSink(t, 0)
	ta := startAM(t, t.TempDir(), webhookConfig(map[string]string{"default": sink.srv.URL}, ""))
	bad := DefaultConfig()
	bad.Alertmanager = native.Section{Text: "route:\n  receiver: missing\nreceivers: []\n", Line: 1}
	if err := ta.am.ApplyConfig(bad); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("ApplyConfig(bad) = %v", err)
	}
	if v := metricValue(t, ta.reg, "nxwatcher_alerting_config_reloads_total", map[string]string{"result": "failure"}); v != 1 {
		t.Fatalf("failed reloads = %v", v)
	}
	ta.am.Send(alertFor("A", "s", "warning"))
	sink.wait(t, 1, 5*time.Second) // old config still routes to the webhook

	// A good reload takes effect: new receiver gets the next alerts.
	sink2 := newWebhookSink(t, 0)
	good := DefaultConfig()
	good.Alertmanager = native.Section{Text: webhookConfig(map[string]string{"default": sink2.srv.URL}, ""), Line: 1}
	if err := ta.am.ApplyConfig(good); err != nil {
		t.Fatal(err)
	}
	ta.am.Send(alertFor("B", "s", "warning"))
	sink2.wait(t, 1, 5*time.Second)
}

func TestFailingWebhookRetriesAndDoesNotBlockOthers(t *testing.T) {
	down := newWebhookSink(t, http.StatusInternalServerError)
	up := newWebhookSink(t, 0)
	conf := `route:
  receiver: up
  group_by: [alertname]
  group_wait: 50ms
  group_interval: 300ms
  repeat_interval: 1h
  routes:
    - matchers: [team="down"]
      receiver: down
      continue: true
    - matchers: [team="down"]
      receiver: up
receivers:
  - name: up
    webhook_configs: [{url: ` + up.srv.URL + `}]
  - name: down
    webhook_configs: [{url: ` + down.srv.URL + `}]
`
	ta := startAM(t, t.TempDir(), conf)
	a := alertFor("Broken", "x", "critical")
	a.Labels = labels.FromStrings("alertname", "Broken", "team", "down")
	ta.am.Send(a)

	up.wait(t, 1, 5*time.Second)
	// The failing receiver is retried (with backoff) while the other one
	// has already delivered.
	down.wait(t, 2, 10*time.Second)
	// The counter is bumped after the receiver answers: poll briefly.
	deadline := time.Now().Add(5 * time.Second)
	for {
		v := metricValue(t, ta.reg, "alertmanager_notification_requests_failed_total", map[string]string{"integration": "webhook"})
		if v >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alertmanager_notification_requests_failed_total{integration=webhook} = %v, want >= 2", v)
		}
		time.Sleep(20 * time.Millisecond)
	}
	msgs := down.messages()
	if gap := msgs[1].received.Sub(msgs[0].received); gap <= 0 {
		t.Fatalf("retry gap = %v", gap)
	}
}
