package tempoapi

import (
	"context"
	"errors"
	"fmt"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/traceql"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore"
)

// TraceQL metrics answers, in the JSON Tempo writes for its
// QueryRangeResponse and QueryInstantResponse: protobuf JSON, so 64-bit
// integers are strings and zero values (a sample's value 0, empty lists)
// are left out.
type metricsRangeResponse struct {
	Series  []rangeSeries `json:"series"`
	Metrics searchMetrics `json:"metrics"`
}

type rangeSeries struct {
	Labels     []attribute      `json:"labels,omitempty"`
	Samples    []metricsSample  `json:"samples,omitempty"`
	PromLabels string           `json:"promLabels,omitempty"`
	Exemplars  []metricExemplar `json:"exemplars,omitempty"`
}

type metricsSample struct {
	TimestampMs string  `json:"timestampMs"`
	Value       float64 `json:"value,omitempty"`
}

type metricExemplar struct {
	Labels      []attribute `json:"labels,omitempty"`
	Value       float64     `json:"value,omitempty"`
	TimestampMs string      `json:"timestampMs"`
}

type metricsInstantResponse struct {
	Series  []instantSeries `json:"series"`
	Metrics searchMetrics   `json:"metrics"`
}

type instantSeries struct {
	Labels     []attribute `json:"labels,omitempty"`
	Value      float64     `json:"value,omitempty"`
	PromLabels string      `json:"promLabels,omitempty"`
}

// labelAttribute encodes a series label as Tempo does: typed like span
// attributes; a by() group whose attribute is missing has an empty value.
func labelAttribute(kv traceql.KeyValue) attribute {
	if kv.Value.Kind == traceql.KindNil {
		return attribute{Key: kv.Key}
	}
	return toAttribute(kv)
}

// DefaultMetricsStep is Tempo's step when the request has none: the range
// in 240 intervals, at least one second.
func DefaultMetricsStep(start, end time.Time) time.Duration {
	return max(end.Sub(start)/240, time.Second).Truncate(time.Millisecond)
}

type metricsParams struct {
	query      *traceql.Query
	start, end time.Time
	step       time.Duration
	exemplars  int
}

// parseMetricsTime reads a time parameter as Unix seconds (10 digits or
// fewer, fractions allowed), Unix nanoseconds (more digits) or RFC 3339.
func parseMetricsTime(name, s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil && i >= 0 {
		if len(s) > 10 {
			return time.Unix(0, i), nil
		}
		return time.Unix(i, 0), nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f >= 0 && f < 1e11 {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), nil
	}
	return time.Time{}, fmt.Errorf("invalid %s %q: want Unix seconds, Unix nanoseconds or RFC 3339", name, s)
}

// parseStep reads a Go duration ("15s") or a number of seconds ("15").
func parseStep(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f > 0 && f < 1e9 {
		return time.Duration(f * 1e9), nil
	}
	return 0, fmt.Errorf("invalid step %q: want a positive duration such as 15s", s)
}

func (a *API) parseMetrics(r *http.Request, instant bool) (metricsParams, error) {
	q := r.URL.Query()
	var p metricsParams
	text := q.Get("q")
	if strings.TrimSpace(text) == "" {
		return p, errors.New("missing q: a TraceQL metrics query such as {} | rate()")
	}
	var err error
	if p.query, err = traceql.Parse(text); err != nil {
		return p, fmt.Errorf("invalid TraceQL query: %w", err)
	}
	if p.query.Metrics() == nil {
		return p, errors.New("not a metrics query: end it with a metrics function such as | rate() or | count_over_time()")
	}
	now := a.now()
	since := time.Hour
	if s := q.Get("since"); s != "" {
		d, err := parseSince(s)
		if err != nil || d <= 0 {
			return p, fmt.Errorf("invalid since %q: want a duration such as 15m", s)
		}
		since = d
	}
	p.end = now
	if s := q.Get("end"); s != "" {
		if p.end, err = parseMetricsTime("end", s); err != nil {
			return p, err
		}
	}
	p.start = p.end.Add(-since)
	if s := q.Get("start"); s != "" {
		if p.start, err = parseMetricsTime("start", s); err != nil {
			return p, err
		}
	}
	if !p.end.After(p.start) {
		return p, fmt.Errorf("invalid range: end %s is not after start %s", p.end.Format(time.RFC3339), p.start.Format(time.RFC3339))
	}
	if d := time.Duration(a.cfg.MetricsMaxDuration); d > 0 && p.end.Sub(p.start) > d {
		return p, fmt.Errorf("range %s exceeds metrics_max_duration %s", p.end.Sub(p.start), d)
	}
	if !instant {
		p.step = DefaultMetricsStep(p.start, p.end)
		if s := q.Get("step"); s != "" {
			if p.step, err = parseStep(s); err != nil {
				return p, err
			}
		}
		if n := p.end.Sub(p.start) / p.step; n > traceql.MaxMetricsIntervals {
			return p, fmt.Errorf("exceeded maximum resolution of %d points per series: step %s over %s makes %d", traceql.MaxMetricsIntervals, p.step, p.end.Sub(p.start), n)
		}
		p.exemplars = a.cfg.MetricsMaxExemplars
		if s := q.Get("exemplars"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return p, fmt.Errorf("invalid exemplars %q: want a non-negative integer", s)
			}
			p.exemplars = min(n, a.cfg.MetricsMaxExemplars)
		}
	}
	return p, nil
}

