package metrics

import (
	"encoding/pem"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
)

// remoteWriteYAML scrapes target every 100ms and writes to each URL with
// fast retries. The write_relabel_configs drop one series and add a label.
func remoteWriteYAML(target string, urls ...string) string {
	eps := make([]endpoint, len(urls))
	for i, u := range urls {
		eps[i] = endpoint{url: u}
	}
	return remoteWriteYAMLWith(target, eps...)
}

// endpoint is one remote_write entry; extra is YAML added to it.
type endpoint struct {
	url, extra string
}

func remoteWriteYAMLWith(target string, eps ...endpoint) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global:
  scrape_interval: 100ms
  scrape_timeout: 100ms
scrape_configs:
- job_name: t
  static_configs: [{targets: [%q]}]
remote_write:
`, target)
	for i, ep := range eps {
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
`, ep.url, i)
		if ep.extra != "" {
			b.WriteString("  " + strings.ReplaceAll(strings.TrimSpace(ep.extra), "\n", "\n  ") + "\n")
		}
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

// TestRemoteWriteProtobuf2AuthAndHeaders sends protobuf 2.0 with basic
// auth and a custom header to Prometheus's own receiver; every sample
// arrives and no request goes without credentials.
func TestRemoteWriteProtobuf2AuthAndHeaders(t *testing.T) {
	target, _ := scrapeTarget(t)
	r := newMemReceiver(t, "forwarder", "s3cret")
	n := startNode(t, remoteWriteYAMLWith(target, endpoint{url: r.writeURL(), extra: `
protobuf_message: io.prometheus.write.v2.Request
basic_auth: {username: forwarder, password: s3cret}
headers: {X-Scope-OrgID: team-a}`}))
	waitFor(t, 30*time.Second, "some requests", func() (bool, string) {
		return r.requests.Load() >= 5, fmt.Sprintf("%d requests", r.requests.Load())
	})
	n.stop()
	want := n.scraped(t)
	waitFor(t, 30*time.Second, "every sample", func() (bool, string) {
		missing := want.missingFrom(r.samples(t), 5)
		return len(missing) == 0, fmt.Sprint(missing)
	})
	if got := r.refused.Load(); got != 0 {
		t.Errorf("%d requests without the right credentials", got)
	}
	h := *r.last.Load()
	if got := h.Get("X-Scope-OrgID"); got != "team-a" {
		t.Errorf("X-Scope-OrgID = %q", got)
	}
	if got := h.Get("Content-Type"); !strings.Contains(got, "io.prometheus.write.v2.Request") {
		t.Errorf("Content-Type = %q, want protobuf 2.0", got)
	}
	if got := h.Get("X-Prometheus-Remote-Write-Version"); !strings.HasPrefix(got, "2.") {
		t.Errorf("X-Prometheus-Remote-Write-Version = %q", got)
	}
}

// TestReloadAddsAndRemovesQueuesWithoutLosingSamples: a reload that adds a
// queue keeps the unchanged one running, so its receiver still gets every
// sample; the new queue starts delivering; removing a queue stops it.
func TestReloadAddsAndRemovesQueuesWithoutLosingSamples(t *testing.T) {
	target, scrapes := scrapeTarget(t)
	a, b := newMemReceiver(t, "", ""), newMemReceiver(t, "", "")
	n := startNode(t, remoteWriteYAML(target, a.writeURL()))
	waitFor(t, 30*time.Second, "first send to a", func() (bool, string) {
		return a.requests.Load() > 0, "no request"
	})
	apply := func(yaml string) {
		t.Helper()
		cfg := resolveConfig(t, yaml)
		if err := n.db.ApplyConfig(TSDBConfig(cfg)); err != nil {
			t.Fatal(err)
		}
		if err := n.scraper.ApplyConfig(cfg.Parsed); err != nil {
			t.Fatal(err)
		}
	}
	apply(remoteWriteYAML(target, a.writeURL(), b.writeURL()))
	at := scrapes.Load()
	waitFor(t, 30*time.Second, "scrapes and sends to b after the reload", func() (bool, string) {
		return scrapes.Load() >= at+10 && b.requests.Load() > 0, fmt.Sprintf("%d scrapes, %d requests to b", scrapes.Load()-at, b.requests.Load())
	})
	n.stop()
	want := n.scraped(t)
	waitFor(t, 30*time.Second, "every sample at a across the reload", func() (bool, string) {
		missing := want.missingFrom(a.samples(t), 5)
		return len(missing) == 0, fmt.Sprint(missing)
	})
	gotB := b.samples(t)
	if gotB.count() == 0 {
		t.Fatal("the added queue sent nothing")
	}
	if extra := gotB.missingFrom(want, 5); len(extra) > 0 {
		t.Errorf("b holds samples never scraped: %v", extra)
	}

	apply(remoteWriteYAML(target, b.writeURL())) // removes a's queue (rw0) and renames b's to rw0
	if v := n.metric(t, "prometheus_remote_storage_samples_total", map[string]string{"url": a.writeURL()}); v != 0 {
		t.Errorf("removed queue still reports %g samples", v)
	}
}

