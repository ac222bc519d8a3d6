package agent

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v2"
)

// Table tests written from Promtail's stage documentation.

func TestStageDecolorize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"\x1b[0;32mINFO\x1b[0m started", "INFO started"},
		{"\x1b[1m\x1b[31mERROR\x1b[39m\x1b[22m: boom", "ERROR: boom"},
		{"\x1b[38;5;208morange\x1b[0m", "orange"},
		{"\x1b[38;2;255;0;0mtruecolor\x1b[m", "truecolor"},
		{"\x1b[2K\x1b[1Gprogress", "progress"},
		{"\x1b]0;title\x07after osc", "after osc"},
		{"no colours [0m here", "no colours [0m here"},
	} {
		out := runStages(t, "- decolorize: {}", nil, tc.in)
		if len(out) != 1 {
			t.Fatalf("%q: %d entries", tc.in, len(out))
		}
		eq(t, fmt.Sprintf("%q", tc.in), out[0].Line, tc.want)
	}
	// The bare key (decolorize:) is accepted too.
	out := runStages(t, "- decolorize:", nil, "\x1b[31mred\x1b[0m")
	eq(t, "bare key", out[0].Line, "red")
}

func TestStageSampling(t *testing.T) {
	many := make([]string, 10000)
	for i := range many {
		many[i] = fmt.Sprint("line ", i)
	}
	for _, tc := range []struct {
		rate     string
		min, max int
	}{
		{"1", 10000, 10000},
		{"0", 0, 0},
		{"0.1", 800, 1200},
		{"0.5", 4700, 5300},
	} {
		out, reg := runStagesReg(t, "- sampling: {rate: "+tc.rate+"}", nil, many...)
		if len(out) < tc.min || len(out) > tc.max {
			t.Errorf("rate %s: kept %d, want %d..%d", tc.rate, len(out), tc.min, tc.max)
		}
		if got := counterValue(reg, "logentry_dropped_lines_total", "sampling"); int(got) != 10000-len(out) {
			t.Errorf("rate %s: dropped counter %v, kept %d", tc.rate, got, len(out))
		}
	}
	// Inside match, as the docs' example: only {app="poki"} is sampled.
	out := runStages(t, `
- match:
    selector: '{app="poki"}'
    stages:
      - sampling: {rate: 0}
`, model.LabelSet{"app": "other"}, "kept")
	eq(t, "other app kept", len(out), 1)
	for _, bad := range []string{"- sampling: {rate: 1.5}", "- sampling: {}", "- sampling: {rate: -0.1}"} {
		if _, err := NewPipeline(mustStages(t, bad), nil); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestStageLuhn(t *testing.T) {
	for _, tc := range []struct {
		stage, in, want string
	}{
		// 4111111111111111 and 5555555555554444 pass the Luhn check.
		{"- luhn: {}", "card 4111111111111111 paid", "card **REDACTED** paid"},
		{"- luhn: {}", "two 4111111111111111,5555555555554444.", "two **REDACTED**,**REDACTED**."},
		{"- luhn: {}", "fails check 4111111111111112", "fails check 4111111111111112"},
		{"- luhn: {}", "short 79927398713", "short 79927398713"}, // passes Luhn, 11 digits < 13
		{"- luhn: {min_length: 11}", "short 79927398713", "short **REDACTED**"},
		{"- luhn: {replacement: XXXX}", "x4111111111111111y", "xXXXXy"},
		{"- luhn: {}", "no digits", "no digits"},
	} {
		out := runStages(t, tc.stage, nil, tc.in)
		eq(t, tc.stage+" "+tc.in, out[0].Line, tc.want)
	}
	// With source the extracted value is redacted, the line is not.
	out := runStages(t, `
- regex: {expression: 'cc=(?P<cc>\d+)'}
- luhn: {source: cc}
- output: {source: cc}
`, nil, "cc=4111111111111111")
	eq(t, "source", out[0].Line, "**REDACTED**")
	for _, n := range []string{"4111111111111111", "79927398713", "0"} {
		if !luhnValid(n) {
			t.Errorf("%s should pass", n)
		}
	}
	if luhnValid("79927398710") {
		t.Error("79927398710 should fail")
	}
}

func TestStageEventLogMessage(t *testing.T) {
	msg := `{"message":"Connection established.\r\nSource Address: 10.0.0.1\r\nDest Port: 443\r\nProcess ID: 4\r\nOverwritten: new\r\nno colon line\r\n: empty key","Overwritten":"old"}`
	for _, tc := range []struct {
		stage string
		want  map[string]string
	}{
		{"- eventlogmessage: {}", map[string]string{
			"Source_Address": "10.0.0.1", "Dest_Port": "443", "Process_ID": "4",
			"Overwritten": "old", "Overwritten_extracted": "new",
		}},
		{"- eventlogmessage: {overwrite_existing: true}", map[string]string{"Overwritten": "new", "Source_Address": "10.0.0.1"}},
		{"- eventlogmessage: {drop_invalid_labels: true}", map[string]string{"Source_Address": "", "Overwritten_extracted": "new"}},
	} {
		out := runStages(t, `
- json: {expressions: {message: message, Overwritten: Overwritten}}
`+tc.stage, nil, msg)
		for k, want := range tc.want {
			got, _ := out[0].lookup(k)
			eq(t, tc.stage+" "+k, got, want)
		}
	}
	// No source: counted as a stage error, the line goes on.
	out, reg := runStagesReg(t, "- eventlogmessage: {source: nope}", nil, "plain")
	eq(t, "line kept", out[0].Line, "plain")
	eq(t, "stage error", counterValue(reg, "nxwatcher_agent_stage_errors_total", "eventlogmessage"), 1)
}

// counterValue sums the samples of a counter whose one label has value
// (0 when there is none).
func counterValue(reg *prometheus.Registry, name, value string) float64 {
	mfs, _ := reg.Gather()
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == value {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

func mustStages(t *testing.T, y string) []StageConfig {
	t.Helper()
	var cfgs []StageConfig
	if err := yaml.UnmarshalStrict([]byte(y), &cfgs); err != nil {
		t.Fatal(err)
	}
	return cfgs
}
