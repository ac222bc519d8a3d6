package traceql

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// TestColumnMatcherFastPath checks that a search filter evaluated straight
// on the columns (ColumnMatcher colNode.eval) matches the same spans as the
// same filter evaluated on the scratch span (load + matchSpan, what
// ObserveColumns and Eval share), over random column values of every kind
// (absent, empty, string, int, float, bool; spans with and without a
// service; negative durations).
func TestColumnMatcherFastPath(t *testing.T) {
	queries := []string{
		`{ resource.service.name = "payment" && span.http.status_code = 500 }`,
		`{ span.http.status_code >= 400 || status = error }`,
		`{ .http.method = "GET" && .deployment.environment != "production" }`,
		`{ !(kind = server) && name =~ "GET.*" }`,
		`{ duration > 1ms && span.queue.ratio < 0.5 }`,
		`{ span.cache.hit = true || resource.k8s.namespace.name !~ "nx-.*" }`,
		`{ .service.name = "cart" }`,
		`{ span.http.status_code = 500.0 || span.flag = "true" }`,
		`{ true && resource.service.name != "x" }`,
		`{ status = ok || kind = client || name = "late-work" }`,
	}
	rng := rand.New(rand.NewPCG(1, 7))
	strs := []string{"payment", "cart", "GET", "POST", "production", "nx-backend", "other", "", "true", "GET /a"}
	randValue := func() ColumnValue {
		switch rng.IntN(7) {
		case 0:
			return ColumnValue{}
		case 1:
			return ColumnValue{Kind: ColumnEmpty}
		case 2, 3:
			return ColumnValue{Kind: ColumnString, S: strs[rng.IntN(len(strs))]}
		case 4:
			return ColumnValue{Kind: ColumnInt, N: uint64([]int64{200, 404, 500, -1, 0}[rng.IntN(5)])}
		case 5:
			return ColumnValue{Kind: ColumnFloat, N: math.Float64bits([]float64{0.25, 0.5, 500, -0.0}[rng.IntN(4)])}
		}
		return ColumnValue{Kind: ColumnBool, N: uint64(rng.IntN(2))}
	}
	for _, text := range queries {
		q, err := Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		fast := q.SearchColumnFilter()
		if fast == nil || !fast.fast {
			t.Fatalf("%s: no column fast path", text)
		}
		slow := q.SearchColumnFilter()
		slow.fast = false
		nattr := len(q.ColumnAttrs())
		matched := 0
		for trace := 0; trace < 300; trace++ {
			n := 1 + rng.IntN(6)
			spans := make([]ColumnSpan, n)
			for i := range spans {
				start := uint64(1e18 + rng.IntN(1e9))
				spans[i] = ColumnSpan{Start: start, End: start + uint64(rng.IntN(4e6)) - 1e6,
					Status: ptrace.StatusCode(rng.IntN(3)), Kind: ptrace.SpanKind(rng.IntN(6)),
					Name: []string{"GET /a", "POST /b", "late-work"}[rng.IntN(3)], HasService: rng.IntN(5) > 0}
				if spans[i].HasService {
					spans[i].Service = strs[rng.IntN(3)]
				}
			}
			attrs := make([]ColumnValue, nattr*n)
			for k := range attrs {
				attrs[k] = randValue()
			}
			a := fast.MatchSpans(spans, attrs, nil)
			b := slow.MatchSpans(spans, attrs, nil)
			if !slices.Equal(a, b) {
				t.Fatalf("%s: trace %d: columns matched %v, scratch %v\nspans %+v\nattrs %+v", text, trace, a, b, spans, attrs)
			}
			if fast.Match(spans, attrs) != (len(b) > 0) {
				t.Fatalf("%s: trace %d: Match disagrees with MatchSpans", text, trace)
			}
			matched += len(a)
		}
		if matched == 0 {
			t.Errorf("%s: nothing matched: the comparison proves little", text)
		}
	}
}
