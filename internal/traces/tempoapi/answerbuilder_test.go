package tempoapi

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/traceql"
)

// TestAnswerBuilder: answers from the columns are built from slabs and an
// arena, sharing attribute lists and service statistics with earlier
// answers where they are equal — and only there (-0 is not 0, an empty
// span ID is "", an all-zero trace ID "0") — with about one allocation
// per answer (~10 before).
func TestAnswerBuilder(t *testing.T) {
	q, err := traceql.Parse(`{ resource.service.name = "payment" && span.http.status_code = 500 }`)
	if err != nil {
		t.Fatal(err)
	}
	m := q.SearchColumnFilter()
	p := searchParams{query: q, spss: 3}
	spans := []traceql.ColumnSpan{
		{Start: 10, End: 30, Name: "root", Service: "payment", HasService: true, Root: true},
		{Start: 12, End: 20, Name: "child", Service: "payment", HasService: true, Status: ptrace.StatusCodeError},
		{Start: 14, End: 16, Name: "db", Service: "db", HasService: true},
	}
	attrs := make([]traceql.ColumnValue, 0, 6) // keys of q.ColumnAttrs(), key-major
	for _, k := range q.ColumnAttrs() {
		for range spans {
			if k == "span.http.status_code" {
				attrs = append(attrs, traceql.ColumnValue{Kind: traceql.ColumnInt, N: 500})
			} else {
				attrs = append(attrs, traceql.ColumnValue{})
			}
		}
	}
	ids := func(i int) (pcommon.SpanID, error) { return pcommon.SpanID{0, 0, 0, 0, 0, 0, 0, byte(i + 1)}, nil }
	ab := &answerBuilder{}
	build := func(id pcommon.TraceID, sid func(int) (pcommon.SpanID, error)) *traceResult {
		t.Helper()
		matched := m.MatchSpans(spans, attrs, nil)
		r, err := ab.result(p, m, id, spans, attrs, matched, 10, 30, sid)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r1 := build(pcommon.TraceID{15: 1}, ids)
	r2 := build(pcommon.TraceID{}, func(int) (pcommon.SpanID, error) { return pcommon.SpanID{}, nil })
	if r1.TraceID != "1" || r2.TraceID != "0" {
		t.Errorf("trace IDs %q %q, want 1 and 0", r1.TraceID, r2.TraceID)
	}
	if got := r2.SpanSet.Spans[0].SpanID; got != "" {
		t.Errorf("empty span ID written %q, want \"\" (pcommon's String)", got)
	}
	j1, _ := json.Marshal(r1)
	j2, _ := json.Marshal(r2)
	want1 := `{"traceID":"1","rootServiceName":"payment","rootTraceName":"root","startTimeUnixNano":"10","durationMs":0,` +
		`"serviceStats":{"db":{"spanCount":1},"payment":{"spanCount":2,"errorCount":1}},"spanSet":{"spans":[` +
		`{"spanID":"0000000000000001","startTimeUnixNano":"10","durationNanos":"20","attributes":[{"key":"service.name","value":{"stringValue":"payment"}},{"key":"http.status_code","value":{"intValue":"500"}}]},` +
		`{"spanID":"0000000000000002","startTimeUnixNano":"12","durationNanos":"8","attributes":[{"key":"service.name","value":{"stringValue":"payment"}},{"key":"http.status_code","value":{"intValue":"500"}}]}],"matched":2}`
	if string(j1)[:len(want1)] != want1 {
		t.Errorf("answer\n got %s\nwant %s…", j1, want1)
	}
	if &r1.SpanSet.Spans[0].Attributes[0] != &r2.SpanSet.Spans[1].Attributes[0] {
		t.Error("equal attribute lists not shared")
	}
	if len(j2) == 0 {
		t.Fatal("no JSON")
	}

	// Floats: -0 and 0 are different answers.
	neg := ab.attributes([]traceql.KeyValue{{Key: "x", Value: traceql.Float(math.Copysign(0, -1))}})
	pos := ab.attributes([]traceql.KeyValue{{Key: "x", Value: traceql.Float(0)}})
	jn, _ := json.Marshal(neg)
	jp, _ := json.Marshal(pos)
	if string(jn) == string(jp) {
		t.Errorf("-0 and 0 share an answer: %s", jn)
	}

	if raceOn {
		return
	}
	allocs := testing.AllocsPerRun(1000, func() { build(pcommon.TraceID{15: 2}, ids) })
	if allocs > 1 {
		t.Errorf("%.2f allocations per answer, want ≤ 1", allocs)
	}
}

// TestSvcStatsListJSON: serviceStats written from the sorted list are the
// bytes encoding/json writes for the map it replaced, escaping included.
func TestSvcStatsListJSON(t *testing.T) {
	keys := []string{"payment", "", "<a&b>", "bad\xffutf8", "line\u2028sep", "quote\"back\\slash", "é", "A", "a"}
	m := map[string]serviceStats{}
	var l svcStatsList
	for i, k := range keys {
		st := serviceStats{SpanCount: i + 1, ErrorCount: i % 3}
		m[k] = st
		l = append(l, svcCount{svc: k, st: st})
	}
	l.sort()
	type wrap struct {
		S any `json:"serviceStats,omitempty"`
	}
	for _, c := range []struct{ m, l any }{{wrap{m}, wrap{l}}, {m, l}} {
		want, err1 := json.Marshal(c.m)
		got, err2 := json.Marshal(c.l)
		if err1 != nil || err2 != nil || string(got) != string(want) {
			t.Errorf("list %s (%v)\n map %s (%v)", got, err2, want, err1)
		}
		var wb, gb strings.Builder
		_ = json.NewEncoder(&wb).Encode(c.m)
		_ = json.NewEncoder(&gb).Encode(c.l)
		if wb.String() != gb.String() {
			t.Errorf("Encoder: list %s map %s", gb.String(), wb.String())
		}
	}
	// empty: omitted, as an empty map was
	if b, _ := json.Marshal(traceResult{TraceID: "1"}); strings.Contains(string(b), "serviceStats") {
		t.Errorf("empty serviceStats written: %s", b)
	}
}
