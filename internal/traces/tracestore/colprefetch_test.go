package tracestore

import (
	"fmt"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// TestColumnScanPrefetch: column groups decoded ahead on 1 to 5 goroutines
// (SearchWorkers 2 to 6) give the same traces in the same order as the
// sequential scan (SearchWorkers 1), with the same limits, early stops and
// metrics answers; goleak (TestMain) checks no decode outlives its search.
func TestColumnScanPrefetch(t *testing.T) {
	old := chunkTraces
	chunkTraces = 5
	t.Cleanup(func() { chunkTraces = old })
	dir := t.TempDir()
	db, _ := openTest(t, dir, nil)
	g := storetest.NewGen(41, testBase.UnixNano())
	for round := 0; round < 3; round++ {
		for i := 0; i < 60; i++ {
			_, td := g.Trace(1 + i%6)
			if err := db.ConsumeTraces(t.Context(), td); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	type run struct {
		order string
		stats SearchStats
	}
	scan := func(workers int, lim SearchLimits, stopAfter int, conds []Cond) run {
		db, _ := openTest(t, dir, func(o *Options) { o.SearchWorkers = workers })
		defer db.Close()
		var r run
		n := 0
		st, err := db.Search(t.Context(), SearchRequest{Limits: lim, Conds: conds,
			Spans: func(id TraceID, spans []ColumnSpan, _ []ColumnValue, _ func(int) (pcommon.SpanID, error)) (bool, error) {
				n++
				r.order += fmt.Sprintf("%x:%d:%d,", id[:4], len(spans), spans[len(spans)-1].End)
				return stopAfter == 0 || n < stopAfter, nil
			}}, func(id TraceID, _ ptrace.Traces) (bool, error) {
			r.order += fmt.Sprintf("d%x,", id[:4])
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		r.stats = st
		return r
	}
	cases := []struct {
		lim   SearchLimits
		stop  int
		conds []Cond
	}{
		{}, {lim: SearchLimits{MaxTraces: 7}}, {stop: 13}, {lim: SearchLimits{MaxBytes: 20 << 10}},
		{conds: []Cond{{Keys: []string{"status"}, Values: []string{"kerror"}}}},
	}
	for i, c := range cases {
		want := scan(1, c.lim, c.stop, c.conds)
		if want.order == "" {
			t.Fatalf("case %d: nothing scanned", i)
		}
		for _, w := range []int{2, 3, 6} {
			if got := scan(w, c.lim, c.stop, c.conds); got.order != want.order || fmt.Sprint(got.stats) != fmt.Sprint(want.stats) {
				t.Fatalf("case %d, %d workers: %.200s %+v\nwant %.200s %+v", i, w, got.order, got.stats, want.order, want.stats)
			}
		}
	}
}
