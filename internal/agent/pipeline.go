package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// StageConfig is one entry of pipeline_stages: exactly one key set. Decoding
// into this struct keeps yaml's strictness and line numbers for every stage.
type StageConfig struct {
	Docker             *DockerConfig            `yaml:"docker,omitempty"`
	CRI                *CRIConfig               `yaml:"cri,omitempty"`
	Regex              *RegexConfig             `yaml:"regex,omitempty"`
	JSON               *JSONConfig              `yaml:"json,omitempty"`
	Logfmt             *LogfmtConfig            `yaml:"logfmt,omitempty"`
	Labels             map[string]*string       `yaml:"labels,omitempty"`
	StructuredMetadata map[string]*string       `yaml:"structured_metadata,omitempty"`
	Timestamp          *TimestampConfig         `yaml:"timestamp,omitempty"`
	Output             *OutputConfig            `yaml:"output,omitempty"`
	LabelDrop          []string                 `yaml:"labeldrop,omitempty"`
	LabelAllow         []string                 `yaml:"labelallow,omitempty"`
	StaticLabels       map[string]*string       `yaml:"static_labels,omitempty"`
	Template           *TemplateConfig          `yaml:"template,omitempty"`
	Replace            *ReplaceConfig           `yaml:"replace,omitempty"`
	Drop               *DropConfig              `yaml:"drop,omitempty"`
	Match              *MatchConfig             `yaml:"match,omitempty"`
	Multiline          *MultilineConfig         `yaml:"multiline,omitempty"`
	Pack               *PackConfig              `yaml:"pack,omitempty"`
	Tenant             *TenantConfig            `yaml:"tenant,omitempty"`
	Limit              *LimitConfig             `yaml:"limit,omitempty"`
	Metrics            map[string]*MetricConfig `yaml:"metrics,omitempty"`
	Decolorize         *DecolorizeConfig        `yaml:"decolorize,omitempty"`
	Sampling           *SamplingConfig          `yaml:"sampling,omitempty"`
	Luhn               *LuhnConfig              `yaml:"luhn,omitempty"`
	EventLogMessage    *EventLogMessageConfig   `yaml:"eventlogmessage,omitempty"`
	GeoIP              *GeoIPConfig             `yaml:"geoip,omitempty"`
	set                int
}

// UnmarshalYAML decodes the stage and checks that exactly one kind is given.
func (s *StageConfig) UnmarshalYAML(unmarshal func(any) error) error {
	var keys map[string]any
	if err := unmarshal(&keys); err != nil {
		return err
	}
	if len(keys) != 1 {
		return fmt.Errorf("a pipeline stage must have exactly one key, got %d", len(keys))
	}
	type plain StageConfig
	var p plain
	if err := unmarshal(&p); err != nil {
		return err
	}
	*s = StageConfig(p)
	// An empty block (docker: {}) decodes to nil pointers: give them values.
	for k := range keys {
		switch k {
		case "docker":
			if s.Docker == nil {
				s.Docker = &DockerConfig{}
			}
		case "cri":
			if s.CRI == nil {
				s.CRI = &CRIConfig{}
			}
		case "logfmt":
			if s.Logfmt == nil {
				s.Logfmt = &LogfmtConfig{}
			}
		case "labels":
			if s.Labels == nil {
				s.Labels = map[string]*string{}
			}
		case "pack":
			if s.Pack == nil {
				s.Pack = &PackConfig{}
			}
		case "decolorize":
			if s.Decolorize == nil {
				s.Decolorize = &DecolorizeConfig{}
			}
		case "luhn":
			if s.Luhn == nil {
				s.Luhn = &LuhnConfig{}
			}
		case "eventlogmessage":
			if s.EventLogMessage == nil {
				s.EventLogMessage = &EventLogMessageConfig{}
			}
		}
	}
	return nil
}

// PipelineDeps are what stages report to.
type PipelineDeps struct {
	Logger  *slog.Logger
	Metrics *pipelineMetrics
	Now     func() time.Time
	Job     string
}

// pipelineMetrics are shared by every pipeline of an agent.
type pipelineMetrics struct {
	stageErrors *prometheus.CounterVec
	dropped     *prometheus.CounterVec
	custom      *customMetrics
}

func newPipelineMetrics(reg prometheus.Registerer) *pipelineMetrics {
	m := &pipelineMetrics{
		stageErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_agent_stage_errors_total",
			Help: "Lines a pipeline stage could not process (the line goes on unchanged unless the stage says otherwise).",
		}, []string{"stage"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logentry_dropped_lines_total",
			Help: "Lines dropped by a drop, match or limit stage, by reason.",
		}, []string{"reason"}),
		custom: newCustomMetrics(reg),
	}
	if reg != nil {
		reg.MustRegister(m.stageErrors, m.dropped)
	}
	return m
}

type simpleStage interface {
	name() string
	// apply changes e in place; false drops the entry.
	apply(e *Entry) bool
}

// bufferStage holds entries across lines (partial-line joining, multiline).
type bufferStage interface {
	name() string
	push(e Entry, next func(Entry), drop func(Entry))
	// flush emits what has waited longer than the stage allows (or all
	// with force).
	flush(now time.Time, force bool, next func(Entry))
}

