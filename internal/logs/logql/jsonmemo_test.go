package logql

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
)

// jsonDecodes is whether parseJSON's decoder accepts line (an object).
func jsonDecodes(line string) bool {
	if t := strings.TrimLeft(line, " \t\r\n"); t == "" || t[0] != '{' {
		return false
	}
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return false
	}
	_, ok := v.(map[string]any)
	return ok
}

// checkJSONScan compares jsonRawValues on line with parseJSON: the same
// verdict on validity, and, where the scanner answers, each wanted label
// set to the value its raw text decodes to, or not set.
func checkJSONScan(line string, only []string, stream labels.Labels) error {
	p := &ParserStage{Kind: "json", narrowed: true, only: slices.Sorted(slices.Values(only))}
	k := newJSONStreamKeys(p, stream)
	var vals [memoMaxSlots]string
	var set uint32
	valid, ok := jsonRawValues(line, k, &vals, &set, false)
	dec := jsonDecodes(line)
	if ok && !dec || !valid && dec {
		return fmt.Errorf("scanner valid=%v ok=%v, decoder %v", valid, ok, dec)
	}
	if err := checkClaimedScan(line, k, ok, &vals, set); err != nil {
		return err
	}
	if !ok {
		return nil
	}
	ls := &labelSet{}
	ls.reset(stream, labels.EmptyLabels())
	parseJSON(line, nil, p.only, ls)
	if ls.hasError() && !slices.Contains(p.only, ErrorLabel) {
		return fmt.Errorf("general path failed: %v", ls.labels())
	}
	for i, x := range p.only {
		got, has := ls.get(x)
		if set&(1<<i) == 0 {
			if has && !stream.Has(x) {
				return fmt.Errorf("%s=%q set by the parser, not found by the scanner", x, got)
			}
			continue
		}
		d := json.NewDecoder(strings.NewReader(vals[i]))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			return fmt.Errorf("%s: raw %q: %v", x, vals[i], err)
		}
		if want := jsonScalar(v); !has || got != want {
			return fmt.Errorf("%s: parser %q (%v), scanner raw %q = %q", x, got, has, vals[i], want)
		}
	}
	return nil
}

// checkJSONPathScan is checkJSONScan for a json stage with parameters:
// each parameter's label as jsonPath sets it, from the raw text found.
func checkJSONPathScan(line string, params []Extraction, stream labels.Labels) error {
	k, ok := newJSONPathKeys(params)
	if !ok {
		return fmt.Errorf("paths %v not memoised", params)
	}
	var vals [memoMaxSlots]string
	var set uint32
	valid, ok := jsonRawValues(line, k, &vals, &set, false)
	dec := jsonDecodes(line)
	if ok && !dec || !valid && dec {
		return fmt.Errorf("scanner valid=%v ok=%v, decoder %v", valid, ok, dec)
	}
	if err := checkClaimedScan(line, k, ok, &vals, set); err != nil {
		return err
	}
	if !ok {
		return nil
	}
	ls := &labelSet{}
	ls.reset(stream, labels.EmptyLabels())
	parseJSON(line, params, nil, ls)
	for i, x := range params {
		name := x.Name
		if stream.Has(name) {
			name += "_extracted"
		}
		got, has := ls.get(name)
		if set&(1<<i) == 0 {
			if has {
				return fmt.Errorf("%s=%q set by the parser, not found by the scanner", name, got)
			}
			continue
		}
		d := json.NewDecoder(strings.NewReader(vals[i]))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			return fmt.Errorf("%s: raw %q: %v", name, vals[i], err)
		}
		want := jsonScalar(v)
		switch v.(type) {
		case map[string]any, []any:
			b, _ := json.Marshal(v)
			want = string(b)
		}
		if !has || got != want {
			return fmt.Errorf("%s: parser %q (%v), scanner raw %q = %q", name, got, has, vals[i], want)
		}
	}
	return nil
}

