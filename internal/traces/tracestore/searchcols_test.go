package tracestore

import (
	"os"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// TestSpansRootFromColumns: a search with Spans and SpansRoot gets, for a
// format 10 block, each span's Root bit and ID from the columns, equal to
// the decoded trace's (parent empty, span ID, in decoding order); a format
// 9 block (testdata/v9store) hands its traces to fn instead.
func TestSpansRootFromColumns(t *testing.T) {
	db, _ := openTest(t, t.TempDir(), nil)
	defer db.Close()
	g := storetest.NewGen(23, testBase.UnixNano())
	for i := 0; i < 300; i++ {
		_, td := g.Trace(1 + i%6)
		if i%5 == 1 { // a second root, and a span whose parent is all zero bytes
			sp := td.ResourceSpans().At(td.ResourceSpans().Len() - 1).ScopeSpans().At(0).Spans()
			sp.At(sp.Len() - 1).SetParentSpanID(pcommon.SpanID{})
		}
		if err := db.ConsumeTraces(t.Context(), td); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	fromCols, decoded := checkSpansRoot(t, db)
	if fromCols != 300 || decoded != 0 {
		t.Fatalf("format 10: %d traces from columns, %d decoded; want 300, 0", fromCols, decoded)
	}

	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/v9store")); err != nil {
		t.Fatal(err)
	}
	base := time.Unix(1764460800, 0)
	old, _ := openTest(t, dir, func(o *Options) { o.Now = func() time.Time { return base.Add(time.Hour) } })
	defer old.Close()
	if fromCols, decoded := checkSpansRoot(t, old); fromCols != 0 || decoded != 40 {
		t.Fatalf("format 9: %d traces from columns, %d decoded; want 0, 40", fromCols, decoded)
	}
}

func checkSpansRoot(t *testing.T, db *DB) (fromCols, decoded int) {
	t.Helper()
	req := SearchRequest{SpansRoot: true, Spans: func(id TraceID, spans []ColumnSpan, _ []ColumnValue, spanID func(int) (pcommon.SpanID, error)) (bool, error) {
		fromCols++
		td, found, err := db.TraceByID(t.Context(), id)
		if err != nil || !found {
			t.Fatalf("trace %x: %v %v", id, found, err)
		}
		var want []ptrace.Span
		for i := 0; i < td.ResourceSpans().Len(); i++ {
			ss := td.ResourceSpans().At(i).ScopeSpans()
			for j := 0; j < ss.Len(); j++ {
				for k := 0; k < ss.At(j).Spans().Len(); k++ {
					want = append(want, ss.At(j).Spans().At(k))
				}
			}
		}
		if len(want) != len(spans) {
			t.Fatalf("trace %x: %d column spans, %d decoded", id, len(spans), len(want))
		}
		for i, s := range want {
			got, err := spanID(i)
			if err != nil {
				t.Fatal(err)
			}
			if got != s.SpanID() || spans[i].Root != s.ParentSpanID().IsEmpty() {
				t.Fatalf("trace %x span %d: columns ID %s root %v, decoded ID %s parent %s", id, i, got, spans[i].Root, s.SpanID(), s.ParentSpanID())
			}
		}
		return true, nil
	}}
	if _, err := db.Search(t.Context(), req, func(TraceID, ptrace.Traces) (bool, error) {
		decoded++
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	return fromCols, decoded
}
