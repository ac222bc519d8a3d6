package logql

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
)

// Storage is what the engine reads from; *logstore.DB implements it.
type Storage interface {
	Querier(mint, maxt int64) (*logstore.Querier, error)
}

// EngineOpts are the engine's limits. Each is checked while the query runs,
// as the work or memory accrues, so a query is stopped before it does the
// damage rather than after.
type EngineOpts struct {
	MaxSeries  int // metric queries returning more series fail; 0 = unlimited
	MaxSamples int // samples (log lines) a metric query may fold into its windows; 0 = unlimited
	// MaxBytesRead caps the bytes of log lines one query reads from the
	// store (Loki's max_query_bytes_read); 0 = unlimited.
	MaxBytesRead int64
	// MaxMemory caps the memory one query holds for selected streams,
	// series, windows and kept lines, by estimate; 0 = unlimited.
	MaxMemory int64
}

// MaxPoints is the most evaluation steps a range query may have, as in
// Prometheus and Loki.
const MaxPoints = 11000

// ErrResolution is the error for a range query with more than MaxPoints
// steps; it wraps ErrLimit.
var ErrResolution = fmt.Errorf("%w: exceeded maximum resolution of 11,000 points per timeseries. Try increasing the value of the step parameter", ErrLimit)

// Points is how many evaluation steps a range query from start to end has,
// once aligned as AlignSteps does.
func Points(start, end time.Time, step time.Duration) int64 {
	if step <= 0 || end.Before(start) {
		return 0
	}
	first, last := AlignSteps(start, end, step)
	return (last-first)/int64(step) + 1
}

// AlignSteps gives the first and last evaluation time (Unix ns) of a range
// metric query as Loki evaluates it: on multiples of step since the Unix
// epoch, from start rounded down to end rounded up. A query from 10:00:30
// to 10:30:30 at 60 s steps is evaluated at 10:00, 10:01, ..., 10:31.
func AlignSteps(start, end time.Time, step time.Duration) (first, last int64) {
	s, e, st := start.UnixNano(), end.UnixNano(), int64(step)
	first = s - mod(s, st)
	last = e
	if m := mod(e, st); m != 0 {
		last = e - m + st
	}
	return first, last
}

// mod is a non-negative remainder, so times before 1970 align downwards too.
func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// Engine evaluates LogQL against a Storage.
type Engine struct {
	opts EngineOpts
	// noSummaries reads every line even where chunk summaries could
	// answer; tests compare both paths.
	noSummaries bool
	// noMemo evaluates every line's stages even where the logfmt outcome
	// memo could (ADR 0103), for tests that compare the two.
	noMemo bool
}

// NewEngine returns an engine.
func NewEngine(opts EngineOpts) *Engine { return &Engine{opts: opts} }

// Params describe one evaluation. Start is inclusive, End exclusive for log
// queries; range metric queries evaluate at the multiples of Step from Start
// rounded down to End rounded up (AlignSteps), instant ones at End.
type Params struct {
	Start, End time.Time
	Step       time.Duration
	Interval   time.Duration // log queries: at most one entry per stream per interval
	Limit      int           // log queries: entries returned
	Backward   bool
	Instant    bool // metric queries: evaluate once at End
	// Categorize: log queries group entries by stream labels only and
	// report each entry's metadata and parsed labels apart
	// (StreamResult.Categories), for Loki's categorize-labels encoding.
	Categorize bool
}

// Stats counts the work of a query.
type Stats struct {
	Streams        int
	Chunks         int
	Lines          int64 // lines read from the store (after pushed-down filters)
	Bytes          int64
	MetadataBytes  int64 // structured metadata (names and values) of the lines read
	StoredBytes    int64 // compressed size of the chunks selected (the head's open chunk counts 0)
	PostFilter     int64 // lines that passed the whole pipeline
	Returned       int64
	ExecTime       time.Duration
	ChunkRefsTotal int
	// SummaryChunks are the chunks whose lines (counted in Lines and
	// Bytes) were counted from their per-second summaries, unread.
	SummaryChunks int
}

// Result is a query's value and stats.
type Result struct {
	Value Value
	Stats Stats
}

// ErrLimit is returned when a query exceeds a configured limit.
var ErrLimit = errors.New("query limit exceeded")

// Exec parses and runs a query.
func (e *Engine) Exec(ctx context.Context, st Storage, query string, p Params) (Result, error) {
	expr, err := ParseExpr(query)
	if err != nil {
		return Result{}, err
	}
	return e.Eval(ctx, st, expr, p)
}

// Eval runs a parsed query.
func (e *Engine) Eval(ctx context.Context, st Storage, expr Expr, p Params) (Result, error) {
	start := time.Now()
	ev := &evaluator{e: e, st: st, p: p, ctx: ctx}
	var res Result
	var err error
	if ls, ok := expr.(*LogSelectorExpr); ok {
		res.Value, err = ev.logQuery(ls)
	} else {
		res.Value, err = ev.metricQuery(expr)
	}
	ev.stats.ExecTime = time.Since(start)
	res.Stats = ev.stats
	return res, err
}

type evaluator struct {
	e     *Engine
	st    Storage
	p     Params
	ctx   context.Context
	stats Stats
	steps []int64 // Unix ns

	mem       atomic.Int64 // estimated bytes held, see charge
	bytesRead atomic.Int64
	// seriesIsResult is set while evaluating a range aggregation whose
	// series are the query's result series (top level, or under a
	// vector aggregation its grouping is pushed into), so the series
	// limit can be checked as series appear.
	seriesIsResult bool
}

// charge accounts n more bytes of memory held by the query.
func (ev *evaluator) charge(n int64) error {
	if m := ev.e.opts.MaxMemory; m > 0 && ev.mem.Add(n) > m {
		return fmt.Errorf("%w: query needs more than max_query_memory (%d bytes); narrow the selector, shorten the range or increase the step", ErrLimit, m)
	}
	return nil
}

// read accounts n more bytes of log lines to read.
func (ev *evaluator) read(n int64) error {
	if m := ev.e.opts.MaxBytesRead; m > 0 && ev.bytesRead.Add(n) > m {
		return fmt.Errorf("%w: the query would read too many bytes (limit: %d bytes, max_query_bytes_read); narrow the selector or the time range", ErrLimit, m)
	}
	return nil
}

