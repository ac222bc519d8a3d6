package tracestore

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// TestSearchLimits checks each bound stops (or skips) before the work is
// done, and that a search within its bounds completes every job.
func TestSearchLimits(t *testing.T) {
	db, _ := openTest(t, t.TempDir(), nil)
	defer db.Close()
	g := storetest.NewGen(31, testBase.UnixNano())
	var bigID TraceID
	for i := 0; i < 120; i++ {
		n := 2 + i%4
		if i == 7 {
			n = 300 // one trace far larger than the rest
		}
		id, td := g.Trace(n)
		if i == 7 {
			bigID = id
		}
		if err := db.ConsumeTraces(t.Context(), td); err != nil {
			t.Fatal(err)
		}
		if i == 59 || i == 89 {
			if err := db.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	search := func(lim SearchLimits) (SearchStats, int, int64) {
		t.Helper()
		n, bytes := 0, int64(0)
		st, err := db.Search(t.Context(), SearchRequest{Limits: lim}, func(_ TraceID, td ptrace.Traces) (bool, error) {
			n++
			var m ptrace.ProtoMarshaler
			bytes += int64(m.TracesSize(td))
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return st, n, bytes
	}

	st, n, _ := search(SearchLimits{})
	if n != 120 || st.Truncated != "" || st.CompletedJobs != st.TotalJobs || st.TotalJobs != 3 {
		t.Fatalf("unbounded: %d traces, stats %+v; want 120, 3 of 3 jobs", n, st)
	}
	all := st.InspectedBytes

	t.Run("max traces", func(t *testing.T) {
		st, n, _ := search(SearchLimits{MaxTraces: 25})
		if n != 25 || st.InspectedTraces != 25 || st.Truncated != TruncatedMaxTraces || st.CompletedJobs >= st.TotalJobs {
			t.Fatalf("%d traces, stats %+v; want 25 and truncated", n, st)
		}
	})
	t.Run("max bytes", func(t *testing.T) {
		limit := all / 4
		st, n, _ := search(SearchLimits{MaxBytes: limit})
		if st.InspectedBytes > limit || st.Truncated != TruncatedMaxBytes || n == 0 || n >= 120 {
			t.Fatalf("%d traces, stats %+v; want at most %d bytes decoded and truncated", n, st, limit)
		}
	})
	t.Run("max trace bytes", func(t *testing.T) {
		seenBig := false
		st, err := db.Search(t.Context(), SearchRequest{Limits: SearchLimits{MaxTraceBytes: 16 << 10}}, func(id TraceID, _ ptrace.Traces) (bool, error) {
			seenBig = seenBig || id == bigID
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if seenBig || st.SkippedTraces != 1 || st.InspectedTraces != 119 || st.Truncated != "" {
			t.Fatalf("stats %+v, big trace seen %v; want it skipped undecoded and the rest searched", st, seenBig)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		n := 0
		st, err := db.Search(ctx, SearchRequest{}, func(TraceID, ptrace.Traces) (bool, error) {
			if n++; n == 10 {
				cancel()
			}
			return true, nil
		})
		if !errors.Is(err, context.Canceled) || n != 10 || st.CompletedJobs >= st.TotalJobs {
			t.Fatalf("after cancel: err %v, %d traces, stats %+v", err, n, st)
		}
	})
}
