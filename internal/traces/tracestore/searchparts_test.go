package tracestore

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/traceql"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// partSpans builds one part of trace id: n spans of service "svc", each
// with span.x = x and lasting dur, span IDs from first on.
func partSpans(id byte, first byte, n int, x string, dur time.Duration) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "svc")
	ss := rs.ScopeSpans().AppendEmpty()
	start := testBase.Add(time.Duration(id) * time.Second)
	for i := range n {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{id, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
		sp.SetSpanID(pcommon.SpanID{id, first + byte(i), 1, 1, 1, 1, 1, 1})
		if i > 0 || first > 1 {
			sp.SetParentSpanID(pcommon.SpanID{id, 1, 1, 1, 1, 1, 1, 1})
		}
		sp.SetName("op")
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(dur)))
		sp.Attributes().PutStr("x", x)
	}
	return td
}

// TestSearchTraceInParts: a trace stored in parts (two blocks, or a block
// and the head) is found, whole and once, through the part whose spans
// match, whichever part the search meets first, on every search path: fn
// only, Match dropping parts that do not match (ADR 0124: without looking
// for the other parts), and Spans answering from the columns.
func TestSearchTraceInParts(t *testing.T) {
	db, _ := openTest(t, t.TempDir(), nil)
	defer db.Close()
	consume := func(td ptrace.Traces) {
		t.Helper()
		if err := db.ConsumeTraces(t.Context(), td); err != nil {
			t.Fatal(err)
		}
	}
	flush := func() {
		t.Helper()
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// Trace 1: matching part in the older block; trace 2: in the newer;
	// trace 3: no part matches; trace 4: the matching part is in the head;
	// trace 5: one block only, matching; trace 6: the long span is in the
	// newer block, the older part's spans are all short.
	consume(partSpans(1, 1, 2, "a", time.Millisecond))
	consume(partSpans(2, 1, 2, "b", time.Millisecond))
	consume(partSpans(3, 1, 2, "b", time.Millisecond))
	consume(partSpans(4, 1, 2, "b", time.Millisecond))
	consume(partSpans(5, 1, 3, "a", time.Millisecond))
	consume(partSpans(6, 1, 2, "a", time.Millisecond))
	flush()
	consume(partSpans(1, 10, 3, "b", time.Millisecond))
	consume(partSpans(2, 10, 3, "a", time.Millisecond))
	consume(partSpans(3, 10, 3, "c", time.Millisecond))
	consume(partSpans(6, 10, 1, "a", time.Second))
	flush()
	consume(partSpans(4, 10, 1, "a", time.Millisecond))
	if n := len(db.snapshot().blocks); n != 2 {
		t.Fatalf("%d blocks, want 2", n)
	}

	q, err := traceql.Parse(`{ span.x = "a" }`)
	if err != nil {
		t.Fatal(err)
	}
	m := q.SearchColumnFilter()
	if m == nil {
		t.Fatal("no column filter")
	}
	match := func(_ TraceID, ss []ColumnSpan, as []ColumnValue) bool {
		var spans []traceql.ColumnSpan
		var vals []traceql.ColumnValue
		for _, s := range ss {
			spans = append(spans, traceql.ColumnSpan(s))
		}
		for _, a := range as {
			vals = append(vals, traceql.ColumnValue(a))
		}
		return m.Match(spans, vals)
	}
	// spans counts, per matching trace, the spans search handed over.
	search := func(req SearchRequest) map[byte]int {
		t.Helper()
		got := map[byte]int{}
		add := func(id TraceID, n int) {
			if _, dup := got[id[0]]; dup {
				t.Errorf("trace %d handed over twice", id[0])
			}
			got[id[0]] = n
		}
		if req.Spans != nil {
			spans := req.Spans
			req.Spans = func(id TraceID, ss []ColumnSpan, as []ColumnValue, sid func(int) (pcommon.SpanID, error)) (bool, error) {
				if match(id, ss, as) {
					add(id, len(ss))
				}
				return spans(id, ss, as, sid)
			}
		}
		_, err := db.Search(t.Context(), req, func(id TraceID, td ptrace.Traces) (bool, error) {
			if len(q.Eval(traceql.NewTrace(td))) > 0 {
				add(id, td.SpanCount())
			}
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := map[byte]int{1: 5, 2: 5, 4: 3, 5: 3, 6: 3}
	noop := func(TraceID, []ColumnSpan, []ColumnValue, func(int) (pcommon.SpanID, error)) (bool, error) {
		return true, nil
	}
	for _, tc := range []struct {
		name string
		req  SearchRequest
	}{
		{"decoded", SearchRequest{}},
		{"match", SearchRequest{ColumnAttrs: q.ColumnAttrs(), Match: match}},
		{"columns", SearchRequest{ColumnAttrs: q.ColumnAttrs(), Match: match, Spans: noop, SpansRoot: true}},
	} {
		if got := search(tc.req); !maps.Equal(got, want) {
			t.Errorf("%s: traces (first ID byte: spans) %v, want %v", tc.name, got, want)
		}
	}

	// MinSpanDuration: trace 6's older part has no span of 100ms, its
	// newer one does; the trace is handed over whole, once.
	long, err := traceql.Parse(`{ duration > 100ms }`)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	req := SearchRequest{MinSpanDuration: 100 * time.Millisecond,
		Spans: func(id TraceID, ss []ColumnSpan, _ []ColumnValue, _ func(int) (pcommon.SpanID, error)) (bool, error) {
			for _, s := range ss {
				if s.End-s.Start > uint64(100*time.Millisecond) {
					got = append(got, id[0])
					break
				}
			}
			return true, nil
		}}
	if _, err := db.Search(t.Context(), req, func(id TraceID, td ptrace.Traces) (bool, error) {
		if len(long.Eval(traceql.NewTrace(td))) > 0 {
			if td.SpanCount() != 3 {
				t.Errorf("trace %d: %d spans, want 3", id[0], td.SpanCount())
			}
			got = append(got, id[0])
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []byte{6}) {
		t.Errorf("duration > 100ms: traces %v, want [6]", got)
	}
}

// shiftTimes moves every span of td by d.
func shiftTimes(td ptrace.Traces, d time.Duration) ptrace.Traces {
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				sp := spans.At(k)
				sp.SetStartTimestamp(pcommon.NewTimestampFromTime(sp.StartTimestamp().AsTime().Add(d)))
				sp.SetEndTimestamp(pcommon.NewTimestampFromTime(sp.EndTimestamp().AsTime().Add(d)))
			}
		}
	}
	return td
}

// TestSearchPartsWithinRange: a search with a time range looks for a
// trace's other parts only in the blocks it searches, as Tempo searches
// only the blocks of its range (ADR 0124 addendum): a part in a block
// outside the range is left out of the answer, on every search path. A
// search without a range, and a lookup by ID, still see every part.
func TestSearchPartsWithinRange(t *testing.T) {
	db, _ := openTest(t, t.TempDir(), nil)
	defer db.Close()
	for _, cut := range []ptrace.Traces{partSpans(7, 1, 2, "a", time.Millisecond),
		shiftTimes(partSpans(7, 10, 3, "a", time.Millisecond), 2*time.Hour)} {
		if err := db.ConsumeTraces(t.Context(), cut); err != nil {
			t.Fatal(err)
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(db.snapshot().blocks); n != 2 {
		t.Fatalf("%d blocks, want 2", n)
	}
	spans := func(req SearchRequest) int {
		t.Helper()
		n := 0
		if req.Spans != nil {
			req.Spans = func(_ TraceID, ss []ColumnSpan, _ []ColumnValue, _ func(int) (pcommon.SpanID, error)) (bool, error) {
				n += len(ss)
				return true, nil
			}
		}
		if _, err := db.Search(t.Context(), req, func(_ TraceID, td ptrace.Traces) (bool, error) {
			n += td.SpanCount()
			return true, nil
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	noop := func(TraceID, []ColumnSpan, []ColumnValue, func(int) (pcommon.SpanID, error)) (bool, error) {
		return true, nil
	}
	late := SearchRequest{Start: testBase.Add(time.Hour), End: testBase.Add(3 * time.Hour)}
	lateCols := late
	lateCols.Spans, lateCols.SpansRoot = noop, true
	t.Cleanup(func() { searchPartsInRange = true })
	for _, c := range []struct {
		name    string
		req     SearchRequest
		inRange bool
		want    int
	}{
		{"range", late, true, 3},
		{"range, columns", lateCols, true, 3},
		{"range, every block", late, false, 5},
		{"no range", SearchRequest{}, true, 5},
	} {
		searchPartsInRange = c.inRange
		if got := spans(c.req); got != c.want {
			t.Errorf("%s: %d spans, want %d", c.name, got, c.want)
		}
	}
	searchPartsInRange = true
	td, found, err := db.TraceByID(t.Context(), TraceID{7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	if err != nil || !found || td.SpanCount() != 5 {
		t.Fatalf("by ID: %d spans, found %v, %v", td.SpanCount(), found, err)
	}
}

// BenchmarkSearchPartsInRange searches the last of 48 hourly blocks
// (200 traces each), decoding every trace of it, with a trace's other
// parts looked for only in the blocks of the range (ADR 0124 addendum) and,
// as before, in every block; it reports the process CPU per search.
func BenchmarkSearchPartsInRange(b *testing.B) {
	const hours = 48
	db, err := Open(b.TempDir(), DefaultOptions(), Deps{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for h := range hours {
		g := storetest.NewGen(uint64(60+h), testBase.Add(time.Duration(h)*time.Hour).UnixNano())
		for range 200 {
			_, td := g.Trace(3)
			if err := db.ConsumeTraces(b.Context(), td); err != nil {
				b.Fatal(err)
			}
		}
		if err := db.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	req := SearchRequest{Start: testBase.Add((hours - 1) * time.Hour), End: testBase.Add(hours * time.Hour)}
	defer func() { searchPartsInRange = true }()
	for _, inRange := range []bool{true, false} {
		b.Run(fmt.Sprintf("inRange=%v", inRange), func(b *testing.B) {
			searchPartsInRange = inRange
			b.ReportAllocs()
			var cpu time.Duration
			for b.Loop() {
				c0 := processCPU()
				n := 0
				if _, err := db.Search(b.Context(), req, func(TraceID, ptrace.Traces) (bool, error) { n++; return true, nil }); err != nil {
					b.Fatal(err)
				}
				cpu += processCPU() - c0
				if n != 200 {
					b.Fatalf("%d traces, want 200", n)
				}
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/search")
		})
	}
}
