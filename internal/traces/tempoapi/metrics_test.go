package tempoapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/testclock"
	"github.com/nx-watcher/nxwatcher/internal/traces/traceql"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// TestMetricsBadRequests: every refused metrics request answers 400 with a
// message that says what to change.
func TestMetricsBadRequests(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MetricsMaxSeries = 2
	_, base := goldenAPIWith(t, cfg)
	win := "&start=1767225600&end=1767225603"
	cases := []struct{ name, path, want string }{
		{"no q", "/api/metrics/query_range?step=1s" + win, "missing q"},
		{"search query", "/api/metrics/query_range?q=" + url.QueryEscape("{ status = error }") + win, "not a metrics query"},
		{"syntax", "/api/metrics/query_range?q=" + url.QueryEscape("{} | rate(") + win, "invalid TraceQL query"},
		{"range over max", "/api/metrics/query_range?q=" + url.QueryEscape("{} | rate()") + "&start=1767225600&end=1767240000", "exceeds metrics_max_duration"},
		{"since over max", "/api/metrics/query?q=" + url.QueryEscape("{} | rate()") + "&since=4h", "exceeds metrics_max_duration"},
		{"end before start", "/api/metrics/query_range?q=" + url.QueryEscape("{} | rate()") + "&start=1767225603&end=1767225600", "not after start"},
		{"bad step", "/api/metrics/query_range?q=" + url.QueryEscape("{} | rate()") + "&step=fast" + win, "invalid step"},
		{"too fine a step", "/api/metrics/query_range?q=" + url.QueryEscape("{} | rate()") + "&step=1ms&start=1767225600&end=1767229200", "maximum resolution"},
		{"bad time", "/api/metrics/query_range?q=" + url.QueryEscape("{} | rate()") + "&start=yesterday&end=1767225603", "invalid start"},
		{"bad exemplars", "/api/metrics/query_range?q=" + url.QueryEscape("{} | rate()") + "&exemplars=-1" + win, "invalid exemplars"},
		{"too many series", "/api/metrics/query_range?q=" + url.QueryEscape("{} | rate() by (resource.service.name)") + win, "too many series"},
		{"metrics query to search", "/api/search?q=" + url.QueryEscape("{} | rate()"), "/api/metrics/query_range"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", base+c.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), c.want) {
				t.Fatalf("status %d body %q, want 400 containing %q", resp.StatusCode, body, c.want)
			}
		})
	}
}

func TestDefaultMetricsStep(t *testing.T) {
	start := time.Unix(1767225600, 0)
	for _, c := range []struct {
		rng, want time.Duration
	}{
		{time.Hour, 15 * time.Second}, // Grafana's "auto" on a 1h panel
		{3 * time.Hour, 45 * time.Second},
		{30 * time.Minute, 7500 * time.Millisecond},
		{time.Minute, time.Second}, // never below one second
	} {
		if got := DefaultMetricsStep(start, start.Add(c.rng)); got != c.want {
			t.Errorf("range %s: step %s, want %s", c.rng, got, c.want)
		}
	}
}

func TestMetricsConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MetricsMaxDuration = model.Duration(-time.Second)
	cfg.MetricsMaxSeries = -1
	cfg.MetricsMaxExemplars = -1
	err := cfg.Validate()
	for _, k := range []string{"metrics_max_duration", "metrics_max_series", "metrics_max_exemplars"} {
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("Validate: %v, want a complaint about %s", err, k)
		}
	}
}

