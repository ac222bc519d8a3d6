package alerting

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
)

// BenchmarkSend measures the in-process path from the ruler into the alert
// store and dispatcher, in batches of 100 distinct alerts.
func BenchmarkSend(b *testing.B) {
	ta := startAM(b, b.TempDir(), defaultAlertmanagerYAML)
	batch := make([]*notifier.Alert, 100)
	for i := range batch {
		batch[i] = &notifier.Alert{
			Labels:      labels.FromStrings("alertname", "HighErrorRate", "service", fmt.Sprintf("svc-%d", i), "severity", "critical"),
			Annotations: labels.FromStrings("summary", "error rate above 5%"),
			StartsAt:    time.Now(),
			EndsAt:      time.Now().Add(time.Hour),
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ta.am.Send(batch...)
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "alerts/s")
}

func FuzzLoadAlertmanagerConfig(f *testing.F) {
	f.Add(defaultAlertmanagerYAML)
	f.Add("route:\n  receiver: a\n  routes:\n    - matchers: [x=~\"y\"]\n      receiver: a\nreceivers:\n  - name: a\n    webhook_configs: [{url: 'http://x'}]\n")
	f.Add("route: {receiver: a}\nreceivers: [{name: a}]\ninhibit_rules: [{source_matchers: ['a=b'], target_matchers: ['c!=d']}]\n")
	f.Add("route: {receiver: a}\nreceivers:\n  - name: a\n    webhook_configs:\n      - url: http://x\n        http_config: {authorization: {credentials_file: missing}}\ntemplates: ['*.tmpl']\n")
	f.Add("global: {slack_api_url_file: x}\nroute: {receiver: a}\nreceivers: [{name: a, slack_configs: [{channel: c}]}]\n")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body string) {
		cfg := DefaultConfig()
		cfg.BaseDir = dir
		cfg.Alertmanager.Text = body
		cfg.Alertmanager.Line = 7
		// Must never panic; an error must name the section.
		if _, err := cfg.LoadAlertmanagerConfig(); err != nil && body != "" {
			if got := err.Error(); len(got) < len("alerting.alertmanager") || got[:len("alerting.alertmanager")] != "alerting.alertmanager" {
				t.Fatalf("error does not name the section: %v", err)
			}
		}
	})
}
