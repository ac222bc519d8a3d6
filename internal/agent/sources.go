package agent

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
)

// A network source (loki_push_api, syslog) receives entries instead of
// reading files. Each job has one lineSource: its relabel rules, its
// pipeline (one instance, guarded, since entries of several connections
// arrive at once) and the hand-off to the clients.
type lineSource struct {
	job     string
	kind    string
	relabel []*relabel.Config
	static  model.LabelSet
	out     func(context.Context, Entry)
	m       *sourceMetrics

	mu       sync.Mutex
	pipeline *Pipeline
	// cache of relabelled label sets by incoming labels' string
	cache map[string]model.LabelSet
}

const maxRelabelCache = 10000

type sourceMetrics struct {
	received *prometheus.CounterVec
	dropped  *prometheus.CounterVec
}

func newSourceMetrics(reg prometheus.Registerer) *sourceMetrics {
	m := &sourceMetrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_agent_source_entries_total",
			Help: "Entries received by network sources (loki_push_api, syslog), by job and source kind.",
		}, []string{"job", "source"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nxwatcher_agent_source_dropped_total",
			Help: "Entries or messages a network source refused or dropped, by job, source kind and reason.",
		}, []string{"job", "source", "reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.received, m.dropped)
	}
	return m
}

func newLineSource(sc *ScrapeConfig, kind string, static model.LabelSet, pd *PipelineDeps, m *sourceMetrics, out func(context.Context, Entry)) (*lineSource, error) {
	p, err := NewPipeline(sc.PipelineStages, pd)
	if err != nil {
		return nil, err
	}
	s := &lineSource{
		job: sc.JobName, kind: kind, relabel: sc.RelabelConfigs, static: static,
		out: out, m: m, pipeline: p, cache: map[string]model.LabelSet{},
	}
	p.SetOutput(func(e Entry) { s.out(context.Background(), e) }, nil)
	return s, nil
}

// labelsFor merges incoming labels with the job's labels (the job's win),
// applies relabel_configs and removes the `__` labels (the tenant label
// stays); nil means the rules dropped the stream.
func (s *lineSource) labelsFor(in model.LabelSet) model.LabelSet {
	key := in.String()
	s.mu.Lock()
	ls, ok := s.cache[key]
	s.mu.Unlock()
	if ok {
		return ls
	}
	lb := labels.NewBuilder(labels.EmptyLabels())
	for k, v := range in {
		lb.Set(string(k), string(v))
	}
	for k, v := range s.static {
		lb.Set(string(k), string(v))
	}
	if len(s.relabel) > 0 && !relabel.ProcessBuilder(lb, s.relabel...) {
		ls = nil
	} else {
		ls = model.LabelSet{}
		lb.Range(func(l labels.Label) {
			if len(l.Name) < 2 || l.Name[:2] != "__" || l.Name == tenantLabel {
				ls[model.LabelName(l.Name)] = model.LabelValue(l.Value)
			}
		})
	}
	s.mu.Lock()
	if len(s.cache) >= maxRelabelCache {
		clear(s.cache)
	}
	s.cache[key] = ls
	s.mu.Unlock()
	return ls
}

// handle relabels and runs one received entry through the pipeline; ctx
// bounds the hand-off to the clients (a full queue blocks the sender).
func (s *lineSource) handle(ctx context.Context, in model.LabelSet, e Entry) bool {
	ls := s.labelsFor(in)
	if ls == nil {
		s.m.dropped.WithLabelValues(s.job, s.kind, "relabel").Inc()
		return false
	}
	e.Labels, e.shared = ls, true
	s.m.received.WithLabelValues(s.job, s.kind).Inc()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pipeline.SetOutput(func(e Entry) { s.out(ctx, e) }, nil)
	s.pipeline.Process(e)
	return true
}

// flushLoop emits what buffering stages (multiline) hold, until ctx ends.
func (s *lineSource) flushLoop(ctx context.Context, every time.Duration) {
	if !s.pipeline.HasBuffer() {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// What is still buffered goes out, within a bound: a client
			// whose queue stays full must not hold the shutdown.
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			s.mu.Lock()
			s.pipeline.SetOutput(func(e Entry) { s.out(fctx, e) }, nil)
			s.pipeline.Flush(true)
			s.mu.Unlock()
			cancel()
			return
		case <-t.C:
			s.mu.Lock()
			s.pipeline.SetOutput(func(e Entry) { s.out(ctx, e) }, nil)
			s.pipeline.Flush(false)
			s.mu.Unlock()
		}
	}
}