// chargeStream accounts a stream selected by the store before any of its
// chunks is read: its memory, and the bytes of its chunks in range against
// max_query_bytes_read (an upper bound, as Loki estimates it from index
// stats; chunks ruled out by their blooms are not counted).
func (ev *evaluator) chargeStream(ls labels.Labels, chunks int, rawBytes int64) error {
	if err := ev.read(rawBytes); err != nil {
		return err
	}
	return ev.charge(int64(memStream+24*chunks) + 2*int64(ls.ByteSize()))
}

func (ev *evaluator) seriesLimitErr() error {
	return fmt.Errorf("%w: maximum of series (%d) reached for a single query", ErrLimit, ev.e.opts.MaxSeries)
}

// Per-object estimates for charge, in bytes.
const (
	memStream = 160 // a selected stream and its chunk handles
	memSeries = 200 // a series: labels, key, map of windows
	memWindow = 120 // one window accumulator and its map slot
	memValue  = 16
	memLine   = 80 // a kept log line besides its bytes
)

// pushdown returns the hints for the store and the stages left to run here:
// every line filter of the leading filter section is done by the store.
func pushdown(sel *LogSelectorExpr) (logstore.SelectHints, []Stage) {
	contains, filter, md := storeHints(sel.Pipeline)
	var rest []Stage
	leading := true
	for _, st := range sel.Pipeline {
		switch st.(type) {
		case *LineFilter:
			if leading {
				continue
			}
		case *LabelFilterStage:
		default:
			leading = false
		}
		rest = append(rest, st)
	}
	return logstore.SelectHints{Contains: contains, Filter: filter, Metadata: md}, rest
}

type logLine struct {
	ts     int64
	line   string
	lbls   labels.Labels
	stream int
	cat    *EntryLabels // with Params.Categorize (a pointer: most queries do not categorise)
}

func (ev *evaluator) logQuery(sel *LogSelectorExpr) (Streams, error) {
	mint, maxt := ev.p.Start.UnixNano(), ev.p.End.UnixNano()
	if ev.p.Instant {
		mint = 0
		maxt++
	}
	limit := ev.p.Limit
	if limit <= 0 {
		limit = 100
	}
	q, err := ev.st.Querier(mint, maxt)
	if err != nil {
		return nil, fmt.Errorf("open querier: %w", err)
	}
	defer q.Close()
	hints, stages := pushdown(sel)
	hints.Start, hints.End, hints.Backward = mint, maxt, ev.p.Backward
	hints.Charge = ev.chargeStream
	ss := q.Select(ev.ctx, hints, sel.Matchers...)
	better := func(a, b logLine) int { // sort order of the result
		c := cmpI64(a.ts, b.ts)
		if ev.p.Backward {
			c = -c
		}
		return c
	}
	type part struct {
		kept  []logLine
		stats Stats
	}
	parts, err := forStreams(ev.ctx, ss, func(s *logstore.Stream, w *worker[part]) error {
		st := &w.acc.stats
		st.Streams++
		c, _, _ := s.ChunkStats()
		st.Chunks += c
		st.StoredBytes += s.StoredBytes()
		it := s.Iterator(ev.ctx)
		defer it.Close()
		n := 0
		var lastTs int64
		haveLast := false
		for n < limit && it.Next() {
			ent := it.At()
			st.Lines++
			st.Bytes += int64(len(ent.Line))
			st.MetadataBytes += metadataBytes(ent.Metadata)
			w.ls.reset(s.Labels, ent.Metadata)
			w.pc.ts = ent.Timestamp
			line, ok := process(stages, &w.pc, ent.Line, &w.ls)
			if !ok {
				continue
			}
			if ev.p.Interval > 0 && haveLast {
				d := ent.Timestamp - lastTs
				if d < 0 {
					d = -d
				}
				if d < int64(ev.p.Interval) {
					continue
				}
			}
			lastTs, haveLast = ent.Timestamp, true
			st.PostFilter++
			if err := ev.charge(int64(memLine + len(line))); err != nil {
				return err
			}
			ll := logLine{ts: ent.Timestamp, line: strings.Clone(line)}
			if ev.p.Categorize {
				var cat EntryLabels
				ll.lbls, cat = categorize(&w.ls, ent.Metadata)
				ll.cat = &cat
			} else {
				ll.lbls = w.ls.labels()
			}
			w.acc.kept = append(w.acc.kept, ll)
			n++
		}
		if len(w.acc.kept) > 2*limit {
			slices.SortStableFunc(w.acc.kept, better)
			var freed int64
			for _, l := range w.acc.kept[limit:] {
				freed += int64(memLine + len(l.line))
			}
			w.acc.kept = slices.Clip(w.acc.kept[:limit])
			ev.charge(-freed) // no longer held
		}
		return it.Err()
	})
	if err != nil {
		return nil, err
	}
	var kept []logLine
	for _, pt := range parts {
		kept = append(kept, pt.kept...)
		ev.stats.add(pt.stats)
	}
	slices.SortStableFunc(kept, better)
	if len(kept) > limit {
		kept = kept[:limit]
	}
	ev.stats.Returned = int64(len(kept))
	groups := map[string]int{}
	var out Streams
	for _, l := range kept {
		k := l.lbls.String()
		i, ok := groups[k]
		if !ok {
			i = len(out)
			groups[k] = i
			out = append(out, StreamResult{Labels: l.lbls})
		}
		out[i].Entries = append(out[i].Entries, logstore.Entry{Timestamp: l.ts, Line: l.line})
		if ev.p.Categorize {
			out[i].Categories = append(out[i].Categories, *l.cat)
		}
	}
	slices.SortFunc(out, func(a, b StreamResult) int { return labels.Compare(a.Labels, b.Labels) })
	return out, nil
}

func cmpI64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// stepValues is an expression's value at every step: scalars or vectors.
type stepValues struct {
	scalar bool
	s      []float64
	v      []Vector
}

