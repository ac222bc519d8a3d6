package alerting

import (
	"fmt"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/nflog/nflogpb"
	"github.com/prometheus/client_golang/prometheus"
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

// BenchmarkNflogWriteThrough measures one notification-log entry written
// through to disk (GC + snapshot + fsync, see durableNflog) with 1000
// other groups in the log, sequentially (no group commit helps). It
// reports the process's CPU time per entry next to wall time, since the
// fsync dominates wall time and depends on the disk.
func BenchmarkNflogWriteThrough(b *testing.B) {
	cfg := DefaultConfig()
	am, err := New(cfg, b.TempDir(), Deps{Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = am.Close() })
	d := durableNflog{am}
	rcv := &nflogpb.Receiver{GroupName: "default", Integration: "webhook", Idx: 0}
	for i := range 1000 {
		if err := am.nflog.Log(rcv, fmt.Sprintf("{}:{alertname=\"A%d\"}", i), []uint64{uint64(i)}, nil, nil, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	i := 0
	for b.Loop() {
		if err := d.Log(rcv, "{}:{alertname=\"bench\"}", []uint64{uint64(i)}, nil, nil, 0); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/entry")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