// Pipeline runs one file's entries through its stages. It is not safe for
// concurrent use: each tailed file has its own.
type Pipeline struct {
	stages []any
	nexts  []func(Entry)
	out    func(Entry)
	drop   func(Entry)
	deps   PipelineDeps
}

// NewPipeline compiles stages; deps may be nil to only validate.
func NewPipeline(cfgs []StageConfig, deps *PipelineDeps) (*Pipeline, error) {
	d := PipelineDeps{Logger: slog.New(slog.DiscardHandler), Now: time.Now}
	if deps != nil {
		d = *deps
		if d.Logger == nil {
			d.Logger = slog.New(slog.DiscardHandler)
		}
		if d.Now == nil {
			d.Now = time.Now
		}
	}
	if d.Metrics == nil {
		d.Metrics = newPipelineMetrics(nil)
	}
	p := &Pipeline{deps: d}
	var errs []error
	for i, c := range cfgs {
		st, err := newStage(c, &p.deps)
		if err != nil {
			errs = append(errs, fmt.Errorf("stage %d: %w", i, err))
			continue
		}
		p.stages = append(p.stages, st)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if n := len(p.stages); n > 0 {
		switch s := p.stages[n-1].(type) {
		case *criStage:
			s.last = true
		case *dockerStage:
			s.last = true
			s.cri.last = true
		}
	}
	p.nexts = make([]func(Entry), len(p.stages)+1)
	for i := range p.nexts {
		p.nexts[i] = func(e Entry) { p.run(i, e) }
	}
	return p, nil
}

// SetOutput sets where kept and dropped entries go.
func (p *Pipeline) SetOutput(out, drop func(Entry)) {
	p.out, p.drop = out, drop
}

// Process runs one entry through every stage.
func (p *Pipeline) Process(e Entry) { p.run(0, e) }

func (p *Pipeline) run(i int, e Entry) {
	for ; i < len(p.stages); i++ {
		switch s := p.stages[i].(type) {
		case simpleStage:
			if !s.apply(&e) {
				if p.drop != nil {
					p.drop(e)
				}
				return
			}
		case bufferStage:
			s.push(e, p.nexts[i+1], p.dropFn())
			return
		}
	}
	if p.out != nil {
		p.out(e)
	}
}

func (p *Pipeline) dropFn() func(Entry) {
	if p.drop == nil {
		return func(Entry) {}
	}
	return p.drop
}

// Flush emits buffered entries that waited long enough (all with force).
func (p *Pipeline) Flush(force bool) {
	now := p.deps.Now()
	for i, st := range p.stages {
		if b, ok := st.(bufferStage); ok {
			b.flush(now, force, p.nexts[i+1])
		}
	}
}

// HasBuffer says whether Flush must be called periodically.
func (p *Pipeline) HasBuffer() bool {
	for _, st := range p.stages {
		if _, ok := st.(bufferStage); ok {
			return true
		}
	}
	return false
}

func (d *PipelineDeps) stageError(stage string, err error) {
	d.Metrics.stageErrors.WithLabelValues(stage).Inc()
	d.Logger.Debug("pipeline stage failed on a line", "job", d.Job, "stage", stage, "err", err)
}

func newStage(c StageConfig, d *PipelineDeps) (any, error) {
	switch {
	case c.Docker != nil:
		return newDockerStage(c.Docker, d)
	case c.CRI != nil:
		return newCRIStage(c.CRI, d)
	case c.Regex != nil:
		return newRegexStage(c.Regex, d)
	case c.JSON != nil:
		return newJSONStage(c.JSON, d)
	case c.Logfmt != nil:
		return newLogfmtStage(c.Logfmt, d)
	case c.Labels != nil:
		return newLabelsStage(c.Labels, false)
	case c.StructuredMetadata != nil:
		return newLabelsStage(c.StructuredMetadata, true)
	case c.Timestamp != nil:
		return newTimestampStage(c.Timestamp, d)
	case c.Output != nil:
		return &outputStage{source: c.Output.Source}, nil
	case c.LabelDrop != nil:
		return newLabelDropStage(c.LabelDrop, false), nil
	case c.LabelAllow != nil:
		return newLabelDropStage(c.LabelAllow, true), nil
	case c.StaticLabels != nil:
		return newStaticLabelsStage(c.StaticLabels)
	case c.Template != nil:
		return newTemplateStage(c.Template, d)
	case c.Replace != nil:
		return newReplaceStage(c.Replace, d)
	case c.Drop != nil:
		return newDropStage(c.Drop, d)
	case c.Match != nil:
		return newMatchStage(c.Match, d)
	case c.Multiline != nil:
		return newMultilineStage(c.Multiline)
	case c.Pack != nil:
		return newPackStage(c.Pack, d), nil
	case c.Tenant != nil:
		return newTenantStage(c.Tenant)
	case c.Limit != nil:
		return newLimitStage(c.Limit, d)
	case c.Metrics != nil:
		return newMetricsStage(c.Metrics, d)
	case c.Decolorize != nil:
		return decolorizeStage{}, nil
	case c.Sampling != nil:
		return newSamplingStage(c.Sampling, d)
	case c.Luhn != nil:
		return newLuhnStage(c.Luhn)
	case c.EventLogMessage != nil:
		return newEventLogMessageStage(c.EventLogMessage, d), nil
	case c.GeoIP != nil:
		return newGeoIPStage(c.GeoIP, d)
	}
	return nil, errors.New("empty pipeline stage")
}
