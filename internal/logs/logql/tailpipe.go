package logql

import (
	"strings"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
)

// Pipeline runs a log query over single entries as they arrive, for tailing.
// It is not safe for concurrent use.
type Pipeline struct {
	sel *LogSelectorExpr
	ls  labelSet
	pc  pipelineCtx
}

// NewPipeline prepares sel for per-entry use.
func NewPipeline(sel *LogSelectorExpr) *Pipeline { return &Pipeline{sel: sel} }

// Matches reports whether a stream's labels satisfy the stream selector.
func (p *Pipeline) Matches(stream labels.Labels) bool {
	for _, m := range p.sel.Matchers {
		if !m.Matches(stream.Get(m.Name)) {
			return false
		}
	}
	return true
}

// Process applies the pipeline; ok is false when the entry is filtered out.
func (p *Pipeline) Process(stream labels.Labels, e logstore.Entry) (line string, out labels.Labels, ok bool) {
	p.ls.reset(stream, e.Metadata)
	p.pc.ts = e.Timestamp
	line, ok = process(p.sel.Pipeline, &p.pc, e.Line, &p.ls)
	if !ok {
		return "", labels.EmptyLabels(), false
	}
	return strings.Clone(line), p.ls.labels(), true
}
