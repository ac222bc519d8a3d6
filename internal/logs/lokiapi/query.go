package lokiapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/logs/logql"
	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
	"github.com/nx-watcher/nxwatcher/internal/tenancy"
)

// badRequest is answered with 400 and the message as text, as Loki does.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badf(format string, args ...any) error { return &badRequest{fmt.Sprintf(format, args...)} }

// observe wraps a read handler with its metrics and error mapping.
func (a *API) observe(endpoint string, w http.ResponseWriter, r *http.Request, fn func() (any, error)) {
	start := time.Now()
	code := http.StatusOK
	defer func() {
		a.m.queries.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
		a.m.queryDuration.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
	}()
	if err := r.ParseForm(); err != nil {
		code = http.StatusBadRequest
		http.Error(w, "invalid form: "+err.Error(), code)
		return
	}
	v, err := fn()
	if err != nil {
		var br *badRequest
		var pe *logql.ParseError
		var he *httpError
		switch {
		case errors.As(err, &he):
			code = he.status
		case tenancy.Refused(err):
			code = http.StatusTooManyRequests
			reason := "queue_full"
			if errors.Is(err, tenancy.ErrQueueTimeout) {
				reason = "queue_timeout"
			}
			a.m.queriesRejected.WithLabelValues(reason).Inc()
		case errors.As(err, &br), errors.As(err, &pe):
			code = http.StatusBadRequest
		case errors.Is(err, logql.ErrLimit):
			code = http.StatusBadRequest
		case errors.Is(err, context.DeadlineExceeded):
			code = http.StatusGatewayTimeout
		case errors.Is(err, context.Canceled):
			code = 499 // client closed request, as Loki logs it
		case strings.HasPrefix(err.Error(), "pipeline error"):
			code = http.StatusBadRequest
		default:
			code = http.StatusInternalServerError
			a.logger.Error("query failed", "endpoint", endpoint, "err", err)
		}
		http.Error(w, err.Error(), code)
		return
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		code = http.StatusInternalServerError
		http.Error(w, "encode response: "+err.Error(), code)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Write(buf.Bytes())
}

// query is observe for the endpoints that read the store: it resolves the
// request's tenant and store and takes a query slot (429 when none frees
// up) before fn runs.
func (a *API) query(endpoint string, w http.ResponseWriter, r *http.Request, fn func(st Store) (any, error)) {
	a.observe(endpoint, w, r, func() (any, error) {
		tenant, err := a.tenantOf(r)
		if err != nil {
			return nil, err
		}
		st, err := a.readStore(tenant)
		if err != nil {
			return nil, err
		}
		release, err := a.gate.Load().Enter(r.Context(), tenant)
		if err != nil {
			return nil, err
		}
		defer release()
		return fn(st)
	})
}

// parseTime reads Loki's time forms: a number with a fraction is Unix
// seconds; an integer of up to 10 characters is Unix seconds
// (4000000000 is in 2096, not 4 s after 1970), a longer one Unix
// nanoseconds; otherwise RFC3339 with optional fraction.
func parseTime(s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	if strings.Contains(s, ".") {
		if t, ok := parseDecimalSeconds(s); ok {
			return t, nil
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			sec, frac := math.Modf(f)
			return time.Unix(int64(sec), int64(math.Round(frac*1e9))), nil
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if len(s) <= 10 {
			return time.Unix(n, 0), nil
		}
		return time.Unix(0, n), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, badf("cannot parse %q to a valid timestamp", s)
}

// parseDecimalSeconds reads "<seconds>.<fraction>" exactly (a float64
// loses the nanoseconds of today's timestamps).
func parseDecimalSeconds(s string) (time.Time, bool) {
	ip, fp, _ := strings.Cut(s, ".")
	if len(fp) == 0 || len(fp) > 9 || strings.HasPrefix(ip, "-") {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(ip, 10, 64)
	if err != nil && ip != "" {
		return time.Time{}, false
	}
	ns, err := strconv.ParseUint(fp+strings.Repeat("0", 9-len(fp)), 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(sec, int64(ns)), true
}

func parseStep(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(f * float64(time.Second)), nil
	}
	if d, err := parseModelDuration(s); err == nil {
		return d, nil
	}
	return 0, badf("cannot parse %q to a valid duration", s)
}

// timeRange reads start/end/since with Loki's default for queries (the
// last hour).
func (a *API) timeRange(r *http.Request) (time.Time, time.Time, error) {
	return a.timeRangeSince(r, time.Hour)
}

// metadataLookback is Loki's default range for labels, label values and series.
const metadataLookback = 6 * time.Hour

func (a *API) timeRangeSince(r *http.Request, since time.Duration) (time.Time, time.Time, error) {
	now := a.now()
	end, err := parseTime(r.Form.Get("end"), now)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	if s := r.Form.Get("since"); s != "" {
		if since, err = parseStep(s); err != nil {
			return time.Time{}, time.Time{}, err
		}
	}
	// Loki: with end in the future, since counts back from now.
	ref := end
	if ref.After(now) {
		ref = now
	}
	start, err := parseTime(r.Form.Get("start"), ref.Add(-since))
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	if end.Before(start) {
		return time.Time{}, time.Time{}, badf("end timestamp must not be before or equal to start time")
	}
	return start, end, nil
}

func (a *API) limitAndDirection(r *http.Request) (int, bool, error) {
	lim := a.limits.Load()
	limit := 100
	if s := r.Form.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, false, badf("cannot parse limit %q: want an integer", s)
		}
		if n <= 0 {
			return 0, false, badf("limit must be a positive value")
		}
		limit = n
	}
	if limit > lim.MaxEntriesLimitPerQuery {
		return 0, false, badf("max entries limit per query exceeded, limit > max_entries_limit_per_query (%d > %d)", limit, lim.MaxEntriesLimitPerQuery)
	}
	backward := true
	switch strings.ToLower(r.Form.Get("direction")) {
	case "", "backward":
	case "forward":
		backward = false
	default:
		return 0, false, badf("invalid direction %q: want forward or backward", r.Form.Get("direction"))
	}
	return limit, backward, nil
}

type queryResponse struct {
	Status string    `json:"status"`
	Data   queryData `json:"data"`
}

type queryData struct {
	ResultType    string          `json:"resultType"`
	EncodingFlags []string        `json:"encodingFlags,omitempty"`
	Result        json.RawMessage `json:"result"`
	Stats         any             `json:"stats,omitempty"` // absent from index/volume, as in Loki
}

// QueryRange handles /loki/api/v1/query_range.
func (a *API) QueryRange(w http.ResponseWriter, r *http.Request) {
	a.query("query_range", w, r, func(st Store) (any, error) {
		q := r.Form.Get("query")
		if q == "" {
			return nil, badf("query parameter is required")
		}
		start, end, err := a.timeRange(r)
		if err != nil {
			return nil, err
		}
		if max := time.Duration(a.limits.Load().MaxQueryLength); max > 0 && end.Sub(start) > max {
			return nil, badf("the query time range exceeds the limit (query length: %s, limit: %s)", end.Sub(start), max)
		}
		limit, backward, err := a.limitAndDirection(r)
		if err != nil {
			return nil, err
		}
		step := defaultStep(start, end)
		if s := r.Form.Get("step"); s != "" {
			if step, err = parseStep(s); err != nil {
				return nil, err
			}
			if step <= 0 {
				return nil, badf("zero or negative query resolution step widths are not accepted. Try a positive integer")
			}
		}
		// Refused before anything is evaluated or allocated, as Loki does
		// for every range query (log queries included).
		if logql.Points(start, end, step) > logql.MaxPoints {
			return nil, badf("exceeded maximum resolution of 11,000 points per timeseries. Try increasing the value of the step parameter")
		}
		var interval time.Duration
		if s := r.Form.Get("interval"); s != "" {
			if interval, err = parseStep(s); err != nil {
				return nil, err
			}
		}
		ctx, cancel := a.queryContext(r)
		defer cancel()
		categorize := categorizeLabels(r)
		res, err := a.engine.Load().Exec(ctx, st, q, logql.Params{Start: start, End: end, Step: step, Interval: interval, Limit: limit, Backward: backward, Categorize: categorize})
		if err != nil {
			return nil, err
		}
		return encodeResultFlags(res, categorize)
	})
}

// Query handles /loki/api/v1/query (instant).
func (a *API) Query(w http.ResponseWriter, r *http.Request) {
	a.query("query", w, r, func(st Store) (any, error) {
		q := r.Form.Get("query")
		if q == "" {
			return nil, badf("query parameter is required")
		}
		ts, err := parseTime(r.Form.Get("time"), a.now())
		if err != nil {
			return nil, err
		}
		limit, backward, err := a.limitAndDirection(r)
		if err != nil {
			return nil, err
		}
		expr, err := logql.ParseExpr(q)
		if err != nil {
			return nil, err
		}
		if _, isLog := expr.(*logql.LogSelectorExpr); isLog {
			return nil, badf("log queries are not supported as an instant query type, please change your query to a range query type")
		}
		ctx, cancel := a.queryContext(r)
		defer cancel()
		res, err := a.engine.Load().Eval(ctx, st, expr, logql.Params{Start: ts.Add(-time.Hour), End: ts, Limit: limit, Backward: backward, Instant: true})
		if err != nil {
			return nil, err
		}
		return encodeResult(res)
	})
}

// defaultStep is Loki's: the range over 250 points, at least a second.
func defaultStep(start, end time.Time) time.Duration {
	s := math.Max(math.Floor(end.Sub(start).Seconds()/250), 1)
	return time.Duration(s) * time.Second
}

// encodingFlagsHeader is the request header Grafana sets on log queries;
// with the categorize-labels flag Loki answers in its categorised encoding.
const encodingFlagsHeader = "X-Loki-Response-Encoding-Flags"

const flagCategorizeLabels = "categorize-labels"

// categorizeLabels reports whether the request asks for the categorised
// stream encoding (the header holds a comma-separated list of flags).
func categorizeLabels(r *http.Request) bool {
	for _, h := range r.Header.Values(encodingFlagsHeader) {
		for _, f := range strings.Split(h, ",") {
			if strings.TrimSpace(f) == flagCategorizeLabels {
				return true
			}
		}
	}
	return false
}

func encodeResult(res logql.Result) (any, error) { return encodeResultFlags(res, false) }

// encodeResultFlags encodes a result; with categorize, streams answer in
// Loki's categorised encoding: data.encodingFlags, stream = index labels,
// each value [ts, line, {"structuredMetadata": {…}, "parsed": {…}}] with
// an empty object left out.
func encodeResultFlags(res logql.Result, categorize bool) (any, error) {
	var b bytes.Buffer
	var flags []string
	switch v := res.Value.(type) {
	case logql.Streams:
		if categorize {
			flags = []string{flagCategorizeLabels}
		}
		b.WriteByte('[')
		for i, s := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"stream":`)
			writeLabels(&b, s.Labels)
			b.WriteString(`,"values":[`)
			for j, e := range s.Entries {
				if j > 0 {
					b.WriteByte(',')
				}
				b.WriteString(`["`)
				b.WriteString(strconv.FormatInt(e.Timestamp, 10))
				b.WriteString(`",`)
				writeJSONString(&b, e.Line)
				if categorize && j < len(s.Categories) {
					writeCategories(&b, s.Categories[j])
				}
				b.WriteByte(']')
			}
			b.WriteString("]}")
		}
		b.WriteByte(']')
	case logql.Matrix:
		b.WriteByte('[')
		for i, s := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"metric":`)
			writeLabels(&b, s.Metric)
			b.WriteString(`,"values":[`)
			for j, p := range s.Points {
				if j > 0 {
					b.WriteByte(',')
				}
				writePoint(&b, p.T, p.V)
			}
			b.WriteString("]}")
		}
		b.WriteByte(']')
	case logql.Vector:
		b.WriteByte('[')
		for i, s := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"metric":`)
			writeLabels(&b, s.Metric)
			b.WriteString(`,"value":`)
			writePoint(&b, s.T, s.V)
			b.WriteByte('}')
		}
		b.WriteByte(']')
	case logql.Scalar:
		writePoint(&b, v.T, v.V)
	default:
		return nil, fmt.Errorf("unexpected result type %T", res.Value)
	}
	return queryResponse{Status: "success", Data: queryData{ResultType: res.Value.Type(), EncodingFlags: flags, Result: b.Bytes(), Stats: statsJSON(res.Stats)}}, nil
}

func writeCategories(b *bytes.Buffer, c logql.EntryLabels) {
	b.WriteString(",{")
	if !c.StructuredMetadata.IsEmpty() {
		b.WriteString(`"structuredMetadata":`)
		writeLabels(b, c.StructuredMetadata)
	}
	if !c.Parsed.IsEmpty() {
		if !c.StructuredMetadata.IsEmpty() {
			b.WriteByte(',')
		}
		b.WriteString(`"parsed":`)
		writeLabels(b, c.Parsed)
	}
	b.WriteByte('}')
}

func encodeVolume(vec logql.Vector) (any, error) {
	r, err := encodeResult(logql.Result{Value: vec})
	if err != nil {
		return nil, err
	}
	q := r.(queryResponse)
	q.Data.Stats = nil
	return q, nil
}

func writeLabels(b *bytes.Buffer, ls labels.Labels) {
	b.WriteByte('{')
	first := true
	ls.Range(func(l labels.Label) {
		if !first {
			b.WriteByte(',')
		}
		first = false
		writeJSONString(b, l.Name)
		b.WriteByte(':')
		writeJSONString(b, l.Value)
	})
	b.WriteByte('}')
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s)
	b.Write(enc)
}

