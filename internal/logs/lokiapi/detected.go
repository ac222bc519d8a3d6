package lokiapi

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/logs/logql"
	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
)

// What Grafana's Logs Drilldown asks besides queries (ADR 0018): the index
// labels of the selected streams, the fields found in their recent lines,
// one field's values and the lines' patterns.

const (
	defaultDetectedLineLimit  = 1000
	defaultDetectedFieldLimit = 1000
)

// DetectedLabels handles /loki/api/v1/detected_labels: every index label
// of the streams the selector matches in the range (the last 6 hours by
// default), with its number of distinct values.
func (a *API) DetectedLabels(w http.ResponseWriter, r *http.Request) {
	a.query("detected_labels", w, r, func(st Store) (any, error) {
		series, err := withSelector(a, st, r, func(ctx context.Context, q *logstore.Querier, ms []*labels.Matcher) ([]labels.Labels, error) {
			return q.Series(ctx, orAllStreams(ms)...)
		})
		if err != nil {
			return nil, err
		}
		values := map[string]map[string]struct{}{}
		for _, s := range series {
			s.Range(func(l labels.Label) {
				m := values[l.Name]
				if m == nil {
					m = map[string]struct{}{}
					values[l.Name] = m
				}
				m[l.Value] = struct{}{}
			})
		}
		type detectedLabel struct {
			Label       string `json:"label"`
			Cardinality int    `json:"cardinality"`
		}
		out := struct {
			DetectedLabels []detectedLabel `json:"detectedLabels"`
		}{DetectedLabels: []detectedLabel{}}
		for _, n := range sortedKeys(values) {
			if !staticLabels[n] && allIDs(values[n]) {
				continue // IDs (numbers, UUIDs) are not worth a label breakdown, as in Loki
			}
			out.DetectedLabels = append(out.DetectedLabels, detectedLabel{n, len(values[n])})
		}
		return out, nil
	})
}

// staticLabels are always reported by detected_labels.
var staticLabels = map[string]bool{"cluster": true, "namespace": true, "instance": true, "pod": true, "service_name": true}

// allIDs reports whether every value is a number or a UUID.
func allIDs(vals map[string]struct{}) bool {
	for v := range vals {
		if !isFloat(v) && !isUUID(v) {
			return false
		}
	}
	return len(vals) > 0
}

func isUUID(v string) bool {
	if len(v) != 36 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// sortedKeys returns m's keys sorted, never nil (an empty list is [] in JSON).
func sortedKeys[V any](m map[string]V) []string {
	ks := slices.AppendSeq(make([]string, 0, len(m)), maps.Keys(m))
	slices.Sort(ks)
	return ks
}

// detectedField is one field seen in the scanned lines.
type detectedField struct {
	typ      string
	values   map[string]struct{}
	parsers  map[string]struct{} // "logfmt", "json"; none for structured metadata
	jsonPath []string
}

// scanFields runs the log query (newest line_limit lines) and calls fn
// with every field of every line: its structured metadata, the labels its
// pipeline extracted, and the fields of the line itself as the logfmt or
// json parser would find them.
func (a *API) scanFields(st Store, r *http.Request, fn func(name, value, parser string, path []string)) error {
	qs := r.Form.Get("query")
	if qs == "" {
		return badf("query parameter is required")
	}
	expr, err := logql.ParseExpr(qs)
	if err != nil {
		return err
	}
	if _, ok := expr.(*logql.LogSelectorExpr); !ok {
		return badf("only log queries are supported")
	}
	start, end, err := a.timeRange(r)
	if err != nil {
		return err
	}
	limit := defaultDetectedLineLimit
	if s := r.Form.Get("line_limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit <= 0 {
			return badf("line_limit must be a positive integer")
		}
	}
	limit = min(limit, a.limits.Load().MaxEntriesLimitPerQuery)
	ctx, cancel := a.queryContext(r)
	defer cancel()
	res, err := a.engine.Load().Eval(ctx, st, expr, logql.Params{Start: start, End: end, Limit: limit, Backward: true, Categorize: true})
	if err != nil {
		return err
	}
	for _, s := range res.Value.(logql.Streams) {
		for i, e := range s.Entries {
			if i < len(s.Categories) {
				c := s.Categories[i]
				c.StructuredMetadata.Range(func(l labels.Label) { fn(l.Name, l.Value, "", nil) })
				c.Parsed.Range(func(l labels.Label) {
					if l.Name != logql.ErrorLabel && l.Name != logql.ErrorDetailsLabel {
						fn(l.Name, l.Value, "", nil)
					}
				})
			}
			lineFields(e.Line, fn)
		}
	}
	return nil
}

