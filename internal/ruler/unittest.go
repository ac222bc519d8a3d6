package ruler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"go.yaml.in/yaml/v2"
)

// The unit-test file format of `promtool test rules`.
type unitTestFile struct {
	RuleFiles          []string       `yaml:"rule_files"`
	EvaluationInterval model.Duration `yaml:"evaluation_interval,omitempty"`
	GroupEvalOrder     []string       `yaml:"group_eval_order"`
	Tests              []testGroup    `yaml:"tests"`
	FuzzyCompare       bool           `yaml:"fuzzy_compare,omitempty"`
}

type testGroup struct {
	Interval        model.Duration   `yaml:"interval"`
	InputSeries     []inputSeries    `yaml:"input_series"`
	AlertRuleTests  []alertTestCase  `yaml:"alert_rule_test,omitempty"`
	PromqlExprTests []promqlTestCase `yaml:"promql_expr_test,omitempty"`
	ExternalLabels  labels.Labels    `yaml:"external_labels,omitempty"`
	ExternalURL     string           `yaml:"external_url,omitempty"`
	TestGroupName   string           `yaml:"name,omitempty"`
	StartTimestamp  startTimestamp   `yaml:"start_timestamp,omitempty"`
}

type inputSeries struct {
	Series string `yaml:"series"`
	Values string `yaml:"values"`
}

type alertTestCase struct {
	EvalTime  model.Duration `yaml:"eval_time"`
	Alertname string         `yaml:"alertname"`
	ExpAlerts []expAlert     `yaml:"exp_alerts"`
}

type expAlert struct {
	ExpLabels      map[string]string `yaml:"exp_labels"`
	ExpAnnotations map[string]string `yaml:"exp_annotations"`
}

type promqlTestCase struct {
	Expr       string         `yaml:"expr"`
	EvalTime   model.Duration `yaml:"eval_time"`
	ExpSamples []expSample    `yaml:"exp_samples"`
}

type expSample struct {
	Labels    string  `yaml:"labels"`
	Value     float64 `yaml:"value"`
	Histogram string  `yaml:"histogram"`
}

// startTimestamp accepts RFC 3339 or Unix seconds, as promtool does.
type startTimestamp struct{ time.Time }

func (t *startTimestamp) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(f)
		t.Time = time.Unix(int64(sec), int64(frac*1e9)).UTC()
		return nil
	}
	parsed, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("start_timestamp %q: not RFC 3339 or Unix seconds", s)
	}
	t.Time = parsed.UTC()
	return nil
}

// TestRuleFiles runs rule unit-test files as `promtool test rules` does
// (input_series in expanding notation, alert_rule_test, promql_expr_test,
// eval_time, interval, external_labels, external_url, group_eval_order,
// start_timestamp, fuzzy_compare) and prints a report to w. It reports
// whether any test failed.
func TestRuleFiles(w io.Writer, files ...string) (failed bool) {
	for _, f := range files {
		fmt.Fprintln(w, "Unit Testing: ", f)
		errs := runUnitTestFile(f)
		if len(errs) == 0 {
			fmt.Fprint(w, "  SUCCESS\n\n")
			continue
		}
		failed = true
		fmt.Fprintln(w, "  FAILED:")
		for _, e := range errs {
			fmt.Fprintln(w, e.Error())
			fmt.Fprintln(w)
		}
	}
	return failed
}

func runUnitTestFile(filename string) []error {
	b, err := os.ReadFile(filename)
	if err != nil {
		return []error{err}
	}
	var utf unitTestFile
	if err := yaml.UnmarshalStrict(b, &utf); err != nil {
		return []error{fmt.Errorf("%s: %w", filename, err)}
	}
	ruleFiles, err := globTestRuleFiles(filepath.Dir(filename), utf.RuleFiles)
	if err != nil {
		return []error{err}
	}
	if utf.EvaluationInterval == 0 {
		utf.EvaluationInterval = model.Duration(time.Minute)
	}
	order := map[string]int{}
	for i, g := range utf.GroupEvalOrder {
		if _, dup := order[g]; dup {
			return []error{fmt.Errorf("group name repeated in evaluation order: %s", g)}
		}
		order[g] = i
	}
	var errs []error
	for i, tg := range utf.Tests {
		if tg.Interval == 0 {
			tg.Interval = utf.EvaluationInterval
		}
		name := tg.TestGroupName
		if name == "" {
			name = fmt.Sprintf("unnamed#%d", i)
		}
		errs = append(errs, tg.run(name, time.Duration(utf.EvaluationInterval), order, utf.FuzzyCompare, ruleFiles)...)
	}
	return errs
}

