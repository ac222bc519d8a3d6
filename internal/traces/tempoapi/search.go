package tempoapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/traceql"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore"
)

// Search result shapes, as Tempo's /api/search returns them.
type searchResponse struct {
	Traces  []*traceResult `json:"traces"`
	Metrics searchMetrics  `json:"metrics"`
}

// searchMetrics: Tempo leaves out the fields it did not fill (inspectedTraces
// is no longer filled by Tempo 2.x, totalBlocks is 0 for recent data).
type searchMetrics struct {
	InspectedTraces int    `json:"inspectedTraces,omitempty"`
	InspectedBytes  string `json:"inspectedBytes"`
	TotalBlocks     int    `json:"totalBlocks,omitempty"`
	CompletedJobs   int    `json:"completedJobs"`
	TotalJobs       int    `json:"totalJobs"`
}

// truncatedTimeout is the limit label of a search cut short by query_timeout.
const truncatedTimeout = "query_timeout"

// TruncatedHeader names the limit that cut a search short; the body is then
// the partial answer, with metrics.completedJobs < metrics.totalJobs.
const TruncatedHeader = "X-Nxwatcher-Search-Truncated"

type traceResult struct {
	TraceID           string `json:"traceID"`
	RootServiceName   string `json:"rootServiceName"`
	RootTraceName     string `json:"rootTraceName,omitempty"`
	StartTimeUnixNano uint64 `json:"startTimeUnixNano,string"` // a JSON string, as Tempo writes it
	DurationMs        uint64 `json:"durationMs"`
	// ServiceStats counts the trace's spans (and those with status error)
	// per resource service.name, as Tempo's search results do.
	// Sorted by service, written as the JSON object of a map (one map per
	// answer cost ~10 % of a 370k-answer search).
	ServiceStats svcStatsList `json:"serviceStats,omitempty"`
	SpanSet      *spanSet     `json:"spanSet,omitempty"` // deprecated by Tempo, still read by older Grafana
	SpanSets     []*spanSet   `json:"spanSets,omitempty"`
	start        uint64
	// one is SpanSets' backing array for an answer of one spanset
	// (answers from columns).
	one [1]*spanSet
}

type serviceStats struct {
	SpanCount  int `json:"spanCount"`
	ErrorCount int `json:"errorCount,omitempty"`
}

// svcCount is one service's serviceStats.
type svcCount struct {
	svc string
	st  serviceStats
}

// svcStatsList is a trace's serviceStats, one entry per service, sorted by
// service (sort) before it is written.
type svcStatsList []svcCount

func (l svcStatsList) sort() {
	// insertion sort: a trace has a few services (slices.SortFunc's
	// call per comparison cost ~5 % of a 370k-answer search)
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && l[j].svc < l[j-1].svc; j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
}

