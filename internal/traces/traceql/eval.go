package traceql

import (
	"slices"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Span is one span of an evaluated trace with its resource and scope.
type Span struct {
	Span     ptrace.Span
	Resource pcommon.Resource
	Scope    pcommon.InstrumentationScope
	parent   int // index in Trace.Spans, -1 for none or unknown
}

// Trace is one trace prepared for evaluation.
type Trace struct {
	ID              pcommon.TraceID
	Spans           []Span
	RootName        string
	RootServiceName string
	Start, End      uint64 // Unix ns over all spans
	children        [][]int
	nested          []nestedSet // computed on first use
}

// nestedSet is a span's place in the nested set model of its tree: Left
// and Right are the counter on entering and leaving it in a depth-first
// walk (children in the order received), Parent is the parent's Left, -1
// for a root. Spans on a parent cycle (no root above them) keep zeros.
type nestedSet struct{ Parent, Left, Right int64 }

func (t *Trace) nestedSets() []nestedSet {
	if t.nested != nil {
		return t.nested
	}
	t.link()
	t.nested = make([]nestedSet, len(t.Spans))
	type frame struct {
		span, next int // next: index into children of the next child to enter
	}
	var counter int64
	var stack []frame
	for root := range t.Spans {
		if t.Spans[root].parent >= 0 {
			continue
		}
		counter++
		t.nested[root] = nestedSet{Parent: -1, Left: counter}
		stack = append(stack[:0], frame{span: root})
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			if f.next < len(t.children[f.span]) {
				c := t.children[f.span][f.next]
				f.next++
				counter++
				t.nested[c] = nestedSet{Parent: t.nested[f.span].Left, Left: counter}
				stack = append(stack, frame{span: c})
				continue
			}
			counter++
			t.nested[f.span].Right = counter
			stack = stack[:len(stack)-1]
		}
	}
	return t.nested
}

// NewTrace indexes td, which must hold spans of one trace.
func NewTrace(td ptrace.Traces) *Trace { return newTrace(td, true) }

// NewTraceFor is NewTrace for evaluating q only: when q looks at no
// parent/child relation (no structural operator, no nestedSet intrinsic),
// the parent links are not built until something needs them, which saves
// most of NewTrace's cost.
func NewTraceFor(q *Query, td ptrace.Traces) *Trace { return newTrace(td, q.needsLinks()) }

func (q *Query) needsLinks() bool { return q.links != linksNo }

const (
	linksUnknown int8 = iota // a Query not made by Parse: build links
	linksYes
	linksNo
)

// linkNeed says whether evaluating q reads parent/child links.
func linkNeed(q *Query) int8 {
	if pipelineNeedsLinks(q.Pipeline) {
		return linksYes
	}
	for _, a := range q.Attributes() {
		if a.Scope == ScopeIntrinsic && (a.Name == IntrinsicNestedParent || a.Name == IntrinsicNestedLeft || a.Name == IntrinsicNestedRight) {
			return linksYes
		}
	}
	return linksNo
}

func pipelineNeedsLinks(p *Pipeline) bool {
	var stage func(Stage) bool
	stage = func(st Stage) bool {
		switch s := st.(type) {
		case *SpansetOp:
			return (s.Op != "&&" && s.Op != "||") || stage(s.L) || stage(s.R)
		case *SubPipeline:
			return pipelineNeedsLinks(s.Pipeline)
		case *MetricsAggregate:
			return s.Selection != nil && stage(s.Selection)
		}
		return false
	}
	for _, st := range p.Stages {
		if stage(st) {
			return true
		}
	}
	return false
}

