package metrics

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
)

func TestSubqueryStepsAreBoundedBeforeEvaluation(t *testing.T) {
	cfg := DefaultConfig().Query
	cfg.MaxSubquerySteps = 10_000
	deps := Deps{Logger: promslog.NewNopLogger(), Registerer: prometheus.NewRegistry()}
	e, _ := NewEngine(cfg, "", deps)
	defer e.Close()
	e.SetEvaluationInterval(15 * time.Second)
	db, err := OpenTSDB(t.TempDir(), DefaultConfig(), deps)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	for _, tc := range []struct {
		query   string
		outer   time.Duration // 0: instant query
		refused bool
	}{
		{"rate(up[10y:1s])", 0, true},
		{"max_over_time(up[1h:1s])", 0, false},            // 3,601 steps
		{"max_over_time(up[3h:1s])", 0, true},             // 10,801 steps
		{"max_over_time(up[1d])", 0, false},               // a range selector, no steps
		{"max_over_time(up[1d:])", 0, false},              // default step 15s: 5,761 steps
		{"max_over_time(up[2d:])", 0, true},               // 11,521 steps
		{"max_over_time(up[1h:1s])", 2 * time.Hour, true}, // spans 3h over a range query
		{"max_over_time(max_over_time(up[1m:1s])[1h:1m])", 0, false},
		{"max_over_time(max_over_time(up[1m:1s])[3h:1m])", 0, true}, // inner subquery spans 3h01m at 1s
		{"sum(", 0, false},                                          // the engine reports the parse error itself
	} {
		var err error
		var q promql.Query
		if tc.outer == 0 {
			q, err = e.NewInstantQuery(context.Background(), db, nil, tc.query, now)
		} else {
			q, err = e.NewRangeQuery(context.Background(), db, nil, tc.query, now.Add(-tc.outer), now, time.Minute)
		}
		if q != nil {
			q.Close()
		}
		refused := err != nil && strings.Contains(err.Error(), "max_subquery_steps")
		if refused != tc.refused {
			t.Errorf("%s (outer %v): err = %v, want refused=%v", tc.query, tc.outer, err, tc.refused)
		}
	}
}

// The limit exists because of allocation, so measure it: without the check
// a 10y:1s subquery allocates gigabytes; with it, nothing is evaluated.
func BenchmarkRefusedSubquery(b *testing.B) {
	deps := Deps{Logger: promslog.NewNopLogger(), Registerer: prometheus.NewRegistry()}
	e, _ := NewEngine(DefaultConfig().Query, "", deps)
	defer e.Close()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.NewInstantQuery(context.Background(), nil, nil, "rate(up[10y:1s])", time.Now()); err == nil {
			b.Fatal("not refused")
		}
	}
}

// The step check parses each query once more before the engine does; this
// measures what that adds to building a typical dashboard query.
func BenchmarkNewInstantQuery(b *testing.B) {
	const qs = `sum by (service) (rate(traefik_service_requests_total{code=~"5.."}[5m])) / sum by (service) (rate(traefik_service_requests_total[5m]))`
	for _, tc := range []struct {
		name  string
		steps int64
	}{{"step-check-off", 0}, {"step-check-on", 1_000_000}} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := DefaultConfig().Query
			cfg.MaxSubquerySteps = tc.steps
			e, _ := NewEngine(cfg, "", Deps{Logger: promslog.NewNopLogger(), Registerer: prometheus.NewRegistry()})
			defer e.Close()
			b.ReportAllocs()
			for b.Loop() {
				q, err := e.NewInstantQuery(context.Background(), nil, nil, qs, time.Now())
				if err != nil {
					b.Fatal(err)
				}
				q.Close()
			}
		})
	}
}

// max_concurrency bounds queries running at once, as Prometheus's
// --query.max-concurrency: with one slot held by a query blocked in the
// storage, the next query waits for a slot until its deadline.
func TestMaxConcurrencyMakesQueriesWait(t *testing.T) {
	cfg := DefaultConfig().Query
	cfg.MaxConcurrency = 1
	deps := Deps{Logger: promslog.NewNopLogger(), Registerer: prometheus.NewRegistry()}
	dir := t.TempDir()
	e, err := NewEngine(cfg, dir, deps)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := os.Stat(filepath.Join(dir, "queries.active")); err != nil {
		t.Fatalf("no active query log: %v", err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	blocking := storage.QueryableFunc(func(mint, maxt int64) (storage.Querier, error) {
		return blockingQuerier{entered: entered, release: release}, nil
	})
	slow, err := e.NewInstantQuery(context.Background(), blocking, nil, "up", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	slowDone := make(chan struct{})
	go func() { defer close(slowDone); slow.Exec(context.Background()); slow.Close() }()
	<-entered // the slow query holds the only slot

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	// Prometheus 3.16 waits for the slot while building the query or, in
	// older versions, while executing it; either way the deadline ends it.
	q, err := e.NewInstantQuery(ctx, blocking, nil, "vector(1)", time.Now())
	if err == nil {
		err = q.Exec(ctx).Err
		q.Close()
	}
	close(release)
	<-slowDone
	if err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("second query: err = %v, want it to wait for the slot until its deadline", err)
	}
}

type blockingQuerier struct {
	storage.Querier
	entered, release chan struct{}
}

func (b blockingQuerier) Select(context.Context, bool, *storage.SelectHints, ...*labels.Matcher) storage.SeriesSet {
	close(b.entered)
	<-b.release
	return storage.EmptySeriesSet()
}

func (b blockingQuerier) Close() error { return nil }
