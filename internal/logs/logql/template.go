package logql

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"
	"unicode/utf8"
)

// Times in templates are in UTC: __timestamp__, now, date, toDate and
// unixToTime all use it (Loki uses the server's local zone, UTC in its
// images), so answers do not depend on where nxwatcher runs.

// tplState is what a template's per-line functions read: one per bound
// copy of a template, so copies run in parallel.
type tplState struct {
	line string
	ts   int64
}

// templateFuncs are the functions LogQL documents for line_format and
// label_format ("LogQL template functions"), plus Go's strings functions
// under their Go names, which Loki also accepts. __line__ and
// __timestamp__ read st.
func templateFuncs(st *tplState) template.FuncMap {
	return template.FuncMap{
		"__line__":      func() string { return st.line },
		"__timestamp__": func() time.Time { return time.Unix(0, st.ts).UTC() },

		// Strings.
		"ToLower": strings.ToLower, "ToUpper": strings.ToUpper,
		"lower": strings.ToLower, "upper": strings.ToUpper,
		"title":   strings.Title, //nolint:staticcheck // Loki's title has the same word rules
		"Replace": strings.Replace,
		"replace": func(old, new, src string) string { return strings.ReplaceAll(src, old, new) },
		"Trim":    strings.Trim, "TrimLeft": strings.TrimLeft, "TrimRight": strings.TrimRight,
		"TrimPrefix": strings.TrimPrefix, "TrimSuffix": strings.TrimSuffix, "TrimSpace": strings.TrimSpace,
		"trim":       strings.TrimSpace,
		"trimAll":    func(cut, s string) string { return strings.Trim(s, cut) },
		"trimPrefix": func(p, s string) string { return strings.TrimPrefix(s, p) },
		"trimSuffix": func(p, s string) string { return strings.TrimSuffix(s, p) },
		"contains":   func(sub, s string) bool { return strings.Contains(s, sub) },
		"hasPrefix":  func(p, s string) bool { return strings.HasPrefix(s, p) },
		"hasSuffix":  func(p, s string) bool { return strings.HasSuffix(s, p) },
		"repeat":     func(n int, s string) string { return strings.Repeat(s, n) },
		"trunc":      trunc,
		"substr":     substr,
		"indent": func(n int, s string) string {
			pad := strings.Repeat(" ", n)
			return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
		},
		"nindent": func(n int, s string) string {
			pad := strings.Repeat(" ", n)
			return "\n" + pad + strings.ReplaceAll(s, "\n", "\n"+pad)
		},
		"alignLeft":  alignLeft,
		"alignRight": alignRight,
		"default": func(d string, v ...string) string {
			if len(v) == 0 || v[0] == "" {
				return d
			}
			return v[0]
		},
		"urlencode": url.QueryEscape,
		"urldecode": url.QueryUnescape,
		"b64enc":    func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
		"b64dec": func(s string) string {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return err.Error()
			}
			return string(b)
		},

		// Regular expressions.
		"count": func(re, s string) (int, error) {
			r, err := cachedRegexp(re)
			if err != nil {
				return 0, err
			}
			return len(r.FindAllStringIndex(s, -1)), nil
		},
		"regexReplaceAll":        RegexReplaceAll,
		"regexReplaceAllLiteral": RegexReplaceAllLiteral,

		// Dates and times.
		"now":             func() time.Time { return time.Now().UTC() },
		"date":            date,
		"toDate":          func(layout, s string) time.Time { t, _ := time.ParseInLocation(layout, s, time.UTC); return t },
		"toDateInZone":    toDateInZone,
		"unixEpoch":       func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) },
		"unixEpochMillis": func(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) },
		"unixEpochNanos":  func(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) },
		"unixToTime":      unixToTime,

		// Conversions.
		"duration":         durationSeconds,
		"duration_seconds": durationSeconds,
		"bytes": func(s string) (float64, error) {
			return parseHumanBytes(strings.TrimSpace(s))
		},
		"float64":  toFloat,
		"int":      func(a any) int { return int(toInt64(a)) },
		"fromJson": fromJSON,

		// Arithmetic: the integer functions truncate their arguments, the
		// ...f ones keep decimals.
		"add": func(xs ...any) int64 {
			var s int64
			for _, x := range xs {
				s += toInt64(x)
			}
			return s
		},
		"sub": func(a, b any) int64 { return toInt64(a) - toInt64(b) },
		"mul": func(a any, xs ...any) int64 {
			p := toInt64(a)
			for _, x := range xs {
				p *= toInt64(x)
			}
			return p
		},
		"div": func(a, b any) (int64, error) {
			d := toInt64(b)
			if d == 0 {
				return 0, errors.New("integer divide by zero")
			}
			return toInt64(a) / d, nil
		},
		"mod": func(a, b any) (int64, error) {
			d := toInt64(b)
			if d == 0 {
				return 0, errors.New("integer divide by zero")
			}
			return toInt64(a) % d, nil
		},
		"max": func(a any, xs ...any) int64 {
			m := toInt64(a)
			for _, x := range xs {
				m = max(m, toInt64(x))
			}
			return m
		},
		"min": func(a any, xs ...any) int64 {
			m := toInt64(a)
			for _, x := range xs {
				m = min(m, toInt64(x))
			}
			return m
		},
		"addf": func(xs ...any) float64 { return decimalOp(new(big.Rat), xs, (*big.Rat).Add) },
		"subf": func(a any, xs ...any) float64 { return decimalOp(decimal(a), xs, (*big.Rat).Sub) },
		"mulf": func(a any, xs ...any) float64 { return decimalOp(decimal(a), xs, (*big.Rat).Mul) },
		"divf": func(a any, xs ...any) (float64, error) {
			for _, x := range xs {
				if decimal(x).Sign() == 0 {
					return 0, errors.New("division by zero")
				}
			}
			return decimalOp(decimal(a), xs, (*big.Rat).Quo), nil
		},
		"maxf": func(a any, xs ...any) float64 {
			m := toFloat(a)
			for _, x := range xs {
				m = math.Max(m, toFloat(x))
			}
			return m
		},
		"minf": func(a any, xs ...any) float64 {
			m := toFloat(a)
			for _, x := range xs {
				m = math.Min(m, toFloat(x))
			}
			return m
		},
		"floor": func(a any) float64 { return math.Floor(toFloat(a)) },
		"ceil":  func(a any) float64 { return math.Ceil(toFloat(a)) },
		"round": round,
	}
}

