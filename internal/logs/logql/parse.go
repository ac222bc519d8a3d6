package logql

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

var rangeOps = map[string]bool{
	"rate": true, "rate_counter": true, "count_over_time": true, "bytes_rate": true, "bytes_over_time": true,
	"absent_over_time": true, "sum_over_time": true, "avg_over_time": true, "max_over_time": true,
	"min_over_time": true, "stdvar_over_time": true, "stddev_over_time": true, "quantile_over_time": true,
	"first_over_time": true, "last_over_time": true,
}

// unwrapOps need `| unwrap`; the others must not have it (rate takes either).
var unwrapOnly = map[string]bool{
	"sum_over_time": true, "avg_over_time": true, "max_over_time": true, "min_over_time": true,
	"stdvar_over_time": true, "stddev_over_time": true, "quantile_over_time": true,
	"first_over_time": true, "last_over_time": true, "rate_counter": true,
}

var vectorOps = map[string]bool{
	"sum": true, "avg": true, "min": true, "max": true, "count": true, "stddev": true, "stdvar": true,
	"topk": true, "bottomk": true, "sort": true, "sort_desc": true,
}

// binary operator precedence, Prometheus order.
var binPrec = map[string]int{
	"or": 1, "and": 2, "unless": 2,
	"==": 3, "!=": 3, "<": 3, "<=": 3, ">": 3, ">=": 3,
	"+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "^": 6,
}

type parser struct {
	src  string
	toks []token
	i    int
}

// ParseExpr parses a LogQL query.
func ParseExpr(src string) (Expr, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, toks: toks}
	var e Expr
	err = p.catch(func() {
		e = p.expr(0)
		if p.peek().kind != tEOF {
			p.fail(p.peek(), "unexpected "+p.describe(p.peek()))
		}
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// ParseLogSelector parses a log query (selector and pipeline) only.
func ParseLogSelector(src string) (*LogSelectorExpr, error) {
	e, err := ParseExpr(src)
	if err != nil {
		return nil, err
	}
	ls, ok := e.(*LogSelectorExpr)
	if !ok {
		return nil, &ParseError{Line: 1, Col: 1, Msg: "a log query is required here, not a metric query"}
	}
	return ls, nil
}

// ParseMatchers parses a stream selector such as {app="x"}.
func ParseMatchers(src string) ([]*labels.Matcher, error) {
	ls, err := ParseLogSelector(src)
	if err != nil {
		return nil, err
	}
	if len(ls.Pipeline) > 0 {
		return nil, &ParseError{Line: 1, Col: 1, Msg: "only a stream selector is allowed here"}
	}
	return ls.Matchers, nil
}

type parsePanic struct{ err *ParseError }

func (p *parser) catch(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			pp, ok := r.(parsePanic)
			if !ok {
				panic(r)
			}
			err = pp.err
		}
	}()
	fn()
	return nil
}

// fail aborts parsing; caught by catch. The parser unwinds with panic to
// keep each production short; nothing else is allowed to panic.
func (p *parser) fail(t token, msg string) {
	panic(parsePanic{posError(p.src, t.pos, msg)})
}

func (p *parser) describe(t token) string {
	switch t.kind {
	case tIdent:
		return "identifier " + strconv.Quote(t.text)
	case tString:
		return "string " + strconv.Quote(t.text)
	case tNumber, tDuration, tBytes:
		return tokNames[t.kind] + " " + t.text
	}
	return strconv.Quote(tokNames[t.kind])
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) peekN(n int) token {
	if p.i+n < len(p.toks) {
		return p.toks[p.i+n]
	}
	return p.toks[len(p.toks)-1]
}
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) expect(k tokKind, what string) token {
	t := p.next()
	if t.kind != k {
		p.fail(t, fmt.Sprintf("expected %s, got %s", what, p.describe(t)))
	}
	return t
}

func (p *parser) isKeyword(word string) bool {
	t := p.peek()
	return t.kind == tIdent && t.text == word
}

func (p *parser) binOp() (string, bool) {
	t := p.peek()
	switch t.kind {
	case tAdd, tSub, tMul, tDiv, tMod, tPow, tEqEq, tNeq, tGt, tGte, tLt, tLte:
		return t.text, true
	case tIdent:
		if t.text == "and" || t.text == "or" || t.text == "unless" {
			return t.text, true
		}
	}
	return "", false
}

