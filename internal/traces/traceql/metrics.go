package traceql

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// MetricsRequest is the time grid of a metrics query, in Unix nanoseconds.
// Spans count in the interval their start time falls in: interval k covers
// [AlignedStart+k*Step, AlignedStart+(k+1)*Step), where AlignedStart is
// Start rounded down to a multiple of Step, and only spans starting in
// [Start, End) count. An instant query is one interval: Step = End - Start
// and no alignment (Instant).
type MetricsRequest struct {
	Start, End, Step int64
	Instant          bool
	// MaxSeries bounds the distinct by() groups (0 = no bound): a query that
	// would make more fails with ErrTooManySeries.
	MaxSeries int
	// Exemplars bounds the exemplars kept over all series (0 = none), at
	// most one per series and interval.
	Exemplars int
}

// ErrTooManySeries is returned when a query makes more series than MetricsRequest.MaxSeries.
var ErrTooManySeries = errors.New("too many series")

// MetricsSeries is one time series of a metrics query's answer. Values has
// one entry per interval; NaN means no sample there.
type MetricsSeries struct {
	Labels    []KeyValue
	Values    []float64
	Exemplars []Exemplar
}

// PromLabels renders the labels as Tempo's promLabels field does, in
// Prometheus text form: {resource.service.name="a", p="0.9"}.
func (s *MetricsSeries) PromLabels() string {
	parts := make([]string, len(s.Labels))
	for i, l := range s.Labels {
		var v string
		switch l.Value.Kind {
		case KindNil:
			v = "<nil>"
		case KindFloat:
			v = strconv.FormatFloat(l.Value.F, 'g', -1, 64)
		default:
			v = l.Value.Text()
		}
		parts[i] = l.Key + "=" + strconv.Quote(v)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// Exemplar is one span behind a sample: its trace and span IDs as labels
// ("trace:id", "span:id"), a value and the span's start in Unix ms.
type Exemplar struct {
	Labels      []KeyValue
	Value       float64
	TimestampMs int64
}

// Label names Tempo gives the series of an aggregate without by(), of a
// quantile and of a histogram bucket.
const (
	LabelName     = "__name__"
	LabelQuantile = "p"
	LabelBucket   = "__bucket"
)

// MetricsEvaluator accumulates a metrics query over traces fed to it one at
// a time (Observe) and returns the series (Series). It is not safe for
// concurrent use.
type MetricsEvaluator struct {
	q        *Query
	m        *MetricsAggregate
	req      MetricsRequest
	base     int64 // start of interval 0
	n        int   // intervals
	groups   map[string]*metricsGroup
	order    []*metricsGroup
	key      []byte
	vals     []Static
	seen     []bool
	examples int
	// isDuration: the measured attribute is a duration, reported in seconds.
	isDuration bool
	// cmp holds compare()'s counts: [0] baseline, [1] selection.
	cmp [2]map[string]*compareAttr
	// Spans counts the spans that went into the series.
	Spans int64
	// cols is ObserveColumns' scratch trace; colSpanID and colIndex name
	// the span it is observing, whose ID is read only for an exemplar.
	cols      *columnScratch
	colSpanID func(int) (pcommon.SpanID, error)
	colIndex  int
}

type metricsGroup struct {
	labels []KeyValue
	counts []float64 // spans (rate, count_over_time) or values seen
	acc    []float64 // sum, min or max per interval
	hist   map[int][]float64
	ex     []exemplarAt
}

type exemplarAt struct {
	interval int
	ex       Exemplar
}

// MaxMetricsIntervals bounds the points of one series, as Prometheus bounds
// a range query's resolution.
const MaxMetricsIntervals = 11000

// NewMetricsEvaluator checks the request against the query.
func (q *Query) NewMetricsEvaluator(req MetricsRequest) (*MetricsEvaluator, error) {
	m := q.Metrics()
	if m == nil {
		return nil, errors.New("not a metrics query: end it with a metrics function such as | rate()")
	}
	if req.End <= req.Start {
		return nil, fmt.Errorf("end %d is not after start %d", req.End, req.Start)
	}
	if req.Instant {
		req.Step = req.End - req.Start
	}
	if req.Step <= 0 {
		return nil, fmt.Errorf("step must be positive")
	}
	e := &MetricsEvaluator{q: q, m: m, req: req, groups: map[string]*metricsGroup{}}
	e.base = req.Start
	if !req.Instant {
		e.base = req.Start - mod(req.Start, req.Step)
	}
	n := (req.End - e.base + req.Step - 1) / req.Step
	if n > MaxMetricsIntervals {
		return nil, fmt.Errorf("exceeded maximum resolution of %d points per series: raise step (%d intervals asked)", MaxMetricsIntervals, n)
	}
	e.n = int(n)
	if m.Attr != nil && m.Attr.Scope == ScopeIntrinsic {
		switch m.Attr.Name {
		case IntrinsicDuration, IntrinsicTraceDuration, IntrinsicEventTime:
			e.isDuration = true
		}
	}
	return e, nil
}

func mod(a, b int64) int64 {
	r := a % b
	if r < 0 {
		r += b
	}
	return r
}

// Timestamp returns the start of interval i in Unix ms: the sample's time.
func (e *MetricsEvaluator) Timestamp(i int) int64 {
	if e.req.Instant {
		return e.req.End / 1e6
	}
	return (e.base + int64(i)*e.req.Step) / 1e6
}

// Intervals is the number of intervals (samples per series at most).
func (e *MetricsEvaluator) Intervals() int { return e.n }

// Observe evaluates the query on t and adds its matching spans.
func (e *MetricsEvaluator) Observe(t *Trace) error {
	if st := e.q.Pipeline.Stages; len(st) == 2 {
		if f, ok := st[0].(*SpansetFilter); ok {
			// One spanset filter, then the metrics function: test each
			// span directly, without building spansets.
			for i := range t.Spans {
				if f.Expr == nil || matchSpan(f.Expr, t, i) {
					if err := e.observeSpan(t, i); err != nil {
						return err
					}
				}
			}
			return nil
		}
	}
	sets := e.q.Eval(t)
	if len(sets) == 0 {
		return nil
	}
	if len(sets) == 1 {
		for _, i := range sets[0].Spans {
			if err := e.observeSpan(t, i); err != nil {
				return err
			}
		}
		return nil
	}
	// Several spansets (by(), ||) may share spans: count each span once.
	e.seen = slices.Grow(e.seen[:0], len(t.Spans))[:len(t.Spans)]
	clear(e.seen)
	for _, ss := range sets {
		for _, i := range ss.Spans {
			if e.seen[i] {
				continue
			}
			e.seen[i] = true
			if err := e.observeSpan(t, i); err != nil {
				return err
			}
		}
	}
	return nil
}

func (e *MetricsEvaluator) observeSpan(t *Trace, i int) error {
	start := int64(t.Spans[i].Span.StartTimestamp())
	if start < e.req.Start || start >= e.req.End {
		return nil
	}
	k := int((start - e.base) / e.req.Step)
	if k >= e.n {
		k = e.n - 1
	}
	if e.m.Op == "compare" {
		e.Spans++
		e.compareSpan(t, i, k, start)
		return nil
	}
	var v float64
	if e.m.Attr != nil {
		var ok bool
		if v, ok = e.value(t, i); !ok {
			return nil // nothing to measure on this span
		}
	}
	g, err := e.group(t, i)
	if err != nil {
		return err
	}
	e.Spans++
	switch e.m.Op {
	case "rate", "count_over_time":
		g.counts[k]++
	case "sum_over_time", "avg_over_time":
		g.counts[k]++
		g.acc[k] += v
	case "min_over_time":
		if g.counts[k] == 0 || v < g.acc[k] {
			g.acc[k] = v
		}
		g.counts[k]++
	case "max_over_time":
		if g.counts[k] == 0 || v > g.acc[k] {
			g.acc[k] = v
		}
		g.counts[k]++
	case "quantile_over_time", "histogram_over_time":
		b := bucketOf(v)
		h := g.hist[b]
		if h == nil {
			h = make([]float64, e.n)
			g.hist[b] = h
		}
		h[k]++
	}
	if e.examples < e.req.Exemplars && (len(g.ex) == 0 || g.ex[len(g.ex)-1].interval != k) {
		sp := t.Spans[i].Span
		spanID := sp.SpanID()
		if e.colSpanID != nil {
			var err error
			if spanID, err = e.colSpanID(e.colIndex); err != nil {
				return err
			}
		}
		x := Exemplar{
			Labels: []KeyValue{
				{Key: "trace:id", Value: String(sp.TraceID().String())},
				{Key: "span:id", Value: String(spanID.String())},
			},
			TimestampMs: start / 1e6,
		}
		if e.m.Attr != nil {
			x.Value = e.report(v)
		}
		g.ex = append(g.ex, exemplarAt{interval: k, ex: x})
		e.examples++
	}
	return nil
}

// value is the measured attribute on span i as a number (durations in ns).
func (e *MetricsEvaluator) value(t *Trace, i int) (float64, bool) {
	if s, ok := singleValue(e.m.Attr, t, i); ok {
		switch s.Kind {
		case KindInt, KindDuration:
			return float64(s.I), true
		case KindFloat:
			return s.F, true
		}
		return 0, false
	}
	for _, s := range attributeValues(e.m.Attr, t, i) {
		switch s.Kind {
		case KindInt, KindDuration:
			return float64(s.I), true
		case KindFloat:
			return s.F, true
		}
	}
	return 0, false
}

// report converts a measured number to the unit of the answer: durations
// in seconds, as Tempo reports them.
func (e *MetricsEvaluator) report(v float64) float64 {
	if e.isDuration {
		return v / 1e9
	}
	return v
}

func (e *MetricsEvaluator) group(t *Trace, i int) (*metricsGroup, error) {
	e.key = e.key[:0]
	e.vals = e.vals[:0]
	for _, a := range e.m.By {
		v, ok := singleValue(a, t, i)
		if !ok {
			if vs := attributeValues(a, t, i); len(vs) > 0 {
				v = vs[0]
			}
		}
		e.vals = append(e.vals, v)
		e.key = append(e.key, byte(v.Kind))
		switch v.Kind {
		case KindString:
			e.key = append(e.key, v.S...)
		case KindFloat:
			e.key = strconv.AppendFloat(e.key, v.F, 'g', -1, 64)
		case KindBool:
			e.key = strconv.AppendBool(e.key, v.B)
		default:
			e.key = strconv.AppendInt(e.key, v.I, 10)
		}
		e.key = append(e.key, 0)
	}
	if g, ok := e.groups[string(e.key)]; ok {
		return g, nil
	}
	if e.req.MaxSeries > 0 && len(e.groups) >= e.req.MaxSeries {
		return nil, fmt.Errorf("%w: more than %d by() groups", ErrTooManySeries, e.req.MaxSeries)
	}
	g := &metricsGroup{counts: make([]float64, e.n)}
	for j, a := range e.m.By {
		v := e.vals[j]
		if v.Kind == KindStatus || v.Kind == KindSpanKind || v.Kind == KindDuration {
			v = String(v.Text())
		}
		g.labels = append(g.labels, KeyValue{Key: a.String(), Value: v})
	}
	switch e.m.Op {
	case "sum_over_time", "avg_over_time", "min_over_time", "max_over_time":
		g.acc = make([]float64, e.n)
	case "quantile_over_time", "histogram_over_time":
		g.hist = map[int][]float64{}
		g.counts = nil
	}
	e.groups[string(e.key)] = g
	e.order = append(e.order, g)
	return g, nil
}

// bucketOf is the power-of-two bucket of v: the exponent e with
// 2^(e-1) < v <= 2^e. Zero and negative values share the lowest bucket.
func bucketOf(v float64) int {
	if v <= 0 {
		return math.MinInt32
	}
	frac, exp := math.Frexp(v) // v = frac * 2^exp, frac in [0.5, 1)
	if frac == 0.5 {
		return exp - 1
	}
	return exp
}

func bucketBound(b int) float64 {
	if b == math.MinInt32 {
		return 0
	}
	return math.Ldexp(1, b)
}

// Series returns the accumulated series, sorted by their labels.
func (e *MetricsEvaluator) Series() []MetricsSeries {
	var out []MetricsSeries
	stepSeconds := float64(e.req.Step) / 1e9
	for _, g := range e.order {
		base := g.labels
		if len(base) == 0 && e.m.Op != "quantile_over_time" && e.m.Op != "histogram_over_time" {
			base = []KeyValue{{Key: LabelName, Value: String(e.m.Op)}}
		}
		switch e.m.Op {
		case "quantile_over_time":
			buckets := sortedBuckets(g.hist)
			for _, q := range e.m.Quantiles {
				s := MetricsSeries{Labels: withLabel(base, KeyValue{Key: LabelQuantile, Value: Float(q)}), Values: nanValues(e.n)}
				for k := 0; k < e.n; k++ {
					if v, ok := log2Quantile(q, buckets, g.hist, k); ok {
						s.Values[k] = e.report(v)
					}
				}
				s.Exemplars = e.exemplars(g, s.Values)
				out = append(out, s)
			}
		case "histogram_over_time":
			for _, b := range sortedBuckets(g.hist) {
				s := MetricsSeries{Labels: withLabel(base, KeyValue{Key: LabelBucket, Value: Float(e.report(bucketBound(b)))}), Values: nanValues(e.n)}
				for k, c := range g.hist[b] {
					if c > 0 {
						s.Values[k] = c
					}
				}
				out = append(out, s)
			}
		default:
			s := MetricsSeries{Labels: base, Values: make([]float64, e.n)}
			for k := 0; k < e.n; k++ {
				c := g.counts[k]
				switch e.m.Op {
				case "rate":
					s.Values[k] = c / stepSeconds
				case "count_over_time":
					s.Values[k] = c
				case "sum_over_time", "min_over_time", "max_over_time":
					s.Values[k] = math.NaN()
					if c > 0 {
						s.Values[k] = e.report(g.acc[k])
					}
				case "avg_over_time":
					s.Values[k] = math.NaN()
					if c > 0 {
						s.Values[k] = e.report(g.acc[k] / c)
					}
				}
			}
			s.Exemplars = e.exemplars(g, s.Values)
			out = append(out, s)
		}
	}
	if e.m.Op == "compare" {
		out = e.compareSeries()
	}
	slices.SortFunc(out, func(a, b MetricsSeries) int { return strings.Compare(a.PromLabels(), b.PromLabels()) })
	if e.m.TopK > 0 {
		out = topK(out, e.m.TopK, e.m.Bottom, e.n) // ties go to the first in label order
	}
	return out
}

// topK keeps, at each interval, the k series with the highest values (the
// lowest for bottom), as PromQL's topk does in a range query: a series
// keeps its values at the intervals where it ranks, others become NaN, and
// a series that never ranks is dropped.
func topK(series []MetricsSeries, k int, bottom bool, n int) []MetricsSeries {
	keep := make([][]bool, len(series))
	for i := range keep {
		keep[i] = make([]bool, n)
	}
	idx := make([]int, 0, len(series))
	for step := 0; step < n; step++ {
		idx = idx[:0]
		for i := range series {
			if !math.IsNaN(series[i].Values[step]) {
				idx = append(idx, i)
			}
		}
		slices.SortStableFunc(idx, func(a, b int) int {
			va, vb := series[a].Values[step], series[b].Values[step]
			if bottom {
				va, vb = vb, va
			}
			switch {
			case va > vb:
				return -1
			case va < vb:
				return 1
			}
			return 0
		})
		for _, i := range idx[:min(k, len(idx))] {
			keep[i][step] = true
		}
	}
	out := series[:0]
	for i, s := range series {
		any := false
		for step := range s.Values {
			if keep[i][step] {
				any = true
			} else {
				s.Values[step] = math.NaN()
			}
		}
		if any {
			out = append(out, s)
		}
	}
	return out
}

// exemplars returns g's exemplars; those of rate() and count_over_time()
// take the series' value at their interval, so they sit on the line.
func (e *MetricsEvaluator) exemplars(g *metricsGroup, values []float64) []Exemplar {
	var out []Exemplar
	for _, x := range g.ex {
		ex := x.ex
		if e.m.Attr == nil {
			ex.Value = values[x.interval]
		}
		out = append(out, ex)
	}
	return out
}

func withLabel(base []KeyValue, kv KeyValue) []KeyValue {
	out := make([]KeyValue, 0, len(base)+1)
	return append(append(out, base...), kv)
}

func nanValues(n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = math.NaN()
	}
	return v
}

func sortedBuckets(h map[int][]float64) []int {
	out := make([]int, 0, len(h))
	for b := range h {
		out = append(out, b)
	}
	slices.Sort(out)
	return out
}

// log2Quantile estimates quantile q of interval k from power-of-two
// buckets: it finds the bucket holding the q-th value and interpolates
// linearly between its bounds (2^(e-1), 2^e].
func log2Quantile(q float64, buckets []int, h map[int][]float64, k int) (float64, bool) {
	var total float64
	for _, b := range buckets {
		total += h[b][k]
	}
	if total == 0 {
		return 0, false
	}
	rank := q * total
	var cum float64
	for _, b := range buckets {
		c := h[b][k]
		if c == 0 {
			continue
		}
		if cum+c >= rank {
			hi := bucketBound(b)
			lo := hi / 2
			if b == math.MinInt32 {
				return 0, true
			}
			return lo + (hi-lo)*(rank-cum)/c, true
		}
		cum += c
	}
	return bucketBound(buckets[len(buckets)-1]), true
}

// compare(): every span is in the selection (it matches the filter, and
// starts inside the selection window when one is given) or the baseline;
// each of its span and resource attributes and its name, status and kind
// is counted per interval under that group.

// maxCompareValues bounds the distinct values tracked per attribute and
// group; more are counted as too many.
const maxCompareValues = 1000

// Labels of compare() series.
const (
	LabelMetaType  = "__meta_type"
	LabelMetaError = "__meta_error"
	TooManyValues  = "__too_many_values__"
)

type compareAttr struct {
	values  map[Static][]float64
	dropped []float64 // spans whose value was not tracked, per interval
}

func (e *MetricsEvaluator) compareSpan(t *Trace, i, k int, start int64) {
	m := e.m
	sel := m.Selection.Expr == nil || truthy(evalField(m.Selection.Expr, t, i))
	if sel && (m.CompareStart != 0 || m.CompareEnd != 0) && (start < m.CompareStart || start > m.CompareEnd) {
		sel = false
	}
	g := 0
	if sel {
		g = 1
	}
	if e.cmp[g] == nil {
		e.cmp[g] = map[string]*compareAttr{}
	}
	sp := &t.Spans[i]
	add := func(key string, v Static) {
		a := e.cmp[g][key]
		if a == nil {
			a = &compareAttr{values: map[Static][]float64{}}
			e.cmp[g][key] = a
		}
		c := a.values[v]
		if c == nil {
			if len(a.values) >= maxCompareValues {
				if a.dropped == nil {
					a.dropped = make([]float64, e.n)
				}
				a.dropped[k]++
				return
			}
			c = make([]float64, e.n)
			a.values[v] = c
		}
		c[k]++
	}
	add("name", String(sp.Span.Name()))
	add("status", String(StatusName(sp.Span.Status().Code())))
	add("kind", String(KindName(sp.Span.Kind())))
	sp.Span.Attributes().Range(func(key string, v pcommon.Value) bool {
		add("span."+key, FromValue(v))
		return true
	})
	sp.Resource.Attributes().Range(func(key string, v pcommon.Value) bool {
		add("resource."+key, FromValue(v))
		return true
	})
}

// compareSeries returns, per group and attribute, the series of its topN
// most frequent values; an attribute with more values (in either group)
// adds one {__meta_error="__too_many_values__", <attr>=<nil>} series
// counting the spans of the values left out.
func (e *MetricsEvaluator) compareSeries() []MetricsSeries {
	var out []MetricsSeries
	tooMany := map[string][]float64{}
	for g, typ := range []string{"baseline", "selection"} {
		for key, a := range e.cmp[g] {
			type vc struct {
				v      Static
				counts []float64
				total  float64
			}
			var vals []vc
			for v, c := range a.values {
				var sum float64
				for _, x := range c {
					sum += x
				}
				vals = append(vals, vc{v, c, sum})
			}
			slices.SortFunc(vals, func(x, y vc) int {
				switch {
				case x.total > y.total:
					return -1
				case x.total < y.total:
					return 1
				}
				return strings.Compare(x.v.String(), y.v.String())
			})
			if len(vals) > e.m.CompareTopN || a.dropped != nil {
				d := tooMany[key]
				if d == nil {
					d = make([]float64, e.n)
					tooMany[key] = d
				}
				for _, x := range vals[min(len(vals), e.m.CompareTopN):] {
					for k, c := range x.counts {
						d[k] += c
					}
				}
				for k, c := range a.dropped {
					d[k] += c
				}
				vals = vals[:min(len(vals), e.m.CompareTopN)]
			}
			for _, x := range vals {
				out = append(out, MetricsSeries{
					Labels: []KeyValue{{Key: LabelMetaType, Value: String(typ)}, {Key: key, Value: x.v}},
					Values: slices.Clone(x.counts),
				})
			}
		}
	}
	for key, d := range tooMany {
		out = append(out, MetricsSeries{Labels: []KeyValue{{Key: LabelMetaError, Value: String(TooManyValues)}, {Key: key}}, Values: d})
	}
	return out
}