// MarshalJSON writes the list as encoding/json writes a
// map[string]serviceStats: keys sorted (sort), escaped as JSON strings
// (json.Marshal's escaping, as map keys get), values as the struct.
func (l svcStatsList) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 2+40*len(l))
	b = append(b, '{')
	for i, c := range l {
		if i > 0 {
			b = append(b, ',')
		}
		k, err := json.Marshal(c.svc)
		if err != nil {
			return nil, err
		}
		b = append(b, k...)
		b = append(b, `:{"spanCount":`...)
		b = strconv.AppendInt(b, int64(c.st.SpanCount), 10)
		if c.st.ErrorCount != 0 {
			b = append(b, `,"errorCount":`...)
			b = strconv.AppendInt(b, int64(c.st.ErrorCount), 10)
		}
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

type spanSet struct {
	Spans      []spanResult `json:"spans"`
	Matched    int          `json:"matched"`
	Attributes []attribute  `json:"attributes,omitempty"`
	// buf backs Spans for up to three spans (the default spss) in
	// answers from columns: one allocation instead of two.
	buf [3]spanResult
}

type spanResult struct {
	SpanID            string      `json:"spanID"`
	Name              string      `json:"name,omitempty"`
	StartTimeUnixNano uint64      `json:"startTimeUnixNano,string"`
	DurationNanos     uint64      `json:"durationNanos,string"`
	Attributes        []attribute `json:"attributes,omitempty"`
}

type attribute struct {
	Key   string   `json:"key"`
	Value anyValue `json:"value"`
}

// anyValue is an OTLP AnyValue in JSON: at most one field set ({} when
// none). A struct rather than a map: one small allocation per value
// instead of a map and a boxed value (search answers carry one per
// matched span and referenced attribute).
type anyValue struct {
	StringValue *string  `json:"stringValue,omitempty"`
	IntValue    *string  `json:"intValue,omitempty"`
	DoubleValue *float64 `json:"doubleValue,omitempty"`
	BoolValue   *bool    `json:"boolValue,omitempty"`
}

func stringValue(s string) anyValue { return anyValue{StringValue: &s} }

func toAttribute(kv traceql.KeyValue) attribute {
	v := kv.Value
	var val anyValue
	switch v.Kind {
	case traceql.KindInt:
		s := strconv.FormatInt(v.I, 10)
		val.IntValue = &s
	case traceql.KindFloat:
		f := v.F
		val.DoubleValue = &f
	case traceql.KindBool:
		b := v.B
		val.BoolValue = &b
	case traceql.KindString:
		val = stringValue(v.S)
	case traceql.KindNil:
		// A by() group whose attribute is missing: Tempo spells it "nil".
		val = stringValue("nil")
	case traceql.KindDuration:
		// Go's spelling, as Tempo writes durations: "1.5s", "250ms".
		val = stringValue(time.Duration(v.I).String())
	default:
		val = stringValue(v.Text())
	}
	return attribute{Key: kv.Key, Value: val}
}

type searchParams struct {
	query      *traceql.Query
	limit      int
	spss       int
	start, end time.Time
	minDur     time.Duration
	maxDur     time.Duration
	refName    bool // the query mentions name: matched spans carry it
}

func (a *API) parseSearch(r *http.Request) (searchParams, error) {
	q := r.URL.Query()
	p := searchParams{limit: a.cfg.DefaultLimit, spss: a.cfg.DefaultSpansPerSpanSet}
	var err error
	if p.start, p.end, err = parseRange(r); err != nil {
		return p, err
	}
	if d := time.Duration(a.cfg.MaxSearchDuration); d > 0 && !p.start.IsZero() && !p.end.IsZero() && p.end.Sub(p.start) > d {
		return p, fmt.Errorf("range %s exceeds max_search_duration %s", p.end.Sub(p.start), d)
	}
	if s := q.Get("limit"); s != "" {
		if p.limit, err = strconv.Atoi(s); err != nil || p.limit <= 0 {
			return p, fmt.Errorf("invalid limit %q: want a positive integer", s)
		}
		p.limit = min(p.limit, a.cfg.MaxLimit)
	}
	if s := q.Get("spss"); s != "" {
		if p.spss, err = strconv.Atoi(s); err != nil || p.spss <= 0 {
			return p, fmt.Errorf("invalid spss %q: want a positive integer", s)
		}
		p.spss = min(p.spss, a.cfg.MaxSpansPerSpanSet)
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{"minDuration", &p.minDur}, {"maxDuration", &p.maxDur}} {
		if s := q.Get(d.name); s != "" {
			if *d.dst, err = time.ParseDuration(s); err != nil || *d.dst < 0 {
				return p, fmt.Errorf("invalid %s %q: want a duration such as 100ms", d.name, s)
			}
		}
	}
	if p.minDur > 0 && p.maxDur > 0 && p.maxDur < p.minDur {
		return p, fmt.Errorf("invalid maxDuration %s: below minDuration %s", p.maxDur, p.minDur)
	}
	text := q.Get("q")
	if text == "" {
		if text, err = tagsToTraceQL(q.Get("tags")); err != nil {
			return p, err
		}
	}
	if p.query, err = traceql.Parse(text); err != nil {
		return p, fmt.Errorf("invalid TraceQL query: %w", err)
	}
	if p.query.Metrics() != nil {
		return p, fmt.Errorf("invalid TraceQL query: a metrics query (%s) goes to /api/metrics/query_range or /api/metrics/query", p.query.Metrics().Op)
	}
	p.refName = p.query.RefersToName()
	return p, nil
}

// tagsToTraceQL turns the logfmt tags= parameter ("service.name=api
// http.status_code=500") into the equivalent TraceQL filter. As in Tempo's
// legacy search, a tag matches a span attribute or a resource attribute of
// that name (either, not span-first), compared as text, so
// http.status_code=500 matches the integer 500 and flag=true the boolean;
// name, status, kind, root.name, root.service.name, status.code and
// error=true are the span's and the trace's intrinsics.
func tagsToTraceQL(tags string) (string, error) {
	tags = strings.TrimSpace(tags)
	if tags == "" {
		return "{}", nil
	}
	var conds []string
	for len(tags) > 0 {
		k, rest, ok := strings.Cut(tags, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return "", fmt.Errorf("invalid tags %q: want key=value pairs", tags)
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				return "", fmt.Errorf("invalid tags: unterminated quote")
			}
			v, rest = rest[1:end+1], rest[end+2:]
		} else {
			v, rest, _ = strings.Cut(rest, " ")
		}
		k = strings.TrimSpace(k)
		c, err := legacyTagCond(k, v)
		if err != nil {
			return "", err
		}
		conds = append(conds, c)
		tags = strings.TrimSpace(rest)
	}
	return "{ " + strings.Join(conds, " && ") + " }", nil
}