// writePoint writes [<seconds as a number>, "<value>"], Prometheus style.
func writePoint(b *bytes.Buffer, tms int64, v float64) {
	b.WriteByte('[')
	b.WriteString(strconv.FormatFloat(float64(tms)/1000, 'f', -1, 64))
	b.WriteString(`,"`)
	switch {
	case math.IsNaN(v):
		b.WriteString("NaN")
	case math.IsInf(v, 1):
		b.WriteString("+Inf")
	case math.IsInf(v, -1):
		b.WriteString("-Inf")
	default:
		b.WriteString(strconv.FormatFloat(v, 'f', -1, 64))
	}
	b.WriteString(`"]`)
}

// statsJSON follows the shape of Loki's stats block (the parts we measure;
// the rest are zero so clients that read them keep working).
func statsJSON(s logql.Stats) map[string]any {
	secs := s.ExecTime.Seconds()
	perSec := func(n int64) int64 {
		if secs <= 0 {
			return 0
		}
		return int64(float64(n) / secs)
	}
	chunk := map[string]any{
		"headChunkBytes": 0, "headChunkLines": 0, "decompressedBytes": s.Bytes, "decompressedLines": s.Lines,
		"compressedBytes": s.StoredBytes, "totalDuplicates": 0, "postFilterLines": s.PostFilter,
		"headChunkStructuredMetadataBytes": 0, "decompressedStructuredMetadataBytes": s.MetadataBytes,
	}
	store := map[string]any{
		"totalChunksRef": s.Chunks, "totalChunksDownloaded": s.Chunks, "chunksDownloadTime": 0,
		"queryReferencedStructuredMetadata": false, "chunk": chunk, "chunkRefsFetchTime": 0, "congestionControlLatency": 0,
		"pipelineWrapperFilteredLines": 0,
	}
	zeroChunk := map[string]any{
		"headChunkBytes": 0, "headChunkLines": 0, "decompressedBytes": 0, "decompressedLines": 0,
		"compressedBytes": 0, "totalDuplicates": 0, "postFilterLines": 0,
		"headChunkStructuredMetadataBytes": 0, "decompressedStructuredMetadataBytes": 0,
	}
	return map[string]any{
		"summary": map[string]any{
			"bytesProcessedPerSecond": perSec(s.Bytes), "linesProcessedPerSecond": perSec(s.Lines),
			"totalBytesProcessed": s.Bytes, "totalLinesProcessed": s.Lines, "execTime": secs, "queueTime": 0,
			"subqueries": 0, "totalEntriesReturned": s.Returned, "splits": 0, "shards": 0,
			"totalPostFilterLines": s.PostFilter, "totalStructuredMetadataBytesProcessed": s.MetadataBytes,
		},
		"querier": map[string]any{"store": store},
		"ingester": map[string]any{
			"totalReached": 0, "totalChunksMatched": 0, "totalBatches": 0, "totalLinesSent": 0,
			"store": map[string]any{"totalChunksRef": 0, "totalChunksDownloaded": 0, "chunksDownloadTime": 0, "chunk": zeroChunk},
		},
	}
}