func (p *parser) expr(minPrec int) Expr {
	lhs := p.unary()
	for {
		op, ok := p.binOp()
		if !ok || binPrec[op] <= minPrec {
			return lhs
		}
		opTok := p.next()
		be := &BinOpExpr{Op: op}
		if p.isKeyword("bool") {
			p.next()
			be.Bool = true
		}
		if p.isKeyword("on") || p.isKeyword("ignoring") {
			be.Matching = &VectorMatching{On: p.next().text == "on", Labels: p.labelList()}
		}
		if p.isKeyword("group_left") || p.isKeyword("group_right") {
			g := p.next()
			if be.Matching == nil {
				p.fail(g, g.text+" needs on (...) or ignoring (...) before it")
			}
			switch op {
			case "and", "or", "unless":
				p.fail(g, "no grouping allowed for \""+op+"\" operation")
			}
			be.Matching.Card = g.text
			if p.peek().kind == tLParen {
				be.Matching.Include = p.labelList()
			}
		}
		next := binPrec[op]
		if op == "^" {
			next-- // right-associative
		}
		be.LHS, be.RHS = lhs, p.expr(next)
		for _, side := range []Expr{be.LHS, be.RHS} {
			if _, ok := unparen(side).(*LogSelectorExpr); ok {
				p.fail(opTok, "binary operations need metric queries on both sides, not a log query")
			}
		}
		if be.Bool && !isComparison(op) {
			p.fail(opTok, "bool modifier is only allowed on comparison operators")
		}
		lhs = be
	}
}

func unparen(e Expr) Expr {
	for {
		pe, ok := e.(*ParenExpr)
		if !ok {
			return e
		}
		e = pe.Inner
	}
}

func isComparison(op string) bool {
	switch op {
	case "==", "!=", ">", ">=", "<", "<=":
		return true
	}
	return false
}

func (p *parser) unary() Expr {
	t := p.peek()
	if t.kind == tSub || t.kind == tAdd {
		p.next()
		inner := p.unary()
		if l, ok := inner.(*LiteralExpr); ok {
			if t.kind == tSub {
				l.Val = -l.Val
			}
			return l
		}
		// A sign applies to a metric query only, as in Loki; "-{app="x"}" would
		// otherwise print as "-1 * {…}", which does not parse.
		if _, ok := unparen(inner).(*LogSelectorExpr); ok {
			p.fail(t, "a unary sign needs a metric query, not a log query")
		}
		if t.kind == tSub {
			return &BinOpExpr{Op: "*", LHS: &LiteralExpr{Val: -1}, RHS: inner}
		}
		return inner
	}
	return p.primary()
}

func (p *parser) primary() Expr {
	t := p.peek()
	switch t.kind {
	case tNumber:
		p.next()
		return &LiteralExpr{Val: t.num}
	case tLParen:
		p.next()
		e := p.expr(0)
		p.expect(tRParen, `")"`)
		return &ParenExpr{Inner: e}
	case tLBrace:
		return p.logSelector(false)
	case tIdent:
		switch {
		case rangeOps[t.text]:
			return p.rangeAgg()
		case vectorOps[t.text]:
			return p.vectorAgg()
		case t.text == "label_replace":
			return p.labelReplace()
		case t.text == "vector":
			p.next()
			p.expect(tLParen, `"("`)
			v := p.number()
			p.expect(tRParen, `")"`)
			return &VectorExpr{Val: v}
		}
		p.fail(t, "unknown function or keyword "+strconv.Quote(t.text))
	}
	p.fail(t, "unexpected "+p.describe(t))
	return nil
}

func (p *parser) labelReplace() Expr {
	p.next()
	p.expect(tLParen, `"("`)
	e := &LabelReplaceExpr{Left: p.expr(0)}
	if _, ok := unparen(e.Left).(*LogSelectorExpr); ok {
		p.fail(p.peek(), "label_replace needs a metric query, not a log query")
	}
	args := make([]token, 4)
	for i := range args {
		p.expect(tComma, `","`)
		args[i] = p.expect(tString, "quoted string")
	}
	p.expect(tRParen, `")"`)
	e.Dst, e.Replacement, e.Src, e.Re = args[0].text, args[1].text, args[2].text, args[3].text
	if e.Dst == "" || sanitizeLabelName(e.Dst) != e.Dst {
		p.fail(args[0], "invalid destination label name in label_replace(): "+e.Dst)
	}
	re, err := regexp.Compile("^(?s:" + e.Re + ")$")
	if err != nil {
		p.fail(args[3], "invalid regular expression in label_replace(): "+e.Re)
	}
	e.re = re
	return e
}

