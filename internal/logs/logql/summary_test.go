package logql

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
)

// TestSummaryPathMatchesLines runs count, rate and bytes queries once from
// the chunk summaries and once reading every line, over a store with
// flushed, compacted and head data, structured metadata, retried
// duplicates and out-of-order entries, and wants the same answers and the
// same line and byte counts.
func TestSummaryPathMatchesLines(t *testing.T) {
	db, err := logstore.Open(t.TempDir(), logstore.Options{ChunkTargetSize: 2 << 10, CompactionFanout: 2}, logstore.Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := rand.New(rand.NewPCG(5, 6))
	t0 := time.Now().Add(-2 * time.Hour).Truncate(time.Hour)
	type ent struct {
		ls labels.Labels
		e  logstore.Entry
	}
	var sent []ent
	levels := []string{"info", "warn", "error"}
	for round := range 6 {
		app := db.Appender()
		for i := range 1500 {
			s := r.IntN(6)
			ls := labels.FromStrings("app", fmt.Sprint("a", s%2), "pod", fmt.Sprint("p", s))
			ts := t0.Add(time.Duration(round)*10*time.Minute + time.Duration(i)*400*time.Millisecond)
			if i%300 == 7 {
				ts = ts.Add(-time.Duration(r.IntN(30)) * time.Second) // out of order
			}
			if i%10 == 0 {
				ts = ts.Truncate(time.Second) // on a bucket bound
			}
			md := labels.EmptyLabels()
			if s >= 3 {
				md = labels.FromStrings("detected_level", levels[i%3])
			}
			e := logstore.Entry{Timestamp: ts.UnixNano(), Line: fmt.Sprintf("level=%s i=%d n=%d", levels[i%3], i, r.IntN(1000)), Metadata: md}
			app.Append(ls, e)
			sent = append(sent, ent{ls, e})
		}
		if round == 3 { // retries of earlier entries, stored in a later head
			for range 3 {
				x := sent[r.IntN(len(sent))]
				app.Append(x.ls, x.e)
			}
		}
		if _, err := app.Commit(); err != nil {
			t.Fatal(err)
		}
		if round < 5 {
			if err := db.FlushHead(); err != nil {
				t.Fatal(err)
			}
		}
		if round == 2 {
			if err := db.Compact(); err != nil {
				t.Fatal(err)
			}
		}
	}
	queries := []string{
		`count_over_time({app=~"a.*"}[1m])`,
		`sum by (pod) (count_over_time({app=~"a.*"}[1m]))`,
		`sum by (app) (rate({app=~"a.*"}[2m]))`,
		`sum by (detected_level) (count_over_time({app=~"a.*"}[1m]))`,
		`sum without (detected_level) (bytes_over_time({app="a1"}[30s]))`,
		`sum without (pod) (bytes_rate({app="a1"}[1m]))`,
		`sum(count_over_time({app="a0"}[5m] offset 1m))`,
		`sum by (app) (count_over_time({pod="p4"}[1m]))`,
		`sum by (app) (count_over_time({app="a0"}[1500ms]))`,
		`absent_over_time({app="a0"}[1m])`,
		`topk(2, sum by (pod) (count_over_time({app=~"a.*"}[1m])))`,
	}
	steps := []time.Duration{15 * time.Second, time.Minute, 7500 * time.Millisecond}
	withSummaries := NewEngine(EngineOpts{})
	lines := NewEngine(EngineOpts{})
	lines.noSummaries = true
	summarized := map[string]int{}
	for _, q := range queries {
		for _, step := range steps {
			for _, p := range []Params{
				{Start: t0, End: t0.Add(time.Hour), Step: step},
				{Start: t0.Add(1234 * time.Millisecond), End: t0.Add(50*time.Minute + 77*time.Millisecond), Step: step},
				{End: t0.Add(30 * time.Minute), Instant: true},
				{End: t0.Add(30*time.Minute + 250*time.Millisecond), Instant: true},
			} {
				a, err := withSummaries.Exec(t.Context(), db, q, p)
				if err != nil {
					t.Fatalf("%s: %v", q, err)
				}
				b, err := lines.Exec(t.Context(), db, q, p)
				if err != nil {
					t.Fatalf("%s: %v", q, err)
				}
				if !reflect.DeepEqual(a.Value, b.Value) {
					t.Fatalf("%s step %v %+v:\nsummaries %v\nlines     %v", q, step, p, a.Value, b.Value)
				}
				summarized[q] += a.Stats.SummaryChunks
				if b.Stats.SummaryChunks != 0 {
					t.Fatalf("%s: the line engine used %d summaries", q, b.Stats.SummaryChunks)
				}
				if a.Stats.Lines != b.Stats.Lines || a.Stats.Bytes != b.Stats.Bytes || a.Stats.PostFilter != b.Stats.PostFilter {
					t.Fatalf("%s step %v: stats %+v vs %+v", q, step, a.Stats, b.Stats)
				}
			}
		}
	}
	// Which queries may use summaries: those whose windows fall on whole
	// seconds, with or without metadata in the series.
	for q, want := range map[string]bool{
		`count_over_time({app=~"a.*"}[1m])`:                               true,
		`sum by (pod) (count_over_time({app=~"a.*"}[1m]))`:                true,
		`sum by (detected_level) (count_over_time({app=~"a.*"}[1m]))`:     true,
		`sum by (app) (count_over_time({pod="p4"}[1m]))`:                  true,
		`sum by (app) (count_over_time({app="a0"}[1500ms]))`:              false,
		`topk(2, sum by (pod) (count_over_time({app=~"a.*"}[1m])))`:       true,
		`sum without (detected_level) (bytes_over_time({app="a1"}[30s]))`: true,
	} {
		if (summarized[q] > 0) != want {
			t.Errorf("%s: %d chunks from summaries, want some: %v", q, summarized[q], want)
		}
	}
}
