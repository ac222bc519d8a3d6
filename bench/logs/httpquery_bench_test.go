package logs

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
	"github.com/nx-watcher/nxwatcher/internal/logs/lokiapi"
)

var (
	levelInfo  = labels.FromStrings("detected_level", "info")
	levelError = labels.FromStrings("detected_level", "error")
)

// BenchmarkHTTPMetricQuery answers metric queries through
// /loki/api/v1/query_range (handler called in-process, JSON encoded) over 1M
// realistic logfmt lines in 50 streams (5 services) spread over 50 minutes,
// flushed to blocks with the default sizes and compacted as Run would. The
// step is 60 s. It reports wall ms and CPU seconds per query (the query may
// use both cores).
func BenchmarkHTTPMetricQuery(b *testing.B) {
	_, api, raw, start, span := millionLines(b, 0, false)
	// Every 97th line has status=503. (No json query: these lines are
	// logfmt, so json would only measure its error path.)
	httpQueries(b, api, raw, start, span,
		`sum by (service) (count_over_time({app="bench"}[1m]))`,
		`sum by (service) (rate({app="bench"} | logfmt | status >= 500 [1m]))`,
	)
}

// BenchmarkHTTPMetricQueryDetectedLevel is the count query on the same 1M
// lines with detected_level metadata on every entry, grouped by it and not
// aggregated at all (one series per stream and level).
func BenchmarkHTTPMetricQueryDetectedLevel(b *testing.B) {
	_, api, raw, start, span := millionLines(b, 0, true)
	httpQueries(b, api, raw, start, span,
		`sum by (detected_level) (count_over_time({app="bench"}[1m]))`,
		`count_over_time({app="bench"}[1m])`,
	)
}

func httpQueries(b *testing.B, api *lokiapi.API, raw int64, start time.Time, span time.Duration, queries ...string) {
	for _, q := range queries {
		b.Run(q, func(b *testing.B) {
			v := url.Values{"query": {q}, "start": {strconv.FormatInt(start.UnixNano(), 10)},
				"end": {strconv.FormatInt(start.Add(span).UnixNano(), 10)}, "step": {"60"}}
			req := httptest.NewRequest(http.MethodGet, "/loki/api/v1/query_range?"+v.Encode(), nil)
			b.ReportAllocs()
			b.SetBytes(raw)
			cpu0 := cpuTime()
			for range b.N {
				w := httptest.NewRecorder()
				api.QueryRange(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("%d: %s", w.Code, w.Body)
				}
			}
			cpu := cpuTime() - cpu0
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/query")
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/query")
			b.ReportMetric(float64(raw)*float64(b.N)/cpu.Seconds()/1e6, "cpuMB/s")
		})
	}
}

// millionLines builds the store of BenchmarkHTTPMetricQuery: 1M realistic
// logfmt lines in 50 streams (5 services) over 50 minutes, flushed at the
// default head size and compacted as Run would (with fanout 0, the
// default; 2 merges everything down to compacted blocks).
//
// With level, every entry carries the structured metadata detected_level
// (info, or error for the lines that say level=error), as a Loki 3 push
// through the API stores it.
func millionLines(b *testing.B, fanout int, level bool) (*logstore.DB, *lokiapi.API, int64, time.Time, time.Duration) {
	return millionLinesOf(b, fanout, level, func(r *rand.Rand, k int) string {
		l := Line(r, k)
		if k%97 == 0 {
			l = l[:len("level=info caller=handler.go:100 method=GET path=/x/1 status=")] + "503" + l[len("level=info caller=handler.go:100 method=GET path=/x/1 status=200"):]
		}
		return l
	})
}

// millionLinesOf is millionLines with lines made by mk (every 97th with
// status 503).
func millionLinesOf(b *testing.B, fanout int, level bool, mk func(*rand.Rand, int) string) (*logstore.DB, *lokiapi.API, int64, time.Time, time.Duration) {
	const lines, streams = 1_000_000, 50
	span := 50 * time.Minute
	start := time.Now().Add(-time.Hour).Truncate(time.Minute)
	cfg := lokiapi.DefaultConfig()
	cfg.Limits.IngestionRateMB = 0
	cfg.Limits.RejectOldSamples = false
	opts := cfg.StoreOptions()
	if fanout > 0 {
		opts.CompactionFanout = fanout
	}
	db, err := logstore.Open(b.TempDir(), opts, logstore.Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	api, err := lokiapi.New(cfg, lokiapi.Deps{Registerer: prometheus.NewRegistry(), Store: db})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { api.Close(); db.Close() })
	var ls []labels.Labels
	for s := range streams {
		ls = append(ls, labels.FromStrings("app", "bench", "service", fmt.Sprint("svc-", s%5), "pod", fmt.Sprint("api-", s)))
	}
	r := rand.New(rand.NewPCG(7, 8))
	var raw int64
	const batch = 10_000
	for i := 0; i < lines; i += batch {
		app := db.Appender()
		for k := i; k < i+batch; k++ {
			l := mk(r, k)
			raw += int64(len(l))
			ts := start.Add(time.Duration(int64(span) * int64(k) / lines))
			e := logstore.Entry{Timestamp: ts.UnixNano(), Line: l}
			if level {
				e.Metadata = levelInfo
				if strings.HasPrefix(l, "level=error") || strings.HasPrefix(l, `{"level":"error"`) {
					e.Metadata = levelError
				}
			}
			app.Append(ls[k%streams], e)
		}
		if _, err := app.Commit(); err != nil {
			b.Fatal(err)
		}
		if _, _, hb := db.HeadStats(); hb >= 16<<20 {
			if err := db.FlushHead(); err != nil {
				b.Fatal(err)
			}
			if err := db.Compact(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := db.FlushHead(); err != nil {
		b.Fatal(err)
	}
	for n := -1; n != len(db.Blocks()); {
		n = len(db.Blocks())
		if err := db.Compact(); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d lines, %.0f MB raw, %d blocks", lines, float64(raw)/1e6, len(db.Blocks()))
	return db, api, raw, start, span
}