var legacyStatusCodes = map[string]string{"0": "unset", "1": "ok", "2": "error", "unset": "unset", "ok": "ok", "error": "error",
	"STATUS_CODE_UNSET": "unset", "STATUS_CODE_OK": "ok", "STATUS_CODE_ERROR": "error"}

var legacyKinds = map[string]bool{"unspecified": true, "internal": true, "server": true, "client": true, "producer": true, "consumer": true}

// legacyTagCond is one tag of a legacy search as a TraceQL condition.
func legacyTagCond(k, v string) (string, error) {
	q := strconv.Quote(v)
	switch k {
	case "name":
		return "name = " + q, nil
	case "root.name":
		return "rootName = " + q, nil
	case "root.service.name":
		return "rootServiceName = " + q, nil
	case "status", "status.code":
		st, ok := legacyStatusCodes[v]
		if !ok {
			return "", fmt.Errorf("invalid tags: %s=%q: want unset, ok or error", k, v)
		}
		return "status = " + st, nil
	case "kind":
		if !legacyKinds[v] {
			return "", fmt.Errorf("invalid tags: kind=%q: want a span kind such as server", v)
		}
		return "kind = " + v, nil
	case "error":
		if v == "true" {
			return "status = error", nil
		}
	}
	values := []string{q}
	if i, err := strconv.ParseInt(v, 10, 64); err == nil {
		values = append(values, strconv.FormatInt(i, 10))
	} else if f, err := strconv.ParseFloat(v, 64); err == nil && !strings.ContainsAny(v, "xXnN") {
		values = append(values, traceql.Float(f).String())
	}
	if b, err := strconv.ParseBool(v); err == nil && (v == "true" || v == "false") {
		values = append(values, strconv.FormatBool(b))
	}
	var alts []string
	for _, scope := range []traceql.Scope{traceql.ScopeSpan, traceql.ScopeResource} {
		lhs := (&traceql.Attribute{Scope: scope, Name: k}).String()
		for _, val := range values {
			alts = append(alts, lhs+" = "+val)
		}
	}
	return "(" + strings.Join(alts, " || ") + ")", nil
}

// hintsToConds converts TraceQL hints into store pruning conditions.
func hintsToConds(hs []traceql.Hint) []tracestore.Cond {
	out := make([]tracestore.Cond, 0, len(hs))
	for _, h := range hs {
		c := tracestore.Cond{Keys: h.Keys}
		for _, v := range h.Values {
			c.Values = append(c.Values, tracestore.EncodeValue(tracestore.TypedValue{Type: v.Type, Value: v.Value}))
		}
		out = append(out, c)
	}
	return out
}

