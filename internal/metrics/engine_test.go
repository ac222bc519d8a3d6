package metrics

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/promql"
)

func TestSubqueryStepsAreBoundedBeforeEvaluation(t *testing.T) {
	cfg := DefaultConfig().Query
	cfg.MaxSubquerySteps = 10_000
	deps := Deps{Logger: promslog.NewNopLogger(), Registerer: prometheus.NewRegistry()}
	e := NewEngine(cfg, deps)
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
	e := NewEngine(DefaultConfig().Query, deps)
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
			e := NewEngine(cfg, Deps{Logger: promslog.NewNopLogger(), Registerer: prometheus.NewRegistry()})
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
