package logql

import (
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

// memoKeys returns the memo key of line from the substring path
// (rawValues) and from the tokeniser (logfmtRawValues), over the slots
// that matter on stream.
func memoKeys(line string, only []string, stream labels.Labels) (fast, slow string) {
	p := &ParserStage{Kind: "logfmt", narrowed: true, only: slices.Sorted(slices.Values(only))}
	m := newStreamMemo(p, stream)
	var set uint32
	m.rawValues(line, &set)
	var slowVals [memoMaxSlots]string
	var slowSet uint32
	logfmtRawValues(line, p.only, false, &slowVals, &slowSet)
	var a, b strings.Builder
	for _, i := range m.slot {
		if set&(1<<i) != 0 {
			fmt.Fprintf(&a, "%d=%q ", i, m.vals[i])
		}
		if slowSet&(1<<i) != 0 {
			fmt.Fprintf(&b, "%d=%q ", i, slowVals[i])
		}
	}
	return a.String(), b.String()
}

var memoSeeds = append(slices.Clone(logfmtSeeds),
	`level=info msg="x level=warn" level=error`,
	`msg="a" level=info status=5 msg="b level=x" status=7`,
	`a="q"level=info status=1`,
	`level=info	status=2 x="y"	status=3`,
	`status=1 x="unterminated status=2`,
	`x="esc \" status=9" status=4`,
	`level=info x=a"b status=8 y="z"`,
	`"level=info status=3`,
	`k="v"status=6 status=7`,
)

// The substring path finds the same raw values as the tokeniser, which
// has parseLogfmtNarrowed's pair boundaries (TestMemoMatchesGeneral checks
// whole answers).
func TestMemoRawValuesMatchTokeniser(t *testing.T) {
	stream := labels.FromStrings("app", "x", "service", "s")
	for _, only := range [][]string{{"level"}, {"status"}, {"level", "status"}, {"msg", "status"}, {"service", "status"}, {"x"}} {
		for _, line := range memoSeeds {
			if f, s := memoKeys(line, only, stream); f != s {
				t.Errorf("only %v, %q:\nsubstring %s\ntokeniser %s", only, line, f, s)
			}
		}
	}
}

func FuzzMemoRawValues(f *testing.F) {
	for _, s := range memoSeeds {
		f.Add(s)
	}
	stream := labels.FromStrings("app", "x")
	f.Fuzz(func(t *testing.T, line string) {
		for _, only := range [][]string{{"level", "status"}, {"msg"}, {"a", "level", "msg", "status", "x"}} {
			if a, b := memoKeys(line, only, stream); a != b {
				t.Fatalf("only %v, %q:\nsubstring %s\ntokeniser %s", only, line, a, b)
			}
		}
		// The tokeniser's values are what the narrowed parser sets.
		for _, only := range [][]string{{"level", "status"}, {"a_b", "msg"}} {
			if a, b := narrowedBoth(line, only); a != b {
				t.Fatalf("only %v, %q:\nnarrowed %s\ngeneral  %s", only, line, a, b)
			}
		}
	})
}

// TestMemoMatchesGeneral runs logfmt metric queries with the outcome memo
// and with every line's stages evaluated, over lines with quoted values,
// escapes, repeated keys, keys that need sanitising, values that do not
// convert, stream labels that clash with keys and structured metadata, and
// wants identical answers and stats.
func TestMemoMatchesGeneral(t *testing.T) {
	db, err := logstore.Open(t.TempDir(), logstore.Options{ChunkTargetSize: 4 << 10, CompactionFanout: 2}, logstore.Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := rand.New(rand.NewPCG(9, 10))
	t0 := time.Now().Add(-2 * time.Hour).Truncate(time.Hour)
	levels := []string{"info", "warn", "error", `"info"`, `"a b"`, ""}
	statuses := []string{"200", "503", "500", "404", `"502"`, "5xx", "", "499.5", "1e3"}
	for round := range 4 {
		app := db.Appender()
		for i := range 3000 {
			s := r.IntN(6)
			ls := labels.FromStrings("app", "a", "pod", fmt.Sprint("p", s), "service", fmt.Sprint("svc", s%3))
			if s == 4 { // Loki 3's discovered label, a sanitised key's target
				ls = labels.FromStrings("app", "a", "pod", "p4", "service", "svc1", "service_name", "svc1")
			}
			if s == 5 {
				ls = labels.FromStrings("app", "a", "pod", "p5", "level", "stream") // a key that is a stream label
			}
			var b strings.Builder
			if r.IntN(10) == 0 { // the renamed key before the key itself (p5: the rename wins, then loses)
				fmt.Fprintf(&b, "level_extracted=%s ", levels[r.IntN(3)])
			}
			fmt.Fprintf(&b, "level=%s caller=x.go:%d", levels[r.IntN(len(levels))], r.IntN(50))
			if r.IntN(4) > 0 {
				fmt.Fprintf(&b, " status=%s", statuses[r.IntN(len(statuses))])
			}
			switch r.IntN(8) {
			case 0:
				b.WriteString(` msg="quoted level=error status=500"`)
			case 1:
				fmt.Fprintf(&b, ` status=%s`, statuses[r.IntN(len(statuses))]) // repeated key: the last wins
			case 2:
				b.WriteString(` msg="esc \" status=503" service=inline`)
			case 3:
				b.WriteString(` a.b=1 9x=2 status_code=503`)
			case 4:
				b.WriteString(` msg="unterminated status=500`)
			case 5:
				b.WriteString("\tlevel=warn")
			case 6:
				fmt.Fprintf(&b, " level_extracted=%s", levels[r.IntN(3)])
			case 7:
				b.WriteString(` service.name=dotted service_name=plain`)
			}
			fmt.Fprintf(&b, ` trace_id=%016x`, r.Uint64())
			md := labels.EmptyLabels()
			if s >= 3 {
				md = labels.FromStrings("detected_level", levels[i%3])
			}
			ts := t0.Add(time.Duration(round)*15*time.Minute + time.Duration(i)*300*time.Millisecond)
			app.Append(ls, logstore.Entry{Timestamp: ts.UnixNano(), Line: b.String(), Metadata: md})
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
	queries := []string{
		`sum by (level) (count_over_time({app="a"} | logfmt [1m]))`,
		`sum by (service) (rate({app="a"} | logfmt | status >= 500 [1m]))`,
		`sum by (service, level) (count_over_time({app="a"} | logfmt | status >= 500 or level="warn" [1m]))`,
		`sum by (level, __error__) (count_over_time({app="a"} | logfmt | status > 400 [1m]))`,
		`sum by (status) (bytes_over_time({app="a"} | logfmt | level!="info" [2m]))`,
		`sum by (status_code) (count_over_time({app="a"} | logfmt [1m]))`,
		`sum by (level_extracted, level) (count_over_time({app="a"} | logfmt [1m]))`,
		`sum by (level_extracted) (count_over_time({app="a"} | logfmt | status >= 500 [1m]))`,
		`sum by (service_name, level) (count_over_time({app="a"} | logfmt | status >= 500 [1m]))`,
		`sum by (service_name_extracted, service_name) (count_over_time({app="a"} | logfmt [1m]))`,
		`sum by (detected_level, level) (count_over_time({app="a"} | detected_level="warn" | logfmt [1m]))`,
		`count by (pod) (sum by (pod, status) (rate({app="a"} |= "status" | logfmt | status=~"5.." [5m])))`,
		`sum by (msg) (count_over_time({app="a"} | logfmt [1m]))`,
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
				t.Fatalf("%s %+v:\nmemo    %v\ngeneral %v", q, p, a.Value, b.Value)
			}
			if a.Stats.Lines != b.Stats.Lines || a.Stats.Bytes != b.Stats.Bytes || a.Stats.PostFilter != b.Stats.PostFilter {
				t.Fatalf("%s: stats %+v vs %+v", q, a.Stats, b.Stats)
			}
		}
	}
}
