package logql

import (
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// narrowedBoth parses line with the narrowed fast path and with the general
// parser given the same narrowed stage, and returns both label sets.
func narrowedBoth(line string, only []string) (fast, slow string) {
	p := &ParserStage{Kind: "logfmt", only: only, narrowed: true}
	stream := labels.FromStrings("app", "x", "level", "stream")
	var a, b labelSet
	a.reset(stream, labels.EmptyLabels())
	b.reset(stream, labels.EmptyLabels())
	parseLogfmtNarrowed(line, p, &a)
	parseLogfmt(line, p, &b)
	return fmt.Sprint(a.labels()), fmt.Sprint(b.labels())
}

var logfmtSeeds = []string{
	`level=info caller=handler.go:100 method=GET path=/api/v1/users/42 status=200 duration=12.3ms trace_id=0123456789abcdef0123456789abcdef msg="request served"`,
	`level="warn" msg="a \"quoted\" word" status=503`,
	`status=500	level=error	msg=tabs`,
	`=x level= status="unterminated`,
	`a b c level=debug status`,
	`level="bad \q escape" status=404 9x=1 foo-bar=2 level_extracted=3`,
	`msg="ends with backslash\`,
	`status=="double" level==x`,
	``, `   `, `=`, `"`, `level="`, `level=\"x\" status=1`,
}

func TestLogfmtNarrowedMatchesGeneral(t *testing.T) {
	for _, only := range [][]string{{"level"}, {"status"}, {"level", "status"}, {"foo_bar", "msg"}, {"x9"}} {
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
		for _, only := range [][]string{{"level", "status"}, {"msg"}} {
			if a, b := narrowedBoth(line, only); a != b {
				t.Fatalf("only %v, %q:\nnarrowed %s\ngeneral  %s", only, line, a, b)
			}
		}
	})
}

// BenchmarkLogfmtNarrowed parses a realistic line for `sum by (level)`.
func BenchmarkLogfmtNarrowed(b *testing.B) {
	line := logfmtSeeds[0]
	p := &ParserStage{Kind: "logfmt", only: []string{"level"}, narrowed: true}
	stream := labels.FromStrings("app", "x")
	var ls labelSet
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for _, c := range []struct {
		name string
		fn   func(string, *ParserStage, *labelSet)
	}{{"narrowed", parseLogfmtNarrowed}, {"general", parseLogfmt}} {
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
