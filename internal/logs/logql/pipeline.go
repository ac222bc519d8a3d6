package logql

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/bits"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
)

// Error label names and values, as in Loki.
const (
	ErrorLabel        = "__error__"
	ErrorDetailsLabel = "__error_details__"
	errJSON           = "JSONParserErr"
	errLogfmt         = "LogfmtParserErr"
	errLabelFilter    = "LabelFilterErr"
	errSample         = "SampleExtractionErr"
	errTemplate       = "TemplateFormatErr"
)

// labelSet is the mutable label set a line carries through a pipeline:
// stream labels, structured metadata, then extracted labels.
type labelSet struct {
	ls     []labels.Label
	stream map[string]bool

	// The stream labels the last reset copied and their copy: consecutive
	// lines mostly come from one stream, which then costs one string
	// comparison and a copy instead of rebuilding the name set.
	lastStream   labels.Labels
	lastStreamLs []labels.Label
	haveStream   bool
}

func (s *labelSet) reset(stream, md labels.Labels) {
	if !s.haveStream || !labels.Equal(stream, s.lastStream) {
		if s.stream == nil {
			s.stream = map[string]bool{}
		}
		clear(s.stream)
		s.lastStreamLs = s.lastStreamLs[:0]
		stream.Range(func(l labels.Label) {
			s.lastStreamLs = append(s.lastStreamLs, l)
			s.stream[l.Name] = true
		})
		s.lastStream, s.haveStream = stream, true
	}
	s.ls = append(s.ls[:0], s.lastStreamLs...)
	md.Range(func(l labels.Label) { s.set(l.Name, l.Value) })
}

func (s *labelSet) get(name string) (string, bool) {
	for _, l := range s.ls {
		if l.Name == name {
			return l.Value, true
		}
	}
	return "", false
}

func (s *labelSet) set(name, value string) {
	for i := range s.ls {
		if s.ls[i].Name == name {
			s.ls[i].Value = value
			return
		}
	}
	s.ls = append(s.ls, labels.Label{Name: name, Value: value})
}

// setExtracted adds a parsed label; one that clashes with a stream label
// gets the _extracted suffix, as Loki does.
func (s *labelSet) setExtracted(name, value string) {
	name = sanitizeLabelName(name)
	if name == "" {
		return
	}
	if s.stream[name] {
		name += "_extracted"
	}
	s.set(name, value)
}

func (s *labelSet) del(name string) {
	s.ls = slices.DeleteFunc(s.ls, func(l labels.Label) bool { return l.Name == name })
}

func (s *labelSet) hasError() bool {
	_, ok := s.get(ErrorLabel)
	return ok
}

func (s *labelSet) setError(kind, details string) {
	if s.hasError() {
		return // the first error wins
	}
	s.set(ErrorLabel, kind)
	if details != "" {
		s.set(ErrorDetailsLabel, details)
	}
}

func (s *labelSet) labels() labels.Labels {
	b := labels.NewScratchBuilder(len(s.ls))
	for _, l := range s.ls {
		if l.Value != "" {
			b.Add(l.Name, l.Value)
		}
	}
	b.Sort()
	return b.Labels()
}

func (s *labelSet) asMap() map[string]string {
	m := make(map[string]string, len(s.ls))
	for _, l := range s.ls {
		m[l.Name] = l.Value
	}
	return m
}

