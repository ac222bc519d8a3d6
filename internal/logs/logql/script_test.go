package logql

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
)

// Script tests, in the spirit of promqltest: testdata/*.test hold
//
//	load {stream labels}
//	  <offset> [@md{name="value"}] <line>
//	eval instant at <t> <query>        then  <labels> <value> | scalar <value>
//	eval range from <t> to <t> step <d> <query>   then  <labels> <v>... (_ = no point)
//	  (one value per multiple of step from <t> rounded down to <t> rounded up)
//	eval logs from <t> to <t> [limit N] [backward] <query>   then  <labels> <t> <line>
//	eval_fail <query> [expect <substring>]
//
// Every eval runs twice: against the head and again after the head was
// flushed and compacted into a block.
func TestScripts(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.test")
	if len(files) == 0 {
		t.Fatal("no script tests found")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) { runScript(t, f) })
	}
}

type scriptEval struct {
	line     int
	kind     string // instant, range, logs, fail
	query    string
	start    time.Duration
	end      time.Duration
	step     time.Duration
	limit    int
	backward bool
	expect   []string
	errSub   string
}

func runScript(t *testing.T, path string) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	db, err := logstore.Open(t.TempDir(), logstore.Options{ChunkTargetSize: 512}, logstore.Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var evals []*scriptEval
	var cur *scriptEval
	var loadLabels labels.Labels
	app := db.Appender()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			if line == "" {
				cur = nil
			}
			continue
		}
		indented := raw[0] == ' ' || raw[0] == '\t'
		switch {
		case strings.HasPrefix(line, "load "):
			ls, err := parseLabelSet(strings.TrimPrefix(line, "load "))
			if err != nil {
				t.Fatalf("%s:%d: %v", path, n, err)
			}
			loadLabels, cur = ls, nil
		case strings.HasPrefix(line, "eval"):
			cur = parseEvalLine(t, path, n, line)
			evals = append(evals, cur)
			loadLabels = labels.EmptyLabels()
		case indented && cur != nil:
			if strings.HasPrefix(line, "expect ") && cur.kind == "fail" {
				cur.errSub = strings.TrimPrefix(line, "expect ")
			} else {
				cur.expect = append(cur.expect, line)
			}
		case indented && !loadLabels.IsEmpty():
			off, rest, _ := strings.Cut(line, " ")
			d, err := parseDuration(off)
			if err != nil {
				t.Fatalf("%s:%d: bad offset %q", path, n, off)
			}
			md := labels.EmptyLabels()
			if strings.HasPrefix(rest, "@md") {
				end := strings.Index(rest, "}")
				md, err = parseLabelSet(rest[3 : end+1])
				if err != nil {
					t.Fatalf("%s:%d: %v", path, n, err)
				}
				rest = strings.TrimSpace(rest[end+1:])
			}
			app.Append(loadLabels, logstore.Entry{Timestamp: int64(d), Line: rest, Metadata: md})
		default:
			t.Fatalf("%s:%d: cannot read %q", path, n, line)
		}
	}
	if _, err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, phase := range []string{"head", "block"} {
		if phase == "block" {
			if err := db.FlushHead(); err != nil {
				t.Fatal(err)
			}
		}
		for _, ev := range evals {
			runEval(t, db, path, phase, ev)
		}
	}
}

func parseEvalLine(t *testing.T, path string, n int, line string) *scriptEval {
	ev := &scriptEval{line: n}
	fields := strings.Fields(line)
	take := func() string {
		if len(fields) == 0 {
			t.Fatalf("%s:%d: incomplete eval line", path, n)
		}
		f := fields[0]
		fields = fields[1:]
		return f
	}
	dur := func() time.Duration {
		d, err := parseDuration(take())
		if err != nil {
			t.Fatalf("%s:%d: %v", path, n, err)
		}
		return d
	}
	switch take() {
	case "eval_fail":
		ev.kind = "fail"
		ev.end = 100 * time.Second // late enough to see every loaded line
	case "eval":
		ev.kind = take()
		switch ev.kind {
		case "instant":
			take() // at
			ev.end = dur()
		case "range", "logs":
			take() // from
			ev.start = dur()
			take() // to
			ev.end = dur()
			ev.limit = 100
			for len(fields) > 0 {
				switch fields[0] {
				case "step":
					take()
					ev.step = dur()
					continue
				case "limit":
					take()
					ev.limit, _ = strconv.Atoi(take())
					continue
				case "backward":
					take()
					ev.backward = true
					continue
				}
				break
			}
		default:
			t.Fatalf("%s:%d: unknown eval kind %q", path, n, ev.kind)
		}
	}
	ev.query = strings.Join(fields, " ")
	return ev
}