func (ev *evaluator) metricQuery(expr Expr) (Value, error) {
	if ev.p.Instant || ev.p.Step <= 0 {
		ev.steps = []int64{ev.p.End.UnixNano()}
	} else {
		// Counted before anything is allocated: a 30-day range at a 1 ms
		// step would otherwise build a 2.6-billion-entry step slice.
		n := Points(ev.p.Start, ev.p.End, ev.p.Step)
		if n == 0 {
			return Matrix{}, nil // end before start: nothing to evaluate
		}
		if n > MaxPoints {
			return nil, ErrResolution
		}
		first, last := AlignSteps(ev.p.Start, ev.p.End, ev.p.Step)
		ev.steps = make([]int64, 0, n)
		for t := first; t <= last; t += int64(ev.p.Step) {
			ev.steps = append(ev.steps, t)
		}
	}
	inner := expr
	for {
		p, ok := inner.(*ParenExpr)
		if !ok {
			break
		}
		inner = p.Inner
	}
	switch x := inner.(type) {
	case *RangeAggExpr:
		ev.seriesIsResult = true
	case *VectorAggExpr:
		if _, ok := groupingPushdown(x.Op, x.Left); ok && x.Op != "topk" && x.Op != "bottomk" && x.Op != "sort" && x.Op != "sort_desc" {
			ev.seriesIsResult = true
		}
	}
	sv, err := ev.eval(expr)
	if err != nil {
		return nil, err
	}
	if !sv.scalar {
		if err := checkPipelineErrors(sv.v); err != nil {
			return nil, err
		}
	}
	if ev.p.Instant {
		if sv.scalar {
			return Scalar{T: ev.steps[0] / 1e6, V: sv.s[0]}, nil
		}
		vec := sv.v[0]
		if ev.e.opts.MaxSeries > 0 && len(vec) > ev.e.opts.MaxSeries {
			return nil, ev.seriesLimitErr()
		}
		return vec, nil
	}
	byKey := map[string]int{}
	var m Matrix
	for i, t := range ev.steps {
		if sv.scalar {
			if len(m) == 0 {
				m = append(m, Series{Metric: labels.EmptyLabels()})
			}
			m[0].Points = append(m[0].Points, Point{T: t / 1e6, V: sv.s[i]})
			continue
		}
		for _, s := range sv.v[i] {
			k := s.Metric.String()
			j, ok := byKey[k]
			if !ok {
				j = len(m)
				byKey[k] = j
				m = append(m, Series{Metric: s.Metric})
				if ev.e.opts.MaxSeries > 0 && len(m) > ev.e.opts.MaxSeries {
					return nil, ev.seriesLimitErr()
				}
			}
			if err := ev.charge(memValue); err != nil {
				return nil, err
			}
			m[j].Points = append(m[j].Points, Point{T: t / 1e6, V: s.V})
		}
	}
	slices.SortFunc(m, func(a, b Series) int { return labels.Compare(a.Metric, b.Metric) })
	return m, nil
}

// checkPipelineErrors fails a metric query whose result still carries an
// __error__ label, with Loki's message. Errors that an aggregation grouped
// away, or a label filter or drop removed, do not fail it.
func checkPipelineErrors(steps []Vector) error {
	for _, vec := range steps {
		for _, s := range vec {
			if errv := s.Metric.Get(ErrorLabel); errv != "" {
				return PipelineError(errv, s.Metric)
			}
		}
	}
	return nil
}

// PipelineError is Loki's error for a metric query whose result series
// carries an __error__ label; its text starts with "pipeline error".
func PipelineError(errv string, series labels.Labels) error {
	return fmt.Errorf("pipeline error: '%s' for series: '%s'. Use a label filter to intentionally skip this error. (e.g | __error__!=\"%s\"). To skip all potential errors you can match empty errors.(e.g __error__=\"\") The label filter can also be specified after unwrap. (e.g | unwrap latency | __error__=\"\" )", errv, series, errv)
}

func (ev *evaluator) eval(expr Expr) (stepValues, error) {
	if err := ev.ctx.Err(); err != nil {
		return stepValues{}, err
	}
	switch e := expr.(type) {
	case *ParenExpr:
		return ev.eval(e.Inner)
	case *LiteralExpr:
		s := make([]float64, len(ev.steps))
		for i := range s {
			s[i] = e.Val
		}
		return stepValues{scalar: true, s: s}, nil
	case *VectorExpr:
		v := make([]Vector, len(ev.steps))
		for i, t := range ev.steps {
			v[i] = Vector{{Metric: labels.EmptyLabels(), T: t / 1e6, V: e.Val}}
		}
		return stepValues{v: v}, nil
	case *RangeAggExpr:
		return ev.rangeAgg(e, nil)
	case *VectorAggExpr:
		return ev.vectorAgg(e)
	case *BinOpExpr:
		return ev.binOp(e)
	case *LabelReplaceExpr:
		return ev.labelReplace(e)
	case *LogSelectorExpr:
		return stepValues{}, errors.New("a log query cannot be used as a metric query: wrap it in a range aggregation such as count_over_time")
	}
	return stepValues{}, fmt.Errorf("unsupported expression %T", expr)
}

type rangeSample struct {
	t int64
	v float64
}

type seriesSamples struct {
	lbls labels.Labels
	key  string
	win  map[int]*windowAcc // by step index; only windows with samples
}

