package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v2"
)

// runStages runs lines (with labels) through stages given as YAML and
// returns what comes out, flushing buffered stages at the end.
func runStages(t *testing.T, stagesYAML string, ls model.LabelSet, lines ...string) []Entry {
	t.Helper()
	out, _ := runStagesReg(t, stagesYAML, ls, lines...)
	return out
}

var testNow = time.Now().Truncate(time.Second)

func runStagesReg(t *testing.T, stagesYAML string, ls model.LabelSet, lines ...string) ([]Entry, *prometheus.Registry) {
	t.Helper()
	var cfgs []StageConfig
	if err := yaml.UnmarshalStrict([]byte(stagesYAML), &cfgs); err != nil {
		t.Fatalf("stages: %v", err)
	}
	reg := prometheus.NewRegistry()
	p, err := NewPipeline(cfgs, &PipelineDeps{Metrics: newPipelineMetrics(reg), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	var out []Entry
	p.SetOutput(func(e Entry) { out = append(out, e) }, nil)
	for _, l := range lines {
		p.Process(Entry{Labels: ls, shared: true, Line: l, Time: testNow})
	}
	p.Flush(true)
	return out, reg
}

func lines(es []Entry) []string {
	var s []string
	for _, e := range es {
		s = append(s, e.Line)
	}
	return s
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

func TestStageDocker(t *testing.T) {
	out := runStages(t, "- docker: {}", model.LabelSet{"app": "a"},
		`{"log":"hello\n","stream":"stderr","time":"2019-04-30T02:12:41.8443515Z"}`,
		// the daemon splits long lines: pieces without a trailing newline
		`{"log":"part one ","stream":"stdout","time":"2019-04-30T02:12:42Z"}`,
		`{"log":"part two\n","stream":"stdout","time":"2019-04-30T02:12:42.1Z"}`,
		// containerd node with docker: {} — a CRI line is parsed as CRI
		`2019-04-30T02:12:43.000000001Z stdout F cri line`,
		`not json at all`,
	)
	if len(out) != 4 {
		t.Fatalf("got %d entries: %q", len(out), lines(out))
	}
	eq(t, "line", out[0].Line, "hello")
	eq(t, "stream", out[0].Labels["stream"], "stderr")
	eq(t, "time", out[0].Time.UTC().Format(time.RFC3339Nano), "2019-04-30T02:12:41.8443515Z")
	eq(t, "app kept", out[0].Labels["app"], "a")
	eq(t, "joined", out[1].Line, "part one part two")
	eq(t, "cri", out[2].Line, "cri line")
	eq(t, "cri stream", out[2].Labels["stream"], "stdout")
	eq(t, "unparsable passes", out[3].Line, "not json at all")
}

func TestStageCRI(t *testing.T) {
	out := runStages(t, "- cri: {}", nil,
		`2019-01-01T01:00:00.000000001Z stderr P partial 1 `,
		`2019-01-01T01:00:00.000000002Z stdout F other stream`,
		`2019-01-01T01:00:00.000000003Z stderr P partial 2 `,
		`2019-01-01T01:00:00.000000004Z stderr F end`,
		`2019-01-01T01:00:00.000000005Z stdout F`,
	)
	got := lines(out)
	want := []string{"other stream", "partial 1 partial 2 end", ""}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q want %q", got, want)
	}
	eq(t, "stream", out[1].Labels["stream"], "stderr")
	eq(t, "ts of first piece", out[1].Time.UnixNano()%10, 1)
}

func TestStageCRIMaxPartialLines(t *testing.T) {
	out := runStages(t, "- cri: {max_partial_lines: 2}", nil,
		`2019-01-01T01:00:00Z stdout P a`, `2019-01-01T01:00:00Z stdout P b`, `2019-01-01T01:00:00Z stdout P c`, `2019-01-01T01:00:00Z stdout F d`)
	if got := strings.Join(lines(out), "|"); got != "ab|cd" {
		t.Fatal(got)
	}
}

func TestStageRegexLabelsOutputTimestamp(t *testing.T) {
	st := `
- regex:
    expression: '^(?P<time>\S+) (?P<level>\w+) (?P<msg>.*)$'
- labels:
    level:
    lvl: level
- timestamp:
    source: time
    format: RFC3339
- output:
    source: msg
`
	out := runStages(t, st, nil, "2024-03-01T10:00:00Z warn disk almost full", "nomatch")
	eq(t, "n", len(out), 2)
	eq(t, "line", out[0].Line, "disk almost full")
	eq(t, "level", out[0].Labels["level"], "warn")
	eq(t, "lvl", out[0].Labels["lvl"], "warn")
	eq(t, "ts", out[0].Time.UTC(), time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC))
	eq(t, "unmatched passes", out[1].Line, "nomatch")
}

func TestStageJSON(t *testing.T) {
	st := `
- json:
    expressions:
      level:
      user: extra.user
      first: items[0]
      nested: extra
- labels: {level: , user: }
- output: {source: nested}
`
	out := runStages(t, st, nil, `{"level":"info","extra":{"user":"bob"},"items":[1,2]}`, `{broken`)
	eq(t, "n", len(out), 2)
	eq(t, "level", out[0].Labels["level"], "info")
	eq(t, "user", out[0].Labels["user"], "bob")
	eq(t, "object as JSON", out[0].Line, `{"user":"bob"}`)
	eq(t, "first", out[0].Extracted["first"].(float64), 1.0)
	eq(t, "malformed passes", out[1].Line, `{broken`)
	out = runStages(t, "- json: {expressions: {a: a}, drop_malformed: true}", nil, `{broken`, `{"a":"x"}`)
	eq(t, "drop_malformed", len(out), 1)
}

func TestStageLogfmt(t *testing.T) {
	out := runStages(t, "- logfmt: {mapping: {lvl: level, msg: }}\n- labels: {lvl: }", nil, `ts=1 level=error msg="a b \"c\"" bare`)
	eq(t, "lvl", out[0].Labels["lvl"], "error")
	eq(t, "msg", out[0].Extracted["msg"].(string), `a b "c"`)
}

func TestStageStructuredMetadata(t *testing.T) {
	out := runStages(t, "- logfmt: {mapping: {trace_id: }}\n- structured_metadata: {trace_id: }", nil, `trace_id=abc x=1`)
	eq(t, "metadata", out[0].Metadata["trace_id"], "abc")
	eq(t, "not a label", out[0].Labels["trace_id"], "")
}

func TestStageTimestampFormats(t *testing.T) {
	for _, tc := range []struct {
		format, value string
		want          time.Time
	}{
		{"Unix", "1700000000", time.Unix(1700000000, 0)},
		{"Unix", "1700000000.5", time.Unix(1700000000, 5e8)},
		{"UnixMs", "1700000000123", time.UnixMilli(1700000000123)},
		{"UnixUs", "1700000000123456", time.UnixMicro(1700000000123456)},
		{"UnixNs", "1700000000123456789", time.Unix(0, 1700000000123456789)},
		{"RFC3339Nano", "2024-01-02T03:04:05.123456789Z", time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)},
		{"2006-01-02 15:04:05", "2024-01-02 03:04:05", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
	} {
		t.Run(tc.format, func(t *testing.T) {
			out := runStages(t, "- regex: {expression: '^(?P<ts>.*)$'}\n- timestamp: {source: ts, format: '"+tc.format+"'}", nil, tc.value)
			if !out[0].Time.Equal(tc.want) {
				t.Fatalf("got %v want %v", out[0].Time, tc.want)
			}
		})
	}
	// fallback formats, location, and a layout without a year
	out := runStages(t, "- regex: {expression: '^(?P<ts>.*)$'}\n- timestamp: {source: ts, format: RFC3339, fallback_formats: [UnixMs], location: Europe/Berlin}", nil, "1700000000123")
	eq(t, "fallback", out[0].Time.UnixMilli(), 1700000000123)
	out = runStages(t, "- regex: {expression: '^(?P<ts>.*)$'}\n- timestamp: {source: ts, format: 'Jan 2 15:04:05'}", nil, testNow.Add(-time.Hour).UTC().Format("Jan 2 15:04:05"))
	eq(t, "current year", out[0].Time.Year(), testNow.Add(-time.Hour).UTC().Year())
	// fudge: a failed parse gets the last good timestamp plus 1ns
	out = runStages(t, "- regex: {expression: '^(?P<ts>.*)$'}\n- timestamp: {source: ts, format: UnixMs}", nil, "1000", "garbage")
	eq(t, "fudge", out[1].Time, time.UnixMilli(1000).Add(time.Nanosecond))
	out = runStages(t, "- regex: {expression: '^(?P<ts>.*)$'}\n- timestamp: {source: ts, format: UnixMs, action_on_failure: skip}", nil, "1000", "garbage")
	eq(t, "skip keeps read time", out[1].Time, testNow)
}

func TestStageLabelDropAllowStatic(t *testing.T) {
	ls := model.LabelSet{"a": "1", "b": "2", "c": "3"}
	out := runStages(t, "- labeldrop: [a, b]", ls, "x")
	eq(t, "labeldrop", out[0].Labels.String(), `{c="3"}`)
	eq(t, "target labels untouched", ls.String(), `{a="1", b="2", c="3"}`)
	out = runStages(t, "- labelallow: [a]", ls, "x")
	eq(t, "labelallow", out[0].Labels.String(), `{a="1"}`)
	out = runStages(t, "- static_labels: {env: prod, a: one}", ls, "x")
	eq(t, "static", out[0].Labels.String(), `{a="one", b="2", c="3", env="prod"}`)
}

func TestStageTemplate(t *testing.T) {
	st := `
- regex: {expression: '^(?P<level>\w+) (?P<app>\w+)'}
- template: {source: level, template: '{{ ToUpper .Value }}'}
- template: {source: combo, template: '{{ .app }}-{{ .level }}'}
- template: {source: h, template: '{{ Hash "salt" .app }}'}
- template: {source: r, template: '{{ regexReplaceAll "(a)" .Value "$${1}A" }}'}
- labels: {level: , combo: }
`
	out := runStages(t, st, nil, "warn api rest")
	eq(t, "upper", out[0].Labels["level"], "WARN")
	eq(t, "combo", out[0].Labels["combo"], "api-WARN")
	if out[0].Extracted["h"].(string) == "" {
		t.Error("hash empty")
	}
}

func TestStageReplace(t *testing.T) {
	out := runStages(t, `- replace: {expression: 'password=(\S+)', replace: '****'}`, nil, "user=a password=secret x=1 password=other")
	eq(t, "masked", out[0].Line, "user=a password=**** x=1 password=****")
	out = runStages(t, `- replace: {expression: '(?P<ip>\d+\.\d+\.\d+\.\d+)', replace: '{{ .Value | ToUpper }}-ip'}`, nil, "from 10.0.0.1 ok")
	eq(t, "template", out[0].Line, "from 10.0.0.1-ip ok")
	eq(t, "named group extracted", out[0].Extracted["ip"].(string), "10.0.0.1")
	out = runStages(t, `- replace: {expression: 'debug', replace: 'DEBUG'}`, nil, "a debug b")
	eq(t, "no group: whole match", out[0].Line, "a DEBUG b")
}

func TestStageDrop(t *testing.T) {
	old := testNow.Add(-2 * time.Hour).UTC().Format(time.RFC3339)
	for _, tc := range []struct {
		name, stages string
		in           []string
		want         string
	}{
		{"expression on line", "- drop: {expression: '.*debug.*'}", []string{"a debug", "info"}, "info"},
		{"source value", "- logfmt: {mapping: {level: }}\n- drop: {source: level, value: debug}", []string{"level=debug a", "level=info b", "c"}, "level=info b|c"},
		{"source regex", "- logfmt: {mapping: {level: }}\n- drop: {source: level, expression: 'deb.*'}", []string{"level=debug a", "level=info b"}, "level=info b"},
		{"source list with separator", "- logfmt: {mapping: {a: , b: }}\n- drop: {source: [a, b], separator: '#', value: '1#2'}", []string{"a=1 b=2", "a=1 b=3"}, "a=1 b=3"},
		{"longer_than", "- drop: {longer_than: 5}", []string{"short", "too long"}, "short"},
		{"longer_than units", "- drop: {longer_than: 1KB}", []string{strings.Repeat("x", 1001), "ok"}, "ok"},
		{"older_than", "- regex: {expression: '^(?P<ts>\\S+)'}\n- timestamp: {source: ts, format: RFC3339}\n- drop: {older_than: 1h}", []string{old + " old", testNow.UTC().Format(time.RFC3339) + " new"}, testNow.UTC().Format(time.RFC3339) + " new"},
		{"conditions are and-ed", "- drop: {expression: 'x', longer_than: 3}", []string{"x", "xxxx", "yyyy"}, "x|yyyy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, reg := runStagesReg(t, tc.stages, nil, tc.in...)
			if got := strings.Join(lines(out), "|"); got != tc.want {
				t.Fatalf("got %q want %q", got, tc.want)
			}
			if n := testutil.CollectAndCount(reg, "logentry_dropped_lines_total"); n != 1 {
				t.Fatalf("dropped counter series: %d", n)
			}
		})
	}
}

