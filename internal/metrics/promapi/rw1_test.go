package promapi

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/nx-watcher/nxwatcher/internal/metrics"
)

// side is one receiver under comparison: its handler, TSDB and registry.
type side struct {
	h   http.Handler
	db  *metrics.TSDB
	reg *prometheus.Registry
}

func openTSDB(t testing.TB, reg *prometheus.Registry) *metrics.TSDB {
	t.Helper()
	cfg := metrics.DefaultConfig()
	if err := cfg.Resolve(".", promslog.NewNopLogger()); err != nil {
		t.Fatal(err)
	}
	db, err := metrics.OpenTSDB(t.TempDir(), cfg, metrics.Deps{Logger: promslog.NewNopLogger(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// ours is the served write handler: the fast 1.0 path in front of
// upstream's.
func ours(t testing.TB) (side, *rw1Handler) {
	t.Helper()
	reg := prometheus.NewRegistry()
	db := openTSDB(t, reg)
	h := newRW1Handler(promslog.NewNopLogger(), reg, db, rwMessageTypes)
	return side{h: h, db: db, reg: reg}, h
}

// upstreamSide is Prometheus's own write handler over its own TSDB.
func upstreamSide(t testing.TB) side {
	t.Helper()
	reg := prometheus.NewRegistry()
	db := openTSDB(t, reg)
	h := remote.NewWriteHandler(promslog.NewNopLogger(), reg, db, rwMessageTypes, false, false)
	return side{h: h, db: db, reg: reg}
}

type answer struct {
	code int
	body string
}

func send(h http.Handler, body []byte, hdr map[string]string) answer {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/x-protobuf")
	r.Header.Set("Content-Encoding", "snappy")
	for k, v := range hdr {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return answer{w.Code, w.Body.String()}
}

func encodeV1(t testing.TB, ts ...prompb.TimeSeries) []byte {
	t.Helper()
	raw, err := (&prompb.WriteRequest{Timeseries: ts}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, raw)
}

func series(t int64, v float64, kv ...string) prompb.TimeSeries {
	ts := prompb.TimeSeries{Samples: []prompb.Sample{{Timestamp: t, Value: v}}}
	for i := 0; i < len(kv); i += 2 {
		ts.Labels = append(ts.Labels, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return ts
}

// dump is every sample in the TSDB, one line per series.
func dump(t testing.TB, db *metrics.TSDB) string {
	t.Helper()
	q, err := db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ss := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".*"))
	var out []string
	for ss.Next() {
		var b strings.Builder
		b.WriteString(ss.At().Labels().String())
		it := ss.At().Iterator(nil)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				ts, v := it.At()
				fmt.Fprintf(&b, " %d=%g", ts, v)
			default:
				ts := it.AtT()
				fmt.Fprintf(&b, " %d=hist", ts)
			}
		}
		out = append(out, b.String())
	}
	if ss.Err() != nil {
		t.Fatal(ss.Err())
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// counters are the values of the remote-write and TSDB head counters that
// a write can move.
func counters(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]float64{}
	for _, mf := range mfs {
		n := mf.GetName()
		if !strings.HasPrefix(n, "prometheus_api_remote_write_") && !strings.HasPrefix(n, "prometheus_tsdb_head_samples_appended") &&
			!strings.HasPrefix(n, "prometheus_tsdb_out_of") && !strings.HasPrefix(n, "prometheus_tsdb_head_series") &&
			!strings.HasPrefix(n, "prometheus_tsdb_too_old") && !strings.HasPrefix(n, "prometheus_tsdb_head_out_of_order") {
			continue
		}
		for _, met := range mf.GetMetric() {
			key := n + labelKey(met)
			switch {
			case met.Counter != nil:
				m[key] = met.Counter.GetValue()
			case met.Gauge != nil:
				m[key] = met.Gauge.GetValue()
			}
		}
	}
	return m
}

func labelKey(m *dto.Metric) string {
	var parts []string
	for _, lp := range m.GetLabel() {
		parts = append(parts, lp.GetName()+"="+lp.GetValue())
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// TestFastWriteAnswersLikeUpstream sends the same sequence of remote write
// requests — good, malformed, invalid labels, out of order, duplicate,
// too far ahead, exemplars, histograms, 2.0, wrong encodings — to the
// served handler and to Prometheus's own over a second TSDB, and requires
// the same status, message, stored samples and counters after each.
func TestFastWriteAnswersLikeUpstream(t *testing.T) {
	now := time.Now().UnixMilli()
	raw := func(b []byte) []byte { return snappy.Encode(nil, b) }
	good := encodeV1(t, series(now, 1, "__name__", "up", "job", "a"), series(now, 2, "__name__", "up", "job", "b"))
	truncated, _ := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series(now, 1, "__name__", "x")}}).Marshal()
	withExemplar := series(now+10, 5, "__name__", "req_total", "job", "a")
	withExemplar.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 1, Timestamp: now + 10}}
	withHistogram := prompb.TimeSeries{
		Labels:     []prompb.Label{{Name: "__name__", Value: "lat"}},
		Histograms: []prompb.Histogram{prompb.FromIntHistogram(now, tsdbutil.GenerateTestHistogram(1))},
	}
	v2body, _ := (&writev2.Request{Symbols: []string{"", "__name__", "v2_metric"}, Timeseries: []writev2.TimeSeries{{
		LabelsRefs: []uint32{1, 2}, Samples: []writev2.Sample{{Value: 3, Timestamp: now}},
	}}}).Marshal()
	// A label with an unknown field: upstream skips the field.
	var label, sample, ts, unknownField []byte
	label = protowire.AppendTag(label, 1, protowire.BytesType)
	label = protowire.AppendString(label, "__name__")
	label = protowire.AppendTag(label, 2, protowire.BytesType)
	label = protowire.AppendString(label, "unknown_field")
	label = protowire.AppendTag(label, 7, protowire.VarintType)
	label = protowire.AppendVarint(label, 42)
	sample = protowire.AppendTag(sample, 1, protowire.Fixed64Type)
	sample = protowire.AppendFixed64(sample, math.Float64bits(4))
	sample = protowire.AppendTag(sample, 2, protowire.VarintType)
	sample = protowire.AppendVarint(sample, uint64(now))
	ts = protowire.AppendTag(ts, 1, protowire.BytesType)
	ts = protowire.AppendBytes(ts, label)
	ts = protowire.AppendTag(ts, 2, protowire.BytesType)
	ts = protowire.AppendBytes(ts, sample)
	unknownField = protowire.AppendTag(unknownField, 1, protowire.BytesType)
	unknownField = protowire.AppendBytes(unknownField, ts)
	steps := []struct {
		name string
		body []byte
		hdr  map[string]string
	}{
		{"new series", good, nil},
		{"known series, next sample", encodeV1(t, series(now+1000, 3, "__name__", "up", "job", "a"), series(now+1000, 4, "__name__", "up", "job", "b")), nil},
		{"unsorted labels", encodeV1(t, series(now, 7, "job", "c", "__name__", "up", "zone", "z")), nil},
		{"unsorted labels again", encodeV1(t, series(now+1000, 8, "zone", "z", "job", "c", "__name__", "up")), nil},
		{"no metric name", encodeV1(t, series(now, 1, "job", "nameless"), series(now, 1, "__name__", "ok_after_invalid")), nil},
		{"invalid utf-8 value", encodeV1(t, series(now, 1, "__name__", "bad", "v", "\xff\xfe")), nil},
		{"duplicate label name", encodeV1(t, series(now, 1, "__name__", "dup", "a", "1", "a", "2")), nil},
		{"empty label value", encodeV1(t, series(now, 1, "__name__", "empty_value", "gone", "", "job", "x")), nil},
		{"out of order", encodeV1(t, series(now+500, 9, "__name__", "up", "job", "a")), nil},
		{"duplicate timestamp, other value", encodeV1(t, series(now+1000, 99, "__name__", "up", "job", "a")), nil},
		{"duplicate timestamp, same value", encodeV1(t, series(now+1000, 3, "__name__", "up", "job", "a")), nil},
		{"too far ahead", encodeV1(t, series(now+int64(time.Hour/time.Millisecond), 1, "__name__", "up", "job", "a")), nil},
		{"error after appends rolls back", encodeV1(t, series(now+2000, 10, "__name__", "up", "job", "b"), series(now+100, 1, "__name__", "up", "job", "a")), nil},
		{"several samples per series", encodeV1(t, prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "multi"}}, Samples: []prompb.Sample{{Timestamp: now, Value: 1}, {Timestamp: now + 1, Value: 2}, {Timestamp: now + 2, Value: math.Inf(1)}}}), nil},
		{"series without samples", encodeV1(t, prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "nosamples"}}}), nil},
		{"exemplar", encodeV1(t, withExemplar), nil},
		{"histogram", encodeV1(t, withHistogram), nil},
		{"empty request", encodeV1(t), nil},
		{"truncated protobuf", raw(truncated[:len(truncated)-3]), nil},
		{"garbage protobuf", raw([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}), nil},
		{"unknown field in a label", raw(unknownField), nil},
		{"not snappy", []byte("definitely not snappy"), nil},
		{"unencoded body", truncated, map[string]string{"Content-Encoding": ""}},
		{"gzip encoding", good, map[string]string{"Content-Encoding": "gzip"}},
		{"text content type", good, map[string]string{"Content-Type": "text/plain"}},
		{"explicit 1.0 proto", encodeV1(t, series(now+3000, 5, "__name__", "up", "job", "a")), map[string]string{"Content-Type": "application/x-protobuf;proto=prometheus.WriteRequest"}},
		{"unknown proto", good, map[string]string{"Content-Type": "application/x-protobuf;proto=foo.Bar"}},
		{"2.0", raw(v2body), map[string]string{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"}},
	}
	a, fast := ours(t)
	b := upstreamSide(t)
	for _, st := range steps {
		got, want := send(a.h, st.body, st.hdr), send(b.h, st.body, st.hdr)
		if got != want {
			t.Errorf("%s: answered %d %q, upstream %d %q", st.name, got.code, got.body, want.code, want.body)
		}
		if g, w := dump(t, a.db), dump(t, b.db); g != w {
			t.Fatalf("%s: stored\n%s\nupstream stored\n%s", st.name, g, w)
		}
	}
	// Every 1.0 request of plain samples that decodes took the fast path
	// (the others went to upstream's handler).
	if got := fast.fast.Load(); got != 13 {
		t.Errorf("fast path answered %d requests with 204, want 13", got)
	}
	if g, w := counters(t, a.reg), counters(t, b.reg); fmt.Sprint(g) != fmt.Sprint(w) {
		t.Errorf("counters\n%v\nupstream\n%v", g, w)
	}
	if g := counters(t, a.reg)["prometheus_api_remote_write_invalid_labels_samples_total{}"]; g != 3 {
		t.Errorf("invalid-label samples counted %v, want 3 (no name, bad utf-8, duplicate name)", g)
	}
}

