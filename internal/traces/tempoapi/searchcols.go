package tempoapi

import (
	"encoding/hex"
	"math"
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
	ab := &answerBuilder{}
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
		res, err := ab.result(p, m, pcommon.TraceID(id), spans, attrs, matched, start, end, spanID)
		if err != nil {
			return false, err
		}
		return add(res), nil
	}
}

// answerBuilder builds the answers of one search from the columns with
// few allocations (a search may answer 370k traces, ADR 0110): answers
// and their spansets and service statistics come from slabs, ID strings
// from a byte arena, and the attribute list a span shares with the
// previous one is shared (answers are only read once built: sorted,
// written as JSON).
type answerBuilder struct {
	slab []colAnswer
	strs []byte
	// kvs is the scratch AppendSpanAttributes fills; lastKVs and
	// lastAttrs the previous span's attributes and their answer form.
	kvs, lastKVs []traceql.KeyValue
	lastAttrs    []attribute
	// counts is the slab answers' serviceStats are cut from.
	counts []svcCount
}

// colAnswer is one answer and its (only) spanset, allocated together.
type colAnswer struct {
	res traceResult
	set spanSet
}

const (
	answerSlab = 64
	statsSlab  = 512
	strArena   = 16 << 10
)

func (ab *answerBuilder) answer() *colAnswer {
	if len(ab.slab) == 0 {
		ab.slab = make([]colAnswer, answerSlab)
	}
	c := &ab.slab[0]
	ab.slab = ab.slab[1:]
	return c
}

// hexID is strings.TrimLeft(hex of id, "0") ("" for an all-zero id when
// trim, else the full hex), in the arena.
func (ab *answerBuilder) hexID(id []byte, trim bool) string {
	if cap(ab.strs)-len(ab.strs) < 2*len(id) {
		ab.strs = make([]byte, 0, strArena)
	}
	from := len(ab.strs)
	ab.strs = hex.AppendEncode(ab.strs, id)
	b := ab.strs[from:]
	if trim {
		i := 0
		for i < len(b) && b[i] == '0' {
			i++
		}
		b = b[i:]
	}
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// serviceStats copies counts, sorted, into the answers' slab of them.
func (ab *answerBuilder) serviceStats(counts []svcCount) svcStatsList {
	if cap(ab.counts)-len(ab.counts) < len(counts) {
		ab.counts = make([]svcCount, 0, max(statsSlab, len(counts)))
	}
	from := len(ab.counts)
	ab.counts = append(ab.counts, counts...)
	l := svcStatsList(ab.counts[from:len(ab.counts):len(ab.counts)])
	l.sort()
	return l
}

// attributes converts kvs, reusing the previous span's conversion when
// every key and value is the same.
func (ab *answerBuilder) attributes(kvs []traceql.KeyValue) []attribute {
	if len(kvs) == 0 {
		return nil
	}
	if len(kvs) == len(ab.lastKVs) && ab.lastAttrs != nil {
		same := true
		for i := range kvs {
			if !sameKV(kvs[i], ab.lastKVs[i]) {
				same = false
				break
			}
		}
		if same {
			return ab.lastAttrs
		}
	}
	out := make([]attribute, len(kvs))
	for k, kv := range kvs {
		out[k] = toAttribute(kv)
	}
	ab.lastKVs = append(ab.lastKVs[:0], kvs...)
	ab.lastAttrs = out
	return out
}

// sameKV: equal keys and values, floats by their bits (-0 and 0 are
// written differently; NaN is one value).
func sameKV(a, b traceql.KeyValue) bool {
	return a.Key == b.Key && a.Value.Kind == b.Value.Kind && a.Value.S == b.Value.S && a.Value.I == b.Value.I &&
		a.Value.B == b.Value.B && math.Float64bits(a.Value.F) == math.Float64bits(b.Value.F)
}

// result is traceResult for a trace known by its columns: the same
// fields, computed the same way (root: the earliest span without a parent;
// its service name kept from an earlier root when it has none, as
// traceql's NewTrace does).
func (ab *answerBuilder) result(p searchParams, m *traceql.ColumnMatcher, id pcommon.TraceID, spans []traceql.ColumnSpan, attrs []traceql.ColumnValue,
	matched []int, start, end uint64, spanID func(int) (pcommon.SpanID, error)) (*traceResult, error) {
	ca := ab.answer()
	res := &ca.res
	*res = traceResult{
		TraceID:           ab.hexID(id[:], true),
		StartTimeUnixNano: start,
		DurationMs:        (end - start) / 1e6,
		start:             start,
	}
	if res.TraceID == "" {
		res.TraceID = "0"
	}
	rootStart := ^uint64(0)
	// Count per service in a small list (a trace has a few).
	var local [8]svcCount
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
			counts = append(counts, svcCount{svc: s.Service})
		}
		counts[j].st.SpanCount++
		if s.Status == ptrace.StatusCodeError {
			counts[j].st.ErrorCount++
		}
	}
	res.ServiceStats = ab.serviceStats(counts)
	if res.RootServiceName == "" && res.RootTraceName == "" {
		res.RootServiceName = rootNotYetReceived
	}
	out := &ca.set
	out.Matched = len(matched)
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
			SpanID:            ab.hexID(sid[:], false),
			StartTimeUnixNano: s.Start,
			DurationNanos:     s.End - s.Start,
		}
		if sid.IsEmpty() {
			sr.SpanID = "" // pcommon's String of an empty ID
		}
		if p.refName {
			sr.Name = s.Name
		}
		ab.kvs = m.AppendSpanAttributes(ab.kvs, p.query, spans, attrs, i)
		sr.Attributes = ab.attributes(ab.kvs)
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
