package lokiapi

import (
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
)

// Loki 3's discovered labels (ADR 0017): every stream gets the index label
// service_name, every entry the structured metadata detected_level.
const (
	labelServiceName   = "service_name"
	unknownService     = "unknown_service"
	labelDetectedLevel = "detected_level"
	levelUnknown       = "unknown"
)

// defaultDiscoverServiceName is Loki 3's default discover_service_name:
// the labels tried, in order, when a stream has no service_name.
func defaultDiscoverServiceName() []string {
	return []string{"service", "app", "application", "name", "app_kubernetes_io_name",
		"container", "container_name", "component", "workload", "job"}
}

// levelFieldNames are the label, metadata and line-field names read as a
// level, case-sensitive, as Loki documents them.
var levelFieldNames = map[string]bool{
	"level": true, "LEVEL": true, "Level": true,
	"severity": true, "SEVERITY": true, "Severity": true,
	"lvl": true, "LVL": true, "Lvl": true,
}

// levelMetadata holds one shared metadata set per normalised level, so
// entries without metadata of their own get detected_level without an
// allocation.
var levelMetadata = func() map[string]labels.Labels {
	m := map[string]labels.Labels{}
	for _, l := range []string{"trace", "debug", "info", "warn", "error", "critical", "fatal", levelUnknown} {
		m[l] = labels.FromStrings(labelDetectedLevel, l)
	}
	return m
}()

// discoverServiceName returns ls with service_name added, taken from the
// first label of names the stream has, else unknown_service. A stream that
// has service_name keeps it; an empty names list turns discovery off.
func discoverServiceName(ls labels.Labels, names []string) labels.Labels {
	if len(names) == 0 || ls.Has(labelServiceName) {
		return ls
	}
	v := unknownService
	for _, n := range names {
		if s := ls.Get(n); s != "" {
			v = s
			break
		}
	}
	b := labels.NewBuilder(ls)
	b.Set(labelServiceName, v)
	return b.Labels()
}

// streamLevel is the level a stream's labels fix for all its entries
// ("" when none does): the value of a level label, as written.
func streamLevel(ls labels.Labels) string {
	lvl := ""
	ls.Range(func(l labels.Label) {
		if lvl == "" && levelFieldNames[l.Name] && l.Value != "" {
			lvl = l.Value
		}
	})
	return lvl
}

// addDetectedLevel sets e's detected_level metadata unless it has one.
// fixed is the stream's level (streamLevel), or "".
func addDetectedLevel(e *logstore.Entry, fixed string) {
	if e.Metadata.Len() == 0 {
		lvl := fixed
		if lvl == "" {
			lvl = detectLevel(labels.EmptyLabels(), e.Line)
		}
		if md, ok := levelMetadata[lvl]; ok {
			e.Metadata = md
		} else {
			e.Metadata = labels.FromStrings(labelDetectedLevel, lvl)
		}
		return
	}
	if e.Metadata.Has(labelDetectedLevel) {
		return
	}
	lvl := fixed
	if lvl == "" {
		lvl = detectLevel(e.Metadata, e.Line)
	}
	b := labels.NewBuilder(e.Metadata)
	b.Set(labelDetectedLevel, lvl)
	e.Metadata = b.Labels()
}

// detectLevel finds an entry's level when its stream has no level label:
// from its structured metadata (a level-named entry as written, OTLP
// severity_number, severity_text), then from a level field of a JSON or
// logfmt line, then from the first level keyword in the line, else
// "unknown".
func detectLevel(md labels.Labels, line string) string {
	lvl := ""
	var sevText, sevNum string
	md.Range(func(l labels.Label) {
		switch {
		case lvl != "" || l.Value == "":
		case levelFieldNames[l.Name]:
			lvl = l.Value
		case l.Name == "severity_number":
			sevNum = l.Value
		case l.Name == "severity_text":
			sevText = l.Value
		}
	})
	if lvl != "" {
		return lvl
	}
	if sevNum != "" {
		if n, err := strconv.Atoi(sevNum); err == nil && n > 0 {
			return severityNumberLevel(n)
		}
	}
	if sevText != "" {
		if l := normaliseLevel(sevText); l != "" {
			return l
		}
	}
	if l := levelFromFields(line); l != "" {
		return l
	}
	if l := levelFromKeywords(line); l != "" {
		return l
	}
	return levelUnknown
}

