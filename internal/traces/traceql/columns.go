package traceql

import (
	"math"
	"regexp"
	"slices"

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
	// Root is set when the span has no parent span ID (a store whose
	// columns hold it, see AnswerFromColumns).
	Root bool
}

// ColumnValue is one span's value of one attribute read from a trace
// store's attribute columns; its fields are those of
// tracestore.ColumnValue, in the same order.
type ColumnValue struct {
	Kind uint8 // ColumnAbsent, ColumnString, …
	S    string
	N    uint64 // int64 bits, math.Float64bits, or 0/1 for a bool
}

// Kinds of ColumnValue (the same numbers as tracestore's).
const (
	ColumnAbsent uint8 = iota
	ColumnString
	ColumnInt
	ColumnFloat
	ColumnBool
	ColumnEmpty
)

// columnAttr is one attribute column a query reads: the store key
// ("span.x", "resource.x") and where ObserveColumns puts its values.
type columnAttr struct {
	key      string
	name     string
	resource bool
}

// columnAttrs lists the attribute columns q reads (span and resource
// attributes, both for an unscoped one; resource.service.name is
// ColumnSpan.Service), in first-mention order; ok is false when q reads
// something columns do not hold (other intrinsics, scope, event or link
// attributes).
func columnAttrs(attrs []*Attribute) (out []columnAttr, ok bool) {
	add := func(c columnAttr) {
		for _, o := range out {
			if o.key == c.key {
				return
			}
		}
		out = append(out, c)
	}
	for _, a := range attrs {
		switch a.Scope {
		case ScopeIntrinsic:
			switch a.Name {
			case IntrinsicName, IntrinsicStatus, IntrinsicKind, IntrinsicDuration:
				continue
			}
			return nil, false
		case ScopeSpan:
			add(columnAttr{key: "span." + a.Name, name: a.Name})
		case ScopeResource:
			if a.Name != "service.name" {
				add(columnAttr{key: "resource." + a.Name, name: a.Name, resource: true})
			}
		case ScopeNone:
			add(columnAttr{key: "span." + a.Name, name: a.Name})
			if a.Name != "service.name" {
				add(columnAttr{key: "resource." + a.Name, name: a.Name, resource: true})
			}
		default:
			return nil, false
		}
	}
	return out, true
}

// ColumnsSuffice reports whether the metrics query q can be evaluated on
// ColumnSpans and attribute columns (ObserveColumns) instead of decoded
// traces: one spanset filter followed by the metrics function (no
// compare()), where the filter, by() and the measured attribute read only
// the span intrinsics name, status, kind and duration, span attributes and
// resource attributes (ColumnAttrs names the attribute columns). Anything
// else (trace-level and structural intrinsics, scope, events, links) needs
// the decoded trace.
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
	_, ok := columnAttrs(q.Attributes())
	return ok
}

// ColumnAttrs returns the attribute columns ("span.x", "resource.x") that
// ObserveColumns (for a metrics query) or SearchColumnFilter's matcher
// (for a search) reads, in the order their values are handed over.
func (q *Query) ColumnAttrs() []string {
	cas, _ := columnAttrs(q.columnAttributes())
	out := make([]string, len(cas))
	for i, c := range cas {
		out[i] = c.key
	}
	return out
}

// columnAttributes are the attributes column evaluation reads: every one
// for a metrics query, the first filter's for a search.
func (q *Query) columnAttributes() []*Attribute {
	if q.Metrics() != nil {
		return q.Attributes()
	}
	if f := q.firstFilter(); f != nil {
		return (&Query{Pipeline: &Pipeline{Stages: []Stage{f}}}).Attributes()
	}
	return nil
}

func (q *Query) firstFilter() *SpansetFilter {
	if len(q.Pipeline.Stages) == 0 {
		return nil
	}
	f, _ := q.Pipeline.Stages[0].(*SpansetFilter)
	return f
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
	attrs   []columnAttr
	last    []ColumnValue // value each attribute holds in the scratch now
	// only, when set, limits load to the span intrinsics the evaluation
	// reads (a search's filter); the others keep stale values.
	only *intrinsicSet
}

