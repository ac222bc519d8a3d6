package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Result is what a read-back found for one signal.
type Result struct {
	Signal     string
	Checked    int      // acknowledged items looked for
	Lost       int      // acknowledged but not found
	Duplicated int      // extra copies found (an item found 3 times counts 2)
	DupResent  int      // of which copies of items the harness sent again after their ack
	Examples   []string // a few lost or duplicated items
}

func (r *Result) example(format string, args ...any) {
	if len(r.Examples) < 5 {
		r.Examples = append(r.Examples, fmt.Sprintf(format, args...))
	}
}

func getJSON(ctx context.Context, u string, hdr map[string]string, dst any) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, body, fmt.Errorf("GET %s: %d %s", u, resp.StatusCode, truncate(body, 300))
	}
	if dst != nil {
		if err := json.Unmarshal(body, dst); err != nil {
			return resp.StatusCode, body, fmt.Errorf("GET %s: decode: %w", u, err)
		}
	}
	return resp.StatusCode, body, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// VerifySamples reads chaos_rw_sample back with a range selector covering
// [from, now] and looks for every acknowledged sample with a timestamp at
// or after from.
func VerifySamples(ctx context.Context, base string, acked map[string]map[int64]float64, from time.Time) (Result, error) {
	r := Result{Signal: SignalSamples}
	now := time.Now().Add(time.Second)
	secs := int64(math.Ceil(now.Sub(from).Seconds())) + 1
	q := url.Values{
		"query": {fmt.Sprintf("chaos_rw_sample[%ds]", secs)},
		"time":  {strconv.FormatFloat(float64(now.UnixMilli())/1000, 'f', 3, 64)},
	}
	var resp struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if _, _, err := getJSON(ctx, base+"/api/v1/query?"+q.Encode(), nil, &resp); err != nil {
		return r, err
	}
	got := map[string]map[int64][]float64{}
	for _, s := range resp.Data.Result {
		key := rwSeriesKey(s.Metric["sender"], s.Metric["series"])
		m := got[key]
		if m == nil {
			m = map[int64][]float64{}
			got[key] = m
		}
		for _, v := range s.Values {
			tsf, _ := v[0].(float64)
			vs, _ := v[1].(string)
			f, err := strconv.ParseFloat(vs, 64)
			if err != nil {
				return r, fmt.Errorf("sample value %v: %w", v[1], err)
			}
			ts := int64(math.Round(tsf * 1000))
			m[ts] = append(m[ts], f)
		}
	}
	fromMs := from.UnixMilli()
	for key, samples := range acked {
		for ts, want := range samples {
			if ts < fromMs {
				continue
			}
			r.Checked++
			vals := got[key][ts]
			if len(vals) == 0 {
				r.Lost++
				r.example("lost sample %s @%d", key, ts)
				continue
			}
			if vals[0] != want {
				r.Lost++
				r.example("sample %s @%d = %v, acknowledged %v", key, ts, vals[0], want)
			}
		}
	}
	for key, m := range got {
		for ts, vals := range m {
			if len(vals) > 1 {
				r.Duplicated += len(vals) - 1
				r.example("sample %s @%d returned %d times", key, ts, len(vals))
			}
		}
	}
	return r, nil
}

// LokiPageLimit is the page size of read-backs (Loki's default max entries
// per query).
var LokiPageLimit = 5000

