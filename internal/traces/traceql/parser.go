package traceql

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// MaxQueryLength bounds the input; longer queries are rejected before lexing.
const MaxQueryLength = 64 << 10

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 200

type parser struct {
	toks   []token
	i      int
	depth  int
	nested int // inside a parenthesised pipeline, where metrics functions may not appear
}

// Parse parses a TraceQL query. Errors are *ParseError with a position.
func Parse(src string) (*Query, error) {
	if len(src) > MaxQueryLength {
		return nil, &ParseError{Pos: MaxQueryLength, Msg: fmt.Sprintf("query longer than %d bytes", MaxQueryLength)}
	}
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	pl, err := p.pipeline()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.errf(t, "unexpected %s after end of query", describe(t))
	}
	q := &Query{Pipeline: pl}
	q.links = linkNeed(q)
	q.attrs = q.Attributes()
	return q, nil
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token { t := p.toks[p.i]; p.i++; return t }

func (p *parser) isPunct(s string) bool { t := p.peek(); return t.kind == tPunct && t.text == s }

func (p *parser) expect(s string) (token, error) {
	t := p.peek()
	if t.kind != tPunct || t.text != s {
		return t, p.errf(t, "expected %q, got %s", s, describe(t))
	}
	return p.next(), nil
}

func (p *parser) errf(t token, format string, args ...any) error {
	return &ParseError{Pos: t.pos, Msg: fmt.Sprintf(format, args...)}
}