// Search serves GET /api/search.
func (a *API) Search(w http.ResponseWriter, r *http.Request) {
	const name = "search"
	a.instrument(name, w, func(w http.ResponseWriter) {
		p, err := a.parseSearch(r)
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
		var results []*traceResult
		st, err := a.runSearch(ctx, store, p, tracestore.SearchLimits{
			MaxTraces:     a.cfg.MaxInspectedTraces,
			MaxBytes:      int64(a.cfg.MaxInspectedBytes),
			MaxTraceBytes: int64(a.cfg.MaxTraceBytes),
		}, func(r *traceResult) bool {
			results = append(results, r)
			return len(results) < p.limit
		})
		slices.SortStableFunc(results, func(x, y *traceResult) int {
			switch {
			case x.start > y.start:
				return -1
			case x.start < y.start:
				return 1
			}
			return 0
		})
		if err != nil {
			// query_timeout reached (not the client leaving): answer with what
			// was found, as for the other limits.
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
		if results == nil {
			results = []*traceResult{}
		}
		writeJSON(w, searchResponse{Traces: results, Metrics: searchMetrics{
			InspectedTraces: st.InspectedTraces, InspectedBytes: strconv.FormatInt(st.InspectedBytes, 10), TotalBlocks: st.TotalBlocks,
			CompletedJobs: st.CompletedJobs, TotalJobs: st.TotalJobs,
		}})
	})
}

// runSearch hands add p's matching traces within lim (in store order) until
// add returns false.
func (a *API) runSearch(ctx context.Context, store Store, p searchParams, lim tracestore.SearchLimits, add func(*traceResult) bool) (tracestore.SearchStats, error) {
	req := tracestore.SearchRequest{Start: p.start, End: p.end, Conds: hintsToConds(p.query.Hints()),
		Limits:  lim,
		Project: SearchProjection(p.query),
	}
	ApplyColumnFilter(&req, p.query)
	if !a.noColumnAnswers {
		a.applyColumnAnswers(&req, p, add)
	}
	return store.Search(ctx, req, func(id tracestore.TraceID, td ptrace.Traces) (bool, error) {
		tr := traceql.NewTraceFor(p.query, td)
		dur := time.Duration(tr.End - tr.Start)
		if (p.minDur > 0 && dur < p.minDur) || (p.maxDur > 0 && dur > p.maxDur) {
			return true, nil
		}
		sets := p.query.Eval(tr)
		if len(sets) == 0 {
			return true, nil
		}
		return add(a.traceResult(p, tr, sets)), nil
	})
}

// BenchSearch does /api/search's work for the TraceQL query q over store
// without HTTP and without inspection limits (for bench/traces/tracebench):
// each of up to limit matching traces gets its answer built (and, with
// encode, written as JSON: jsonBytes sums the sizes), then dropped, so a
// search of 370k answers measures finding and answering them, not holding
// them. fromColumns false decodes every answered trace (the path before
// ADR 0110).
func BenchSearch(ctx context.Context, store Store, q string, limit int, fromColumns, encode bool) (traces, jsonBytes int, st tracestore.SearchStats, err error) {
	query, err := traceql.Parse(q)
	if err != nil {
		return 0, 0, st, err
	}
	a := &API{noColumnAnswers: !fromColumns}
	p := searchParams{query: query, limit: limit, spss: DefaultConfig().DefaultSpansPerSpanSet, refName: query.RefersToName()}
	st, err = a.runSearch(ctx, store, p, tracestore.SearchLimits{}, func(r *traceResult) bool {
		traces++
		if encode {
			b, jerr := json.Marshal(r)
			if jerr != nil && err == nil {
				err = jerr
			}
			jsonBytes += len(b)
		}
		return traces < limit
	})
	return traces, jsonBytes, st, err
}

// SearchProjection is what /api/search decodes of each candidate trace:
// the attributes, events and links q reads (conditions, by(), select()),
// every span's name (the root's is rootTraceName) and the resources'
// service.name (rootServiceName, serviceStats); nil (everything) when q
// reads something a projection cannot name. A search answer is the same
// with it, for a fraction of the decoding (ADR 0090).
func SearchProjection(q *traceql.Query) *tracestore.Projection {
	p := projectionFor(q)
	if p != nil {
		p.DropNames = false
	}
	return p
}

const rootNotYetReceived = "<root span not yet received>"

func (a *API) traceResult(p searchParams, tr *traceql.Trace, sets []traceql.Spanset) *traceResult {
	res := &traceResult{
		TraceID:           strings.TrimLeft(tr.ID.String(), "0"),
		RootServiceName:   tr.RootServiceName,
		RootTraceName:     tr.RootName,
		StartTimeUnixNano: tr.Start,
		DurationMs:        (tr.End - tr.Start) / 1e6,
		start:             tr.Start,
	}
	if res.TraceID == "" {
		res.TraceID = "0"
	}
	var counts svcStatsList
	for i := range tr.Spans {
		sp := &tr.Spans[i]
		svc := ""
		if v, ok := sp.Resource.Attributes().Get("service.name"); ok {
			svc = v.AsString()
		}
		j := 0
		for j < len(counts) && counts[j].svc != svc {
			j++
		}
		if j == len(counts) {
			counts = append(counts, svcCount{svc: svc})
		}
		counts[j].st.SpanCount++
		if sp.Span.Status().Code() == ptrace.StatusCodeError {
			counts[j].st.ErrorCount++
		}
	}
	counts.sort()
	res.ServiceStats = counts
	if res.RootServiceName == "" && res.RootTraceName == "" {
		res.RootServiceName = rootNotYetReceived
	}
	for _, ss := range sets {
		out := &spanSet{Matched: len(ss.Spans)}
		for _, kv := range ss.Attributes {
			out.Attributes = append(out.Attributes, toAttribute(kv))
		}
		for _, i := range ss.Spans[:min(len(ss.Spans), p.spss)] {
			s := tr.Spans[i]
			// Only what the query refers to, as Tempo answers: the name
			// when the query mentions name, the attributes its conditions,
			// by() and select() mention — no service.name otherwise.
			sr := spanResult{
				SpanID:            s.Span.SpanID().String(),
				StartTimeUnixNano: uint64(s.Span.StartTimestamp()),
				DurationNanos:     uint64(s.Span.EndTimestamp() - s.Span.StartTimestamp()),
			}
			if p.refName {
				sr.Name = s.Span.Name()
			}
			for _, kv := range p.query.SpanAttributes(tr, i) {
				sr.Attributes = append(sr.Attributes, toAttribute(kv))
			}
			out.Spans = append(out.Spans, sr)
		}
		res.SpanSets = append(res.SpanSets, out)
	}
	if len(res.SpanSets) > 0 {
		res.SpanSet = res.SpanSets[0]
	}
	return res
}

// ApplyColumnFilter makes a search whose first spanset filter reads only
// what block columns hold drop, undecoded, the block traces no span of
// which matches it (ADR 0100): only traces that can be answered are
// decoded.
func ApplyColumnFilter(req *tracestore.SearchRequest, q *traceql.Query) {
	m := q.SearchColumnFilter()
	if m == nil {
		return
	}
	req.ColumnAttrs = q.ColumnAttrs()
	var spans []traceql.ColumnSpan
	var attrs []traceql.ColumnValue
	req.Match = func(_ tracestore.TraceID, ss []tracestore.ColumnSpan, as []tracestore.ColumnValue) bool {
		spans, attrs = convertColumns(spans, attrs, ss, as)
		return m.Match(spans, attrs)
	}
}

// convertColumns copies the store's column spans and values into
// traceql's (the same fields), reusing spans and attrs.
func convertColumns(spans []traceql.ColumnSpan, attrs []traceql.ColumnValue, ss []tracestore.ColumnSpan,
	as []tracestore.ColumnValue) ([]traceql.ColumnSpan, []traceql.ColumnValue) {
	spans, attrs = spans[:0], attrs[:0]
	for _, s := range ss {
		spans = append(spans, traceql.ColumnSpan(s))
	}
	for _, a := range as {
		attrs = append(attrs, traceql.ColumnValue(a))
	}
	return spans, attrs
}