func TestStageMatch(t *testing.T) {
	st := `
- match:
    selector: '{app="api"} |= "error"'
    stages:
      - static_labels: {alert: "yes"}
- match:
    selector: '{app=~"noisy.*"}'
    action: drop
    drop_counter_reason: noisy
`
	out := runStages(t, st, model.LabelSet{"app": "api"}, "an error", "fine")
	eq(t, "matched", out[0].Labels["alert"], "yes")
	eq(t, "not matched", out[1].Labels["alert"], "")
	out, reg := runStagesReg(t, st, model.LabelSet{"app": "noisy1"}, "x")
	eq(t, "dropped", len(out), 0)
	eq(t, "counted", testutil.ToFloat64(mustCounter(t, reg, "noisy")), 1.0)
}

func mustCounter(t *testing.T, reg *prometheus.Registry, reason string) prometheus.Collector {
	t.Helper()
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "logentry_dropped_lines_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == reason {
					c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
					c.Add(m.GetCounter().GetValue())
					return c
				}
			}
		}
	}
	t.Fatalf("no drop counter for %s", reason)
	return nil
}

func TestStageMultiline(t *testing.T) {
	st := "- multiline: {firstline: '^\\d{4}-', max_lines: 3}"
	out := runStages(t, st, nil,
		"2024-01-01 first", "  at a", "  at b",
		"2024-01-01 second",
		"2024-01-01 third", "  1", "  2", "  3")
	got := lines(out)
	want := []string{"2024-01-01 first\n  at a\n  at b", "2024-01-01 second", "2024-01-01 third\n  1\n  2", "  3"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q", got)
	}
}