func describe(t token) string {
	switch t.kind {
	case tEOF:
		return "end of query"
	case tString:
		return fmt.Sprintf("string %q", t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return p.errf(p.peek(), "query nested deeper than %d", maxDepth)
	}
	return nil
}

func (p *parser) pipeline() (*Pipeline, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	pl := &Pipeline{Pos: p.peek().pos}
	first, err := p.spansetOr()
	if err != nil {
		return nil, err
	}
	pl.Stages = append(pl.Stages, first)
	for p.isPunct("|") {
		bar := p.next()
		if m, ok := pl.Stages[len(pl.Stages)-1].(*MetricsAggregate); ok {
			if t := p.peek(); t.kind == tIdent && (t.text == "topk" || t.text == "bottomk") && m.TopK == 0 {
				if err := p.topK(m); err != nil {
					return nil, err
				}
				continue
			}
			return nil, p.errf(bar, "a metrics function must be the last stage of the query (only topk() or bottomk() may follow it)")
		}
		st, err := p.stage()
		if err != nil {
			return nil, err
		}
		pl.Stages = append(pl.Stages, st)
	}
	return pl, nil
}

var aggregates = map[string]bool{"count": true, "avg": true, "min": true, "max": true, "sum": true}

func (p *parser) stage() (Stage, error) {
	t := p.peek()
	if t.kind == tIdent {
		if _, ok := metricsFuncs[t.text]; ok {
			if p.nested > 0 {
				return nil, p.errf(t, "%s() is only allowed at the end of the whole query", t.text)
			}
			return p.metricsAggregate()
		}
		switch {
		case aggregates[t.text]:
			return p.scalarFilter()
		case t.text == "by":
			p.next()
			if _, err := p.expect("("); err != nil {
				return nil, err
			}
			e, err := p.fieldOr()
			if err != nil {
				return nil, err
			}
			if _, err := p.expect(")"); err != nil {
				return nil, err
			}
			return &GroupBy{Pos: t.pos, Expr: e}, nil
		case t.text == "select":
			p.next()
			if _, err := p.expect("("); err != nil {
				return nil, err
			}
			sel := &Select{Pos: t.pos}
			for {
				at := p.peek()
				e, err := p.operand()
				if err != nil {
					return nil, err
				}
				a, ok := e.(*Attribute)
				if !ok {
					return nil, p.errf(at, "select() takes attributes, got %s", describe(at))
				}
				sel.Attrs = append(sel.Attrs, a)
				if !p.isPunct(",") {
					break
				}
				p.next()
			}
			if _, err := p.expect(")"); err != nil {
				return nil, err
			}
			return sel, nil
		case t.text == "coalesce":
			p.next()
			if _, err := p.expect("("); err != nil {
				return nil, err
			}
			if _, err := p.expect(")"); err != nil {
				return nil, err
			}
			return &Coalesce{Pos: t.pos}, nil
		}
	}
	return p.spansetOr()
}

var comparisonOps = map[string]bool{"=": true, "!=": true, ">": true, ">=": true, "<": true, "<=": true, "=~": true, "!~": true}

func (p *parser) scalarFilter() (Stage, error) {
	t := p.next()
	sf := &ScalarFilter{Pos: t.pos, Agg: t.text}
	if _, err := p.expect("("); err != nil {
		return nil, err
	}
	if t.text == "count" {
		if !p.isPunct(")") {
			return nil, p.errf(p.peek(), "count() takes no argument")
		}
	} else {
		if p.isPunct(")") {
			return nil, p.errf(p.peek(), "%s() needs an argument", t.text)
		}
		e, err := p.fieldOr()
		if err != nil {
			return nil, err
		}
		sf.Arg = e
	}
	if _, err := p.expect(")"); err != nil {
		return nil, err
	}
	op := p.peek()
	if op.kind != tPunct || !comparisonOps[op.text] || op.text == "=~" || op.text == "!~" {
		return nil, p.errf(op, "expected a comparison after %s(), got %s", t.text, describe(op))
	}
	p.next()
	vt := p.peek()
	v, err := p.operand()
	if err != nil {
		return nil, err
	}
	lit, ok := v.(*Literal)
	if !ok {
		return nil, p.errf(vt, "expected a number or duration, got %s", describe(vt))
	}
	sf.Op, sf.Value = op.text, lit.Value
	return sf, nil
}

func (p *parser) spansetOr() (SpansetExpr, error) {
	l, err := p.spansetAnd()
	if err != nil {
		return nil, err
	}
	for p.isPunct("||") {
		t := p.next()
		r, err := p.spansetAnd()
		if err != nil {
			return nil, err
		}
		l = &SpansetOp{Pos: t.pos, Op: "||", L: l, R: r}
	}
	return l, nil
}

func (p *parser) spansetAnd() (SpansetExpr, error) {
	l, err := p.spansetStructural()
	if err != nil {
		return nil, err
	}
	for p.isPunct("&&") {
		t := p.next()
		r, err := p.spansetStructural()
		if err != nil {
			return nil, err
		}
		l = &SpansetOp{Pos: t.pos, Op: "&&", L: l, R: r}
	}
	return l, nil
}

var structuralOps = map[string]bool{">": true, ">>": true, "<": true, "<<": true, "~": true,
	"!>": true, "!>>": true, "!<": true, "!<<": true, "!~": true,
	"&>": true, "&>>": true, "&<": true, "&<<": true, "&~": true}

func (p *parser) spansetStructural() (SpansetExpr, error) {
	l, err := p.spansetPrimary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if t.kind != tPunct || !structuralOps[t.text] {
			return l, nil
		}
		p.next()
		r, err := p.spansetPrimary()
		if err != nil {
			return nil, err
		}
		l = &SpansetOp{Pos: t.pos, Op: t.text, L: l, R: r}
	}
}

func (p *parser) spansetPrimary() (SpansetExpr, error) {
	t := p.peek()
	switch {
	case t.kind == tPunct && t.text == "{":
		p.next()
		f := &SpansetFilter{Pos: t.pos}
		if !p.isPunct("}") {
			e, err := p.fieldOr()
			if err != nil {
				return nil, err
			}
			f.Expr = e
		}
		if _, err := p.expect("}"); err != nil {
			return nil, err
		}
		return f, nil
	case t.kind == tPunct && t.text == "(":
		p.next()
		p.nested++
		pl, err := p.pipeline()
		p.nested--
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(")"); err != nil {
			return nil, err
		}
		if len(pl.Stages) == 1 {
			return pl.Stages[0].(SpansetExpr), nil
		}
		return &SubPipeline{Pos: t.pos, Pipeline: pl}, nil
	}
	return nil, p.errf(t, "expected a spanset filter \"{ ... }\", got %s", describe(t))
}

