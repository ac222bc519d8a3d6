package traceql

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/testclock"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Parse(`{ resource.service.name = "checkout" && span.http.status_code >= 500 } >> { kind = client && duration > 100ms } | count() > 1 | by(resource.service.name)`); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEval(b *testing.B) {
	q, err := Parse(`{ kind = server } >> { .a = 1 } | count() > 0`)
	if err != nil {
		b.Fatal(err)
	}
	td := sampleTrace()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if len(q.Eval(NewTrace(td))) != 0 {
			b.Fatal("sample root has no kind")
		}
	}
}

// BenchmarkMetrics is the evaluation side of a TraceQL metrics query: one
// op prepares (NewTrace) and observes 1000 generated traces (~5.5k spans)
// at 60 s steps over an hour; the store's decoding is not included.
func BenchmarkMetrics(b *testing.B) {
	base := testclock.Base().UnixNano()
	g := storetest.NewGen(1, base)
	var traces []ptrace.Traces
	spans := 0
	for i := 0; i < 1000; i++ {
		_, td := g.Trace(3 + i%6)
		traces = append(traces, td)
		spans += td.SpanCount()
	}
	for _, text := range []string{
		`{} | rate() by (resource.service.name)`,
		`{ status = error } | count_over_time()`,
		`{} | quantile_over_time(duration, .9, .5) by (name)`,
		`{} | histogram_over_time(duration)`,
	} {
		q, err := Parse(text)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(text, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				ev, err := q.NewMetricsEvaluator(MetricsRequest{Start: base, End: base + int64(time.Hour), Step: int64(time.Minute)})
				if err != nil {
					b.Fatal(err)
				}
				for _, td := range traces {
					if err := ev.Observe(NewTraceFor(q, td)); err != nil {
						b.Fatal(err)
					}
				}
				if len(ev.Series()) == 0 {
					b.Fatal("no series")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
		})
	}
}