func (p *parser) number() float64 {
	neg := false
	if p.peek().kind == tSub {
		p.next()
		neg = true
	}
	t := p.expect(tNumber, "number")
	if neg {
		return -t.num
	}
	return t.num
}

func (p *parser) labelList() []string {
	p.expect(tLParen, `"("`)
	var out []string
	for p.peek().kind != tRParen {
		out = append(out, p.expect(tIdent, "label name").text)
		if p.peek().kind == tComma {
			p.next()
			continue
		}
		break
	}
	p.expect(tRParen, `")"`)
	return out
}

func (p *parser) grouping() *Grouping {
	if p.isKeyword("by") || p.isKeyword("without") {
		without := p.next().text == "without"
		return &Grouping{Without: without, Labels: p.labelList()}
	}
	return nil
}

func (p *parser) vectorAgg() Expr {
	op := p.next().text
	e := &VectorAggExpr{Op: op}
	e.Grouping = p.grouping()
	p.expect(tLParen, `"("`)
	if op == "topk" || op == "bottomk" {
		t := p.expect(tNumber, "number of series")
		if t.num != float64(int(t.num)) || t.num < 1 {
			p.fail(t, op+" needs a positive integer parameter")
		}
		e.Param = int(t.num)
		p.expect(tComma, `","`)
	}
	e.Left = p.expr(0)
	if _, ok := unparen(e.Left).(*LogSelectorExpr); ok {
		p.fail(p.peek(), op+" needs a metric query, not a log query")
	}
	p.expect(tRParen, `")"`)
	if g := p.grouping(); g != nil {
		if e.Grouping != nil {
			p.fail(p.peek(), "grouping given twice")
		}
		e.Grouping = g
	}
	return e
}

func (p *parser) rangeAgg() Expr {
	opTok := p.next()
	e := &RangeAggExpr{Op: opTok.text}
	p.expect(tLParen, `"("`)
	if e.Op == "quantile_over_time" {
		e.Param = p.number()
		p.expect(tComma, `","`)
	}
	e.Left = p.logRange()
	p.expect(tRParen, `")"`)
	e.Grouping = p.grouping()
	if unwrapOnly[e.Op] && e.Left.Unwrap == nil {
		p.fail(opTok, e.Op+" needs an unwrapped range: add | unwrap <label>")
	}
	if e.Left.Unwrap != nil && !unwrapOnly[e.Op] && e.Op != "rate" {
		p.fail(opTok, e.Op+" does not take an unwrapped range")
	}
	if e.Grouping != nil && e.Left.Unwrap == nil {
		p.fail(opTok, "grouping is only allowed on unwrapped range aggregations")
	}
	return e
}

func (p *parser) logRange() *LogRange {
	r := &LogRange{}
	if p.peek().kind == tLParen {
		p.next()
		r.Left, r.Unwrap = p.logSelectorWithUnwrap()
		p.expect(tRParen, `")"`)
		r.Interval = p.rangeDuration()
	} else {
		sel := p.logSelectorHead()
		if p.peek().kind == tLBrack {
			r.Interval = p.rangeDuration()
			r.Left = sel
			r.Unwrap = p.pipeline(sel, true)
		} else {
			r.Left = sel
			r.Unwrap = p.pipeline(sel, true)
			r.Interval = p.rangeDuration()
		}
	}
	if p.isKeyword("offset") {
		p.next()
		r.Offset = p.expect(tDuration, "offset duration").dur
	}
	return r
}

func (p *parser) rangeDuration() time.Duration {
	p.expect(tLBrack, `"[" and a range`)
	t := p.expect(tDuration, "range duration")
	p.expect(tRBrack, `"]"`)
	if t.dur <= 0 {
		p.fail(t, "range must be positive")
	}
	return t.dur
}

func (p *parser) logSelectorWithUnwrap() (*LogSelectorExpr, *Unwrap) {
	sel := p.logSelectorHead()
	u := p.pipeline(sel, true)
	return sel, u
}

func (p *parser) logSelector(allowUnwrap bool) *LogSelectorExpr {
	sel := p.logSelectorHead()
	p.pipeline(sel, allowUnwrap)
	return sel
}

