package traceql

import (
	"math"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Kind is the type of a Static value.
type Kind int

const (
	KindNil Kind = iota
	KindString
	KindInt
	KindFloat
	KindBool
	KindDuration
	KindStatus
	KindSpanKind
)

// Static is a value: a literal in the query or an attribute of a span.
type Static struct {
	Kind Kind
	S    string
	I    int64 // int, duration (ns), status code, span kind
	F    float64
	B    bool
}

func String(s string) Static                 { return Static{Kind: KindString, S: s} }
func Int(i int64) Static                     { return Static{Kind: KindInt, I: i} }
func Float(f float64) Static                 { return Static{Kind: KindFloat, F: f} }
func Bool(b bool) Static                     { return Static{Kind: KindBool, B: b} }
func Duration(d time.Duration) Static        { return Static{Kind: KindDuration, I: int64(d)} }
func Status(c ptrace.StatusCode) Static      { return Static{Kind: KindStatus, I: int64(c)} }
func SpanKindValue(k ptrace.SpanKind) Static { return Static{Kind: KindSpanKind, I: int64(k)} }

var statusNames = map[string]ptrace.StatusCode{"ok": ptrace.StatusCodeOk, "error": ptrace.StatusCodeError, "unset": ptrace.StatusCodeUnset}
var kindNames = map[string]ptrace.SpanKind{"unspecified": ptrace.SpanKindUnspecified, "internal": ptrace.SpanKindInternal,
	"server": ptrace.SpanKindServer, "client": ptrace.SpanKindClient, "producer": ptrace.SpanKindProducer, "consumer": ptrace.SpanKindConsumer}

// StatusName and KindName spell status codes and span kinds as TraceQL does.
func StatusName(c ptrace.StatusCode) string {
	for n, v := range statusNames {
		if v == c {
			return n
		}
	}
	return "unset"
}

func KindName(k ptrace.SpanKind) string {
	for n, v := range kindNames {
		if v == k {
			return n
		}
	}
	return "unspecified"
}

func (s Static) numeric() (float64, bool) {
	switch s.Kind {
	case KindInt:
		return float64(s.I), true
	case KindFloat:
		return s.F, true
	}
	return 0, false
}

// String prints the value as a TraceQL literal.
func (s Static) String() string {
	switch s.Kind {
	case KindString:
		return strconv.Quote(s.S)
	case KindInt:
		return strconv.FormatInt(s.I, 10)
	case KindFloat:
		t := strconv.FormatFloat(s.F, 'g', -1, 64)
		if !strings.ContainsAny(t, ".eEN") && !math.IsInf(s.F, 0) {
			t += ".0"
		}
		return t
	case KindBool:
		return strconv.FormatBool(s.B)
	case KindDuration:
		return formatDuration(time.Duration(s.I))
	case KindStatus:
		return StatusName(ptrace.StatusCode(s.I))
	case KindSpanKind:
		return KindName(ptrace.SpanKind(s.I))
	}
	return "nil"
}

// Text is the value as plain text (no quotes), as search results show it.
func (s Static) Text() string {
	if s.Kind == KindString {
		return s.S
	}
	return s.String()
}

// formatDuration picks the largest unit that divides d evenly, so it lexes back.
func formatDuration(d time.Duration) string {
	for _, u := range []struct {
		s string
		d time.Duration
	}{{"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}, {"us", time.Microsecond}} {
		if d != 0 && d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.s
		}
	}
	return strconv.FormatInt(int64(d), 10) + "ns"
}

// compare applies op to a and b. Mismatched types and nil compare false,
// except that `= nil` and `!= nil` test for presence.
func compare(op string, a, b Static) bool {
	if a.Kind == KindNil || b.Kind == KindNil {
		switch op {
		case "=":
			return a.Kind == b.Kind
		case "!=":
			return a.Kind != b.Kind
		}
		return false
	}
	if af, ok := a.numeric(); ok {
		bf, ok := b.numeric()
		if !ok {
			return false
		}
		return cmpOrdered(op, af, bf)
	}
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case KindString:
		return cmpOrdered(op, a.S, b.S)
	case KindDuration:
		return cmpOrdered(op, a.I, b.I)
	case KindBool, KindStatus, KindSpanKind:
		eq := a.I == b.I && a.B == b.B
		switch op {
		case "=":
			return eq
		case "!=":
			return !eq
		}
	}
	return false
}

func cmpOrdered[T int64 | float64 | string](op string, a, b T) bool {
	switch op {
	case "=":
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
