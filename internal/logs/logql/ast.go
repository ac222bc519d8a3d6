package logql

import (
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// Expr is a parsed LogQL query. String prints it back in canonical form;
// parsing that form gives the same tree.
type Expr interface {
	String() string
	isExpr()
}

// LogSelectorExpr is a log query: stream selector and pipeline.
type LogSelectorExpr struct {
	Matchers []*labels.Matcher
	Pipeline []Stage
}

// LogRange is the range part of a range aggregation.
type LogRange struct {
	Left     *LogSelectorExpr
	Unwrap   *Unwrap
	Interval time.Duration
	Offset   time.Duration
}

// Unwrap turns a label into the sample value.
type Unwrap struct {
	Label       string
	Conv        string // "", "duration", "duration_seconds", "bytes"
	PostFilters []LabelFilter
}

// RangeAggExpr is rate(...), count_over_time(...) and friends.
type RangeAggExpr struct {
	Op       string
	Left     *LogRange
	Param    float64 // quantile_over_time only
	Grouping *Grouping
}

// Grouping is by (...) or without (...).
type Grouping struct {
	Without bool
	Labels  []string
}

// VectorAggExpr is sum, avg, topk... over a metric expression.
type VectorAggExpr struct {
	Op       string
	Left     Expr
	Grouping *Grouping
	Param    int // topk, bottomk
}

// VectorMatching is on(...) / ignoring(...), optionally with
// group_left(...) / group_right(...) for many-to-one and one-to-many
// matching; Include are the labels copied from the "one" side.
type VectorMatching struct {
	On      bool
	Labels  []string
	Card    string // "", "group_left" or "group_right"
	Include []string
}

// LabelReplaceExpr is label_replace(v, "dst", "replacement", "src", "regex").
type LabelReplaceExpr struct {
	Left                      Expr
	Dst, Replacement, Src, Re string
	re                        *regexp.Regexp
}

// BinOpExpr is an arithmetic, comparison or set operation.
type BinOpExpr struct {
	Op       string
	LHS, RHS Expr
	Bool     bool
	Matching *VectorMatching
}

// LiteralExpr is a number.
type LiteralExpr struct{ Val float64 }

// VectorExpr is vector(n).
type VectorExpr struct{ Val float64 }

// ParenExpr keeps user parentheses so printing round-trips.
type ParenExpr struct{ Inner Expr }

func (*LogSelectorExpr) isExpr()  {}
func (*RangeAggExpr) isExpr()     {}
func (*VectorAggExpr) isExpr()    {}
func (*BinOpExpr) isExpr()        {}
func (*LiteralExpr) isExpr()      {}
func (*VectorExpr) isExpr()       {}
func (*ParenExpr) isExpr()        {}
func (*LabelReplaceExpr) isExpr() {}

// Stage is one step of a log pipeline.
type Stage interface {
	String() string
	isStage()
}

// LineFilter is |= != |~ !~ |> !> with optional `or` alternatives. With
// |= and !=, a value may be ip("…") (IP[i] set): the line matches when an
// address in it is in the pattern.
type LineFilter struct {
	Op     string
	Values []string
	IP     []bool // parallel to Values; nil when no value is ip("…")
	res    []*regexp.Regexp
	pats   []*pattern
	ips    []*ipPattern
}

// ParserStage is json, logfmt, regexp, pattern or unpack.
type ParserStage struct {
	Kind   string
	Param  string // regexp or pattern text
	Params []Extraction
	Flags  []string // logfmt --strict / --keep-empty
	re     *regexp.Regexp
	pat    *pattern
	// only, when set on a per-query copy of a logfmt stage, lists the
	// labels worth extracting, sorted (narrowParsers); narrowed tells it is set.
	only     []string
	narrowed bool
	// sanitizedMatter: some label in only holds '_', the only byte a
	// sanitised key gets, so a key that needs sanitising may become one
	// of them; otherwise such keys are skipped like any other.
	sanitizedMatter bool
}

// Extraction is name="expression" in json and logfmt parameters.
type Extraction struct{ Name, Expr string }

// LabelFilterStage keeps lines whose labels pass the filter.
type LabelFilterStage struct{ F LabelFilter }

// LineFormatStage rewrites the line with a template.
type LineFormatStage struct {
	Template string
	tpl      *compiledTemplate
}

// LabelFormatStage renames or templates labels.
type LabelFormatStage struct {
	Items []LabelFmt
}

// LabelFmt is dst=src (rename) or dst="template".
type LabelFmt struct {
	Dst, Src string
	IsTpl    bool
	tpl      *compiledTemplate
}

// KeepStage and DropStage keep or remove labels, optionally by value.
type KeepStage struct{ Items []NameMatch }
type DropStage struct{ Items []NameMatch }

// NameMatch is a bare label name or a matcher on it.
type NameMatch struct {
	Name    string
	Matcher *labels.Matcher
}

// DecolorizeStage strips ANSI colour codes.
type DecolorizeStage struct{}

func (*LineFilter) isStage()       {}
func (*ParserStage) isStage()      {}
func (*LabelFilterStage) isStage() {}
func (*LineFormatStage) isStage()  {}
func (*LabelFormatStage) isStage() {}
func (*KeepStage) isStage()        {}
func (*DropStage) isStage()        {}
func (*DecolorizeStage) isStage()  {}

// LabelFilter is a predicate over labels.
type LabelFilter interface {
	String() string
	isLabelFilter()
}

// BinaryLabelFilter is `and` / `or` of two filters.
type BinaryLabelFilter struct {
	And  bool
	L, R LabelFilter
}

// StringLabelFilter is name op "value" with = != =~ !~.
type StringLabelFilter struct{ M *labels.Matcher }

// NumericLabelFilter compares a label as a number, duration or byte size.
type NumericLabelFilter struct {
	Name string
	Op   string
	Kind string // "number", "duration", "bytes"
	Val  float64
	Text string
}

// IPLabelFilter is name = ip("…") or name != ip("…"): the label's value is
// (or is not) an address in the pattern.
type IPLabelFilter struct {
	Name    string
	Neg     bool
	Pattern string
	m       *ipPattern
}

// ParenLabelFilter keeps parentheses for printing.
type ParenLabelFilter struct{ Inner LabelFilter }

func (*BinaryLabelFilter) isLabelFilter()  {}
func (*StringLabelFilter) isLabelFilter()  {}
func (*NumericLabelFilter) isLabelFilter() {}
func (*ParenLabelFilter) isLabelFilter()   {}
func (*IPLabelFilter) isLabelFilter()      {}

// ---- printing ----

func quote(s string) string { return strconv.Quote(s) }

func matchersString(ms []*labels.Matcher) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.Name + m.Type.String() + quote(m.Value)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func (e *LogSelectorExpr) String() string {
	var b strings.Builder
	b.WriteString(matchersString(e.Matchers))
	for _, s := range e.Pipeline {
		b.WriteByte(' ')
		b.WriteString(s.String())
	}
	return b.String()
}

func (f *LineFilter) String() string {
	qs := make([]string, len(f.Values))
	for i, v := range f.Values {
		qs[i] = quote(v)
		if i < len(f.IP) && f.IP[i] {
			qs[i] = "ip(" + qs[i] + ")"
		}
	}
	return f.Op + " " + strings.Join(qs, " or ")
}

func (p *ParserStage) String() string {
	var b strings.Builder
	b.WriteString("| " + p.Kind)
	for _, f := range p.Flags {
		b.WriteString(" " + f)
	}
	if p.Kind == "regexp" || p.Kind == "pattern" {
		b.WriteString(" " + quote(p.Param))
	}
	for i, x := range p.Params {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(" " + x.Name + "=" + quote(x.Expr))
	}
	return b.String()
}

func (s *LabelFilterStage) String() string { return "| " + s.F.String() }
func (s *LineFormatStage) String() string  { return "| line_format " + quote(s.Template) }
func (s *LabelFormatStage) String() string {
	parts := make([]string, len(s.Items))
	for i, it := range s.Items {
		if it.IsTpl {
			parts[i] = it.Dst + "=" + quote(it.Src)
		} else {
			parts[i] = it.Dst + "=" + it.Src
		}
	}
	return "| label_format " + strings.Join(parts, ", ")
}

func nameMatchString(items []NameMatch) string {
	parts := make([]string, len(items))
	for i, it := range items {
		if it.Matcher != nil {
			parts[i] = it.Name + it.Matcher.Type.String() + quote(it.Matcher.Value)
		} else {
			parts[i] = it.Name
		}
	}
	return strings.Join(parts, ", ")
}

func (s *KeepStage) String() string     { return "| keep " + nameMatchString(s.Items) }
func (s *DropStage) String() string     { return "| drop " + nameMatchString(s.Items) }
func (*DecolorizeStage) String() string { return "| decolorize" }

func (f *BinaryLabelFilter) String() string {
	op := " or "
	if f.And {
		op = " and "
	}
	return f.L.String() + op + f.R.String()
}
func (f *StringLabelFilter) String() string {
	return f.M.Name + f.M.Type.String() + quote(f.M.Value)
}
func (f *NumericLabelFilter) String() string { return f.Name + f.Op + f.Text }
func (f *ParenLabelFilter) String() string   { return "(" + f.Inner.String() + ")" }
func (f *IPLabelFilter) String() string {
	op := "="
	if f.Neg {
		op = "!="
	}
	return f.Name + op + "ip(" + quote(f.Pattern) + ")"
}

func (u *Unwrap) String() string {
	s := "| unwrap "
	if u.Conv != "" {
		s += u.Conv + "(" + u.Label + ")"
	} else {
		s += u.Label
	}
	for _, f := range u.PostFilters {
		s += " | " + f.String()
	}
	return s
}

func (r *LogRange) String() string {
	s := r.Left.String()
	if r.Unwrap != nil {
		s += " " + r.Unwrap.String()
	}
	s += " [" + model.Duration(r.Interval).String() + "]"
	if r.Offset != 0 {
		s += " offset " + model.Duration(r.Offset).String()
	}
	return s
}

func (g *Grouping) String() string {
	if g == nil {
		return ""
	}
	kw := " by"
	if g.Without {
		kw = " without"
	}
	return kw + " (" + strings.Join(g.Labels, ", ") + ")"
}

func (e *RangeAggExpr) String() string {
	s := e.Op + "("
	if e.Op == "quantile_over_time" {
		s += strconv.FormatFloat(e.Param, 'g', -1, 64) + ", "
	}
	return s + e.Left.String() + ")" + e.Grouping.String()
}

func (e *VectorAggExpr) String() string {
	s := e.Op + e.Grouping.String() + " ("
	if e.Op == "topk" || e.Op == "bottomk" {
		s += strconv.Itoa(e.Param) + ", "
	}
	return s + e.Left.String() + ")"
}

func (e *BinOpExpr) String() string {
	s := e.LHS.String() + " " + e.Op
	if e.Bool {
		s += " bool"
	}
	if e.Matching != nil {
		kw := " ignoring"
		if e.Matching.On {
			kw = " on"
		}
		s += kw + " (" + strings.Join(e.Matching.Labels, ", ") + ")"
		if e.Matching.Card != "" {
			s += " " + e.Matching.Card + " (" + strings.Join(e.Matching.Include, ", ") + ")"
		}
	}
	return s + " " + e.RHS.String()
}

func (e *LiteralExpr) String() string { return strconv.FormatFloat(e.Val, 'g', -1, 64) }
func (e *VectorExpr) String() string {
	return "vector(" + strconv.FormatFloat(e.Val, 'g', -1, 64) + ")"
}
func (e *ParenExpr) String() string { return "(" + e.Inner.String() + ")" }
func (e *LabelReplaceExpr) String() string {
	return "label_replace(" + e.Left.String() + ", " + quote(e.Dst) + ", " + quote(e.Replacement) + ", " +
		quote(e.Src) + ", " + quote(e.Re) + ")"
}