// TestMetricsProjectionSameAnswer: projecting traces before decoding them
// (projectionFor) changes no metrics answer, on generated traces with
// events, links and many attributes.
func TestMetricsProjectionSameAnswer(t *testing.T) {
	base := testclock.Base()
	db, err := tracestore.Open(t.TempDir(), tracestore.DefaultOptions(), tracestore.Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	g := storetest.NewGen(3, base.UnixNano())
	td := ptrace.NewTraces()
	for i := 0; i < 300; i++ {
		g.AppendTrace(td, g.TraceID(), 3+i%6, pcommon.SpanID{})
	}
	if err := db.ConsumeTraces(t.Context(), td); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{
		`{} | rate() by (resource.service.name)`,
		`{ span.http.status_code = 500 } | count_over_time() by (span.http.method, resource.k8s.namespace.name)`,
		`{ event:name = "exception" } | count_over_time()`,
		`{ event.exception.type = "io.EOF" } | max_over_time(duration) by (.http.method)`,
		`{ link.link.kind = "follows" } | count_over_time() by (instrumentation:name)`,
		`{ trace:rootService = "frontend" } >> { kind = client } | quantile_over_time(duration, .5, .99) by (name)`,
		`{} | histogram_over_time(span.queue.ratio)`,
		`{ status = error } | count_over_time() by (trace:rootName)`,
		`{ statusMessage = "upstream failed" && kind = server } | rate()`,
		`{ status = ok } | sum_over_time(span.http.status_code) by (kind)`,
	} {
		q, err := traceql.Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		run := func(p *tracestore.Projection) []traceql.MetricsSeries {
			ev, err := q.NewMetricsEvaluator(traceql.MetricsRequest{Start: base.UnixNano(), End: base.Add(time.Second).UnixNano(), Step: int64(100 * time.Millisecond)})
			if err != nil {
				t.Fatal(err)
			}
			_, err = db.Search(t.Context(), tracestore.SearchRequest{Project: p}, func(_ tracestore.TraceID, td ptrace.Traces) (bool, error) {
				return true, ev.Observe(traceql.NewTrace(td))
			})
			if err != nil {
				t.Fatal(err)
			}
			return ev.Series()
		}
		whole, projected := run(nil), run(projectionFor(q))
		if len(whole) == 0 {
			t.Errorf("%s: no series: the test proves nothing", text)
		}
		if fmt.Sprint(whole) != fmt.Sprint(projected) {
			t.Errorf("%s:\nwhole:     %v\nprojected: %v", text, whole, projected)
		}
		if !q.ColumnsSuffice() {
			continue
		}
		// As the handler runs it: span and attribute columns (ADR 0100).
		ev, err := q.NewMetricsEvaluator(traceql.MetricsRequest{Start: base.UnixNano(), End: base.Add(time.Second).UnixNano(), Step: int64(100 * time.Millisecond)})
		if err != nil {
			t.Fatal(err)
		}
		var cols []traceql.ColumnSpan
		var vals []traceql.ColumnValue
		fromColumns := 0
		_, err = db.Search(t.Context(), tracestore.SearchRequest{ColumnAttrs: q.ColumnAttrs(),
			Spans: func(id tracestore.TraceID, spans []tracestore.ColumnSpan, attrs []tracestore.ColumnValue, spanID func(int) (pcommon.SpanID, error)) (bool, error) {
				fromColumns++
				cols, vals = convertColumns(cols, vals, spans, attrs)
				return true, ev.ObserveColumns(pcommon.TraceID(id), cols, vals, spanID)
			}}, func(_ tracestore.TraceID, td ptrace.Traces) (bool, error) {
			return true, ev.Observe(traceql.NewTrace(td))
		})
		if err != nil {
			t.Fatal(err)
		}
		if fromColumns == 0 || fmt.Sprint(ev.Series()) != fmt.Sprint(whole) {
			t.Errorf("%s: %d traces from columns\ncolumns: %v\nwhole:   %v", text, fromColumns, ev.Series(), whole)
		}
	}
}

// TestMetricsTruncated: a metrics query that reaches a search bound answers
// 200 with what it counted, says which bound in the header and reports
// fewer completed jobs than total, as a truncated search does.
func TestMetricsTruncated(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxInspectedTraces = 1
	_, base := goldenAPIWith(t, cfg)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", base+"/api/metrics/query_range?q="+url.QueryEscape("{} | count_over_time()")+
		"&start=1767225600&end=1767225603&step=3s", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get(TruncatedHeader) != tracestore.TruncatedMaxTraces {
		t.Fatalf("status %d, %s=%q: %s", resp.StatusCode, TruncatedHeader, resp.Header.Get(TruncatedHeader), body)
	}
	var got metricsRangeResponse
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Metrics.CompletedJobs >= got.Metrics.TotalJobs || len(got.Series) != 1 || got.Series[0].Samples[0].Value >= 9 {
		t.Fatalf("truncated answer %s: want completedJobs < totalJobs and fewer than all 9 spans", body)
	}
}
