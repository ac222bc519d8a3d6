package main

import (
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

func TestBatchEncoderRoundTrip(t *testing.T) {
	e := newBatchEncoder(400, 3, false)
	first := e.encode(1000)
	var got prompb.WriteRequest
	raw, err := snappy.Decode(nil, first)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Unmarshal(raw); err != nil {
		t.Fatal(err)
	}
	if len(got.Timeseries) != 3 || got.Timeseries[0].Samples[0].Timestamp != 1000 {
		t.Fatalf("unexpected first request: %+v", got.Timeseries)
	}
	// A clock that does not move still gives strictly increasing timestamps.
	raw, _ = snappy.Decode(nil, e.encode(1000))
	got = prompb.WriteRequest{}
	if err := got.Unmarshal(raw); err != nil {
		t.Fatal(err)
	}
	if ts := got.Timeseries[2].Samples[0].Timestamp; ts != 1001 {
		t.Fatalf("second timestamp %d, want 1001", ts)
	}
	if got.Timeseries[1].Labels[2].Value != "host-00002.bench.internal:9100" {
		t.Fatalf("labels: %+v", got.Timeseries[1].Labels)
	}
}

// BenchmarkEncodeBatch is the load generator's per-request cost (marshal a
// 2000-series remote-write request and snappy it), which shares the cores
// with the server under test in the remote-write mode.
func BenchmarkEncodeBatch(b *testing.B) {
	for _, v2 := range []bool{false, true} {
		name := "rw1"
		if v2 {
			name = "rw2"
		}
		b.Run(name, func(b *testing.B) {
			e := newBatchEncoder(0, 2000, v2)
			b.ReportAllocs()
			var n int
			for i := 0; b.Loop(); i++ {
				n = len(e.encode(int64(i)))
			}
			b.ReportMetric(float64(n), "bytes/request")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2000), "ns/sample")
		})
	}
}
