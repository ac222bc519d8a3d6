package tracestore

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/traceql"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// TestSearchColumnFilter: a search with Match (a TraceQL filter evaluated
// on span and attribute columns) finds exactly the traces a search that
// decodes every candidate finds, with the same statistics, but decodes
// only traces that match (plus those the columns cannot answer for).
func TestSearchColumnFilter(t *testing.T) {
	old := chunkTraces
	chunkTraces = 16
	t.Cleanup(func() { chunkTraces = old })
	db, _ := openTest(t, t.TempDir(), nil)
	defer db.Close()
	g := storetest.NewGen(31, testBase.UnixNano())
	for round := 0; round < 2; round++ {
		for i := 0; i < 120; i++ {
			_, td := g.Trace(1 + i%6)
			if i%9 == 4 { // not representable: decoded whatever Match says
				td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes().PutEmptyBytes("http.status_code")
			}
			if err := db.ConsumeTraces(t.Context(), td); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	for _, text := range []string{
		`{ resource.service.name = "payment" && span.http.status_code = 500 }`,
		`{ span.http.method = "POST" || .cache.hit = false } | count() > 1`,
		`{ span.queue.ratio > 0.9 && kind = server }`,
		`{ resource.deployment.environment = "production" && status = error }`,
		`{ span.absent = 1 }`,
	} {
		q, err := traceql.Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		m := q.SearchColumnFilter()
		if m == nil {
			t.Fatalf("%s: no column filter", text)
		}
		search := func(match bool) (ids []TraceID, decoded int, st SearchStats) {
			req := SearchRequest{}
			if match {
				req.ColumnAttrs = q.ColumnAttrs()
				var spans []traceql.ColumnSpan
				var vals []traceql.ColumnValue
				req.Match = func(_ TraceID, ss []ColumnSpan, as []ColumnValue) bool {
					spans, vals = spans[:0], vals[:0]
					for _, s := range ss {
						spans = append(spans, traceql.ColumnSpan(s))
					}
					for _, a := range as {
						vals = append(vals, traceql.ColumnValue(a))
					}
					return m.Match(spans, vals)
				}
			}
			st, err := db.Search(t.Context(), req, func(id TraceID, td ptrace.Traces) (bool, error) {
				decoded++
				if len(q.Eval(traceql.NewTrace(td))) > 0 {
					ids = append(ids, id)
				}
				return true, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return ids, decoded, st
		}
		want, all, wantSt := search(false)
		got, decoded, gotSt := search(true)
		if !slices.Equal(got, want) || gotSt != wantSt {
			t.Errorf("%s: column filter found %d traces (%+v), decoding %d (%+v)", text, len(got), gotSt, len(want), wantSt)
		}
		// Irregular traces (1 in 9) are always decoded.
		// count() > 1 drops traces with one matching span after decoding.
		if decoded >= all || (!strings.Contains(text, "count()") && decoded > len(want)+all/9+1) {
			t.Errorf("%s: decoded %d traces for %d matches (%d candidates)", text, decoded, len(want), all)
		}
		t.Logf("%s: %d matches, %d decoded with the filter, %d without", text, len(want), decoded, all)
	}
	// A search whose candidates the filter all drops still ends with its context.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	q, _ := traceql.Parse(`{ span.absent = 1 }`)
	req := SearchRequest{ColumnAttrs: q.ColumnAttrs(), Match: func(TraceID, []ColumnSpan, []ColumnValue) bool { return false }}
	if _, err := db.Search(ctx, req, func(TraceID, ptrace.Traces) (bool, error) { return true, nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled search: %v", err)
	}
}

// TestSpanTimesOnlyInColumns: a format 9 data file holds zeros where the
// span times of regular traces were (irregular traces keep theirs), and
// every read path gives the times back: by ID, search, column search, and
// compaction into a block that again restores them.
func TestSpanTimesOnlyInColumns(t *testing.T) {
	old := chunkTraces
	chunkTraces = 8
	t.Cleanup(func() { chunkTraces = old })
	db, _ := openTest(t, t.TempDir(), nil)
	defer db.Close()
	g := storetest.NewGen(41, testBase.UnixNano())
	want := sent{}
	irregular := map[TraceID]bool{}
	for round := 0; round < 2; round++ {
		for i := 0; i < 50; i++ {
			id, td := g.Trace(1 + i%5)
			if i%7 == 2 { // irregular: keeps its times in the data file
				td.ResourceSpans().At(0).Resource().Attributes().PutInt("service.name", 3)
				irregular[TraceID(id)] = true
			}
			want.add(id, td)
			if err := db.ConsumeTraces(t.Context(), td); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	checkRaw := func() {
		t.Helper()
		db.mu.RLock()
		blocks := slices.Clone(db.blocks)
		db.mu.RUnlock()
		zeroed := 0
		for _, b := range blocks {
			cur := b.cursor()
			for ord := 0; ord < b.n; ord++ {
				id, e, err := cur.at(ord)
				if err != nil {
					t.Fatal(err)
				}
				// The raw bytes, without pageReader's restoration.
				p := b.pages[e.page]
				cb := make([]byte, p.clen)
				if _, err := b.data.ReadAt(cb, int64(p.off)); err != nil {
					t.Fatal(err)
				}
				var page []byte
				if b.meta.PageCodec == pageCodecS2 {
					page, err = decodeS2Page(cb, nil, int(p.ulen))
				} else {
					page, err = b.dec.DecodeAll(cb, nil)
				}
				if err != nil {
					t.Fatal(err)
				}
				// format 12: a regular trace's record leaves trace and span
				// IDs and times out, after a layout mark (ADR 0123)
				rec := page[e.off : e.off+e.len]
				stripped := len(rec) > 0 && rec[0] <= strippedAscending
				if stripped == irregular[id] {
					t.Fatalf("block %d ord %d: stripped %v, irregular %v", b.meta.Version, ord, stripped, irregular[id])
				}
				if stripped {
					rec = rec[1:]
				}
				var u ptrace.ProtoUnmarshaler
				td, err := u.UnmarshalTraces(rec)
				if err != nil {
					t.Fatal(err)
				}
				sp := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
				if stripped && !sp.TraceID().IsEmpty() {
					t.Fatalf("block %d ord %d: stripped span keeps its trace ID", b.meta.Version, ord)
				}
				// format 10: the span IDs too (ADR 0110)
				if zero := sp.StartTimestamp() == 0 && sp.EndTimestamp() == 0 && sp.SpanID().IsEmpty(); zero == irregular[id] {
					t.Fatalf("block %d ord %d: times %d..%d, span ID %s, irregular %v", b.meta.Version, ord, sp.StartTimestamp(), sp.EndTimestamp(), sp.SpanID(), irregular[id])
				} else if zero {
					zeroed++
				}
			}
		}
		if zeroed == 0 {
			t.Fatal("no trace stored with zeroed times")
		}
	}
	checkRaw()
	checkAll(t, db, want)
	if err := db.compact(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkRaw()
	checkAll(t, db, want)
}