// checkClaimedScan: a line the store would claim in a JSONObjects chunk
// (ADR 0109) decodes, the full scan answers it (no name twice), and the
// scan that stops early finds the same values.
func checkClaimedScan(line string, k *jsonStreamKeys, ok bool, vals *[memoMaxSlots]string, set uint32) error {
	if !logstore.JSONObjectLine(line) {
		return nil
	}
	if !ok || !jsonDecodes(line) {
		return fmt.Errorf("claimed line: full scan ok=%v, decoder %v", ok, jsonDecodes(line))
	}
	var cvals [memoMaxSlots]string
	var cset uint32
	cvalid, cok := jsonRawValues(line, k, &cvals, &cset, true)
	if !cvalid || !cok || cset != set {
		return fmt.Errorf("claimed scan valid=%v ok=%v set %b, full scan set %b", cvalid, cok, cset, set)
	}
	for i := range memoMaxSlots {
		if set&(1<<i) != 0 && cvals[i] != vals[i] {
			return fmt.Errorf("slot %d: claimed scan %q, full scan %q", i, cvals[i], vals[i])
		}
	}
	return nil
}

var jsonMemoParams = [][]Extraction{
	{{Name: "lvl", Expr: "level"}, {Name: "st", Expr: "status"}},
	{{Name: "x", Expr: "a"}, {Name: "y", Expr: "a.b"}, {Name: "z", Expr: "a.b.c"}},
	{{Name: "ip", Expr: "http.client.ip"}, {Name: "h", Expr: "http"}, {Name: "q", Expr: "a_b"}},
	{{Name: "level", Expr: "level"}, {Name: "m", Expr: "msg"}, {Name: "e", Expr: "le-vel"}},
}

var jsonMemoSeeds = []string{
	`{"level":"info","status":200}`,
	` {"level" : "warn" , "status":503.5e1}`,
	"\t\r\n{\"level\":\"x\"}",
	`{"\u006cevel":"esc key","status":"5\u00303"}`,
	`{"level":"a","level":"b"}`,
	`{"a":{"b":1},"a":2}`,
	`{"a":1,"a":{"b":2}}`,
	`{"a":{"b":{"c":"deep"}},"a_b_c":"flat"}`,
	`{"a_b":1,"a":{"b":1}}`,
	`{"le-vel":"x","le.vel":"x"}`,
	`{"9x":1,"":2,"x":{},"y":[],"z":[{"a":{"b":3}}]}`,
	`{"level":null,"status":true,"msg":false}`,
	`{"level":{"x":1},"status":[1,2]}`,
	`{"msg":"caf\u00e9 \ud83d\ude00 \ud800 \\ \/ \b\f\n\r\t","level":"\u00e9"}`,
	"{\"msg\":\"bad \xff utf8\",\"level\":\"\xc3\"}",
	"{\"l\xffvel\":\"k\",\"level\":\"i\"}",
	`{"level":"info"} trailing garbage`,
	`{"level":"info"}}`,
	`{"level":"info",}`,
	`{"level":"info"`,
	`{"level":"info`,
	`{"level":"in\x"}`,
	`{"level":"in\u12"}`,
	"{\"level\":\"tab\there\"}",
	`{"status":01}`,
	`{"status":1.}`,
	`{"status":-}`,
	`{"status":1e}`,
	`{"status":+1}`,
	`{"status":tru}`,
	`{"status":truex}`,
	`{"status":nul,"level":"x"}`,
	`{level:"x"}`,
	`{"level" "x"}`,
	`{"a":[1,2,}`,
	`{"a":[1 2]}`,
	`{"a":{"b":1}`,
	`["level","x"]`,
	`"level"`,
	`level=info status=500`,
	``,
	`{}`,
	`{"level_extracted":"w","level":"v"}`,
	`{"http":{"client":{"ip":"10.0.0.1"},"client":{"port":1}}}`,
	`{"level":"info","status":503,"msg":"x \" y","http":{"client":{"ip":"1.2.3.4","port":5},"proto":"h2"},"tags":[{"a":1,"a":2}],"a":{"b":{"c":1}},"le_vel":"q"}`,
	`{"status":500,"level":"warn","a_b":2,"a":{"c":1},"x":{"y":[1,{"z":"\u00e9"}]}} tail`,
	`{"a":{"b":1},"a_b":2}`,
	`{"level":1,"level_extracted":2}`,
	`{"a":{"b":1},"a":{"c":2}}`,
	`{"":{"a":0}}`,
	`{"":{"level":"x","":{"status":1}},"level":"y"}`,
	`{"a":` + strings.Repeat(`{"a":`, 300) + `1` + strings.Repeat(`}`, 301),
	`{"a":` + strings.Repeat(`[`, 300) + strings.Repeat(`]`, 300) + `}`,
}

