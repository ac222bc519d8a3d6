package logql

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/prometheus/common/model"
)

// ParseError is a syntax error with the 1-based position it was found at.
type ParseError struct {
	Line, Col int
	Msg       string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("parse error at line %d, col %d: %s", e.Line, e.Col, e.Msg)
}

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tString
	tNumber
	tDuration
	tBytes
	tLBrace
	tRBrace
	tLParen
	tRParen
	tLBrack
	tRBrack
	tComma
	tPipe      // |
	tPipeExact // |=
	tPipeMatch // |~
	tPipePat   // |>
	tNeq       // !=
	tNre       // !~
	tNpat      // !>
	tEq        // =
	tEqEq      // ==
	tRe        // =~
	tGt
	tGte
	tLt
	tLte
	tAdd
	tSub
	tMul
	tDiv
	tMod
	tPow
	tFlag // --strict
)

var tokNames = map[tokKind]string{
	tEOF: "end of input", tIdent: "identifier", tString: "string", tNumber: "number", tDuration: "duration", tBytes: "bytes",
	tLBrace: "{", tRBrace: "}", tLParen: "(", tRParen: ")", tLBrack: "[", tRBrack: "]", tComma: ",",
	tPipe: "|", tPipeExact: "|=", tPipeMatch: "|~", tPipePat: "|>", tNeq: "!=", tNre: "!~", tNpat: "!>",
	tEq: "=", tEqEq: "==", tRe: "=~", tGt: ">", tGte: ">=", tLt: "<", tLte: "<=",
	tAdd: "+", tSub: "-", tMul: "*", tDiv: "/", tMod: "%", tPow: "^", tFlag: "flag",
}

type token struct {
	kind tokKind
	text string // raw text; unquoted value for strings
	pos  int
	num  float64
	dur  time.Duration
}

type lexer struct {
	src  string
	toks []token
}

func lex(src string) ([]token, error) {
	l := &lexer{src: src}
	i := 0
	for {
		for i < len(src) && (src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r') {
			i++
		}
		if i < len(src) && src[i] == '#' { // comment to end of line
			for i < len(src) && src[i] != '\n' {
				i++
			}
			continue
		}
		if i >= len(src) {
			l.toks = append(l.toks, token{kind: tEOF, pos: i})
			return l.toks, nil
		}
		start := i
		c := src[i]
		two := ""
		if i+1 < len(src) {
			two = src[i : i+2]
		}
		emit := func(k tokKind, n int) {
			l.toks = append(l.toks, token{kind: k, text: src[start : start+n], pos: start})
			i += n
		}
		switch {
		case two == "|=":
			emit(tPipeExact, 2)
		case two == "|~":
			emit(tPipeMatch, 2)
		case two == "|>":
			emit(tPipePat, 2)
		case two == "!=":
			emit(tNeq, 2)
		case two == "!~":
			emit(tNre, 2)
		case two == "!>":
			emit(tNpat, 2)
		case two == "==":
			emit(tEqEq, 2)
		case two == "=~":
			emit(tRe, 2)
		case two == ">=":
			emit(tGte, 2)
		case two == "<=":
			emit(tLte, 2)
		case two == "--":
			j := i + 2
			for j < len(src) && (isIdentChar(src[j]) || src[j] == '-') {
				j++
			}
			emit(tFlag, j-i)
		case c == '|':
			emit(tPipe, 1)
		case c == '=':
			emit(tEq, 1)
		case c == '>':
			emit(tGt, 1)
		case c == '<':
			emit(tLt, 1)
		case c == '{':
			emit(tLBrace, 1)
		case c == '}':
			emit(tRBrace, 1)
		case c == '(':
			emit(tLParen, 1)
		case c == ')':
			emit(tRParen, 1)
		case c == '[':
			emit(tLBrack, 1)
		case c == ']':
			emit(tRBrack, 1)
		case c == ',':
			emit(tComma, 1)
		case c == '+':
			emit(tAdd, 1)
		case c == '-':
			emit(tSub, 1)
		case c == '*':
			emit(tMul, 1)
		case c == '/':
			emit(tDiv, 1)
		case c == '%':
			emit(tMod, 1)
		case c == '^':
			emit(tPow, 1)
		case c == '"' || c == '`':
			j := i + 1
			for j < len(src) && src[j] != c {
				if c == '"' && src[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(src) {
				return nil, l.errAt(start, "unterminated string")
			}
			raw := src[i : j+1]
			val := raw[1 : len(raw)-1]
			if c == '"' {
				v, err := strconv.Unquote(raw)
				if err != nil {
					return nil, l.errAt(start, "invalid string "+raw+": "+err.Error())
				}
				val = v
			}
			l.toks = append(l.toks, token{kind: tString, text: val, pos: start})
			i = j + 1
		case c >= '0' && c <= '9' || (c == '.' && i+1 < len(src) && src[i+1] >= '0' && src[i+1] <= '9'):
			j := i
			for j < len(src) && (src[j] >= '0' && src[j] <= '9' || src[j] == '.') {
				j++
			}
			if j < len(src) && (src[j] == 'e' || src[j] == 'E') {
				e := j + 1
				if e < len(src) && (src[e] == '+' || src[e] == '-') {
					e++
				}
				if e < len(src) && src[e] >= '0' && src[e] <= '9' {
					for e < len(src) && src[e] >= '0' && src[e] <= '9' {
						e++
					}
					j = e
				}
			}
			k := j
			for k < len(src) && (unicode.IsLetter(rune(src[k])) || src[k] >= '0' && src[k] <= '9' || src[k] == '.') {
				k++
			}
			text := src[i:k]
			if k == j {
				f, err := strconv.ParseFloat(text, 64)
				if err != nil {
					return nil, l.errAt(start, "invalid number "+text)
				}
				l.toks = append(l.toks, token{kind: tNumber, text: text, pos: start, num: f})
			} else if d, err := parseDuration(text); err == nil {
				l.toks = append(l.toks, token{kind: tDuration, text: text, pos: start, dur: d})
			} else if b, err := parseHumanBytes(text); err == nil {
				l.toks = append(l.toks, token{kind: tBytes, text: text, pos: start, num: b})
			} else if strings.ContainsAny(text[j-i:], "eE") {
				f, err := strconv.ParseFloat(text, 64)
				if err != nil {
					return nil, l.errAt(start, "invalid number "+text)
				}
				l.toks = append(l.toks, token{kind: tNumber, text: text, pos: start, num: f})
			} else {
				return nil, l.errAt(start, "invalid duration or size "+text)
			}
			i = k
		case isIdentStart(c):
			j := i
			for j < len(src) && isIdentChar(src[j]) {
				j++
			}
			emit(tIdent, j-i)
		default:
			return nil, l.errAt(start, fmt.Sprintf("unexpected character %q", c))
		}
	}
}

func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isIdentChar(c byte) bool  { return isIdentStart(c) || c >= '0' && c <= '9' }

func (l *lexer) errAt(pos int, msg string) *ParseError { return posError(l.src, pos, msg) }

func posError(src string, pos int, msg string) *ParseError {
	line, col := 1, 1
	for i := 0; i < pos && i < len(src); i++ {
		if src[i] == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return &ParseError{Line: line, Col: col, Msg: msg}
}

// parseDuration accepts Prometheus durations ("1d", "5m") and Go ones ("1.5s", "250µs").
func parseDuration(s string) (time.Duration, error) {
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return time.ParseDuration(s)
}