func newTrace(td ptrace.Traces, link bool) *Trace {
	t := &Trace{Start: ^uint64(0), Spans: make([]Span, 0, td.SpanCount())}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			ss := rs.ScopeSpans().At(j)
			for k := 0; k < ss.Spans().Len(); k++ {
				s := ss.Spans().At(k)
				t.Spans = append(t.Spans, Span{Span: s, Resource: rs.Resource(), Scope: ss.Scope(), parent: -1})
			}
		}
	}
	for _, s := range t.Spans {
		t.ID = s.Span.TraceID()
		t.Start = min(t.Start, uint64(s.Span.StartTimestamp()))
		t.End = max(t.End, uint64(s.Span.EndTimestamp()))
	}
	if len(t.Spans) == 0 {
		t.Start = 0
	}
	rootStart := ^uint64(0)
	for i := range t.Spans {
		s := &t.Spans[i]
		// The root is the span without a parent; the earliest one wins.
		if s.Span.ParentSpanID().IsEmpty() && uint64(s.Span.StartTimestamp()) < rootStart {
			rootStart = uint64(s.Span.StartTimestamp())
			t.RootName = s.Span.Name()
			if v, ok := s.Resource.Attributes().Get("service.name"); ok {
				t.RootServiceName = v.AsString()
			}
		}
	}
	if link {
		t.link()
	}
	return t
}

// link sets each span's parent and the children lists, once: NewTrace
// does it at once, NewTraceFor when a structural operator or nestedSet
// intrinsic first needs it.
func (t *Trace) link() {
	if t.children != nil {
		return
	}
	byID := make(map[pcommon.SpanID]int, len(t.Spans))
	for i, s := range t.Spans {
		byID[s.Span.SpanID()] = i
	}
	t.children = make([][]int, len(t.Spans))
	for i := range t.Spans {
		s := &t.Spans[i]
		p := s.Span.ParentSpanID()
		if pi, ok := byID[p]; ok && !p.IsEmpty() && pi != i {
			s.parent = pi
			t.children[pi] = append(t.children[pi], i)
		}
	}
}

// Spanset is a group of matching spans of one trace.
type Spanset struct {
	Spans []int // indexes into Trace.Spans, ascending
	// Attributes of the whole spanset, e.g. by() values.
	Attributes []KeyValue
}

// KeyValue is a named value in results.
type KeyValue struct {
	Key   string
	Value Static
}

// Eval evaluates the query on one trace and returns its matching spansets
// (none when the trace does not match).
func (q *Query) Eval(t *Trace) []Spanset {
	all := make([]int, len(t.Spans))
	for i := range all {
		all[i] = i
	}
	return evalPipeline(q.Pipeline, t, all)
}

func evalPipeline(p *Pipeline, t *Trace, universe []int) []Spanset {
	first := evalSpanset(p.Stages[0].(SpansetExpr), t, universe)
	if len(first) == 0 {
		return nil
	}
	sets := []Spanset{{Spans: first}}
	for _, st := range p.Stages[1:] {
		sets = applyStage(st, t, sets)
		if len(sets) == 0 {
			return nil
		}
	}
	return sets
}

func applyStage(st Stage, t *Trace, sets []Spanset) []Spanset {
	var out []Spanset
	switch s := st.(type) {
	case *ScalarFilter:
		key := s.ResultName()
		for _, ss := range sets {
			if v, ok := aggregate(s, t, ss.Spans); ok && compare(s.Op, v, s.Value) {
				ss.Attributes = withAttribute(ss.Attributes, KeyValue{Key: key, Value: v})
				out = append(out, ss)
			}
		}
	case *GroupBy:
		key := s.String()
		for _, ss := range sets {
			var groups []Spanset
			index := map[Static]int{}
			for _, i := range ss.Spans {
				vals := evalField(s.Expr, t, i)
				v := Static{}
				if len(vals) > 0 {
					v = vals[0]
				}
				g, ok := index[v]
				if !ok {
					g = len(groups)
					index[v] = g
					attrs := withAttribute(ss.Attributes, KeyValue{Key: key, Value: v})
					groups = append(groups, Spanset{Attributes: attrs})
				}
				groups[g].Spans = append(groups[g].Spans, i)
			}
			out = append(out, groups...)
		}
	case *Select:
		out = sets // selected attributes are read by Result from the query
	case *MetricsAggregate:
		out = sets // applied across traces by a MetricsEvaluator
	case *Coalesce:
		var merged Spanset
		for _, ss := range sets {
			merged.Spans = append(merged.Spans, ss.Spans...)
		}
		slices.Sort(merged.Spans)
		merged.Spans = slices.Compact(merged.Spans)
		out = []Spanset{merged}
	case *SubPipeline:
		for _, ss := range sets {
			out = append(out, evalPipeline(s.Pipeline, t, ss.Spans)...)
		}
	case SpansetExpr:
		for _, ss := range sets {
			if m := evalSpanset(s, t, ss.Spans); len(m) > 0 {
				out = append(out, Spanset{Spans: m, Attributes: ss.Attributes})
			}
		}
	}
	return out
}

