package traceql

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/goleak"

	"github.com/nx-watcher/nxwatcher/internal/testclock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Script tests, in the spirit of promqltest. A file holds blocks:
//
//	load
//	trace <name>
//	span <name> [parent=<span>] [svc=<service>] [name="..."] [kind=server] [status=error]
//	     [msg="..."] [start=<duration>] [dur=<duration>] [span.k=v] [resource.k=v]
//	     [event=<name>] [event.k=v] [eventAt=<dur>] [scopeVersion=<v>] [link=<trace>]
//
//	eval <query>
//	<trace>: <span> <span> ... [key=value ...]   one line per spanset, any order
//	(an eval with no lines expects no match)
//
//	eval_fail <query>
//	<substring of the error>
//
//	eval_metrics <start> <end> <step> <query>    times are durations from the data's base
//	<promLabels> <value per interval, _ for none> ...   one line per series, in order
//	(step "instant" evaluates one interval over [start, end))
type script struct {
	traces map[string]ptrace.Traces
	order  []string
	names  map[string]string // hex id -> name
}

var scriptBase = testclock.Base().UnixNano()

func nameTraceID(n string) pcommon.TraceID {
	h := sha256.Sum256([]byte("trace/" + n))
	var id pcommon.TraceID
	copy(id[:], h[:16])
	return id
}

func nameSpanID(n string) pcommon.SpanID {
	h := sha256.Sum256([]byte("span/" + n))
	var id pcommon.SpanID
	copy(id[:], h[:8])
	return id
}

// fields splits on spaces, keeping "quoted strings" whole.
func fields(s string) []string {
	var out []string
	var cur strings.Builder
	inQ := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && inQ && i+1 < len(s):
			cur.WriteByte(c)
			cur.WriteByte(s[i+1])
			i++
		case c == '"':
			inQ = !inQ
			cur.WriteByte(c)
		case c == ' ' && !inQ:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteByte(c)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

func putValue(m pcommon.Map, k, v string) {
	if s, err := strconv.Unquote(v); err == nil {
		m.PutStr(k, s)
	} else if i, err := strconv.ParseInt(v, 10, 64); err == nil {
		m.PutInt(k, i)
	} else if f, err := strconv.ParseFloat(v, 64); err == nil {
		m.PutDouble(k, f)
	} else if b, err := strconv.ParseBool(v); err == nil {
		m.PutBool(k, b)
	} else {
		m.PutStr(k, v)
	}
}

func (sc *script) addSpan(t *testing.T, trace string, f []string) {
	td := sc.traces[trace]
	var svc = "default"
	for _, kv := range f[2:] {
		if v, ok := strings.CutPrefix(kv, "svc="); ok {
			svc = v
		}
	}
	// One ResourceSpans per service, found by service.name.
	var ss ptrace.ScopeSpans
	found := false
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		rs := td.ResourceSpans().At(i)
		if v, _ := rs.Resource().Attributes().Get("service.name"); v.Str() == svc {
			ss, found = rs.ScopeSpans().At(0), true
		}
	}
	if !found {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", svc)
		ss = rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("test")
	}
	s := ss.Spans().AppendEmpty()
	s.SetTraceID(nameTraceID(trace))
	s.SetSpanID(nameSpanID(f[1]))
	sc.names[s.SpanID().String()] = f[1]
	s.SetName(f[1])
	var start, dur time.Duration = 0, time.Millisecond
	for _, kv := range f[2:] {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case k == "svc":
		case k == "parent":
			s.SetParentSpanID(nameSpanID(v))
		case k == "name":
			u, err := strconv.Unquote(v)
			if err != nil {
				t.Fatalf("bad name %s", v)
			}
			s.SetName(u)
		case k == "kind":
			s.SetKind(kindNames[v])
		case k == "status":
			s.Status().SetCode(statusNames[v])
		case k == "msg":
			u, _ := strconv.Unquote(v)
			s.Status().SetMessage(u)
		case k == "start":
			start, _ = time.ParseDuration(v)
		case k == "dur":
			dur, _ = time.ParseDuration(v)
		case k == "event":
			s.Events().AppendEmpty().SetName(v)
		case k == "eventAt": // the last event's time, from the trace's start
			if s.Events().Len() == 0 {
				t.Fatalf("eventAt before event=")
			}
			at, _ := time.ParseDuration(v)
			s.Events().At(s.Events().Len() - 1).SetTimestamp(pcommon.Timestamp(scriptBase + int64(at)))
		case k == "scopeVersion":
			ss.Scope().SetVersion(v)
		case k == "link":
			l := s.Links().AppendEmpty()
			l.SetTraceID(nameTraceID(v))
			l.SetSpanID(nameSpanID(v + "-span"))
		case strings.HasPrefix(k, "span."):
			putValue(s.Attributes(), strings.TrimPrefix(k, "span."), v)
		case strings.HasPrefix(k, "resource."):
			for i := 0; i < td.ResourceSpans().Len(); i++ {
				rs := td.ResourceSpans().At(i)
				if sv, _ := rs.Resource().Attributes().Get("service.name"); sv.Str() == svc {
					putValue(rs.Resource().Attributes(), strings.TrimPrefix(k, "resource."), v)
				}
			}
		case strings.HasPrefix(k, "event."):
			if s.Events().Len() == 0 {
				t.Fatalf("event attribute before event=")
			}
			putValue(s.Events().At(s.Events().Len()-1).Attributes(), strings.TrimPrefix(k, "event."), v)
		default:
			t.Fatalf("unknown span field %q", kv)
		}
	}
	s.SetStartTimestamp(pcommon.Timestamp(scriptBase + int64(start)))
	s.SetEndTimestamp(pcommon.Timestamp(scriptBase + int64(start+dur)))
}

