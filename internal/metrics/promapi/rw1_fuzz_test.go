package promapi

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// FuzzRW1Decode: whatever the fast decoder accepts, gogo's prompb decoder
// accepts too and reads the same labels and samples, with no exemplars or
// histograms (those must go to upstream's path).
func FuzzRW1Decode(f *testing.F) {
	for _, req := range []*prompb.WriteRequest{
		{},
		{Timeseries: []prompb.TimeSeries{series(1, 1, "__name__", "up", "job", "a")}},
		{Timeseries: []prompb.TimeSeries{series(-5, math.NaN(), "b", "", "__name__", "x"), {Labels: []prompb.Label{{Name: "__name__", Value: "y"}}}}},
		{Timeseries: []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "a", Value: "b"}}, Exemplars: []prompb.Exemplar{{Value: 1}}}}},
		{Metadata: []prompb.MetricMetadata{{MetricFamilyName: "up", Help: "h"}}, Timeseries: []prompb.TimeSeries{series(1, 2, "__name__", "up")}},
	} {
		raw, err := req.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var q rw1Request
		if !q.decode(body) {
			return
		}
		var req prompb.WriteRequest
		if err := req.Unmarshal(body); err != nil {
			t.Fatalf("fast decoder accepted what gogo refuses: %v", err)
		}
		if len(req.Timeseries) != len(q.series) {
			t.Fatalf("%d series, gogo %d", len(q.series), len(req.Timeseries))
		}
		for i, ts := range req.Timeseries {
			s := q.series[i]
			if len(ts.Exemplars) > 0 || len(ts.Histograms) > 0 {
				t.Fatalf("series %d: exemplars or histograms on the fast path", i)
			}
			pairs := q.pairs[s.pairsFrom:s.pairsTo]
			if len(pairs) != len(ts.Labels) {
				t.Fatalf("series %d: %d labels, gogo %d", i, len(pairs), len(ts.Labels))
			}
			for j, l := range ts.Labels {
				if pairs[j].name != l.Name || pairs[j].value != l.Value {
					t.Fatalf("series %d label %d: %q=%q, gogo %q=%q", i, j, pairs[j].name, pairs[j].value, l.Name, l.Value)
				}
			}
			smps := q.samples[s.samplesFrom : s.samplesFrom+s.samples]
			if len(smps) != len(ts.Samples) {
				t.Fatalf("series %d: %d samples, gogo %d", i, len(smps), len(ts.Samples))
			}
			for j, sm := range ts.Samples {
				if smps[j].t != sm.Timestamp || math.Float64bits(smps[j].v) != math.Float64bits(sm.Value) {
					t.Fatalf("series %d sample %d: %d/%v, gogo %d/%v", i, j, smps[j].t, smps[j].v, sm.Timestamp, sm.Value)
				}
			}
		}
	})
}

// TestFastWriteConcurrentWriters: writers sending at once (one cache shared
// between requests, new and known series mixed) store every sample once.
func TestFastWriteConcurrentWriters(t *testing.T) {
	s, _ := ours(t)
	base := time.Now().UnixMilli()
	const writers, rounds, per = 4, 20, 50
	var wg sync.WaitGroup
	errs := make(chan answer, writers*rounds)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				var ts []prompb.TimeSeries
				for i := range per {
					ts = append(ts, series(base+int64(r), float64(w), "__name__", "shared", "i", string(rune('a'+i%26)), "j", string(rune('a'+i/26)), "w", string(rune('0'+w))))
				}
				if got := send(s.h, encodeV1(t, ts...), nil); got.code != 204 {
					errs <- got
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("write: %d %s", e.code, e.body)
	}
	if got := s.db.Head().NumSeries(); got != writers*per {
		t.Fatalf("%d series, want %d", got, writers*per)
	}
	if got := counters(t, s.reg)["prometheus_tsdb_head_samples_appended_total{type=float}"]; got != writers*rounds*per {
		t.Fatalf("%v samples appended, want %d", got, writers*rounds*per)
	}
}

// FuzzRW1Write sends the same remote write 1.0 body (snappy-encoded here)
// to the served handler and to Prometheus's own, each over its own TSDB,
// and requires the same answer and the same stored data.
func FuzzRW1Write(f *testing.F) {
	now := time.Now().UnixMilli()
	for _, ts := range [][]prompb.TimeSeries{
		{series(now, 1, "__name__", "up", "job", "a")},
		{series(now, 1, "job", "b", "__name__", "up"), series(now-1, 2, "__name__", "up", "job", "b")},
		{series(now, 1, "__name__", "x", "a", "1", "a", "2"), series(now, 1, "a", "no-name")},
	} {
		raw, err := (&prompb.WriteRequest{Timeseries: ts}).Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	a, _ := ours(f)
	b := upstreamSide(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		body := snappy.Encode(nil, raw)
		got, want := send(a.h, body, nil), send(b.h, body, nil)
		if got != want {
			t.Fatalf("answered %d %q, upstream %d %q", got.code, got.body, want.code, want.body)
		}
		if g, w := dump(t, a.db), dump(t, b.db); g != w {
			t.Fatalf("stored\n%s\nupstream stored\n%s", g, w)
		}
	})
}
