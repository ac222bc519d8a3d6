package generator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
)

// registry holds the generated series as running totals, like a client
// library does, and writes their current values at each collection. Values
// are cumulative, so a lost or late collection loses no counts.
type registry struct {
	external  labels.Labels
	maxSeries int

	mu       sync.Mutex
	families []*family
	active   int
	limited  int64  // series refused by maxSeries, read by a metric
	keyBuf   []byte // lookup's scratch
}

type familyKind int

const (
	kindCounter familyKind = iota
	kindHistogram
)

// family is one metric name with fixed label names.
type family struct {
	reg        *registry
	name       string
	kind       familyKind
	labelNames []string
	bounds     []float64 // histogram upper bounds, without +Inf
	boundText  []string  // le label values, with "+Inf"
	series     map[string]*series
}

// series is one label set of a family. A histogram is stored as its
// per-bucket counts plus sum and count; the cumulative _bucket values are
// computed when written.
type series struct {
	// sampleLabels are the labels of each sample series written: one for a
	// counter; bucket..., sum, count for a histogram.
	sampleLabels []labels.Labels
	refs         []storage.SeriesRef
	values       []float64 // counter: [v]; histogram: per-bucket counts..., sum, count
	created      int64     // ms; a 0 sample is written here first
	written      bool
	updated      time.Time
}

func newRegistry(external map[string]string, maxSeries int) *registry {
	return &registry{external: labels.FromMap(external), maxSeries: maxSeries}
}

func (r *registry) counter(name string, labelNames ...string) *family {
	return r.add(&family{name: name, kind: kindCounter, labelNames: labelNames})
}

func (r *registry) histogram(name string, bounds []float64, labelNames ...string) *family {
	f := &family{name: name, kind: kindHistogram, labelNames: labelNames, bounds: bounds}
	for _, b := range bounds {
		f.boundText = append(f.boundText, strconv.FormatFloat(b, 'f', -1, 64))
	}
	f.boundText = append(f.boundText, "+Inf")
	return r.add(f)
}

func (r *registry) add(f *family) *family {
	f.reg = r
	f.series = map[string]*series{}
	r.families = append(r.families, f)
	return f
}

// lookup finds or creates the series for values (one per label name, ""
// meaning absent). The caller holds r.mu. It returns nil when the series
// cap refuses a new series.
func (f *family) lookup(values []string, now time.Time) *series {
	// The key is strings.Join(values, "\xff"), built in a reused buffer:
	// a map lookup by string(buf) does not allocate, and most spans hit.
	r := f.reg
	buf := r.keyBuf[:0]
	for i, v := range values {
		if i > 0 {
			buf = append(buf, 0xff)
		}
		buf = append(buf, v...)
	}
	r.keyBuf = buf
	if s, ok := f.series[string(buf)]; ok {
		return s
	}
	key := string(buf)
	if r.maxSeries > 0 && r.active >= r.maxSeries {
		r.limited++
		return nil
	}
	b := labels.NewBuilder(r.external)
	for i, n := range f.labelNames {
		if values[i] != "" {
			b.Set(n, strings.Clone(values[i])) // a raw span's values borrow the request's bytes
		}
	}
	s := &series{created: now.UnixMilli(), updated: now}
	switch f.kind {
	case kindCounter:
		b.Set(labels.MetricName, f.name)
		s.sampleLabels = []labels.Labels{b.Labels()}
		s.values = make([]float64, 1)
	case kindHistogram:
		b.Set(labels.MetricName, f.name+"_bucket")
		for _, le := range f.boundText {
			b.Set(labels.BucketLabel, le)
			s.sampleLabels = append(s.sampleLabels, b.Labels())
		}
		b.Del(labels.BucketLabel)
		b.Set(labels.MetricName, f.name+"_sum")
		s.sampleLabels = append(s.sampleLabels, b.Labels())
		b.Set(labels.MetricName, f.name+"_count")
		s.sampleLabels = append(s.sampleLabels, b.Labels())
		s.values = make([]float64, len(f.boundText)+2)
	}
	s.refs = make([]storage.SeriesRef, len(s.sampleLabels))
	f.series[key] = s
	r.active++
	return s
}

// inc adds v to a counter. The caller holds r.mu.
func (f *family) inc(values []string, v float64, now time.Time) {
	if s := f.lookup(values, now); s != nil {
		s.values[0] += v
		s.updated = now
	}
}

// observe records v in a histogram. The caller holds r.mu.
func (f *family) observe(values []string, v float64, now time.Time) {
	s := f.lookup(values, now)
	if s == nil {
		return
	}
	i := len(f.bounds) // +Inf
	for j, b := range f.bounds {
		if v <= b {
			i = j
			break
		}
	}
	s.values[i]++
	n := len(f.boundText)
	s.values[n] += v
	s.values[n+1]++
	s.updated = now
}

// sample is one value to write, kept for remote write.
type sample struct {
	lbls labels.Labels
	t    int64
	v    float64
}

// collect writes every active series at now, drops series idle for longer
// than stale (writing a staleness marker so queries stop at once), and
// returns what it wrote so it can be remote-written too.
func (r *registry) collect(ctx context.Context, app storage.Appendable, now time.Time, stale time.Duration) ([]sample, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := now.UnixMilli()
	a := app.Appender(ctx)
	var out []sample
	var errs []error
	write := func(s *series, i int, ts int64, v float64) {
		ref, err := a.Append(s.refs[i], s.sampleLabels[i], ts, v)
		if err != nil {
			// One refused sample (out of order after a clock step) must not
			// cost the others.
			if len(errs) < 5 {
				errs = append(errs, fmt.Errorf("series %s: %w", s.sampleLabels[i], err))
			}
			s.refs[i] = 0
			return
		}
		s.refs[i] = ref
		out = append(out, sample{lbls: s.sampleLabels[i], t: ts, v: v})
	}
	for _, f := range r.families {
		for key, s := range f.series {
			if now.Sub(s.updated) > stale {
				if s.written {
					for i := range s.sampleLabels {
						write(s, i, t, math.Float64frombits(value.StaleNaN))
					}
				}
				delete(f.series, key)
				r.active--
				continue
			}
			if !s.written {
				// A counter starts at 0 when its series is born, so
				// increase() and rate() count the first observations too.
				created := min(s.created, t-1)
				for i := range s.sampleLabels {
					write(s, i, created, 0)
				}
				s.written = true
			}
			f.writeValues(s, func(i int, v float64) { write(s, i, t, v) })
		}
	}
	if err := a.Commit(); err != nil {
		return nil, fmt.Errorf("commit generated metrics: %w", err)
	}
	return out, errors.Join(errs...)
}

// writeValues emits a series' current values in sampleLabels order.
func (f *family) writeValues(s *series, emit func(i int, v float64)) {
	if f.kind == kindCounter {
		emit(0, s.values[0])
		return
	}
	n := len(f.boundText)
	var cum float64
	for i := range n {
		cum += s.values[i]
		emit(i, cum)
	}
	emit(n, s.values[n])
	emit(n+1, s.values[n+1])
}

func (r *registry) activeSeries() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.active
}

func (r *registry) limitedSeries() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.limited
}
