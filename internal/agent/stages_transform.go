package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/grafana/regexp"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"golang.org/x/time/rate"

	"github.com/nx-watcher/nxwatcher/internal/logs/logql"
)

// labelsStage copies extracted values into labels or structured metadata.
type labelsStage struct {
	names   []model.LabelName
	sources []string
	meta    bool
}

func newLabelsStage(m map[string]*string, meta bool) (*labelsStage, error) {
	s := &labelsStage{meta: meta}
	for n, src := range m {
		if !model.LabelName(n).IsValid() {
			return nil, fmt.Errorf("labels: %q is not a valid label name", n)
		}
		s.names = append(s.names, model.LabelName(n))
		if src == nil || *src == "" {
			s.sources = append(s.sources, n)
		} else {
			s.sources = append(s.sources, *src)
		}
	}
	return s, nil
}

func (s *labelsStage) name() string {
	if s.meta {
		return "structured_metadata"
	}
	return "labels"
}

func (s *labelsStage) apply(e *Entry) bool {
	for i, n := range s.names {
		v, ok := e.Extracted[s.sources[i]]
		if !ok {
			continue
		}
		str, err := stringify(v)
		if err != nil || str == "" {
			continue
		}
		lv := model.LabelValue(str)
		if !lv.IsValid() {
			continue
		}
		if s.meta {
			if e.Metadata == nil {
				e.Metadata = model.LabelSet{}
			}
			e.Metadata[n] = lv
		} else {
			e.setLabel(n, lv)
		}
	}
	return true
}

// TimestampConfig is the timestamp stage.
type TimestampConfig struct {
	Source          string   `yaml:"source"`
	Format          string   `yaml:"format"`
	FallbackFormats []string `yaml:"fallback_formats"`
	Location        *string  `yaml:"location"`
	ActionOnFailure string   `yaml:"action_on_failure"`
}

var namedLayouts = map[string]string{
	"ANSIC": time.ANSIC, "UnixDate": time.UnixDate, "RubyDate": time.RubyDate,
	"RFC822": time.RFC822, "RFC822Z": time.RFC822Z, "RFC850": time.RFC850,
	"RFC1123": time.RFC1123, "RFC1123Z": time.RFC1123Z, "RFC3339": time.RFC3339,
	"RFC3339Nano": time.RFC3339Nano,
}

type timestampStage struct {
	d       *PipelineDeps
	source  string
	formats []string
	loc     *time.Location
	fudge   bool
	last    time.Time
}

func newTimestampStage(c *TimestampConfig, d *PipelineDeps) (*timestampStage, error) {
	if c.Source == "" {
		return nil, errors.New("timestamp: source is required")
	}
	if c.Format == "" {
		return nil, errors.New("timestamp: format is required")
	}
	s := &timestampStage{d: d, source: c.Source, loc: time.UTC}
	switch c.ActionOnFailure {
	case "", "fudge":
		s.fudge = true
	case "skip":
	default:
		return nil, fmt.Errorf("timestamp: action_on_failure %q is not fudge or skip", c.ActionOnFailure)
	}
	if c.Location != nil {
		loc, err := time.LoadLocation(*c.Location)
		if err != nil {
			return nil, fmt.Errorf("timestamp: location: %w", err)
		}
		s.loc = loc
	}
	for _, f := range append([]string{c.Format}, c.FallbackFormats...) {
		if l, ok := namedLayouts[f]; ok {
			f = l
		}
		s.formats = append(s.formats, f)
	}
	return s, nil
}

func (*timestampStage) name() string { return "timestamp" }

func (s *timestampStage) apply(e *Entry) bool {
	v, ok := e.lookup(s.source)
	if !ok {
		return true
	}
	var err error
	for _, f := range s.formats {
		var t time.Time
		t, err = parseTimestamp(f, v, s.loc, s.d.Now())
		if err == nil {
			e.Time = t
			s.last = t
			return true
		}
	}
	s.d.stageError("timestamp", err)
	if s.fudge && !s.last.IsZero() {
		s.last = s.last.Add(time.Nanosecond)
		e.Time = s.last
	}
	return true
}