// TestRemoteReadFromPrometheus fills Debian's Prometheus by remote write,
// then reads it back through a second node's queriers (what PromQL uses):
// read_recent, required_matchers and the local-first cut-off as upstream.
func TestRemoteReadFromPrometheus(t *testing.T) {
	r := newPrometheusReceiver(t)
	target, _ := scrapeTarget(t)
	writer := startNode(t, remoteWriteYAML(target, r.writeURL()))
	waitFor(t, 30*time.Second, "some samples sent", func() (bool, string) {
		v := writer.metric(t, "prometheus_remote_storage_samples_total", nil)
		return v >= 20, fmt.Sprintf("%g samples", v)
	})
	waitDelivered(t, writer, r)
	want := writer.scraped(t)
	var first, last int64 = math.MaxInt64, math.MinInt64
	for _, ss := range want {
		first, last = min(first, ss[0].T), max(last, ss[len(ss)-1].T)
	}
	// The reader holds one sample of its own, an hour before the remote data.
	reader := startNode(t, "")
	app := reader.db.Appender(t.Context())
	if _, err := app.Append(0, labels.FromStrings("__name__", "local_only"), first-time.Hour.Milliseconds(), 1); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	read := func(yaml string) seriesSamples {
		t.Helper()
		cfg := resolveConfig(t, yaml)
		if err := reader.db.ApplyConfig(TSDBConfig(cfg)); err != nil {
			t.Fatal(err)
		}
		q, err := reader.db.Querier(first, last)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		out := seriesSamples{}
		ss := q.Select(t.Context(), true, nil, jobT)
		for ss.Next() {
			it := ss.At().Iterator(nil)
			for it.Next() == chunkenc.ValFloat {
				ts, v := it.At()
				out[ss.At().Labels().String()] = append(out[ss.At().Labels().String()], sample{ts, v})
			}
		}
		if err := ss.Err(); err != nil {
			t.Fatal(err)
		}
		if ws := ss.Warnings(); len(ws) > 0 {
			t.Fatalf("warnings: %v", ws.AsErrors())
		}
		return out
	}
	readURL := r.base + "/api/v1/read"
	got := read(fmt.Sprintf("remote_read: [{url: %s, read_recent: true}]", readURL))
	if missing := want.missingFrom(got, 5); len(missing) > 0 {
		t.Errorf("read_recent: samples not read back: %v", missing)
	}
	if got := read(fmt.Sprintf("remote_read: [{url: %s, read_recent: false}]", readURL)); got.count() != 0 {
		t.Errorf("read_recent false: the window is after local data starts, yet %d samples were read remotely", got.count())
	}
	if got := read(fmt.Sprintf("remote_read: [{url: %s, read_recent: true, required_matchers: {job: other}}]", readURL)); got.count() != 0 {
		t.Errorf("required_matchers job=other: %d samples read", got.count())
	}
	if got := read(""); got.count() != 0 {
		t.Errorf("without remote_read: %d samples", got.count())
	}
}

// rawReceiver decodes remote write 1.0 requests and keeps what a test
// asks about: exemplars and metadata.
type rawReceiver struct {
	srv       *httptest.Server
	mu        sync.Mutex
	exemplars []string
	metadata  map[string]string // metric family → type
}

