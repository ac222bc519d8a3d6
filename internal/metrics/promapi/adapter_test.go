package promapi

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang/snappy"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/scrape"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/nx-watcher/nxwatcher/internal/metrics"
)

type noTargets struct{}

func (noTargets) TargetsActive() map[string][]*scrape.Target  { return nil }
func (noTargets) TargetsDropped() map[string][]*scrape.Target { return nil }
func (noTargets) TargetsDroppedCounts() map[string]int        { return nil }
func (noTargets) ScrapePoolConfig(string) (*promconfig.ScrapeConfig, error) {
	return nil, fmt.Errorf("no pools")
}
func (noTargets) ScrapePools() []string { return nil }

func newTestAPI(tb testing.TB) (http.Handler, *metrics.TSDB) {
	tb.Helper()
	opts, deps := testDeps(tb)
	opts.ExternalURL, opts.Version = nil, v1.PrometheusVersion{} // these tests predate both
	return New(opts, deps), deps.DB
}

func writeRequestBody(tb testing.TB, series, batch int, ts int64) []byte {
	tb.Helper()
	req := &prompb.WriteRequest{}
	for s := range series {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels: []prompb.Label{
				{Name: "__name__", Value: "bench_metric"},
				{Name: "batch", Value: fmt.Sprint(batch)},
				{Name: "instance", Value: fmt.Sprintf("host-%d", s%100)},
				{Name: "series", Value: fmt.Sprint(s)},
			},
			Samples: []prompb.Sample{{Timestamp: ts, Value: float64(s)}},
		})
	}
	b, err := req.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return snappy.Encode(nil, b)
}

func post(h http.Handler, body []byte) int {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/x-protobuf")
	r.Header.Set("Content-Encoding", "snappy")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code
}

func TestRemoteWriteLandsInTSDB(t *testing.T) {
	h, db := newTestAPI(t)
	now := time.Now().UnixMilli()
	if code := post(h, writeRequestBody(t, 500, 0, now)); code != http.StatusNoContent {
		t.Fatalf("remote write = %d, want 204", code)
	}
	if got := db.Head().NumSeries(); got != 500 {
		t.Fatalf("head series = %d, want 500", got)
	}
	q, err := db.Querier(now-1, now+1)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ss := q.Select(context.Background(), false, nil, mustMatcher(t))
	n := 0
	for ss.Next() {
		n++
	}
	if n != 500 || ss.Err() != nil {
		t.Fatalf("selected %d series, err %v", n, ss.Err())
	}
}

// BenchmarkRemoteWrite measures the receive path: snappy, protobuf, labels,
// TSDB append and WAL write, for 1000-series requests of new samples.
func BenchmarkRemoteWrite(b *testing.B) {
	h, _ := newTestAPI(b)
	const series = 1000
	base := time.Now().UnixMilli()
	bodies := make([][]byte, 64)
	for i := range bodies {
		bodies[i] = writeRequestBody(b, series, i, base)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// Each round re-sends the 64 batches with a later timestamp: steady
		// state of 64k active series after the first round.
		body := bodies[i%len(bodies)]
		if i%len(bodies) == 0 && i > 0 {
			b.StopTimer() // encoding is the sender's cost, not ours
			ts := base + int64(i/len(bodies))*1000
			for j := range bodies {
				bodies[j] = writeRequestBody(b, series, j, ts)
			}
			body = bodies[0]
			b.StartTimer()
		}
		if code := post(h, body); code != http.StatusNoContent {
			b.Fatalf("remote write = %d", code)
		}
	}
	b.ReportMetric(float64(series*b.N)/b.Elapsed().Seconds(), "samples/s")
}

func mustMatcher(t *testing.T) *labels.Matcher {
	t.Helper()
	return labels.MustNewMatcher(labels.MatchEqual, "__name__", "bench_metric")
}
