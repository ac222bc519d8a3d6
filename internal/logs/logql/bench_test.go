package logql

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
)

// benchDB holds 20 streams × 3,600 lines (one a second for an hour), half
// logfmt and half JSON.
func benchDB(b *testing.B) *logstore.DB {
	b.Helper()
	db, err := logstore.Open(b.TempDir(), logstore.Options{}, logstore.Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	app := db.Appender()
	levels := []string{"info", "warn", "error", "debug"}
	for s := 0; s < 20; s++ {
		ls := labels.FromStrings("app", fmt.Sprintf("app%d", s%5), "pod", fmt.Sprintf("pod%d", s))
		for i := 0; i < 3600; i++ {
			lvl := levels[(i+s)%len(levels)]
			var line string
			if s%2 == 0 {
				line = fmt.Sprintf("level=%s status=%d latency=%dms size=%dKB msg=\"request %d done\"", lvl, 200+(i%5)*100, i%900, i%64, i)
			} else {
				line = fmt.Sprintf(`{"level":%q,"status":%d,"latency":"%dms","size":"%dKB","msg":"request %d done"}`, lvl, 200+(i%5)*100, i%900, i%64, i)
			}
			app.Append(ls, logstore.Entry{Timestamp: int64(i) * int64(time.Second), Line: line})
		}
	}
	if _, err := app.Commit(); err != nil {
		b.Fatal(err)
	}
	if err := db.FlushHead(); err != nil {
		b.Fatal(err)
	}
	return db
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkQueries reports CPU seconds per query (cpu-s/op) besides wall
// time: the machine is shared, so CPU time is the figure to compare.
func BenchmarkQueries(b *testing.B) {
	db := benchDB(b)
	eng := NewEngine(EngineOpts{})
	rangeP := Params{Start: time.Unix(0, 0), End: time.Unix(3600, 0), Step: time.Minute}
	logP := Params{Start: time.Unix(0, 0), End: time.Unix(3600, 0), Limit: 1000, Backward: true}
	for _, c := range []struct {
		name, q string
		p       Params
	}{
		{"range_count_logfmt_by_level", `sum by (level) (count_over_time({app=~"app.*"} | logfmt [1m]))`, rangeP},
		{"range_rate_json_unwrap", `avg by (app) (avg_over_time({app=~"app.*"} | json | unwrap duration(latency) | __error__="" [5m]))`, rangeP},
		{"range_topk", `topk(3, sum by (pod) (rate({app=~"app.*"} |= "error" [1m])))`, rangeP},
		{"logs_line_format", `{app=~"app.*"} | logfmt | level="error" | line_format "{{.level | upper}} {{.msg}} {{.latency}}"`, logP},
		{"logs_filter", `{app="app1"} |= "request 17"`, logP},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			expr, err := ParseExpr(c.q)
			if err != nil {
				b.Fatal(err)
			}
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := eng.Eval(b.Context(), db, expr, c.p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}