func newRawReceiver(t *testing.T) *rawReceiver {
	r := &rawReceiver{metadata: map[string]string{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		raw, err := snappy.Decode(nil, body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var wr prompb.WriteRequest
		if err := wr.Unmarshal(raw); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, ts := range wr.Timeseries {
			for _, ex := range ts.Exemplars {
				for _, l := range ex.Labels {
					r.exemplars = append(r.exemplars, l.Name+"="+l.Value)
				}
			}
		}
		for _, md := range wr.Metadata {
			r.metadata[md.MetricFamilyName] = md.Type.String()
		}
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// TestRemoteWriteSendsExemplarsAndMetadata: with send_exemplars the
// exemplars of an OpenMetrics scrape are sent; metadata_config sends the
// scraped families' types.
func TestRemoteWriteSendsExemplarsAndMetadata(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
		fmt.Fprintf(w, "# TYPE orders counter\n# HELP orders Orders.\norders_total %d # {trace_id=\"4bf92f3577b34da6\"} 1.0\n# EOF\n", time.Now().UnixNano())
	}))
	defer srv.Close()
	r := newRawReceiver(t)
	n := startNode(t, remoteWriteYAMLWith(strings.TrimPrefix(srv.URL, "http://"), endpoint{url: r.srv.URL, extra: "send_exemplars: true"}))
	waitFor(t, 30*time.Second, "an exemplar and metadata", func() (bool, string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		ok := len(r.exemplars) > 0 && r.metadata["orders"] == "COUNTER"
		return ok, fmt.Sprintf("exemplars %v, metadata %v", r.exemplars, r.metadata)
	})
	n.stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.exemplars[0] != "trace_id=4bf92f3577b34da6" {
		t.Errorf("exemplar labels %v", r.exemplars[0])
	}
}

// TestRemoteWriteNativeHistograms: a native histogram in the TSDB is sent
// only with send_native_histograms.
func TestRemoteWriteNativeHistograms(t *testing.T) {
	for _, send := range []bool{false, true} {
		t.Run(fmt.Sprint("send=", send), func(t *testing.T) {
			var histograms, floats atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				body, _ := io.ReadAll(req.Body)
				raw, _ := snappy.Decode(nil, body)
				var wr prompb.WriteRequest
				if err := wr.Unmarshal(raw); err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				for _, ts := range wr.Timeseries {
					histograms.Add(int64(len(ts.Histograms)))
					floats.Add(int64(len(ts.Samples)))
				}
				w.WriteHeader(http.StatusNoContent)
			}))
			defer srv.Close()
			n := startNode(t, fmt.Sprintf(`remote_write:
- url: %s
  send_native_histograms: %v
  queue_config: {batch_send_deadline: 100ms}
`, srv.URL, send))
			// The queue's WAL watcher starts asynchronously and skips samples
			// older than its start, so append (as scrapes would) until the
			// float marker arrives.
			h := tsdbutil.GenerateTestHistogram(1)
			waitFor(t, 30*time.Second, "the float marker sent", func() (bool, string) {
				now := time.Now().UnixMilli()
				app := n.db.Appender(t.Context())
				if _, err := app.AppendHistogram(0, labels.FromStrings("__name__", "latency_seconds"), now, h, nil); err != nil {
					t.Fatal(err)
				}
				if _, err := app.Append(0, labels.FromStrings("__name__", "marker"), now, 1); err != nil {
					t.Fatal(err)
				}
				if err := app.Commit(); err != nil {
					t.Fatal(err)
				}
				return floats.Load() > 0, "nothing yet"
			})
			if send {
				waitFor(t, 30*time.Second, "the histogram sent", func() (bool, string) {
					return histograms.Load() > 0, fmt.Sprint(histograms.Load())
				})
			} else if histograms.Load() != 0 {
				t.Errorf("%d histograms sent without send_native_histograms", histograms.Load())
			}
		})
	}
}

// TestRemoteWriteOverTLS sends to an HTTPS receiver whose CA is given by
// tls_config.ca_file, with a bearer token from authorization.
func TestRemoteWriteOverTLS(t *testing.T) {
	var got atomic.Int64
	var badAuth atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Authorization") != "Bearer t0ken" {
			badAuth.Add(1)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		io.Copy(io.Discard, req.Body)
		got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	target, _ := scrapeTarget(t)
	n := startNode(t, remoteWriteYAMLWith(target, endpoint{url: srv.URL + "/api/v1/write", extra: fmt.Sprintf(`
tls_config: {ca_file: %s}
authorization: {credentials: t0ken}`, caFile)}))
	waitFor(t, 30*time.Second, "requests over TLS", func() (bool, string) {
		return got.Load() >= 3, fmt.Sprintf("%d requests, %d refused", got.Load(), badAuth.Load())
	})
	n.stop()
	if badAuth.Load() != 0 {
		t.Errorf("%d requests without the bearer token", badAuth.Load())
	}
}

// TestRemoteWrite2SendsMetadata: with a protobuf 2.0 queue configured at
// start-up, scraped metric types and help reach the receiver (they travel
// in the WAL's metadata records).
func TestRemoteWrite2SendsMetadata(t *testing.T) {
	var mu sync.Mutex
	types := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		raw, err := snappy.Decode(nil, body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var wr writev2.Request
		if err := wr.Unmarshal(raw); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		samples := 0
		mu.Lock()
		for _, ts := range wr.Timeseries {
			samples += len(ts.Samples)
			name := ""
			for i := 0; i+1 < len(ts.LabelsRefs); i += 2 {
				if wr.Symbols[ts.LabelsRefs[i]] == "__name__" {
					name = wr.Symbols[ts.LabelsRefs[i+1]]
				}
			}
			if ts.Metadata.Type != writev2.Metadata_METRIC_TYPE_UNSPECIFIED {
				types[name] = ts.Metadata.Type.String() + "|" + wr.Symbols[ts.Metadata.HelpRef]
			}
		}
		mu.Unlock()
		w.Header().Set("X-Prometheus-Remote-Write-Samples-Written", fmt.Sprint(samples))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	target, _ := scrapeTarget(t)
	n := startNode(t, remoteWriteYAMLWith(target, endpoint{url: srv.URL, extra: "protobuf_message: io.prometheus.write.v2.Request"}))
	waitFor(t, 30*time.Second, "test_value's metadata", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return types["test_value"] == "METRIC_TYPE_GAUGE|Scrape count.", fmt.Sprint(types)
	})
	n.stop()
}