// TestFastWriteCache: known series are served from the cache; a cached
// reference the TSDB no longer knows falls back to the labels; an entry
// whose labels differ from the request's (a hash collision) is a miss.
func TestFastWriteCache(t *testing.T) {
	reg := prometheus.NewRegistry()
	db := openTSDB(t, reg)
	h := newRW1Handler(promslog.NewNopLogger(), reg, db, rwMessageTypes)
	now := time.Now().UnixMilli()
	a := series(now, 1, "__name__", "m", "s", "a")
	b := series(now, 2, "__name__", "m", "s", "b")
	if got := send(h, encodeV1(t, a, b), nil); got.code != http.StatusNoContent {
		t.Fatal(got)
	}
	if h.fast.Load() != 1 || h.cache.len() != 2 {
		t.Fatalf("fast requests %d, cached series %d; want 1 and 2", h.fast.Load(), h.cache.len())
	}
	hashOf := func(ts prompb.TimeSeries) uint64 {
		raw, _ := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts}}).Marshal()
		var q rw1Request
		if !q.decode(raw) {
			t.Fatal("decode")
		}
		return q.series[0].hash
	}
	ha, hb := hashOf(a), hashOf(b)
	eb, ok := h.cache.get(hb, []rw1Pair{{"__name__", "m"}, {"s", "b"}})
	if !ok {
		t.Fatal("b not cached")
	}
	// Collision: a's hash now names b's labels and reference.
	h.cache.put(ha, eb)
	a.Samples[0] = prompb.Sample{Timestamp: now + 1, Value: 10}
	if got := send(h, encodeV1(t, a), nil); got.code != http.StatusNoContent {
		t.Fatal(got)
	}
	// Stale reference: b's entry points at a series that does not exist.
	h.cache.put(hb, cacheEntry{ls: eb.ls, ref: eb.ref + 1<<40})
	b.Samples[0] = prompb.Sample{Timestamp: now + 1, Value: 20}
	if got := send(h, encodeV1(t, b), nil); got.code != http.StatusNoContent {
		t.Fatal(got)
	}
	want := fmt.Sprintf("{__name__=\"m\", s=\"a\"} %d=1 %d=10\n{__name__=\"m\", s=\"b\"} %d=2 %d=20", now, now+1, now, now+1)
	if got := dump(t, db); got != want {
		t.Fatalf("stored\n%s\nwant\n%s", got, want)
	}
	if h.fast.Load() != 3 {
		t.Fatalf("fast requests %d, want 3", h.fast.Load())
	}
}