// severityNumberLevel maps an OTLP SeverityNumber (1–24) to a level.
func severityNumberLevel(n int) string {
	switch {
	case n <= 4:
		return "trace"
	case n <= 8:
		return "debug"
	case n <= 12:
		return "info"
	case n <= 16:
		return "warn"
	case n <= 20:
		return "error"
	default:
		return "fatal"
	}
}

// normaliseLevel maps the usual spellings of a level (any case) to one of
// trace, debug, info, warn, error, critical, fatal; "" when unrecognised.
func normaliseLevel(s string) string {
	if len(s) > 13 {
		return ""
	}
	var buf [13]byte
	b := buf[:len(s)]
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	switch string(b) {
	case "trace", "trc":
		return "trace"
	case "debug", "dbg", "dbug":
		return "debug"
	case "info", "inf", "information", "informational", "notice":
		return "info"
	case "warn", "warning", "wrn":
		return "warn"
	case "error", "err", "eror", "erro":
		return "error"
	case "critical", "crit":
		return "critical"
	case "fatal", "ftl", "panic", "emerg", "emergency", "alert":
		return "fatal"
	}
	return ""
}

// levelFromFields reads a level field of a JSON object line ("level":"x")
// or of a logfmt line (level=x), with the names of levelFieldNames.
func levelFromFields(line string) string {
	t := strings.TrimSpace(line)
	if len(t) >= 2 && t[0] == '{' && t[len(t)-1] == '}' {
		return levelFromJSON(t)
	}
	for i := 0; i < len(line); {
		j := strings.IndexByte(line[i:], '=')
		if j < 0 {
			return ""
		}
		eq := i + j
		ks := eq
		for ks > 0 && line[ks-1] != ' ' && line[ks-1] != '\t' {
			ks--
		}
		i = eq + 1
		if !levelFieldNames[line[ks:eq]] {
			continue
		}
		v := line[eq+1:]
		if len(v) > 0 && v[0] == '"' {
			if end := strings.IndexByte(v[1:], '"'); end >= 0 {
				v = v[1 : end+1]
			}
		} else if end := strings.IndexAny(v, " \t"); end >= 0 {
			v = v[:end]
		}
		if l := normaliseLevel(v); l != "" {
			return l
		}
	}
	return ""
}

// levelFromJSON finds "name": "value" (or a number) for a level name at
// any depth; it does not parse the whole object.
func levelFromJSON(s string) string {
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], `":`)
		if j < 0 {
			return ""
		}
		end := i + j
		i = end + 2
		ks := strings.LastIndexByte(s[:end], '"')
		if ks < 0 || !levelFieldNames[s[ks+1:end]] {
			continue
		}
		v := strings.TrimLeft(s[end+2:], " \t")
		if len(v) > 0 && v[0] == '"' {
			if e := strings.IndexByte(v[1:], '"'); e >= 0 {
				if l := normaliseLevel(v[1 : e+1]); l != "" {
					return l
				}
			}
			continue
		}
		// A number: syslog-style severities are not guessed at; Loki reads
		// textual levels only.
	}
	return ""
}

// levelFromKeywords returns the level of the first whole word of the line
// that names one (case-insensitive), e.g. "ERROR", "warn", "Fatal".
func levelFromKeywords(line string) string {
	for i := 0; i < len(line); {
		c := line[i]
		if !isLetter(c) {
			i++
			continue
		}
		j := i
		for j < len(line) && isLetter(line[j]) {
			j++
		}
		if n := j - i; n >= 3 && n <= 8 && keywordInitial[line[i]|0x20] && (j == len(line) || !isDigit(line[j])) && (i == 0 || !isDigit(line[i-1])) {
			if l := keywordLevel(line[i:j]); l != "" {
				return l
			}
		}
		i = j
	}
	return ""
}

// keywordInitial are the (lower-case) first letters of the level keywords.
var keywordInitial = [256]bool{'t': true, 'd': true, 'i': true, 'w': true, 'e': true, 'c': true, 'f': true}

// keywordLevel is normaliseLevel for free text: only unambiguous words.
func keywordLevel(w string) string {
	l := normaliseLevel(w)
	if l == "" {
		return ""
	}
	for _, x := range [...]string{"alert", "notice", "panic", "emerg", "inf", "ftl", "trc", "dbug", "eror", "erro"} {
		if strings.EqualFold(w, x) {
			return "" // too common as ordinary words, or not used alone in text
		}
	}
	return l
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
