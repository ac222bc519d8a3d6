package logql

import (
	"encoding/base64"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// templateFuncs are the documented line_format / label_format functions we
// support. __line__ and __timestamp__ are bound per line.
func templateFuncs(pc *pipelineCtx, line *string) template.FuncMap {
	return template.FuncMap{
		"__line__":      func() string { return *line },
		"__timestamp__": func() time.Time { return time.Unix(0, pc.ts).UTC() },
		"ToLower":       strings.ToLower, "ToUpper": strings.ToUpper,
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
		"trunc": func(n int, s string) string {
			if n >= 0 && len(s) > n {
				return s[:n]
			}
			if n < 0 && len(s) > -n {
				return s[len(s)+n:]
			}
			return s
		},
		"substr": func(start, end int, s string) string {
			start, end = max(0, start), min(len(s), end)
			if end < 0 || start > end {
				return s[start:]
			}
			return s[start:end]
		},
		"indent": func(n int, s string) string {
			return strings.Repeat(" ", n) + strings.ReplaceAll(s, "\n", "\n"+strings.Repeat(" ", n))
		},
		"nindent": func(n int, s string) string {
			return "\n" + strings.Repeat(" ", n) + strings.ReplaceAll(s, "\n", "\n"+strings.Repeat(" ", n))
		},
		"regexReplaceAll":        RegexReplaceAll,
		"regexReplaceAllLiteral": RegexReplaceAllLiteral,
		"default": func(d string, v ...string) string {
			if len(v) == 0 || v[0] == "" {
				return d
			}
			return v[0]
		},
		"count": func(re, s string) (int, error) {
			r, err := regexp.Compile(re)
			if err != nil {
				return 0, err
			}
			return len(r.FindAllStringIndex(s, -1)), nil
		},
		"urlencode": url.QueryEscape,
		"urldecode": url.QueryUnescape,
		"b64enc":    func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
		"b64dec": func(s string) string {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return ""
			}
			return string(b)
		},
		"unixEpoch":       func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) },
		"unixEpochMillis": func(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) },
		"date":            func(layout string, t time.Time) string { return t.Format(layout) },
		"toDate": func(layout, s string) time.Time {
			t, _ := time.Parse(layout, s)
			return t
		},
		"now": time.Now,
		"add": func(a, b any) float64 { return toF(a) + toF(b) }, "sub": func(a, b any) float64 { return toF(a) - toF(b) },
		"mul":     func(a, b any) float64 { return toF(a) * toF(b) },
		"div":     func(a, b any) float64 { return toF(a) / toF(b) },
		"mod":     func(a, b any) float64 { return math.Mod(toF(a), toF(b)) },
		"float64": toF,
		"int":     func(a any) int { return int(toF(a)) },
		"round":   func(a any) float64 { return math.Round(toF(a)) },
		"alignLeft": func(n int, s string) string {
			if len(s) >= n {
				return s[:n]
			}
			return s + strings.Repeat(" ", n-len(s))
		},
		"alignRight": func(n int, s string) string {
			if len(s) >= n {
				return s[len(s)-n:]
			}
			return strings.Repeat(" ", n-len(s)) + s
		},
	}
}

func toF(a any) float64 {
	switch t := a.(type) {
	case float64:
		return t
	case int:
		return float64(t)
	case string:
		f, _ := strconv.ParseFloat(t, 64)
		return f
	}
	f, _ := strconv.ParseFloat(fmt.Sprint(a), 64)
	return f
}

func newTemplate(text string) (*template.Template, error) {
	var line string
	return template.New("").Option("missingkey=zero").Funcs(templateFuncs(&pipelineCtx{}, &line)).Parse(text)
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

func render(t *template.Template, pc *pipelineCtx, line string, ls *labelSet) (string, error) {
	// Bind the per-line functions on a clone-free path: Funcs replaces entries in place.
	t.Funcs(templateFuncs(pc, &line))
	var b strings.Builder
	if err := t.Execute(&b, ls.asMap()); err != nil {
		return "", err
	}
	return b.String(), nil
}

func (s *LineFormatStage) format(pc *pipelineCtx, line string, ls *labelSet) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out, err := render(s.tpl, pc, line, ls)
	if err != nil {
		ls.setError(errTemplate, err.Error())
		return line
	}
	return out
}

func (s *LabelFormatStage) apply(pc *pipelineCtx, line string, ls *labelSet) {
	s.mu.Lock()
	defer s.mu.Unlock()
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
