package lokiapi

import (
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/grafana/loki/pkg/push"
)

// A range query with more than 11,000 points per series is refused with
// Loki's 400 before anything is evaluated: the 30-day, 1 ms-step query that
// once grew the process to 24 GiB allocates next to nothing.
func TestQueryRangeResolutionRefusedBeforeEvaluating(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e)
	for _, q := range []string{`sum(count_over_time({app="api"}[1m]))`, `{app="api"}`} {
		p := url.Values{"query": {q}, "start": {fmt.Sprint(now.Add(-30 * 24 * time.Hour).UnixNano())}, "end": {fmt.Sprint(now.UnixNano())}, "step": {"0.001"}}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		code, body := e.get(t, "/loki/api/v1/query_range", p)
		runtime.ReadMemStats(&after)
		if code != http.StatusBadRequest || !strings.Contains(string(body), "exceeded maximum resolution of 11,000 points per timeseries") {
			t.Fatalf("%s: %d %s", q, code, body)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
			t.Fatalf("%s: refusing allocated %d bytes", q, grew)
		}
	}
	// 11,000 points exactly are fine.
	p := url.Values{"query": {`sum(count_over_time({app="api"}[1m]))`}, "start": {fmt.Sprint(ts(0).UnixNano())}, "end": {fmt.Sprint(ts(0).Add(10999 * time.Millisecond).UnixNano())}, "step": {"0.001"}}
	if code, body := e.get(t, "/loki/api/v1/query_range", p); code != 200 {
		t.Fatalf("11,000 points: %d %s", code, body)
	}
}

// pushStreams pushes n streams of one line each, in pushes of 2,000 streams.
func pushStreams(t *testing.T, e *env, n int, app string) {
	t.Helper()
	for i := 0; i < n; i += 2000 {
		var ss []push.Stream
		for j := i; j < min(n, i+2000); j++ {
			ss = append(ss, push.Stream{Labels: fmt.Sprintf(`{app=%q, pod="p%d"}`, app, j), Entries: []push.Entry{{Timestamp: ts(j % 50), Line: fmt.Sprintf("line %d of %s", j, strings.Repeat("x", 40))}}})
		}
		if code, msg := e.pushProto(t, ss); code != 204 {
			t.Fatalf("push: %d %s", code, msg)
		}
	}
}

// Series, bytes read and memory are checked while a query runs: each
// refusal is a 400 naming the limit, and the server answers the next query.
func TestQueryLimitsHoldWhileEvaluating(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Limits.MaxGlobalStreamsPerUser = 0
		c.Limits.MaxQuerySeries = 100
	})
	pushStreams(t, e, 5000, "many")
	cases := []struct {
		name, q, want string
		mod           func(*Limits)
	}{
		{"series", `count_over_time({app="many"}[1m])`, "maximum of series (100) reached for a single query", nil},
		{"series under sum by", `sum by (pod) (count_over_time({app="many"}[1m]))`, "maximum of series (100) reached for a single query", nil},
		{"bytes read", `sum(count_over_time({app="many"}[1m]))`, "max_query_bytes_read", func(l *Limits) { l.MaxQueryBytesRead = 10 << 10 }},
		{"bytes read by a log query", `{app="many"} |= "nothing matches this"`, "max_query_bytes_read", func(l *Limits) { l.MaxQueryBytesRead = 10 << 10 }},
		{"memory of the selection", `sum(count_over_time({app="many"}[1m]))`, "max_query_memory", func(l *Limits) { l.MaxQueryMemory = 100 << 10 }},
		{"memory of the windows", `sum(count_over_time({app="many", pod="p1"}[10m]))`, "max_query_memory", func(l *Limits) { l.MaxQueryMemory = 8 << 10 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Limits.MaxGlobalStreamsPerUser = 0
			cfg.Limits.MaxQuerySeries = 100
			if tc.mod != nil {
				tc.mod(&cfg.Limits)
			}
			if err := e.api.ApplyConfig(cfg); err != nil {
				t.Fatal(err)
			}
			p := url.Values{"query": {tc.q}, "start": {fmt.Sprint(ts(0).UnixNano())}, "end": {fmt.Sprint(ts(60).UnixNano())}, "step": {"1"}, "limit": {"1000"}}
			code, body := e.get(t, "/loki/api/v1/query_range", p)
			if code != http.StatusBadRequest || !strings.Contains(string(body), tc.want) {
				t.Fatalf("%d %.300s", code, body)
			}
			// Still serving.
			code, body = e.get(t, "/loki/api/v1/query_range", url.Values{"query": {`count_over_time({app="many", pod="p7"}[1m])`}, "start": {fmt.Sprint(ts(0).UnixNano())}, "end": {fmt.Sprint(ts(60).UnixNano())}, "step": {"60"}})
			if code != 200 {
				t.Fatalf("after refusal: %d %s", code, body)
			}
		})
	}
}

// A log query over many streams with a large limit holds at most about
// limit lines per worker at a time, so it stays under the memory limit
// even when the lines it reads along the way would not fit.
func TestLogQueryOverManyStreamsFitsMemoryLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Limits.MaxGlobalStreamsPerUser = 0
		c.Limits.MaxQueryMemory = 6 << 20
		c.Limits.IngestionRateMB = 0
	})
	for s := 0; s < 200; s++ {
		var es []push.Entry
		for j := range 50 {
			es = append(es, push.Entry{Timestamp: ts(j), Line: fmt.Sprintf("stream %d line %d %s", s, j, strings.Repeat("y", 1000))})
		}
		if code, msg := e.pushProto(t, []push.Stream{{Labels: fmt.Sprintf(`{app="wide", pod="p%d"}`, s), Entries: es}}); code != 204 {
			t.Fatalf("%d %s", code, msg)
		}
	}
	// 10,000 lines of ~1 KB pass through (11 MB charged without the
	// refund on trimming), at most ~2,000 per worker are held at once.
	p := url.Values{"query": {`{app="wide"}`}, "start": {fmt.Sprint(ts(0).UnixNano())}, "end": {fmt.Sprint(ts(60).UnixNano())}, "limit": {"1000"}}
	if code, body := e.get(t, "/loki/api/v1/query_range", p); code != 200 {
		t.Fatalf("%d %.300s", code, body)
	}
}