// DetectedFields handles /loki/api/v1/detected_fields.
func (a *API) DetectedFields(w http.ResponseWriter, r *http.Request) {
	a.query("detected_fields", w, r, func(st Store) (any, error) {
		fieldLimit := defaultDetectedFieldLimit
		if s := r.Form.Get("field_limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				return nil, badf("field_limit must be a positive integer")
			}
			fieldLimit = n
		}
		fields := map[string]*detectedField{}
		err := a.scanFields(st, r, func(name, value, parser string, path []string) {
			f := fields[name]
			if f == nil {
				if len(fields) >= fieldLimit {
					return
				}
				f = &detectedField{typ: fieldType(value), values: map[string]struct{}{}, parsers: map[string]struct{}{}, jsonPath: path}
				fields[name] = f
			} else if f.typ != "string" && fieldType(value) != f.typ {
				f.typ = "string"
			}
			f.values[value] = struct{}{}
			if parser != "" {
				f.parsers[parser] = struct{}{}
			}
		})
		if err != nil {
			return nil, err
		}
		type outField struct {
			Label       string   `json:"label"`
			Type        string   `json:"type"`
			Cardinality int      `json:"cardinality"`
			Parsers     []string `json:"parsers"`
			JSONPath    []string `json:"jsonPath,omitempty"`
		}
		out := struct {
			Fields []outField `json:"fields"`
			Limit  int        `json:"limit"`
		}{Fields: []outField{}, Limit: fieldLimit}
		for _, n := range sortedKeys(fields) {
			f := fields[n]
			var ps []string // null for structured metadata, as Loki answers
			if len(f.parsers) > 0 {
				ps = sortedKeys(f.parsers)
			}
			out.Fields = append(out.Fields, outField{n, f.typ, len(f.values), ps, f.jsonPath})
		}
		return out, nil
	})
}

// DetectedFieldValues handles /loki/api/v1/detected_field/{name}/values.
func (a *API) DetectedFieldValues(w http.ResponseWriter, r *http.Request) {
	a.query("detected_field_values", w, r, func(st Store) (any, error) {
		name := r.PathValue("name")
		if name == "" {
			p := strings.TrimPrefix(r.URL.Path, "/loki/api/v1/detected_field/")
			name = strings.TrimSuffix(p, "/values")
		}
		if name == "" {
			return nil, badf("field name is required")
		}
		limit := defaultDetectedFieldLimit
		if s := r.Form.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				return nil, badf("limit must be a positive integer")
			}
			limit = n
		}
		vals := map[string]struct{}{}
		err := a.scanFields(st, r, func(n, v, _ string, _ []string) {
			if n == name && len(vals) < limit {
				vals[v] = struct{}{}
			}
		})
		if err != nil {
			return nil, err
		}
		return struct {
			Values []string `json:"values"`
			Limit  int      `json:"limit"`
		}{sortedKeys(vals), limit}, nil
	})
}

// lineFields finds the fields of a line: a JSON object's leaves (nested
// keys joined with _, with their JSON path) or logfmt pairs.
func lineFields(line string, fn func(name, value, parser string, path []string)) {
	t := strings.TrimSpace(line)
	if len(t) >= 2 && t[0] == '{' && t[len(t)-1] == '}' {
		dec := json.NewDecoder(strings.NewReader(t))
		dec.UseNumber()
		var obj map[string]any
		if dec.Decode(&obj) == nil {
			walkJSON(obj, "", nil, fn)
		}
		return
	}
	logfmtPairs(line, func(k, v string) {
		if n := sanitize(k); n != "" && v != "" {
			fn(n, v, "logfmt", nil)
		}
	})
}