func trunc(n int, s string) string {
	if n >= 0 && len(s) > n {
		return s[:n]
	}
	if n < 0 && len(s)+n > 0 {
		return s[len(s)+n:]
	}
	return s
}

// substr is documented as: start < 0 gives value[:end]; end < 0 or past the
// end gives value[start:]; else value[start:end]. Out-of-range indexes are
// a template error (the line gets TemplateFormatErr).
func substr(start, end int, s string) (string, error) {
	switch {
	case start < 0:
		if end < 0 || end > len(s) {
			return "", fmt.Errorf("substr: end %d out of range", end)
		}
		return s[:end], nil
	case end < 0 || end > len(s):
		if start > len(s) {
			return "", fmt.Errorf("substr: start %d out of range", start)
		}
		return s[start:], nil
	case start > end:
		return "", fmt.Errorf("substr: start %d after end %d", start, end)
	}
	return s[start:end], nil
}

// alignLeft and alignRight pad or cut to count characters (runes).
func alignLeft(count int, s string) string {
	n := utf8.RuneCountInString(s)
	if count < 0 || count == n {
		return s
	}
	if count > n {
		return s + strings.Repeat(" ", count-n)
	}
	return string([]rune(s)[:count])
}

func alignRight(count int, s string) string {
	n := utf8.RuneCountInString(s)
	if count < 0 || count == n {
		return s
	}
	if count > n {
		return strings.Repeat(" ", count-n) + s
	}
	r := []rune(s)
	return string(r[n-count:])
}

// date formats a time, or Unix seconds given as a number, in UTC.
func date(layout string, v any) string {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x != nil {
			t = *x
		}
	case int64:
		t = time.Unix(x, 0)
	case int:
		t = time.Unix(int64(x), 0)
	case int32:
		t = time.Unix(int64(x), 0)
	default:
		t = time.Now()
	}
	return t.UTC().Format(layout)
}

// toDateInZone parses s in the named zone (Local, UTC or an IANA name; an
// unknown zone is UTC). A string that does not parse gives the zero time.
func toDateInZone(layout, zone, s string) time.Time {
	loc, err := time.LoadLocation(zone)
	if err != nil {
		loc = time.UTC
	}
	t, _ := time.ParseInLocation(layout, s, loc)
	return t
}

// unixToTime reads an epoch in days, seconds, milliseconds, microseconds or
// nanoseconds, told apart by the number of digits (5, 10, 13, 16, 19).
func unixToTime(s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("unixToTime: invalid epoch %q", s)
	}
	switch len(s) {
	case 5:
		return time.Unix(n*86400, 0).UTC(), nil
	case 10:
		return time.Unix(n, 0).UTC(), nil
	case 13:
		return time.UnixMilli(n).UTC(), nil
	case 16:
		return time.UnixMicro(n).UTC(), nil
	case 19:
		return time.Unix(0, n).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("unixToTime: epoch %q is not in days (5 digits), seconds (10), milliseconds (13), microseconds (16) or nanoseconds (19)", s)
}

func durationSeconds(s string) (float64, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, err
	}
	return d.Seconds(), nil
}

// fromJSON decodes a JSON document; one that does not decode gives "".
func fromJSON(s string) any {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return ""
	}
	return v
}

// round rounds a to p decimal places; the fraction left at that place
// rounds up from roundOn (default .5).
func round(a any, p int, roundOn ...float64) float64 {
	on := .5
	if len(roundOn) > 0 {
		on = roundOn[0]
	}
	pow := math.Pow(10, float64(p))
	d := toFloat(a) * pow
	_, frac := math.Modf(d)
	if frac >= on {
		return math.Ceil(d) / pow
	}
	return math.Floor(d) / pow
}