func globTestRuleFiles(baseDir string, patterns []string) ([]string, error) {
	var out []string
	for _, p := range patterns {
		if p != "" && !filepath.IsAbs(p) {
			p = filepath.Join(baseDir, p)
		}
		m, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("rule_files %q: %w", p, err)
		}
		out = append(out, m...)
	}
	return out, nil
}

// loadedSample is one point of an input series, in time order.
type loadedSample struct {
	lset labels.Labels
	t    int64
	v    float64
	fh   *histogram.FloatHistogram
}

// seriesSamples expands input_series into samples at mint + i*interval.
func (tg *testGroup) seriesSamples(p parser.Parser, mint time.Time) ([]loadedSample, error) {
	var out []loadedSample
	step := time.Duration(tg.Interval)
	for _, is := range tg.InputSeries {
		lset, vals, err := p.ParseSeriesDesc(is.Series + " " + is.Values)
		if err != nil {
			return nil, fmt.Errorf("input series %q: %w", is.Series, err)
		}
		for i, v := range vals {
			if v.Omitted {
				continue
			}
			ts := mint.Add(time.Duration(i) * step)
			out = append(out, loadedSample{lset: lset, t: ts.UnixMilli(), v: v.Value, fh: v.Histogram})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].t < out[j].t })
	return out, nil
}

func (tg *testGroup) maxEvalTime() time.Duration {
	var m model.Duration
	for _, a := range tg.AlertRuleTests {
		m = max(m, a.EvalTime)
	}
	for _, p := range tg.PromqlExprTests {
		m = max(m, p.EvalTime)
	}
	return time.Duration(m)
}

