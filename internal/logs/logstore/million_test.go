package logstore_test

import (
	"errors"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/logs/logql"
	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
	"github.com/nx-watcher/nxwatcher/internal/testclock"
)

// A metric query over a million streams is refused by the per-query memory
// limit while the store selects streams, before it holds them all, and the
// store answers the next query. Without the limit the same query holds
// every stream, series and window at once.
func TestQueryOverOneMillionStreamsIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a million streams")
	}
	n := 1_000_000
	if raceEnabled {
		n = 100_000 // the race detector makes each stream ~10x dearer
	}
	db, err := logstore.Open(t.TempDir(), logstore.DefaultOptions(), logstore.Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	base := testclock.Base()
	start := time.Now()
	logstore.AddHeadStreamsForTest(db, n, func(i int) (labels.Labels, logstore.Entry) {
		return labels.FromStrings("app", "huge", "pod", "p"+strconv.Itoa(i)), logstore.Entry{Timestamp: base.Add(time.Duration(i%60) * time.Second).UnixNano(), Line: "x"}
	})
	t.Logf("built %d streams in %v", n, time.Since(start))

	maxMem := int64(n) * 32 // 32 MiB for a million streams: well short of holding them all
	eng := logql.NewEngine(logql.EngineOpts{MaxMemory: maxMem, MaxSeries: 500})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	qs := time.Now()
	_, err = eng.Exec(t.Context(), db, `sum(count_over_time({app="huge"}[1m]))`, logql.Params{Start: base, End: base.Add(time.Minute), Step: time.Second})
	runtime.ReadMemStats(&after)
	if !errors.Is(err, logql.ErrLimit) {
		t.Fatalf("query over %d streams: %v", n, err)
	}
	t.Logf("refused in %v (%v) after allocating %d MiB", time.Since(qs), err, (after.TotalAlloc-before.TotalAlloc)>>20)
	// Selecting the matching streams from the head's postings (8 bytes a
	// stream, twice) and sorting them come before the first charge; the
	// rest stops at the limit.
	if grew := after.TotalAlloc - before.TotalAlloc; grew > uint64(maxMem)+uint64(n)*80 {
		t.Errorf("allocated %d bytes for a query limited to %d", grew, maxMem)
	}
	res, err := eng.Exec(t.Context(), db, `count_over_time({app="huge", pod="p7"}[1m])`, logql.Params{Start: base, End: base.Add(time.Minute), Step: time.Minute})
	if err != nil || len(res.Value.(logql.Matrix)) != 1 {
		t.Fatalf("next query: %v %v", res.Value, err)
	}
}
