package traceql

import (
	"strconv"
	"strings"
)

// Hint is a condition every trace matching the query satisfies: some span
// carries one of Keys with one of Values. Keys use the store's posting names
// ("span.x", "resource.x", "name", "status", "kind"); values are typed.
type Hint struct {
	Keys   []string
	Values []HintValue
}

// HintValue is a typed value: Type is "string", "int", "float", "bool" or "keyword".
type HintValue struct {
	Type  string
	Value string
}

// Hints returns conditions a store can check with postings before
// evaluating. They are necessary, not sufficient: the engine still decides.
func (q *Query) Hints() []Hint {
	return spansetHints(q.Pipeline.Stages[0].(SpansetExpr))
}

func spansetHints(e SpansetExpr) []Hint {
	switch s := e.(type) {
	case *SpansetFilter:
		if s.Expr == nil {
			return nil
		}
		return fieldHints(s.Expr)
	case *SubPipeline:
		return spansetHints(s.Pipeline.Stages[0].(SpansetExpr))
	case *SpansetOp:
		switch {
		case s.Op == "||":
			return nil
		case strings.HasPrefix(s.Op, "!"):
			return spansetHints(s.R) // the left side may be empty
		}
		return append(spansetHints(s.L), spansetHints(s.R)...)
	}
	return nil
}

// fieldHints collects `attr = literal` terms joined by && at the top level.
func fieldHints(e FieldExpr) []Hint {
	b, ok := e.(*BinaryOp)
	if !ok {
		return nil
	}
	switch b.Op {
	case "&&":
		return append(fieldHints(b.L), fieldHints(b.R)...)
	case "=":
		a, aok := b.L.(*Attribute)
		l, lok := b.R.(*Literal)
		if !aok || !lok {
			a, aok = b.R.(*Attribute)
			l, lok = b.L.(*Literal)
		}
		if !aok || !lok {
			return nil
		}
		keys := hintKeys(a)
		vals := hintValues(l.Value)
		if keys == nil || vals == nil {
			return nil
		}
		return []Hint{{Keys: keys, Values: vals}}
	}
	return nil
}

func hintKeys(a *Attribute) []string {
	switch a.Scope {
	case ScopeSpan:
		return []string{"span." + a.Name}
	case ScopeResource:
		return []string{"resource." + a.Name}
	case ScopeNone:
		return []string{"span." + a.Name, "resource." + a.Name}
	case ScopeIntrinsic:
		switch a.Name {
		case IntrinsicName, IntrinsicStatus, IntrinsicKind:
			return []string{a.Name}
		}
	}
	return nil
}

func hintValues(v Static) []HintValue {
	switch v.Kind {
	case KindString:
		return []HintValue{{"string", v.S}}
	case KindInt:
		return []HintValue{{"int", strconv.FormatInt(v.I, 10)}, {"float", strconv.FormatFloat(float64(v.I), 'g', -1, 64)}}
	case KindFloat:
		out := []HintValue{{"float", strconv.FormatFloat(v.F, 'g', -1, 64)}}
		if v.F == float64(int64(v.F)) {
			out = append(out, HintValue{"int", strconv.FormatInt(int64(v.F), 10)})
		}
		return out
	case KindBool:
		return []HintValue{{"bool", strconv.FormatBool(v.B)}}
	case KindStatus, KindSpanKind:
		return []HintValue{{"keyword", v.Text()}}
	}
	return nil
}