// parseSince accepts Go durations ("90m") and Prometheus ones ("1d").
func parseSince(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	d, err := model.ParseDuration(s)
	return time.Duration(d), err
}

// MetricsQueryRange serves GET /api/metrics/query_range.
func (a *API) MetricsQueryRange(w http.ResponseWriter, r *http.Request) {
	const name = "metrics_query_range"
	a.instrument(name, w, func(w http.ResponseWriter) { a.metricsQuery(name, w, r, false) })
}

// MetricsQueryInstant serves GET /api/metrics/query.
func (a *API) MetricsQueryInstant(w http.ResponseWriter, r *http.Request) {
	const name = "metrics_query"
	a.instrument(name, w, func(w http.ResponseWriter) { a.metricsQuery(name, w, r, true) })
}

func (a *API) metricsQuery(name string, w http.ResponseWriter, r *http.Request, instant bool) {
	p, err := a.parseMetrics(r, instant)
	if err != nil {
		a.badRequest(name, w, "%v", err)
		return
	}
	ev, err := p.query.NewMetricsEvaluator(traceql.MetricsRequest{
		Start: p.start.UnixNano(), End: p.end.UnixNano(), Step: int64(p.step), Instant: instant,
		MaxSeries: a.cfg.MetricsMaxSeries, Exemplars: p.exemplars,
	})
	if err != nil {
		a.badRequest(name, w, "%v", err)
		return
	}
	store, tenant, ok := a.storeFor(name, w, r)
	if !ok {
		return
	}
	release, ok := a.enter(w, r, tenant)
	if !ok {
		return
	}
	defer release()
	ctx, cancel := a.ctx(r)
	defer cancel()
	req := tracestore.SearchRequest{Start: p.start, End: p.end, Conds: hintsToConds(p.query.Hints()),
		Limits: tracestore.SearchLimits{
			MaxTraces:     a.cfg.MaxInspectedTraces,
			MaxBytes:      int64(a.cfg.MaxInspectedBytes),
			MaxTraceBytes: int64(a.cfg.MaxTraceBytes),
		},
		Project: projectionFor(p.query),
	}
	var evalErr error
	if p.query.ColumnsSuffice() {
		// The block columns hold all this query reads: no decoding (ADR 0091);
		// groups whose longest span is below a duration bound are skipped (0092).
		req.MinSpanDuration = time.Duration(p.query.MinSpanDuration())
		req.ColumnAttrs = p.query.ColumnAttrs() // attribute columns (ADR 0100)
		var cols []traceql.ColumnSpan
		var vals []traceql.ColumnValue
		req.Spans = func(id tracestore.TraceID, spans []tracestore.ColumnSpan, attrs []tracestore.ColumnValue, spanID func(int) (pcommon.SpanID, error)) (bool, error) {
			cols, vals = convertColumns(cols, vals, spans, attrs)
			if evalErr = ev.ObserveColumns(pcommon.TraceID(id), cols, vals, spanID); evalErr != nil {
				return false, nil
			}
			return true, nil
		}
	}
	st, err := store.Search(ctx, req, func(_ tracestore.TraceID, td ptrace.Traces) (bool, error) {
		if evalErr = ev.Observe(traceql.NewTraceFor(p.query, td)); evalErr != nil {
			return false, nil
		}
		return true, nil
	})
	if evalErr != nil {
		if errors.Is(evalErr, traceql.ErrTooManySeries) {
			a.badRequest(name, w, "%v (traces.search.metrics_max_series): narrow the query or group by fewer attributes", evalErr)
			return
		}
		a.serverError(name, w, r, evalErr)
		return
	}
	if err != nil {
		if !errors.Is(err, context.DeadlineExceeded) || r.Context().Err() != nil {
			a.serverError(name, w, r, err)
			return
		}
		st.Truncated = truncatedTimeout
	}
	if st.Truncated != "" {
		a.truncated.WithLabelValues(st.Truncated).Inc()
		w.Header().Set(TruncatedHeader, st.Truncated)
		if st.TotalJobs > 0 && st.CompletedJobs >= st.TotalJobs {
			st.CompletedJobs = st.TotalJobs - 1
		}
	}
	metrics := searchMetrics{InspectedTraces: st.InspectedTraces, InspectedBytes: strconv.FormatInt(st.InspectedBytes, 10),
		TotalBlocks: st.TotalBlocks, CompletedJobs: st.CompletedJobs, TotalJobs: st.TotalJobs}
	series := ev.Series()
	if instant {
		out := metricsInstantResponse{Series: []instantSeries{}, Metrics: metrics}
		for _, s := range series {
			if math.IsNaN(s.Values[0]) {
				continue
			}
			out.Series = append(out.Series, instantSeries{Labels: labelAttributes(s.Labels), Value: s.Values[0], PromLabels: s.PromLabels()})
		}
		writeJSON(w, out)
		return
	}
	out := metricsRangeResponse{Series: []rangeSeries{}, Metrics: metrics}
	for _, s := range series {
		rs := rangeSeries{Labels: labelAttributes(s.Labels), PromLabels: s.PromLabels()}
		for k, v := range s.Values {
			if math.IsNaN(v) {
				continue
			}
			rs.Samples = append(rs.Samples, metricsSample{TimestampMs: strconv.FormatInt(ev.Timestamp(k), 10), Value: v})
		}
		for _, x := range s.Exemplars {
			rs.Exemplars = append(rs.Exemplars, metricExemplar{Labels: labelAttributes(x.Labels), Value: x.Value,
				TimestampMs: strconv.FormatInt(x.TimestampMs, 10)})
		}
		out.Series = append(out.Series, rs)
	}
	writeJSON(w, out)
}

