package traceql

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/testclock"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// TestMatchSpanAgreesWithEvalField: the allocation-free matcher decides
// every span exactly as truthy(evalField(...)) does.
func TestMatchSpanAgreesWithEvalField(t *testing.T) {
	g := storetest.NewGen(11, testclock.Base().UnixNano())
	var traces []*Trace
	for i := 0; i < 60; i++ {
		td := ptrace.NewTraces()
		g.AppendTrace(td, g.TraceID(), 2+i%7, pcommon.SpanID{})
		// Values of other types under the same keys, and an empty value.
		s := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
		if i%3 == 0 {
			s.Attributes().PutStr("http.status_code", "500")
			s.Attributes().PutEmpty("nothing")
		}
		traces = append(traces, NewTrace(td))
	}
	exprs := []string{
		`{ true }`, `{ false }`, `{ 1 }`, `{ !true }`,
		`{ span.http.status_code = 500 }`, `{ span.http.status_code != 500 }`, `{ span.http.status_code >= 404 }`,
		`{ span.http.status_code = "500" }`, `{ .http.status_code < 300 }`, `{ span.missing = nil }`, `{ span.missing != nil }`,
		`{ span.nothing = nil }`, `{ span.nothing != nil }`, `{ resource.service.name = "payment" }`,
		`{ .service.name =~ "pay.*" }`, `{ .service.name !~ "pay.*" }`, `{ span.http.url =~ ".*/1[0-9]*" }`,
		`{ span.cache.hit = true }`, `{ span.cache.hit }`, `{ !span.cache.hit }`, `{ span.queue.ratio > 0.5 }`,
		`{ status = error }`, `{ status != ok }`, `{ kind = server || kind = client }`, `{ !(kind = internal) }`,
		`{ duration > 250ms && name =~ "GET.*" }`, `{ name = "GET /api/cart" }`, `{ statusMessage = "upstream failed" }`,
		`{ instrumentation:name = "nx/payment" }`, `{ instrumentation.x = nil }`, `{ event.exception.type = "io.EOF" }`,
		`{ event:name = "exception" }`, `{ link.link.kind != nil }`, `{ trace:rootService = "frontend" && kind = client }`,
		`{ 500 = span.http.status_code }`, `{ span.http.status_code = span.http.status_code }`,
		`{ nestedSetParent < 0 && true }`, `{ traceDuration > 100ms }`,
	}
	for _, src := range exprs {
		q, err := Parse(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		e := q.Pipeline.Stages[0].(*SpansetFilter).Expr
		matched := 0
		for _, tr := range traces {
			for i := range tr.Spans {
				want := truthy(evalField(e, tr, i))
				if got := matchSpan(e, tr, i); got != want {
					t.Fatalf("%s on span %d: matchSpan %v, evalField %v", src, i, got, want)
				}
				if want {
					matched++
				}
			}
		}
		t.Logf("%s: %d spans", src, matched)
	}
}
