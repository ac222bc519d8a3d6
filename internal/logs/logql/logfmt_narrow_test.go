package logql

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// narrowedBoth parses line with the narrowed fast path and with the general
// parser given the same narrowed stage (as narrowParsers builds it), and
// returns what a query can see of each: the labels in only and the stream
// labels, as the narrowed stage's query groups by and filters on nothing else.
func narrowedBoth(line string, only []string) (fast, slow string) {
	p := &ParserStage{Kind: "logfmt", narrowed: true, only: slices.Sorted(slices.Values(only))}
	p.sanitizedMatter = slices.ContainsFunc(p.only, func(n string) bool { return strings.Contains(n, "_") })
	stream := labels.FromStrings("app", "x", "level", "stream")
	var a, b labelSet
	a.reset(stream, labels.EmptyLabels())
	b.reset(stream, labels.EmptyLabels())
	parseLogfmtNarrowed(line, p, &a)
	parseLogfmt(line, p, &b)
	seen := func(ls *labelSet) string {
		ls.applyGrouping(&Grouping{Labels: append(slices.Clone(p.only), "app", "level")})
		return fmt.Sprint(ls.labels())
	}
	return seen(&a), seen(&b)
}

var logfmtSeeds = []string{
	`level=info caller=handler.go:100 method=GET path=/api/v1/users/42 status=200 duration=12.3ms trace_id=0123456789abcdef0123456789abcdef msg="request served"`,
	`level="warn" msg="a \"quoted\" word" status=503`,
	`status=500	level=error	msg=tabs`,
	`=x level= status="unterminated`,
	`a b c level=debug status`,
	`level="bad \q escape" status=404 9x=1 foo-bar=2 level_extracted=3`,
	`9abc=1 a.b=2 a-b="q" ä=3 level=x`,
	`status=5"x level=info status=7`, `level=a level=b`, `xlevel=1 level_x=2 level`, `a=level=3 level= status`,
	`msg="level=warn" level=info`, ` 	level=tab	status=9 `, `level="quoted first" status=2 msg="x"`,
	`msg="ends with backslash\`,
	`status=="double" level==x`,
	``, `   `, `=`, `"`, `level="`, `level=\"x\" status=1`,
}

func TestLogfmtNarrowedMatchesGeneral(t *testing.T) {
	for _, only := range [][]string{{"level"}, {"status"}, {"level", "status"}, {"foo_bar", "msg"}, {"x9"}, {"_abc", "a_b"}, {"level_extracted", "level"}} {
		for _, line := range logfmtSeeds {
			if f, s := narrowedBoth(line, only); f != s {
				t.Errorf("only %v, %q:\nnarrowed %s\ngeneral  %s", only, line, f, s)
			}
		}
	}
}

func FuzzLogfmtNarrowed(f *testing.F) {
	for _, s := range logfmtSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		for _, only := range [][]string{{"level", "status"}, {"msg"}, {"a_b"}, {"level", "msg", "status", "x"}} {
			if a, b := narrowedBoth(line, only); a != b {
				t.Fatalf("only %v, %q:\nnarrowed %s\ngeneral  %s", only, line, a, b)
			}
		}
	})
}

// BenchmarkLogfmtNarrowed parses a realistic line for `sum by (level)`.
func BenchmarkLogfmtNarrowed(b *testing.B) {
	line := logfmtSeeds[0]
	stream := labels.FromStrings("app", "x")
	var ls labelSet
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for _, c := range []struct {
		name string
		only []string
		fn   func(string, *ParserStage, *labelSet)
	}{
		{"narrowed/level", []string{"level"}, parseLogfmtNarrowed},
		{"narrowed/service,status", []string{"service", "status"}, parseLogfmtNarrowed},
		{"general/level", []string{"level"}, parseLogfmt},
	} {
		p := &ParserStage{Kind: "logfmt", only: c.only, narrowed: true}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(line)))
			cpu0 := cpuTime()
			for range b.N {
				ls.reset(stream, labels.EmptyLabels())
				c.fn(line, p, &ls)
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

func TestConvertValueDigits(t *testing.T) {
	for _, v := range []string{"0", "503", "007", "123456789012345", "1234567890123456", " 42", "4.5", "1e3", "-3", "", "12a"} {
		got, gerr := convertValue(v, "")
		want, werr := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if got != want || (gerr == nil) != (werr == nil) {
			t.Errorf("%q: %v, %v; ParseFloat %v, %v", v, got, gerr, want, werr)
		}
	}
}
