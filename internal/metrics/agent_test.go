package metrics

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// recordingAgent records every float sample committed to the agent, since
// an agent cannot be queried.
type recordingAgent struct {
	*Agent
	mu      sync.Mutex
	samples seriesSamples
}

func (r *recordingAgent) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &recordingAppender{AppenderV2: r.Agent.AppenderV2(ctx), r: r, pending: seriesSamples{}}
}

type recordingAppender struct {
	storage.AppenderV2
	r       *recordingAgent
	pending seriesSamples
}

func (a *recordingAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	ref, err := a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
	if err == nil && h == nil && fh == nil {
		a.pending[ls.String()] = append(a.pending[ls.String()], sample{t, v})
	}
	return ref, err
}

func (a *recordingAppender) Commit() error {
	if err := a.AppenderV2.Commit(); err != nil {
		return err
	}
	a.r.mu.Lock()
	defer a.r.mu.Unlock()
	for k, v := range a.pending {
		a.r.samples[k] = append(a.r.samples[k], v...)
	}
	return nil
}

// TestAgentModeForwardsEveryScrapedSample runs `metrics.mode: agent`
// against Debian's Prometheus with a receiver outage: every committed
// sample arrives, and the agent answers no queries.
func TestAgentModeForwardsEveryScrapedSample(t *testing.T) {
	r := newPrometheusReceiver(t)
	target, scrapes := scrapeTarget(t)
	cfg := resolveConfig(t, remoteWriteYAML(target, r.writeURL()))
	cfg.Mode = ModeAgent
	cfg.RemoteFlushDeadline = 0
	reg := prometheus.NewRegistry()
	deps := Deps{Logger: promslog.NewNopLogger(), Registerer: reg}
	ag, err := OpenAgent(t.TempDir(), cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	defer ag.Close()
	if _, err := ag.Querier(0, 1); err == nil {
		t.Error("agent answered a query")
	}
	rec := &recordingAgent{Agent: ag, samples: seriesSamples{}}
	sc, err := NewScraper(rec, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := ag.ApplyConfig(cfg.Parsed); err != nil {
		t.Fatal(err)
	}
	if err := sc.ApplyConfig(cfg.Parsed); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx) }()
	n := &node{reg: reg}
	waitFor(t, 30*time.Second, "first samples sent", func() (bool, string) {
		v := n.metric(t, "prometheus_remote_storage_samples_total", nil)
		return v > 0, fmt.Sprintf("%g", v)
	})
	r.stop(t)
	down := scrapes.Load()
	waitFor(t, 30*time.Second, "scrapes while the receiver is down", func() (bool, string) {
		return scrapes.Load() >= down+20, fmt.Sprintf("%d scrapes", scrapes.Load()-down)
	})
	r.start(t)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	keep := seriesSamples{}
	for k, v := range rec.samples {
		ls, _ := parseSeries(k)
		if ls.Get("kind") == "drop" {
			continue
		}
		keep[k] = v
	}
	rec.mu.Unlock()
	keep = keep.withLabel("via", "nxwatcher")
	waitFor(t, 60*time.Second, "every committed sample at the receiver", func() (bool, string) {
		missing := keep.missingFrom(r.samples(t, `{job="t"}`), 5)
		return len(missing) == 0, fmt.Sprint(missing)
	})
	t.Logf("agent: %d samples delivered across an outage", keep.count())
}