var jsonMemoOnlys = [][]string{
	{"level"}, {"status"}, {"level", "status"}, {"a_b", "a_b_c", "a"}, {"le_vel", "_x", "x"},
	{"level", "level_extracted"}, {"http_client_ip", "http_client_port", "msg"}, {"__error__", "l_vel", "a_a_a"},
}

var jsonMemoStreams = []labels.Labels{
	labels.FromStrings("app", "x"),
	labels.FromStrings("app", "x", "level", "stream"),
	labels.FromStrings("app", "x", "a", "s", "status", "s"),
}

// The scanner accepts exactly the lines the decoder accepts and finds the
// values the parser sets, over escapes, unicode, duplicate and clashing
// keys, nested objects and arrays, numbers and literals, and invalid JSON
// at many places.
func TestJSONScanMatchesParser(t *testing.T) {
	for _, stream := range jsonMemoStreams {
		for _, only := range jsonMemoOnlys {
			for _, line := range jsonMemoSeeds {
				if err := checkJSONScan(line, only, stream); err != nil {
					t.Errorf("stream %v, only %v, %q: %v", stream, only, line, err)
				}
				// Every prefix of the line: invalid JSON cut everywhere.
				for n := range len(line) {
					if err := checkJSONScan(line[:n], only, stream); err != nil {
						t.Errorf("stream %v, only %v, %q: %v", stream, only, line[:n], err)
					}
				}
			}
		}
		for _, params := range jsonMemoParams {
			for _, line := range jsonMemoSeeds {
				for n := range len(line) + 1 {
					if err := checkJSONPathScan(line[:n], params, stream); err != nil {
						t.Errorf("stream %v, params %v, %q: %v", stream, params, line[:n], err)
					}
				}
			}
		}
	}
	for _, x := range []string{`a[0]`, `["a"]`, ``, `.`} {
		if _, ok := jsonPathFields(x); ok {
			t.Errorf("path %q memoised", x)
		}
	}
}

func FuzzJSONScan(f *testing.F) {
	for _, s := range jsonMemoSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		for _, stream := range jsonMemoStreams {
			for _, only := range jsonMemoOnlys {
				if err := checkJSONScan(line, only, stream); err != nil {
					t.Fatalf("stream %v, only %v, %q: %v", stream, only, line, err)
				}
			}
			for _, params := range jsonMemoParams {
				if err := checkJSONPathScan(line, params, stream); err != nil {
					t.Fatalf("stream %v, params %v, %q: %v", stream, params, line, err)
				}
			}
		}
	})
}