// parseTimestamp understands Unix, UnixMs, UnixUs, UnixNs and Go layouts; a
// layout without a year gets the current one (the previous one when that
// would put the line in the future).
func parseTimestamp(layout, v string, loc *time.Location, now time.Time) (time.Time, error) {
	switch layout {
	case "Unix":
		if strings.ContainsRune(v, '.') {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return time.Time{}, err
			}
			sec := int64(f)
			return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		return time.Unix(n, 0), err
	case "UnixMs":
		n, err := strconv.ParseInt(v, 10, 64)
		return time.UnixMilli(n), err
	case "UnixUs":
		n, err := strconv.ParseInt(v, 10, 64)
		return time.UnixMicro(n), err
	case "UnixNs":
		n, err := strconv.ParseInt(v, 10, 64)
		return time.Unix(0, n), err
	}
	t, err := time.ParseInLocation(layout, v, loc)
	if err != nil {
		return t, err
	}
	if t.Year() == 0 {
		t = t.AddDate(now.Year(), 0, 0)
		if t.After(now.Add(24 * time.Hour)) {
			t = t.AddDate(-1, 0, 0)
		}
	}
	return t, nil
}

// OutputConfig is the output stage.
type OutputConfig struct {
	Source string `yaml:"source"`
}

type outputStage struct{ source string }

func (*outputStage) name() string { return "output" }

func (s *outputStage) apply(e *Entry) bool {
	if v, ok := e.lookup(s.source); ok && s.source != "" {
		e.Line = v
	}
	return true
}

// labelDropStage drops the named labels, or (allow) all but them.
type labelDropStage struct {
	names map[model.LabelName]bool
	allow bool
}

func newLabelDropStage(names []string, allow bool) *labelDropStage {
	s := &labelDropStage{names: map[model.LabelName]bool{}, allow: allow}
	for _, n := range names {
		s.names[model.LabelName(n)] = true
	}
	return s
}

func (s *labelDropStage) name() string {
	if s.allow {
		return "labelallow"
	}
	return "labeldrop"
}

func (s *labelDropStage) apply(e *Entry) bool {
	for n := range e.Labels {
		if s.names[n] != s.allow {
			e.delLabel(n)
		}
	}
	return true
}

type staticLabelsStage struct{ ls model.LabelSet }

func newStaticLabelsStage(m map[string]*string) (*staticLabelsStage, error) {
	ls := model.LabelSet{}
	for k, v := range m {
		if v == nil {
			continue
		}
		ls[model.LabelName(k)] = model.LabelValue(*v)
	}
	if err := ls.Validate(); err != nil {
		return nil, fmt.Errorf("static_labels: %w", err)
	}
	return &staticLabelsStage{ls: ls}, nil
}

func (*staticLabelsStage) name() string { return "static_labels" }

func (s *staticLabelsStage) apply(e *Entry) bool {
	for k, v := range s.ls {
		e.setLabel(k, v)
	}
	return true
}

// TemplateConfig is the template stage.
type TemplateConfig struct {
	Source   string `yaml:"source"`
	Template string `yaml:"template"`
}

var templateFuncs = template.FuncMap{
	"ToLower":    strings.ToLower,
	"ToUpper":    strings.ToUpper,
	"Replace":    strings.Replace,
	"Trim":       strings.Trim,
	"TrimLeft":   strings.TrimLeft,
	"TrimRight":  strings.TrimRight,
	"TrimPrefix": strings.TrimPrefix,
	"TrimSuffix": strings.TrimSuffix,
	"TrimSpace":  strings.TrimSpace,
	"Hash": func(salt, s string) string {
		h := fnv.New64a()
		h.Write([]byte(salt + s))
		return strconv.FormatUint(h.Sum64(), 10)
	},
	"Sha2Hash": func(salt, s string) string {
		h := sha256.Sum256([]byte(salt + s))
		return hex.EncodeToString(h[:])
	},
	"regexReplaceAll":        logql.RegexReplaceAll,
	"regexReplaceAllLiteral": logql.RegexReplaceAllLiteral,
}

type templateStage struct {
	d      *PipelineDeps
	source string
	tmpl   *template.Template
}

func newTemplateStage(c *TemplateConfig, d *PipelineDeps) (*templateStage, error) {
	if c.Source == "" {
		return nil, errors.New("template: source is required")
	}
	t, err := template.New("template").Funcs(templateFuncs).Parse(c.Template)
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	return &templateStage{d: d, source: c.Source, tmpl: t}, nil
}

