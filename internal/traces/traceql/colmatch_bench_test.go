package traceql

import "testing"

// BenchmarkColumnMatcher: the fast path on the broad search filter of
// tracebench, per span (a search at 10M spans evaluates ~5M).
func BenchmarkColumnMatcher(b *testing.B) {
	q, err := Parse(`{ resource.service.name = "payment" && span.http.status_code = 500 }`)
	if err != nil {
		b.Fatal(err)
	}
	m := q.SearchColumnFilter()
	svcs := []string{"payment", "cart", "db", "frontend", "payment", "auth"}
	spans := make([]ColumnSpan, 6)
	for i := range spans {
		spans[i] = ColumnSpan{Start: 1, End: 2, Name: "x", Service: svcs[i], HasService: true}
	}
	attrs := make([]ColumnValue, 0, len(q.ColumnAttrs())*len(spans))
	for _, k := range q.ColumnAttrs() {
		for i := range spans {
			if k == "span.http.status_code" {
				attrs = append(attrs, ColumnValue{Kind: ColumnInt, N: uint64(200 + 300*((i+1)%2))})
			} else {
				attrs = append(attrs, ColumnValue{})
			}
		}
	}
	b.ReportAllocs()
	var out []int
	for b.Loop() {
		out = m.MatchSpans(spans, attrs, out[:0])
	}
	if len(out) == 0 {
		b.Fatal("no match")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(spans)), "ns/span")
}