func sanitizeLabelName(n string) string {
	if n == "" {
		return ""
	}
	valid := true
	for i := 0; i < len(n) && valid; i++ {
		c := n[i]
		valid = c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || (i > 0 && c >= '0' && c <= '9')
	}
	if valid {
		return n
	}
	var b strings.Builder
	for i, r := range n {
		ok := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || (i > 0 && r >= '0' && r <= '9')
		if ok {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// pipelineCtx holds what stages need beyond the line and labels.
type pipelineCtx struct {
	ts int64
}

// process runs the stages; false means the line is dropped.
func process(stages []Stage, pc *pipelineCtx, line string, ls *labelSet) (string, bool) {
	for _, st := range stages {
		switch s := st.(type) {
		case *LineFilter:
			if !s.match(line) {
				return "", false
			}
		case *ParserStage:
			line = s.parse(line, ls)
		case *LabelFilterStage:
			if !evalLabelFilter(s.F, ls) {
				return "", false
			}
		case *LineFormatStage:
			line = s.format(pc, line, ls)
		case *LabelFormatStage:
			s.apply(pc, line, ls)
		case *KeepStage:
			ls.ls = slices.DeleteFunc(ls.ls, func(l labels.Label) bool {
				for _, it := range s.Items {
					if it.Name == l.Name && (it.Matcher == nil || it.Matcher.Matches(l.Value)) {
						return false
					}
				}
				return true
			})
		case *DropStage:
			ls.ls = slices.DeleteFunc(ls.ls, func(l labels.Label) bool {
				for _, it := range s.Items {
					if it.Name == l.Name && (it.Matcher == nil || it.Matcher.Matches(l.Value)) {
						return true
					}
				}
				return false
			})
		case *DecolorizeStage:
			line = ansiRE.ReplaceAllString(line, "")
		}
	}
	return line, true
}

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;]*[a-zA-Z]`)

func (f *LineFilter) match(line string) bool {
	any := false
	for i, v := range f.Values {
		var m bool
		switch f.Op {
		case "|=", "!=":
			if f.ips != nil && f.ips[i] != nil {
				m = f.ips[i].matchLine(line)
			} else {
				m = strings.Contains(line, v)
			}
		case "|~", "!~":
			m = f.res[i].MatchString(line)
		case "|>", "!>":
			m = f.pats[i].match(line, nil)
		}
		if m {
			any = true
			break
		}
	}
	if f.Op[0] == '!' {
		return !any
	}
	return any
}

func (p *ParserStage) parse(line string, ls *labelSet) string {
	switch p.Kind {
	case "json":
		var only []string
		if p.narrowed {
			only = p.only
		}
		parseJSON(line, p.Params, only, ls)
	case "logfmt":
		if p.narrowed {
			parseLogfmtNarrowed(line, p, ls)
		} else {
			parseLogfmt(line, p, ls)
		}
	case "regexp":
		m := p.re.FindStringSubmatch(line)
		if m != nil {
			for i, n := range p.re.SubexpNames() {
				if n != "" {
					ls.setExtracted(n, m[i])
				}
			}
		}
	case "pattern":
		p.pat.match(line, func(n, v string) { ls.setExtracted(n, v) })
	case "unpack":
		if t := strings.TrimLeft(line, " \t\r\n"); t == "" || t[0] != '{' {
			ls.setError(errJSON, errUnpackNotObject)
			return line
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			ls.setError(errJSON, jsonErrorDetails(line))
			return line
		}
		for k, v := range obj {
			s, ok := v.(string)
			if !ok {
				continue
			}
			if k == "_entry" {
				line = s
				continue
			}
			ls.setExtracted(k, s)
		}
	}
	return line
}

// parseJSON sets the labels of a JSON object line; with only (a narrowed
// stage, ADR 0108) just those whose sanitised names are in it.
func parseJSON(line string, params []Extraction, only []string, ls *labelSet) {
	if t := strings.TrimLeft(line, " \t\r\n"); t == "" || t[0] != '{' {
		ls.setError(errJSON, errJSONObject)
		return
	}
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		ls.setError(errJSON, jsonErrorDetails(line))
		return
	}
	obj, ok := v.(map[string]any)
	if !ok {
		ls.setError(errJSON, errJSONObject)
		return
	}
	if len(params) > 0 {
		for _, x := range params {
			val, ok := jsonPath(obj, x.Expr)
			if ok {
				ls.setExtracted(x.Name, val)
			}
		}
		return
	}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			name := k
			if prefix != "" {
				name = prefix + "_" + k
			}
			switch t := v.(type) {
			case map[string]any:
				walk(name, t)
			case []any:
				// Arrays are skipped, as in Loki; pick elements with parameters.
			default:
				if only != nil && !slices.Contains(only, sanitizeLabelName(name)) {
					continue
				}
				ls.setExtracted(name, jsonScalar(t))
			}
		}
	}
	walk("", obj)
}

// The __error_details__ texts of json and unpack failures, as Loki writes
// them (its json parser reports a line that is not an object, or an object
// left open, as an object without its closing brace).
const (
	errJSONObject      = "Value looks like object, but can't find closing '}' symbol"
	errJSONString      = "Value is string, but can't find closing '\"' symbol"
	errJSONArray       = "Value is array, but can't find closing ']' symbol"
	errJSONMalformed   = "Malformed JSON error"
	errUnpackNotObject = "expecting json object(6), but it is not"
)

// jsonErrorDetails classifies a line starting with '{' that does not decode:
// a string, array or object left open, else malformed.
func jsonErrorDetails(line string) string {
	var stack []byte
	inStr := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		if inStr {
			switch c {
			case '\\':
				i++
			case '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			stack = append(stack, c)
		case '}', ']':
			if len(stack) == 0 {
				return errJSONMalformed
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return errJSONMalformed // the object closed; what it held is malformed
			}
		}
	}
	switch {
	case inStr:
		return errJSONString
	case len(stack) > 0 && stack[len(stack)-1] == '[':
		return errJSONArray
	case len(stack) > 0:
		return errJSONObject
	}
	return errJSONMalformed
}

func jsonScalar(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case json.Number:
		return t.String()
	case bool:
		return strconv.FormatBool(t)
	case nil:
		return ""
	default:
		b, _ := json.Marshal(t)
		return string(b)
	}
}

// jsonPath follows `a.b[0]["c d"]`.
func jsonPath(root any, path string) (string, bool) {
	cur := root
	for path != "" {
		switch {
		case path[0] == '.':
			path = path[1:]
		case path[0] == '[':
			end := strings.IndexByte(path, ']')
			if end < 0 {
				return "", false
			}
			key := path[1:end]
			path = path[end+1:]
			if uq, err := strconv.Unquote(key); err == nil {
				m, ok := cur.(map[string]any)
				if !ok {
					return "", false
				}
				cur = m[uq]
				continue
			}
			idx, err := strconv.Atoi(key)
			arr, ok := cur.([]any)
			if err != nil || !ok || idx < 0 || idx >= len(arr) {
				return "", false
			}
			cur = arr[idx]
		default:
			end := strings.IndexAny(path, ".[")
			if end < 0 {
				end = len(path)
			}
			m, ok := cur.(map[string]any)
			if !ok {
				return "", false
			}
			var found bool
			cur, found = m[path[:end]]
			if !found {
				return "", false
			}
			path = path[end:]
		}
	}
	switch cur.(type) {
	case map[string]any, []any:
		b, _ := json.Marshal(cur)
		return string(b), true
	}
	return jsonScalar(cur), true
}

// parseLogfmt reads key=value pairs; values may be quoted.
func parseLogfmt(line string, p *ParserStage, ls *labelSet) {
	strict := slices.Contains(p.Flags, "--strict")
	keepEmpty := slices.Contains(p.Flags, "--keep-empty")
	var want map[string]string // logfmt key → label name
	if len(p.Params) > 0 {
		want = make(map[string]string, len(p.Params))
		for _, x := range p.Params {
			want[x.Expr] = x.Name
		}
	}
	i := 0
	for i < len(line) {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i >= len(line) {
			break
		}
		ks := i
		plain := true // a valid label name as it stands
		for i < len(line) {
			c := line[i]
			if c == '=' || c == ' ' || c == '\t' {
				break
			}
			plain = plain && (c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || (i > ks && c >= '0' && c <= '9'))
			i++
		}
		key := line[ks:i]
		// A label no later stage, grouping or unwrap looks at is not set
		// (p.only, metric queries only; never with --strict, whose errors
		// depend on every pair). Keys that need sanitising are kept.
		skip := p.narrowed && plain && !slices.Contains(p.only, key)
		var val string
		if i < len(line) && line[i] == '=' {
			i++
			if i < len(line) && line[i] == '"' {
				vs := i
				i++
				for i < len(line) && line[i] != '"' {
					if line[i] == '\\' {
						i++
					}
					i++
				}
				if i >= len(line) {
					if strict {
						ls.setError(errLogfmt, fmt.Sprintf("logfmt syntax error at pos %d : unterminated quoted value", vs+1))
						return
					}
					val = line[vs+1:]
				} else if skip {
					i++
				} else {
					uq, err := strconv.Unquote(line[vs : i+1])
					if err != nil {
						uq = line[vs+1 : i]
					}
					val = uq
					i++
				}
			} else {
				vs := i
				for i < len(line) && line[i] != ' ' && line[i] != '\t' {
					i++
				}
				val = line[vs:i]
			}
		} else if key == "" || !keepEmpty {
			if strict && key != "" && !utf8.ValidString(key) {
				ls.setError(errLogfmt, "invalid key")
				return
			}
			continue
		}
		if key == "" {
			if strict {
				ls.setError(errLogfmt, fmt.Sprintf("logfmt syntax error at pos %d : unexpected '='", ks+1))
				return
			}
			continue
		}
		if skip {
			continue
		}
		if len(want) > 0 {
			name, ok := want[key]
			if !ok {
				continue
			}
			key = name
		}
		ls.setExtracted(key, val)
	}
}

// logfmtKeyStop marks the bytes that end a logfmt key; logfmtPlain the
// bytes of a label name that needs no sanitising (digits: not first).
var logfmtKeyStop, logfmtPlain [256]bool

func init() {
	logfmtKeyStop['='], logfmtKeyStop[' '], logfmtKeyStop['\t'] = true, true, true
	for c := range 256 {
		logfmtPlain[c] = c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
}

// parseLogfmtNarrowed is parseLogfmt for a narrowed stage (ADR 0096; no
// flags, no parameters): it sets only the pairs whose key is in p.only or
// needs sanitising (when a sanitised name can be in p.only), and finds the
// ends of keys and values eight bytes at a time instead of a loop per byte
// (ADR 0098). The labels in p.only come out as parseLogfmt sets them.
func parseLogfmtNarrowed(line string, p *ParserStage, ls *labelSet) {
	i, n := 0, len(line)
	for i < n {
		for i < n && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i >= n {
			return
		}
		ks := i
		i = logfmtKeyEnd(line, i)
		key := line[ks:i]
		if i >= n || line[i] != '=' {
			continue // a key without a value: dropped (no --keep-empty)
		}
		i++
		want := key != "" && slices.Contains(p.only, key)
		if !want && key != "" && p.sanitizedMatter {
			plain := line[ks] < '0' || line[ks] > '9'
			for j := ks; j < len(line) && plain && j < ks+len(key); j++ {
				plain = logfmtPlain[line[j]]
			}
			want = !plain
		}
		var val string
		if i < n && line[i] == '"' {
			vs := i
			end := -1
			if q := strings.IndexByte(line[i+1:], '"'); q >= 0 && strings.IndexByte(line[i+1:i+1+q], '\\') < 0 {
				end = i + 1 + q
			} else {
				j := i + 1
				for j < n && line[j] != '"' {
					if line[j] == '\\' {
						j++
					}
					j++
				}
				if j < n {
					end = j
				}
			}
			if end < 0 {
				i = n
				val = line[vs+1:]
			} else {
				i = end + 1
				if want {
					if uq, err := strconv.Unquote(line[vs:i]); err == nil {
						val = uq
					} else {
						val = line[vs+1 : end]
					}
				}
			}
		} else {
			vs := i
			i = logfmtValueEnd(line, i)
			val = line[vs:i]
		}
		if want {
			ls.setExtracted(key, val)
		}
	}
}

// SWAR: bytes equal to b in x have their high bit set in the result; the
// lowest set bit is exact (false positives only above a true match).
const swarLo, swarHi = 0x0101010101010101, 0x8080808080808080

func swarHas(x uint64, b byte) uint64 {
	v := x ^ (swarLo * uint64(b))
	return (v - swarLo) &^ v & swarHi
}

func load64(s string, i int) uint64 {
	return binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[i:]), 8))
}

// logfmtValueEnd is the index of the first space or tab at or after i, or
// len(s), eight bytes at a time.
func logfmtValueEnd(s string, i int) int {
	for ; i+8 <= len(s); i += 8 {
		x := load64(s, i)
		if m := swarHas(x, ' ') | swarHas(x, '\t'); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for i < len(s) && s[i] != ' ' && s[i] != '\t' {
		i++
	}
	return i
}

// logfmtKeyEnd is the index of the first '=', space or tab at or after i,
// or len(s).
func logfmtKeyEnd(s string, i int) int {
	for ; i+8 <= len(s); i += 8 {
		x := load64(s, i)
		if m := swarHas(x, '=') | swarHas(x, ' ') | swarHas(x, '\t'); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for i < len(s) && !logfmtKeyStop[s[i]] {
		i++
	}
	return i
}

// evalLabelFilter applies a filter; conversion failures keep the line and
// mark it with __error__, as Loki does.
func evalLabelFilter(f LabelFilter, ls *labelSet) bool {
	switch t := f.(type) {
	case *ParenLabelFilter:
		return evalLabelFilter(t.Inner, ls)
	case *BinaryLabelFilter:
		if t.And {
			return evalLabelFilter(t.L, ls) && evalLabelFilter(t.R, ls)
		}
		return evalLabelFilter(t.L, ls) || evalLabelFilter(t.R, ls)
	case *StringLabelFilter:
		v, _ := ls.get(t.M.Name)
		return t.M.Matches(v)
	case *IPLabelFilter:
		v, _ := ls.get(t.Name)
		return t.m.matchValue(v) != t.Neg
	case *NumericLabelFilter:
		v, ok := ls.get(t.Name)
		if !ok {
			return false
		}
		x, err := convertValue(v, t.Kind)
		if err != nil {
			ls.setError(errLabelFilter, err.Error())
			return true
		}
		return compare(t.Op, x, t.Val)
	}
	return false
}

func convertValue(v, kind string) (float64, error) {
	switch kind {
	case "duration", "duration_seconds":
		// Go's duration syntax, as Loki reads label values: "1.5s",
		// "300ms", "1h2m"; no "d".
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return 0, err
		}
		return d.Seconds(), nil
	case "bytes":
		return parseHumanBytes(strings.TrimSpace(v))
	}
	// Plain digits (status codes, counts): exact in a float64 up to 15
	// digits, and what ParseFloat returns, without its general parser.
	if n := len(v); n > 0 && n <= 15 {
		x := int64(0)
		for i := 0; i < n; i++ {
			c := v[i]
			if c < '0' || c > '9' {
				return strconv.ParseFloat(strings.TrimSpace(v), 64)
			}
			x = x*10 + int64(c-'0')
		}
		return float64(x), nil
	}
	return strconv.ParseFloat(strings.TrimSpace(v), 64)
}

func compare(op string, a, b float64) bool {
	switch op {
	case "==":
		return a == b
	case "!=":
		return a != b
	case ">":
		return a > b
	case ">=":
		return a >= b
	case "<":
		return a < b
	case "<=":
		return a <= b
	}
	return false
}

// unwrapValue extracts the sample value; ok is false when the line has no
// value to unwrap (it gives no sample). A value that does not convert gives
// a 0 sample marked SampleExtractionErr.
func unwrapValue(u *Unwrap, ls *labelSet) (float64, bool) {
	// A line without the label (or with it empty) gives no sample and no
	// error, as in Loki: a label present on some lines only is normal.
	v, _ := ls.get(u.Label)
	if v == "" {
		return 0, false
	}
	x, err := convertValue(v, u.Conv)
	if err != nil {
		ls.setError(errSample, err.Error())
		return 0, true
	}
	return x, true
}

// storeHints splits the leading filters of a pipeline (before any parser
// or formatting stage) for the store: single `|=` filters become Contains
// (bloom skipping and one scan per chunk); the other line filters become one
// Filter run in the store's chunk workers; `| name="value"` label filters
// become Metadata pre-filters (the engine still applies them).
func storeHints(stages []Stage) (contains []string, filter func(string) bool, md []labels.Label) {
	var rest []*LineFilter
	for _, st := range stages {
		switch f := st.(type) {
		case *LineFilter:
			if f.Op == "|=" && len(f.Values) == 1 && f.Values[0] != "" && f.IP == nil {
				contains = append(contains, f.Values[0])
			} else {
				rest = append(rest, f)
			}
			continue
		case *LabelFilterStage:
			if sf, ok := f.F.(*StringLabelFilter); ok && sf.M.Type == labels.MatchEqual && sf.M.Value != "" {
				md = append(md, labels.Label{Name: sf.M.Name, Value: sf.M.Value})
			}
			continue
		}
		break
	}
	if len(rest) > 0 {
		filter = func(line string) bool {
			for _, lf := range rest {
				if !lf.match(line) {
					return false
				}
			}
			return true
		}
	}
	return contains, filter, md
}

// applyGrouping keeps (by) or drops (without) the grouping's labels in place.
func (s *labelSet) applyGrouping(g *Grouping) {
	s.ls = slices.DeleteFunc(s.ls, func(l labels.Label) bool {
		return slices.Contains(g.Labels, l.Name) == g.Without
	})
}

// hash sorts the set in place and hashes its non-empty labels, so a series
// can be found without building its labels.Labels.
func (s *labelSet) hash() uint64 {
	for i := 1; i < len(s.ls); i++ { // insertion sort: sets are small
		for j := i; j > 0 && s.ls[j].Name < s.ls[j-1].Name; j-- {
			s.ls[j], s.ls[j-1] = s.ls[j-1], s.ls[j]
		}
	}
	h := xxhash.New()
	for _, l := range s.ls {
		if l.Value == "" {
			continue
		}
		h.WriteString(l.Name)
		h.Write(sep)
		h.WriteString(l.Value)
		h.Write(sep)
	}
	return h.Sum64()
}

var sep = []byte{0xff}

// equal reports whether the (sorted) set equals ls.
func (s *labelSet) equal(ls labels.Labels) bool {
	i := 0
	ok := true
	ls.Range(func(l labels.Label) {
		for i < len(s.ls) && s.ls[i].Value == "" {
			i++
		}
		if !ok || i >= len(s.ls) || s.ls[i] != l {
			ok = false
			return
		}
		i++
	})
	for i < len(s.ls) && s.ls[i].Value == "" {
		i++
	}
	return ok && i == len(s.ls)
}