func labelAttributes(kvs []traceql.KeyValue) []attribute {
	out := make([]attribute, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, labelAttribute(kv))
	}
	return out
}

// projectionFor keeps of each trace only the attributes, events and links
// q reads, so the store decodes a fraction of each trace.
func projectionFor(q *traceql.Query) *tracestore.Projection {
	if m := q.Metrics(); m != nil && m.Op == "compare" {
		return nil // compare() reads every attribute
	}
	p := &tracestore.Projection{SpanAttrs: map[string]bool{}, ResourceAttrs: map[string]bool{}, ScopeAttrs: map[string]bool{},
		DropNames: true}
	for _, a := range q.Attributes() {
		switch a.Scope {
		case traceql.ScopeSpan:
			p.SpanAttrs[a.Name] = true
		case traceql.ScopeResource:
			p.ResourceAttrs[a.Name] = true
		case traceql.ScopeNone:
			p.SpanAttrs[a.Name] = true
			p.ResourceAttrs[a.Name] = true
		case traceql.ScopeInstrumentation:
			p.ScopeAttrs[a.Name] = true
		case traceql.ScopeEvent:
			p.Events = true
		case traceql.ScopeLink:
			p.Links = true
		case traceql.ScopeIntrinsic:
			switch a.Name {
			case traceql.IntrinsicEventName, traceql.IntrinsicEventTime:
				p.Events = true
			case traceql.IntrinsicLinkSpanID, traceql.IntrinsicLinkTraceID:
				p.Links = true
			case traceql.IntrinsicName, traceql.IntrinsicRootName, traceql.IntrinsicStatusMessage:
				p.DropNames = false
			}
		default: // a scope this list does not know: keep everything
			return nil
		}
	}
	return p
}