// withAttribute returns a copy of attrs with kv set: a later stage of the
// same name (a second count(), a nested by()) replaces the earlier value,
// in place, as the spanset's result.
func withAttribute(attrs []KeyValue, kv KeyValue) []KeyValue {
	out := make([]KeyValue, 0, len(attrs)+1)
	replaced := false
	for _, a := range attrs {
		if a.Key == kv.Key {
			a, replaced = kv, true
		}
		out = append(out, a)
	}
	if !replaced {
		out = append(out, kv)
	}
	return out
}

func aggregate(s *ScalarFilter, t *Trace, spans []int) (Static, bool) {
	if s.Agg == "count" {
		return Int(int64(len(spans))), true
	}
	var sum float64
	var n int
	var mn, mx float64
	kind := KindInt
	for _, i := range spans {
		for _, v := range evalField(s.Arg, t, i) {
			var f float64
			switch v.Kind {
			case KindInt:
				f = float64(v.I)
			case KindFloat:
				f, kind = v.F, KindFloat
			case KindDuration:
				f, kind = float64(v.I), KindDuration
			default:
				continue
			}
			if n == 0 || f < mn {
				mn = f
			}
			if n == 0 || f > mx {
				mx = f
			}
			sum += f
			n++
			break // one value per span
		}
	}
	if n == 0 {
		return Static{}, false
	}
	var r float64
	switch s.Agg {
	case "sum":
		r = sum
	case "avg":
		r = sum / float64(n)
		if kind == KindInt {
			kind = KindFloat
		}
	case "min":
		r = mn
	case "max":
		r = mx
	}
	switch kind {
	case KindDuration:
		return Static{Kind: KindDuration, I: int64(r)}, true
	case KindInt:
		return Int(int64(r)), true
	}
	return Float(r), true
}

// evalSpanset returns the ascending indexes of matching spans within universe.
func evalSpanset(e SpansetExpr, t *Trace, universe []int) []int {
	switch s := e.(type) {
	case *SpansetFilter:
		var out []int
		for _, i := range universe {
			if s.Expr == nil || matchSpan(s.Expr, t, i) {
				out = append(out, i)
			}
		}
		return out
	case *SubPipeline:
		var out []int
		for _, ss := range evalPipeline(s.Pipeline, t, universe) {
			out = append(out, ss.Spans...)
		}
		slices.Sort(out)
		return slices.Compact(out)
	case *SpansetOp:
		l := evalSpanset(s.L, t, universe)
		r := evalSpanset(s.R, t, universe)
		switch s.Op {
		case "&&":
			if len(l) == 0 || len(r) == 0 {
				return nil
			}
			return union(l, r)
		case "||":
			return union(l, r)
		}
		if rel, ok := strings.CutPrefix(s.Op, "&"); ok {
			// Union: the right spans related to a left span, and the left
			// spans standing in the inverse relation to a right span.
			toRight := relatedSet(rel, t, l)
			toLeft := relatedSet(inverseRel[rel], t, r)
			var out []int
			for _, i := range l {
				if toLeft[i] {
					out = append(out, i)
				}
			}
			for _, i := range r {
				if toRight[i] {
					out = append(out, i)
				}
			}
			slices.Sort(out)
			return slices.Compact(out)
		}
		neg := strings.HasPrefix(s.Op, "!")
		rel := relatedSet(strings.TrimPrefix(s.Op, "!"), t, l)
		var out []int
		for _, i := range r {
			if rel[i] != neg {
				out = append(out, i)
			}
		}
		return out
	}
	return nil
}