// render prints the spansets of one trace as "<trace>: <spans> [attrs]".
func (sc *script) render(trace string, tr *Trace, sets []Spanset) []string {
	var out []string
	for _, ss := range sets {
		var names []string
		for _, i := range ss.Spans {
			names = append(names, sc.names[tr.Spans[i].Span.SpanID().String()])
		}
		slices.Sort(names)
		line := trace + ": " + strings.Join(names, " ")
		for _, kv := range ss.Attributes {
			line += " " + kv.Key + "=" + kv.Value.String()
		}
		out = append(out, line)
	}
	return out
}

func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.test")
	if err != nil || len(files) == 0 {
		t.Fatalf("no script tests: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { runScript(t, file) })
	}
}

func runScript(t *testing.T, file string) {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		lines = append(lines, s.Text())
	}
	sc := &script{traces: map[string]ptrace.Traces{}, names: map[string]string{}}
	cur := ""
	evals := 0
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if line == "" || strings.HasPrefix(line, "#") || line == "load" {
			continue
		}
		f := fields(line)
		switch {
		case f[0] == "trace":
			cur = f[1]
			if _, ok := sc.traces[cur]; !ok {
				sc.traces[cur] = ptrace.NewTraces()
				sc.order = append(sc.order, cur)
			}
		case f[0] == "span":
			if cur == "" {
				t.Fatalf("%s:%d: span before trace", file, i+1)
			}
			sc.addSpan(t, cur, f)
		case f[0] == "eval_metrics":
			evals++
			var want []string
			j := i + 1
			for ; j < len(lines) && strings.TrimSpace(lines[j]) != ""; j++ {
				if !strings.HasPrefix(strings.TrimSpace(lines[j]), "#") {
					want = append(want, strings.TrimSpace(lines[j]))
				}
			}
			at := fmt.Sprintf("%s:%d", file, i+1)
			i = j
			sc.evalMetrics(t, at, f, line, want)
		case f[0] == "eval" || f[0] == "eval_fail":
			evals++
			query := strings.TrimSpace(strings.TrimPrefix(line, f[0]))
			var want []string
			j := i + 1
			for ; j < len(lines) && strings.TrimSpace(lines[j]) != ""; j++ {
				if !strings.HasPrefix(strings.TrimSpace(lines[j]), "#") {
					want = append(want, strings.TrimSpace(lines[j]))
				}
			}
			at := fmt.Sprintf("%s:%d", file, i+1)
			i = j
			q, err := Parse(query)
			if f[0] == "eval_fail" {
				if err == nil {
					t.Errorf("%s: %q parsed, want error", at, query)
				} else if len(want) > 0 && !strings.Contains(err.Error(), want[0]) {
					t.Errorf("%s: error %q does not contain %q", at, err, want[0])
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: parse %q: %v", at, query, err)
				continue
			}
			// Round trip: String parses back to the same String.
			if q2, err := Parse(q.String()); err != nil || q2.String() != q.String() {
				t.Errorf("%s: round trip of %q via %q: %v", at, query, q.String(), err)
			}
			var got, gotFor []string
			for _, name := range sc.order {
				tr := NewTrace(sc.traces[name])
				got = append(got, sc.render(name, tr, q.Eval(tr))...)
				trFor := NewTraceFor(q, sc.traces[name]) // without parent links when q needs none
				gotFor = append(gotFor, sc.render(name, trFor, q.Eval(trFor))...)
			}
			if !slices.Equal(got, gotFor) {
				t.Errorf("%s: %s: NewTraceFor answers %q, NewTrace %q", at, query, gotFor, got)
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s: %s\n got: %q\nwant: %q", at, query, got, want)
			}
		default:
			t.Fatalf("%s:%d: unknown directive %q", file, i+1, f[0])
		}
	}
	if evals == 0 {
		t.Fatalf("%s has no evals", file)
	}
}

