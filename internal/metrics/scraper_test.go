package metrics

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/targetgroup"
)

// flakyConfig is a discovery whose discoverer fails to be created a few
// times (like kubernetes before its API is reachable), then works.
type flakyConfig struct {
	failures *atomic.Int32
}

func (flakyConfig) Name() string { return "flaky" }
func (c flakyConfig) NewDiscoverer(discovery.DiscovererOptions) (discovery.Discoverer, error) {
	if c.failures.Add(-1) >= 0 {
		return nil, errors.New("api unreachable")
	}
	return staticDiscoverer{}, nil
}
func (flakyConfig) NewDiscovererMetrics(prometheus.Registerer, discovery.RefreshMetricsInstantiator) discovery.DiscovererMetrics {
	return nil
}

type staticDiscoverer struct{}

func (staticDiscoverer) Run(ctx context.Context, up chan<- []*targetgroup.Group) {
	select {
	case up <- []*targetgroup.Group{{Source: "flaky", Targets: []model.LabelSet{{model.AddressLabel: "127.0.0.1:1"}}}}:
	case <-ctx.Done():
	}
	<-ctx.Done()
}

func TestRetryingDiscovererRecordsErrorThenRecovers(t *testing.T) {
	status := newDiscoveryStatus()
	var failures atomic.Int32
	failures.Store(2)
	d := &retryingDiscoverer{
		inner:  flakyConfig{failures: &failures},
		opts:   discovery.DiscovererOptions{Logger: promslog.NewNopLogger(), SetName: "job-a"},
		status: status,
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	up := make(chan []*targetgroup.Group, 1)
	done := make(chan struct{})
	go func() { d.Run(ctx, up); close(done) }()

	// The first failure is visible at once, with the discovery's error.
	deadline := time.Now().Add(5 * time.Second)
	for len(status.snapshot()["job-a"]) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no failure recorded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	f := status.snapshot()["job-a"][0]
	if f.mechanism != "flaky" || !strings.Contains(f.err.Error(), "api unreachable") {
		t.Fatalf("failure = %+v", f)
	}
	// After two failures (1s + 2s backoff) the discoverer runs and the failure clears.
	select {
	case tgs := <-up:
		if len(tgs) != 1 || tgs[0].Source != "flaky" {
			t.Fatalf("target groups = %v", tgs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("discoverer never recovered")
	}
	if n := len(status.snapshot()); n != 0 {
		t.Fatalf("failures after recovery = %d, want 0", n)
	}
	cancel()
	<-done
}

func TestDiscoveryFailureTargetIsDownWithTheError(t *testing.T) {
	sc := &promconfig.ScrapeConfig{JobName: "nx-backend", Scheme: "http", MetricsPath: "/metrics",
		ScrapeInterval: model.Duration(15 * time.Second), ScrapeTimeout: model.Duration(10 * time.Second)}
	tg := discoveryFailureTarget(sc, discoveryFailure{mechanism: "kubernetes", err: errors.New("no in-cluster config"), since: time.Now()})
	if tg.Health() != "down" {
		t.Fatalf("health = %s, want down", tg.Health())
	}
	if err := tg.LastError(); err == nil || !strings.Contains(err.Error(), "kubernetes cannot start: no in-cluster config") {
		t.Fatalf("last error = %v", err)
	}
	if got := tg.URL().String(); got != "http://kubernetes_sd/metrics" {
		t.Fatalf("url = %s", got)
	}
}

func TestDiscoveryStatusForgetsRemovedJobs(t *testing.T) {
	s := newDiscoveryStatus()
	s.set("a", "kubernetes", errors.New("x"))
	s.set("b", "kubernetes", errors.New("y"))
	s.retain(map[string]bool{"b": true})
	if snap := s.snapshot(); len(snap) != 1 || len(snap["b"]) != 1 {
		t.Fatalf("after retain = %v", snap)
	}
}
