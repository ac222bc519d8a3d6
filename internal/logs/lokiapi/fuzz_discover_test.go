package lokiapi

import (
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// FuzzLineAnalysis feeds arbitrary lines to what reads line content at
// ingest (level detection) and for Drilldown (fields, patterns): none may
// panic, a level is always one value, a pattern never grows a line by more
// than its <_> markers.
func FuzzLineAnalysis(f *testing.F) {
	for _, s := range []string{
		`level=warn msg="x y" a=1`, `{"level":"error","a":{"b":[1,2]}}`, `[ERROR] x`, `k="unterminated`,
		`{"level":`, `=`, `a==b "" \"`, "\x00\xff level=info", `{"Severity":"WARNING"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if lvl := detectLevel(labels.EmptyLabels(), line); lvl == "" {
			t.Fatalf("empty level for %q", line)
		}
		lineFields(line, func(name, value, parser string, path []string) {
			if name == "" || (parser != "json" && parser != "logfmt") {
				t.Fatalf("field %q=%q parser %q from %q", name, value, parser, line)
			}
		})
		p := linePattern(line)
		if len(p) > len(line)+3*strings.Count(p, "<_>") {
			t.Fatalf("pattern %q longer than line %q", p, line)
		}
	})
}
