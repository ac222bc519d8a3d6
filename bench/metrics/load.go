package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// seriesLabels is the label set of remote-write series i: 200 metric names ×
// (series/200) instances, plus job/env/region labels, ~6 labels and ~110
// bytes of label text per series, the shape of a node-exporter-like fleet.
func seriesLabels(i int) []prompb.Label {
	return []prompb.Label{
		{Name: "__name__", Value: fmt.Sprintf("bench_metric_%03d_total", i%200)},
		{Name: "env", Value: "bench"},
		{Name: "instance", Value: fmt.Sprintf("host-%05d.bench.internal:9100", i/200)},
		{Name: "job", Value: "remote_write_bench"},
		{Name: "region", Value: "eu-west-" + strconv.Itoa(i%3)},
	}
}

// batchEncoder holds one request's worth of series and re-encodes it with a
// new sample per series on every call; label slices and buffers are reused.
// With v2 set it sends remote write 2.0 (labels as references into a
// per-request symbol table) instead of 1.0.
type batchEncoder struct {
	req     prompb.WriteRequest
	v2      bool
	req2    writev2.Request
	first   int // index of the first series of the batch
	lastTS  int64
	round   int64
	raw     []byte
	snapped []byte
}

func newBatchEncoder(first, n int, v2 bool) *batchEncoder {
	e := &batchEncoder{first: first, v2: v2}
	e.req.Timeseries = make([]prompb.TimeSeries, n)
	for j := range e.req.Timeseries {
		e.req.Timeseries[j] = prompb.TimeSeries{
			Labels:  seriesLabels(first + j),
			Samples: make([]prompb.Sample, 1),
		}
	}
	if v2 {
		syms := writev2.NewSymbolTable()
		e.req2.Timeseries = make([]writev2.TimeSeries, n)
		for j, ts := range e.req.Timeseries {
			refs := make([]uint32, 0, 2*len(ts.Labels))
			for _, l := range ts.Labels {
				refs = append(refs, syms.Symbolize(l.Name), syms.Symbolize(l.Value))
			}
			e.req2.Timeseries[j] = writev2.TimeSeries{
				LabelsRefs: refs,
				Samples:    make([]writev2.Sample, 1),
				Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER},
			}
		}
		e.req2.Symbols = syms.Symbols()
	}
	return e
}

// numSeries is the number of series (and samples) in one request.
func (e *batchEncoder) numSeries() int { return len(e.req.Timeseries) }

// encode writes one sample per series at ts (made strictly increasing per
// batch) and returns the snappy-compressed body, valid until the next call.
func (e *batchEncoder) encode(ts int64) []byte {
	if ts <= e.lastTS {
		ts = e.lastTS + 1
	}
	e.lastTS = ts
	e.round++
	for j := range e.req.Timeseries {
		s := &e.req.Timeseries[j].Samples[0]
		s.Timestamp = ts
		// A counter that grows by a per-series amount each round, so chunks
		// are not all-constant (which would compress unrealistically well).
		s.Value += float64((e.first+j)%13 + int(e.round%7))
		if e.v2 {
			e.req2.Timeseries[j].Samples[0] = writev2.Sample{Value: s.Value, Timestamp: ts}
		}
	}
	var size int
	if e.v2 {
		size = e.req2.Size()
	} else {
		size = e.req.Size()
	}
	if cap(e.raw) < size {
		e.raw = make([]byte, size)
	}
	e.raw = e.raw[:size]
	var err error
	if e.v2 {
		_, err = e.req2.MarshalToSizedBuffer(e.raw)
	} else {
		_, err = e.req.MarshalToSizedBuffer(e.raw)
	}
	if err != nil {
		panic(err) // cannot fail for a correctly sized buffer
	}
	e.snapped = snappy.Encode(e.snapped[:cap(e.snapped)], e.raw)
	return e.snapped
}

// rwStats is what the writers count, read by the measuring goroutine.
type rwStats struct {
	samples  atomic.Int64 // samples in requests answered 2xx
	requests atomic.Int64
	failures atomic.Int64
	firstErr atomic.Value // string
}

// runRemoteWrite pushes `series` series in batches of `batch` with `writers`
// concurrent senders until ctx ends. Batch b is always sent by writer
// b%writers, so each series' samples arrive in order. interval > 0 paces a
// writer to at most one sample per series per interval; 0 is as fast as the
// server answers.
func runRemoteWrite(ctx context.Context, url string, series, batch, writers int, interval time.Duration, v2 bool, st *rwStats) {
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: writers,
		DisableCompression:  true,
	}, Timeout: 30 * time.Second}
	var encs [][]*batchEncoder = make([][]*batchEncoder, writers)
	for b, first := 0, 0; first < series; b, first = b+1, first+batch {
		n := min(batch, series-first)
		encs[b%writers] = append(encs[b%writers], newBatchEncoder(first, n, v2))
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				start := time.Now()
				for _, e := range encs[w] {
					if ctx.Err() != nil {
						return
					}
					body := e.encode(time.Now().UnixMilli())
					n := e.numSeries()
					if err := postWrite(ctx, client, url, body, v2); err != nil {
						if ctx.Err() != nil {
							return
						}
						st.failures.Add(1)
						st.firstErr.CompareAndSwap(nil, err.Error())
						continue
					}
					st.requests.Add(1)
					st.samples.Add(int64(n))
				}
				if interval > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(interval - time.Since(start)):
					}
				}
			}
		}()
	}
	wg.Wait()
	client.CloseIdleConnections()
}

func postWrite(ctx context.Context, client *http.Client, url string, body []byte, v2 bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Encoding", "snappy")
	if v2 {
		req.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
	} else {
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("remote write: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