func TestStagePack(t *testing.T) {
	out := runStages(t, "- pack: {labels: [pod, container]}", model.LabelSet{"pod": "p1", "container": "c", "ns": "n"}, "hello")
	eq(t, "packed", out[0].Line, `{"_entry":"hello","container":"c","pod":"p1"}`)
	eq(t, "labels left", out[0].Labels.String(), `{ns="n"}`)
	eq(t, "ingest time", out[0].Time, testNow)
}

func TestStageTenant(t *testing.T) {
	out := runStages(t, "- tenant: {value: team-a}", nil, "x")
	eq(t, "value", out[0].Labels[tenantLabel], "team-a")
	out = runStages(t, "- logfmt: {mapping: {org: }}\n- tenant: {source: org}", nil, "org=o1")
	eq(t, "source", out[0].Labels[tenantLabel], "o1")
	out = runStages(t, "- tenant: {label: ns}", model.LabelSet{"ns": "n1"}, "x")
	eq(t, "label", out[0].Labels[tenantLabel], "n1")
}

func TestStageLimitDrop(t *testing.T) {
	in := make([]string, 10)
	out := runStages(t, "- limit: {rate: 0.001, burst: 3, drop: true}", nil, in...)
	eq(t, "burst passes, rest dropped", len(out), 3)
	out = runStages(t, "- limit: {rate: 0.001, burst: 1, drop: true, by_label_name: app}", model.LabelSet{"app": "a"}, in...)
	eq(t, "per label", len(out), 1)
}

