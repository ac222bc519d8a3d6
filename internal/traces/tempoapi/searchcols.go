package tempoapi

import (
	"strings"
	"time"
	"unsafe"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/traceql"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore"
)

// applyColumnAnswers makes a search whose query the columns can evaluate
// (traceql's AnswerFromColumns: one spanset filter reading only span
// intrinsics, span and resource attributes) answer the block traces whose
// columns hold span IDs and root bits (format 10) from those columns,
// without decoding them (ADR 0110). add receives each matching trace's
// result and says whether to go on. Traces the columns cannot answer
// (the head, traces with parts elsewhere, irregular traces, older blocks)
// still go to the search's fn, decoded: the answer is the same either way
// (TestSearchAnswersFromColumns).
func (a *API) applyColumnAnswers(req *tracestore.SearchRequest, p searchParams, add func(*traceResult) bool) {
	q := p.query
	if !q.AnswerFromColumns() {
		return
	}
	m := q.SearchColumnFilter()
	req.ColumnAttrs = q.ColumnAttrs()
	req.SpansRoot = true
	var matched []int
	req.Spans = func(id tracestore.TraceID, ss []tracestore.ColumnSpan, as []tracestore.ColumnValue, spanID func(int) (pcommon.SpanID, error)) (bool, error) {
		spans, attrs := viewColumns(ss), viewValues(as)
		start, end := ^uint64(0), uint64(0)
		for i := range spans {
			start = min(start, spans[i].Start)
			end = max(end, spans[i].End)
		}
		if len(spans) == 0 {
			start = 0
		}
		dur := time.Duration(end - start)
		if (p.minDur > 0 && dur < p.minDur) || (p.maxDur > 0 && dur > p.maxDur) {
			return true, nil
		}
		matched = m.MatchSpans(spans, attrs, matched[:0])
		if len(matched) == 0 {
			return true, nil
		}
		a.columnAnswered++
		res, err := columnResult(p, m, pcommon.TraceID(id), spans, attrs, matched, start, end, spanID)
		if err != nil {
			return false, err
		}
		return add(res), nil
	}
}

// columnResult is traceResult for a trace known by its columns: the same
// fields, computed the same way (root: the earliest span without a parent;
// its service name kept from an earlier root when it has none, as
// traceql's NewTrace does).
func columnResult(p searchParams, m *traceql.ColumnMatcher, id pcommon.TraceID, spans []traceql.ColumnSpan, attrs []traceql.ColumnValue,
	matched []int, start, end uint64, spanID func(int) (pcommon.SpanID, error)) (*traceResult, error) {
	res := &traceResult{
		TraceID:           strings.TrimLeft(id.String(), "0"),
		StartTimeUnixNano: start,
		DurationMs:        (end - start) / 1e6,
		start:             start,
	}
	if res.TraceID == "" {
		res.TraceID = "0"
	}
	rootStart := ^uint64(0)
	// Count per service in a small list first (a trace has a few), then
	// fill the map once per service.
	type count struct {
		svc string
		st  serviceStats
	}
	var local [8]count
	counts := local[:0]
	for i := range spans {
		s := &spans[i]
		if s.Root && s.Start < rootStart {
			rootStart = s.Start
			res.RootTraceName = s.Name
			if s.HasService {
				res.RootServiceName = s.Service
			}
		}
		j := 0
		for j < len(counts) && counts[j].svc != s.Service {
			j++
		}
		if j == len(counts) {
			counts = append(counts, count{svc: s.Service})
		}
		counts[j].st.SpanCount++
		if s.Status == ptrace.StatusCodeError {
			counts[j].st.ErrorCount++
		}
	}
	res.ServiceStats = make(map[string]serviceStats, len(counts))
	for _, c := range counts {
		res.ServiceStats[c.svc] = c.st
	}
	if res.RootServiceName == "" && res.RootTraceName == "" {
		res.RootServiceName = rootNotYetReceived
	}
	out := &spanSet{Matched: len(matched)}
	if n := min(len(matched), p.spss); n <= len(out.buf) {
		out.Spans = out.buf[:0]
	} else {
		out.Spans = make([]spanResult, 0, n)
	}
	for _, i := range matched[:min(len(matched), p.spss)] {
		s := &spans[i]
		sid, err := spanID(i)
		if err != nil {
			return nil, err
		}
		sr := spanResult{
			SpanID:            sid.String(),
			StartTimeUnixNano: s.Start,
			DurationNanos:     s.End - s.Start,
		}
		if p.refName {
			sr.Name = s.Name
		}
		if kvs := m.SpanAttributes(p.query, spans, attrs, i); len(kvs) > 0 {
			sr.Attributes = make([]attribute, len(kvs))
			for k, kv := range kvs {
				sr.Attributes[k] = toAttribute(kv)
			}
		}
		out.Spans = append(out.Spans, sr)
	}
	res.one[0] = out
	res.SpanSets = res.one[:]
	res.SpanSet = out
	return res, nil
}

// The store's column types and traceql's have the same fields in the same
// order (these conversions compile only while they do), so a slice of one
// is viewed as a slice of the other without copying.
var (
	_ = traceql.ColumnSpan(tracestore.ColumnSpan{})
	_ = traceql.ColumnValue(tracestore.ColumnValue{})
)

func viewColumns(ss []tracestore.ColumnSpan) []traceql.ColumnSpan {
	if len(ss) == 0 {
		return nil
	}
	return unsafe.Slice((*traceql.ColumnSpan)(unsafe.Pointer(&ss[0])), len(ss))
}

func viewValues(as []tracestore.ColumnValue) []traceql.ColumnValue {
	if len(as) == 0 {
		return nil
	}
	return unsafe.Slice((*traceql.ColumnValue)(unsafe.Pointer(&as[0])), len(as))
}