// toFloat converts a template argument (labels are strings) to a float;
// what is not a number is 0.
func toFloat(a any) float64 {
	switch t := a.(type) {
	case float64:
		return t
	case float32:
		return float64(t)
	case int:
		return float64(t)
	case int64:
		return float64(t)
	case int32:
		return float64(t)
	case uint64:
		return float64(t)
	case bool:
		if t {
			return 1
		}
		return 0
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		if err != nil {
			return 0
		}
		return f
	case nil:
		return 0
	}
	f, _ := strconv.ParseFloat(fmt.Sprint(a), 64)
	return f
}

// toInt64 converts a template argument to an integer: numbers truncate;
// strings are read as integers (0x and 0 prefixes as in Go, a zero
// fraction such as "3.0" allowed); anything else is 0.
func toInt64(a any) int64 {
	switch t := a.(type) {
	case int64:
		return t
	case int:
		return int64(t)
	case int32:
		return int64(t)
	case uint64:
		return int64(t)
	case float64:
		return int64(t)
	case float32:
		return int64(t)
	case bool:
		if t {
			return 1
		}
		return 0
	case string:
		s := strings.TrimSpace(t)
		if i := strings.IndexByte(s, '.'); i > 0 && strings.Trim(s[i+1:], "0") == "" {
			s = s[:i]
		}
		n, err := strconv.ParseInt(s, 0, 64)
		if err != nil {
			return 0
		}
		return n
	}
	return 0
}

// decimal is a template argument as an exact decimal, so addf 0.1 0.2 is
// 0.3 and not 0.30000000000000004.
func decimal(a any) *big.Rat {
	r, ok := new(big.Rat).SetString(strconv.FormatFloat(toFloat(a), 'g', -1, 64))
	if !ok {
		return new(big.Rat)
	}
	return r
}

func decimalOp(acc *big.Rat, xs []any, op func(z, x, y *big.Rat) *big.Rat) float64 {
	for _, x := range xs {
		op(acc, acc, decimal(x))
	}
	f, _ := acc.Float64()
	return f
}

// compiledTemplate is a parsed template and a pool of bound copies, each
// with its own tplState, so lines are formatted in parallel.
type compiledTemplate struct {
	base *template.Template
	pool sync.Pool // of *boundTemplate
}

type boundTemplate struct {
	t  *template.Template
	st *tplState
}

func newTemplate(text string) (*compiledTemplate, error) {
	st := &tplState{}
	t, err := template.New("").Option("missingkey=zero").Funcs(templateFuncs(st)).Parse(text)
	if err != nil {
		return nil, err
	}
	ct := &compiledTemplate{base: t}
	ct.pool.Put(&boundTemplate{t: t, st: st})
	return ct, nil
}

func (ct *compiledTemplate) get() *boundTemplate {
	if b, ok := ct.pool.Get().(*boundTemplate); ok {
		return b
	}
	st := &tplState{}
	t, err := ct.base.Clone()
	if err != nil { // only after the base was executed and then redefined, which never happens
		panic("logql: clone template: " + err.Error())
	}
	t.Funcs(templateFuncs(st))
	return &boundTemplate{t: t, st: st}
}

func compileLineFormat(s *LineFormatStage) error {
	t, err := newTemplate(s.Template)
	if err != nil {
		return fmt.Errorf("invalid line_format template: %w", err)
	}
	s.tpl = t
	return nil
}

func compileLabelFormat(it *LabelFmt) error {
	t, err := newTemplate(it.Src)
	if err != nil {
		return fmt.Errorf("invalid label_format template: %w", err)
	}
	it.tpl = t
	return nil
}

func render(ct *compiledTemplate, pc *pipelineCtx, line string, ls *labelSet) (string, error) {
	b := ct.get()
	defer ct.pool.Put(b)
	b.st.line, b.st.ts = line, pc.ts
	var sb strings.Builder
	err := b.t.Execute(&sb, ls.asMap())
	b.st.line = ""
	if err != nil {
		return "", err
	}
	return sb.String(), nil
}

func (s *LineFormatStage) format(pc *pipelineCtx, line string, ls *labelSet) string {
	out, err := render(s.tpl, pc, line, ls)
	if err != nil {
		ls.setError(errTemplate, err.Error())
		return line
	}
	return out
}

func (s *LabelFormatStage) apply(pc *pipelineCtx, line string, ls *labelSet) {
	for _, it := range s.Items {
		if !it.IsTpl {
			v, _ := ls.get(it.Src)
			ls.del(it.Src)
			ls.set(it.Dst, v)
			continue
		}
		out, err := render(it.tpl, pc, line, ls)
		if err != nil {
			ls.setError(errTemplate, err.Error())
			continue
		}
		ls.set(it.Dst, out)
	}
}