func runEval(t *testing.T, db *logstore.DB, path, phase string, ev *scriptEval) {
	where := fmt.Sprintf("%s:%d (%s) %s", path, ev.line, phase, ev.query)
	p := Params{Start: time.Unix(0, int64(ev.start)), End: time.Unix(0, int64(ev.end)), Step: ev.step, Limit: ev.limit, Backward: ev.backward, Instant: ev.kind == "instant"}
	res, err := NewEngine(EngineOpts{}).Exec(t.Context(), db, ev.query, p)
	if ev.kind == "fail" {
		if err == nil {
			t.Errorf("%s: expected an error, got %v", where, res.Value)
		} else if ev.errSub != "" && !strings.Contains(err.Error(), ev.errSub) {
			t.Errorf("%s: error %q does not contain %q", where, err, ev.errSub)
		}
		return
	}
	if err != nil {
		t.Errorf("%s: %v", where, err)
		return
	}
	got := formatValue(res.Value, ev)
	want := strings.Join(ev.expect, "\n")
	if got != want {
		t.Errorf("%s:\n--- got\n%s\n--- want\n%s", where, got, want)
	}
}

func fmtNum(v float64) string {
	if math.IsNaN(v) {
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

func formatValue(v Value, ev *scriptEval) string {
	var lines []string
	switch x := v.(type) {
	case Scalar:
		lines = append(lines, "scalar "+fmtNum(x.V))
	case Vector:
		for _, s := range x {
			lines = append(lines, s.Metric.String()+" "+fmtNum(s.V))
		}
	case Matrix:
		for _, s := range x {
			parts := []string{s.Metric.String()}
			pi := 0
			first, last := AlignSteps(time.Unix(0, int64(ev.start)), time.Unix(0, int64(ev.end)), ev.step)
			for ts := time.Duration(first); ts <= time.Duration(last); ts += ev.step {
				if pi < len(s.Points) && s.Points[pi].T == int64(ts/time.Millisecond) {
					parts = append(parts, fmtNum(s.Points[pi].V))
					pi++
				} else {
					parts = append(parts, "_")
				}
			}
			lines = append(lines, strings.Join(parts, " "))
		}
	case Streams:
		for _, s := range x {
			lines = append(lines, s.Labels.String())
			for _, e := range s.Entries {
				lines = append(lines, time.Duration(e.Timestamp).String()+" "+e.Line)
			}
		}
	}
	return strings.Join(lines, "\n")
}

// parseLabelSet reads {a="b", c="d"} using the LogQL lexer.
func parseLabelSet(s string) (labels.Labels, error) {
	toks, err := lex(s)
	if err != nil {
		return labels.EmptyLabels(), err
	}
	b := labels.NewScratchBuilder(4)
	i := 0
	next := func(k tokKind) (token, error) {
		if toks[i].kind != k {
			return token{}, fmt.Errorf("label set %q: unexpected %q", s, toks[i].text)
		}
		i++
		return toks[i-1], nil
	}
	if _, err := next(tLBrace); err != nil {
		return labels.EmptyLabels(), err
	}
	for toks[i].kind != tRBrace {
		n, err := next(tIdent)
		if err != nil {
			return labels.EmptyLabels(), err
		}
		if _, err := next(tEq); err != nil {
			return labels.EmptyLabels(), err
		}
		v, err := next(tString)
		if err != nil {
			return labels.EmptyLabels(), err
		}
		b.Add(n.text, v.text)
		if toks[i].kind == tComma {
			i++
		}
	}
	b.Sort()
	return b.Labels(), nil
}