func (p *parser) fieldOr() (FieldExpr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	l, err := p.fieldAnd()
	if err != nil {
		return nil, err
	}
	for p.isPunct("||") {
		t := p.next()
		r, err := p.fieldAnd()
		if err != nil {
			return nil, err
		}
		l = &BinaryOp{Pos: t.pos, Op: "||", L: l, R: r}
	}
	return l, nil
}

func (p *parser) fieldAnd() (FieldExpr, error) {
	l, err := p.fieldUnary()
	if err != nil {
		return nil, err
	}
	for p.isPunct("&&") {
		t := p.next()
		r, err := p.fieldUnary()
		if err != nil {
			return nil, err
		}
		l = &BinaryOp{Pos: t.pos, Op: "&&", L: l, R: r}
	}
	return l, nil
}

func (p *parser) fieldUnary() (FieldExpr, error) {
	if p.isPunct("!") {
		t := p.next()
		if err := p.enter(); err != nil {
			return nil, err
		}
		defer func() { p.depth-- }()
		e, err := p.fieldUnary()
		if err != nil {
			return nil, err
		}
		return &UnaryOp{Pos: t.pos, Op: "!", Expr: e}, nil
	}
	return p.comparison()
}

var arithmeticOps = map[string]bool{"+": true, "-": true, "*": true, "/": true, "%": true, "^": true}

// noArithmetic rejects `a + b` with a clear message instead of a confusing one.
func (p *parser) noArithmetic() error {
	if t := p.peek(); t.kind == tPunct && arithmeticOps[t.text] {
		return p.errf(t, "arithmetic is not supported")
	}
	return nil
}

func (p *parser) comparison() (FieldExpr, error) {
	l, err := p.operand()
	if err != nil {
		return nil, err
	}
	if err := p.noArithmetic(); err != nil {
		return nil, err
	}
	t := p.peek()
	if t.kind != tPunct || !comparisonOps[t.text] {
		return l, nil
	}
	p.next()
	r, err := p.operand()
	if err != nil {
		return nil, err
	}
	if err := p.noArithmetic(); err != nil {
		return nil, err
	}
	b := &BinaryOp{Pos: t.pos, Op: t.text, L: l, R: r}
	if t.text == "=~" || t.text == "!~" {
		lit, ok := r.(*Literal)
		if !ok || lit.Value.Kind != KindString {
			return nil, p.errf(t, "%s needs a string regular expression on the right", t.text)
		}
		re, err := regexp.Compile("^(?:" + lit.Value.S + ")$")
		if err != nil {
			return nil, &ParseError{Pos: lit.Pos, Msg: fmt.Sprintf("invalid regular expression: %v", err)}
		}
		b.re = re
	}
	return b, nil
}

var keywordStatics = map[string]Static{"true": Bool(true), "false": Bool(false), "nil": {Kind: KindNil}}

func (p *parser) operand() (FieldExpr, error) {
	t := p.peek()
	switch t.kind {
	case tString:
		p.next()
		return &Literal{Pos: t.pos, Value: String(t.text)}, nil
	case tInt:
		p.next()
		return &Literal{Pos: t.pos, Value: Int(t.i)}, nil
	case tFloat:
		p.next()
		return &Literal{Pos: t.pos, Value: Float(t.f)}, nil
	case tDuration:
		p.next()
		return &Literal{Pos: t.pos, Value: Duration(t.d)}, nil
	case tPunct:
		switch t.text {
		case "(":
			p.next()
			e, err := p.fieldOr()
			if err != nil {
				return nil, err
			}
			if _, err := p.expect(")"); err != nil {
				return nil, err
			}
			return e, nil
		case "-":
			p.next()
			n := p.peek()
			switch n.kind {
			case tInt:
				p.next()
				return &Literal{Pos: t.pos, Value: Int(-n.i)}, nil
			case tFloat:
				p.next()
				return &Literal{Pos: t.pos, Value: Float(-n.f)}, nil
			case tDuration:
				p.next()
				return &Literal{Pos: t.pos, Value: Duration(-n.d)}, nil
			}
			return nil, p.errf(n, "expected a number after '-', got %s", describe(n))
		case "+", "*", "/", "%", "^":
			return nil, p.errf(t, "arithmetic is not supported")
		}
	case tIdent:
		p.next()
		return p.identifier(t)
	}
	return nil, p.errf(t, "expected a value or attribute, got %s", describe(t))
}