func (p *parser) logSelectorHead() *LogSelectorExpr {
	open := p.expect(tLBrace, `"{"`)
	sel := &LogSelectorExpr{}
	for p.peek().kind != tRBrace {
		name := p.expect(tIdent, "label name")
		opT := p.next()
		var mt labels.MatchType
		switch opT.kind {
		case tEq:
			mt = labels.MatchEqual
		case tNeq:
			mt = labels.MatchNotEqual
		case tRe:
			mt = labels.MatchRegexp
		case tNre:
			mt = labels.MatchNotRegexp
		default:
			p.fail(opT, "expected =, !=, =~ or !~ in stream selector, got "+p.describe(opT))
		}
		val := p.expect(tString, "quoted label value")
		m, err := labels.NewMatcher(mt, name.text, val.text)
		if err != nil {
			p.fail(val, "invalid regexp: "+err.Error())
		}
		sel.Matchers = append(sel.Matchers, m)
		if p.peek().kind == tComma {
			p.next()
			continue
		}
		break
	}
	p.expect(tRBrace, `"}" or ","`)
	if len(sel.Matchers) == 0 {
		p.fail(open, "queries require at least one label matcher in the stream selector")
	}
	empty := true
	for _, m := range sel.Matchers {
		if !m.Matches("") {
			empty = false
		}
	}
	if empty {
		p.fail(open, "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will")
	}
	return sel
}

// pipeline parses stages into sel; an unwrap (only where allowed) ends it
// and takes the label filters after it.
func (p *parser) pipeline(sel *LogSelectorExpr, allowUnwrap bool) *Unwrap {
	for {
		t := p.peek()
		switch t.kind {
		case tPipeExact, tNeq, tPipeMatch, tNre, tPipePat, tNpat:
			sel.Pipeline = append(sel.Pipeline, p.lineFilter())
			continue
		case tPipe:
		default:
			return nil
		}
		p.next()
		kw := p.peek()
		if kw.kind == tIdent && (p.peekN(1).kind != tEq && p.peekN(1).kind != tNeq && p.peekN(1).kind != tRe &&
			p.peekN(1).kind != tNre && p.peekN(1).kind != tEqEq && p.peekN(1).kind != tGt && p.peekN(1).kind != tGte &&
			p.peekN(1).kind != tLt && p.peekN(1).kind != tLte) {
			switch kw.text {
			case "json", "logfmt", "regexp", "pattern", "unpack":
				sel.Pipeline = append(sel.Pipeline, p.parserStage())
				continue
			case "line_format":
				p.next()
				s := p.expect(tString, "template string")
				st := &LineFormatStage{Template: s.text}
				if err := compileLineFormat(st); err != nil {
					p.fail(s, err.Error())
				}
				sel.Pipeline = append(sel.Pipeline, st)
				continue
			case "label_format":
				sel.Pipeline = append(sel.Pipeline, p.labelFormat())
				continue
			case "keep", "drop":
				p.next()
				items := p.nameMatches()
				if kw.text == "keep" {
					sel.Pipeline = append(sel.Pipeline, &KeepStage{Items: items})
				} else {
					sel.Pipeline = append(sel.Pipeline, &DropStage{Items: items})
				}
				continue
			case "decolorize":
				p.next()
				sel.Pipeline = append(sel.Pipeline, &DecolorizeStage{})
				continue
			case "unwrap":
				if !allowUnwrap {
					p.fail(kw, "unwrap is only allowed in a range aggregation")
				}
				return p.unwrap()
			}
			p.fail(kw, "unknown pipeline stage "+strconv.Quote(kw.text))
		}
		sel.Pipeline = append(sel.Pipeline, &LabelFilterStage{F: p.labelFilterOr()})
	}
}

