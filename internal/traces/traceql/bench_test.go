package traceql

import "testing"

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
