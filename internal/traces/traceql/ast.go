package traceql

import (
	"regexp"
	"strconv"
	"strings"
)

// Query is a parsed TraceQL query: a pipeline.
type Query struct {
	Pipeline *Pipeline
	links    int8 // set by Parse: whether evaluation reads parent/child links
	// attrs is Attributes(), set by Parse (SpanAttributes reads it per
	// answered span); nil for a Query not made by Parse.
	attrs []*Attribute
}

func (q *Query) String() string { return q.Pipeline.String() }

// Pipeline is a spanset expression followed by stages joined with `|`.
type Pipeline struct {
	Pos    int
	Stages []Stage // Stages[0] is always a SpansetExpr
}

func (p *Pipeline) String() string {
	parts := make([]string, len(p.Stages))
	for i, s := range p.Stages {
		parts[i] = s.String()
	}
	return strings.Join(parts, " | ")
}

// Stage is one element of a pipeline.
type Stage interface {
	String() string
	stage()
}

// SpansetExpr selects spans of a trace.
type SpansetExpr interface {
	Stage
	spansetExpr()
}

// SpansetFilter is `{ expr }`; an empty filter matches every span.
type SpansetFilter struct {
	Pos  int
	Expr FieldExpr // nil for {}
}

// SpansetOp combines two spanset expressions: && || and the structural
// operators > >> < << ~, their negations !> !>> !< !<< !~ (right-hand spans
// not so related to any left-hand span) and their unions &> &>> &< &<< &~
// (the spans of both sides that are so related to a span of the other).
type SpansetOp struct {
	Pos  int
	Op   string
	L, R SpansetExpr
}

// SubPipeline is a parenthesised pipeline used as a spanset expression.
type SubPipeline struct {
	Pos      int
	Pipeline *Pipeline
}

// ScalarFilter is `| count() > 2` or `| avg(duration) > 1s`.
type ScalarFilter struct {
	Pos   int
	Agg   string    // count, avg, min, max, sum
	Arg   FieldExpr // nil for count
	Op    string
	Value Static
}

// GroupBy is `| by(expr)`.
type GroupBy struct {
	Pos  int
	Expr FieldExpr
}

// Select is `| select(attr, ...)`.
type Select struct {
	Pos   int
	Attrs []*Attribute
}

// Coalesce is `| coalesce()`.
type Coalesce struct{ Pos int }

func (*SpansetFilter) stage()       {}
func (*SpansetOp) stage()           {}
func (*SubPipeline) stage()         {}
func (*ScalarFilter) stage()        {}
func (*GroupBy) stage()             {}
func (*Select) stage()              {}
func (*Coalesce) stage()            {}
func (*SpansetFilter) spansetExpr() {}
func (*SpansetOp) spansetExpr()     {}
func (*SubPipeline) spansetExpr()   {}

func (f *SpansetFilter) String() string {
	if f.Expr == nil {
		return "{ }"
	}
	return "{ " + f.Expr.String() + " }"
}

func (o *SpansetOp) String() string {
	return wrapSpanset(o.L, o.Op, true) + " " + o.Op + " " + wrapSpanset(o.R, o.Op, false)
}

var spansetPrec = map[string]int{"||": 1, "&&": 2}

func precOf(op string) int {
	if p, ok := spansetPrec[op]; ok {
		return p
	}
	return 3 // structural
}

// wrapSpanset parenthesises a child whose operator binds looser than op.
func wrapSpanset(e SpansetExpr, op string, left bool) string {
	if c, ok := e.(*SpansetOp); ok {
		if precOf(c.Op) < precOf(op) || (!left && precOf(c.Op) == precOf(op)) {
			return "(" + c.String() + ")"
		}
	}
	return e.String()
}

func (s *SubPipeline) String() string { return "(" + s.Pipeline.String() + ")" }

func (s *ScalarFilter) String() string {
	arg := ""
	if s.Arg != nil {
		arg = s.Arg.String()
	}
	return s.Agg + "(" + arg + ") " + s.Op + " " + s.Value.String()
}

// ResultName is the name under which the aggregate's value appears in a
// spanset's attributes, as Tempo spells it: "count()", "avg(duration)",
// "max(span.http.status_code)".
func (s *ScalarFilter) ResultName() string {
	arg := ""
	if s.Arg != nil {
		arg = s.Arg.String()
	}
	return s.Agg + "(" + arg + ")"
}

func (g *GroupBy) String() string { return "by(" + g.Expr.String() + ")" }

