package tracestore

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/otlp"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

func cloneTraces(td ptrace.Traces) ptrace.Traces {
	c := ptrace.NewTraces()
	td.CopyTo(c)
	return c
}

// spanCounts counts every stored span through search (which must see each
// trace once) and checks no (trace, span) pair is there twice.
func spanCounts(t *testing.T, db *DB) (traces, spans int) {
	t.Helper()
	if _, err := db.Search(t.Context(), SearchRequest{}, func(id TraceID, td ptrace.Traces) (bool, error) {
		traces++
		seen := map[pcommon.SpanID]bool{}
		for _, sid := range spanIDsOf(td) {
			if seen[sid] {
				t.Errorf("search: trace %s holds span %s twice", id, sid)
			}
			seen[sid] = true
			spans++
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	return traces, spans
}

// TestRetriedSpansStoredOnce retries the same batch against every place the
// first copy can be: the head, the head rebuilt by WAL replay, a block, two
// blocks, a compacted block. Each span must be stored once, by ID and in
// search, and the dropped copies counted.
func TestRetriedSpansStoredOnce(t *testing.T) {
	dir := t.TempDir()
	db, _ := openTest(t, dir, nil)
	g := storetest.NewGen(21, testBase.UnixNano())
	want := sent{}
	var batch ptrace.Traces = ptrace.NewTraces()
	for i := 0; i < 20; i++ {
		id := g.TraceID()
		part := ptrace.NewTraces()
		g.AppendTrace(part, id, 2+i%5, pcommon.SpanID{})
		want.add(id, part)
		part.ResourceSpans().MoveAndAppendTo(batch.ResourceSpans())
	}
	spans := batch.SpanCount()
	send := func(td ptrace.Traces) {
		t.Helper()
		if err := db.ConsumeTraces(t.Context(), cloneTraces(td)); err != nil {
			t.Fatal(err)
		}
	}
	dupsAt := func(stage string) float64 { return testutil.ToFloat64(db.m.duplicateSpans.WithLabelValues(stage)) }
	check := func(t *testing.T) {
		t.Helper()
		checkAll(t, db, want)
		if n, s := spanCounts(t, db); n != len(want) || s != spans {
			t.Fatalf("search saw %d traces / %d spans, want %d / %d", n, s, len(want), spans)
		}
	}

	send(batch)
	retry := cloneTraces(batch)
	if err := db.ConsumeTraces(t.Context(), retry); err != nil { // retry against the head
		t.Fatal(err)
	}
	if n := retry.SpanCount(); n != 0 {
		t.Fatalf("a retried request left %d spans in td for the followers, want 0", n)
	}
	if got := dupsAt("ingest"); got != float64(spans) {
		t.Fatalf("ingest duplicates = %v, want %d", got, spans)
	}
	if got := testutil.ToFloat64(db.m.spansIngested); got != float64(spans) {
		t.Fatalf("ingested spans = %v, want %d (a retry adds nothing)", got, spans)
	}
	t.Run("head", check)

	// One request holding a span twice, plus one new span of a known trace.
	var id0 pcommon.TraceID
	for id := range want {
		id0 = id
		break
	}
	extra := ptrace.NewTraces()
	g.AppendTrace(extra, id0, 1, pcommon.SpanID{})
	want.add(id0, extra)
	spans++
	twice := cloneTraces(extra)
	extra.ResourceSpans().At(0).CopyTo(twice.ResourceSpans().AppendEmpty())
	if err := db.ConsumeTraces(t.Context(), twice); err != nil {
		t.Fatal(err)
	}
	if twice.SpanCount() != 1 {
		t.Fatalf("a request holding one new span twice left %d spans in td, want 1", twice.SpanCount())
	}
	t.Run("same span twice in one request", check)

	// The crash case: the head is rebuilt from the WAL, then the sender retries.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, _ = openTest(t, dir, nil)
	defer func() { _ = db.Close() }()
	send(batch)
	if got := dupsAt("ingest"); got != float64(spans-1) {
		t.Fatalf("after replay: ingest duplicates = %v, want %d", got, spans-1)
	}
	t.Run("after wal replay", check)

	// The first copy is in a block, the retry in the head.
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	send(batch)
	t.Run("block and head", check)
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Run("two blocks", check)
	if err := db.compact(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := dupsAt("compaction"); got != float64(batch.SpanCount()) {
		t.Fatalf("compaction duplicates = %v, want %d", got, batch.SpanCount())
	}
	t.Run("compacted", check)
	if n, _ := db.blockStats(); n != 1 {
		t.Fatalf("%d blocks after compaction", n)
	}
	b := db.blocks[0]
	if b.meta.Spans != spans {
		t.Fatalf("compacted block meta says %d spans, want %d", b.meta.Spans, spans)
	}
}

// TestTraceTooLargeIsPartial: one oversized trace in a request refuses only
// its spans; the rest is stored and the error says exactly how many spans
// were refused.
func TestTraceTooLargeIsPartial(t *testing.T) {
	db, reg := openTest(t, t.TempDir(), func(o *Options) { o.MaxTraceBytes = 8 << 10 })
	defer db.Close()
	g := storetest.NewGen(22, testBase.UnixNano())
	smallID, td := g.Trace(3)
	bigID, big := g.Trace(200)
	big.ResourceSpans().MoveAndAppendTo(td.ResourceSpans())
	err := db.ConsumeTraces(t.Context(), td)
	var ps *otlp.PartialSuccessError
	if !errors.Is(err, ErrTraceTooLarge) || !errors.As(err, &ps) || ps.Rejected != 200 {
		t.Fatalf("err = %v, want ErrTraceTooLarge with a partial success of 200 spans", err)
	}
	if _, found, _ := db.TraceByID(t.Context(), smallID); !found {
		t.Fatal("the small trace of a partly refused request was not stored")
	}
	if _, found, _ := db.TraceByID(t.Context(), bigID); found {
		t.Fatal("the oversized trace was stored")
	}
	if got := testutil.ToFloat64(db.m.spansRejected.WithLabelValues("trace_too_large")); got != 200 {
		t.Fatalf("rejected{trace_too_large} = %v", got)
	}
	// Only oversized traces: nothing stored, a plain refusal (400 upstream).
	_, only := g.Trace(200)
	err = db.ConsumeTraces(t.Context(), only)
	if !errors.Is(err, ErrTraceTooLarge) || errors.As(err, &ps) {
		t.Fatalf("all-oversized request: err = %v, want ErrTraceTooLarge without partial success", err)
	}
	_ = reg
}
