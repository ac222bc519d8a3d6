package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/regexp"
	jmespath "github.com/jmespath-community/go-jmespath"
	"github.com/prometheus/common/model"
)

// DockerConfig is the docker stage (no options).
type DockerConfig struct{}

// CRIConfig is the cri stage.
type CRIConfig struct {
	MaxPartialLines         int  `yaml:"max_partial_lines"`
	MaxPartialLineSize      int  `yaml:"max_partial_line_size"`
	MaxPartialLineSizeTrunc bool `yaml:"max_partial_line_size_truncate"`
}

// RegexConfig is the regex stage.
type RegexConfig struct {
	Expression string  `yaml:"expression"`
	Source     *string `yaml:"source"`
}

// JSONConfig is the json stage.
type JSONConfig struct {
	Expressions   map[string]string `yaml:"expressions"`
	Source        *string           `yaml:"source"`
	DropMalformed bool              `yaml:"drop_malformed"`
}

// LogfmtConfig is the logfmt stage.
type LogfmtConfig struct {
	Mapping map[string]string `yaml:"mapping"`
	Source  *string           `yaml:"source"`
}

const (
	defaultMaxPartialLines = 100
	defaultMaxPartialSize  = 256 << 10
)

// criStage parses `<time> <stream> <P|F> <content>` and joins P lines.
type criStage struct {
	d        *PipelineDeps
	labels   labelCache
	last     bool // no stage follows: skip the extracted map
	maxLines int
	maxSize  int
	truncate bool
	// partial lines waiting for their F line, per stream label.
	pending map[string]*partial
}

type partial struct {
	e     Entry
	buf   []byte
	lines int
	since time.Time
}

func newCRIStage(c *CRIConfig, d *PipelineDeps) (*criStage, error) {
	s := &criStage{d: d, maxLines: c.MaxPartialLines, maxSize: c.MaxPartialLineSize, truncate: c.MaxPartialLineSizeTrunc, pending: map[string]*partial{}}
	if s.maxLines <= 0 {
		s.maxLines = defaultMaxPartialLines
	}
	if s.maxSize <= 0 {
		s.maxSize = defaultMaxPartialSize
	}
	return s, nil
}

func (*criStage) name() string { return "cri" }

// parseCRI splits a CRI log line; ok is false when it is not one.
func parseCRI(line string) (ts time.Time, stream, flag, content string, ok bool) {
	ts, _, stream, flag, content, ok = parseCRIRaw(line)
	return
}

func parseCRIRaw(line string) (ts time.Time, rawTS, stream, flag, content string, ok bool) {
	i := strings.IndexByte(line, ' ')
	if i <= 0 {
		return
	}
	t, err := time.Parse(time.RFC3339Nano, line[:i])
	if err != nil {
		return
	}
	rawTS = line[:i]
	rest := line[i+1:]
	j := strings.IndexByte(rest, ' ')
	if j <= 0 {
		return
	}
	stream = rest[:j]
	if stream != "stdout" && stream != "stderr" {
		return
	}
	rest = rest[j+1:]
	// The tag field may hold several flags separated by ':'; P is partial.
	k := strings.IndexByte(rest, ' ')
	if k < 0 {
		flag, content = rest, ""
	} else {
		flag, content = rest[:k], rest[k+1:]
	}
	if flag == "" {
		return
	}
	return t, rawTS, stream, flag, content, true
}

func (s *criStage) push(e Entry, next func(Entry), drop func(Entry)) {
	ts, rawTS, stream, flag, content, ok := parseCRIRaw(e.Line)
	if !ok {
		s.d.stageError("cri", errors.New("not a CRI log line"))
		next(e)
		return
	}
	e.Time = ts
	s.labels.with(&e, "stream", model.LabelValue(stream))
	if !s.last {
		x := e.extracted()
		x["stream"] = stream
		x["time"] = rawTS
		x["flags"] = flag
		x["content"] = content
	}
	isPartial := flag == "P" || strings.HasPrefix(flag, "P:")
	p := s.pending[stream]
	if isPartial {
		if p == nil {
			p = &partial{e: e, since: s.d.Now()}
			s.pending[stream] = p
		} else {
			p.e.ack = e.ack
		}
		p.buf = s.appendLimited(p.buf, content)
		p.lines++
		if p.lines >= s.maxLines {
			s.emit(stream, next)
		}
		return
	}
	if p != nil {
		p.buf = s.appendLimited(p.buf, content)
		p.e.ack = e.ack
		s.emit(stream, next)
		return
	}
	e.Line = content
	next(e)
}

func (s *criStage) appendLimited(buf []byte, content string) []byte {
	if s.truncate && len(buf)+len(content) > s.maxSize {
		room := s.maxSize - len(buf)
		if room <= 0 {
			return buf
		}
		content = content[:room]
	}
	return append(buf, content...)
}