func (p *parser) identifier(t token) (FieldExpr, error) {
	text := t.text
	if v, ok := keywordStatics[text]; ok {
		return &Literal{Pos: t.pos, Value: v}, nil
	}
	if c, ok := statusNames[text]; ok {
		return &Literal{Pos: t.pos, Value: Status(c)}, nil
	}
	if k, ok := kindNames[text]; ok {
		return &Literal{Pos: t.pos, Value: SpanKindValue(k)}, nil
	}
	if canon, ok := intrinsicAliases[text]; ok {
		return &Attribute{Pos: t.pos, Scope: ScopeIntrinsic, Name: canon}, nil
	}
	quoted := t.i == 1
	if name, ok := strings.CutPrefix(text, "."); ok {
		if name == "" {
			return nil, p.errf(t, "attribute name missing after '.'")
		}
		return &Attribute{Pos: t.pos, Scope: ScopeNone, Name: name, quoted: quoted}, nil
	}
	for sc, prefix := range scopeNames {
		if name, ok := strings.CutPrefix(text, prefix+"."); ok {
			if name == "" && !quoted {
				return nil, p.errf(t, "attribute name missing after %q", prefix+".")
			}
			return &Attribute{Pos: t.pos, Scope: sc, Name: name, quoted: quoted}, nil
		}
	}
	if strings.Contains(text, ":") {
		return nil, p.errf(t, "unknown intrinsic %q", text)
	}
	return nil, p.errf(t, "unknown identifier %q (attributes need a scope: span., resource. or a leading '.')", text)
}

// ParseAttribute parses one attribute or intrinsic as written in a query,
// e.g. "resource.service.name", ".http.method", "status" or "span:name".
func ParseAttribute(s string) (*Attribute, error) {
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	t := p.peek()
	if t.kind != tIdent {
		return nil, p.errf(t, "expected an attribute, got %s", describe(t))
	}
	e, err := p.operand()
	if err != nil {
		return nil, err
	}
	a, ok := e.(*Attribute)
	if !ok {
		return nil, p.errf(t, "expected an attribute, got %s", describe(t))
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.errf(t, "unexpected %s after attribute", describe(t))
	}
	return a, nil
}

// PostingKeys returns the store posting keys that hold a's values, or nil
// when the store does not index it. Unlike Hints, it includes the keys of
// event and link attributes ("event.<name>", "link.<name>"), which blocks
// cut before the store indexed them lack: fine for listing values, not for
// skipping traces.
func PostingKeys(a *Attribute) []string {
	switch a.Scope {
	case ScopeEvent:
		return []string{"event." + a.Name}
	case ScopeLink:
		return []string{"link." + a.Name}
	}
	return hintKeys(a)
}

// Intrinsics lists the intrinsics the tag APIs offer, as Tempo's
// /api/v2/search/tags documents them (scope "intrinsic"): each name in its
// plain and scoped spelling, sorted.
func Intrinsics() []string {
	return []string{"duration", "event:name", "event:timeSinceStart", "instrumentation:name", "instrumentation:version",
		"kind", "name", "rootName", "rootServiceName", "span:duration", "span:kind", "span:name", "span:status",
		"span:statusMessage", "status", "statusMessage", "trace:duration", "trace:rootName", "trace:rootService",
		"traceDuration"}
}

