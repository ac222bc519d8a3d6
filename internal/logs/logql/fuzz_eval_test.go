package logql

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
)

// FuzzEval runs whatever parses against a small store: any query must end
// in a value or an error, never a panic or a hang.
func FuzzEval(f *testing.F) {
	for _, q := range roundTrip {
		f.Add(q)
	}
	f.Add(`{app="api"} | json | line_format "{{substr 5 1 .msg}}{{index . \"x\"}}"`)
	f.Add(`sum by (level) (rate({app="api"} | logfmt | unwrap duration(latency) [5s])) / 0`)
	f.Add(`{app="api"} | logfmt | line_format "{{ div 1 0 }}{{ round .size 2 }}{{ unixToTime .latency }}{{ alignRight -1 .msg }}{{ fromJson __line__ }}"`)
	f.Add(`{app="api"} |= ip("10.0.0.0/8") | json | latency = ip("::1-::9")`)
	f.Add(`label_replace(count_over_time({app="api"}[5s]), "x", "$1$9", "app", "(a)?(.*)") * on (app) group_right (trace_id) sum by (app) (count_over_time({app="api"} | json [5s]))`)
	db, err := logstore.Open(f.TempDir(), logstore.Options{ChunkTargetSize: 256}, logstore.Deps{})
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	app := db.Appender()
	for i, l := range []string{`{"level":"info","msg":"hi","latency":"12ms"}`, `level=error msg="boom" latency=1s size=2KB`, "\x1b[31mplain\x1b[0m"} {
		app.Append(labels.FromStrings("app", "api"), logstore.Entry{Timestamp: int64(i+1) * int64(time.Second), Line: l,
			Metadata: labels.FromStrings("trace_id", "abc")})
	}
	if _, err := app.Commit(); err != nil {
		f.Fatal(err)
	}
	eng := NewEngine(EngineOpts{MaxSeries: 100, MaxSamples: 10000})
	f.Fuzz(func(t *testing.T, q string) {
		expr, err := ParseExpr(q)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, p := range []Params{
			{Start: time.Unix(0, 0), End: time.Unix(10, 0), Step: time.Second, Limit: 10},
			{End: time.Unix(10, 0), Instant: true, Limit: 10, Backward: true},
		} {
			eng.Eval(ctx, db, expr, p)
		}
	})
}
