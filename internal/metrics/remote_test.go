package metrics

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// remoteWriteYAML scrapes target every 100ms and writes to each URL with
// fast retries. The write_relabel_configs drop one series and add a label.
func remoteWriteYAML(target string, urls ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global:
  scrape_interval: 100ms
  scrape_timeout: 100ms
scrape_configs:
- job_name: t
  static_configs: [{targets: [%q]}]
remote_write:
`, target)
	for i, u := range urls {
		fmt.Fprintf(&b, `- url: %s
  name: rw%d
  queue_config: {min_backoff: 50ms, max_backoff: 500ms, batch_send_deadline: 100ms}
  metadata_config: {send_interval: 1s}
  write_relabel_configs:
  - source_labels: [kind]
    regex: drop
    action: drop
  - target_label: via
    replacement: nxwatcher
`, u, i)
	}
	return b.String()
}

var jobT = labels.MustNewMatcher(labels.MatchEqual, "job", "t")

// scraped is every sample the node scraped for job t that remote write
// should deliver: all but the dropped series, with the added label.
func (n *node) scraped(t *testing.T) seriesSamples {
	t.Helper()
	all := n.local(t, jobT)
	want := seriesSamples{}
	for k, v := range all {
		if strings.Contains(k, `kind="drop"`) {
			continue
		}
		want[k] = v
	}
	return want.withLabel("via", "nxwatcher")
}

// waitDelivered stops scraping, then waits until the receiver holds every
// sample the node scraped, and checks the dropped series never arrived.
func waitDelivered(t *testing.T, n *node, r *receiver) {
	t.Helper()
	n.stop()
	want := n.scraped(t)
	if want.count() == 0 {
		t.Fatal("nothing scraped")
	}
	waitFor(t, 60*time.Second, "every scraped sample at "+r.name, func() (bool, string) {
		got := r.samples(t, `{job="t"}`)
		missing := want.missingFrom(got, 5)
		return len(missing) == 0, fmt.Sprintf("%d of %d samples missing, e.g. %v", want.count()-(got.count()), want.count(), missing)
	})
	got := r.samples(t, `{job="t"}`)
	for k := range got {
		if strings.Contains(k, `kind="drop"`) {
			t.Errorf("%s: write_relabel_configs dropped series arrived: %s", r.name, k)
		}
		if !strings.Contains(k, `via="nxwatcher"`) {
			t.Errorf("%s: series without the relabelled label: %s", r.name, k)
		}
	}
	if extra := got.missingFrom(want, 5); len(extra) > 0 {
		t.Errorf("%s holds samples never scraped: %v", r.name, extra)
	}
	t.Logf("%s: %d series, %d samples delivered", r.name, len(want), want.count())
}

// TestRemoteWriteToPrometheusSurvivesOutage scrapes with nxwatcher, writes
// to Debian's Prometheus, stops the receiver for a while and checks every
// scraped sample arrives once it is back (the queue re-reads the WAL).
func TestRemoteWriteToPrometheusSurvivesOutage(t *testing.T) {
	testRemoteWriteSurvivesOutage(t, newPrometheusReceiver(t))
}

// TestRemoteWriteToVictoriaMetricsSurvivesOutage is the same against
// Debian's VictoriaMetrics.
func TestRemoteWriteToVictoriaMetricsSurvivesOutage(t *testing.T) {
	testRemoteWriteSurvivesOutage(t, newVictoriaMetricsReceiver(t))
}

func testRemoteWriteSurvivesOutage(t *testing.T, r *receiver) {
	target, scrapes := scrapeTarget(t)
	n := startNode(t, remoteWriteYAML(target, r.writeURL()))
	rw := map[string]string{"remote_name": "rw0"}

	waitFor(t, 30*time.Second, "first samples sent", func() (bool, string) {
		v := n.metric(t, "prometheus_remote_storage_samples_total", rw)
		return v > 0, fmt.Sprintf("prometheus_remote_storage_samples_total=%g", v)
	})
	r.stop(t)
	down := scrapes.Load()
	waitFor(t, 30*time.Second, "scrapes while the receiver is down", func() (bool, string) {
		return scrapes.Load() >= down+20, fmt.Sprintf("%d scrapes", scrapes.Load()-down)
	})
	waitFor(t, 30*time.Second, "failed sends counted", func() (bool, string) {
		v := n.metric(t, "prometheus_remote_storage_samples_retried_total", rw)
		return v > 0, fmt.Sprintf("prometheus_remote_storage_samples_retried_total=%g", v)
	})
	r.start(t)
	waitDelivered(t, n, r)
	if v := n.metric(t, "prometheus_remote_storage_samples_failed_total", rw); v != 0 {
		t.Errorf("prometheus_remote_storage_samples_failed_total = %g, want 0", v)
	}
}