// TestJSONMemoMatchesGeneral runs json metric queries with the outcome
// memo and with every line's stages evaluated, over tricky lines (escapes,
// unicode, duplicate keys, nested objects and arrays, numbers and strings,
// invalid JSON, keys that need sanitising, keys clashing with stream
// labels), and wants identical answers — __error__ and __error_details__
// included — and stats. Members whose names collide after flattening or
// sanitising carry equal values here: which of two different values wins
// follows Go's map order in the general path itself.
func TestJSONMemoMatchesGeneral(t *testing.T) {
	db, err := logstore.Open(t.TempDir(), logstore.Options{ChunkTargetSize: 4 << 10, CompactionFanout: 2}, logstore.Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := rand.New(rand.NewPCG(11, 12))
	t0 := time.Now().Add(-2 * time.Hour).Truncate(time.Hour)
	levels := []string{`"info"`, `"warn"`, `"err\u006fr"`, `"caf\u00e9"`, `5`, `null`, `true`, `{"x":1}`, `["a"]`, `""`, "\"\xff\""}
	statuses := []string{`500`, `"503"`, `503.0`, `5e2`, `-1`, `"abc"`, `200`, `404`, `{"code":500}`}
	extras := []string{
		`"msg":"a \"quoted\" \n line"`, `"msg":"\ud83d\ude00 \ud800"`, `"a":{"b":1}`, `"a":{"b":{"c":"x"}},"a_b_c":"x"`,
		`"a":[{"b":1}]`, `"le-vel":"x","le.vel":"x"`, `"le_vel":"z"`, `"9x":1`, `"service_name":"s"`, `"service":"inline"`,
		`"http":{"client":{"ip":"10.0.0.1"}}`, `"http":{"client":{"ip":"10.0.0.2"},"client":{"port":1}}`, `"":1,"x":{},"y":[]`,
		`"\u006cevel":LVL`, `"status":200`, `"a":{"b":1},"a":2`, `"":{"a":{"b":1}}`,
	}
	corrupt := []func(string) string{
		func(l string) string { return l[:r.IntN(len(l))] },
		func(l string) string { return l + ` trailing` },
		func(l string) string { return "  " + l },
		// An inserted quote or comma may leave valid JSON with a member
		// changed (`"level":"i,nfo"` next to an equal level_extracted),
		// which breaks the equal-values rule above: such a line loses its
		// closing brace instead.
		func(l string) string { i := r.IntN(len(l)); return invalidJSON(l[:i]+`"`+l[i:], l) },
		func(l string) string { i := r.IntN(len(l)); return invalidJSON(l[:i]+`,`+l[i:], l) },
		func(l string) string { return strings.Replace(l, `}`, `]`, 1) },
		func(l string) string { return `level=info status=503` },
		func(l string) string { return `["level"]` },
		func(string) string { return `{"status":01}` },
	}
	// Extras whose member names stay plain and distinct: in rounds 2 and
	// 3, streams p0–p2 get only these and no corruption, so their chunks
	// claim JSONObjects (ADR 0109) and the memo stops reading their lines
	// early; the other streams' chunks mix in invalid lines and claim
	// nothing.
	cleanExtras := []string{
		`"msg":"a \"quoted\" \n line"`, `"msg":"\ud83d\ude00 \ud800"`, `"a":{"b":1}`, `"a":[{"b":1}]`, `"le_vel":"z"`,
		`"service_name":"s"`, `"service":"inline"`, `"http":{"client":{"ip":"10.0.0.1"}}`, `"x":{},"y":[]`, `"_x":{"a":[1,{"a":1,"a":2}]}`,
	}
	for round := range 4 {
		app := db.Appender()
		for i := range 3000 {
			s := r.IntN(6)
			clean := round >= 2 && s < 3
			ls := labels.FromStrings("app", "a", "pod", fmt.Sprint("p", s), "service", fmt.Sprint("svc", s%3))
			if s == 4 {
				ls = labels.FromStrings("app", "a", "pod", "p4", "service", "svc1", "service_name", "svc1")
			}
			lvl := levels[r.IntN(len(levels))]
			if s == 5 { // a key that is a stream label
				ls = labels.FromStrings("app", "a", "pod", "p5", "level", "stream")
			}
			var m []string
			if r.IntN(10) == 0 && !clean {
				m = append(m, `"level_extracted":`+lvl) // equal to level: see above
			}
			m = append(m, `"level":`+lvl, fmt.Sprintf(`"caller":"x.go:%d"`, r.IntN(50)))
			if r.IntN(4) > 0 {
				m = append(m, `"status":`+statuses[r.IntN(len(statuses))])
			}
			if r.IntN(2) == 0 {
				if clean {
					m = append(m, cleanExtras[r.IntN(len(cleanExtras))])
				} else {
					m = append(m, strings.ReplaceAll(extras[r.IntN(len(extras))], "LVL", lvl)) // the escaped level: equal too
				}
			}
			m = append(m, fmt.Sprintf(`"trace_id":"%016x"`, r.Uint64()))
			if r.IntN(3) == 0 {
				slices.Reverse(m)
			}
			line := "{" + strings.Join(m, ",") + "}"
			if r.IntN(3) == 0 {
				line = "{" + strings.Join(m, " ,\n ") + " }"
			}
			if r.IntN(12) == 0 && !clean {
				line = corrupt[r.IntN(len(corrupt))](line)
			}
			md := labels.EmptyLabels()
			if s >= 3 {
				md = labels.FromStrings("detected_level", []string{"info", "warn", "error"}[i%3])
			}
			ts := t0.Add(time.Duration(round)*15*time.Minute + time.Duration(i)*300*time.Millisecond)
			app.Append(ls, logstore.Entry{Timestamp: ts.UnixNano(), Line: line, Metadata: md})
		}
		if _, err := app.Commit(); err != nil {
			t.Fatal(err)
		}
		if round < 3 {
			if err := db.FlushHead(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Both kinds of chunk are there, in blocks and in the head.
	claims := map[bool]int{}
	q, err := db.Querier(t0.UnixNano(), t0.Add(2*time.Hour).UnixNano())
	if err != nil {
		t.Fatal(err)
	}
	ss := q.Select(t.Context(), logstore.SelectHints{Start: t0.UnixNano(), End: t0.Add(2 * time.Hour).UnixNano()}, labels.MustNewMatcher(labels.MatchEqual, "app", "a"))
	for ss.Next() {
		for _, c := range ss.At().ChunkMetas() {
			claims[c.JSONObjects]++
		}
	}
	q.Close()
	if claims[true] < 10 || claims[false] < 10 {
		t.Fatalf("chunks claiming JSONObjects: %v; want both kinds", claims)
	}
	queries := []string{
		`sum by (level) (count_over_time({app="a"} | json [1m]))`,
		`sum by (service) (rate({app="a"} | json | status >= 500 [1m]))`,
		`sum by (service, level) (count_over_time({app="a"} | json | status >= 500 or level="warn" [1m]))`,
		`sum by (level, __error__, __error_details__) (count_over_time({app="a"} | json [1m]))`,
		`sum by (level, __error__) (count_over_time({app="a"} | json | status > 400 [1m]))`,
		`sum by (status) (bytes_over_time({app="a"} | json | level!="info" [2m]))`,
		`sum by (level_extracted, level) (count_over_time({app="a"} | json [1m]))`,
		`sum by (level_extracted) (count_over_time({app="a"} | json | status >= 500 [1m]))`,
		`sum by (service_name, level) (count_over_time({app="a"} | json | __error__="" [1m]))`,
		`sum by (service_name_extracted, service_extracted) (count_over_time({app="a"} | json [1m]))`,
		`sum by (detected_level, level) (count_over_time({app="a"} | detected_level="warn" | json [1m]))`,
		`sum by (detected_level, status) (count_over_time({app="a"} | json [1m]))`,
		`sum by (a_b, a_b_c, a) (count_over_time({app="a"} | json [1m]))`,
		`sum by (le_vel, _x, x) (count_over_time({app="a"} | json [1m]))`,
		`sum by (http_client_ip, http_client_port) (count_over_time({app="a"} | json [1m]))`,
		`sum by (msg) (count_over_time({app="a"} | json | __error__="" [1m]))`,
		`count by (pod) (sum by (pod, status) (rate({app="a"} |= "status" | json | status=~"5.." [5m])))`,
		// Parameters (`| json a="b.c"`): memoised without narrowing.
		`sum by (lvl) (count_over_time({app="a"} | json lvl="level" [1m]))`,
		`sum by (ip, service) (count_over_time({app="a"} | json ip="http.client.ip", st="status" | st >= 500 [1m]))`,
		`sum by (ab, a, h) (count_over_time({app="a"} | json ab="a.b", a="a", h="http" [1m]))`,
		`count_over_time({app="a"} | json level="level", status [1m])`,
		`sum by (level, __error__, __error_details__) (count_over_time({app="a"} | json level [1m]))`,
		`sum by (q, e) (count_over_time({app="a"} | json q="a_b", e="le-vel" | __error__="" [1m]))`,
	}
	memo := NewEngine(EngineOpts{})
	general := NewEngine(EngineOpts{})
	general.noMemo = true
	for _, q := range queries {
		for _, p := range []Params{
			{Start: t0, End: t0.Add(time.Hour), Step: time.Minute},
			{End: t0.Add(40 * time.Minute), Instant: true},
		} {
			a, errA := memo.Exec(t.Context(), db, q, p)
			b, errB := general.Exec(t.Context(), db, q, p)
			if fmt.Sprint(errA) != fmt.Sprint(errB) {
				t.Fatalf("%s: errors %v vs %v", q, errA, errB)
			}
			if errA != nil {
				continue
			}
			if !reflect.DeepEqual(a.Value, b.Value) {
				t.Fatalf("%s %+v:\n%s", q, p, valueDiff(a.Value, b.Value))
			}
			if a.Stats.Lines != b.Stats.Lines || a.Stats.Bytes != b.Stats.Bytes || a.Stats.PostFilter != b.Stats.PostFilter {
				t.Fatalf("%s: stats %+v vs %+v", q, a.Stats, b.Stats)
			}
		}
	}
}

// invalidJSON is c when it does not decode, else l cut before its end.
func invalidJSON(c, l string) string {
	if jsonDecodes(c) {
		return l[:len(l)-1]
	}
	return c
}

// valueDiff lists the series whose points differ between two answers.
func valueDiff(a, b Value) string {
	sum := func(v Value) map[string]string {
		m := map[string]string{}
		switch t := v.(type) {
		case Matrix:
			for _, s := range t {
				m[s.Metric.String()] = fmt.Sprint(s.Points)
			}
		case Vector:
			for _, s := range t {
				m[s.Metric.String()] = fmt.Sprint(s)
			}
		default:
			m["?"] = fmt.Sprint(v)
		}
		return m
	}
	ma, mb := sum(a), sum(b)
	var out strings.Builder
	for k, v := range ma {
		if mb[k] != v {
			fmt.Fprintf(&out, "memo    %s: %.300s\n", k, v)
			fmt.Fprintf(&out, "general %s: %.300s\n", k, mb[k])
		}
	}
	for k, v := range mb {
		if _, ok := ma[k]; !ok {
			fmt.Fprintf(&out, "general only %s: %.300s\n", k, v)
		}
	}
	return out.String()
}

// BenchmarkJSONRawValues is the scanner alone over lines shaped like
// bench/logs' JSONLine (in cache), wanting level.
func BenchmarkJSONRawValues(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	var lines []string
	var n int64
	for i := range 1024 {
		l := fmt.Sprintf(`{"level":"info","caller":"handler.go:%d","method":"GET","path":"/api/v1/users/%d","status":200,"duration_ms":%d.%d,"trace_id":"%016x%016x","msg":"upstream said \"ok\"\tin 2 tries"`,
			100+i%400, r.IntN(100000), r.IntN(200), r.IntN(10), r.Uint64(), r.Uint64())
		if i%3 == 0 {
			l += `,"http":{"proto":"HTTP/1.1","client":{"ip":"10.0.3.4","port":4242}},"tags":["api","v1"]`
		}
		l += "}"
		lines = append(lines, l)
		n += int64(len(l))
	}
	p := &ParserStage{Kind: "json", narrowed: true, only: []string{"level"}}
	k := newJSONStreamKeys(p, labels.FromStrings("app", "x"))
	var vals [memoMaxSlots]string
	b.SetBytes(n)
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		for _, l := range lines {
			var set uint32
			if _, ok := jsonRawValues(l, k, &vals, &set, false); !ok {
				b.Fatal(l)
			}
		}
	}
	// Per CPU-second: the machine is shared.
	b.ReportMetric(float64(n)*float64(b.N)/(cpuTime()-cpu0).Seconds()/1e6, "cpuMB/s")
}