func (s *criStage) emit(stream string, next func(Entry)) {
	p := s.pending[stream]
	delete(s.pending, stream)
	p.e.Line = string(p.buf)
	if p.e.Extracted != nil {
		p.e.Extracted["content"] = p.e.Line
	}
	next(p.e)
}

func (s *criStage) flush(now time.Time, force bool, next func(Entry)) {
	for stream, p := range s.pending {
		if force || now.Sub(p.since) >= 5*time.Second {
			s.emit(stream, next)
		}
	}
}

// dockerStage parses the json-file driver's lines, joining lines the daemon
// split at 16 KiB (only the last piece ends in a newline). A line that is
// not JSON but is a CRI line goes to the cri stage: `docker: {}` keeps
// working on containerd nodes.
type dockerStage struct {
	d       *PipelineDeps
	labels  labelCache
	last    bool
	cri     *criStage
	pending map[string]*partial
}

func newDockerStage(_ *DockerConfig, d *PipelineDeps) (*dockerStage, error) {
	cri, _ := newCRIStage(&CRIConfig{}, d)
	return &dockerStage{d: d, cri: cri, pending: map[string]*partial{}}, nil
}

func (*dockerStage) name() string { return "docker" }

type dockerLine struct {
	Log    string `json:"log"`
	Stream string `json:"stream"`
	Time   string `json:"time"`
}

func (s *dockerStage) push(e Entry, next func(Entry), drop func(Entry)) {
	if len(e.Line) == 0 || e.Line[0] != '{' {
		if _, _, _, _, ok := parseCRI(e.Line); ok {
			s.cri.push(e, next, drop)
			return
		}
	}
	var dl dockerLine
	if err := json.Unmarshal([]byte(e.Line), &dl); err != nil {
		s.d.stageError("docker", err)
		next(e)
		return
	}
	ts, err := time.Parse(time.RFC3339Nano, dl.Time)
	if err != nil {
		s.d.stageError("docker", fmt.Errorf("time: %w", err))
	} else {
		e.Time = ts
	}
	if !s.last {
		x := e.extracted()
		x["log"] = dl.Log
		x["stream"] = dl.Stream
		x["time"] = dl.Time
	}
	if dl.Stream != "" {
		s.labels.with(&e, "stream", model.LabelValue(dl.Stream))
	}
	p := s.pending[dl.Stream]
	if !strings.HasSuffix(dl.Log, "\n") {
		if p == nil {
			p = &partial{e: e, since: s.d.Now()}
			s.pending[dl.Stream] = p
		} else {
			p.e.ack = e.ack
		}
		p.buf = append(p.buf, dl.Log...)
		p.lines++
		if len(p.buf) >= defaultMaxPartialSize || p.lines >= defaultMaxPartialLines {
			s.emit(dl.Stream, next)
		}
		return
	}
	if p != nil {
		p.buf = append(p.buf, dl.Log...)
		p.e.ack = e.ack
		s.emit(dl.Stream, next)
		return
	}
	e.Line = strings.TrimSuffix(dl.Log, "\n")
	next(e)
}

func (s *dockerStage) emit(stream string, next func(Entry)) {
	p := s.pending[stream]
	delete(s.pending, stream)
	p.e.Line = string(bytes.TrimSuffix(p.buf, []byte("\n")))
	if p.e.Extracted != nil {
		p.e.Extracted["log"] = p.e.Line
	}
	next(p.e)
}

func (s *dockerStage) flush(now time.Time, force bool, next func(Entry)) {
	for stream, p := range s.pending {
		if force || now.Sub(p.since) >= 5*time.Second {
			s.emit(stream, next)
		}
	}
	s.cri.flush(now, force, next)
}

// regexStage extracts named groups.
type regexStage struct {
	d      *PipelineDeps
	re     *regexp.Regexp
	names  []string
	source *string
}

func newRegexStage(c *RegexConfig, d *PipelineDeps) (*regexStage, error) {
	if c.Expression == "" {
		return nil, errors.New("regex: expression is required")
	}
	re, err := regexp.Compile(c.Expression)
	if err != nil {
		return nil, fmt.Errorf("regex: %w", err)
	}
	named := false
	for _, n := range re.SubexpNames() {
		named = named || n != ""
	}
	if !named {
		return nil, errors.New("regex: expression has no named capture group")
	}
	return &regexStage{d: d, re: re, names: re.SubexpNames(), source: c.Source}, nil
}

func (*regexStage) name() string { return "regex" }

