package tracestore

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/nx-watcher/nxwatcher/internal/otlp"
	"github.com/nx-watcher/nxwatcher/internal/traces/generator"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// pathRig is the OTLP/HTTP receiver, a trace store and a metrics-generator
// behind a fan-out, as the app wires them, on the raw request path or
// (pdata) with consumers that only take pdata.
type pathRig struct {
	db   *DB
	gen  *generator.Generator
	recv *otlp.Receiver
	reg  *prometheus.Registry
	app  *captureAppendable
}

func newPathRig(t testing.TB, dir string, raw bool, gcfg generator.Config, mod func(*Options)) *pathRig {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts := DefaultOptions()
	if mod != nil {
		mod(&opts)
	}
	db, err := Open(dir, opts, Deps{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	app := &captureAppendable{}
	gen, err := generator.New(gcfg, generator.Deps{Appendable: app, Logger: logger, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	var store, follower otlp.TracesConsumer = db, gen
	if !raw {
		store, follower = otlp.TracesConsumerFunc(db.ConsumeTraces), otlp.TracesConsumerFunc(gen.ConsumeTraces)
	}
	fan, err := otlp.NewTracesFanout(logger, reg, otlp.TracesInvalidOn(store, ErrInvalidID, ErrTraceTooLarge), otlp.Follower{Name: "generator", Traces: follower})
	if err != nil {
		t.Fatal(err)
	}
	if raw != fan.TakesRawTraces() {
		t.Fatalf("fan-out takes raw requests: %v, want %v", fan.TakesRawTraces(), raw)
	}
	recv, err := otlp.New(otlp.DefaultConfig(), otlp.Deps{Traces: fan, Logger: logger, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return &pathRig{db: db, gen: gen, recv: recv, reg: reg, app: app}
}

// post sends body to /v1/traces and returns the status and answer.
func (r *pathRig) post(body []byte) string { return r.postAs(body, "") }

// postAs is post with the tenant's X-Scope-OrgID ("": none).
func (r *pathRig) postAs(body []byte, tenant string) string {
	req := httptest.NewRequest(http.MethodPost, otlp.PathTraces, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	w := httptest.NewRecorder()
	r.recv.HandleTraces(w, req)
	return fmt.Sprintf("%d %s %q", w.Code, w.Header().Get("Content-Type"), w.Body.Bytes())
}

// state is everything observable the rig holds: the head's traces as
// stored bytes, its tags, the metrics, the generator's series.
func (r *pathRig) state(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	ts := r.db.head.all()
	sort.Slice(ts, func(i, j int) bool { return compareIDs(ts[i].id, ts[j].id) < 0 })
	for _, tr := range ts {
		data, err := tr.data()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "trace %x: %d spans %d..%d ids %x data %x\n", tr.id, tr.spans, tr.minStart, tr.maxEnd, tr.ids.list, data)
	}
	// One line per key, so a difference names its key (the seen filter is a
	// cache with a seed per head: not compared).
	r.db.head.mu.RLock()
	var tagLines []string
	for k, vals := range r.db.head.tags.keys {
		tagLines = append(tagLines, fmt.Sprintf("tags %c %q: %v", k.scope, k.name, vals))
	}
	r.db.head.mu.RUnlock()
	sort.Strings(tagLines)
	b.WriteString(strings.Join(tagLines, "\n") + "\n")
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		name := mf.GetName()
		if strings.Contains(name, "seconds") || strings.Contains(name, "duration") {
			continue // timings
		}
		if name == "nxwatcher_otlp_raw_trace_requests_total" {
			continue // which path took the request: differs by design
		}
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	b.WriteString(r.generatorSeries(t))
	return b.String()
}

// generatorSeries is every series the generator writes, with its value.
func (r *pathRig) generatorSeries(t testing.TB) string {
	t.Helper()
	// Run with a done context writes once and returns.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.app.lines = r.app.lines[:0]
	if err := r.gen.Run(ctx); err != nil {
		t.Fatal(err)
	}
	lines := slices.Clone(r.app.lines)
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// comparePaths sends the same requests through a raw and a pdata rig and
// fails t at the first difference in an answer or in the state after it.
func comparePaths(t *testing.T, gcfg generator.Config, mod func(*Options), bodies ...[]byte) {
	t.Helper()
	pd := newPathRig(t, t.TempDir(), false, gcfg, mod)
	rw := newPathRig(t, t.TempDir(), true, gcfg, mod)
	defer pd.db.Close()
	defer rw.db.Close()
	for i, body := range bodies {
		checkWalkImpliesCutReads(t, body)
		want, got := pd.post(body), rw.post(body)
		if want != got {
			t.Fatalf("request %d: raw path answers\n%s\npdata path\n%s", i, got, want)
		}
		if want, got := pd.state(t), rw.state(t); want != got {
			t.Fatalf("request %d: state differs:\n%s", i, lineDiff(want, got))
		}
	}
}

// checkWalkImpliesCutReads: the store keeps the bytes of a request the
// receiver's walk accepted without asking cutReads (ADR 0118).
func checkWalkImpliesCutReads(t testing.TB, body []byte) {
	t.Helper()
	if _, ok := otlp.ParseRawTraces(body); ok && !cutReads(body) {
		t.Fatal("the receiver's walk accepts a request cutReads refuses")
	}
}

func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out []string
	for i := 0; i < max(len(w), len(g)) && len(out) < 20; i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			out = append(out, "pdata: "+clip(a), "raw:   "+clip(b))
		}
	}
	return strings.Join(out, "\n")
}

// rawPathRequests are requests as senders write them: bench/otlpload's
// (storetest.Gen, pdata's encoding), every field the walk reads, SDK-style
// encodings, retries and duplicates, values of every type.
func rawPathRequests(t testing.TB) map[string][][]byte {
	t.Helper()
	gen := storetest.NewGen(24, testBase.UnixNano())
	batch := ptrace.NewTraces()
	for range 20 {
		gen.AppendTrace(batch, gen.TraceID(), 5, pcommon.SpanID{})
	}
	genReq := marshalRequest(t, batch)
	_, rich := rawTestTraces(t, 62)
	// A request holding its own first span twice, and a retry of half of it.
	dupTD := ptrace.NewTraces()
	gen.AppendTrace(dupTD, gen.TraceID(), 4, pcommon.SpanID{})
	ss := dupTD.ResourceSpans().At(0).ScopeSpans().At(0)
	ss.Spans().At(0).CopyTo(ss.Spans().AppendEmpty())
	dup := marshalRequest(t, dupTD)
	half := ptrace.NewTraces()
	dupTD.CopyTo(half)
	half.ResourceSpans().At(0).ScopeSpans().At(0).Spans().RemoveIf(func(s ptrace.Span) bool { return s.SpanID()[7]%2 == 0 })
	last := half.ResourceSpans().At(0).ScopeSpans().At(0).Spans().AppendEmpty()
	last.SetName("new")
	last.SetTraceID(dupTD.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID())
	last.SetSpanID(pcommon.SpanID{0xee})
	last.SetKind(ptrace.SpanKindClient)
	last.Attributes().PutStr("peer.service", "db")
	last.Attributes().PutInt("db.system", 5)
	// Every value type on resource and span attributes (the generator's
	// complex-value fallback) and a dimension that is an int or a bool.
	typed := ptrace.NewTraces()
	rs := typed.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "typed")
	rs.Resource().Attributes().PutBool("region", true)
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{0xab, 1})
	sp.SetSpanID(pcommon.SpanID{0xab, 1})
	sp.SetKind(ptrace.SpanKindServer)
	sp.SetParentSpanID(pcommon.SpanID{0xab, 2})
	sp.Attributes().PutInt("http.method", 7)
	sp.Attributes().PutStr("nonutf8", "a\xffb")
	typedNoComplex := marshalRequest(t, typed)
	sp.Attributes().PutDouble("ratio", 0.25)
	sp.Attributes().PutEmptyBytes("blob").FromRaw([]byte{1, 2})
	sp.Attributes().PutEmptySlice("list").AppendEmpty().SetInt(3)
	typedComplex := marshalRequest(t, typed)
	// SDK-style encoding: ascending fields, no empty parent or status.
	sdk := sdkStyleTracesRequest(3)
	zero := ptrace.NewTraces()
	zsp := zero.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	zsp.SetSpanID(pcommon.SpanID{5})
	withGood := ptrace.NewTraces()
	batch.CopyTo(withGood)
	zsp.CopyTo(withGood.ResourceSpans().At(0).ScopeSpans().At(0).Spans().AppendEmpty())
	unknown := append(bytes.Clone(genReq), protowire.AppendVarint(protowire.AppendTag(nil, 77, protowire.VarintType), 1)...)
	refused := storetest.PlantedVariants(rich, pdataOnlyFields()["open group"])
	// More distinct values of one key than the head's tag set keeps.
	capped := ptrace.NewTraces()
	for range 300 {
		gen.AppendTrace(capped, gen.TraceID(), 4, pcommon.SpanID{})
	}
	uid := 0
	for i := range capped.ResourceSpans().Len() {
		spans := capped.ResourceSpans().At(i).ScopeSpans().At(0).Spans()
		for j := range spans.Len() {
			spans.At(j).Attributes().PutStr("uid", fmt.Sprint(uid))
			spans.At(j).Attributes().PutStr("long", strings.Repeat("x", maxIndexedValueLen+uid%2))
			uid++
		}
	}
	overCap := marshalRequest(t, capped)
	return map[string][][]byte{
		"otlpload requests, then their retry":    {genReq, genReq},
		"every field the walk reads, twice":      {rich, rich},
		"duplicates in a request, then a retry":  {dup, marshalRequest(t, half), dup},
		"typed values and the complex fallback":  {typedNoComplex, typedComplex, typedNoComplex},
		"SDK-style encoding":                     {sdk, sdk},
		"all-zero IDs take pdata's path":         {marshalRequest(t, zero), marshalRequest(t, withGood)},
		"unknown field takes pdata's path":       {unknown, genReq},
		"fields the cut refuses (reencoded)":     append(refused, refused...),
		"malformed":                              {genReq[:len(genReq)-1], {0xff}},
		"empty request and a resource no spans":  {nil, marshalRequest(t, noSpans())},
		"mixed: raw, pdata, raw of the same ids": {genReq, unknown, genReq},
		"a key past the head's value cap":        {overCap, genReq, overCap},
	}
}

func noSpans() ptrace.Traces {
	td := ptrace.NewTraces()
	td.ResourceSpans().AppendEmpty().Resource().Attributes().PutStr("service.name", "idle")
	return td
}

func marshalRequest(t testing.TB, td ptrace.Traces) []byte {
	t.Helper()
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sdkStyleTracesRequest is n client/server span pairs as protobuf-go writes
// them: ascending field order, no empty parent ID or status.
func sdkStyleTracesRequest(n int) []byte {
	var ss []byte
	for i := range n {
		for side := range 2 {
			var sp []byte
			sp = protowire.AppendTag(sp, 1, protowire.BytesType)
			sp = protowire.AppendBytes(sp, bytes.Repeat([]byte{byte(0x30 + i)}, 16))
			sp = protowire.AppendTag(sp, 2, protowire.BytesType)
			sp = protowire.AppendBytes(sp, bytes.Repeat([]byte{byte(0x40 + 2*i + side)}, 8))
			if side == 1 {
				sp = protowire.AppendTag(sp, 4, protowire.BytesType)
				sp = protowire.AppendBytes(sp, bytes.Repeat([]byte{byte(0x40 + 2*i)}, 8))
			}
			sp = protowire.AppendTag(sp, 5, protowire.BytesType)
			sp = protowire.AppendString(sp, "GET /x")
			sp = protowire.AppendTag(sp, 6, protowire.VarintType)
			sp = protowire.AppendVarint(sp, uint64(3-side)) // client, then server
			sp = protowire.AppendTag(sp, 7, protowire.Fixed64Type)
			sp = protowire.AppendFixed64(sp, uint64(testBase.UnixNano()))
			sp = protowire.AppendTag(sp, 8, protowire.Fixed64Type)
			sp = protowire.AppendFixed64(sp, uint64(testBase.UnixNano())+uint64(1e6*(i+1)))
			ss = protowire.AppendTag(ss, 2, protowire.BytesType)
			ss = protowire.AppendBytes(ss, sp)
		}
	}
	var res []byte
	var kv []byte
	kv = protowire.AppendTag(kv, 1, protowire.BytesType)
	kv = protowire.AppendString(kv, "service.name")
	var av []byte
	av = protowire.AppendTag(av, 1, protowire.BytesType)
	av = protowire.AppendString(av, "sdk")
	kv = protowire.AppendTag(kv, 2, protowire.BytesType)
	kv = protowire.AppendBytes(kv, av)
	res = protowire.AppendTag(res, 1, protowire.BytesType)
	res = protowire.AppendBytes(res, kv)
	var rs []byte
	rs = protowire.AppendTag(rs, 1, protowire.BytesType)
	rs = protowire.AppendBytes(rs, res)
	rs = protowire.AppendTag(rs, 2, protowire.BytesType)
	rs = protowire.AppendBytes(rs, ss)
	return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), rs)
}

// wideGenerator is a generator config that reads attributes for every
// dimension kind: span-metric dimensions, status messages, service-graph
// dimensions with client/server prefixes.
func wideGenerator() generator.Config {
	cfg := generator.DefaultConfig()
	cfg.SpanMetrics.Dimensions = []string{"http.method", "region", "absent", "queue.ratio", "ratio", "blob", "cache.hit"}
	cfg.SpanMetrics.IntrinsicDimensions.StatusMessage = true
	cfg.ServiceGraphs.Dimensions = []string{"http.method", "region"}
	cfg.ServiceGraphs.EnableClientServerPrefix = true
	return cfg
}

// TestRawPathMatchesPdata: every request answers the same and leaves the
// store, its tags, the metrics and the generator's series the same on the
// raw request path as on pdata's (ADR 0118).
func TestRawPathMatchesPdata(t *testing.T) { eachRawPathCase(t, comparePaths) }

// eachRawPathCase runs compare (a comparison of the raw path with pdata's)
// over every request set with both generators, and over otlpload's
// requests with a trace size limit they pass (partial success).
func eachRawPathCase(t *testing.T, compare func(t *testing.T, gcfg generator.Config, mod func(*Options), bodies ...[]byte)) {
	for name, bodies := range rawPathRequests(t) {
		for _, g := range []struct {
			name string
			cfg  generator.Config
		}{{"default generator", generator.DefaultConfig()}, {"wide generator", wideGenerator()}} {
			t.Run(name+"/"+g.name, func(t *testing.T) { compare(t, g.cfg, nil, bodies...) })
		}
	}
	t.Run("trace too large: partial success", func(t *testing.T) {
		bodies := rawPathRequests(t)["otlpload requests, then their retry"]
		compare(t, wideGenerator(), func(o *Options) { o.MaxTraceBytes = 1500 }, bodies...)
	})
}

// newFuzzRigs makes a pdata rig and a raw rig in fresh directories under
// base, with the wide generator and a 4 KiB trace limit, for the fuzz
// targets that compare the paths.
func newFuzzRigs(t *testing.T, base string) (pd, rw *pathRig) {
	t.Helper()
	pdDir, err := os.MkdirTemp(base, "pdata")
	if err != nil {
		t.Fatal(err)
	}
	rwDir, err := os.MkdirTemp(base, "raw")
	if err != nil {
		t.Fatal(err)
	}
	limit := func(o *Options) { o.MaxTraceBytes = 4 << 10 }
	return newPathRig(t, pdDir, false, wideGenerator(), limit), newPathRig(t, rwDir, true, wideGenerator(), limit)
}

// FuzzRawPath: any request answers the same and leaves the same state on
// both paths.
func FuzzRawPath(f *testing.F) {
	for _, bodies := range rawPathRequests(f) {
		for _, b := range bodies {
			if len(b) < 4<<10 {
				f.Add(b)
			}
		}
	}
	var pd, rw *pathRig
	base := f.TempDir()
	f.Cleanup(func() {
		if pd != nil {
			pd.db.Close()
			rw.db.Close()
		}
	})
	f.Fuzz(func(t *testing.T, body []byte) {
		if pd == nil || pd.db.head.stats().traces > 100 {
			if pd != nil {
				pd.db.Close()
				rw.db.Close()
			}
			pd, rw = newFuzzRigs(t, base)
		}
		checkWalkImpliesCutReads(t, body)
		for range 2 { // and its retry
			want, got := pd.post(body), rw.post(body)
			if want != got {
				t.Fatalf("raw path answers\n%s\npdata path\n%s", got, want)
			}
		}
		// The state is cumulative: one look after both requests sees a
		// difference either left.
		if want, got := pd.state(t), rw.state(t); want != got {
			t.Fatalf("state differs:\n%s", lineDiff(want, got))
		}
	})
}

// captureAppendable keeps what the generator writes, as "labels value".
type captureAppendable struct{ lines []string }

func (c *captureAppendable) Appender(context.Context) storage.Appender { return &captureAppender{c: c} }

type captureAppender struct {
	c     *captureAppendable
	lines []string
}

func (a *captureAppender) Append(_ storage.SeriesRef, l labels.Labels, _ int64, v float64) (storage.SeriesRef, error) {
	a.lines = append(a.lines, fmt.Sprintf("%s %v", l, v))
	return 0, nil
}
func (a *captureAppender) Commit() error                     { a.c.lines = append(a.c.lines, a.lines...); return nil }
func (a *captureAppender) Rollback() error                   { return nil }
func (a *captureAppender) SetOptions(*storage.AppendOptions) {}
func (a *captureAppender) AppendExemplar(storage.SeriesRef, labels.Labels, exemplar.Exemplar) (storage.SeriesRef, error) {
	return 0, nil
}
func (a *captureAppender) AppendHistogram(storage.SeriesRef, labels.Labels, int64, *histogram.Histogram, *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return 0, nil
}
func (a *captureAppender) AppendHistogramSTZeroSample(storage.SeriesRef, labels.Labels, int64, int64, *histogram.Histogram, *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return 0, nil
}
func (a *captureAppender) UpdateMetadata(storage.SeriesRef, labels.Labels, metadata.Metadata) (storage.SeriesRef, error) {
	return 0, nil
}
func (a *captureAppender) AppendSTZeroSample(storage.SeriesRef, labels.Labels, int64, int64) (storage.SeriesRef, error) {
	return 0, nil
}

func clip(s string) string {
	if len(s) > 400 {
		return s[:400] + "…"
	}
	return s
}

// A resource whose spans are all dropped (a retry's duplicates) leaves no
// tags on either path: pdata's keepOnly removes the resource, the raw path
// skips it (FuzzRawPath's finding: the raw path kept its attributes).
func TestRawPathSkipsResourceWithoutKeptSpans(t *testing.T) {
	span := func(rs ptrace.ResourceSpans, id byte) {
		s := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		s.SetTraceID(pcommon.TraceID{id, 15: 1})
		s.SetSpanID(pcommon.SpanID{id, 7: 1})
		s.SetName("op")
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(testBase))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(testBase.Add(time.Millisecond)))
	}
	first := ptrace.NewTraces()
	rs := first.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "a")
	span(rs, 1)
	retry := ptrace.NewTraces()
	rs = retry.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("only.on.the.retry", "x")
	span(rs, 1) // a duplicate: dropped
	rs = retry.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "b")
	span(rs, 2)
	comparePaths(t, generator.DefaultConfig(), nil, marshalRequest(t, first), marshalRequest(t, retry))

	rw := newPathRig(t, t.TempDir(), true, generator.DefaultConfig(), nil)
	defer rw.db.Close()
	rw.post(marshalRequest(t, first))
	rw.post(marshalRequest(t, retry))
	if st := rw.state(t); strings.Contains(st, "only.on.the.retry") {
		t.Fatalf("the dropped resource's attribute is a tag:\n%s", st)
	}
}
