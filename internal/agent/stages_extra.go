package agent

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"

	"github.com/prometheus/common/model"
)

// Stages written from Promtail's documentation: decolorize, sampling, luhn,
// eventlogmessage. No Promtail code was read or copied.

// DecolorizeConfig is the decolorize stage (no options).
type DecolorizeConfig struct{}

// ansiEscape matches ANSI escape sequences: CSI (colours, cursor moves:
// ESC [ params intermediates final), OSC (ESC ] … BEL or ESC \) and the
// two-byte escapes.
var ansiEscape = regexp.MustCompile("\x1b\\[[0-?]*[ -/]*[@-~]|\x1b\\][^\x07\x1b]*(?:\x07|\x1b\\\\)|\x1b[@-Z\\\\-_]")

type decolorizeStage struct{}

func (decolorizeStage) name() string { return "decolorize" }

func (decolorizeStage) apply(e *Entry) bool {
	if strings.IndexByte(e.Line, 0x1b) >= 0 {
		e.Line = ansiEscape.ReplaceAllString(e.Line, "")
	}
	return true
}

// SamplingConfig is the sampling stage: keep a share of the lines.
type SamplingConfig struct {
	// Rate is the share kept, 0 (none) to 1 (all); required.
	Rate *float64 `yaml:"rate"`
}

type samplingStage struct {
	d    *PipelineDeps
	rate float64
	rnd  func() float64
}

func newSamplingStage(c *SamplingConfig, d *PipelineDeps) (*samplingStage, error) {
	if c.Rate == nil {
		return nil, errors.New("sampling: rate is required (0 keeps nothing, 1 everything)")
	}
	if *c.Rate < 0 || *c.Rate > 1 {
		return nil, fmt.Errorf("sampling: rate %v is not between 0 and 1", *c.Rate)
	}
	return &samplingStage{d: d, rate: *c.Rate, rnd: rand.Float64}, nil
}

func (*samplingStage) name() string { return "sampling" }

func (s *samplingStage) apply(*Entry) bool {
	if s.rate >= 1 || s.rnd() < s.rate {
		return true
	}
	s.d.Metrics.dropped.WithLabelValues("sampling").Inc()
	return false
}

// LuhnConfig is the luhn stage: numbers that pass the Luhn check (card
// numbers) are replaced.
type LuhnConfig struct {
	Replacement string `yaml:"replacement"`
	Source      string `yaml:"source"`
	MinLength   int    `yaml:"min_length"`
}

type luhnStage struct {
	c LuhnConfig
}

func newLuhnStage(c *LuhnConfig) (*luhnStage, error) {
	cc := *c
	if cc.Replacement == "" {
		cc.Replacement = "**REDACTED**"
	}
	if cc.MinLength == 0 {
		cc.MinLength = 13
	}
	if cc.MinLength < 2 {
		return nil, fmt.Errorf("luhn: min_length %d is below 2", cc.MinLength)
	}
	return &luhnStage{c: cc}, nil
}

func (*luhnStage) name() string { return "luhn" }

func (s *luhnStage) apply(e *Entry) bool {
	if s.c.Source == "" {
		e.Line = s.redact(e.Line)
		return true
	}
	v, ok := e.lookup(s.c.Source)
	if !ok {
		return true
	}
	if r := s.redact(v); r != v {
		e.extracted()[s.c.Source] = r
	}
	return true
}

// redact replaces every run of at least min_length digits that passes the
// Luhn check.
func (s *luhnStage) redact(in string) string {
	var b *strings.Builder
	last := 0
	for i := 0; i < len(in); {
		if in[i] < '0' || in[i] > '9' {
			i++
			continue
		}
		j := i
		for j < len(in) && in[j] >= '0' && in[j] <= '9' {
			j++
		}
		if j-i >= s.c.MinLength && luhnValid(in[i:j]) {
			if b == nil {
				b = &strings.Builder{}
				b.Grow(len(in))
			}
			b.WriteString(in[last:i])
			b.WriteString(s.c.Replacement)
			last = j
		}
		i = j
	}
	if b == nil {
		return in
	}
	b.WriteString(in[last:])
	return b.String()
}

// luhnValid checks the Luhn (mod 10) checksum of a string of digits.
func luhnValid(digits string) bool {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// EventLogMessageConfig is the eventlogmessage stage: the Message of a
// Windows event ("Key: value" lines) into extracted values.
type EventLogMessageConfig struct {
	Source            string `yaml:"source"`
	OverwriteExisting bool   `yaml:"overwrite_existing"`
	DropInvalidLabels bool   `yaml:"drop_invalid_labels"`
}

type eventLogMessageStage struct {
	d *PipelineDeps
	c EventLogMessageConfig
}

func newEventLogMessageStage(c *EventLogMessageConfig, d *PipelineDeps) *eventLogMessageStage {
	cc := *c
	if cc.Source == "" {
		cc.Source = "message"
	}
	return &eventLogMessageStage{d: d, c: cc}
}

func (*eventLogMessageStage) name() string { return "eventlogmessage" }

func (s *eventLogMessageStage) apply(e *Entry) bool {
	msg, ok := e.lookup(s.c.Source)
	if !ok {
		s.d.stageError("eventlogmessage", fmt.Errorf("source %q not in extracted values", s.c.Source))
		return true
	}
	ex := e.extracted()
	for _, line := range strings.Split(msg, "\n") {
		k, v, found := strings.Cut(line, ":")
		if !found {
			continue
		}
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		if !model.LegacyValidation.IsValidLabelName(k) {
			if s.c.DropInvalidLabels {
				continue
			}
			k = sanitizeLabelName(k)
		}
		if _, exists := ex[k]; exists && !s.c.OverwriteExisting {
			k += "_extracted"
		}
		ex[k] = strings.TrimSpace(strings.TrimSuffix(v, "\r"))
	}
	return true
}

// sanitizeLabelName replaces every character a label name cannot hold by
// an underscore (a leading digit too).
func sanitizeLabelName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}
