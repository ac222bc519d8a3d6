package tracestore

import (
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/traceql"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// TestMinSpanDurationSkipsGroups: with SearchRequest.MinSpanDuration set
// (from traceql's MinSpanDuration), column groups whose longest span is
// shorter are not decoded, and metrics answer exactly as without it —
// including a long span in one group and a trace with a part in the head.
func TestMinSpanDurationSkipsGroups(t *testing.T) {
	old := chunkTraces
	chunkTraces = 8 // many groups
	t.Cleanup(func() { chunkTraces = old })
	dir := t.TempDir()
	db, _ := openTest(t, dir, nil)
	defer db.Close()
	g := storetest.NewGen(31, testBase.UnixNano())
	var shared ptrace.Traces
	for round := 0; round < 2; round++ {
		for i := 0; i < 80; i++ {
			_, td := g.Trace(1 + i%6)
			if round == 1 && i == 40 { // one span of 3 s in one group
				s := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
				s.SetEndTimestamp(s.StartTimestamp() + pcommon.Timestamp(3*time.Second))
			}
			if round == 0 && i == 10 {
				shared = td
			}
			if err := db.ConsumeTraces(t.Context(), td); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// A second part of an early trace, with a long span, in the head.
	extra := ptrace.NewTraces()
	shared.ResourceSpans().At(0).CopyTo(extra.ResourceSpans().AppendEmpty())
	s := extra.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	s.SetSpanID(pcommon.SpanID{9, 9, 9, 9, 9, 9, 9, 9})
	s.SetEndTimestamp(s.StartTimestamp() + pcommon.Timestamp(5*time.Second))
	if err := db.ConsumeTraces(t.Context(), extra); err != nil {
		t.Fatal(err)
	}
	start, end := testBase, testBase.Add(time.Minute)
	for _, q := range []string{`{ duration > 2s } | rate()`, `{ duration >= 4s } | count_over_time() by (name)`,
		`{ duration > 100ms && status = error } | rate() by (resource.service.name)`, `{ duration > 1h } | rate()`} {
		pq, err := traceql.Parse(q)
		if err != nil {
			t.Fatal(err)
		}
		want := runMetrics(t, db, q, start, end, time.Second, true)
		before := colGroupsDecoded.Load()
		got := runMetricsMin(t, db, q, start, end, time.Second, time.Duration(pq.MinSpanDuration()))
		decoded := colGroupsDecoded.Load() - before
		if fmt.Sprintf("%+v", got.Series) != fmt.Sprintf("%+v", want.Series) {
			t.Errorf("%s: with MinSpanDuration\n%.400v\nwant %.400v", q, got.Series, want.Series)
		}
		if pq.MinSpanDuration() >= int64(2*time.Second) && decoded > 2 {
			t.Errorf("%s: %d groups decoded, want at most the one with the long span", q, decoded)
		}
		t.Logf("%s: %d groups decoded", q, decoded)
	}
}

func runMetricsMin(t *testing.T, db *DB, q string, start, end time.Time, step, minDur time.Duration) metricsAnswer {
	t.Helper()
	query, err := traceql.Parse(q)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := query.NewMetricsEvaluator(traceql.MetricsRequest{Start: start.UnixNano(), End: end.UnixNano(),
		Step: int64(step), Exemplars: 50})
	if err != nil {
		t.Fatal(err)
	}
	req := SearchRequest{Start: start, End: end, MinSpanDuration: minDur, Project: &Projection{
		ResourceAttrs: map[string]bool{"service.name": true}}}
	var buf []traceql.ColumnSpan
	req.Spans = func(id TraceID, spans []ColumnSpan, _ []ColumnValue, spanID func(int) (pcommon.SpanID, error)) (bool, error) {
		buf = buf[:0]
		for _, s := range spans {
			buf = append(buf, traceql.ColumnSpan(s))
		}
		return true, ev.ObserveColumns(pcommon.TraceID(id), buf, nil, spanID)
	}
	st, err := db.Search(t.Context(), req, func(_ TraceID, td ptrace.Traces) (bool, error) {
		return true, ev.Observe(traceql.NewTraceFor(query, td))
	})
	if err != nil {
		t.Fatal(err)
	}
	return metricsAnswer{Series: ev.Series(), Stats: st, Spans: ev.Spans}
}
