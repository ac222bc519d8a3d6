package tempoapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/testclock"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// stallingStore hands the search one trace, then waits for the query's
// deadline: a search that would otherwise run for ever.
type stallingStore struct{ *tracestore.DB }

func (s stallingStore) Search(ctx context.Context, req tracestore.SearchRequest, fn func(tracestore.TraceID, ptrace.Traces) (bool, error)) (tracestore.SearchStats, error) {
	return s.DB.Search(ctx, req, func(id tracestore.TraceID, td ptrace.Traces) (bool, error) {
		more, err := fn(id, td)
		<-ctx.Done()
		return more, err
	})
}

// TestSearchBoundsAnswerPartially: a search that reaches a bound answers 200
// with what it found, says which bound in a header, and reports fewer
// completed than total jobs, as Tempo reports an incomplete search.
func TestSearchBoundsAnswerPartially(t *testing.T) {
	e := serve(t)
	seed(t, e, 40)
	if err := e.db.Flush(); err != nil {
		t.Fatal(err)
	}
	g := storetest.NewGen(12, testclock.Now().Add(-5*time.Minute).UnixNano())
	for i := 0; i < 40; i++ {
		_, td := g.Trace(3)
		if err := e.db.ConsumeTraces(t.Context(), td); err != nil {
			t.Fatal(err)
		}
	}

	for _, tc := range []struct {
		name  string
		mod   func(*Config)
		store func(*tracestore.DB) Store
		limit string
		check func(t *testing.T, m searchMetrics)
	}{
		{name: "max_inspected_traces", limit: tracestore.TruncatedMaxTraces,
			mod: func(c *Config) { c.MaxInspectedTraces = 7 },
			check: func(t *testing.T, m searchMetrics) {
				if m.InspectedTraces != 7 {
					t.Fatalf("inspected %d traces, want 7", m.InspectedTraces)
				}
			}},
		{name: "max_inspected_bytes", limit: tracestore.TruncatedMaxBytes,
			mod: func(c *Config) { c.MaxInspectedBytes = 20 << 10 },
			check: func(t *testing.T, m searchMetrics) {
				if b, _ := json.Number(m.InspectedBytes).Int64(); b > 20<<10 || b == 0 {
					t.Fatalf("inspected %s bytes, want (0, 20KiB]", m.InspectedBytes)
				}
			}},
		{name: "query_timeout", limit: truncatedTimeout,
			mod:   func(c *Config) { c.QueryTimeout = model.Duration(50e6) },
			store: func(db *tracestore.DB) Store { return stallingStore{db} },
			check: func(t *testing.T, m searchMetrics) {
				if m.InspectedTraces == 0 {
					t.Fatal("the trace found before the deadline is missing")
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mod(&cfg)
			var store Store = e.db
			if tc.store != nil {
				store = tc.store(e.db)
			}
			reg := prometheus.NewRegistry()
			api, err := New(cfg, Deps{Store: store, Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			api.Search(w, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/api/search?q=%7B%20duration%20%3E%20100h%20%7D&limit=1000", nil))
			if w.Code != http.StatusOK || w.Header().Get(TruncatedHeader) != tc.limit {
				t.Fatalf("status %d, %s=%q; want 200 and %q: %s", w.Code, TruncatedHeader, w.Header().Get(TruncatedHeader), tc.limit, w.Body.String())
			}
			var resp struct {
				Traces  []json.RawMessage `json:"traces"`
				Metrics searchMetrics     `json:"metrics"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
				t.Fatal(err)
			}
			if resp.Metrics.TotalJobs == 0 || resp.Metrics.CompletedJobs >= resp.Metrics.TotalJobs {
				t.Fatalf("jobs %d of %d: a partial answer must show fewer completed", resp.Metrics.CompletedJobs, resp.Metrics.TotalJobs)
			}
			tc.check(t, resp.Metrics)
			if got := testutil.ToFloat64(api.truncated.WithLabelValues(tc.limit)); got != 1 {
				t.Fatalf("truncated{%s} = %v", tc.limit, got)
			}
		})
	}

	// Within the bounds: every job completes, no header.
	w := httptest.NewRecorder()
	e.api.Search(w, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/api/search?q=%7B%20duration%20%3E%20100h%20%7D", nil))
	var resp struct {
		Metrics searchMetrics `json:"metrics"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &resp)
	if w.Code != 200 || w.Header().Get(TruncatedHeader) != "" || resp.Metrics.CompletedJobs != resp.Metrics.TotalJobs || resp.Metrics.InspectedTraces != 80 {
		t.Fatalf("unbounded search: %d %q %+v", w.Code, w.Header().Get(TruncatedHeader), resp.Metrics)
	}
}

// TestRetriedSpansCountOnce: a batch resent after its first copy was cut
// into a block shows each span once, by ID and in search's spanset counts.
func TestRetriedSpansCountOnce(t *testing.T) {
	e := serve(t)
	g := storetest.NewGen(13, testclock.Now().Add(-5*time.Minute).UnixNano())
	id, td := g.Trace(5)
	send := func() {
		cp := ptrace.NewTraces()
		td.CopyTo(cp)
		if err := e.db.ConsumeTraces(t.Context(), cp); err != nil {
			t.Fatal(err)
		}
	}
	send()
	if err := e.db.Flush(); err != nil {
		t.Fatal(err)
	}
	send() // the retry lands in the head, the first copy is in a block
	code, body := e.get(t, "/api/search?q=%7B%20%7D&spss=100", "")
	if code != 200 {
		t.Fatalf("search: %d %s", code, body)
	}
	var resp struct {
		Traces []struct {
			TraceID  string `json:"traceID"`
			SpanSets []struct {
				Matched int `json:"matched"`
			} `json:"spanSets"`
		} `json:"traces"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Traces) != 1 || len(resp.Traces[0].SpanSets) != 1 || resp.Traces[0].SpanSets[0].Matched != 5 {
		t.Fatalf("search answer %s: want one trace whose spanset matched its 5 spans once", body)
	}
	got, found, err := e.db.TraceByID(t.Context(), id)
	if err != nil || !found || got.SpanCount() != 5 {
		t.Fatalf("by ID: %v %v %d spans, want 5", found, err, got.SpanCount())
	}
}