func (*templateStage) name() string { return "template" }

func templateData(e *Entry, value string) map[string]any {
	data := make(map[string]any, len(e.Extracted)+2)
	for k, v := range e.Extracted {
		s, _ := stringify(v)
		data[k] = s
	}
	data["Value"] = value
	data["Entry"] = e.Line
	return data
}

func (s *templateStage) apply(e *Entry) bool {
	v, _ := e.lookup(s.source)
	var buf bytes.Buffer
	if err := s.tmpl.Execute(&buf, templateData(e, v)); err != nil {
		s.d.stageError("template", err)
		return true
	}
	e.extracted()[s.source] = buf.String()
	return true
}

// ReplaceConfig is the replace stage.
type ReplaceConfig struct {
	Expression string  `yaml:"expression"`
	Source     *string `yaml:"source"`
	Replace    string  `yaml:"replace"`
}

type replaceStage struct {
	d      *PipelineDeps
	re     *regexp.Regexp
	source string
	tmpl   *template.Template
}

func newReplaceStage(c *ReplaceConfig, d *PipelineDeps) (*replaceStage, error) {
	if c.Expression == "" {
		return nil, errors.New("replace: expression is required")
	}
	re, err := regexp.Compile(c.Expression)
	if err != nil {
		return nil, fmt.Errorf("replace: %w", err)
	}
	t, err := template.New("replace").Funcs(templateFuncs).Parse(c.Replace)
	if err != nil {
		return nil, fmt.Errorf("replace: %w", err)
	}
	return &replaceStage{d: d, re: re, source: sourceOf(c.Source), tmpl: t}, nil
}

func (*replaceStage) name() string { return "replace" }

// apply replaces every capture group of every match with the rendered
// template ({{ .Value }} is the captured text); named groups are also
// extracted. The result goes back to the source (the line when empty).
func (s *replaceStage) apply(e *Entry) bool {
	in, ok := e.lookup(s.source)
	if !ok {
		return true
	}
	ms := s.re.FindAllStringSubmatchIndex(in, -1)
	if ms == nil {
		return true
	}
	names := s.re.SubexpNames()
	var out strings.Builder
	last := 0
	for _, m := range ms {
		groups := len(m) / 2
		if groups == 1 { // no capture group: replace the whole match
			out.WriteString(in[last:m[0]])
			out.WriteString(s.render(e, in[m[0]:m[1]]))
			last = m[1]
			continue
		}
		for g := 1; g < groups; g++ {
			a, b := m[2*g], m[2*g+1]
			if a < 0 || a < last {
				continue
			}
			if names[g] != "" {
				e.extracted()[names[g]] = in[a:b]
			}
			out.WriteString(in[last:a])
			out.WriteString(s.render(e, in[a:b]))
			last = b
		}
	}
	out.WriteString(in[last:])
	if s.source == "" {
		e.Line = out.String()
	} else {
		e.extracted()[s.source] = out.String()
	}
	return true
}

func (s *replaceStage) render(e *Entry, v string) string {
	var buf bytes.Buffer
	if err := s.tmpl.Execute(&buf, templateData(e, v)); err != nil {
		s.d.stageError("replace", err)
		return v
	}
	return buf.String()
}

// DropConfig is the drop stage; every condition given must hold.
type DropConfig struct {
	Source            any            `yaml:"source"`
	Separator         *string        `yaml:"separator"`
	Expression        string         `yaml:"expression"`
	Value             *string        `yaml:"value"`
	OlderThan         model.Duration `yaml:"older_than"`
	LongerThan        string         `yaml:"longer_than"`
	DropCounterReason string         `yaml:"drop_counter_reason"`
}

type dropStage struct {
	d          *PipelineDeps
	sources    []string
	sep        string
	re         *regexp.Regexp
	value      *string
	olderThan  time.Duration
	longerThan int
	reason     string
}

