package demo

import (
	"bytes"
	"context"
	"fmt"
	"github.com/prometheus/prometheus/model/labels"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/golang/snappy"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/prompb"
)

// backfill writes the platform's metric history from now-span to now over
// remote write 1.0 (serve's /api/v1/write), one sample per series per
// scrape interval, as scrapes of the same exporters would have written it:
// daily curve and incidents included, `up` too. A platform of its own
// simulates it, so the live exporters' counters start afresh at the join
// (one counter reset, as after a restart). Logs and traces are not
// backfilled. The TSDB takes the old samples through its out-of-order
// window, which the demo widens to span+1h.
func (d *Demo) backfill(ctx context.Context, span time.Duration) error {
	p := newPlatform(d.opts)
	step := d.opts.ScrapeInterval
	end := time.Now().Add(-step)
	const stepsPerRequest = 40
	series := map[string]*prompb.TimeSeries{}
	flush := func() error {
		if len(series) == 0 {
			return nil
		}
		req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, len(series))}
		for _, ts := range series {
			req.Timeseries = append(req.Timeseries, *ts)
		}
		clear(series)
		return d.remoteWrite(ctx, req)
	}
	n := 0
	for t := end.Add(-span); t.Before(end); t = t.Add(step) {
		if err := ctx.Err(); err != nil {
			return err
		}
		p.tick(t, step)
		ms := t.UnixMilli()
		seen := map[string]bool{}
		for _, e := range p.exporters {
			target := []prompb.Label{{Name: "instance", Value: e.instance}, {Name: "job", Value: e.job}}
			for k, v := range e.labels {
				target = append(target, prompb.Label{Name: k, Value: v})
			}
			key := e.job + "\xff" + e.instance
			if !seen[key] {
				seen[key] = true
				up := 1.0
				if e.down.Load() {
					up = 0
				}
				add(series, "up", target, nil, ms, up)
			}
			if e.down.Load() {
				continue
			}
			mfs, err := e.reg.Gather()
			if err != nil {
				return fmt.Errorf("demo backfill: gather %s: %w", e.job, err)
			}
			for _, mf := range mfs {
				for _, m := range mf.GetMetric() {
					appendMetric(series, mf.GetName(), mf.GetType(), m, target, ms)
				}
			}
		}
		if n++; n%stepsPerRequest == 0 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

func appendMetric(series map[string]*prompb.TimeSeries, name string, typ dto.MetricType, m *dto.Metric, target []prompb.Label, ms int64) {
	var lbls []prompb.Label
	for _, lp := range m.GetLabel() {
		lbls = append(lbls, prompb.Label{Name: lp.GetName(), Value: lp.GetValue()})
	}
	switch typ {
	case dto.MetricType_COUNTER:
		add(series, name, target, lbls, ms, m.GetCounter().GetValue())
	case dto.MetricType_GAUGE:
		add(series, name, target, lbls, ms, m.GetGauge().GetValue())
	case dto.MetricType_HISTOGRAM:
		h := m.GetHistogram()
		for _, b := range h.GetBucket() {
			add(series, name+"_bucket", target, append(lbls[:len(lbls):len(lbls)], prompb.Label{Name: "le", Value: formatLe(b.GetUpperBound())}), ms, float64(b.GetCumulativeCount()))
		}
		add(series, name+"_bucket", target, append(lbls[:len(lbls):len(lbls)], prompb.Label{Name: "le", Value: "+Inf"}), ms, float64(h.GetSampleCount()))
		add(series, name+"_sum", target, lbls, ms, h.GetSampleSum())
		add(series, name+"_count", target, lbls, ms, float64(h.GetSampleCount()))
	}
}

func formatLe(f float64) string {
	// Prometheus 3 normalises a scraped le to OpenMetrics' float form ("5"
	// becomes "5.0"); the backfill writes what the scraper stores, so a sum
	// by (le) over backfilled and scraped samples meets one series a bucket.
	return labels.FormatOpenMetricsFloat(f)
}

// add appends one sample to its series, creating the series (labels sorted,
// as remote write requires) on first use.
func add(series map[string]*prompb.TimeSeries, name string, target, lbls []prompb.Label, ms int64, v float64) {
	all := make([]prompb.Label, 0, len(target)+len(lbls)+1)
	all = append(all, prompb.Label{Name: "__name__", Value: name})
	all = append(all, target...)
	all = append(all, lbls...)
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	var kb strings.Builder
	for _, l := range all {
		kb.WriteString(l.Name)
		kb.WriteByte(0xff)
		kb.WriteString(l.Value)
		kb.WriteByte(0xfe)
	}
	key := kb.String()
	ts, ok := series[key]
	if !ok {
		ts = &prompb.TimeSeries{Labels: all}
		series[key] = ts
	}
	ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: ms, Value: v})
}

func (d *Demo) remoteWrite(ctx context.Context, req *prompb.WriteRequest) error {
	raw, err := req.Marshal()
	if err != nil {
		return fmt.Errorf("demo backfill: %w", err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL()+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/x-protobuf")
	hr.Header.Set("Content-Encoding", "snappy")
	hr.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return fmt.Errorf("demo backfill: remote write: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("demo backfill: remote write: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return nil
}