func (ev *evaluator) rangeAgg(e *RangeAggExpr, pushed *Grouping) (stepValues, error) {
	r := e.Left
	iv, off := int64(r.Interval), int64(r.Offset)
	mint := ev.steps[0] - off - iv + 1
	maxt := ev.steps[len(ev.steps)-1] - off + 1
	q, err := ev.st.Querier(mint, maxt)
	if err != nil {
		return stepValues{}, fmt.Errorf("open querier: %w", err)
	}
	defer q.Close()
	hints, stages := pushdown(r.Left)
	stages = narrowParsers(stages, r.Unwrap, e.Grouping, pushed)
	hints.Start, hints.End = mint, maxt
	hints.Charge = ev.chargeStream
	// Samples keep no line: a sample's labels are copied when its series
	// is made (labels.Labels own their strings), so chunk buffers can be
	// reused as soon as their lines are processed.
	hints.ReuseBuffers = true
	ss := q.Select(ev.ctx, hints, r.Left.Matchers...)
	// The series limit can be checked as series appear only where they are
	// the result's series; seriesIsResult holds for the outermost range
	// aggregation alone.
	checkSeries := ev.seriesIsResult && ev.e.opts.MaxSeries > 0
	ev.seriesIsResult = false
	var nSeries atomic.Int64
	type part struct {
		byHash map[uint64][]*seriesSamples
		series []*seriesSamples
		stats  Stats
	}
	var total atomic.Int64
	// Quantiles and counter rates need every value of a window; the other
	// functions fold samples into per-window accumulators as they stream by.
	keepValues := e.Op == "quantile_over_time" || e.Op == "rate_counter"
	bytesOp := e.Op == "bytes_over_time" || e.Op == "bytes_rate"
	fast := len(stages) == 0 && r.Unwrap == nil && !keepValues
	// Counts and line bytes whose windows start and end on whole seconds
	// come from the chunks' per-second, per-metadata-set summaries,
	// without reading a line (ADR 0097).
	summarized := !ev.e.noSummaries && fast && summaryOp(e.Op) && ev.windowsOnSummaryBuckets(iv, off)
	// A narrowed logfmt parser followed by label filters only: each
	// stream runs the stages once per distinct value text (ADR 0103).
	var mp *memoPlan
	if !ev.e.noMemo {
		mp = newMemoPlan(stages, r.Unwrap, keepValues)
	}
	parts, err := forStreams(ev.ctx, ss, func(s *logstore.Stream, w *worker[part]) error {
		if w.acc.byHash == nil {
			w.acc.byHash = map[uint64][]*seriesSamples{}
		}
		st := &w.acc.stats
		st.Streams++
		c, _, _ := s.ChunkStats()
		st.Chunks += c
		st.StoredBytes += s.StoredBytes()
		ls := &w.ls
		// seriesOf finds or makes the series of the labels in ls.
		seriesOf := func() (*seriesSamples, error) {
			if e.Grouping != nil {
				ls.applyGrouping(e.Grouping)
			}
			if pushed != nil {
				ls.applyGrouping(pushed)
			}
			h := ls.hash()
			for _, c := range w.acc.byHash[h] {
				if ls.equal(c.lbls) {
					return c, nil
				}
			}
			lbls := ls.labels()
			sr := &seriesSamples{lbls: lbls, key: lbls.String(), win: map[int]*windowAcc{}}
			// Workers may each hold the same series, so this count is
			// an upper bound; it is exact with one worker.
			if checkSeries && nSeries.Add(1) > int64(ev.e.opts.MaxSeries)*int64(max(1, runtime.GOMAXPROCS(0))) {
				return nil, ev.seriesLimitErr()
			}
			if err := ev.charge(int64(memSeries + 2*len(sr.key))); err != nil {
				return nil, err
			}
			w.acc.byHash[h] = append(w.acc.byHash[h], sr)
			w.acc.series = append(w.acc.series, sr)
			return sr, nil
		}
		if summarized {
			// One series per metadata set of the stream (the set, grouped).
			type pendingGroup struct {
				sr     *seriesSamples
				lo, hi int
				ts     int64
				n      int
				v      float64
			}
			var pend pendingGroup
			flush := func() error {
				if pend.sr == nil {
					return nil
				}
				err := ev.accumulateN(pend.sr, pend.lo, pend.hi, pend.ts, pend.n, pend.v)
				pend = pendingGroup{}
				return err
			}
			var bySet map[string]*seriesSamples
			var lastSr *seriesSamples
			var lastKey string
			var cur stepCursor
			var ferr error
			rest, sst, err := s.SplitSummarized(func(b logstore.SummaryBucketCounts) {
				if ferr != nil {
					return
				}
				sr := lastSr
				if sr == nil || b.MetadataKey != lastKey {
					sr = bySet[b.MetadataKey]
				}
				if sr == nil {
					ls.reset(s.Labels, b.Metadata)
					if sr, ferr = seriesOf(); ferr != nil {
						return
					}
					if bySet == nil {
						bySet = map[string]*seriesSamples{}
					}
					bySet[b.MetadataKey] = sr
				}
				lastSr, lastKey = sr, b.MetadataKey
				v := float64(b.Entries)
				if bytesOp {
					v = float64(b.LineBytes)
				}
				// Consecutive buckets of one series in the same windows
				// (sixty of them for a 1m range at 60 s steps) are added
				// to the windows once.
				lo, hi := ev.stepRange(&cur, b.End, off, iv)
				if pend.sr == sr && pend.lo == lo && pend.hi == hi {
					pend.n += b.Entries
					pend.v += v
				} else {
					if ferr = flush(); ferr != nil {
						return
					}
					pend = pendingGroup{sr: sr, lo: lo, hi: hi, ts: b.End, n: b.Entries, v: v}
				}
				if n := total.Add(int64(b.Entries)); ev.e.opts.MaxSamples > 0 && n > int64(ev.e.opts.MaxSamples) {
					ferr = fmt.Errorf("%w: query processes more than %d samples", ErrLimit, ev.e.opts.MaxSamples)
				}
			})
			if err != nil {
				return err
			}
			if ferr == nil {
				ferr = flush()
			}
			if ferr != nil {
				return ferr
			}
			st.Lines += sst.Entries
			st.PostFilter += sst.Entries
			st.Bytes += sst.LineBytes
			st.MetadataBytes += sst.MetadataBytes
			st.SummaryChunks += sst.Chunks
			if rest == nil {
				return nil
			}
			s = rest
		}
		it := s.Iterator(ev.ctx)
		defer it.Close()
		// Chunks that claim every line is a clean JSON object let the
		// json memo stop reading a line early (ADR 0109).
		jit, _ := it.(interface{ JSONObjects() bool })
		// Without pipeline stages or unwrap, a sample's labels are the
		// stream's plus the entry's metadata: entries whose metadata equals
		// the previous entry's go to the same series without rebuilding,
		// grouping and hashing their labels (ADR 0096).
		var lastSr *seriesSamples
		var lastMeta labels.Labels
		var cur stepCursor
		var memo *streamMemo
		if mp != nil {
			memo = newStreamMemo(mp.p, s.Labels)
		}
		for it.Next() {
			ent := it.At()
			st.Lines++
			st.Bytes += int64(len(ent.Line))
			st.MetadataBytes += metadataBytes(ent.Metadata)
			if fast && lastSr != nil && labels.Equal(ent.Metadata, lastMeta) {
				v := 1.0
				if bytesOp {
					v = float64(len(ent.Line))
				}
				st.PostFilter++
				if err := ev.accumulateAt(&cur, lastSr, ent.Timestamp, v, off, iv, false); err != nil {
					return err
				}
				if n := total.Add(1); ev.e.opts.MaxSamples > 0 && n > int64(ev.e.opts.MaxSamples) {
					return fmt.Errorf("%w: query processes more than %d samples", ErrLimit, ev.e.opts.MaxSamples)
				}
				continue
			}
			if memo != nil {
				if key, ok := memo.lineKey(mp.p, ent.Line, jit); ok {
					if out := memo.forMetadata(ent.Metadata); out != nil {
						// Consecutive lines mostly repeat the previous
						// line's key: its outcome without a map lookup.
						o := memo.prevOut
						if !memo.prevOK || memo.prevSet != memo.last || string(memo.prevKey) != string(key) {
							var hit bool
							o, hit = out[string(key)]
							if !hit {
								ls.reset(s.Labels, ent.Metadata)
								w.pc.ts = ent.Timestamp
								if _, pass := process(stages, &w.pc, ent.Line, ls); pass {
									sr, err := seriesOf()
									if err != nil {
										return err
									}
									o.sr = sr
								}
								if len(out) < memoMaxKeys {
									out[string(key)] = o
								}
							}
							memo.prevOK, memo.prevSet, memo.prevKey, memo.prevOut = true, memo.last, append(memo.prevKey[:0], key...), o
						}
						if o.sr == nil {
							continue
						}
						v := 1.0
						if bytesOp {
							v = float64(len(ent.Line))
						}
						st.PostFilter++
						if err := ev.accumulateAt(&cur, o.sr, ent.Timestamp, v, off, iv, false); err != nil {
							return err
						}
						if n := total.Add(1); ev.e.opts.MaxSamples > 0 && n > int64(ev.e.opts.MaxSamples) {
							return fmt.Errorf("%w: query processes more than %d samples", ErrLimit, ev.e.opts.MaxSamples)
						}
						continue
					}
				}
			}
			ls.reset(s.Labels, ent.Metadata)
			w.pc.ts = ent.Timestamp
			line, ok := process(stages, &w.pc, ent.Line, ls)
			if !ok {
				continue
			}
			var v float64 = 1
			switch {
			case r.Unwrap != nil:
				x, ok := unwrapValue(r.Unwrap, ls)
				if !ok {
					continue // no value to unwrap
				}
				v = x
				pass := true
				for _, f := range r.Unwrap.PostFilters {
					if !evalLabelFilter(f, ls) {
						pass = false
						break
					}
				}
				if !pass {
					continue
				}
				ls.del(r.Unwrap.Label)
			case e.Op == "bytes_over_time" || e.Op == "bytes_rate":
				v = float64(len(line))
			}
			st.PostFilter++
			// __error__ and __error_details__ stay labels of the sample:
			// an aggregation that groups them away answers, one that keeps
			// them fails the query (checkPipelineErrors).
			sr, err := seriesOf()
			if err != nil {
				return err
			}
			if fast {
				lastSr, lastMeta = sr, ent.Metadata
			}
			if err := ev.accumulateAt(&cur, sr, ent.Timestamp, v, off, iv, keepValues); err != nil {
				return err
			}
			if n := total.Add(1); ev.e.opts.MaxSamples > 0 && n > int64(ev.e.opts.MaxSamples) {
				return fmt.Errorf("%w: query processes more than %d samples", ErrLimit, ev.e.opts.MaxSamples)
			}
		}
		return it.Err()
	})
	if err != nil {
		return stepValues{}, err
	}
	series := map[string]*seriesSamples{}
	for _, pt := range parts {
		ev.stats.add(pt.stats)
		for _, sr := range pt.series {
			have := series[sr.key]
			if have == nil {
				series[sr.key] = sr
				continue
			}
			for i, w := range sr.win {
				if have.win[i] == nil {
					have.win[i] = w
				} else {
					have.win[i].merge(w)
				}
			}
		}
	}
	out := make([]Vector, len(ev.steps))
	if e.Op == "absent_over_time" {
		for i, t := range ev.steps {
			present := false
			for _, sr := range series {
				if sr.win[i] != nil {
					present = true
					break
				}
			}
			if !present {
				out[i] = Vector{{Metric: absentLabels(r.Left.Matchers), T: t / 1e6, V: 1}}
			}
		}
		return stepValues{v: out}, nil
	}
	for _, k := range sortedSeriesKeys(series) {
		sr := series[k]
		for i, t := range ev.steps {
			w := sr.win[i]
			if w == nil {
				continue
			}
			if v, ok := w.value(e.Op, e.Param, r.Interval, r.Unwrap != nil); ok {
				out[i] = append(out[i], Sample{Metric: sr.lbls, T: t / 1e6, V: v})
			}
		}
	}
	return stepValues{v: out}, nil
}

