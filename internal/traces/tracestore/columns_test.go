package tracestore

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/traceql"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// columnQueries are metrics queries that the columns suffice for.
var columnQueries = []string{
	`{} | rate() by (resource.service.name)`,
	`{ status = error } | rate()`,
	`{} | quantile_over_time(duration, .5, .9) by (name)`,
	`{} | histogram_over_time(duration)`,
	`{ resource.service.name = "payment" } | count_over_time()`,
	`{ duration > 2ms && kind = server } | count_over_time() by (resource.service.name, status)`,
	`{ status != ok || name =~ "GET.*" } | max_over_time(duration) by (kind)`,
	`{ true } | avg_over_time(duration)`,
	`{ !(kind = client) } | sum_over_time(duration) by (resource.service.name) | topk(2)`,
	`{ resource.service.name != "frontend" } | min_over_time(duration) by (name)`,
	// attribute columns (format 8)
	`{ resource.service.name = "payment" } | count_over_time() by (span.http.status_code)`,
	`{ span.http.method = "GET" && span.cache.hit = true } | rate() by (resource.deployment.environment)`,
	`{ .http.status_code >= 404 } | count_over_time() by (span.queue.ratio, .k8s.namespace.name)`,
	`{ span.http.url =~ ".*/1.*" } | count_over_time() by (span.nope)`,
	`{ span.odd != nil } | max_over_time(duration) by (span.odd)`,
}

type metricsAnswer struct {
	Series []traceql.MetricsSeries
	Stats  SearchStats
	Spans  int64
}

// columnTraces and decodedTraces count, over a test, the traces that a
// column search read from columns and those it decoded.
var columnTraces, decodedTraces int

