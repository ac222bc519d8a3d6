// Package traceql parses and evaluates TraceQL, the query language of Tempo,
// as described in its public documentation: spanset filters over intrinsics
// and scoped attributes, spanset and structural operators, and pipelines with
// aggregates, by(), select() and coalesce().
//
// Parse builds an AST (positions in errors, String round-trips). A Query is
// evaluated on one trace at a time (Eval); Hints lists the equality
// conditions every matching trace must satisfy, which a store can answer from
// postings to skip traces.
//
// A query ending in a metrics function (rate(), count_over_time(),
// quantile_over_time(), histogram_over_time(), compare(), ... with by() and
// topk/bottomk) is a TraceQL metrics query: a MetricsEvaluator is fed the
// traces of a time range one at a time and returns step-aligned series
// (ADR 0027).
package traceql

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ParseError is a syntax error at a byte offset of the query.
type ParseError struct {
	Pos int // byte offset, 0-based
	Msg string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("parse error at position %d: %s", e.Pos+1, e.Msg)
}

type tokKind int

const (
	tEOF tokKind = iota
	tPunct
	tString
	tInt
	tFloat
	tDuration
	tIdent
)

type token struct {
	kind tokKind
	text string // punctuation/operator or identifier text; unquoted string value
	pos  int
	i    int64
	f    float64
	d    time.Duration
}

// Longest operators first.
var operators = []string{"!>>", "!<<", "&>>", "&<<", "&>", "&<", "&~", "&&", "||", "!=", "=~", "!~", ">=", "<=", ">>", "<<", "!>", "!<",
	"{", "}", "(", ")", "|", ",", "=", ">", "<", "~", "!", "+", "-", "*", "/", "%", "^"}

func isDelim(r rune) bool {
	return unicode.IsSpace(r) || strings.ContainsRune("{}()|,=!<>~&\"`+*/%^", r)
}

func lex(src string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(src) {
		r, w := utf8.DecodeRuneInString(src[i:])
		switch {
		case unicode.IsSpace(r):
			i += w
			continue
		case r == '"' || r == '`':
			s, n, err := lexString(src, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{kind: tString, text: s, pos: i})
			i += n
			continue
		case r >= '0' && r <= '9':
			t, n, err := lexNumber(src, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, t)
			i += n
			continue
		case r == '.' || r == '_' || unicode.IsLetter(r):
			start := i
			for i < len(src) {
				r, w := utf8.DecodeRuneInString(src[i:])
				if isDelim(r) {
					break
				}
				i += w
			}
			text := src[start:i]
			// span."name with spaces"
			if strings.HasSuffix(text, ".") && i < len(src) && src[i] == '"' {
				s, n, err := lexString(src, i)
				if err != nil {
					return nil, err
				}
				text += s
				i += n
				toks = append(toks, token{kind: tIdent, text: text, pos: start, i: 1}) // i=1: quoted name
				continue
			}
			toks = append(toks, token{kind: tIdent, text: text, pos: start})
			continue
		}
		matched := false
		for _, op := range operators {
			if strings.HasPrefix(src[i:], op) {
				toks = append(toks, token{kind: tPunct, text: op, pos: i})
				i += len(op)
				matched = true
				break
			}
		}
		if !matched {
			return nil, &ParseError{Pos: i, Msg: fmt.Sprintf("unexpected character %q", r)}
		}
	}
	return append(toks, token{kind: tEOF, pos: len(src)}), nil
}

func lexString(src string, i int) (string, int, error) {
	q := src[i]
	j := i + 1
	for j < len(src) {
		if src[j] == '\\' && q == '"' {
			j += 2
			continue
		}
		if src[j] == q {
			s, err := strconv.Unquote(src[i : j+1])
			if err != nil {
				return "", 0, &ParseError{Pos: i, Msg: "invalid escape in string"}
			}
			return s, j + 1 - i, nil
		}
		j++
	}
	return "", 0, &ParseError{Pos: i, Msg: "unterminated string"}
}

var durationUnits = []string{"ns", "us", "µs", "ms", "s", "m", "h"}

func lexNumber(src string, i int) (token, int, error) {
	j := i
	isFloat := false
	for j < len(src) && (src[j] >= '0' && src[j] <= '9' || src[j] == '.') {
		if src[j] == '.' {
			isFloat = true
		}
		j++
	}
	if j < len(src) && (src[j] == 'e' || src[j] == 'E') {
		k := j + 1
		if k < len(src) && (src[k] == '+' || src[k] == '-') {
			k++
		}
		if k < len(src) && src[k] >= '0' && src[k] <= '9' {
			for k < len(src) && src[k] >= '0' && src[k] <= '9' {
				k++
			}
			j, isFloat = k, true
		}
	}
	// A unit makes it a duration: 100ms, 1.5s, 2m, 1h30m.
	k := j
	for k < len(src) && (unicode.IsLetter(rune(src[k])) || src[k] == 0xc2 || src[k] == 0xb5 || (src[k] >= '0' && src[k] <= '9') || src[k] == '.') {
		k++
	}
	if k > j {
		d, err := time.ParseDuration(src[i:k])
		if err != nil {
			return token{}, 0, &ParseError{Pos: i, Msg: fmt.Sprintf("invalid duration %q", src[i:k])}
		}
		return token{kind: tDuration, d: d, pos: i, text: src[i:k]}, k - i, nil
	}
	text := src[i:j]
	if isFloat {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return token{}, 0, &ParseError{Pos: i, Msg: fmt.Sprintf("invalid number %q", text)}
		}
		return token{kind: tFloat, f: f, pos: i, text: text}, j - i, nil
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return token{}, 0, &ParseError{Pos: i, Msg: fmt.Sprintf("invalid integer %q", text)}
	}
	return token{kind: tInt, i: n, pos: i, text: text}, j - i, nil
}