func sampleTrace() ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "svc")
	ss := rs.ScopeSpans().AppendEmpty()
	root := ss.Spans().AppendEmpty()
	root.SetTraceID(nameTraceID("f"))
	root.SetSpanID(nameSpanID("root"))
	root.SetName("root")
	child := ss.Spans().AppendEmpty()
	child.SetTraceID(nameTraceID("f"))
	child.SetSpanID(nameSpanID("child"))
	child.SetParentSpanID(root.SpanID())
	child.Attributes().PutInt("a", 1)
	child.Events().AppendEmpty().SetName("e")
	return td
}

// evalMetrics runs one eval_metrics block: f is the directive's fields.
func (sc *script) evalMetrics(t *testing.T, at string, f []string, line string, want []string) {
	t.Helper()
	if len(f) < 5 {
		t.Fatalf("%s: eval_metrics <start> <end> <step> <query>", at)
	}
	start, err1 := time.ParseDuration(f[1])
	end, err2 := time.ParseDuration(f[2])
	if err1 != nil || err2 != nil {
		t.Fatalf("%s: bad start/end", at)
	}
	req := MetricsRequest{Start: scriptBase + int64(start), End: scriptBase + int64(end), Exemplars: 0}
	if f[3] == "instant" {
		req.Instant = true
	} else {
		step, err := time.ParseDuration(f[3])
		if err != nil {
			t.Fatalf("%s: bad step", at)
		}
		req.Step = int64(step)
	}
	rest := line
	for range 4 {
		rest = strings.TrimSpace(rest)
		_, rest, _ = strings.Cut(rest, " ")
	}
	query := strings.TrimSpace(rest)
	q, err := Parse(query)
	if err != nil {
		t.Errorf("%s: parse %q: %v", at, query, err)
		return
	}
	if q2, err := Parse(q.String()); err != nil || q2.String() != q.String() {
		t.Errorf("%s: round trip of %q via %q: %v", at, query, q.String(), err)
	}
	ev, err := q.NewMetricsEvaluator(req)
	if err != nil {
		t.Errorf("%s: %v", at, err)
		return
	}
	for _, name := range sc.order {
		if err := ev.Observe(NewTraceFor(q, sc.traces[name])); err != nil {
			t.Errorf("%s: %v", at, err)
			return
		}
	}
	var got []string
	for _, s := range ev.Series() {
		line := s.PromLabels()
		for _, v := range s.Values {
			if math.IsNaN(v) {
				line += " _"
			} else {
				line += " " + strconv.FormatFloat(v, 'g', 6, 64)
			}
		}
		got = append(got, line)
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: %s\n got: %q\nwant: %q", at, query, got, want)
	}
}