// stepCursor remembers the first step at or after the previous sample's
// time: a stream's samples come in time order, so the next sample's first
// step is usually the same or the next one, found without a binary search.
type stepCursor struct {
	lo    int
	valid bool
}

// accumulateAt adds a sample to every step whose window (t-off-range, t-off]
// holds it.
func (ev *evaluator) accumulateAt(c *stepCursor, sr *seriesSamples, ts int64, v float64, off, iv int64, keepValues bool) error {
	t := ts + off
	steps := ev.steps
	lo := c.lo
	switch {
	case c.valid && lo < len(steps) && steps[lo] >= t && (lo == 0 || steps[lo-1] < t):
	case c.valid && lo+1 < len(steps) && steps[lo+1] >= t && steps[lo] < t:
		lo++
	default:
		lo = sort.Search(len(steps), func(k int) bool { return steps[k] >= t })
	}
	c.lo, c.valid = lo, true
	var held int64
	for k := lo; k < len(ev.steps) && ev.steps[k] < ts+off+iv; k++ {
		w := sr.win[k]
		if w == nil {
			w = &windowAcc{min: math.Inf(1), max: math.Inf(-1), firstT: ts, lastT: ts, first: v, last: v}
			sr.win[k] = w
			held += memWindow
		}
		w.add(ts, v, keepValues)
		if keepValues {
			held += memValue
		}
	}
	if held > 0 {
		return ev.charge(held)
	}
	return nil
}

// stepRange returns the steps [lo, hi) whose windows (t-off-range, t-off]
// hold a sample at ts (t = ts + off), moving the cursor as accumulateAt does.
func (ev *evaluator) stepRange(c *stepCursor, ts, off, iv int64) (lo, hi int) {
	t := ts + off
	steps := ev.steps
	lo = c.lo
	switch {
	case c.valid && lo < len(steps) && steps[lo] >= t && (lo == 0 || steps[lo-1] < t):
	case c.valid && lo+1 < len(steps) && steps[lo+1] >= t && steps[lo] < t:
		lo++
	default:
		lo = sort.Search(len(steps), func(k int) bool { return steps[k] >= t })
	}
	c.lo, c.valid = lo, true
	hi = lo
	for hi < len(steps) && steps[hi] < t+iv {
		hi++
	}
	return lo, hi
}