func newDropStage(c *DropConfig, d *PipelineDeps) (*dropStage, error) {
	s := &dropStage{d: d, sep: ";", value: c.Value, olderThan: time.Duration(c.OlderThan), reason: c.DropCounterReason}
	if s.reason == "" {
		s.reason = "drop_stage"
	}
	if c.Separator != nil {
		s.sep = *c.Separator
	}
	switch src := c.Source.(type) {
	case nil:
	case string:
		s.sources = []string{src}
	case []any:
		for _, x := range src {
			str, ok := x.(string)
			if !ok {
				return nil, errors.New("drop: source must be a string or a list of strings")
			}
			s.sources = append(s.sources, str)
		}
	default:
		return nil, errors.New("drop: source must be a string or a list of strings")
	}
	if c.Expression != "" {
		re, err := regexp.Compile(c.Expression)
		if err != nil {
			return nil, fmt.Errorf("drop: expression: %w", err)
		}
		s.re = re
	}
	if c.Expression != "" && c.Value != nil {
		return nil, errors.New("drop: expression and value cannot both be set")
	}
	if c.LongerThan != "" {
		n, err := parseBytes(c.LongerThan)
		if err != nil {
			return nil, fmt.Errorf("drop: longer_than: %w", err)
		}
		s.longerThan = n
	}
	if len(s.sources) == 0 && s.re == nil && s.value == nil && s.olderThan == 0 && s.longerThan == 0 {
		return nil, errors.New("drop: at least one of source, expression, value, older_than, longer_than is required")
	}
	return s, nil
}

// parseBytes reads "8KB", "1MiB", "512" as a byte count.
func parseBytes(s string) (int, error) {
	s = strings.TrimSpace(s)
	mults := []struct {
		suf string
		m   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"kB", 1000}, {"B", 1}}
	for _, u := range mults {
		if strings.HasSuffix(s, u.suf) {
			n, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, u.suf)), 64)
			return int(n * float64(u.m)), err
		}
	}
	return strconv.Atoi(s)
}

func (*dropStage) name() string { return "drop" }

func (s *dropStage) apply(e *Entry) bool {
	if s.olderThan > 0 && !e.Time.Before(s.d.Now().Add(-s.olderThan)) {
		return true
	}
	if s.longerThan > 0 && len(e.Line) <= s.longerThan {
		return true
	}
	if len(s.sources) > 0 || s.re != nil || s.value != nil {
		var subject string
		if len(s.sources) == 0 {
			subject = e.Line
		} else {
			parts := make([]string, 0, len(s.sources))
			for _, src := range s.sources {
				v, ok := e.lookup(src)
				if !ok {
					return true // a missing source never drops
				}
				parts = append(parts, v)
			}
			subject = strings.Join(parts, s.sep)
		}
		if s.value != nil && subject != *s.value {
			return true
		}
		if s.re != nil && !s.re.MatchString(subject) {
			return true
		}
	}
	s.d.Metrics.dropped.WithLabelValues(s.reason).Inc()
	return false
}

// MatchConfig is the match stage.
type MatchConfig struct {
	Selector          string        `yaml:"selector"`
	Stages            []StageConfig `yaml:"stages"`
	Action            string        `yaml:"action"`
	PipelineName      string        `yaml:"pipeline_name"`
	DropCounterReason string        `yaml:"drop_counter_reason"`
}

type matchStage struct {
	d        *PipelineDeps
	matchers []*labels.Matcher
	filters  []logql.LineFilter
	filterRe []*regexp.Regexp
	drop     bool
	reason   string
	stages   []simpleStage
}

