package agent

import (
	"os"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
)

func FuzzParseConfig(f *testing.F) {
	if b, err := os.ReadFile("../../deploy/agent/promtail.yaml"); err == nil {
		f.Add(string(b))
	}
	f.Add("clients: [{url: http://x/}]\nscrape_configs:\n  - job_name: a\n    pipeline_stages:\n      - match: {selector: '{a=\"b\"} |= \"x\"', stages: [{regex: {expression: '(?P<a>.)'}}]}\n")
	f.Fuzz(func(t *testing.T, s string) {
		cfg, err := Parse([]byte(s), false)
		if err == nil && len(cfg.Clients) == 0 {
			t.Fatal("a valid config without clients")
		}
	})
}

// FuzzLinePipelines feeds arbitrary lines to the parsing stages: they must
// never panic, and a line always comes out (stages pass what they cannot
// parse).
func FuzzLinePipelines(f *testing.F) {
	for _, s := range []string{
		`{"log":"x\n","stream":"stdout","time":"2019-04-30T02:12:41.8443515Z"}`,
		`2019-01-01T01:00:00Z stdout F hello`, `2019-01-01T01:00:00Z stderr P part`,
		`a=1 b="x \" y" c`, `{"a":{"b":[1,2]}}`, "\xff\x00", `level=`, `"`,
	} {
		f.Add(s)
	}
	stages := `
- docker: {}
- logfmt: {mapping: {a: a, b: b}}
- json: {expressions: {x: "a.b[0]"}}
- regex: {expression: '(?P<w>\w+)'}
- labels: {a: a, w: w}
- timestamp: {source: a, format: UnixMs}
- template: {source: w, template: '{{ ToUpper .Value }}'}
- replace: {expression: '(\d)', replace: 'N'}
`
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsRune(line, '\n') {
			return
		}
		out := runStages(t, stages, model.LabelSet{"job": "f"}, line)
		if len(out) != 1 {
			t.Fatalf("%d entries out of one line", len(out))
		}
	})
}
