package logql

import (
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// narrowParsers gives logfmt the labels a metric query can look at, and
// leaves every other query alone.
func TestNarrowParsers(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  []string // nil: not narrowed
	}{
		{`sum by (level) (count_over_time({a="b"} | logfmt [1m]))`, []string{"level"}},
		{`sum(rate({a="b"} |= "x" | logfmt | status >= 500 and (ip = ip("10.0.0.0/8") or x =~ "y") [1m]))`, []string{"ip", "status", "x"}},
		{`sum by (svc_extracted) (sum_over_time({a="b"} | logfmt | unwrap took | z = "1" [1m]))`, []string{"svc", "svc_extracted", "took", "z"}},
		{`count_over_time({a="b"} | logfmt [1m])`, nil},                                         // every label is a series label
		{`count by (level) (count_over_time({a="b"} | logfmt [1m]))`, nil},                      // not pushed down
		{`sum without (x) (count_over_time({a="b"} | logfmt [1m]))`, nil},                       // without
		{`sum by (level) (count_over_time({a="b"} | logfmt --strict [1m]))`, nil},               // errors depend on all pairs
		{`sum by (level) (count_over_time({a="b"} | logfmt lvl="level" [1m]))`, nil},            // parameters
		{`sum by (level) (count_over_time({a="b"} | logfmt | line_format "{{.x}}" [1m]))`, nil}, // templates
		{`sum by (level) (count_over_time({a="b"} | logfmt | json [1m]))`, nil},                 // two parsers
		{`sum by (level) (count_over_time({a="b"} | json [1m]))`, []string{"level"}},            // json too (ADR 0108)
		{`sum by (http_status) (rate({a="b"} | json | took > 1 [1m]))`, []string{"http_status", "took"}},
		{`sum by (level) (count_over_time({a="b"} | json lvl="level" [1m]))`, nil}, // json parameters
	} {
		t.Run(tc.query, func(t *testing.T) {
			e, err := ParseExpr(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			var ra *RangeAggExpr
			var pushed *Grouping
			switch x := e.(type) {
			case *RangeAggExpr:
				ra = x
			case *VectorAggExpr:
				r, ok := groupingPushdown(x.Op, x.Left)
				if ok {
					pushed = x.Grouping
					if pushed == nil {
						pushed = &Grouping{}
					}
				} else {
					r = x.Left.(*RangeAggExpr)
				}
				ra = r
			}
			_, stages := pushdown(ra.Left.Left)
			out := narrowParsers(stages, ra.Left.Unwrap, ra.Grouping, pushed)
			var got []string
			narrowed := false
			for i, st := range out {
				if p, ok := st.(*ParserStage); ok && p.narrowed {
					narrowed = true
					got = p.only
					if stages[i].(*ParserStage).narrowed {
						t.Fatal("the query's own stage was changed")
					}
				}
			}
			if tc.want == nil {
				if narrowed {
					t.Fatalf("narrowed to %v", got)
				}
				return
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("labels %v, want %v", got, tc.want)
			}
		})
	}
}

// A narrowed logfmt stage gives every label it was narrowed to the value a
// full parse gives it.
func FuzzNarrowLogfmt(f *testing.F) {
	f.Add(`level=info service=x foo.bar=1 msg="a \"b\"" =x k level=warn`, "level,foo_bar,service_extracted,msg,k")
	f.Add(`a="unterminated b=2`, "a,b")
	f.Add("x=1\tx=\"2\" 1x=3 _x=4", "x,_x")
	f.Fuzz(func(t *testing.T, line, names string) {
		var by []string
		for _, n := range strings.Split(names, ",") {
			if n != "" && sanitizeLabelName(n) == n {
				by = append(by, n)
			}
		}
		stream := labels.FromStrings("service", "s")
		full := &ParserStage{Kind: "logfmt"}
		out := narrowParsers([]Stage{full}, nil, &Grouping{Labels: by})
		nar := out[0].(*ParserStage)
		if !nar.narrowed {
			t.Fatal("not narrowed")
		}
		var a, b labelSet
		a.reset(stream, labels.EmptyLabels())
		b.reset(stream, labels.EmptyLabels())
		full.parse(line, &a)
		nar.parse(line, &b)
		for _, n := range append(by, ErrorLabel) {
			va, oka := a.get(n)
			vb, okb := b.get(n)
			if va != vb || oka != okb {
				t.Fatalf("%q: label %s full %q/%v, narrowed %q/%v", line, n, va, oka, vb, okb)
			}
		}
	})
}