func (s *Select) String() string {
	parts := make([]string, len(s.Attrs))
	for i, a := range s.Attrs {
		parts[i] = a.String()
	}
	return "select(" + strings.Join(parts, ", ") + ")"
}

func (*Coalesce) String() string { return "coalesce()" }

// FieldExpr is an expression evaluated on one span.
type FieldExpr interface {
	String() string
	fieldExpr()
}

// BinaryOp is a comparison (= != > >= < <= =~ !~) or a boolean && ||.
type BinaryOp struct {
	Pos  int
	Op   string
	L, R FieldExpr
	re   *regexp.Regexp // compiled for =~ and !~ against a static string
}

// UnaryOp is `!expr`.
type UnaryOp struct {
	Pos  int
	Op   string
	Expr FieldExpr
}

// Literal is a static value in the query.
type Literal struct {
	Pos   int
	Value Static
}

// Scope of an attribute.
type Scope int

const (
	ScopeNone Scope = iota // .foo: span first, then resource
	ScopeSpan
	ScopeResource
	ScopeEvent
	ScopeLink
	ScopeInstrumentation
	ScopeIntrinsic
)

var scopeNames = map[Scope]string{ScopeSpan: "span", ScopeResource: "resource", ScopeEvent: "event",
	ScopeLink: "link", ScopeInstrumentation: "instrumentation"}

// Attribute is a span attribute or an intrinsic (Scope == ScopeIntrinsic,
// Name one of the Intrinsic* constants).
type Attribute struct {
	Pos    int
	Scope  Scope
	Name   string
	quoted bool
}

// Intrinsic names, in the canonical spelling String prints.
const (
	IntrinsicName            = "name"
	IntrinsicStatus          = "status"
	IntrinsicStatusMessage   = "statusMessage"
	IntrinsicKind            = "kind"
	IntrinsicDuration        = "duration"
	IntrinsicRootName        = "rootName"
	IntrinsicRootServiceName = "rootServiceName"
	IntrinsicTraceDuration   = "traceDuration"
	IntrinsicEventName       = "event:name"
	IntrinsicLinkTraceID     = "link:traceID"
	IntrinsicLinkSpanID      = "link:spanID"
	IntrinsicSpanID          = "span:id"
	IntrinsicParentID        = "span:parentID"
	IntrinsicTraceID         = "trace:id"
	IntrinsicScopeName       = "instrumentation:name"
	IntrinsicScopeVersion    = "instrumentation:version"
	IntrinsicEventTime       = "event:timeSinceStart"
	IntrinsicNestedParent    = "nestedSetParent"
	IntrinsicNestedLeft      = "nestedSetLeft"
	IntrinsicNestedRight     = "nestedSetRight"
)

// intrinsicAliases maps every accepted spelling to the canonical one.
var intrinsicAliases = map[string]string{
	"name": IntrinsicName, "span:name": IntrinsicName,
	"status": IntrinsicStatus, "span:status": IntrinsicStatus,
	"statusMessage": IntrinsicStatusMessage, "span:statusMessage": IntrinsicStatusMessage,
	"kind": IntrinsicKind, "span:kind": IntrinsicKind,
	"duration": IntrinsicDuration, "span:duration": IntrinsicDuration,
	"rootName": IntrinsicRootName, "trace:rootName": IntrinsicRootName,
	"rootServiceName": IntrinsicRootServiceName, "trace:rootService": IntrinsicRootServiceName,
	"traceDuration": IntrinsicTraceDuration, "trace:duration": IntrinsicTraceDuration,
	"event:name": IntrinsicEventName, "link:traceID": IntrinsicLinkTraceID, "link:spanID": IntrinsicLinkSpanID,
	"span:id": IntrinsicSpanID, "span:parentID": IntrinsicParentID, "trace:id": IntrinsicTraceID,
	"instrumentation:name": IntrinsicScopeName, "instrumentation:version": IntrinsicScopeVersion,
	"event:timeSinceStart": IntrinsicEventTime,
	"nestedSetParent":      IntrinsicNestedParent, "span:nestedSetParent": IntrinsicNestedParent,
	"nestedSetLeft": IntrinsicNestedLeft, "span:nestedSetLeft": IntrinsicNestedLeft,
	"nestedSetRight": IntrinsicNestedRight, "span:nestedSetRight": IntrinsicNestedRight,
}