// run evaluates the rule files over the group's input, step by step, and
// checks alerts and expressions. It follows promtool's semantics: series
// are loaded up to each evaluation time, groups evaluate in
// group_eval_order, and an alert test at eval_time compares the firing
// alerts of the last evaluation at or before it.
func (tg *testGroup) run(name string, evalInterval time.Duration, order map[string]int, fuzzy bool, ruleFiles []string) (errs []error) {
	ctx := context.Background()
	p := parser.NewParser(parser.Options{})
	logger := slog.New(slog.DiscardHandler)

	dir, err := os.MkdirTemp("", "nxwatcher-rules-test-")
	if err != nil {
		return []error{fmt.Errorf("create test storage: %w", err)}
	}
	defer os.RemoveAll(dir)
	opts := tsdb.DefaultOptions()
	opts.OutOfOrderTimeWindow = math.MaxInt64 / 2 // input may start anywhere in time
	db, err := tsdb.Open(dir, logger, nil, opts, nil)
	if err != nil {
		return []error{fmt.Errorf("open test storage: %w", err)}
	}
	defer func() {
		if err := db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close test storage: %w", err))
		}
	}()
	engine := promql.NewEngine(promql.EngineOpts{
		Logger:                   logger,
		MaxSamples:               50000000,
		Timeout:                  100 * time.Second,
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		NoStepSubqueryIntervalFn: func(int64) int64 { return evalInterval.Milliseconds() },
		Parser:                   p,
	})

	mint := time.Unix(0, 0).UTC()
	if !tg.StartTimestamp.IsZero() {
		mint = tg.StartTimestamp.Time
	}
	maxt := mint.Add(tg.maxEvalTime())
	samples, err := tg.seriesSamples(p, mint)
	if err != nil {
		return []error{err}
	}

	m := rules.NewManager(&rules.ManagerOptions{
		NameValidationScheme: model.UTF8Validation,
		QueryFunc:            rules.EngineQueryFunc(engine, db),
		AppendableV2:         db,
		Queryable:            db,
		Context:              ctx,
		NotifyFunc:           func(context.Context, string, ...*rules.Alert) {},
		Logger:               logger,
		Parser:               p,
	})
	groupsMap, loadErrs := m.LoadGroups(time.Duration(tg.Interval), tg.ExternalLabels, tg.ExternalURL, nil, false, ruleFiles...)
	if loadErrs != nil {
		return loadErrs
	}
	groups := make([]*rules.Group, 0, len(groupsMap))
	for _, g := range groupsMap {
		groups = append(groups, g)
	}
	sort.Slice(groups, func(i, j int) bool { return order[groups[i].Name()] < order[groups[j].Name()] })
	for _, g := range groups {
		for _, r := range g.Rules() {
			if ar, ok := r.(*rules.AlertingRule); ok {
				ar.SetRestored(true) // so ALERTS is written from the first evaluation
			}
		}
	}

	// Alert tests grouped by eval_time.
	byTime := map[model.Duration][]alertTestCase{}
	for _, a := range tg.AlertRuleTests {
		if a.Alertname == "" {
			in := ""
			if tg.TestGroupName != "" {
				in = fmt.Sprintf(" (in TestGroup %s)", tg.TestGroupName)
			}
			return []error{fmt.Errorf("an item under alert_rule_test misses required attribute alertname at eval_time %v%s", a.EvalTime, in)}
		}
		byTime[a.EvalTime] = append(byTime[a.EvalTime], a)
	}
	evalTimes := make([]model.Duration, 0, len(byTime))
	for t := range byTime {
		evalTimes = append(evalTimes, t)
	}
	slices.Sort(evalTimes)

	next, curr := 0, 0
	for ts := mint; !ts.After(maxt); ts = ts.Add(evalInterval) {
		// Load input up to ts.
		app := db.AppenderV2(ctx)
		for ; next < len(samples) && samples[next].t <= ts.UnixMilli(); next++ {
			s := samples[next]
			if _, err := app.Append(0, s.lset, 0, s.t, s.v, nil, s.fh, storage.AppendV2Options{}); err != nil {
				_ = app.Rollback()
				return append(errs, fmt.Errorf("load input series %s at %d: %w", s.lset, s.t, err))
			}
		}
		if err := app.Commit(); err != nil {
			return append(errs, fmt.Errorf("load input series: %w", err))
		}

		var evalErrs []error
		for _, g := range groups {
			g.Eval(ctx, ts)
			for _, r := range g.Rules() {
				if r.LastError() != nil {
					evalErrs = append(evalErrs, fmt.Errorf("    rule: %s, time: %s, err: %w", r.Name(), ts.Sub(time.Unix(0, 0).UTC()), r.LastError()))
				}
			}
		}
		if len(evalErrs) > 0 {
			return append(errs, evalErrs...)
		}

		for curr < len(evalTimes) && ts.Sub(mint) <= time.Duration(evalTimes[curr]) &&
			time.Duration(evalTimes[curr]) < ts.Add(evalInterval).Sub(mint) {
			errs = append(errs, tg.checkAlerts(name, groups, byTime[evalTimes[curr]], fuzzy)...)
			curr++
		}
	}

	for _, tc := range tg.PromqlExprTests {
		errs = append(errs, tg.checkExpr(ctx, engine, db, p, mint, tc, fuzzy)...)
	}
	return errs
}

// firing is one alert's labels and annotations, as compared by the test.
type firing struct {
	labels, annotations labels.Labels
}

func sortFirings(fs []firing) {
	sort.Slice(fs, func(i, j int) bool {
		if c := labels.Compare(fs[i].labels, fs[j].labels); c != 0 {
			return c < 0
		}
		return labels.Compare(fs[i].annotations, fs[j].annotations) < 0
	})
}

func firingsString(fs []firing) string {
	if len(fs) == 0 {
		return "[]"
	}
	var b strings.Builder
	b.WriteString("[\n")
	for i, f := range fs {
		fmt.Fprintf(&b, "              %d:\n                Labels:%s\n                Annotations:%s\n", i, f.labels, f.annotations)
	}
	b.WriteString("            ]")
	return b.String()
}

