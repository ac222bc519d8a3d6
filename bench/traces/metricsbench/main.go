// Command metricsbench times TraceQL metrics queries (/api/metrics/query_range)
// over one hour of the traces benchmark's data: storetest.Gen traces spread
// evenly over the hour before now, stored and cut into blocks as tracebench
// does, then each query asked through the Tempo API handler at 60 s steps.
// It reports wall time and CPU-seconds of the whole process per query.
//
// -path picks how a query runs: "api" through tempoapi's handler (what a
// client gets today), "columns" through the store and evaluator directly
// as the handler does, with SearchRequest.Spans set when the block columns
// suffice for the query (traceql's ColumnsSuffice; ADR 0091), "decode" the
// same without columns, "both" columns and decode with their answers
// compared (the default).
//
//	go run ./bench/traces/metricsbench -spans 1000000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/tempoapi"
	"github.com/nx-watcher/nxwatcher/internal/traces/traceql"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

var path string

var queries = []string{
	`{} | rate() by (resource.service.name)`,
	`{ status = error } | rate()`,
	`{} | quantile_over_time(duration, .9) by (name)`,
	`{} | histogram_over_time(duration)`,
	`{ resource.service.name = "payment" } | count_over_time() by (span.http.status_code)`,
}

func main() {
	spans := flag.Int("spans", 1_000_000, "spans to store, spread over the hour")
	cutEvery := flag.Int("cut-every", 500_000, "cut the head into a block after this many spans")
	rounds := flag.Int("rounds", 3, "times each query is asked")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the queries to this file")
	workers := flag.Int("search-workers", 0, "goroutines a query decodes on (0 = min(GOMAXPROCS, 8), the default; 1 = the caller's only)")
	flag.StringVar(&path, "path", "both", "api (through tempoapi's handler), columns, decode, or both (columns and decode, answers compared)")
	flag.Parse()
	if err := run(*spans, *cutEvery, *rounds, *workers, *cpuprofile); err != nil {
		fmt.Fprintln(os.Stderr, "metricsbench:", err)
		os.Exit(1)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func run(nSpans, cutEvery, rounds, workers int, cpuprofile string) error {
	dir, err := os.MkdirTemp("", "metricsbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	now := time.Now().Truncate(time.Minute)
	start := now.Add(-time.Hour)
	opts := tracestore.DefaultOptions()
	opts.Now = func() time.Time { return now }
	opts.SearchWorkers = workers
	db, err := tracestore.Open(dir, opts, tracestore.Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		return err
	}
	defer db.Close()

	// Traces of 3..8 spans (~5.5), evenly spaced over the hour.
	nTraces := nSpans * 2 / 11
	gap := int64(time.Hour) / int64(max(nTraces, 1))
	g := storetest.NewGen(1, start.UnixNano())
	ctx := context.Background()
	total, sinceCut, traces := 0, 0, 0
	for total < nSpans {
		td := ptrace.NewTraces()
		for i := 0; i < 100 && total < nSpans; i++ {
			n := 3 + traces%6
			before := td.ResourceSpans().Len()
			g.AppendTrace(td, g.TraceID(), n, pcommon.SpanID{})
			// Gen starts trace k at Base + k ms; move it to its slot in the hour.
			shift := int64(traces)*gap - int64(traces+1)*int64(time.Millisecond)
			for r := before; r < td.ResourceSpans().Len(); r++ {
				ss := td.ResourceSpans().At(r).ScopeSpans().At(0).Spans()
				for s := 0; s < ss.Len(); s++ {
					sp := ss.At(s)
					sp.SetStartTimestamp(pcommon.Timestamp(int64(sp.StartTimestamp()) + shift))
					sp.SetEndTimestamp(pcommon.Timestamp(int64(sp.EndTimestamp()) + shift))
					for e := 0; e < sp.Events().Len(); e++ {
						ev := sp.Events().At(e)
						ev.SetTimestamp(pcommon.Timestamp(int64(ev.Timestamp()) + shift))
					}
				}
			}
			total += n
			sinceCut += n
			traces++
		}
		if err := db.ConsumeTraces(ctx, td); err != nil {
			return err
		}
		if cutEvery > 0 && sinceCut >= cutEvery {
			if err := db.Flush(); err != nil {
				return err
			}
			sinceCut = 0
		}
	}
	if err := db.Flush(); err != nil {
		return err
	}
	fmt.Printf("data: %d spans in %d traces over %s..%s (one trace every %s), all cut to blocks\n",
		total, traces, start.Format(time.TimeOnly), now.Format(time.TimeOnly), time.Duration(gap))

	cfg := tempoapi.DefaultConfig()
	cfg.MaxInspectedTraces, cfg.MaxInspectedBytes = 0, 0 // time the whole hour, not a truncated answer
	cfg.QueryTimeout = model.Duration(10 * time.Minute)
	api, err := tempoapi.New(cfg, tempoapi.Deps{Store: db, Now: func() time.Time { return now }})
	if err != nil {
		return err
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if path != "api" {
		return runDirect(db, start, now, rounds, total)
	}
	for _, q := range queries {
		var wall, cpu time.Duration
		var body []byte
		for range rounds {
			runtime.GC()
			v := url.Values{"q": {q}, "start": {strconv.FormatInt(start.Unix(), 10)}, "end": {strconv.FormatInt(now.Unix(), 10)}, "step": {"60s"}}
			req := httptest.NewRequest(http.MethodGet, "/api/metrics/query_range?"+v.Encode(), nil)
			rec := httptest.NewRecorder()
			t0, c0 := time.Now(), cpuTime()
			api.MetricsQueryRange(rec, req)
			wall += time.Since(t0)
			cpu += cpuTime() - c0
			if rec.Code != http.StatusOK {
				return fmt.Errorf("%s: status %d: %s", q, rec.Code, rec.Body)
			}
			body, _ = io.ReadAll(rec.Result().Body)
		}
		fmt.Printf("%-80s %6.3f s wall, %6.3f CPU-s per query (%d rounds), %.0f ns CPU per stored span, answer %d bytes\n",
			q, wall.Seconds()/float64(rounds), cpu.Seconds()/float64(rounds), rounds,
			cpu.Seconds()*1e9/float64(rounds)/float64(total), len(body))
	}
	return nil
}

// runDirect runs each query as tempoapi's metrics handler does (parse,
// evaluator, one store Search), with the block columns (-path columns),
// without (-path decode) or both, comparing their series.
func runDirect(db *tracestore.DB, start, end time.Time, rounds, total int) error {
	modes := []bool{true, false}
	switch path {
	case "columns":
		modes = []bool{true}
	case "decode":
		modes = []bool{false}
	case "both":
	default:
		return fmt.Errorf("-path %q: want api, columns, decode or both", path)
	}
	for _, q := range queries {
		var answers []string
		for _, columns := range modes {
			var wall, cpu time.Duration
			var answer string
			used := false
			for range rounds {
				runtime.GC()
				t0, c0 := time.Now(), cpuTime()
				series, col, err := directQuery(db, q, start, end, columns)
				wall += time.Since(t0)
				cpu += cpuTime() - c0
				if err != nil {
					return fmt.Errorf("%s: %w", q, err)
				}
				answer, used = fmt.Sprintf("%+v", series), col
			}
			answers = append(answers, answer)
			mode := "decode"
			if used {
				mode = "columns"
			} else if columns {
				mode = "decode (columns do not suffice)"
			}
			fmt.Printf("%-80s %-8s %6.3f s wall, %6.3f CPU-s per query (%d rounds), %.0f ns CPU per stored span\n",
				q, mode, wall.Seconds()/float64(rounds), cpu.Seconds()/float64(rounds), rounds,
				cpu.Seconds()*1e9/float64(rounds)/float64(total))
		}
		if len(answers) == 2 && answers[0] != answers[1] {
			return fmt.Errorf("%s: columns and decoding answer differently", q)
		}
	}
	if len(modes) == 2 {
		fmt.Println("columns and decoding gave identical series (values and exemplars) for every query")
	}
	return nil
}

// directQuery is tempoapi's metrics handler without HTTP: step 60 s, 100
// exemplars, the handler's projection for decoded traces.
func directQuery(db *tracestore.DB, q string, start, end time.Time, columns bool) ([]traceql.MetricsSeries, bool, error) {
	query, err := traceql.Parse(q)
	if err != nil {
		return nil, false, err
	}
	ev, err := query.NewMetricsEvaluator(traceql.MetricsRequest{Start: start.UnixNano(), End: end.UnixNano(),
		Step: int64(time.Minute), MaxSeries: 1000, Exemplars: 100})
	if err != nil {
		return nil, false, err
	}
	req := tracestore.SearchRequest{Start: start, End: end, Conds: hintsToConds(query.Hints()), Project: projection(query)}
	used := columns && query.ColumnsSuffice()
	if used {
		req.MinSpanDuration = time.Duration(query.MinSpanDuration()) // as the handler should (lead's wiring)
		req.ColumnAttrs = query.ColumnAttrs()
		var buf []traceql.ColumnSpan
		var vals []traceql.ColumnValue
		req.Spans = func(id tracestore.TraceID, spans []tracestore.ColumnSpan, attrs []tracestore.ColumnValue, spanID func(int) (pcommon.SpanID, error)) (bool, error) {
			buf, vals = buf[:0], vals[:0]
			for _, s := range spans {
				buf = append(buf, traceql.ColumnSpan(s))
			}
			for _, a := range attrs {
				vals = append(vals, traceql.ColumnValue(a))
			}
			return true, ev.ObserveColumns(pcommon.TraceID(id), buf, vals, spanID)
		}
	}
	_, err = db.Search(context.Background(), req, func(_ tracestore.TraceID, td ptrace.Traces) (bool, error) {
		return true, ev.Observe(traceql.NewTraceFor(query, td))
	})
	return ev.Series(), used, err
}

// projection is tempoapi's projectionFor for the queries above: the
// attributes they name, span names kept when a query reads them.
func projection(q *traceql.Query) *tracestore.Projection {
	p := &tracestore.Projection{SpanAttrs: map[string]bool{}, ResourceAttrs: map[string]bool{}, ScopeAttrs: map[string]bool{}, DropNames: true}
	for _, a := range q.Attributes() {
		switch a.Scope {
		case traceql.ScopeSpan:
			p.SpanAttrs[a.Name] = true
		case traceql.ScopeResource:
			p.ResourceAttrs[a.Name] = true
		case traceql.ScopeIntrinsic:
			if a.Name == traceql.IntrinsicName {
				p.DropNames = false
			}
		}
	}
	return p
}

// hintsToConds is tempoapi's: the query's pruning hints as store conditions.
func hintsToConds(hs []traceql.Hint) []tracestore.Cond {
	out := make([]tracestore.Cond, 0, len(hs))
	for _, h := range hs {
		c := tracestore.Cond{Keys: h.Keys}
		for _, v := range h.Values {
			c.Values = append(c.Values, tracestore.EncodeValue(tracestore.TypedValue{Type: v.Type, Value: v.Value}))
		}
		out = append(out, c)
	}
	return out
}