func (p *parser) lineFilter() *LineFilter {
	opT := p.next()
	f := &LineFilter{Op: opT.text}
	for {
		if p.isKeyword("ip") && p.peekN(1).kind == tLParen {
			ipT := p.next()
			if f.Op != "|=" && f.Op != "!=" {
				p.fail(ipT, "ip() line filters only take |= and !=")
			}
			p.next()
			v := p.expect(tString, "quoted IP address, range or CIDR")
			p.expect(tRParen, `")"`)
			m, err := compileIPPattern(v.text)
			if err != nil {
				p.fail(v, err.Error())
			}
			if f.IP == nil {
				f.IP = make([]bool, len(f.Values))
				f.ips = make([]*ipPattern, len(f.Values))
			}
			f.Values = append(f.Values, v.text)
			f.IP = append(f.IP, true)
			f.ips = append(f.ips, m)
			if p.isKeyword("or") && (p.peekN(1).kind == tString || p.peekN(1).kind == tIdent && p.peekN(1).text == "ip") {
				p.next()
				continue
			}
			return f
		}
		v := p.expect(tString, "quoted filter value")
		f.Values = append(f.Values, v.text)
		if f.IP != nil {
			f.IP = append(f.IP, false)
			f.ips = append(f.ips, nil)
		}
		switch f.Op {
		case "|~", "!~":
			re, err := regexp.Compile(v.text)
			if err != nil {
				p.fail(v, "invalid regexp in line filter: "+err.Error())
			}
			f.res = append(f.res, re)
		case "|>", "!>":
			pt, err := compilePattern(v.text, true)
			if err != nil {
				p.fail(v, "invalid pattern in line filter: "+err.Error())
			}
			f.pats = append(f.pats, pt)
		}
		if p.isKeyword("or") && (p.peekN(1).kind == tString || p.peekN(1).kind == tIdent && p.peekN(1).text == "ip") {
			p.next()
			continue
		}
		return f
	}
}

func (p *parser) parserStage() *ParserStage {
	kw := p.next()
	st := &ParserStage{Kind: kw.text}
	switch kw.text {
	case "regexp":
		s := p.expect(tString, "regular expression")
		re, err := regexp.Compile(s.text)
		if err != nil {
			p.fail(s, "invalid regexp: "+err.Error())
		}
		if !slices.ContainsFunc(re.SubexpNames(), func(n string) bool { return n != "" }) {
			p.fail(s, "regexp parser needs at least one named capture group")
		}
		st.Param, st.re = s.text, re
	case "pattern":
		s := p.expect(tString, "pattern")
		pt, err := compilePattern(s.text, false)
		if err != nil {
			p.fail(s, "invalid pattern: "+err.Error())
		}
		st.Param, st.pat = s.text, pt
	case "logfmt":
		for p.peek().kind == tFlag {
			f := p.next()
			if f.text != "--strict" && f.text != "--keep-empty" {
				p.fail(f, "unknown logfmt flag "+f.text)
			}
			st.Flags = append(st.Flags, f.text)
		}
		st.Params = p.extractions()
	case "json":
		st.Params = p.extractions()
	}
	return st
}

// extractions parses `a, b="expr"` after json/logfmt, if present.
func (p *parser) extractions() []Extraction {
	var out []Extraction
	for p.peek().kind == tIdent {
		// Stop at anything that is not `name` followed by `=`, `,` or the end of the stage.
		nx := p.peekN(1).kind
		if nx != tEq && nx != tComma && nx != tPipe && nx != tEOF && nx != tRParen && nx != tLBrack &&
			nx != tPipeExact && nx != tNeq && nx != tPipeMatch && nx != tNre {
			break
		}
		name := p.next()
		x := Extraction{Name: name.text, Expr: name.text}
		if p.peek().kind == tEq {
			p.next()
			x.Expr = p.expect(tString, "quoted expression").text
		}
		out = append(out, x)
		if p.peek().kind != tComma {
			break
		}
		p.next()
	}
	return out
}

func (p *parser) labelFormat() *LabelFormatStage {
	p.next()
	st := &LabelFormatStage{}
	for {
		dst := p.expect(tIdent, "label name")
		p.expect(tEq, `"="`)
		v := p.next()
		it := LabelFmt{Dst: dst.text}
		switch v.kind {
		case tIdent:
			it.Src = v.text
		case tString:
			it.Src, it.IsTpl = v.text, true
			if err := compileLabelFormat(&it); err != nil {
				p.fail(v, err.Error())
			}
		default:
			p.fail(v, "expected a label name or a template string, got "+p.describe(v))
		}
		st.Items = append(st.Items, it)
		if p.peek().kind != tComma {
			return st
		}
		p.next()
	}
}

func (p *parser) nameMatches() []NameMatch {
	var out []NameMatch
	for {
		name := p.expect(tIdent, "label name")
		nm := NameMatch{Name: name.text}
		var mt labels.MatchType = -1
		switch p.peek().kind {
		case tEq:
			mt = labels.MatchEqual
		case tNeq:
			mt = labels.MatchNotEqual
		case tRe:
			mt = labels.MatchRegexp
		case tNre:
			mt = labels.MatchNotRegexp
		}
		if mt >= 0 {
			p.next()
			v := p.expect(tString, "quoted value")
			m, err := labels.NewMatcher(mt, name.text, v.text)
			if err != nil {
				p.fail(v, err.Error())
			}
			nm.Matcher = m
		}
		out = append(out, nm)
		if p.peek().kind != tComma {
			return out
		}
		p.next()
	}
}