// inverseRel maps a structural relation to its converse: a is a child of b
// exactly when b is the parent of a.
var inverseRel = map[string]string{">": "<", ">>": "<<", "<": ">", "<<": ">>", "~": "~"}

// relatedSet marks every span that stands in relation rel to some span of
// l, in time linear in the trace's size (a walk per right-hand span made
// `<<` and `>>` quadratic: minutes of CPU, deaf to the query's deadline, on
// one trace of 100k spans). Parent links may form cycles in bad data; every
// walk stops at a span it has already marked.
func relatedSet(rel string, t *Trace, l []int) []bool {
	t.link()
	n := len(t.Spans)
	out := make([]bool, n)
	inL := make([]bool, n)
	for _, i := range l {
		inL[i] = true
	}
	switch rel {
	case ">": // children of a left span
		for i := range t.Spans {
			if p := t.Spans[i].parent; p >= 0 && inL[p] {
				out[i] = true
			}
		}
	case ">>": // descendants of a left span: everything below one, via children
		stack := make([]int, 0, len(l))
		for _, i := range l {
			stack = append(stack, t.children[i]...)
		}
		for len(stack) > 0 {
			c := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if out[c] {
				continue
			}
			out[c] = true
			stack = append(stack, t.children[c]...)
		}
	case "<": // parents of a left span
		for _, i := range l {
			if p := t.Spans[i].parent; p >= 0 {
				out[p] = true
			}
		}
	case "<<": // ancestors of a left span: up the parent chain of each
		for _, i := range l {
			for p := t.Spans[i].parent; p >= 0 && !out[p]; p = t.Spans[p].parent {
				out[p] = true
			}
		}
	case "~": // a sibling (same parent, not itself) is a left span
		leftChildren := make([]int, n)
		for _, i := range l {
			if p := t.Spans[i].parent; p >= 0 {
				leftChildren[p]++
			}
		}
		for i := range t.Spans {
			p := t.Spans[i].parent
			if p < 0 {
				continue
			}
			others := leftChildren[p]
			if inL[i] {
				others--
			}
			out[i] = others > 0
		}
	}
	return out
}

// related reports whether span i (from the right side) stands in relation
// rel to some span of the left side: the span-at-a-time definition, kept as
// the reference relatedSet is tested against.
func related(rel string, t *Trace, i int, inL map[int]bool) bool {
	t.link()
	switch rel {
	case ">": // i is a child of a left span
		p := t.Spans[i].parent
		return p >= 0 && inL[p]
	case ">>": // i is a descendant of a left span
		for p, n := t.Spans[i].parent, 0; p >= 0 && n < len(t.Spans); p, n = t.Spans[p].parent, n+1 {
			if inL[p] {
				return true
			}
		}
	case "<": // i is the parent of a left span
		for _, c := range t.children[i] {
			if inL[c] {
				return true
			}
		}
	case "<<": // i is an ancestor of a left span
		stack := slices.Clone(t.children[i])
		seen := map[int]bool{}
		for len(stack) > 0 {
			c := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if seen[c] {
				continue
			}
			seen[c] = true
			if inL[c] {
				return true
			}
			stack = append(stack, t.children[c]...)
		}
	case "~": // i has a sibling on the left
		p := t.Spans[i].parent
		if p < 0 {
			return false
		}
		for _, c := range t.children[p] {
			if c != i && inL[c] {
				return true
			}
		}
	}
	return false
}