func newMatchStage(c *MatchConfig, d *PipelineDeps) (*matchStage, error) {
	if c.Selector == "" {
		return nil, errors.New("match: selector is required")
	}
	sel, err := logql.ParseLogSelector(c.Selector)
	if err != nil {
		return nil, fmt.Errorf("match: selector: %w", err)
	}
	s := &matchStage{d: d, matchers: sel.Matchers, reason: c.DropCounterReason}
	if s.reason == "" {
		s.reason = "match_stage"
	}
	for _, st := range sel.Pipeline {
		f, ok := st.(*logql.LineFilter)
		if !ok {
			return nil, errors.New("match: only line filters (|=, !=, |~, !~) may follow the selector")
		}
		s.filters = append(s.filters, *f)
		var re *regexp.Regexp
		if f.Op == "|~" || f.Op == "!~" {
			if len(f.Values) != 1 {
				return nil, errors.New("match: one regular expression per line filter")
			}
			re, err = regexp.Compile(f.Values[0])
			if err != nil {
				return nil, fmt.Errorf("match: %w", err)
			}
		}
		s.filterRe = append(s.filterRe, re)
	}
	switch c.Action {
	case "", "keep":
		if len(c.Stages) == 0 {
			return nil, errors.New("match: stages are required unless action is drop")
		}
	case "drop":
		if len(c.Stages) > 0 {
			return nil, errors.New("match: action drop takes no stages")
		}
		s.drop = true
	default:
		return nil, fmt.Errorf("match: action %q is not keep or drop", c.Action)
	}
	for i, sc := range c.Stages {
		st, err := newStage(sc, d)
		if err != nil {
			return nil, fmt.Errorf("match stage %d: %w", i, err)
		}
		ss, ok := st.(simpleStage)
		if !ok {
			return nil, fmt.Errorf("match stage %d: %s cannot run inside match", i, st.(bufferStage).name())
		}
		s.stages = append(s.stages, ss)
	}
	return s, nil
}

func (*matchStage) name() string { return "match" }

func (s *matchStage) matches(e *Entry) bool {
	for _, m := range s.matchers {
		if !m.Matches(string(e.Labels[model.LabelName(m.Name)])) {
			return false
		}
	}
	for i, f := range s.filters {
		var hit bool
		switch f.Op {
		case "|=", "!=":
			for _, v := range f.Values {
				hit = hit || strings.Contains(e.Line, v)
			}
		default:
			hit = s.filterRe[i].MatchString(e.Line)
		}
		if f.Op[0] == '!' {
			hit = !hit
		}
		if !hit {
			return false
		}
	}
	return true
}

func (s *matchStage) apply(e *Entry) bool {
	if !s.matches(e) {
		return true
	}
	if s.drop {
		s.d.Metrics.dropped.WithLabelValues(s.reason).Inc()
		return false
	}
	for _, st := range s.stages {
		if !st.apply(e) {
			return false
		}
	}
	return true
}

// MultilineConfig is the multiline stage.
type MultilineConfig struct {
	FirstLine   string         `yaml:"firstline"`
	MaxWaitTime model.Duration `yaml:"max_wait_time"`
	MaxLines    int            `yaml:"max_lines"`
}

type multilineStage struct {
	first    *regexp.Regexp
	maxWait  time.Duration
	maxLines int
	block    *partial
}

func newMultilineStage(c *MultilineConfig) (*multilineStage, error) {
	if c.FirstLine == "" {
		return nil, errors.New("multiline: firstline is required")
	}
	re, err := regexp.Compile(c.FirstLine)
	if err != nil {
		return nil, fmt.Errorf("multiline: firstline: %w", err)
	}
	s := &multilineStage{first: re, maxWait: time.Duration(c.MaxWaitTime), maxLines: c.MaxLines}
	if s.maxWait <= 0 {
		s.maxWait = 3 * time.Second
	}
	if s.maxLines <= 0 {
		s.maxLines = 128
	}
	return s, nil
}

func (*multilineStage) name() string { return "multiline" }

func (s *multilineStage) push(e Entry, next func(Entry), _ func(Entry)) {
	if s.first.MatchString(e.Line) {
		s.emit(next)
		s.block = &partial{e: e, buf: []byte(e.Line), lines: 1, since: time.Now()}
		return
	}
	if s.block == nil {
		// A continuation with no first line: a block of its own.
		s.block = &partial{e: e, buf: []byte(e.Line), lines: 1, since: time.Now()}
	} else {
		s.block.buf = append(append(s.block.buf, '\n'), e.Line...)
		s.block.e.ack = e.ack
		s.block.lines++
	}
	if s.block.lines >= s.maxLines {
		s.emit(next)
	}
}

func (s *multilineStage) emit(next func(Entry)) {
	if s.block == nil {
		return
	}
	b := s.block
	s.block = nil
	b.e.Line = string(b.buf)
	next(b.e)
}

func (s *multilineStage) flush(now time.Time, force bool, next func(Entry)) {
	if s.block != nil && (force || now.Sub(s.block.since) >= s.maxWait) {
		s.emit(next)
	}
}