func walkJSON(m map[string]any, prefix string, path []string, fn func(name, value, parser string, path []string)) {
	for _, k := range sortedKeys(m) {
		name := sanitize(k)
		if prefix != "" {
			name = prefix + "_" + name
		}
		if name == "" {
			continue // an empty key names no field
		}
		p := append(slices.Clip(path), k)
		switch v := m[k].(type) {
		case map[string]any:
			walkJSON(v, name, p, fn)
		case []any, nil:
			// Arrays are not fields, as with the json parser.
		case string:
			if v != "" {
				fn(name, v, "json", p)
			}
		case json.Number:
			fn(name, v.String(), "json", p)
		case bool:
			fn(name, strconv.FormatBool(v), "json", p)
		}
	}
}

// logfmtPairs reads key=value pairs, values optionally double-quoted.
func logfmtPairs(line string, fn func(k, v string)) {
	i := 0
	for i < len(line) {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		ks := i
		for i < len(line) && line[i] != '=' && line[i] != ' ' && line[i] != '\t' {
			i++
		}
		key := line[ks:i]
		if i >= len(line) || line[i] != '=' {
			continue
		}
		i++
		var val string
		if i < len(line) && line[i] == '"' {
			vs := i
			i++
			for i < len(line) && line[i] != '"' {
				if line[i] == '\\' {
					i++
				}
				i++
			}
			if i < len(line) {
				i++
			}
			if uq, err := strconv.Unquote(line[vs:min(i, len(line))]); err == nil {
				val = uq
			} else {
				val = strings.Trim(line[vs:min(i, len(line))], `"`)
			}
		} else {
			vs := i
			for i < len(line) && line[i] != ' ' && line[i] != '\t' {
				i++
			}
			val = line[vs:i]
		}
		if key != "" {
			fn(key, val)
		}
	}
}

// fieldType is the type Loki reports for a value: boolean, int, float,
// duration, bytes or string, tried in that order.
func fieldType(v string) string {
	switch {
	case v == "true" || v == "false" || v == "TRUE" || v == "FALSE" || v == "True" || v == "False":
		return "boolean"
	case isInt(v):
		return "int"
	case isFloat(v):
		return "float"
	case isDuration(v):
		return "duration"
	case isBytes(v):
		return "bytes"
	}
	return "string"
}

func isInt(v string) bool {
	_, err := strconv.ParseInt(v, 10, 64)
	return err == nil
}

func isFloat(v string) bool {
	_, err := strconv.ParseFloat(v, 64)
	return err == nil && !strings.ContainsAny(v, "xXpPnN_") // not hex floats, Inf or NaN spellings
}

func isDuration(v string) bool {
	_, err := time.ParseDuration(v)
	return err == nil
}

// isBytes: a number followed by a size unit (1.5MB, 512KiB, 10 kb).
func isBytes(v string) bool {
	n := 0
	for n < len(v) && (v[n] >= '0' && v[n] <= '9' || v[n] == '.') {
		n++
	}
	if n == 0 || !isFloat(v[:n]) {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(v[n:])) {
	case "b", "kb", "kib", "mb", "mib", "gb", "gib", "tb", "tib", "pb", "pib", "eb", "eib", "k", "ki", "m", "mi", "g", "gi", "t", "ti", "p", "pi", "e", "ei":
		return true
	}
	return false
}