func sourceOf(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (s *regexStage) apply(e *Entry) bool {
	in, ok := e.lookup(sourceOf(s.source))
	if !ok {
		return true
	}
	m := s.re.FindStringSubmatch(in)
	if m == nil {
		s.d.stageError("regex", errors.New("no match"))
		return true
	}
	x := e.extracted()
	for i, n := range s.names {
		if n != "" && i < len(m) {
			x[n] = m[i]
		}
	}
	return true
}

// jsonStage evaluates JMESPath expressions over a JSON line.
type jsonStage struct {
	d             *PipelineDeps
	names         []string
	exprs         []jmespath.JMESPath
	source        *string
	dropMalformed bool
}

func newJSONStage(c *JSONConfig, d *PipelineDeps) (*jsonStage, error) {
	if len(c.Expressions) == 0 {
		return nil, errors.New("json: expressions are required")
	}
	s := &jsonStage{d: d, source: c.Source, dropMalformed: c.DropMalformed}
	for n, ex := range c.Expressions {
		if ex == "" {
			ex = n
		}
		j, err := jmespath.Compile(ex)
		if err != nil {
			return nil, fmt.Errorf("json: expression %q: %w", ex, err)
		}
		s.names = append(s.names, n)
		s.exprs = append(s.exprs, j)
	}
	return s, nil
}

func (*jsonStage) name() string { return "json" }

func (s *jsonStage) apply(e *Entry) bool {
	in, ok := e.lookup(sourceOf(s.source))
	if !ok {
		return true
	}
	var doc any
	if err := json.Unmarshal([]byte(in), &doc); err != nil {
		s.d.stageError("json", err)
		if s.dropMalformed {
			s.d.Metrics.dropped.WithLabelValues("malformed_json").Inc()
			return false
		}
		return true
	}
	if _, isObj := doc.(map[string]any); !isObj {
		s.d.stageError("json", errors.New("not a JSON object"))
		return !s.dropMalformed
	}
	x := e.extracted()
	for i, ex := range s.exprs {
		v, err := ex.Search(doc)
		if err != nil {
			s.d.stageError("json", err)
			continue
		}
		if v == nil {
			continue
		}
		x[s.names[i]] = v
	}
	return true
}

// logfmtStage extracts logfmt keys.
type logfmtStage struct {
	d       *PipelineDeps
	mapping map[string]string // key in line -> extracted name
	source  *string
}

func newLogfmtStage(c *LogfmtConfig, d *PipelineDeps) (*logfmtStage, error) {
	if len(c.Mapping) == 0 {
		return nil, errors.New("logfmt: mapping is required")
	}
	m := map[string]string{}
	for n, k := range c.Mapping {
		if k == "" {
			k = n
		}
		m[k] = n
	}
	return &logfmtStage{d: d, mapping: m, source: c.Source}, nil
}

func (*logfmtStage) name() string { return "logfmt" }

func (s *logfmtStage) apply(e *Entry) bool {
	in, ok := e.lookup(sourceOf(s.source))
	if !ok {
		return true
	}
	x := e.extracted()
	scanLogfmt(in, func(k, v string) {
		if n, ok := s.mapping[k]; ok {
			x[n] = v
		}
	})
	return true
}

// scanLogfmt calls fn for each key=value pair of a logfmt line; values may
// be double-quoted with Go escapes; a bare key has an empty value.
func scanLogfmt(line string, fn func(k, v string)) {
	i := 0
	for i < len(line) {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		start := i
		for i < len(line) && line[i] != '=' && line[i] != ' ' && line[i] != '\t' {
			i++
		}
		key := line[start:i]
		if i >= len(line) || line[i] != '=' {
			if key != "" {
				fn(key, "")
			}
			continue
		}
		i++ // '='
		if i < len(line) && line[i] == '"' {
			j := i + 1
			for j < len(line) && line[j] != '"' {
				if line[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(line) {
				j = len(line) - 1
			}
			raw := line[i : j+1]
			v, err := strconv.Unquote(raw)
			if err != nil {
				v = strings.Trim(raw, `"`)
			}
			if key != "" {
				fn(key, v)
			}
			i = j + 1
			continue
		}
		vs := i
		for i < len(line) && line[i] != ' ' && line[i] != '\t' {
			i++
		}
		if key != "" {
			fn(key, line[vs:i])
		}
	}
}

// labelCache gives entries of one target the same label set with one label
// added, without copying the target's set for every line.
type labelCache struct {
	base map[model.LabelName]model.LabelValue
	sets map[model.LabelValue]model.LabelSet
}

func (c *labelCache) with(e *Entry, name model.LabelName, v model.LabelValue) {
	if !e.shared || e.Labels == nil {
		e.setLabel(name, v)
		return
	}
	if c.base == nil || reflect.ValueOf(c.base).UnsafePointer() != reflect.ValueOf(map[model.LabelName]model.LabelValue(e.Labels)).UnsafePointer() {
		c.base = e.Labels
		c.sets = map[model.LabelValue]model.LabelSet{}
	}
	ls, ok := c.sets[v]
	if !ok {
		if len(c.sets) > 16 {
			clear(c.sets)
		}
		ls = e.Labels.Clone()
		ls[name] = v
		c.sets[v] = ls
	}
	e.Labels = ls // still shared: later stages copy before writing
}