func TestStageMetrics(t *testing.T) {
	st := `
- logfmt: {mapping: {level: , dur: }}
- metrics:
    lines_total:
      type: Counter
      description: all lines
      config: {match_all: true, action: inc}
    bytes_total:
      type: Counter
      config: {match_all: true, count_entry_bytes: true, action: add}
    errors_total:
      type: Counter
      source: level
      config: {value: error, action: inc}
    last_dur:
      type: Gauge
      source: dur
      config: {action: set}
    dur_hist:
      type: Histogram
      source: dur
      prefix: my_
      config: {buckets: [1, 10]}
`
	_, reg := runStagesReg(t, st, model.LabelSet{"app": "x"}, "level=info dur=0.5", "level=error dur=20")
	want := `
# HELP promtail_custom_errors_total 
# TYPE promtail_custom_errors_total counter
promtail_custom_errors_total{app="x"} 1
# HELP promtail_custom_lines_total all lines
# TYPE promtail_custom_lines_total counter
promtail_custom_lines_total{app="x"} 2
# HELP promtail_custom_bytes_total 
# TYPE promtail_custom_bytes_total counter
promtail_custom_bytes_total{app="x"} 36
# HELP promtail_custom_last_dur 
# TYPE promtail_custom_last_dur gauge
promtail_custom_last_dur{app="x"} 20
# HELP my_dur_hist 
# TYPE my_dur_hist histogram
my_dur_hist_bucket{app="x",le="1"} 1
my_dur_hist_bucket{app="x",le="10"} 1
my_dur_hist_bucket{app="x",le="+Inf"} 2
my_dur_hist_sum{app="x"} 20.5
my_dur_hist_count{app="x"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "promtail_custom_errors_total", "promtail_custom_lines_total", "promtail_custom_bytes_total", "promtail_custom_last_dur", "my_dur_hist"); err != nil {
		t.Fatal(err)
	}
}

func TestStageErrorsNeverStop(t *testing.T) {
	st := "- json: {expressions: {a: a}}\n- timestamp: {source: a, format: UnixMs}\n- labels: {a: }"
	out, reg := runStagesReg(t, st, nil, "\xff\xfe binary", `{"a":"notanumber"}`, `{"a":"1000"}`)
	eq(t, "all lines pass", len(out), 3)
	if n := testutil.CollectAndCount(reg, "nxwatcher_agent_stage_errors_total"); n != 2 {
		t.Fatalf("stage error series: %d", n)
	}
}