// metricsAggregate parses `rate() by (a, b)`, `quantile_over_time(duration,
// .99, .5)` and the other metrics functions, and skips a trailing
// `with(...)` of query hints (such as exemplars=true), which only tune how
// Tempo executes the query.
func (p *parser) metricsAggregate() (Stage, error) {
	t := p.next()
	m := &MetricsAggregate{Pos: t.pos, Op: t.text}
	if _, err := p.expect("("); err != nil {
		return nil, err
	}
	if metricsFuncs[t.text] {
		at := p.peek()
		if at.kind != tIdent {
			return nil, p.errf(at, "%s() needs an attribute, got %s", t.text, describe(at))
		}
		e, err := p.operand()
		if err != nil {
			return nil, err
		}
		a, ok := e.(*Attribute)
		if !ok {
			return nil, p.errf(at, "%s() needs an attribute, got %s", t.text, describe(at))
		}
		m.Attr = a
		if t.text == "quantile_over_time" {
			for p.isPunct(",") {
				p.next()
				qt := p.next()
				var q float64
				switch qt.kind {
				case tInt:
					q = float64(qt.i)
				case tFloat:
					q = qt.f
				case tIdent: // ".99" lexes as an identifier
					f, err := strconv.ParseFloat(qt.text, 64)
					if err != nil || !strings.HasPrefix(qt.text, ".") {
						return nil, p.errf(qt, "expected a quantile between 0 and 1, got %s", describe(qt))
					}
					q = f
				default:
					return nil, p.errf(qt, "expected a quantile between 0 and 1, got %s", describe(qt))
				}
				if q < 0 || q > 1 {
					return nil, p.errf(qt, "quantile %v is not between 0 and 1", q)
				}
				m.Quantiles = append(m.Quantiles, q)
			}
			if len(m.Quantiles) == 0 {
				return nil, p.errf(p.peek(), "quantile_over_time() needs at least one quantile after the attribute")
			}
		}
	} else if t.text == "compare" {
		if err := p.compareArgs(m); err != nil {
			return nil, err
		}
	} else if !p.isPunct(")") {
		return nil, p.errf(p.peek(), "%s() takes no argument", t.text)
	}
	if _, err := p.expect(")"); err != nil {
		return nil, err
	}
	if b := p.peek(); b.kind == tIdent && b.text == "by" {
		p.next()
		if _, err := p.expect("("); err != nil {
			return nil, err
		}
		for {
			at := p.peek()
			e, err := p.operand()
			if err != nil {
				return nil, err
			}
			a, ok := e.(*Attribute)
			if !ok {
				return nil, p.errf(at, "by() takes attributes, got %s", describe(at))
			}
			m.By = append(m.By, a)
			if !p.isPunct(",") {
				break
			}
			p.next()
		}
		if _, err := p.expect(")"); err != nil {
			return nil, err
		}
	}
	if w := p.peek(); w.kind == tIdent && w.text == "with" {
		p.next()
		if _, err := p.expect("("); err != nil {
			return nil, err
		}
		for depth := 1; depth > 0; {
			n := p.next()
			switch {
			case n.kind == tEOF:
				return nil, p.errf(n, "unterminated with(...)")
			case n.kind == tPunct && n.text == "(":
				depth++
			case n.kind == tPunct && n.text == ")":
				depth--
			}
		}
	}
	return m, nil
}

// topK parses `topk(n)` or `bottomk(n)` after a metrics function.
func (p *parser) topK(m *MetricsAggregate) error {
	t := p.next()
	if _, err := p.expect("("); err != nil {
		return err
	}
	n := p.peek()
	if n.kind != tInt || n.i <= 0 {
		return p.errf(n, "%s() needs a positive integer, got %s", t.text, describe(n))
	}
	p.next()
	if _, err := p.expect(")"); err != nil {
		return err
	}
	m.TopK, m.Bottom = int(n.i), t.text == "bottomk"
	return nil
}

// compareArgs parses compare({filter}[, topN[, start, end]]).
func (p *parser) compareArgs(m *MetricsAggregate) error {
	at := p.peek()
	e, err := p.spansetPrimary()
	if err != nil {
		return err
	}
	f, ok := e.(*SpansetFilter)
	if !ok {
		return p.errf(at, "compare() takes one spanset filter {...} as its selection")
	}
	m.Selection, m.CompareTopN = f, 10
	var nums []int64
	for p.isPunct(",") {
		p.next()
		n := p.next()
		if n.kind != tInt || n.i < 0 {
			return p.errf(n, "compare() takes non-negative integers after the filter, got %s", describe(n))
		}
		nums = append(nums, n.i)
	}
	switch len(nums) {
	case 0:
	case 1, 3:
		if nums[0] <= 0 {
			return p.errf(p.peek(), "compare(): the number of values per attribute must be positive")
		}
		m.CompareTopN = int(nums[0])
		if len(nums) == 3 {
			m.CompareStart, m.CompareEnd = nums[1], nums[2]
		}
	default:
		return p.errf(p.peek(), "compare() takes a filter, then optionally topN, then both start and end or neither")
	}
	return nil
}