// VerifyLines reads every stream of senders back with /loki/api/v1/query_range
// (forward, paged) from from to now and counts each acknowledged line.
func VerifyLines(ctx context.Context, base string, senders []int, acked map[string]int64, resent map[string]bool, from time.Time) (Result, error) {
	r := Result{Signal: SignalLines}
	seen := map[string]int{}
	end := time.Now().Add(time.Minute).UnixNano()
	for _, id := range senders {
		start := from.UnixNano()
		for page := 0; ; page++ {
			if page > 100000 {
				return r, fmt.Errorf("sender %d: too many pages", id)
			}
			q := url.Values{
				"query":     {LokiStream(id)},
				"start":     {strconv.FormatInt(start, 10)},
				"end":       {strconv.FormatInt(end, 10)},
				"limit":     {strconv.Itoa(LokiPageLimit)},
				"direction": {"forward"},
			}
			var resp struct {
				Data struct {
					Result []struct {
						Values [][]json.RawMessage `json:"values"`
					} `json:"result"`
				} `json:"data"`
			}
			if _, _, err := getJSON(ctx, base+"/loki/api/v1/query_range?"+q.Encode(), nil, &resp); err != nil {
				return r, err
			}
			type entry struct {
				ts   int64
				line string
			}
			var entries []entry
			maxTS := int64(math.MinInt64)
			for _, s := range resp.Data.Result {
				for _, v := range s.Values {
					if len(v) < 2 {
						return r, fmt.Errorf("value with %d elements", len(v))
					}
					var tss, line string
					if err := json.Unmarshal(v[0], &tss); err != nil {
						return r, fmt.Errorf("timestamp %s: %w", v[0], err)
					}
					if err := json.Unmarshal(v[1], &line); err != nil {
						return r, fmt.Errorf("line %s: %w", v[1], err)
					}
					ts, err := strconv.ParseInt(tss, 10, 64)
					if err != nil {
						return r, fmt.Errorf("timestamp %q: %w", tss, err)
					}
					entries = append(entries, entry{ts, line})
					maxTS = max(maxTS, ts)
				}
			}
			if len(entries) < LokiPageLimit {
				for _, e := range entries {
					seen[e.line]++
				}
				break
			}
			// A full page may end inside one timestamp: count what is before
			// the last timestamp and start the next page at it.
			if maxTS == start {
				return r, fmt.Errorf("sender %d: more than %d entries at one timestamp %d", id, LokiPageLimit, start)
			}
			for _, e := range entries {
				if e.ts < maxTS {
					seen[e.line]++
				}
			}
			start = maxTS
		}
	}
	fromNs := from.UnixNano()
	for line, ts := range acked {
		if ts < fromNs {
			continue
		}
		r.Checked++
		if seen[line] == 0 {
			r.Lost++
			r.example("lost line %q", line)
		}
	}
	for line, n := range seen {
		if n > 1 {
			r.Duplicated += n - 1
			if resent[line] {
				r.DupResent += n - 1
			}
			r.example("line stored %d times (resent by the harness: %v): %q", n, resent[line], line)
		}
	}
	return r, nil
}

// VerifySpans fetches every given trace with GET /api/traces/<id>
// (protobuf) and counts each acknowledged span.
func VerifySpans(ctx context.Context, base string, traces []AckedTrace) (Result, error) {
	r := Result{Signal: SignalSpans}
	var mu sync.Mutex
	var firstErr error
	work := make(chan AckedTrace)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range work {
				got, err := fetchTrace(ctx, base, t.ID)
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				for _, sid := range t.Spans {
					r.Checked++
					if got[sid] == 0 {
						r.Lost++
						r.example("lost span %s of trace %s", sid, t.ID)
					}
				}
				for sid, n := range got {
					if n > 1 {
						r.Duplicated += n - 1
						if t.Resent {
							r.DupResent += n - 1
						}
						r.example("span %s of trace %s stored %d times (resent by the harness: %v)", sid, t.ID, n, t.Resent)
					}
				}
				mu.Unlock()
			}
		}()
	}
	for _, t := range traces {
		if ctx.Err() != nil {
			break
		}
		work <- t
	}
	close(work)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return r, firstErr
}

// fetchTrace returns how often each span ID occurs in the stored trace
// (empty when the trace is not found).
func fetchTrace(ctx context.Context, base string, id pcommon.TraceID) (map[pcommon.SpanID]int, error) {
	code, body, err := getJSON(ctx, base+"/api/traces/"+id.String(), map[string]string{"Accept": "application/protobuf"}, nil)
	if code == http.StatusNotFound {
		return map[pcommon.SpanID]int{}, nil
	}
	if err != nil {
		return nil, err
	}
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(body)
	if err != nil {
		return nil, fmt.Errorf("trace %s: decode: %w", id, err)
	}
	got := map[pcommon.SpanID]int{}
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		rs := td.ResourceSpans().At(i)
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			ss := rs.ScopeSpans().At(j)
			for k := 0; k < ss.Spans().Len(); k++ {
				got[ss.Spans().At(k).SpanID()]++
			}
		}
	}
	return got, nil
}

// ScrapeSampleAfter polls `timestamp(chaos_scrape_requests_total)` until
// the scraped series has a sample at or after t, or the timeout passes.
func ScrapeSampleAfter(ctx context.Context, base string, t time.Time, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	var last time.Time
	for {
		q := url.Values{"query": {`timestamp(chaos_scrape_requests_total{job="chaos_target"})`}}
		var resp struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		_, _, err := getJSON(ctx, base+"/api/v1/query?"+q.Encode(), nil, &resp)
		if err == nil && len(resp.Data.Result) > 0 {
			if s, ok := resp.Data.Result[0].Value[1].(string); ok {
				if f, err := strconv.ParseFloat(s, 64); err == nil {
					last = time.UnixMilli(int64(math.Round(f * 1000)))
					if !last.Before(t.Truncate(time.Millisecond)) {
						return last, nil
					}
				}
			}
		}
		if time.Now().After(deadline) {
			if err != nil {
				return last, fmt.Errorf("no scraped sample after %s within %s: %w", t.Format(time.RFC3339Nano), timeout, err)
			}
			return last, fmt.Errorf("no scraped sample after %s within %s (latest %s)", t.Format(time.RFC3339Nano), timeout, last.Format(time.RFC3339Nano))
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