// Patterns handles /loki/api/v1/patterns: the selected lines grouped by
// pattern (variable tokens replaced with <_>), each with its count per
// step, the most frequent first. At most maxPatternLines lines are read.
func (a *API) Patterns(w http.ResponseWriter, r *http.Request) {
	a.query("patterns", w, r, func(st Store) (any, error) {
		sel, err := logql.ParseLogSelector(r.Form.Get("query"))
		if err != nil {
			return nil, err
		}
		start, end, err := a.timeRange(r)
		if err != nil {
			return nil, err
		}
		step := max(defaultStep(start, end), 10*time.Second)
		if s := r.Form.Get("step"); s != "" {
			if step, err = parseStep(s); err != nil {
				return nil, err
			}
			if step <= 0 {
				return nil, badf("zero or negative query resolution step widths are not accepted. Try a positive integer")
			}
		}
		if logql.Points(start, end, step) > logql.MaxPoints {
			return nil, badf("exceeded maximum resolution of 11,000 points per timeseries. Try increasing the value of the step parameter")
		}
		q, err := st.Querier(start.UnixNano(), end.UnixNano()+1)
		if err != nil {
			return nil, err
		}
		defer q.Close()
		ctx, cancel := a.queryContext(r)
		defer cancel()
		ss := q.Select(ctx, logstore.SelectHints{Start: start.UnixNano(), End: end.UnixNano() + 1}, sel.Matchers...)
		type group struct {
			total   int
			buckets map[int64]int // step-aligned Unix seconds → lines
		}
		groups := map[string]*group{}
		stepS := int64(step / time.Second)
		if stepS <= 0 {
			stepS = 1
		}
		read := 0
		for ss.Next() && read < maxPatternLines {
			it := ss.At().Iterator(ctx)
			for read < maxPatternLines && it.Next() {
				e := it.At()
				read++
				p := linePattern(e.Line)
				g := groups[p]
				if g == nil {
					if len(groups) >= maxPatterns {
						continue
					}
					g = &group{buckets: map[int64]int{}}
					groups[p] = g
				}
				g.total++
				sec := e.Timestamp / 1e9
				g.buckets[sec-mod(sec, stepS)]++
			}
			err := it.Err()
			it.Close()
			if err != nil {
				return nil, err
			}
		}
		if err := ss.Err(); err != nil {
			return nil, err
		}
		type outPattern struct {
			Pattern string     `json:"pattern"`
			Samples [][2]int64 `json:"samples"`
		}
		out := make([]outPattern, 0, len(groups))
		keys := sortedKeys(groups)
		slices.SortStableFunc(keys, func(x, y string) int { return groups[y].total - groups[x].total })
		for _, k := range keys {
			g := groups[k]
			op := outPattern{Pattern: k}
			for _, t := range slices.Sorted(maps.Keys(g.buckets)) {
				op.Samples = append(op.Samples, [2]int64{t, int64(g.buckets[t])})
			}
			out = append(out, op)
		}
		return struct {
			Status string       `json:"status"`
			Data   []outPattern `json:"data"`
		}{"success", out}, nil
	})
}

const (
	maxPatternLines = 100_000
	maxPatterns     = 1000
)

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// linePattern replaces the variable tokens of a line with <_>: tokens are
// separated by spaces (a double-quoted value is one token); a token, or
// the value of a key=value token, is variable when it holds a digit or is
// longer than 32 bytes. Runs of <_> collapse into one.
func linePattern(line string) string {
	var b strings.Builder
	b.Grow(len(line))
	lastVar := false
	emit := func(tok string, sep string) {
		if tok == "<_>" {
			if lastVar {
				return
			}
			lastVar = true
		} else {
			lastVar = false
		}
		if b.Len() > 0 {
			b.WriteString(sep)
		}
		b.WriteString(tok)
	}
	for i := 0; i < len(line); {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i >= len(line) {
			break
		}
		ts := i
		inQuote := false
		for i < len(line) && (inQuote || line[i] != ' ' && line[i] != '\t') {
			switch line[i] {
			case '"':
				inQuote = !inQuote
			case '\\':
				i++
			}
			i++
		}
		tok := line[ts:min(i, len(line))]
		if k, v, ok := strings.Cut(tok, "="); ok && k != "" && !variable(k) {
			if variable(v) {
				emit(k+"=<_>", " ")
				lastVar = false
			} else {
				emit(tok, " ")
			}
			continue
		}
		if variable(tok) {
			emit("<_>", " ")
		} else {
			emit(tok, " ")
		}
	}
	return b.String()
}

func variable(tok string) bool {
	if len(tok) > 32 {
		return true
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] >= '0' && tok[i] <= '9' {
			return true
		}
	}
	return false
}