func union(a, b []int) []int {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

func truthy(vs []Static) bool {
	for _, v := range vs {
		if v.Kind == KindBool && v.B {
			return true
		}
	}
	return false
}

// evalField returns the values of e on span i: none when an attribute is
// missing, several for multi-valued intrinsics like event:name.
func evalField(e FieldExpr, t *Trace, i int) []Static {
	switch f := e.(type) {
	case *Literal:
		return []Static{f.Value}
	case *Attribute:
		return attributeValues(f, t, i)
	case *UnaryOp:
		return []Static{Bool(!truthy(evalField(f.Expr, t, i)))}
	case *BinaryOp:
		switch f.Op {
		case "&&":
			return []Static{Bool(truthy(evalField(f.L, t, i)) && truthy(evalField(f.R, t, i)))}
		case "||":
			return []Static{Bool(truthy(evalField(f.L, t, i)) || truthy(evalField(f.R, t, i)))}
		}
		l, r := evalField(f.L, t, i), evalField(f.R, t, i)
		if len(l) == 0 {
			l = []Static{{}}
		}
		if len(r) == 0 {
			r = []Static{{}}
		}
		for _, a := range l {
			for _, b := range r {
				if f.re != nil {
					if a.Kind == KindString && f.re.MatchString(a.S) == (f.Op == "=~") {
						return []Static{Bool(true)}
					}
					continue
				}
				if compare(f.Op, a, b) {
					return []Static{Bool(true)}
				}
			}
		}
		return []Static{Bool(false)}
	}
	return nil
}

func attributeValues(a *Attribute, t *Trace, i int) []Static {
	sp := &t.Spans[i]
	s := sp.Span
	switch a.Scope {
	case ScopeIntrinsic:
		switch a.Name {
		case IntrinsicName:
			return []Static{String(s.Name())}
		case IntrinsicStatus:
			return []Static{Status(s.Status().Code())}
		case IntrinsicStatusMessage:
			return []Static{String(s.Status().Message())}
		case IntrinsicKind:
			return []Static{SpanKindValue(s.Kind())}
		case IntrinsicDuration:
			return []Static{Static{Kind: KindDuration, I: int64(s.EndTimestamp()) - int64(s.StartTimestamp())}}
		case IntrinsicRootName:
			return []Static{String(t.RootName)}
		case IntrinsicRootServiceName:
			return []Static{String(t.RootServiceName)}
		case IntrinsicTraceDuration:
			return []Static{Static{Kind: KindDuration, I: int64(t.End - t.Start)}}
		case IntrinsicSpanID:
			return []Static{String(s.SpanID().String())}
		case IntrinsicParentID:
			return []Static{String(s.ParentSpanID().String())}
		case IntrinsicTraceID:
			return []Static{String(s.TraceID().String())}
		case IntrinsicScopeName:
			return []Static{String(sp.Scope.Name())}
		case IntrinsicScopeVersion:
			return []Static{String(sp.Scope.Version())}
		case IntrinsicEventTime:
			var out []Static
			for j := 0; j < s.Events().Len(); j++ {
				out = append(out, Static{Kind: KindDuration, I: int64(s.Events().At(j).Timestamp()) - int64(s.StartTimestamp())})
			}
			return out
		case IntrinsicNestedParent:
			return []Static{Int(t.nestedSets()[i].Parent)}
		case IntrinsicNestedLeft:
			return []Static{Int(t.nestedSets()[i].Left)}
		case IntrinsicNestedRight:
			return []Static{Int(t.nestedSets()[i].Right)}
		case IntrinsicEventName:
			var out []Static
			for j := 0; j < s.Events().Len(); j++ {
				out = append(out, String(s.Events().At(j).Name()))
			}
			return out
		case IntrinsicLinkTraceID, IntrinsicLinkSpanID:
			var out []Static
			for j := 0; j < s.Links().Len(); j++ {
				l := s.Links().At(j)
				if a.Name == IntrinsicLinkTraceID {
					out = append(out, String(l.TraceID().String()))
				} else {
					out = append(out, String(l.SpanID().String()))
				}
			}
			return out
		}
	case ScopeSpan:
		return mapValue(s.Attributes(), a.Name)
	case ScopeResource:
		return mapValue(sp.Resource.Attributes(), a.Name)
	case ScopeInstrumentation:
		return mapValue(sp.Scope.Attributes(), a.Name)
	case ScopeNone:
		if v := mapValue(s.Attributes(), a.Name); v != nil {
			return v
		}
		return mapValue(sp.Resource.Attributes(), a.Name)
	case ScopeEvent:
		var out []Static
		for j := 0; j < s.Events().Len(); j++ {
			out = append(out, mapValue(s.Events().At(j).Attributes(), a.Name)...)
		}
		return out
	case ScopeLink:
		var out []Static
		for j := 0; j < s.Links().Len(); j++ {
			out = append(out, mapValue(s.Links().At(j).Attributes(), a.Name)...)
		}
		return out
	}
	return nil
}

func mapValue(m pcommon.Map, key string) []Static {
	v, ok := m.Get(key)
	if !ok {
		return nil
	}
	return []Static{FromValue(v)}
}

// FromValue converts an OTLP attribute value; maps, slices and bytes become strings.
func FromValue(v pcommon.Value) Static {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return String(v.Str())
	case pcommon.ValueTypeInt:
		return Int(v.Int())
	case pcommon.ValueTypeDouble:
		return Float(v.Double())
	case pcommon.ValueTypeBool:
		return Bool(v.Bool())
	case pcommon.ValueTypeEmpty:
		return Static{}
	}
	return String(v.AsString())
}

