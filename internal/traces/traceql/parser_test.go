package traceql

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRoundTrip(t *testing.T) {
	for _, q := range []string{
		`{ }`,
		`{ span.http.method = "GET" && resource.service.name =~ "front.*" }`,
		`{ .a = 1 || .b = 2.5 && !(.c = true) }`,
		`({ .a = 1 } || { .b = 2 }) && { .c = 3 }`,
		`{ .a = 1 } > ({ .b = 2 } >> { .c = 3 })`,
		`{ duration > 1h } | count() > 2 | by(span."weird key") | select(.x, resource.y)`,
		`{ name = "say \"hi\"\n" } | avg(duration) >= 150ms`,
		`({ kind = server } | count() > 1) && { status = error }`,
		`{ event:name = "x" && link:traceID != nil && traceDuration < 5s && rootServiceName = "a" }`,
		`{ .n = -3 && .f = -0.5 && .d > 1500us }`,
		`{ instrumentation:name = "x" && instrumentation:version != nil && event:timeSinceStart > 1ms }`,
		`{ nestedSetParent < 0 && nestedSetLeft > 1 && span:nestedSetRight > 2 && kind = unspecified }`,
		`{ .a = 1 } &>> { .b = 2 } &> { .c = 3 } &~ { .d = 4 } &<< { .e = 5 } &< { .f = 6 }`,
		`{ .a = 1 } !>> ({ .b = 2 } &< { .c = 3 }) !~ { .d = 4 }`,
	} {
		p1, err := Parse(q)
		if err != nil {
			t.Fatalf("parse %q: %v", q, err)
		}
		s1 := p1.String()
		p2, err := Parse(s1)
		if err != nil {
			t.Fatalf("reparse %q (from %q): %v", s1, q, err)
		}
		if s2 := p2.String(); s1 != s2 {
			t.Fatalf("round trip changed %q -> %q", s1, s2)
		}
	}
}

func TestPrecedence(t *testing.T) {
	q, err := Parse(`{ .a = 1 } || { .b = 2 } && { .c = 3 } > { .d = 4 }`)
	if err != nil {
		t.Fatal(err)
	}
	or, ok := q.Pipeline.Stages[0].(*SpansetOp)
	if !ok || or.Op != "||" {
		t.Fatalf("top is %T, want ||", q.Pipeline.Stages[0])
	}
	and, ok := or.R.(*SpansetOp)
	if !ok || and.Op != "&&" {
		t.Fatalf("right of || is not &&: %s", or.R)
	}
	if st, ok := and.R.(*SpansetOp); !ok || st.Op != ">" {
		t.Fatalf("right of && is not >: %s", and.R)
	}
}

func TestParseErrorPositions(t *testing.T) {
	for _, tc := range []struct {
		q   string
		pos int
	}{
		{`{ name = }`, 9},
		{`{ .a = 1 } | bogus()`, 13},
		{`{ .a = "x`, 7},
		{`{ .a = 1 } #`, 11},
	} {
		_, err := Parse(tc.q)
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("%q: err %v is not a ParseError", tc.q, err)
		}
		if pe.Pos != tc.pos {
			t.Errorf("%q: position %d, want %d (%v)", tc.q, pe.Pos, tc.pos, err)
		}
	}
}

func TestLimits(t *testing.T) {
	if _, err := Parse(strings.Repeat("(", 10000) + "{}" + strings.Repeat(")", 10000)); err == nil {
		t.Fatal("deep nesting accepted")
	}
	if _, err := Parse("{ .a = \"" + strings.Repeat("x", MaxQueryLength) + "\" }"); err == nil {
		t.Fatal("oversized query accepted")
	}
}

func TestHints(t *testing.T) {
	q, err := Parse(`{ resource.service.name = "a" && .http.status_code = 500 && duration > 1s } && { name = "x" || name = "y" } | count() > 1`)
	if err != nil {
		t.Fatal(err)
	}
	h := q.Hints()
	if len(h) != 2 {
		t.Fatalf("hints = %+v, want 2", h)
	}
	if h[0].Keys[0] != "resource.service.name" || h[0].Values[0] != (HintValue{"string", "a"}) {
		t.Fatalf("hint 0 = %+v", h[0])
	}
	if len(h[1].Keys) != 2 || h[1].Values[0] != (HintValue{"int", "500"}) {
		t.Fatalf("hint 1 = %+v", h[1])
	}
	q, _ = Parse(`{ .a = "x" } || { .b = "y" }`)
	if len(q.Hints()) != 0 {
		t.Fatal("|| must not produce hints")
	}
	q, _ = Parse(`{ .a = "x" } !> { .b = "y" }`)
	if h := q.Hints(); len(h) != 1 || h[0].Keys[0] != "span.b" {
		t.Fatalf("negated structural hints = %+v", h)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{`{ }`, `{ .a = "b" } | count() > 1`, `{ duration > 1s } >> { status = error }`,
		`({ kind = server } | by(.x)) && { name =~ "a.*" }`, `{ span."a b" != nil }`, `{ .a = -1.5e3 }`,
		`{ nestedSetParent < 0 } &>> { event:timeSinceStart > 1ms } | avg(duration) > 1s`, `{ instrumentation:name = "x" } &~ { }`,
		`{ status = error } | rate() by (resource.service.name, name) | topk(3)`, `{} | quantile_over_time(duration, .99, 0.5) by (.a)`,
		`{} | histogram_over_time(span.a) with(exemplars=true)`, `{ .a = 1 } | count_over_time() | bottomk(1)`, `{} | compare({ .a = 1 }, 5, 1, 2)`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := Parse(s)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Pos < 0 || pe.Pos > len(s) {
				t.Fatalf("bad error for %q: %v", s, err)
			}
			return
		}
		out := q.String()
		q2, err := Parse(out)
		if err != nil {
			t.Fatalf("String() of %q does not parse: %q: %v", s, out, err)
		}
		if q2.String() != out {
			t.Fatalf("round trip unstable: %q -> %q", out, q2.String())
		}
		q.Eval(NewTrace(sampleTrace()))
		if q.Metrics() != nil {
			ev, err := q.NewMetricsEvaluator(MetricsRequest{Start: 0, End: 1e9, Step: 1e8, MaxSeries: 10, Exemplars: 5})
			if err != nil {
				t.Fatalf("metrics evaluator for %q: %v", s, err)
			}
			_ = ev.Observe(NewTrace(sampleTrace()))
			ev.Series()
		}
	})
}