type stringsResponse struct {
	Status string   `json:"status"`
	Data   []string `json:"data"`
}

// matchersParam parses an optional stream selector parameter.
func matchersParam(s string) ([]*labels.Matcher, error) {
	if s == "" {
		return nil, nil
	}
	ms, err := logql.ParseMatchers(s)
	if err != nil {
		return nil, err
	}
	return ms, nil
}

func (a *API) querier(st Store, r *http.Request) (*logstore.Querier, error) {
	start, end, err := a.timeRangeSince(r, metadataLookback)
	if err != nil {
		return nil, err
	}
	return st.Querier(start.UnixNano(), end.UnixNano()+1)
}

// withSelector parses the optional query= stream selector (nil when
// absent), opens a querier over the request's range and runs fn with the
// request's query context: the start of every metadata endpoint.
func withSelector[T any](a *API, st Store, r *http.Request, fn func(context.Context, *logstore.Querier, []*labels.Matcher) (T, error)) (T, error) {
	var zero T
	ms, err := matchersParam(r.Form.Get("query"))
	if err != nil {
		return zero, err
	}
	q, err := a.querier(st, r)
	if err != nil {
		return zero, err
	}
	defer q.Close()
	ctx, cancel := a.queryContext(r)
	defer cancel()
	return fn(ctx, q, ms)
}