// SpanAttributes returns the values the query mentions (filters, by and
// select) for span i, to show in search results. The span's name is not
// among them: it has its own field (see RefersToName); durations are not
// either, nor the trace-level intrinsics.
func (q *Query) SpanAttributes(t *Trace, i int) []KeyValue {
	return q.appendSpanAttributes(nil, t, i)
}

// appendSpanAttributes is SpanAttributes appending to out[:0] (nil when
// out is nil and there is none), so a caller answering many spans reuses
// one slice.
func (q *Query) appendSpanAttributes(out []KeyValue, t *Trace, i int) []KeyValue {
	attrs := q.attributes()
	out = out[:0]
	for _, a := range attrs {
		if a.Scope == ScopeIntrinsic && (a.Name == IntrinsicName || a.Name == IntrinsicDuration || a.Name == IntrinsicTraceDuration ||
			a.Name == IntrinsicRootName || a.Name == IntrinsicRootServiceName) {
			continue
		}
		key := a.Name
		if slices.ContainsFunc(out, func(kv KeyValue) bool { return kv.Key == key }) {
			continue
		}
		v, ok := firstValue(a, t, i)
		if !ok {
			continue
		}
		if v.Kind == KindStatus || v.Kind == KindSpanKind {
			v = String(v.Text())
		}
		if out == nil {
			out = make([]KeyValue, 0, len(attrs))
		}
		out = append(out, KeyValue{Key: key, Value: v})
	}
	return out
}

// firstValue is attributeValues(a, t, i)[0] (ok false when there is
// none) without building the slice for span, resource and scope
// attributes.
func firstValue(a *Attribute, t *Trace, i int) (Static, bool) {
	sp := &t.Spans[i]
	get := func(m pcommon.Map) (Static, bool) {
		if v, ok := m.Get(a.Name); ok {
			return FromValue(v), true
		}
		return Static{}, false
	}
	switch a.Scope {
	case ScopeSpan:
		return get(sp.Span.Attributes())
	case ScopeResource:
		return get(sp.Resource.Attributes())
	case ScopeInstrumentation:
		return get(sp.Scope.Attributes())
	case ScopeNone:
		if v, ok := get(sp.Span.Attributes()); ok {
			return v, true
		}
		return get(sp.Resource.Attributes())
	}
	vals := attributeValues(a, t, i)
	if len(vals) == 0 {
		return Static{}, false
	}
	return vals[0], true
}

// Values returns a's values on span i of t: none when it is missing,
// several for event and link attributes.
func (a *Attribute) Values(t *Trace, i int) []Static { return attributeValues(a, t, i) }

// MatchesAll reports whether the query is the empty filter `{ }`, which
// every span matches.
func (q *Query) MatchesAll() bool {
	if len(q.Pipeline.Stages) != 1 {
		return false
	}
	f, ok := q.Pipeline.Stages[0].(*SpansetFilter)
	return ok && f.Expr == nil
}

// RefersToName reports whether the query mentions the span name intrinsic,
// which Tempo's search results then carry on each matched span.
func (q *Query) RefersToName() bool {
	for _, a := range q.Attributes() {
		if a.Scope == ScopeIntrinsic && a.Name == IntrinsicName {
			return true
		}
	}
	return false
}