// PackConfig is the pack stage.
type PackConfig struct {
	Labels          []string `yaml:"labels"`
	IngestTimestamp *bool    `yaml:"ingest_timestamp"`
}

type packStage struct {
	d      *PipelineDeps
	labels []string
	ingest bool
}

func newPackStage(c *PackConfig, d *PipelineDeps) *packStage {
	ingest := true
	if c.IngestTimestamp != nil {
		ingest = *c.IngestTimestamp
	}
	return &packStage{d: d, labels: c.Labels, ingest: ingest}
}

func (*packStage) name() string { return "pack" }

// apply writes {"<label>": value, ..., "_entry": line}: the packed labels
// (taken from the extracted map or the labels) leave the stream.
func (s *packStage) apply(e *Entry) bool {
	obj := make(map[string]string, len(s.labels)+1)
	for _, n := range s.labels {
		if v, ok := e.Labels[model.LabelName(n)]; ok {
			obj[n] = string(v)
			e.delLabel(model.LabelName(n))
			continue
		}
		if v, ok := e.lookup(n); ok {
			obj[n] = v
		}
	}
	obj["_entry"] = e.Line
	b, err := json.Marshal(obj)
	if err != nil {
		s.d.stageError("pack", err)
		return true
	}
	e.Line = string(b)
	if s.ingest {
		e.Time = s.d.Now()
	}
	return true
}

// TenantConfig is the tenant stage: one of source, value, label.
type TenantConfig struct {
	Source string `yaml:"source"`
	Value  string `yaml:"value"`
	Label  string `yaml:"label"`
}

type tenantStage struct{ c TenantConfig }

func newTenantStage(c *TenantConfig) (*tenantStage, error) {
	n := 0
	for _, v := range []string{c.Source, c.Value, c.Label} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("tenant: exactly one of source, value, label is required")
	}
	return &tenantStage{c: *c}, nil
}

func (*tenantStage) name() string { return "tenant" }

func (s *tenantStage) apply(e *Entry) bool {
	var v string
	switch {
	case s.c.Value != "":
		v = s.c.Value
	case s.c.Label != "":
		v = string(e.Labels[model.LabelName(s.c.Label)])
	default:
		v, _ = e.lookup(s.c.Source)
	}
	if v != "" {
		e.setLabel(tenantLabel, model.LabelValue(v))
	}
	return true
}

// LimitConfig is the limit stage.
type LimitConfig struct {
	Rate              float64 `yaml:"rate"`
	Burst             int     `yaml:"burst"`
	Drop              bool    `yaml:"drop"`
	ByLabelName       string  `yaml:"by_label_name"`
	MaxDistinctLabels int     `yaml:"max_distinct_labels"`
}

type limitStage struct {
	d       *PipelineDeps
	c       LimitConfig
	limiter *rate.Limiter
	byLabel map[string]*rate.Limiter
}

func newLimitStage(c *LimitConfig, d *PipelineDeps) (*limitStage, error) {
	if c.Rate <= 0 {
		return nil, errors.New("limit: rate must be positive")
	}
	if c.Burst <= 0 {
		return nil, errors.New("limit: burst must be positive")
	}
	if c.MaxDistinctLabels <= 0 {
		c.MaxDistinctLabels = 10000
	}
	return &limitStage{d: d, c: *c, limiter: rate.NewLimiter(rate.Limit(c.Rate), c.Burst), byLabel: map[string]*rate.Limiter{}}, nil
}

func (*limitStage) name() string { return "limit" }

func (s *limitStage) apply(e *Entry) bool {
	l := s.limiter
	if s.c.ByLabelName != "" {
		v, ok := e.Labels[model.LabelName(s.c.ByLabelName)]
		if !ok {
			return true
		}
		l = s.byLabel[string(v)]
		if l == nil {
			if len(s.byLabel) >= s.c.MaxDistinctLabels {
				clear(s.byLabel)
			}
			l = rate.NewLimiter(rate.Limit(s.c.Rate), s.c.Burst)
			s.byLabel[string(v)] = l
		}
	}
	if s.c.Drop {
		if !l.Allow() {
			s.d.Metrics.dropped.WithLabelValues("ratelimit").Inc()
			return false
		}
		return true
	}
	// Wait: back-pressure to the file reader, as Promtail does.
	_ = l.Wait(context.Background())
	return true
}