// orAllStreams is ms, or a matcher every stream passes when ms is empty.
func orAllStreams(ms []*labels.Matcher) []*labels.Matcher {
	if ms == nil {
		return []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".*")}
	}
	return ms
}

// Labels handles /loki/api/v1/labels.
func (a *API) Labels(w http.ResponseWriter, r *http.Request) {
	a.query("labels", w, r, func(st Store) (any, error) {
		return withSelector(a, st, r, func(ctx context.Context, q *logstore.Querier, ms []*labels.Matcher) (any, error) {
			names, err := q.LabelNames(ctx, orAllStreams(ms)...)
			return stringsResponse{Status: "success", Data: nonNil(names)}, err
		})
	})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// LabelValues handles /loki/api/v1/label/{name}/values.
func (a *API) LabelValues(w http.ResponseWriter, r *http.Request) {
	a.query("label_values", w, r, func(st Store) (any, error) {
		name := r.PathValue("name")
		if name == "" {
			// Mounted without a pattern: take it from the path.
			p := strings.TrimPrefix(r.URL.Path, "/loki/api/v1/label/")
			name = strings.TrimSuffix(p, "/values")
		}
		if !validLabelName(name) {
			return nil, badf("invalid label name %q", name)
		}
		return withSelector(a, st, r, func(ctx context.Context, q *logstore.Querier, ms []*labels.Matcher) (any, error) {
			vals, err := q.LabelValues(ctx, name, ms...)
			return stringsResponse{Status: "success", Data: nonNil(vals)}, err
		})
	})
}

// Series handles /loki/api/v1/series?match[]=...
func (a *API) Series(w http.ResponseWriter, r *http.Request) {
	a.query("series", w, r, func(st Store) (any, error) {
		matches := r.Form["match[]"]
		if len(matches) == 0 {
			matches = r.Form["match"]
		}
		if len(matches) == 0 {
			return nil, badf("at least one match[] argument must be provided")
		}
		q, err := a.querier(st, r)
		if err != nil {
			return nil, err
		}
		defer q.Close()
		ctx, cancel := a.queryContext(r)
		defer cancel()
		seen := map[string]labels.Labels{}
		for _, m := range matches {
			ms, err := logql.ParseMatchers(m)
			if err != nil {
				return nil, err
			}
			ss, err := q.Series(ctx, ms...)
			if err != nil {
				return nil, err
			}
			for _, s := range ss {
				seen[s.String()] = s
			}
		}
		keys := make([]string, 0, len(seen))
		for k := range seen {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		data := make([]map[string]string, 0, len(keys))
		for _, k := range keys {
			data = append(data, seen[k].Map())
		}
		return struct {
			Status string              `json:"status"`
			Data   []map[string]string `json:"data"`
		}{"success", data}, nil
	})
}

// IndexStats handles /loki/api/v1/index/stats.
func (a *API) IndexStats(w http.ResponseWriter, r *http.Request) {
	a.query("index_stats", w, r, func(st Store) (any, error) {
		sel, err := logql.ParseLogSelector(r.Form.Get("query"))
		if err != nil {
			return nil, err
		}
		start, end, err := a.timeRange(r)
		if err != nil {
			return nil, err
		}
		q, err := st.Querier(start.UnixNano(), end.UnixNano()+1)
		if err != nil {
			return nil, err
		}
		defer q.Close()
		ctx, cancel := a.queryContext(r)
		defer cancel()
		ss := q.Select(ctx, logstore.SelectHints{Start: start.UnixNano(), End: end.UnixNano() + 1}, sel.Matchers...)
		var out struct {
			Streams int   `json:"streams"`
			Chunks  int   `json:"chunks"`
			Entries int   `json:"entries"`
			Bytes   int64 `json:"bytes"`
		}
		for ss.Next() {
			c, e, b := ss.At().ChunkStats()
			out.Streams++
			out.Chunks += c
			out.Entries += e
			out.Bytes += b
		}
		return out, ss.Err()
	})
}

// IndexVolume handles /loki/api/v1/index/volume: bytes per group of the
// labels named in the selector (or targetLabels), biggest first.
func (a *API) IndexVolume(w http.ResponseWriter, r *http.Request) {
	a.query("index_volume", w, r, func(st Store) (any, error) { return a.volume(st, r, false) })
}

// IndexVolumeRange handles /loki/api/v1/index/volume_range: the same per
// step. A chunk's bytes are spread evenly over its time span.
func (a *API) IndexVolumeRange(w http.ResponseWriter, r *http.Request) {
	a.query("index_volume_range", w, r, func(st Store) (any, error) { return a.volume(st, r, true) })
}

func (a *API) volume(st Store, r *http.Request, ranged bool) (any, error) {
	sel, err := logql.ParseLogSelector(r.Form.Get("query"))
	if err != nil {
		return nil, err
	}
	start, end, err := a.timeRange(r)
	if err != nil {
		return nil, err
	}
	limit := 100
	if s := r.Form.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit <= 0 {
			return nil, badf("limit must be a positive integer")
		}
	}
	step := end.Sub(start)
	var steps []int64
	if ranged {
		step = defaultStep(start, end)
		if s := r.Form.Get("step"); s != "" {
			if step, err = parseStep(s); err != nil {
				return nil, err
			}
			if step <= 0 {
				return nil, badf("zero or negative query resolution step widths are not accepted. Try a positive integer")
			}
		}
		// Refused before anything is evaluated or allocated, as Loki does
		// for every range query (log queries included).
		if logql.Points(start, end, step) > logql.MaxPoints {
			return nil, badf("exceeded maximum resolution of 11,000 points per timeseries. Try increasing the value of the step parameter")
		}
		for t := start; !t.After(end); t = t.Add(step) {
			steps = append(steps, t.UnixNano())
		}
		if len(steps) > 11000 {
			return nil, badf("exceeded maximum resolution of 11,000 points per timeseries. Try increasing the value of the step parameter")
		}
	} else {
		steps = []int64{end.UnixNano()}
	}
	var by []string
	if t := r.Form.Get("targetLabels"); t != "" {
		by = strings.Split(t, ",")
	} else {
		for _, m := range sel.Matchers {
			if !slices.Contains(by, m.Name) {
				by = append(by, m.Name)
			}
		}
	}
	byLabels := false
	switch r.Form.Get("aggregateBy") {
	case "", "series":
	case "labels":
		byLabels = true
	default:
		return nil, badf("invalid aggregateBy %q: want series or labels", r.Form.Get("aggregateBy"))
	}
	lo := start.UnixNano()
	if ranged {
		lo -= int64(step)
	}
	q, err := st.Querier(lo, end.UnixNano()+1)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	ctx, cancel := a.queryContext(r)
	defer cancel()
	ss := q.Select(ctx, logstore.SelectHints{Start: lo, End: end.UnixNano() + 1}, sel.Matchers...)
	groups := map[string]*volumeGroup{}
	for ss.Next() {
		s := ss.At()
		// series: one group per combination of the target labels' values;
		// labels: one group per target label name (value ""), as Loki does.
		var keys []labels.Labels
		if byLabels {
			for _, n := range by {
				if s.Labels.Has(n) {
					keys = append(keys, labels.FromStrings(n, ""))
				}
			}
		} else {
			keys = []labels.Labels{labels.NewBuilder(s.Labels).Keep(by...).Labels()}
		}
		for _, key := range keys {
			g := groups[key.String()]
			if g == nil {
				g = &volumeGroup{lbls: key, vals: make([]float64, len(steps))}
				groups[key.String()] = g
			}
			addVolume(g.vals, &g.total, s.ChunkMetas(), steps, int64(step), ranged, lo)
		}
	}
	if err := ss.Err(); err != nil {
		return nil, err
	}
	return volumeResult(groups, limit, steps, end, ranged)
}

// addVolume spreads each chunk's bytes evenly over its time span and adds
// the part in each step's window (t-step, t].
func addVolume(vals []float64, total *float64, chunks []logstore.ChunkMeta, steps []int64, step int64, ranged bool, lo int64) {
	for _, c := range chunks {
		span := float64(c.MaxTime - c.MinTime + 1)
		for i, t := range steps {
			wlo, whi := t-step, t
			if !ranged {
				wlo = lo - 1
			}
			ol := min(whi, c.MaxTime) - max(wlo+1, c.MinTime) + 1
			if ol <= 0 {
				continue
			}
			v := float64(c.RawBytes) * float64(ol) / span
			vals[i] += v
			*total += v
		}
	}
}

type volumeGroup struct {
	lbls  labels.Labels
	total float64
	vals  []float64 // per step
}

func volumeResult(groups map[string]*volumeGroup, limit int, steps []int64, end time.Time, ranged bool) (any, error) {
	list := make([]*volumeGroup, 0, len(groups))
	for _, g := range groups {
		if g.total > 0 {
			list = append(list, g)
		}
	}
	slices.SortFunc(list, func(a, b *volumeGroup) int {
		if a.total != b.total {
			if a.total > b.total {
				return -1
			}
			return 1
		}
		return labels.Compare(a.lbls, b.lbls)
	})
	if len(list) > limit {
		list = list[:limit]
	}
	if !ranged {
		vec := make(logql.Vector, 0, len(list))
		for _, g := range list {
			vec = append(vec, logql.Sample{Metric: g.lbls, T: end.UnixMilli(), V: math.Round(g.vals[0])})
		}
		return encodeVolume(vec)
	}
	m := make(logql.Matrix, 0, len(list))
	for _, g := range list {
		s := logql.Series{Metric: g.lbls}
		for i, t := range steps {
			if g.vals[i] > 0 {
				s.Points = append(s.Points, logql.Point{T: t / 1e6, V: math.Round(g.vals[i])})
			}
		}
		m = append(m, s)
	}
	res, err := encodeResult(logql.Result{Value: m})
	if err != nil {
		return nil, err
	}
	qr := res.(queryResponse)
	qr.Data.Stats = nil
	return qr, nil
}

// FormatQuery handles /loki/api/v1/format_query: the query in canonical form.
func (a *API) FormatQuery(w http.ResponseWriter, r *http.Request) {
	a.observe("format_query", w, r, func() (any, error) {
		e, err := logql.ParseExpr(r.Form.Get("query"))
		if err != nil {
			return nil, err
		}
		return struct {
			Status string `json:"status"`
			Data   string `json:"data"`
		}{"success", e.String()}, nil
	})
}

// BuildInfo handles /loki/api/v1/status/buildinfo. Clients such as Grafana
// read the version to enable features; we answer as the Loki line we follow.
func (a *API) BuildInfo(w http.ResponseWriter, r *http.Request) {
	a.observe("buildinfo", w, r, func() (any, error) {
		v := a.version
		if v == "" {
			v = "3.4.2"
		}
		return map[string]string{
			"version": v, "revision": "", "branch": "", "buildUser": "nxwatcher", "buildDate": "",
			"goVersion": runtime.Version(),
		}, nil
	})
}