func (a *Attribute) String() string {
	if a.Scope == ScopeIntrinsic {
		return a.Name
	}
	name := a.Name
	if a.quoted || strings.ContainsFunc(name, isDelim) || name == "" {
		name = quote(name)
	}
	if a.Scope == ScopeNone {
		return "." + name
	}
	return scopeNames[a.Scope] + "." + name
}

func quote(s string) string { return Static{Kind: KindString, S: s}.String() }

func (b *BinaryOp) String() string {
	return wrapField(b.L, b.Op, true) + " " + b.Op + " " + wrapField(b.R, b.Op, false)
}

var fieldPrec = map[string]int{"||": 1, "&&": 2}

func fieldPrecOf(op string) int {
	if p, ok := fieldPrec[op]; ok {
		return p
	}
	return 3
}

func wrapField(e FieldExpr, op string, left bool) string {
	if c, ok := e.(*BinaryOp); ok {
		if fieldPrecOf(c.Op) < fieldPrecOf(op) || (!left && fieldPrecOf(c.Op) == fieldPrecOf(op)) {
			return "(" + c.String() + ")"
		}
	}
	return e.String()
}

func (u *UnaryOp) String() string {
	if _, ok := u.Expr.(*BinaryOp); ok {
		return u.Op + "(" + u.Expr.String() + ")"
	}
	return u.Op + u.Expr.String()
}

func (l *Literal) String() string { return l.Value.String() }

func (*BinaryOp) fieldExpr()  {}
func (*UnaryOp) fieldExpr()   {}
func (*Literal) fieldExpr()   {}
func (*Attribute) fieldExpr() {}

// MetricsAggregate is the last stage of a TraceQL metrics query, which turns
// the matching spans into time series: `rate()`, `count_over_time()`,
// `sum_over_time(attr)`, `avg_over_time(attr)`, `min_over_time(attr)`,
// `max_over_time(attr)`, `quantile_over_time(attr, q, ...)` and
// `histogram_over_time(attr)`, each optionally followed by `by (attr, ...)`.
type MetricsAggregate struct {
	Pos       int
	Op        string     // one of the metrics function names
	Attr      *Attribute // the measured attribute; nil for rate and count_over_time
	Quantiles []float64  // quantile_over_time only
	By        []*Attribute
	// TopK > 0 keeps, at each step, the TopK series with the highest
	// values (the lowest when Bottom): `| topk(10)`, `| bottomk(10)`.
	TopK   int
	Bottom bool
	// compare() only: the selection filter, the values kept per attribute
	// (default 10) and an optional selection window in Unix ns.
	Selection                *SpansetFilter
	CompareTopN              int
	CompareStart, CompareEnd int64
}

func (*MetricsAggregate) stage() {}

func (m *MetricsAggregate) String() string {
	var b strings.Builder
	b.WriteString(m.Op)
	b.WriteByte('(')
	if m.Op == "compare" {
		b.WriteString(m.Selection.String())
		b.WriteString(", " + strconv.Itoa(m.CompareTopN))
		if m.CompareStart != 0 || m.CompareEnd != 0 {
			b.WriteString(", " + strconv.FormatInt(m.CompareStart, 10) + ", " + strconv.FormatInt(m.CompareEnd, 10))
		}
	}
	if m.Attr != nil {
		b.WriteString(m.Attr.String())
	}
	for _, q := range m.Quantiles {
		b.WriteString(", ")
		b.WriteString(Float(q).String())
	}
	b.WriteByte(')')
	if len(m.By) > 0 {
		parts := make([]string, len(m.By))
		for i, a := range m.By {
			parts[i] = a.String()
		}
		b.WriteString(" by (" + strings.Join(parts, ", ") + ")")
	}
	if m.TopK > 0 {
		fn := "topk"
		if m.Bottom {
			fn = "bottomk"
		}
		b.WriteString(" | " + fn + "(" + strconv.Itoa(m.TopK) + ")")
	}
	return b.String()
}

// metricsFuncs names the metrics functions and whether each takes an attribute.
var metricsFuncs = map[string]bool{
	"rate": false, "count_over_time": false,
	"sum_over_time": true, "avg_over_time": true, "min_over_time": true, "max_over_time": true,
	"quantile_over_time": true, "histogram_over_time": true,
	"compare": false,
}

// Metrics returns the query's metrics stage, nil for a search query.
func (q *Query) Metrics() *MetricsAggregate {
	st := q.Pipeline.Stages
	m, _ := st[len(st)-1].(*MetricsAggregate)
	return m
}