// intrinsicSet says which span intrinsics an evaluation reads.
type intrinsicSet struct{ times, status, kind, name bool }

// intrinsicsOf lists the span intrinsics attrs name; ok false when one
// is not a span column intrinsic.
func intrinsicsOf(attrs []*Attribute) (*intrinsicSet, bool) {
	s := &intrinsicSet{}
	for _, a := range attrs {
		if a.Scope != ScopeIntrinsic {
			continue
		}
		switch a.Name {
		case IntrinsicDuration:
			s.times = true
		case IntrinsicStatus:
			s.status = true
		case IntrinsicKind:
			s.kind = true
		case IntrinsicName:
			s.name = true
		default:
			return nil, false
		}
	}
	return s, true
}

func newColumnScratch(attrs []columnAttr) *columnScratch {
	c := &columnScratch{td: ptrace.NewTraces(), attrs: attrs}
	rs := c.td.ResourceSpans().AppendEmpty()
	ss := rs.ScopeSpans().AppendEmpty()
	sp := ss.Spans().AppendEmpty()
	c.trace.Spans = []Span{{Span: sp, Resource: rs.Resource(), Scope: ss.Scope(), parent: -1}}
	c.last = make([]ColumnValue, len(attrs))
	return c
}

// load sets the scratch span to spans[i] (attrs key-major, as the store
// hands them over).
func (c *columnScratch) load(spans []ColumnSpan, attrs []ColumnValue, i int) {
	t := &c.trace
	sp := t.Spans[0].Span
	cs := &spans[i]
	if o := c.only; o == nil {
		sp.SetStartTimestamp(pcommon.Timestamp(cs.Start))
		sp.SetEndTimestamp(pcommon.Timestamp(cs.End))
		sp.Status().SetCode(cs.Status)
		sp.SetKind(cs.Kind)
		sp.SetName(cs.Name)
	} else {
		if o.times {
			sp.SetStartTimestamp(pcommon.Timestamp(cs.Start))
			sp.SetEndTimestamp(pcommon.Timestamp(cs.End))
		}
		if o.status {
			sp.Status().SetCode(cs.Status)
		}
		if o.kind {
			sp.SetKind(cs.Kind)
		}
		if o.name {
			sp.SetName(cs.Name)
		}
	}
	if !c.set || cs.HasService != c.hasSvc || cs.Service != c.service {
		attrs := t.Spans[0].Resource.Attributes()
		if cs.HasService {
			attrs.PutStr("service.name", cs.Service)
		} else {
			attrs.Remove("service.name")
		}
		c.service, c.hasSvc, c.set = cs.Service, cs.HasService, true
	}
	n := len(spans)
	for k, ca := range c.attrs {
		v := ColumnValue{}
		if k*n+i < len(attrs) {
			v = attrs[k*n+i]
		}
		if v == c.last[k] {
			continue
		}
		c.last[k] = v
		m := sp.Attributes()
		if ca.resource {
			m = t.Spans[0].Resource.Attributes()
		}
		switch v.Kind {
		case ColumnString:
			m.PutStr(ca.name, v.S)
		case ColumnInt:
			m.PutInt(ca.name, int64(v.N))
		case ColumnFloat:
			m.PutDouble(ca.name, math.Float64frombits(v.N))
		case ColumnBool:
			m.PutBool(ca.name, v.N != 0)
		case ColumnEmpty:
			m.PutEmpty(ca.name)
		default:
			m.Remove(ca.name)
		}
	}
}