// TestSeriesCacheRotation: entries unused for two rotations are forgotten;
// used ones stay.
func TestSeriesCacheRotation(t *testing.T) {
	now := time.Now()
	c := newSeriesCache(func() time.Time { return now })
	ls := labels.FromStrings("__name__", "x")
	pairs := []rw1Pair{{"__name__", "x"}}
	c.put(1, cacheEntry{ls: ls, ref: 1})
	c.put(2, cacheEntry{ls: ls, ref: 2})
	now = now.Add(cacheRotate)
	c.tick()
	if _, ok := c.get(1, pairs); !ok {
		t.Fatal("entry lost after one rotation")
	}
	now = now.Add(cacheRotate)
	c.tick()
	if _, ok := c.get(1, pairs); !ok {
		t.Fatal("an entry used in the last generation was forgotten")
	}
	if _, ok := c.get(2, pairs); ok {
		t.Fatal("an entry unused for two rotations is still there")
	}
}

// TestFastWriteAgentModeLikeUpstream: over the agent storage (metrics.mode:
// agent) the fast path answers and counts as Prometheus's handler does.
func TestFastWriteAgentModeLikeUpstream(t *testing.T) {
	open := func() (*metrics.Agent, *prometheus.Registry) {
		reg := prometheus.NewRegistry()
		cfg := metrics.DefaultConfig()
		cfg.Mode = metrics.ModeAgent
		if err := cfg.Resolve(".", promslog.NewNopLogger()); err != nil {
			t.Fatal(err)
		}
		ag, err := metrics.OpenAgent(t.TempDir(), cfg, metrics.Deps{Logger: promslog.NewNopLogger(), Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ag.Close() })
		return ag, reg
	}
	agA, regA := open()
	agB, regB := open()
	fast := newRW1Handler(promslog.NewNopLogger(), regA, agA, rwMessageTypes)
	up := remote.NewWriteHandler(promslog.NewNopLogger(), regB, agB, rwMessageTypes, false, false)
	now := time.Now().UnixMilli()
	for i, body := range [][]byte{
		encodeV1(t, series(now, 1, "__name__", "up", "job", "a"), series(now, 2, "__name__", "up", "job", "b")),
		encodeV1(t, series(now+1000, 1, "__name__", "up", "job", "a"), series(now+1000, 2, "__name__", "up", "job", "b")),
		encodeV1(t, series(now+500, 1, "__name__", "up", "job", "a")),
		encodeV1(t, series(now, 1, "job", "no-name")),
	} {
		if got, want := send(fast, body, nil), send(up, body, nil); got != want {
			t.Errorf("request %d: answered %d %q, upstream %d %q", i, got.code, got.body, want.code, want.body)
		}
	}
	if fast.fast.Load() < 2 {
		t.Fatalf("fast path answered %d requests", fast.fast.Load())
	}
	agentCounters := func(reg *prometheus.Registry) string {
		mfs, _ := reg.Gather()
		var out []string
		for _, mf := range mfs {
			if !strings.HasPrefix(mf.GetName(), "prometheus_agent_") && !strings.HasPrefix(mf.GetName(), "prometheus_api_remote_write") {
				continue
			}
			for _, m := range mf.GetMetric() {
				if m.Counter != nil {
					out = append(out, fmt.Sprintf("%s%s=%g", mf.GetName(), labelKey(m), m.Counter.GetValue()))
				}
			}
		}
		return strings.Join(out, "\n")
	}
	if g, w := agentCounters(regA), agentCounters(regB); g != w {
		t.Errorf("counters\n%s\nupstream\n%s", g, w)
	}
}