// accumulateN adds n samples at ts whose values sum to v (summary buckets'
// counts or line bytes) to the steps [lo, hi). Only the count and the sum
// are kept: it serves count_over_time, rate, bytes_over_time, bytes_rate
// and absent_over_time (summaryOp).
func (ev *evaluator) accumulateN(sr *seriesSamples, lo, hi int, ts int64, n int, v float64) error {
	var held int64
	for k := lo; k < hi; k++ {
		w := sr.win[k]
		if w == nil {
			w = &windowAcc{min: math.Inf(1), max: math.Inf(-1), firstT: ts, lastT: ts}
			sr.win[k] = w
			held += memWindow
		}
		w.n += n
		w.sum += v
	}
	if held > 0 {
		return ev.charge(held)
	}
	return nil
}

// summaryOp reports whether a range aggregation (without pipeline stages
// and unwrap) needs only counts and line bytes per window.
func summaryOp(op string) bool {
	switch op {
	case "count_over_time", "rate", "bytes_over_time", "bytes_rate", "absent_over_time":
		return true
	}
	return false
}

// windowsOnSummaryBuckets reports whether every window bound of the query,
// (t-off-range, t-off] for each step t, is a multiple of the chunk
// summaries' bucket, so each bucket lies wholly inside or outside a window.
func (ev *evaluator) windowsOnSummaryBuckets(iv, off int64) bool {
	const w = logstore.SummaryBucket
	if iv%w != 0 || off%w != 0 || ev.steps[0]%w != 0 {
		return false
	}
	return len(ev.steps) == 1 || (ev.steps[1]-ev.steps[0])%w == 0
}

// windowAcc folds the samples of one window of one series.
type windowAcc struct {
	n             int
	sum, sumSq    float64
	min, max      float64
	first, last   float64
	firstT, lastT int64
	values        []rangeSample // only for quantile_over_time and rate_counter
}

func (w *windowAcc) add(ts int64, v float64, keep bool) {
	w.n++
	w.sum += v
	w.sumSq += v * v
	w.min = math.Min(w.min, v)
	w.max = math.Max(w.max, v)
	if ts < w.firstT {
		w.first, w.firstT = v, ts
	}
	if ts >= w.lastT {
		w.last, w.lastT = v, ts
	}
	if keep {
		w.values = append(w.values, rangeSample{ts, v})
	}
}

func (w *windowAcc) merge(o *windowAcc) {
	w.n += o.n
	w.sum += o.sum
	w.sumSq += o.sumSq
	w.min = math.Min(w.min, o.min)
	w.max = math.Max(w.max, o.max)
	if o.firstT < w.firstT {
		w.first, w.firstT = o.first, o.firstT
	}
	if o.lastT >= w.lastT {
		w.last, w.lastT = o.last, o.lastT
	}
	w.values = append(w.values, o.values...)
}

func (w *windowAcc) value(op string, param float64, iv time.Duration, unwrapped bool) (float64, bool) {
	secs := iv.Seconds()
	switch op {
	case "count_over_time":
		return float64(w.n), true
	case "rate":
		if unwrapped {
			return w.sum / secs, true
		}
		return float64(w.n) / secs, true
	case "bytes_over_time", "sum_over_time":
		return w.sum, true
	case "bytes_rate":
		return w.sum / secs, true
	case "avg_over_time":
		return w.sum / float64(w.n), true
	case "max_over_time":
		return w.max, true
	case "min_over_time":
		return w.min, true
	case "first_over_time":
		return w.first, true
	case "last_over_time":
		return w.last, true
	case "stdvar_over_time", "stddev_over_time":
		mean := w.sum / float64(w.n)
		v := math.Max(0, w.sumSq/float64(w.n)-mean*mean)
		if op == "stddev_over_time" {
			return math.Sqrt(v), true
		}
		return v, true
	case "quantile_over_time":
		vals := make([]float64, len(w.values))
		for i, p := range w.values {
			vals[i] = p.v
		}
		return quantile(param, vals), true
	case "rate_counter":
		s := slices.Clone(w.values)
		slices.SortStableFunc(s, func(a, b rangeSample) int { return cmpI64(a.t, b.t) })
		var inc float64
		for i := 1; i < len(s); i++ {
			if s[i].v < s[i-1].v {
				inc += s[i].v // counter reset
			} else {
				inc += s[i].v - s[i-1].v
			}
		}
		return inc / secs, true
	}
	return 0, false
}

func sortedSeriesKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func absentLabels(ms []*labels.Matcher) labels.Labels {
	b := labels.NewScratchBuilder(len(ms))
	seen := map[string]bool{}
	for _, m := range ms {
		if m.Type == labels.MatchEqual && !seen[m.Name] {
			b.Add(m.Name, m.Value)
			seen[m.Name] = true
		}
	}
	b.Sort()
	return b.Labels()
}

// quantile is Prometheus' linear interpolation between closest ranks.
func quantile(q float64, vals []float64) float64 {
	if len(vals) == 0 || math.IsNaN(q) {
		return math.NaN()
	}
	if q < 0 {
		return math.Inf(-1)
	}
	if q > 1 {
		return math.Inf(1)
	}
	slices.Sort(vals)
	n := float64(len(vals))
	rank := q * (n - 1)
	lo := math.Max(0, math.Floor(rank))
	hi := math.Min(n-1, lo+1)
	w := rank - lo
	return vals[int(lo)]*(1-w) + vals[int(hi)]*w
}

func groupLabels(ls labels.Labels, g *Grouping) labels.Labels {
	if g.Without {
		b := labels.NewBuilder(ls)
		b.Del(g.Labels...)
		return b.Labels()
	}
	b := labels.NewBuilder(ls)
	b.Keep(g.Labels...)
	return b.Labels()
}