func (p *parser) unwrap() *Unwrap {
	p.next()
	u := &Unwrap{}
	t := p.expect(tIdent, "label to unwrap")
	if (t.text == "duration" || t.text == "duration_seconds" || t.text == "bytes") && p.peek().kind == tLParen {
		p.next()
		u.Conv = t.text
		u.Label = p.expect(tIdent, "label name").text
		p.expect(tRParen, `")"`)
	} else {
		u.Label = t.text
	}
	for p.peek().kind == tPipe {
		p.next()
		u.PostFilters = append(u.PostFilters, p.labelFilterOr())
	}
	return u
}

func (p *parser) labelFilterOr() LabelFilter {
	l := p.labelFilterAnd()
	for p.isKeyword("or") {
		p.next()
		l = &BinaryLabelFilter{L: l, R: p.labelFilterAnd()}
	}
	return l
}

func (p *parser) labelFilterAnd() LabelFilter {
	l := p.labelFilterPrimary()
	for {
		switch {
		case p.isKeyword("and"):
			p.next()
		case p.peek().kind == tComma:
			p.next()
		case p.peek().kind == tIdent && p.peek().text != "or" && p.peek().text != "offset" && isFilterOp(p.peekN(1).kind):
			// `| a="x" b="y"`: juxtaposition means and.
		default:
			return l
		}
		l = &BinaryLabelFilter{And: true, L: l, R: p.labelFilterPrimary()}
	}
}

func isFilterOp(k tokKind) bool {
	switch k {
	case tEq, tNeq, tRe, tNre, tEqEq, tGt, tGte, tLt, tLte:
		return true
	}
	return false
}

func (p *parser) labelFilterPrimary() LabelFilter {
	if p.peek().kind == tLParen {
		p.next()
		inner := p.labelFilterOr()
		p.expect(tRParen, `")"`)
		return &ParenLabelFilter{Inner: inner}
	}
	name := p.expect(tIdent, "label filter")
	opT := p.next()
	if !isFilterOp(opT.kind) {
		p.fail(opT, "expected a comparison operator after "+strconv.Quote(name.text)+", got "+p.describe(opT))
	}
	v := p.next()
	if v.kind == tIdent && v.text == "ip" && p.peek().kind == tLParen {
		if opT.kind != tEq && opT.kind != tNeq {
			p.fail(opT, "ip() label filters only take = and !=")
		}
		p.next()
		pat := p.expect(tString, "quoted IP address, range or CIDR")
		p.expect(tRParen, `")"`)
		m, err := compileIPPattern(pat.text)
		if err != nil {
			p.fail(pat, err.Error())
		}
		return &IPLabelFilter{Name: name.text, Neg: opT.kind == tNeq, Pattern: pat.text, m: m}
	}
	neg := false
	if v.kind == tSub {
		neg = true
		v = p.next()
	}
	switch v.kind {
	case tString:
		var mt labels.MatchType
		switch opT.kind {
		case tEq, tEqEq:
			mt = labels.MatchEqual
		case tNeq:
			mt = labels.MatchNotEqual
		case tRe:
			mt = labels.MatchRegexp
		case tNre:
			mt = labels.MatchNotRegexp
		default:
			p.fail(opT, "operator "+opT.text+" needs a number, duration or size, not a string")
		}
		m, err := labels.NewMatcher(mt, name.text, v.text)
		if err != nil {
			p.fail(v, "invalid regexp: "+err.Error())
		}
		return &StringLabelFilter{M: m}
	case tNumber, tDuration, tBytes:
		if opT.kind == tRe || opT.kind == tNre {
			p.fail(opT, "regexp operators need a string value")
		}
		f := &NumericLabelFilter{Name: name.text, Op: opT.text, Val: v.num, Text: v.text}
		if f.Op == "=" {
			f.Op = "=="
		}
		switch v.kind {
		case tNumber:
			f.Kind = "number"
		case tDuration:
			f.Kind, f.Val = "duration", v.dur.Seconds()
		case tBytes:
			f.Kind = "bytes"
		}
		if neg {
			f.Val, f.Text = -f.Val, "-"+f.Text
		}
		return f
	}
	p.fail(v, "expected a value after "+name.text+opT.text+", got "+p.describe(v))
	return nil
}
