package tracestore

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// TestParallelSearch checks that decoding blocks on several goroutines
// changes nothing a caller sees: the same traces in the same order as with
// one worker, each once and complete (a trace split across two blocks and
// the head included), limits and early stops at the same trace, a
// projection applied, and a cancelled search returning its context's
// error. goleak (TestMain) checks no worker outlives its search.
func TestParallelSearch(t *testing.T) {
	db, _ := openTest(t, t.TempDir(), func(o *Options) { o.PageSize = 4 << 10 })
	defer db.Close()
	g := storetest.NewGen(77, testBase.UnixNano())
	want := sent{}
	splitID, _ := g.Trace(1) // only its ID
	for i := range 1500 {
		id, td := g.Trace(2 + i%5)
		if err := db.ConsumeTraces(t.Context(), td); err != nil {
			t.Fatal(err)
		}
		want.add(id, td)
		if i == 500 || i == 1000 || i == 1400 {
			// one more piece of splitID in each of the three blocks and the head
			piece := ptrace.NewTraces()
			g.AppendTrace(piece, splitID, 2, pcommon.SpanID{})
			if err := db.ConsumeTraces(t.Context(), piece); err != nil {
				t.Fatal(err)
			}
			want.add(splitID, piece)
		}
		if i == 500 || i == 1000 {
			if err := db.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.Flush(); err != nil { // the third block; then one piece in the head
		t.Fatal(err)
	}
	piece := ptrace.NewTraces()
	g.AppendTrace(piece, splitID, 1, pcommon.SpanID{})
	if err := db.ConsumeTraces(t.Context(), piece); err != nil {
		t.Fatal(err)
	}
	want.add(splitID, piece)

	type run struct {
		ids   []TraceID
		spans []int
		st    SearchStats
	}
	// workers: Options.SearchWorkers (0 = GOMAXPROCS, set to 4 here).
	search := func(t *testing.T, workers int, req SearchRequest, stopAfter int) run {
		t.Helper()
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
		db.opts.SearchWorkers = workers
		var r run
		st, err := db.Search(t.Context(), req, func(id TraceID, td ptrace.Traces) (bool, error) {
			r.ids = append(r.ids, id)
			r.spans = append(r.spans, td.SpanCount())
			return stopAfter == 0 || len(r.ids) < stopAfter, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		r.st = st
		return r
	}

	one := search(t, 1, SearchRequest{}, 0)
	four := search(t, 0, SearchRequest{}, 0)
	if len(one.ids) != len(want) {
		t.Fatalf("one worker: %d traces, want %d", len(one.ids), len(want))
	}
	if !slices.Equal(one.ids, four.ids) || !slices.Equal(one.spans, four.spans) || one.st != four.st {
		t.Fatalf("four workers differ from one: %d vs %d traces, stats %+v vs %+v", len(four.ids), len(one.ids), four.st, one.st)
	}
	seen := map[TraceID]bool{}
	for i, id := range four.ids {
		if seen[id] {
			t.Fatalf("trace %x handed twice", id[:])
		}
		seen[id] = true
		if w := want[pcommon.TraceID(id)].SpanCount(); four.spans[i] != w {
			t.Fatalf("trace %x: %d spans, want %d", id[:], four.spans[i], w)
		}
	}

	for _, stop := range []int{1, 15, 16, 17, 100, 700, 1499} {
		r := search(t, 4, SearchRequest{}, stop)
		if !slices.Equal(r.ids, four.ids[:stop]) || r.st.InspectedTraces != stop {
			t.Fatalf("stop after %d: got %d traces (%d inspected), not the first %d of the full search", stop, len(r.ids), r.st.InspectedTraces, stop)
		}
	}
	for _, max := range []int{16, 333} {
		r := search(t, 4, SearchRequest{Limits: SearchLimits{MaxTraces: max}}, 0)
		if !slices.Equal(r.ids, four.ids[:max]) || r.st.Truncated != TruncatedMaxTraces || r.st.InspectedTraces != max {
			t.Fatalf("max traces %d: %d traces, stats %+v", max, len(r.ids), r.st)
		}
	}
	bytesLimit := four.st.InspectedBytes / 3
	r1 := search(t, 1, SearchRequest{Limits: SearchLimits{MaxBytes: bytesLimit}}, 0)
	r4 := search(t, 4, SearchRequest{Limits: SearchLimits{MaxBytes: bytesLimit}}, 0)
	if !slices.Equal(r1.ids, r4.ids) || r1.st != r4.st || r4.st.Truncated != TruncatedMaxBytes {
		t.Fatalf("max bytes: %d vs %d traces, stats %+v vs %+v", len(r1.ids), len(r4.ids), r1.st, r4.st)
	}

	for _, w := range []int{2, 3, 8} {
		r := search(t, w, SearchRequest{}, 0)
		if !slices.Equal(r.ids, one.ids) || r.st != one.st {
			t.Fatalf("%d workers differ from one: %d vs %d traces", w, len(r.ids), len(one.ids))
		}
	}
	// Batches cut by size (here: one trace each) change nothing either.
	func() {
		defer func(b int) { searchBatchBytes = b }(searchBatchBytes)
		searchBatchBytes = 1
		for _, w := range []int{1, 4} {
			r := search(t, w, SearchRequest{}, 0)
			if !slices.Equal(r.ids, one.ids) || r.st != one.st {
				t.Fatalf("one-trace batches, %d workers: %d vs %d traces", w, len(r.ids), len(one.ids))
			}
			if r := search(t, w, SearchRequest{}, 40); !slices.Equal(r.ids, one.ids[:40]) {
				t.Fatalf("one-trace batches, %d workers, stop after 40: %d traces", w, len(r.ids))
			}
		}
	}()

	for _, workers := range []int{1, 4} {
		db.opts.SearchWorkers = workers
		// A projection is applied by every worker: no span attribute survives.
		st, err := db.Search(t.Context(), SearchRequest{Project: &Projection{SpanAttrs: map[string]bool{}, ResourceAttrs: map[string]bool{}, ScopeAttrs: map[string]bool{}}},
			func(id TraceID, td ptrace.Traces) (bool, error) {
				rs := td.ResourceSpans()
				for i := range rs.Len() {
					ss := rs.At(i).ScopeSpans()
					for j := range ss.Len() {
						sp := ss.At(j).Spans()
						for k := range sp.Len() {
							if sp.At(k).Attributes().Len() != 0 {
								t.Errorf("trace %x: span attributes kept by an empty projection", id[:])
								return false, nil
							}
						}
					}
				}
				return true, nil
			})
		if err != nil || st.InspectedTraces != len(want) {
			t.Fatalf("%d workers: projected search: %v, %d traces", workers, err, st.InspectedTraces)
		}

		// Cancelled in the middle of a block, with workers: the search ends with ctx's error.
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		n := 0
		_, err = db.Search(ctx, SearchRequest{}, func(TraceID, ptrace.Traces) (bool, error) {
			if n++; n == 600 {
				cancel()
			}
			return true, nil
		})
		if !errors.Is(err, context.Canceled) || n != 600 {
			t.Fatalf("%d workers: cancelled search: err %v after %d traces; want context.Canceled after 600", workers, err, n)
		}
	}
}