// groupingPushdown reports whether `op by (g) (inner)` equals inner grouped
// by g while it accumulates: sums of counts, sums and rates, and max/min of
// max/min. It keeps high-cardinality parsed labels (trace IDs…) from ever
// becoming series of their own.
func groupingPushdown(op string, inner Expr) (*RangeAggExpr, bool) {
	ra, ok := unparen(inner).(*RangeAggExpr)
	if !ok || ra.Grouping != nil {
		return nil, false
	}
	switch op {
	case "sum":
		switch ra.Op {
		case "count_over_time", "rate", "bytes_rate", "bytes_over_time", "sum_over_time":
			return ra, true
		}
	case "max":
		return ra, ra.Op == "max_over_time"
	case "min":
		return ra, ra.Op == "min_over_time"
	}
	return nil, false
}

func (ev *evaluator) vectorAgg(e *VectorAggExpr) (stepValues, error) {
	var in stepValues
	var err error
	if ra, ok := groupingPushdown(e.Op, e.Left); ok {
		g := e.Grouping
		if g == nil {
			g = &Grouping{} // sum(...) keeps no labels
		}
		in, err = ev.rangeAgg(ra, g)
	} else {
		in, err = ev.eval(e.Left)
	}
	if err != nil {
		return stepValues{}, err
	}
	if in.scalar {
		return stepValues{}, fmt.Errorf("%s needs a vector, not a scalar", e.Op)
	}
	g := e.Grouping
	if g == nil {
		g = &Grouping{}
	}
	out := make([]Vector, len(ev.steps))
	for i, vec := range in.v {
		groups := map[string][]Sample{}
		glbl := map[string]labels.Labels{}
		var order []string
		for _, s := range vec {
			gl := groupLabels(s.Metric, g)
			k := gl.String()
			if _, ok := groups[k]; !ok {
				order = append(order, k)
				glbl[k] = gl
			}
			groups[k] = append(groups[k], s)
		}
		slices.Sort(order)
		t := ev.steps[i] / 1e6
		switch e.Op {
		case "topk", "bottomk":
			for _, k := range order {
				ss := slices.Clone(groups[k])
				slices.SortStableFunc(ss, func(a, b Sample) int {
					if e.Op == "topk" {
						return cmpF(b.V, a.V)
					}
					return cmpF(a.V, b.V)
				})
				out[i] = append(out[i], ss[:min(e.Param, len(ss))]...)
			}
			continue
		case "sort", "sort_desc":
			ss := slices.Clone(vec)
			slices.SortStableFunc(ss, func(a, b Sample) int {
				if e.Op == "sort" {
					return cmpF(a.V, b.V)
				}
				return cmpF(b.V, a.V)
			})
			out[i] = ss
			continue
		}
		for _, k := range order {
			ss := groups[k]
			var v float64
			switch e.Op {
			case "sum":
				for _, s := range ss {
					v += s.V
				}
			case "avg":
				for _, s := range ss {
					v += s.V
				}
				v /= float64(len(ss))
			case "count":
				v = float64(len(ss))
			case "min":
				v = math.Inf(1)
				for _, s := range ss {
					v = math.Min(v, s.V)
				}
			case "max":
				v = math.Inf(-1)
				for _, s := range ss {
					v = math.Max(v, s.V)
				}
			case "stddev", "stdvar":
				var mean, m2 float64
				for j, s := range ss {
					d := s.V - mean
					mean += d / float64(j+1)
					m2 += d * (s.V - mean)
				}
				v = m2 / float64(len(ss))
				if e.Op == "stddev" {
					v = math.Sqrt(v)
				}
			}
			out[i] = append(out[i], Sample{Metric: glbl[k], T: t, V: v})
		}
	}
	return stepValues{v: out}, nil
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (ev *evaluator) binOp(e *BinOpExpr) (stepValues, error) {
	l, err := ev.eval(e.LHS)
	if err != nil {
		return stepValues{}, err
	}
	r, err := ev.eval(e.RHS)
	if err != nil {
		return stepValues{}, err
	}
	switch e.Op {
	case "and", "or", "unless":
		if l.scalar || r.scalar {
			return stepValues{}, fmt.Errorf("set operator %q not allowed in binary scalar expression", e.Op)
		}
	}
	if l.scalar && r.scalar {
		out := make([]float64, len(ev.steps))
		for i := range out {
			v, keep := arith(e.Op, l.s[i], r.s[i], true)
			if !keep {
				v = 0
			}
			out[i] = v
		}
		return stepValues{scalar: true, s: out}, nil
	}
	out := make([]Vector, len(ev.steps))
	for i := range ev.steps {
		switch {
		case r.scalar:
			for _, s := range l.v[i] {
				if v, keep := arith(e.Op, s.V, r.s[i], e.Bool); keep {
					if isComparison(e.Op) && !e.Bool {
						v = s.V
					}
					out[i] = append(out[i], Sample{Metric: s.Metric, T: s.T, V: v})
				}
			}
		case l.scalar:
			for _, s := range r.v[i] {
				if v, keep := arith(e.Op, l.s[i], s.V, e.Bool); keep {
					if isComparison(e.Op) && !e.Bool {
						v = s.V
					}
					out[i] = append(out[i], Sample{Metric: s.Metric, T: s.T, V: v})
				}
			}
		default:
			v, err := vectorBinOp(e, l.v[i], r.v[i])
			if err != nil {
				return stepValues{}, err
			}
			out[i] = v
		}
	}
	return stepValues{v: out}, nil
}

func signature(ls labels.Labels, m *VectorMatching) string {
	if m == nil {
		return ls.String()
	}
	b := labels.NewBuilder(ls)
	if m.On {
		b.Keep(m.Labels...)
	} else {
		b.Del(m.Labels...)
	}
	return b.Labels().String()
}

// vectorBinOp applies a binary operator between two vectors, as PromQL
// does: one-to-one by default, many-to-one with group_left (the right side
// is the "one" side) and one-to-many with group_right.
func vectorBinOp(e *BinOpExpr, l, r Vector) (Vector, error) {
	switch e.Op {
	case "and", "or", "unless":
		return setBinOp(e, l, r), nil
	}
	m := e.Matching
	card := ""
	if m != nil {
		card = m.Card
	}
	many, one := l, r
	if card == "group_right" {
		many, one = r, l
	}
	ones := make(map[string]Sample, len(one))
	for _, s := range one {
		k := signature(s.Metric, m)
		if _, dup := ones[k]; dup {
			side := "right"
			if card == "group_right" {
				side = "left"
			}
			return nil, fmt.Errorf("found duplicate series for the match group %s on the %s hand-side of the operation: [%s, %s];many-to-many matching not allowed: matching labels must be unique on one side", k, side, ones[k].Metric, s.Metric)
		}
		ones[k] = s
	}
	var out Vector
	seen := map[string]bool{}
	for _, s := range many {
		k := signature(s.Metric, m)
		os, ok := ones[k]
		if !ok {
			continue
		}
		if card == "" {
			if seen[k] {
				return nil, fmt.Errorf("multiple matches for labels %s: many-to-one matching must be explicit (group_left/group_right)", k)
			}
			seen[k] = true
		}
		lv, rv := s.V, os.V
		if card == "group_right" {
			lv, rv = rv, lv
		}
		v, keep := arith(e.Op, lv, rv, e.Bool)
		if !keep {
			continue
		}
		if isComparison(e.Op) && !e.Bool {
			v = lv
		}
		metric := resultMetric(s.Metric, os.Metric, m)
		if card != "" {
			rk := metric.String()
			if seen[rk] {
				return nil, fmt.Errorf("multiple matches for labels: grouping labels must ensure unique matches")
			}
			seen[rk] = true
		}
		out = append(out, Sample{Metric: metric, T: s.T, V: v})
	}
	return out, nil
}

// resultMetric gives the labels of a binary operation's result: for
// one-to-one matching the on() labels (or all but the ignoring() ones); for
// group_left/right the "many" side's labels plus the included labels taken
// from the "one" side.
func resultMetric(many, one labels.Labels, m *VectorMatching) labels.Labels {
	if m == nil {
		return many
	}
	b := labels.NewBuilder(many)
	if m.Card == "" {
		if m.On {
			b.Keep(m.Labels...)
		} else {
			b.Del(m.Labels...)
		}
	}
	for _, n := range m.Include {
		if v := one.Get(n); v != "" {
			b.Set(n, v)
		} else {
			b.Del(n)
		}
	}
	return b.Labels()
}

func setBinOp(e *BinOpExpr, l, r Vector) Vector {
	rs := make(map[string]bool, len(r))
	for _, s := range r {
		rs[signature(s.Metric, e.Matching)] = true
	}
	var out Vector
	switch e.Op {
	case "and":
		for _, s := range l {
			if rs[signature(s.Metric, e.Matching)] {
				out = append(out, s)
			}
		}
	case "unless":
		for _, s := range l {
			if !rs[signature(s.Metric, e.Matching)] {
				out = append(out, s)
			}
		}
	case "or":
		ls := map[string]bool{}
		for _, s := range l {
			ls[signature(s.Metric, e.Matching)] = true
			out = append(out, s)
		}
		for _, s := range r {
			if !ls[signature(s.Metric, e.Matching)] {
				out = append(out, s)
			}
		}
	}
	return out
}

// labelReplace is PromQL's label_replace at every step: where the anchored
// regexp matches the source label's value, the destination label is set to
// the expanded replacement (removed when that is empty).
func (ev *evaluator) labelReplace(e *LabelReplaceExpr) (stepValues, error) {
	in, err := ev.eval(e.Left)
	if err != nil {
		return stepValues{}, err
	}
	if in.scalar {
		return stepValues{}, errors.New("label_replace needs a vector, not a scalar")
	}
	out := make([]Vector, len(in.v))
	for i, vec := range in.v {
		seen := make(map[string]bool, len(vec))
		for _, s := range vec {
			src := s.Metric.Get(e.Src)
			if idx := e.re.FindStringSubmatchIndex(src); idx != nil {
				res := string(e.re.ExpandString(nil, e.Replacement, src, idx))
				b := labels.NewBuilder(s.Metric)
				if res == "" {
					b.Del(e.Dst)
				} else {
					b.Set(e.Dst, res)
				}
				s.Metric = b.Labels()
			}
			k := s.Metric.String()
			if seen[k] {
				return stepValues{}, errors.New("vector cannot contain metrics with the same labelset")
			}
			seen[k] = true
			out[i] = append(out[i], s)
		}
	}
	return stepValues{v: out}, nil
}

// arith applies op; for comparisons it reports whether the pair is kept
// (or, with returnBool, gives 0/1 and always keeps).
func arith(op string, a, b float64, returnBool bool) (float64, bool) {
	switch op {
	case "+":
		return a + b, true
	case "-":
		return a - b, true
	case "*":
		return a * b, true
	case "/":
		return a / b, true
	case "%":
		return math.Mod(a, b), true
	case "^":
		return math.Pow(a, b), true
	}
	ok := compare(op, a, b)
	if returnBool {
		if ok {
			return 1, true
		}
		return 0, true
	}
	return a, ok
}

func (s *Stats) add(o Stats) {
	s.Streams += o.Streams
	s.Chunks += o.Chunks
	s.Lines += o.Lines
	s.Bytes += o.Bytes
	s.MetadataBytes += o.MetadataBytes
	s.StoredBytes += o.StoredBytes
	s.PostFilter += o.PostFilter
	s.SummaryChunks += o.SummaryChunks
}

// worker is one goroutine's state while streams are evaluated in parallel:
// its own label scratch space and its own partial result.
type worker[T any] struct {
	ls  labelSet
	pc  pipelineCtx
	acc T
}

// forStreams runs fn over the selected streams on up to GOMAXPROCS workers
// and returns each worker's partial result. The first error stops the rest.
func forStreams[T any](ctx context.Context, ss logstore.StreamSet, fn func(*logstore.Stream, *worker[T]) error) ([]T, error) {
	var streams []*logstore.Stream
	for ss.Next() {
		streams = append(streams, ss.At())
	}
	if err := ss.Err(); err != nil {
		return nil, err
	}
	n := min(runtime.GOMAXPROCS(0), len(streams))
	if n <= 1 {
		w := &worker[T]{}
		for _, s := range streams {
			if err := fn(s, w); err != nil {
				return nil, err
			}
		}
		return []T{w.acc}, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	var errOnce sync.Once
	var firstErr error
	workers := make([]*worker[T], n)
	for i := range workers {
		w := &worker[T]{}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1)) - 1
				if k >= len(streams) || ctx.Err() != nil {
					return
				}
				if err := fn(streams[k], w); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]T, n)
	for i, w := range workers {
		out[i] = w.acc
	}
	return out, nil
}