// ObserveColumns adds the spans of one trace known only by their columns;
// valid only when q.ColumnsSuffice(). attrs holds the values of the
// columns ColumnAttrs names, key-major (key k of span i at
// attrs[k*len(spans)+i]). Spans are observed in the given order, which
// must be the order Observe would meet them in the decoded trace, so that
// both pick the same exemplars. spanID returns the ID of spans[i]; it is
// called only for a span chosen as an exemplar (at most
// MetricsRequest.Exemplars times per query), so it may decode the trace.
func (e *MetricsEvaluator) ObserveColumns(id pcommon.TraceID, spans []ColumnSpan, attrs []ColumnValue, spanID func(i int) (pcommon.SpanID, error)) error {
	if e.cols == nil {
		cas, _ := columnAttrs(e.q.Attributes())
		e.cols = newColumnScratch(cas)
	}
	c := e.cols
	t := &c.trace
	t.Spans[0].Span.SetTraceID(id)
	f := e.q.Pipeline.Stages[0].(*SpansetFilter)
	for i := range spans {
		c.load(spans, attrs, i)
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

// ColumnMatcher tells from a trace's columns whether a search query can
// match it: some span matches the query's first spanset filter (every
// TraceQL pipeline yields nothing for a trace without one). Not safe for
// concurrent use.
type ColumnMatcher struct {
	expr FieldExpr
	c    *columnScratch
	// fast is set when expr is evaluated straight on the columns
	// (colNode.eval): comparisons of span, resource and unscoped attributes
	// and the name, status, kind and duration intrinsics with literals,
	// joined by &&, || and !; refs says where each attribute's value is.
	fast bool
	refs []attrRef // few: a linear scan beats a map lookup per span
	prog *colNode  // expr compiled (build) when fast
}

type attrRef struct {
	a *Attribute
	r colRef
}

// colRef locates an attribute's value in a ColumnMatcher's attribute
// columns: span and res are indexes into its columnAttrs (-1: none), res
// -2 for the resource's service.name (ColumnSpan.Service).
type colRef struct{ span, res int }

// SearchColumnFilter returns a matcher for q when its first stage is a
// spanset filter that reads only what columns hold (see ColumnsSuffice),
// with ColumnAttrs naming the attribute columns it reads; nil otherwise.
func (q *Query) SearchColumnFilter() *ColumnMatcher {
	f := q.firstFilter()
	if f == nil || q.Metrics() != nil {
		return nil
	}
	fa := q.columnAttributes()
	cas, ok := columnAttrs(fa)
	if !ok {
		return nil
	}
	c := newColumnScratch(cas)
	// The matcher (Match, MatchSpans, SpanAttributes) reads only what the
	// filter names; a search answer takes times, names and IDs from the
	// columns itself.
	if only, ok := intrinsicsOf(fa); ok {
		c.only = only
	}
	m := &ColumnMatcher{expr: f.Expr, c: c}
	m.fast = f.Expr != nil && m.compile(f.Expr, cas)
	if m.fast {
		m.prog = m.build(f.Expr)
	}
	return m
}

// colNode is the fast path's expression compiled once per matcher (build):
// each comparison knows where its value is and whether it is the common
// `= "literal"`, so a search evaluating millions of spans does not look
// attributes up or switch on operator strings per span.
type colNode struct {
	kind  uint8
	l, r  *colNode
	lit   bool // nodeLit's value
	a     *Attribute
	ref   colRef
	intr  uint8 // intrinsic read: intrName, ...; 0 an attribute
	op    string
	val   Static
	re    *regexp.Regexp
	strEq bool // op "=" against a string literal, no regexp
	svcEq bool // strEq on the resource's service.name alone
	intEq bool // op "=" against an int literal
}

const (
	nodeAnd = iota
	nodeOr
	nodeNot
	nodeLit
	nodeCmp
)

const (
	intrNone = iota
	intrName
	intrStatus
	intrKind
	intrDuration
)

// build compiles e (which compile accepted) into a colNode tree.
func (m *ColumnMatcher) build(e FieldExpr) *colNode {
	switch f := e.(type) {
	case *BinaryOp:
		switch f.Op {
		case "&&":
			return &colNode{kind: nodeAnd, l: m.build(f.L), r: m.build(f.R)}
		case "||":
			return &colNode{kind: nodeOr, l: m.build(f.L), r: m.build(f.R)}
		}
		a, lit := f.L.(*Attribute), f.R.(*Literal)
		n := &colNode{kind: nodeCmp, a: a, op: f.Op, val: lit.Value, re: f.re}
		if a.Scope == ScopeIntrinsic {
			switch a.Name {
			case IntrinsicName:
				n.intr = intrName
			case IntrinsicStatus:
				n.intr = intrStatus
			case IntrinsicKind:
				n.intr = intrKind
			default:
				n.intr = intrDuration
			}
		} else {
			for _, ar := range m.refs {
				if ar.a == a {
					n.ref = ar.r
					break
				}
			}
		}
		n.strEq = f.re == nil && f.Op == "=" && lit.Value.Kind == KindString
		n.svcEq = n.strEq && n.intr == intrNone && n.ref.span < 0 && n.ref.res == -2
		n.intEq = f.re == nil && f.Op == "=" && lit.Value.Kind == KindInt
		return n
	case *UnaryOp:
		return &colNode{kind: nodeNot, l: m.build(f.Expr)}
	case *Literal:
		return &colNode{kind: nodeLit, lit: f.Value.Kind == KindBool && f.Value.B}
	}
	return &colNode{kind: nodeLit}
}

// eval is matchSpan for span i of a trace known by its columns: each
// value is the one singleValue reads from the scratch span that load
// would build.
func (n *colNode) eval(spans []ColumnSpan, attrs []ColumnValue, i int) bool {
	switch n.kind {
	case nodeAnd:
		return n.l.eval(spans, attrs, i) && n.r.eval(spans, attrs, i)
	case nodeOr:
		return n.l.eval(spans, attrs, i) || n.r.eval(spans, attrs, i)
	case nodeNot:
		return !n.l.eval(spans, attrs, i)
	case nodeLit:
		return n.lit
	}
	if n.svcEq {
		cs := &spans[i]
		return cs.HasService && cs.Service == n.val.S
	}
	v := n.value(spans, attrs, i)
	switch {
	case n.intEq:
		// compare("=", v, int): numbers compared as float64
		switch v.Kind {
		case KindInt:
			return float64(v.I) == float64(n.val.I)
		case KindFloat:
			return v.F == float64(n.val.I)
		}
		return false
	case n.strEq:
		// compare("=", v, string): only a string of the same bytes
		return v.Kind == KindString && v.S == n.val.S
	case n.re != nil:
		return v.Kind == KindString && n.re.MatchString(v.S) == (n.op == "=~")
	}
	return compare(n.op, v, n.val)
}

// value is the value of n's attribute or intrinsic on span i.
func (n *colNode) value(spans []ColumnSpan, attrs []ColumnValue, i int) Static {
	cs := &spans[i]
	switch n.intr {
	case intrName:
		return String(cs.Name)
	case intrStatus:
		return Status(cs.Status)
	case intrKind:
		return SpanKindValue(cs.Kind)
	case intrDuration:
		return Static{Kind: KindDuration, I: int64(cs.End) - int64(cs.Start)}
	}
	r := n.ref
	nn := len(spans)
	if r.span >= 0 {
		var cv ColumnValue
		if k := r.span*nn + i; k < len(attrs) {
			cv = attrs[k]
		}
		if v, ok := colStatic(cv); ok || n.a.Scope == ScopeSpan {
			return v
		}
	}
	if r.res == -2 {
		if cs.HasService {
			return String(cs.Service)
		}
		return Static{}
	}
	var cv ColumnValue
	if k := r.res*nn + i; r.res >= 0 && k < len(attrs) {
		cv = attrs[k]
	}
	v, _ := colStatic(cv)
	return v
}

// compile fills m.refs for e's attributes; false when e has a part
// colNode.eval does not evaluate the way matchSpan does.
func (m *ColumnMatcher) compile(e FieldExpr, cas []columnAttr) bool {
	switch f := e.(type) {
	case *BinaryOp:
		if f.Op == "&&" || f.Op == "||" {
			return m.compile(f.L, cas) && m.compile(f.R, cas)
		}
		a, aok := f.L.(*Attribute)
		if _, lok := f.R.(*Literal); !aok || !lok {
			return false
		}
		idx := func(key string) int {
			return slices.IndexFunc(cas, func(c columnAttr) bool { return c.key == key })
		}
		r := colRef{span: -1, res: -1}
		switch a.Scope {
		case ScopeSpan:
			r.span = idx("span." + a.Name)
		case ScopeResource, ScopeNone:
			if a.Scope == ScopeNone {
				r.span = idx("span." + a.Name)
			}
			if a.Name == "service.name" {
				r.res = -2
			} else {
				r.res = idx("resource." + a.Name)
			}
		case ScopeIntrinsic:
			switch a.Name {
			case IntrinsicName, IntrinsicStatus, IntrinsicKind, IntrinsicDuration:
			default:
				return false
			}
		default:
			return false
		}
		m.refs = append(m.refs, attrRef{a, r})
		return true
	case *UnaryOp:
		return m.compile(f.Expr, cas)
	case *Literal:
		return true
	}
	return false
}

// colStatic is the Static FromValue gives for the value the scratch span
// would hold for cv; ok false when the attribute is absent.
func colStatic(cv ColumnValue) (Static, bool) {
	switch cv.Kind {
	case ColumnString:
		return String(cv.S), true
	case ColumnInt:
		return Int(int64(cv.N)), true
	case ColumnFloat:
		return Float(math.Float64frombits(cv.N)), true
	case ColumnBool:
		return Bool(cv.N != 0), true
	case ColumnEmpty:
		return Static{}, true
	}
	return Static{}, false
}

// Match reports whether some span of the trace matches the filter; attrs
// as for ObserveColumns.
func (m *ColumnMatcher) Match(spans []ColumnSpan, attrs []ColumnValue) bool {
	if m.expr == nil {
		return len(spans) > 0
	}
	if m.fast {
		for i := range spans {
			if m.prog.eval(spans, attrs, i) {
				return true
			}
		}
		return false
	}
	for i := range spans {
		m.c.load(spans, attrs, i)
		if matchSpan(m.expr, &m.c.trace, 0) {
			return true
		}
	}
	return false
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

// AnswerFromColumns reports whether a search for q can be answered from
// a trace's columns alone (ColumnSpans with Root and span IDs, and the
// ColumnAttrs values): q is one spanset filter, with no pipeline stage
// after it, that reads only what columns hold. Its one spanset is then the
// spans MatchSpans returns, and SpanAttributes gives what each carries in
// the answer — the same as Eval and Query.SpanAttributes on the decoded
// trace.
func (q *Query) AnswerFromColumns() bool {
	return q.Metrics() == nil && len(q.Pipeline.Stages) == 1 && q.SearchColumnFilter() != nil
}

// MatchSpans appends to out the indexes of the spans the filter matches,
// ascending; attrs as for ObserveColumns.
func (m *ColumnMatcher) MatchSpans(spans []ColumnSpan, attrs []ColumnValue, out []int) []int {
	for i := range spans {
		if m.expr == nil || (m.fast && m.prog.eval(spans, attrs, i)) {
			out = append(out, i)
			continue
		}
		if m.fast {
			continue
		}
		m.c.load(spans, attrs, i)
		if matchSpan(m.expr, &m.c.trace, 0) {
			out = append(out, i)
		}
	}
	return out
}

// SpanAttributes is q.SpanAttributes for span i of a trace known by its
// columns (q the query the matcher was made for).
func (m *ColumnMatcher) SpanAttributes(q *Query, spans []ColumnSpan, attrs []ColumnValue, i int) []KeyValue {
	m.c.load(spans, attrs, i)
	return q.SpanAttributes(&m.c.trace, 0)
}

// AppendSpanAttributes is SpanAttributes appending to out[:0]: the same
// values, in a slice the caller reuses (valid until the next call).
func (m *ColumnMatcher) AppendSpanAttributes(out []KeyValue, q *Query, spans []ColumnSpan, attrs []ColumnValue, i int) []KeyValue {
	m.c.load(spans, attrs, i)
	return q.appendSpanAttributes(out, &m.c.trace, 0)
}