// attributes is Attributes, computed once for a parsed query (callers must
// not change the slice).
func (q *Query) attributes() []*Attribute {
	if q.attrs != nil {
		return q.attrs
	}
	return q.Attributes()
}

// Attributes lists every attribute and intrinsic the query refers to, in order.
func (q *Query) Attributes() []*Attribute {
	var out []*Attribute
	var walkField func(FieldExpr)
	walkField = func(e FieldExpr) {
		switch f := e.(type) {
		case *Attribute:
			out = append(out, f)
		case *UnaryOp:
			walkField(f.Expr)
		case *BinaryOp:
			walkField(f.L)
			walkField(f.R)
		}
	}
	var walkPipeline func(*Pipeline)
	var walkStage func(Stage)
	walkStage = func(st Stage) {
		switch s := st.(type) {
		case *SpansetFilter:
			if s.Expr != nil {
				walkField(s.Expr)
			}
		case *SpansetOp:
			walkStage(s.L)
			walkStage(s.R)
		case *SubPipeline:
			walkPipeline(s.Pipeline)
		case *ScalarFilter:
			if s.Arg != nil {
				walkField(s.Arg)
			}
		case *GroupBy:
			walkField(s.Expr)
		case *Select:
			out = append(out, s.Attrs...)
		case *MetricsAggregate:
			if s.Attr != nil {
				out = append(out, s.Attr)
			}
			out = append(out, s.By...)
		}
	}
	walkPipeline = func(p *Pipeline) {
		for _, st := range p.Stages {
			walkStage(st)
		}
	}
	walkPipeline(q.Pipeline)
	return out
}

// matchSpan is truthy(evalField(e, t, i)) without allocating for the
// common shapes: && and || of `attribute op literal` comparisons on
// single-valued attributes, and their negations. Anything else falls back
// to evalField.
func matchSpan(e FieldExpr, t *Trace, i int) bool {
	switch f := e.(type) {
	case *BinaryOp:
		switch f.Op {
		case "&&":
			return matchSpan(f.L, t, i) && matchSpan(f.R, t, i)
		case "||":
			return matchSpan(f.L, t, i) || matchSpan(f.R, t, i)
		}
		a, aok := f.L.(*Attribute)
		lit, lok := f.R.(*Literal)
		if aok && lok {
			if v, ok := singleValue(a, t, i); ok {
				if f.re != nil {
					return v.Kind == KindString && f.re.MatchString(v.S) == (f.Op == "=~")
				}
				return compare(f.Op, v, lit.Value)
			}
		}
	case *UnaryOp:
		return !matchSpan(f.Expr, t, i)
	case *Literal:
		return f.Value.Kind == KindBool && f.Value.B
	}
	return truthy(evalField(e, t, i))
}

// singleValue is a's value on span i for attributes that have at most one
// (nil Static when missing); ok is false for the multi-valued ones (event
// and link attributes and intrinsics), which need attributeValues.
func singleValue(a *Attribute, t *Trace, i int) (Static, bool) {
	sp := &t.Spans[i]
	get := func(m pcommon.Map) (Static, bool) {
		if v, ok := m.Get(a.Name); ok {
			return FromValue(v), true
		}
		return Static{}, false
	}
	switch a.Scope {
	case ScopeSpan:
		v, _ := get(sp.Span.Attributes())
		return v, true
	case ScopeResource:
		v, _ := get(sp.Resource.Attributes())
		return v, true
	case ScopeInstrumentation:
		v, _ := get(sp.Scope.Attributes())
		return v, true
	case ScopeNone:
		if v, ok := get(sp.Span.Attributes()); ok {
			return v, true
		}
		v, _ := get(sp.Resource.Attributes())
		return v, true
	case ScopeIntrinsic:
		s := sp.Span
		switch a.Name {
		case IntrinsicName:
			return String(s.Name()), true
		case IntrinsicStatus:
			return Status(s.Status().Code()), true
		case IntrinsicKind:
			return SpanKindValue(s.Kind()), true
		case IntrinsicDuration:
			return Static{Kind: KindDuration, I: int64(s.EndTimestamp()) - int64(s.StartTimestamp())}, true
		}
	}
	return Static{}, false
}