func (tg *testGroup) checkAlerts(name string, groups []*rules.Group, cases []alertTestCase, fuzzy bool) []error {
	want := map[string]bool{}
	for _, c := range cases {
		want[c.Alertname] = true
	}
	got := map[string][]firing{}
	for _, g := range groups {
		for _, r := range g.Rules() {
			ar, ok := r.(*rules.AlertingRule)
			if !ok || !want[ar.Name()] {
				continue
			}
			for _, a := range ar.ActiveAlerts() {
				if a.State == rules.StateFiring {
					got[ar.Name()] = append(got[ar.Name()], firing{a.Labels.Copy(), a.Annotations.Copy()})
				}
			}
		}
	}
	var errs []error
	for _, c := range cases {
		exp := make([]firing, 0, len(c.ExpAlerts))
		for _, e := range c.ExpAlerts {
			ls := make(map[string]string, len(e.ExpLabels)+1)
			for k, v := range e.ExpLabels {
				ls[k] = v
			}
			ls[labels.AlertName] = c.Alertname // added by the rule, not written in tests
			exp = append(exp, firing{labels.FromMap(ls), labels.FromMap(e.ExpAnnotations)})
		}
		g := got[c.Alertname]
		sortFirings(exp)
		sortFirings(g)
		if !slices.EqualFunc(exp, g, func(a, b firing) bool {
			return labels.Equal(a.labels, b.labels) && labels.Equal(a.annotations, b.annotations)
		}) {
			prefix := ""
			if tg.TestGroupName != "" {
				prefix = fmt.Sprintf("    name: %s,\n", name)
			}
			errs = append(errs, fmt.Errorf("%s    alertname: %s, time: %s, \n        exp:%v, \n        got:%v",
				prefix, c.Alertname, c.EvalTime, firingsString(exp), firingsString(g)))
		}
	}
	_ = fuzzy // alert labels and annotations are strings: compared exactly
	return errs
}

type gotSample struct {
	lset labels.Labels
	v    float64
	fh   *histogram.FloatHistogram
}

func (s gotSample) String() string {
	if s.fh != nil {
		return fmt.Sprintf("%s %s", s.lset, s.fh.TestExpression())
	}
	return fmt.Sprintf("%s %s", s.lset, strconv.FormatFloat(s.v, 'g', -1, 64))
}

func samplesString(ss []gotSample) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = s.String()
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func (tg *testGroup) checkExpr(ctx context.Context, engine *promql.Engine, q storage.Queryable, p parser.Parser, mint time.Time, tc promqlTestCase, fuzzy bool) []error {
	fail := func(err error) []error {
		return []error{fmt.Errorf("    expr: %q, time: %s, err: %w", tc.Expr, tc.EvalTime, err)}
	}
	qry, err := engine.NewInstantQuery(ctx, q, nil, tc.Expr, mint.Add(time.Duration(tc.EvalTime)))
	if err != nil {
		return fail(err)
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return fail(res.Err)
	}
	var got []gotSample
	switch v := res.Value.(type) {
	case promql.Vector:
		for _, s := range v {
			got = append(got, gotSample{s.Metric.Copy(), s.F, s.H})
		}
	case promql.Scalar:
		got = append(got, gotSample{labels.EmptyLabels(), v.V, nil})
	default:
		return fail(errors.New("rule result is not a vector or scalar"))
	}
	var exp []gotSample
	for _, s := range tc.ExpSamples {
		lset, err := p.ParseMetric(s.Labels)
		if err != nil {
			return fail(fmt.Errorf("labels %q: %w", s.Labels, err))
		}
		es := gotSample{lset: lset, v: s.Value}
		if s.Histogram != "" {
			_, vals, err := p.ParseSeriesDesc("{} " + s.Histogram)
			switch {
			case err != nil:
				return fail(fmt.Errorf("labels %q: %w", s.Labels, err))
			case len(vals) != 1 || vals[0].Histogram == nil:
				return fail(fmt.Errorf("labels %q: expected one histogram", s.Labels))
			}
			es.v, es.fh = 0, vals[0].Histogram
		}
		exp = append(exp, es)
	}
	byLabels := func(a, b gotSample) int { return labels.Compare(a.lset, b.lset) }
	slices.SortFunc(got, byLabels)
	slices.SortFunc(exp, byLabels)
	if !slices.EqualFunc(exp, got, func(a, b gotSample) bool { return sampleEqual(a, b, fuzzy) }) {
		return []error{fmt.Errorf("    expr: %q, time: %s,\n        exp: %v\n        got: %v", tc.Expr, tc.EvalTime, samplesString(exp), samplesString(got))}
	}
	return nil
}

func sampleEqual(a, b gotSample, fuzzy bool) bool {
	if !labels.Equal(a.lset, b.lset) {
		return false
	}
	if (a.fh == nil) != (b.fh == nil) {
		return false
	}
	if a.fh != nil {
		return a.fh.Equals(b.fh)
	}
	if a.v == b.v || (math.IsNaN(a.v) && math.IsNaN(b.v)) {
		return true
	}
	// fuzzy_compare allows one ULP of difference, as promtool does.
	return fuzzy && (math.Nextafter(a.v, math.Inf(-1)) == b.v || math.Nextafter(a.v, math.Inf(1)) == b.v)
}
