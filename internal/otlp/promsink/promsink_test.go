package promsink

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/goleak"

	"github.com/nx-watcher/nxwatcher/internal/otlp"
	"github.com/nx-watcher/nxwatcher/internal/testclock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openDB(t testing.TB) *tsdb.DB {
	t.Helper()
	opts := tsdb.DefaultOptions()
	opts.OutOfOrderTimeWindow = 0
	db, err := tsdb.Open(t.TempDir(), slog.New(slog.DiscardHandler), prometheus.NewRegistry(), opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func newSink(t *testing.T, db *tsdb.DB) *Sink {
	t.Helper()
	s, err := New(Options{Now: testclock.Now}, Deps{Appendable: db, Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// query runs an instant PromQL query and renders each series as
// `{labels} value`, sorted, so tests compare whole results.
func query(t *testing.T, db *tsdb.DB, q string, at time.Time) []string {
	t.Helper()
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	qry, err := eng.NewInstantQuery(t.Context(), db, nil, q, at)
	if err != nil {
		t.Fatalf("parse %s: %v", q, err)
	}
	defer qry.Close()
	res := qry.Exec(t.Context())
	if res.Err != nil {
		t.Fatalf("query %s: %v", q, res.Err)
	}
	vec, err := res.Vector()
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	var out []string
	for _, s := range vec {
		out = append(out, s.Metric.String()+" "+strconv.FormatFloat(s.F, 'g', -1, 64))
	}
	sort.Strings(out)
	return out
}

func metricsBatch(ts time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "checkout")
	rm.Resource().Attributes().PutStr("service.namespace", "shop")
	rm.Resource().Attributes().PutStr("service.instance.id", "pod-1")
	rm.Resource().Attributes().PutStr("k8s.cluster.name", "bana")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()

	orders := ms.AppendEmpty()
	orders.SetName("orders")
	orders.SetUnit("{order}")
	sum := orders.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	for shop, v := range map[string]int64{"a": 3, "b": 4} {
		dp := sum.DataPoints().AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
		dp.SetIntValue(v)
		dp.Attributes().PutStr("shop.id", shop)
	}

	temp := ms.AppendEmpty()
	temp.SetName("room.temperature")
	temp.SetUnit("Cel")
	g := temp.SetEmptyGauge().DataPoints().AppendEmpty()
	g.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	g.SetDoubleValue(21.5)

	lat := ms.AppendEmpty()
	lat.SetName("http.server.request.duration")
	lat.SetUnit("s")
	h := lat.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hp := h.DataPoints().AppendEmpty()
	hp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	hp.ExplicitBounds().FromRaw([]float64{0.1, 1})
	hp.BucketCounts().FromRaw([]uint64{2, 3, 1})
	hp.SetCount(6)
	hp.SetSum(4.2)
	return md
}

func TestTranslationAsPrometheusInPromQL(t *testing.T) {
	db := openDB(t)
	s := newSink(t, db)
	ts := testclock.Now().Add(-time.Minute).Truncate(time.Millisecond)
	if err := s.ConsumeMetrics(t.Context(), metricsBatch(ts)); err != nil {
		t.Fatal(err)
	}
	at := ts.Add(time.Second)
	for q, want := range map[string][]string{
		`orders_total`: {
			`{__name__="orders_total", instance="pod-1", job="shop/checkout", shop_id="a"} 3`,
			`{__name__="orders_total", instance="pod-1", job="shop/checkout", shop_id="b"} 4`,
		},
		`room_temperature_celsius`: {`{__name__="room_temperature_celsius", instance="pod-1", job="shop/checkout"} 21.5`},
		`http_server_request_duration_seconds_bucket`: {
			`{__name__="http_server_request_duration_seconds_bucket", instance="pod-1", job="shop/checkout", le="+Inf"} 6`,
			`{__name__="http_server_request_duration_seconds_bucket", instance="pod-1", job="shop/checkout", le="0.1"} 2`,
			`{__name__="http_server_request_duration_seconds_bucket", instance="pod-1", job="shop/checkout", le="1"} 5`,
		},
		`http_server_request_duration_seconds_sum`:   {`{__name__="http_server_request_duration_seconds_sum", instance="pod-1", job="shop/checkout"} 4.2`},
		`http_server_request_duration_seconds_count`: {`{__name__="http_server_request_duration_seconds_count", instance="pod-1", job="shop/checkout"} 6`},
		`target_info`: {`{__name__="target_info", instance="pod-1", job="shop/checkout", k8s_cluster_name="bana"} 1`},
	} {
		got := query(t, db, q, at)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s:\n got %q\nwant %q", q, got, want)
		}
	}
	if got := testutil.ToFloat64(s.samples); got != 2+1+5+1 {
		t.Errorf("appended samples = %v, want 9 (2 sums, 1 gauge, 3 buckets + sum + count, target_info)", got)
	}
}

func TestOutOfOrderIsInvalidInputAndRolledBack(t *testing.T) {
	db := openDB(t)
	s := newSink(t, db)
	ts := testclock.Now().Add(-time.Minute).Truncate(time.Millisecond)
	if err := s.ConsumeMetrics(t.Context(), metricsBatch(ts)); err != nil {
		t.Fatal(err)
	}
	old := metricsBatch(ts.Add(-30 * time.Second))
	err := s.ConsumeMetrics(t.Context(), old)
	if !errors.Is(err, otlp.ErrInvalidInput) {
		t.Fatalf("out-of-order batch: %v, want ErrInvalidInput", err)
	}
	if got := testutil.ToFloat64(s.failed.WithLabelValues("invalid")); got != 1 {
		t.Errorf("failed{invalid} = %v", got)
	}
	// The good batch is intact: the rejected one added nothing.
	if got := query(t, db, `count_over_time(orders_total[5m])`, ts.Add(time.Second)); len(got) != 2 || !strings.HasSuffix(got[0], " 1") {
		t.Errorf("samples per series after refused batch: %q, want one each", got)
	}

	future := metricsBatch(testclock.Now().Add(time.Hour))
	if err := s.ConsumeMetrics(t.Context(), future); !errors.Is(err, otlp.ErrInvalidInput) || !strings.Contains(err.Error(), "future") {
		t.Fatalf("future batch: %v, want ErrInvalidInput about the future", err)
	}
}

// TestPartlyRefusedBatchStoresTheRest: data points the storage refuses are
// left out and counted exactly (a classic histogram point is one point,
// though it is several samples); everything else is committed, and the
// answer is a partial success rather than a 400 that would drop it all.
func TestPartlyRefusedBatchStoresTheRest(t *testing.T) {
	db := openDB(t)
	s := newSink(t, db)
	ts := testclock.Now().Add(-time.Minute).Truncate(time.Millisecond)
	if err := s.ConsumeMetrics(t.Context(), metricsBatch(ts)); err != nil {
		t.Fatal(err)
	}
	// Next batch 10s later, but shop "a" and the histogram carry the old
	// timestamp minus 30s: out of order, 2 data points.
	next := metricsBatch(ts.Add(10 * time.Second))
	ms := next.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	stale := pcommon.NewTimestampFromTime(ts.Add(-30 * time.Second))
	dps := ms.At(0).Sum().DataPoints()
	for i := 0; i < dps.Len(); i++ {
		if v, _ := dps.At(i).Attributes().Get("shop.id"); v.Str() == "a" {
			dps.At(i).SetTimestamp(stale)
		}
		dps.At(i).SetIntValue(dps.At(i).IntValue() + 10)
	}
	ms.At(2).Histogram().DataPoints().At(0).SetTimestamp(stale)
	err := s.ConsumeMetrics(t.Context(), next)
	var ps *otlp.PartialSuccessError
	if !errors.As(err, &ps) || ps.Rejected != 2 || !strings.Contains(ps.Reason, "out of order") {
		t.Fatalf("err = %v, want a partial success of exactly 2 data points, out of order", err)
	}
	at := ts.Add(11 * time.Second)
	if got := query(t, db, `orders_total`, at); len(got) != 2 || !strings.HasSuffix(got[0], " 3") || !strings.HasSuffix(got[1], " 14") {
		t.Fatalf("orders_total = %q: want shop a unchanged (3), shop b stored (14)", got)
	}
	if got := query(t, db, `count_over_time(room_temperature_celsius[1m])`, at); len(got) != 1 || !strings.HasSuffix(got[0], " 2") {
		t.Fatalf("gauge samples = %q, want both batches' points", got)
	}
	if got := testutil.ToFloat64(s.rejectedPoints); got != 2 {
		t.Fatalf("rejected data points = %v", got)
	}

	// A delta sum the translator refuses (delta ingestion off) next to a good
	// gauge: the sum's points are refused, the gauge stored.
	delta := metricsBatch(ts.Add(20 * time.Second))
	dms := delta.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	dms.At(0).Sum().SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	err = s.ConsumeMetrics(t.Context(), delta)
	if !errors.As(err, &ps) || ps.Rejected != 2 {
		t.Fatalf("delta batch: err = %v, want a partial success of the 2 delta points", err)
	}
	if got := query(t, db, `count_over_time(room_temperature_celsius[1m])`, ts.Add(21*time.Second)); len(got) != 1 || !strings.HasSuffix(got[0], " 3") {
		t.Fatalf("gauge samples after delta batch = %q, want 3", got)
	}
}

// countingAppendable counts Append calls through it.
type countingAppendable struct {
	storage.AppendableV2
	n *atomic.Int64
}

func (c countingAppendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return countingAppender{c.AppendableV2.AppenderV2(ctx), c.n}
}

type countingAppender struct {
	storage.AppenderV2
	n *atomic.Int64
}

func (c countingAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	c.n.Add(1)
	return c.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
}

// TestTargetInfoOverAHugeRangeIsBounded: a batch whose points span 1970 to
// now makes the translator fill target_info every 2.5 minutes across that
// range; the refused first sample must end it (found by FuzzConsumeMetrics:
// millions of appends and a map of as many keys for one small request).
// Since ADR 0106 the 1970 point is refused before translation, so the walk
// does not start there; TestOldPointOnEmptyHeadIsRefusedBeforeTranslation
// covers the empty head, where no refused sample ended it.
func TestTargetInfoOverAHugeRangeIsBounded(t *testing.T) {
	db := openDB(t)
	var n atomic.Int64
	s, err := New(Options{Now: testclock.Now}, Deps{Appendable: countingAppendable{db, &n}, Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	md := metricsBatch(testclock.Now().Add(-time.Minute))
	g := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(1).Gauge().DataPoints().AppendEmpty()
	g.SetTimestamp(1) // 1970
	g.SetDoubleValue(1)
	err = s.ConsumeMetrics(t.Context(), md)
	var ps *otlp.PartialSuccessError
	if !errors.As(err, &ps) || ps.Rejected != 1 {
		t.Fatalf("err = %v, want a partial success refusing the 1970 point", err)
	}
	if got := n.Load(); got > 100 {
		t.Fatalf("%d appends for a 5-point batch: target_info walked the time range", got)
	}
}

// errTooManyAppends ends a test appender's run once it took more appends
// than a bounded request can need.
var errTooManyAppends = errors.New("test appender: too many appends")

// boundedAppendable counts Append calls and fails every one past max, so a
// request that walks a huge time range fails at once instead of running for
// seconds.
type boundedAppendable struct {
	storage.AppendableV2
	n   *atomic.Int64
	max int64
}

func (c boundedAppendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return boundedAppender{c.AppendableV2.AppenderV2(ctx), c.n, c.max}
}

type boundedAppender struct {
	storage.AppenderV2
	n   *atomic.Int64
	max int64
}

func (c boundedAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	if c.n.Add(1) > c.max {
		return 0, errTooManyAppends
	}
	return c.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
}

// withFirstPointAt returns metricsBatch(ts) with, as its first metric, a
// gauge with one point at first: the first sample the store sees.
func withFirstPointAt(ts, first time.Time) pmetric.Metrics {
	src := metricsBatch(ts)
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	src.ResourceMetrics().At(0).Resource().CopyTo(rm.Resource())
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	boot := ms.AppendEmpty()
	boot.SetName("boot.marker")
	g := boot.SetEmptyGauge().DataPoints().AppendEmpty()
	g.SetTimestamp(pcommon.NewTimestampFromTime(first))
	g.SetDoubleValue(1)
	src.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().MoveAndAppendTo(ms)
	return md
}

// TestOldPointOnEmptyHeadIsRefusedBeforeTranslation: on an empty head the
// store takes a first sample from any time, and every later one from then
// on; a batch whose first point is from 1970 and the rest from now made the
// translator fill target_info every 2.5 minutes across 56 years (~12M
// appends, 14 s: the corpus entry target-info-1970-to-now). The old point is
// now refused before translation, counted, and named; the rest is stored,
// target_info with it.
func TestOldPointOnEmptyHeadIsRefusedBeforeTranslation(t *testing.T) {
	db := openDB(t)
	var n atomic.Int64
	reg := prometheus.NewRegistry()
	s, err := New(Options{Now: testclock.Now}, Deps{Appendable: boundedAppendable{db, &n, 1000}, Logger: slog.New(slog.DiscardHandler), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ts := testclock.Now().Add(-time.Minute).Truncate(time.Millisecond)
	md := withFirstPointAt(ts, time.Unix(0, 1))
	before := md.DataPointCount()
	err = s.ConsumeMetrics(t.Context(), md)
	var ps *otlp.PartialSuccessError
	if !errors.As(err, &ps) || ps.Rejected != 1 || !strings.Contains(ps.Reason, "in the past") {
		t.Fatalf("err = %v, want a partial success refusing the 1970 point as too old", err)
	}
	if got := n.Load(); got > 100 {
		t.Fatalf("%d appends for a 6-point batch: target_info walked the time range", got)
	}
	if md.DataPointCount() != before {
		t.Fatalf("the request changed: %d data points, had %d", md.DataPointCount(), before)
	}
	if got := testutil.ToFloat64(s.outOfWindow.WithLabelValues("past")); got != 1 {
		t.Fatalf("out-of-window{past} = %v, want 1", got)
	}
	if got := query(t, db, `target_info`, ts.Add(time.Second)); len(got) != 1 {
		t.Fatalf("target_info = %q, want the resource's one series", got)
	}
	if got := query(t, db, `orders_total`, ts.Add(time.Second)); len(got) != 2 {
		t.Fatalf("orders_total = %q, want both shops", got)
	}
}

// TestMaxAgeBoundsThePast: with MaxAge set, a point just older is refused
// (and a batch of only such points is invalid input), one just younger is
// stored; points past now+10m are refused as before, counted on their side.
func TestMaxAgeBoundsThePast(t *testing.T) {
	db := openDB(t)
	now := testclock.Now()
	s, err := New(Options{Now: func() time.Time { return now }, MaxAge: time.Hour}, Deps{Appendable: db, Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	err = s.ConsumeMetrics(t.Context(), metricsBatch(now.Add(-time.Hour-time.Second)))
	if !errors.Is(err, otlp.ErrInvalidInput) || !strings.Contains(err.Error(), "more than 1h in the past") {
		t.Fatalf("batch older than max age: %v, want invalid input naming the bound", err)
	}
	if err := s.ConsumeMetrics(t.Context(), metricsBatch(now.Add(-time.Hour+time.Second))); err != nil {
		t.Fatalf("batch younger than max age: %v", err)
	}
	md := metricsBatch(now)
	g := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(1).Gauge().DataPoints().AppendEmpty()
	g.SetTimestamp(pcommon.NewTimestampFromTime(now.Add(maxAheadTime + time.Second)))
	err = s.ConsumeMetrics(t.Context(), md)
	var ps *otlp.PartialSuccessError
	if !errors.As(err, &ps) || ps.Rejected != 1 || !strings.Contains(ps.Reason, "in the future") {
		t.Fatalf("err = %v, want a partial success refusing the future point", err)
	}
	if p, f := testutil.ToFloat64(s.outOfWindow.WithLabelValues("past")), testutil.ToFloat64(s.outOfWindow.WithLabelValues("future")); p != 4 || f != 1 {
		t.Fatalf("out-of-window past/future = %v/%v, want 4/1 (the 4 points of the old batch, the 1 future point)", p, f)
	}
	if _, err := New(Options{MaxAge: -time.Second}, Deps{Appendable: db, Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()}); err == nil {
		t.Fatal("negative max age accepted")
	}
}
