package generator

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
)

// remoteWriter pushes collected samples with the Prometheus remote-write
// 1.0 protocol (snappy-compressed protobuf WriteRequest). One attempt per
// collection: values are cumulative, so the next push repairs a lost one.
type remoteWriter struct {
	url     string
	headers map[string]string
	timeout time.Duration
	client  *http.Client
}

func newRemoteWriter(cfg RemoteWriteConfig) *remoteWriter {
	timeout := time.Duration(cfg.Timeout)
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	return &remoteWriter{url: cfg.URL, headers: cfg.Headers, timeout: timeout, client: &http.Client{}}
}

func (w *remoteWriter) write(ctx context.Context, samples []sample) error {
	if len(samples) == 0 {
		return nil
	}
	req := prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, len(samples))}
	for _, s := range samples {
		ts := prompb.TimeSeries{Samples: []prompb.Sample{{Value: s.v, Timestamp: s.t}}}
		s.lbls.Range(func(l labels.Label) {
			ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value})
		})
		req.Timeseries = append(req.Timeseries, ts)
	}
	raw, err := req.Marshal()
	if err != nil {
		return fmt.Errorf("encode write request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(snappy.Encode(nil, raw)))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	httpReq.Header.Set("Content-Type", "application/x-protobuf")
	httpReq.Header.Set("Content-Encoding", "snappy")
	httpReq.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	httpReq.Header.Set("User-Agent", "nxwatcher-metrics-generator")
	for k, v := range w.headers {
		httpReq.Header.Set(k, v)
	}
	resp, err := w.client.Do(httpReq)
	if err != nil {
		return fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("post: status %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}
