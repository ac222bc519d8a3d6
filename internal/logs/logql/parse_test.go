package logql

import (
	"errors"
	"testing"
	"time"
)

var roundTrip = []string{
	`{app="api"}`,
	`{app="api", env=~"prod|dev", team!="x", ns!~"kube-.*"}`,
	`{app="api"} |= "error" != "timeout" |~ "a+" !~ "b" |> "<_> GET <_>" !> "<_>x"`,
	`{app="api"} |= "a" or "b"`,
	`{app="api"} | json | status >= 500 and latency > 250ms or (size < 1KB, level="x")`,
	`{app="api"} | json first="servers[0]", m="request.method"`,
	`{app="api"} | logfmt --strict --keep-empty a, b="c"`,
	`{app="api"} | regexp "(?P<x>\\d+)" | pattern "<a> <_> <b>" | unpack`,
	"{app=\"api\"} | line_format `{{.a}} {{__line__}}` | label_format x=y, z=\"{{.a}}\"",
	`{app="api"} | keep a, b="c" | drop d, e!="f" | decolorize | __error__=""`,
	`count_over_time({app="api"}[5m])`,
	`count_over_time({app="api"} |= "x" [5m] offset 1h)`,
	`rate({app="api"}[1m]) * 2 + 1`,
	`sum by (a, b) (rate({app="api"}[1m]))`,
	`sum without (a) (rate({app="api"}[1m])) > bool 3`,
	`topk(5, sum by (host) (bytes_rate({app="api"}[1m])))`,
	`quantile_over_time(0.99, {app="api"} | json | unwrap duration(latency) | __error__="" [5m]) by (path)`,
	`avg_over_time({app="api"} | logfmt | unwrap bytes(size) [1m])`,
	`sum(rate({a="b"}[1m])) / on (x) sum(rate({a="c"}[1m]))`,
	`sum(rate({a="b"}[1m])) / ignoring (x) sum(rate({a="c"}[1m])) or vector(0)`,
	`(sum(rate({a="b"}[1m])) + 1) ^ 2`,
	`absent_over_time({app="x"}[1h])`,
	`-1 * 2`,
	// What Grafana's Loki data source sends.
	`sum by (level, detected_level) (count_over_time({app="x"} | drop __error__[1m]))`,
	`vector(1)+vector(1)`,
	`{app="x"} | json | line_format "{{.msg}}" | __error__=""`,
	`sum by (app) (rate({app=~"a|b"} |= "x" [5m]))`,
	// Issue 9: ip(), group_left/right, label_replace.
	`{app="api"} |= ip("10.0.0.0/8") != ip("::1") or "x"`,
	`{app="api"} | logfmt | addr=ip("10.0.0.1-10.0.0.9") | addr!=ip("10.0.0.2") or b="c"`,
	`sum by (x, y) (rate({a="b"}[1m])) / on (x) group_left (y, z) sum by (x) (rate({a="c"}[1m]))`,
	`rate({a="b"}[1m]) * ignoring (x) group_right sum(rate({a="c"}[1m]))`,
	`rate({a="b"}[1m]) * ignoring (x) group_right () (sum(rate({a="c"}[1m])))`,
	`label_replace(rate({a="b"}[1m]), "dst", "$1", "src", "(.*)")`,
	`sum(label_replace(rate({a="b"}[1m]), "dst", "", "src", "x")) by (dst)`,
}

func TestParseRoundTrip(t *testing.T) {
	for _, q := range roundTrip {
		t.Run(q, func(t *testing.T) {
			e, err := ParseExpr(q)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			s := e.String()
			e2, err := ParseExpr(s)
			if err != nil {
				t.Fatalf("reparse %q: %v", s, err)
			}
			if s2 := e2.String(); s2 != s {
				t.Fatalf("not stable:\n%s\n%s", s, s2)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		q         string
		line, col int
		msg       string
	}{
		{`{app="api"`, 1, 11, `expected "}" or ","`},
		{`{app="api"} |= `, 1, 16, `expected quoted filter value, got "end of input"`},
		{"{app=\"api\"}\n  | foo", 2, 5, `unknown pipeline stage "foo"`},
		{`rate({app="api"})`, 1, 17, `expected "[" and a range`},
		{`{app="a"} | x > "y"`, 1, 15, `operator > needs a number`},
		{`sum(rate({a="b"}[1m])`, 1, 22, `expected ")"`},
		{`{a="b"} |~ "("`, 1, 12, `invalid regexp in line filter`},
		{`{a="b"} | json | unwrap x`, 1, 18, `unwrap is only allowed in a range aggregation`},
		{`{}`, 1, 1, `at least one`},
		{`{a="b"} @`, 1, 9, `unexpected character '@'`},
		{`{a="b"} |= "unterminated`, 1, 12, `unterminated string`},
	} {
		t.Run(tc.q, func(t *testing.T) {
			_, err := ParseExpr(tc.q)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("want a *ParseError, got %v", err)
			}
			if pe.Line != tc.line || pe.Col != tc.col || !contains(pe.Msg, tc.msg) {
				t.Fatalf("got %d:%d %q, want %d:%d containing %q", pe.Line, pe.Col, pe.Msg, tc.line, tc.col, tc.msg)
			}
		})
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && indexOf(s, sub) >= 0)
}
func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func FuzzParseExpr(f *testing.F) {
	for _, q := range roundTrip {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		e, err := ParseExpr(q)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error is not a *ParseError: %v", err)
			}
			return
		}
		s := e.String()
		e2, err := ParseExpr(s)
		if err != nil {
			t.Fatalf("printed form %q of %q does not parse: %v", s, q, err)
		}
		if e2.String() != s {
			t.Fatalf("print not stable for %q", q)
		}
	})
}

func TestEvalEmptyRange(t *testing.T) {
	res, err := NewEngine(EngineOpts{}).Exec(t.Context(), nil, `sum(rate({a="b"}[1m]))`, Params{Start: time.Unix(100, 0), End: time.Unix(50, 0), Step: time.Second})
	if err != nil || len(res.Value.(Matrix)) != 0 {
		t.Fatalf("%v %v", res.Value, err)
	}
}

func TestPointsAligned(t *testing.T) {
	for _, c := range []struct {
		start, end, step time.Duration
		want             int64
	}{
		{90 * time.Second, 1890 * time.Second, time.Minute, 32}, // 60s … 1920s
		{0, time.Hour, time.Minute, 61},
		{5 * time.Second, 55 * time.Second, 20 * time.Second, 4},
		{10 * time.Second, 10 * time.Second, time.Minute, 2}, // 0s and 60s
		{time.Minute, time.Minute, time.Minute, 1},
	} {
		if got := Points(time.Unix(0, int64(c.start)), time.Unix(0, int64(c.end)), c.step); got != c.want {
			t.Errorf("Points(%v, %v, %v) = %d, want %d", c.start, c.end, c.step, got, c.want)
		}
	}
}