// runMetrics evaluates q over [start, end) as the metrics API does, with
// or without the columns.
func runMetrics(t *testing.T, db *DB, q string, start, end time.Time, step time.Duration, columns bool) metricsAnswer {
	t.Helper()
	query, err := traceql.Parse(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if columns && !query.ColumnsSuffice() {
		t.Fatalf("%s: columns do not suffice", q)
	}
	ev, err := query.NewMetricsEvaluator(traceql.MetricsRequest{Start: start.UnixNano(), End: end.UnixNano(),
		Step: int64(step), Exemplars: 50})
	if err != nil {
		t.Fatal(err)
	}
	req := SearchRequest{Start: start, End: end, Project: &Projection{DropNames: false,
		ResourceAttrs: map[string]bool{"service.name": true}}}
	var buf []traceql.ColumnSpan
	var vals []traceql.ColumnValue
	if columns {
		req.ColumnAttrs = query.ColumnAttrs()
		req.Spans = func(id TraceID, spans []ColumnSpan, attrs []ColumnValue, spanID func(int) (pcommon.SpanID, error)) (bool, error) {
			columnTraces++
			buf, vals = buf[:0], vals[:0]
			for _, s := range spans {
				buf = append(buf, traceql.ColumnSpan(s))
			}
			for _, a := range attrs {
				vals = append(vals, traceql.ColumnValue(a))
			}
			return true, ev.ObserveColumns(pcommon.TraceID(id), buf, vals, spanID)
		}
	}
	req.Project = nil // whole traces: the attributes the queries read vary
	st, err := db.Search(t.Context(), req, func(_ TraceID, td ptrace.Traces) (bool, error) {
		if columns {
			decodedTraces++
		}
		return true, ev.Observe(traceql.NewTraceFor(query, td))
	})
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return metricsAnswer{Series: ev.Series(), Stats: st, Spans: ev.Spans}
}

// TestColumnsMetricsSameAnswer: metrics read from the block columns answer
// exactly as metrics over decoded traces (series, values, exemplars,
// statistics), with traces split over blocks and the head, traces the
// columns cannot represent (a non-string service.name), several column
// groups per block, on cut blocks and after compaction.
func TestColumnsMetricsSameAnswer(t *testing.T) {
	old, oldDict := chunkTraces, maxAttrDict
	chunkTraces = 16 // many column groups, a short last one
	maxAttrDict = 40 // http.url gets no column in most groups
	t.Cleanup(func() { chunkTraces, maxAttrDict = old, oldDict })
	db, _ := openTest(t, t.TempDir(), nil)
	defer db.Close()
	g := storetest.NewGen(5, testBase.UnixNano())
	var split []pcommon.TraceID
	for round := 0; round < 3; round++ {
		// Later parts of traces cut in the previous round: those traces
		// span two blocks (round 1) or a block and the head (round 2).
		for _, id := range split {
			td := ptrace.NewTraces()
			g.AppendTrace(td, id, 2, pcommon.SpanID{})
			if err := db.ConsumeTraces(t.Context(), td); err != nil {
				t.Fatal(err)
			}
		}
		split = split[:0]
		for i := 0; i < 70; i++ {
			id, td := g.Trace(1 + i%8)
			if i%10 == 3 {
				// A non-string service.name: not representable in columns.
				td.ResourceSpans().At(0).Resource().Attributes().PutInt("service.name", 7)
			}
			// span.odd: every kind of value, one (a slice) that attribute
			// columns do not hold.
			switch sp := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes(); i % 6 {
			case 1:
				sp.PutInt("odd", int64(i%3))
			case 2:
				sp.PutStr("odd", "2")
			case 3:
				sp.PutEmpty("odd")
			case 4:
				sp.PutEmptySlice("odd").AppendEmpty().SetStr("x")
			case 5:
				sp.PutDouble("odd", 2)
			}
			if i%10 == 5 && round < 2 {
				split = append(split, id)
			}
			if err := db.ConsumeTraces(t.Context(), td); err != nil {
				t.Fatal(err)
			}
		}
		if round < 2 {
			if err := db.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	start, end := testBase.Add(-time.Second), testBase.Add(2*time.Second)
	check := func(stage string) {
		t.Helper()
		base := -1
		for _, q := range columnQueries {
			want := runMetrics(t, db, q, start, end, 40*time.Millisecond, false)
			d0 := decodedTraces
			got := runMetrics(t, db, q, start, end, 40*time.Millisecond, true)
			// Attribute columns serve as many traces as the span columns
			// (base: head, split, irregular), but for the traces with a
			// span.odd slice (1 in 6) and the groups where http.url and
			// queue.ratio have more values than maxAttrDict.
			d := decodedTraces - d0
			if base < 0 {
				base = d
			}
			if many := strings.Contains(q, "http.url") || strings.Contains(q, "queue.ratio"); many != (d > base+40) ||
				(!strings.Contains(q, "odd") && !many && d != base) {
				t.Errorf("%s: %s: %d traces decoded, %d without attribute columns", stage, q, d, base)
			}
			if want.Spans == 0 {
				t.Fatalf("%s: %s: no spans counted", stage, q)
			}
			if g, w := fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", want); g != w {
				t.Errorf("%s: %s:\ncolumns %.600s\ndecoded %.600s", stage, q, g, w)
			}
		}
	}
	columnTraces, decodedTraces = 0, 0
	check("cut blocks and head")
	// 210 traces per query: 21 with an int service.name, 7 split over two
	// blocks, 7 split between a block and the head, 70 in the head.
	if columnTraces == 0 || decodedTraces == 0 {
		t.Fatalf("columns read %d traces and decoded %d: both paths must be exercised", columnTraces, decodedTraces)
	}
	t.Logf("per query: %d traces from columns, %d decoded", columnTraces/len(columnQueries), decodedTraces/len(columnQueries))
	if err := db.compact(t.Context()); err != nil {
		t.Fatal(err)
	}
	check("compacted")
}

// TestColumnsLimitsAndStop: a column search honours the limits and an
// early stop exactly as a decoding search does.
func TestColumnsLimitsAndStop(t *testing.T) {
	db, _ := openTest(t, t.TempDir(), nil)
	defer db.Close()
	g := storetest.NewGen(9, testBase.UnixNano())
	for i := 0; i < 100; i++ {
		_, td := g.Trace(2 + i%4)
		if err := db.ConsumeTraces(t.Context(), td); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, lim := range []SearchLimits{{MaxTraces: 17}, {MaxBytes: 5000}, {MaxTraceBytes: 1500}} {
		var dec, col []TraceID
		stDec, err := db.Search(t.Context(), SearchRequest{Limits: lim}, func(id TraceID, _ ptrace.Traces) (bool, error) {
			dec = append(dec, id)
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		stCol, err := db.Search(t.Context(), SearchRequest{Limits: lim,
			Spans: func(id TraceID, _ []ColumnSpan, _ []ColumnValue, _ func(int) (pcommon.SpanID, error)) (bool, error) {
				col = append(col, id)
				return true, nil
			}}, func(id TraceID, _ ptrace.Traces) (bool, error) {
			t.Fatalf("trace %x decoded", id)
			return false, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(dec, col) || !reflect.DeepEqual(stDec, stCol) {
			t.Errorf("limits %+v: decoded %d traces %+v, columns %d traces %+v", lim, len(dec), stDec, len(col), stCol)
		}
	}
	n := 0
	st, err := db.Search(t.Context(), SearchRequest{
		Spans: func(TraceID, []ColumnSpan, []ColumnValue, func(int) (pcommon.SpanID, error)) (bool, error) {
			n++
			return n < 5, nil
		}}, func(TraceID, ptrace.Traces) (bool, error) { return true, nil })
	if err != nil || n != 5 || st.CompletedJobs == st.TotalJobs {
		t.Fatalf("early stop: %d traces, %+v, %v", n, st, err)
	}
}

// TestReadsOlderBlocks: blocks written by format versions 2 to 8 (checked
// in under testdata: v2store by the code of commit d5221d0, v3store by
// 51e60b4, v4store by 5bc8943, v5store by a8b7ea7, v6store by ab498c8,
// v7store by 15d247f, v8store by 0ab77d0, v9store by 72bd5b8, v10store by
// 1e16db4 (TestWriteFixture; a level-0 block, zstd frames), v11store by 54a4d61 (a level-0 block,
// s2 pages, records not stripped), v12store by 20daa34 (a level-0 block, s2
// pages, stripped records) and v12compacted by 20daa34 (TestWriteFixture
// with a cut after 20 traces and a compaction: a level-1 block, zstd pages,
// stripped records); 40 storetest traces, seed 11,
// from 2025-11-30T00:00:00Z) open, answer by ID, tag values and metrics
// (version 2 by decoding: it has no columns), and compact into a block of
// the current version that gives the same answers, keeping the old block's
// pages when they are zstd frames of format 10 or later (ADR 0125).
func TestReadsOlderBlocks(t *testing.T) {
	for _, c := range []struct {
		dir     string
		version int
	}{{"testdata/v2store", 2}, {"testdata/v3store", 3}, {"testdata/v4store", 4}, {"testdata/v5store", 5}, {"testdata/v6store", 6},
		{"testdata/v7store", 7}, {"testdata/v8store", 8}, {"testdata/v9store", 9}, {"testdata/v10store", 10}, {"testdata/v11store", 11},
		{"testdata/v12store", 12}, {"testdata/v12compacted", 12}} {
		t.Run(filepath.Base(c.dir), func(t *testing.T) { testReadsOlderBlock(t, c.dir, c.version) })
	}
}

func testReadsOlderBlock(t *testing.T, src string, version int) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	base := time.Unix(1764460800, 0)
	db, _ := openTest(t, dir, func(o *Options) { o.Now = func() time.Time { return base.Add(time.Hour) } })
	defer db.Close()
	g := storetest.NewGen(11, base.UnixNano())
	want := sent{}
	for i := 0; i < 40; i++ {
		id, td := g.Trace(1 + i%7)
		want.add(id, td)
	}
	db.mu.RLock()
	blocks := slices.Clone(db.blocks)
	db.mu.RUnlock()
	if len(blocks) != 1 || blocks[0].meta.Version != version || (blocks[0].cols != nil) != (version >= 3) {
		t.Fatalf("want one version %d block, got %d blocks", version, len(blocks))
	}
	checkAll(t, db, want)
	if tags, err := db.TagValues(t.Context(), "resource.service.name", time.Time{}, time.Time{}, 0); err != nil || len(tags) != 5 {
		t.Fatalf("tag values: %v, %v", tags, err)
	}
	start, end := base, base.Add(time.Second)
	var before []metricsAnswer
	for _, q := range columnQueries {
		a := runMetrics(t, db, q, start, end, 50*time.Millisecond, true)
		if fmt.Sprintf("%+v", a) != fmt.Sprintf("%+v", runMetrics(t, db, q, start, end, 50*time.Millisecond, false)) {
			t.Fatalf("%s: version %d block answers differently with Spans set", q, version)
		}
		before = append(before, a)
	}
	old := blocks[0]
	keepable := version >= 10 && old.meta.PageCodec == ""
	oldPage := make([]byte, old.pages[0].clen)
	if _, err := old.data.ReadAt(oldPage, int64(old.pages[0].off)); err != nil {
		t.Fatal(err)
	}
	// Compaction needs two blocks or an old format; add a second block.
	id, td := storetest.NewGen(12, base.Add(2*time.Second).UnixNano()).Trace(3)
	want.add(id, td)
	if err := db.ConsumeTraces(t.Context(), td); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.compact(t.Context()); err != nil {
		t.Fatal(err)
	}
	db.mu.RLock()
	blocks = slices.Clone(db.blocks)
	db.mu.RUnlock()
	if len(blocks) != 1 || blocks[0].meta.Version != formatVersion || blocks[0].cols == nil || blocks[0].pdir == nil {
		t.Fatalf("after compaction: %d blocks", len(blocks))
	}
	if _, err := os.Stat(filepath.Join(blocks[0].dir, columnsFile)); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(blocks[0].dir, dataFile))
	if err != nil {
		t.Fatal(err)
	}
	if kept := bytes.Contains(data, oldPage); kept != keepable {
		t.Fatalf("version %d block's first page kept: %v, want %v", version, kept, keepable)
	}
	checkAll(t, db, want)
	for i, q := range columnQueries {
		if a := runMetrics(t, db, q, start, end, 50*time.Millisecond, true); fmt.Sprintf("%+v", a.Series) != fmt.Sprintf("%+v", before[i].Series) {
			t.Errorf("%s: compacted block answers\n%.600v\nwant %.600v", q, a.Series, before[i].Series)
		}
	}
}

// TestPostingsReadPerQuery: a version 4 block keeps no postings in memory
// after open; a search reads the frames of the keys its conditions name,
// through a cache that stays within its byte bound, and answers as before.
func TestPostingsReadPerQuery(t *testing.T) {
	dir := t.TempDir()
	db, _ := openTest(t, dir, nil)
	g := storetest.NewGen(21, testBase.UnixNano())
	for round := 0; round < 3; round++ {
		for i := 0; i < 80; i++ {
			_, td := g.Trace(1 + i%6)
			if err := db.ConsumeTraces(t.Context(), td); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, _ = openTest(t, dir, nil)
	defer db.Close()
	db.pcache = newPostingsCache(3000) // smaller than all frames of one key together
	db.mu.RLock()
	blocks := slices.Clone(db.blocks)
	db.mu.RUnlock()
	for _, b := range blocks {
		b.cache = db.pcache
		if b.postings != nil || b.pdir == nil || b.mm == nil {
			t.Fatalf("block %s: postings resident after open", b.meta.ULID)
		}
	}
	count := func() int {
		n := 0
		_, err := db.Search(t.Context(), SearchRequest{Conds: []Cond{{Keys: []string{"resource.service.name"}, Values: []string{"spayment"}}}},
			func(_ TraceID, td ptrace.Traces) (bool, error) {
				n++
				return true, nil
			})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	first := count()
	if first == 0 || first == 240 {
		t.Fatalf("%d candidates of 240 traces: postings did not prune", first)
	}
	db.pcache.mu.Lock()
	for k := range db.pcache.items {
		if k.key != "resource.service.name" {
			t.Errorf("cache holds postings of %q, not named by the query", k.key)
		}
	}
	if db.pcache.size > db.pcache.max || len(db.pcache.items) == 0 {
		t.Errorf("cache: %d bytes in %d items, bound %d", db.pcache.size, len(db.pcache.items), db.pcache.max)
	}
	db.pcache.mu.Unlock()
	if again := count(); again != first {
		t.Fatalf("second search (cached postings) found %d, first %d", again, first)
	}
	tags, err := db.TagValues(t.Context(), "resource.service.name", time.Time{}, time.Time{}, 0)
	if err != nil || len(tags) != 5 {
		t.Fatalf("tag values: %v, %v", tags, err)
	}
}

// TestBloom3FalsePositives: the blocked bloom filter keeps its ~0.1 %
// false-positive rate (16 bits per trace) on trace IDs whose raw bits are not uniform
// (storetest, like some SDKs, sets the lowest bit of the first byte; with
// an even block count the unmixed hash of layouts 3 and 4 used half the
// blocks and answered "maybe" for ~13 % of absent IDs).
func TestBloom3FalsePositives(t *testing.T) {
	g := storetest.NewGen(3, testBase.UnixNano())
	ids := make([]TraceID, 40000) // an even number of blocks
	for i := range ids {
		ids[i] = TraceID(g.TraceID())
	}
	if bloom3Blocks(len(ids))%2 != 0 {
		t.Fatal("want an even block count")
	}
	for _, mixed := range []bool{false, true} {
		bl := bloom3Bytes(ids, mixed)
		for _, id := range ids {
			if !bloom3MayContain(bl, id, mixed) {
				t.Fatalf("mixed=%v: false negative", mixed)
			}
		}
		fp := 0
		for range 40000 {
			if bloom3MayContain(bl, TraceID(g.TraceID()), mixed) {
				fp++
			}
		}
		rate := float64(fp) / 40000
		t.Logf("mixed=%v: %.2f %% false positives", mixed, 100*rate)
		if mixed && rate > 0.005 {
			t.Errorf("mixed hash: %.2f %% false positives, want about 0.1 %%", 100*rate)
		}
	}
}

// TestColumnSectionLargeClaim decodes a section that declares more than
// trustedFrameSize as a stream: whole, it decodes byte for byte; cut
// short, it is an error without allocating what its header claims.
func TestColumnSectionLargeClaim(t *testing.T) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	want := make([]byte, trustedFrameSize+1<<20)
	for i := range want {
		want[i] = byte(i / 4096)
	}
	frame := enc.EncodeAll(want, nil)
	got, err := decodeFrames(dec, frame, []byte("prefix"))
	if err != nil || string(got[:6]) != "prefix" || !bytes.Equal(got[6:], want) {
		t.Fatalf("whole section: %d bytes, %v", len(got), err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := decodeFrames(dec, frame[:len(frame)/8], nil); err == nil {
		t.Fatal("a section cut short decoded")
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > trustedFrameSize {
		t.Fatalf("a section cut short allocated %d bytes", grew)
	}
}
