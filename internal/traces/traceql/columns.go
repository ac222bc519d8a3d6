package traceql

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// ColumnSpan is what a trace store's per-block columns hold of one span:
// enough to evaluate a metrics query that reads only span times, status,
// kind, name and the resource's service.name (ColumnsSuffice), without
// decoding the span.
type ColumnSpan struct {
	Start, End uint64 // Unix ns
	Status     ptrace.StatusCode
	Kind       ptrace.SpanKind
	Name       string
	// Service is the resource's service.name; HasService is false when the
	// resource has none (a non-string service.name is not representable:
	// such spans must be decoded instead).
	Service    string
	HasService bool
}

// ColumnsSuffice reports whether the metrics query q can be evaluated on
// ColumnSpans (ObserveColumns) instead of decoded traces: one spanset
// filter followed by the metrics function (no compare()), where the
// filter, by() and the measured attribute read only the span intrinsics
// name, status, kind and duration and resource.service.name. Everything
// else (other attributes, trace-level and structural intrinsics, events,
// links) needs the decoded trace.
func (q *Query) ColumnsSuffice() bool {
	m := q.Metrics()
	if m == nil || m.Op == "compare" {
		return false
	}
	st := q.Pipeline.Stages
	if len(st) != 2 {
		return false
	}
	if _, ok := st[0].(*SpansetFilter); !ok {
		return false
	}
	if m.Attr != nil && (m.Attr.Scope != ScopeIntrinsic || m.Attr.Name != IntrinsicDuration) {
		return false
	}
	for _, a := range q.Attributes() {
		switch a.Scope {
		case ScopeIntrinsic:
			switch a.Name {
			case IntrinsicName, IntrinsicStatus, IntrinsicKind, IntrinsicDuration:
				continue
			}
		case ScopeResource:
			if a.Name == "service.name" {
				continue
			}
		}
		return false
	}
	return true
}

// columnScratch is the one-span trace ObserveColumns evaluates on: the
// span's fields are overwritten for each ColumnSpan, so evaluation shares
// every line of code (and so every semantic) with Observe, and allocates
// nothing per span.
type columnScratch struct {
	td      ptrace.Traces
	trace   Trace
	service string
	hasSvc  bool
	set     bool
}

func newColumnScratch() *columnScratch {
	c := &columnScratch{td: ptrace.NewTraces()}
	rs := c.td.ResourceSpans().AppendEmpty()
	ss := rs.ScopeSpans().AppendEmpty()
	sp := ss.Spans().AppendEmpty()
	c.trace.Spans = []Span{{Span: sp, Resource: rs.Resource(), Scope: ss.Scope(), parent: -1}}
	return c
}

// ObserveColumns adds the spans of one trace known only by their columns;
// valid only when q.ColumnsSuffice(). Spans are observed in the given order,
// which must be the order Observe would meet them in the decoded trace, so
// that both pick the same exemplars. spanID returns the ID of spans[i]; it
// is called only for a span chosen as an exemplar (at most
// MetricsRequest.Exemplars times per query), so it may decode the trace.
func (e *MetricsEvaluator) ObserveColumns(id pcommon.TraceID, spans []ColumnSpan, spanID func(i int) (pcommon.SpanID, error)) error {
	if e.cols == nil {
		e.cols = newColumnScratch()
	}
	c := e.cols
	t := &c.trace
	sp := t.Spans[0].Span
	sp.SetTraceID(id)
	f := e.q.Pipeline.Stages[0].(*SpansetFilter)
	for i := range spans {
		cs := &spans[i]
		sp.SetStartTimestamp(pcommon.Timestamp(cs.Start))
		sp.SetEndTimestamp(pcommon.Timestamp(cs.End))
		sp.Status().SetCode(cs.Status)
		sp.SetKind(cs.Kind)
		sp.SetName(cs.Name)
		if !c.set || cs.HasService != c.hasSvc || cs.Service != c.service {
			attrs := t.Spans[0].Resource.Attributes()
			if cs.HasService {
				attrs.PutStr("service.name", cs.Service)
			} else {
				attrs.Remove("service.name")
			}
			c.service, c.hasSvc, c.set = cs.Service, cs.HasService, true
		}
		if f.Expr != nil && !matchSpan(f.Expr, t, 0) {
			continue
		}
		e.colSpanID, e.colIndex = spanID, i
		err := e.observeSpan(t, 0)
		e.colSpanID = nil
		if err != nil {
			return err
		}
	}
	return nil
}

// MinSpanDuration returns, for a query whose first stage is one spanset
// filter, the shortest span duration (ns) that filter can match: the
// largest bound of `duration > d` (d+1) or `duration >= d` terms joined by
// && at its top level, with d a duration literal; 0 when there is none. A
// trace none of whose spans lasts that long yields no span from the filter,
// so a store may skip it (tracestore's SearchRequest.MinSpanDuration).
func (q *Query) MinSpanDuration() int64 {
	if len(q.Pipeline.Stages) == 0 {
		return 0
	}
	f, ok := q.Pipeline.Stages[0].(*SpansetFilter)
	if !ok || f.Expr == nil {
		return 0
	}
	return minDuration(f.Expr)
}

func minDuration(e FieldExpr) int64 {
	b, ok := e.(*BinaryOp)
	if !ok {
		return 0
	}
	op := b.Op
	a, aok := b.L.(*Attribute)
	l, lok := b.R.(*Literal)
	if !aok || !lok {
		a, aok = b.R.(*Attribute)
		l, lok = b.L.(*Literal)
		switch op { // literal on the left: d < duration is duration > d
		case "<":
			op = ">"
		case "<=":
			op = ">="
		default:
			op = ""
		}
	}
	switch {
	case b.Op == "&&":
		return max(minDuration(b.L), minDuration(b.R))
	case !aok || !lok || a.Scope != ScopeIntrinsic || a.Name != IntrinsicDuration || l.Value.Kind != KindDuration:
		return 0
	case op == ">" && l.Value.I >= 0:
		return l.Value.I + 1
	case op == ">=" && l.Value.I > 0:
		return l.Value.I
	}
	return 0
}
