package tempoapi

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	otelattr "go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/nx-watcher/nxwatcher/internal/testclock"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

type env struct {
	db   *tracestore.DB
	api  *API
	reg  *prometheus.Registry
	base string
}

// serve starts the Tempo API and a test-only OTLP/HTTP receiver on 127.0.0.1:0.
func serve(t *testing.T) *env {
	t.Helper()
	reg := prometheus.NewRegistry()
	db, err := tracestore.Open(t.TempDir(), tracestore.DefaultOptions(), tracestore.Deps{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	api, err := New(DefaultConfig(), Deps{Store: db, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, r := range api.Routes() {
		mux.HandleFunc(r.Method+" "+r.Path, r.Handler)
	}
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			gz, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			body = gz
		}
		b, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(b); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if err := db.ConsumeTraces(r.Context(), req.Traces()); err != nil {
			code := 503
			if errors.Is(err, tracestore.ErrInvalidID) {
				code = 400
			}
			http.Error(w, err.Error(), code)
			return
		}
		out, _ := ptraceotlp.NewExportResponse().MarshalProto()
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		_ = db.Close()
	})
	return &env{db: db, api: api, reg: reg, base: "http://" + ln.Addr().String()}
}

func (e *env) get(t *testing.T, path string, accept string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", e.base+path, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestOTelSDKRoundTrip sends real traces with the OpenTelemetry Go SDK and
// fetches each by ID: exactly the spans sent must come back.
func TestOTelSDKRoundTrip(t *testing.T) {
	e := serve(t)
	exp, err := otlptracehttp.New(t.Context(), otlptracehttp.WithEndpointURL(e.base+"/v1/traces"), otlptracehttp.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	rec := tracetest.NewSpanRecorder()
	res := sdkresource.NewSchemaless(otelattr.String("service.name", "shop-frontend"), otelattr.String("deployment.environment", "test"))
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSpanProcessor(rec),
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(50*time.Millisecond)))
	tr := tp.Tracer("nx/test")

	ctx := context.Background()
	var linkTo trace.SpanContext
	for i := 0; i < 5; i++ {
		rctx, root := tr.Start(ctx, fmt.Sprintf("GET /api/items/%d", i), trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(otelattr.String("http.method", "GET"), otelattr.Int("http.status_code", 200+i)))
		cctx, child := tr.Start(rctx, "SELECT items", trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(otelattr.String("db.system", "postgresql"), otelattr.Bool("db.cached", i%2 == 0),
				otelattr.Float64("db.ratio", 0.25), otelattr.StringSlice("db.tables", []string{"items", "prices"})))
		child.AddEvent("query sent", trace.WithAttributes(otelattr.Int("rows", 10*i)))
		if i == 3 {
			child.SetStatus(codes.Error, "deadlock detected")
			child.RecordError(errors.New("deadlock"))
		}
		_, grand := tr.Start(cctx, "decode rows", trace.WithLinks(trace.Link{SpanContext: linkTo, Attributes: []otelattr.KeyValue{otelattr.String("why", "batch")}}))
		grand.End()
		child.End()
		root.SetStatus(codes.Ok, "")
		root.End()
		linkTo = root.SpanContext()
	}
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	sent := map[trace.TraceID][]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		sent[s.SpanContext().TraceID()] = append(sent[s.SpanContext().TraceID()], s)
	}
	if len(sent) != 5 {
		t.Fatalf("recorded %d traces", len(sent))
	}
	for tid, spans := range sent {
		code, body := e.get(t, "/api/traces/"+tid.String(), "application/protobuf")
		if code != 200 {
			t.Fatalf("get %s: %d %s", tid, code, body)
		}
		td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(body)
		if err != nil {
			t.Fatal(err)
		}
		got := map[pcommon.SpanID]ptrace.Span{}
		gotRes := map[pcommon.SpanID]pcommon.Map{}
		for i := 0; i < td.ResourceSpans().Len(); i++ {
			rs := td.ResourceSpans().At(i)
			for j := 0; j < rs.ScopeSpans().Len(); j++ {
				ss := rs.ScopeSpans().At(j)
				if ss.Scope().Name() != "nx/test" {
					t.Errorf("scope = %q", ss.Scope().Name())
				}
				for k := 0; k < ss.Spans().Len(); k++ {
					s := ss.Spans().At(k)
					if _, dup := got[s.SpanID()]; dup {
						t.Errorf("span %s returned twice", s.SpanID())
					}
					got[s.SpanID()] = s
					gotRes[s.SpanID()] = rs.Resource().Attributes()
				}
			}
		}
		if len(got) != len(spans) {
			t.Fatalf("trace %s: got %d spans, sent %d", tid, len(got), len(spans))
		}
		for _, want := range spans {
			s, ok := got[pcommon.SpanID(want.SpanContext().SpanID())]
			if !ok {
				t.Fatalf("span %s missing", want.SpanContext().SpanID())
			}
			compareSpan(t, want, s, gotRes[s.SpanID()])
		}
	}
	// The JSON form is Tempo's: "batches", base64 IDs, enum names.
	for tid := range sent {
		code, body := e.get(t, "/api/traces/"+tid.String(), "")
		if code != 200 {
			t.Fatalf("json get: %d", code)
		}
		var doc struct {
			Batches []struct {
				ScopeSpans []struct {
					Spans []struct {
						TraceID string `json:"traceId"`
						Kind    string `json:"kind"`
						Start   string `json:"startTimeUnixNano"`
					} `json:"spans"`
				} `json:"scopeSpans"`
			} `json:"batches"`
		}
		if err := json.Unmarshal(body, &doc); err != nil || len(doc.Batches) == 0 {
			t.Fatalf("json: %v %s", err, body)
		}
		sp := doc.Batches[0].ScopeSpans[0].Spans[0]
		raw, _ := base64.StdEncoding.DecodeString(sp.TraceID)
		if hex.EncodeToString(raw) != tid.String() || !strings.HasPrefix(sp.Kind, "SPAN_KIND_") || sp.Start == "" {
			t.Fatalf("json span = %+v", sp)
		}
		break
	}
}

func compareSpan(t *testing.T, want sdktrace.ReadOnlySpan, got ptrace.Span, res pcommon.Map) {
	t.Helper()
	name := want.Name()
	if got.Name() != name || got.TraceID() != pcommon.TraceID(want.SpanContext().TraceID()) {
		t.Errorf("%s: name/trace mismatch: %s %s", name, got.Name(), got.TraceID())
	}
	if got.ParentSpanID() != pcommon.SpanID(want.Parent().SpanID()) {
		t.Errorf("%s: parent %s, want %s", name, got.ParentSpanID(), want.Parent().SpanID())
	}
	if int(got.Kind()) != int(want.SpanKind()) {
		t.Errorf("%s: kind %v, want %v", name, got.Kind(), want.SpanKind())
	}
	if uint64(got.StartTimestamp()) != uint64(want.StartTime().UnixNano()) || uint64(got.EndTimestamp()) != uint64(want.EndTime().UnixNano()) {
		t.Errorf("%s: times differ", name)
	}
	wantCode := map[codes.Code]ptrace.StatusCode{codes.Unset: ptrace.StatusCodeUnset, codes.Ok: ptrace.StatusCodeOk, codes.Error: ptrace.StatusCodeError}[want.Status().Code]
	if got.Status().Code() != wantCode || got.Status().Message() != want.Status().Description {
		t.Errorf("%s: status %v %q, want %v %q", name, got.Status().Code(), got.Status().Message(), wantCode, want.Status().Description)
	}
	checkAttrs(t, name+" attrs", want.Attributes(), got.Attributes())
	if sn, _ := res.Get("service.name"); sn.Str() != "shop-frontend" {
		t.Errorf("%s: resource service.name %q", name, sn.Str())
	}
	if got.Events().Len() != len(want.Events()) {
		t.Fatalf("%s: %d events, want %d", name, got.Events().Len(), len(want.Events()))
	}
	for i, we := range want.Events() {
		ge := got.Events().At(i)
		if ge.Name() != we.Name || uint64(ge.Timestamp()) != uint64(we.Time.UnixNano()) {
			t.Errorf("%s: event %d = %s", name, i, ge.Name())
		}
		checkAttrs(t, name+" event", we.Attributes, ge.Attributes())
	}
	if got.Links().Len() != len(want.Links()) {
		t.Fatalf("%s: %d links, want %d", name, got.Links().Len(), len(want.Links()))
	}
	for i, wl := range want.Links() {
		gl := got.Links().At(i)
		if gl.TraceID() != pcommon.TraceID(wl.SpanContext.TraceID()) || gl.SpanID() != pcommon.SpanID(wl.SpanContext.SpanID()) {
			t.Errorf("%s: link %d = %s/%s", name, i, gl.TraceID(), gl.SpanID())
		}
		checkAttrs(t, name+" link", wl.Attributes, gl.Attributes())
	}
}

func checkAttrs(t *testing.T, what string, want []otelattr.KeyValue, got pcommon.Map) {
	t.Helper()
	if got.Len() != len(want) {
		t.Errorf("%s: %d attributes, want %d", what, got.Len(), len(want))
	}
	for _, kv := range want {
		v, ok := got.Get(string(kv.Key))
		if !ok {
			t.Errorf("%s: %s missing", what, kv.Key)
			continue
		}
		// Both sides print slices as JSON arrays.
		if g, w := v.AsString(), kv.Value.Emit(); g != w {
			t.Errorf("%s: %s = %q, want %q", what, kv.Key, g, w)
		}
	}
}

func seed(t *testing.T, e *env, n int) map[pcommon.TraceID]ptrace.Traces {
	t.Helper()
	g := storetest.NewGen(11, testclock.Now().Add(-10*time.Minute).UnixNano())
	out := map[pcommon.TraceID]ptrace.Traces{}
	for i := 0; i < n; i++ {
		id, td := g.Trace(2 + i%4)
		out[id] = storetest.Merge(td)
		if err := e.db.ConsumeTraces(t.Context(), td); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestTraceByIDV2AndErrors(t *testing.T) {
	e := serve(t)
	sent := seed(t, e, 20)
	if err := e.db.Flush(); err != nil {
		t.Fatal(err)
	}
	for id, td := range sent {
		code, body := e.get(t, "/api/v2/traces/"+id.String(), "application/protobuf")
		if code != 200 || len(body) < 2 || body[0] != 0x0a {
			t.Fatalf("v2 protobuf: %d %x", code, body[:min(4, len(body))])
		}
		// Strip the TraceByIDResponse.trace field header.
		n, k := uvarint(body[1:])
		got, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(body[1+k : 1+k+int(n)])
		if err != nil {
			t.Fatal(err)
		}
		if d := storetest.Diff(td, got); d != "" {
			t.Fatal(d)
		}
		code, body = e.get(t, "/api/v2/traces/"+id.String(), "application/json")
		// v2 names the resource spans as OTLP does (v1 keeps Tempo's "batches").
		if code != 200 || !bytes.HasPrefix(body, []byte(`{"trace":{"resourceSpans":[`)) {
			t.Fatalf("v2 json: %d %.80s", code, body)
		}
		break
	}
	for _, tc := range []struct {
		path string
		code int
		msg  string
	}{
		{"/api/traces/zz", 400, "not hex"},
		{"/api/traces/" + strings.Repeat("a", 33), 400, "1 to 32 hex"},
		{"/api/traces/0123456789abcdef0123456789abcdef", 404, "trace not found"},
		{"/api/traces/abc?start=x", 400, "invalid start"},
		{"/api/search?q=" + url.QueryEscape("{ name = }"), 400, "position 10"},
		{"/api/search?limit=-1", 400, "invalid limit"},
		{"/api/search?minDuration=fast", 400, "invalid minDuration"},
		{"/api/search?start=20&end=10", 400, "end 10 before start 20"},
		{"/api/v2/search/tags?scope=galaxy", 400, "invalid scope"},
		{"/api/v2/search/tag/" + url.PathEscape("span.") + "/values", 400, "invalid tag"},
	} {
		code, body := e.get(t, tc.path, "")
		if code != tc.code || !strings.Contains(string(body), tc.msg) {
			t.Errorf("%s: %d %q, want %d containing %q", tc.path, code, body, tc.code, tc.msg)
		}
	}
	if got := testutil.ToFloat64(e.api.bad.WithLabelValues("trace_by_id")); got != 3 {
		t.Errorf("bad trace_by_id requests counted %v, want 3", got)
	}
	if got := testutil.ToFloat64(e.api.bad.WithLabelValues("search")); got != 4 {
		t.Errorf("bad search requests counted %v, want 4", got)
	}
	// Still serving after bad input.
	if code, body := e.get(t, "/api/echo", ""); code != 200 || string(body) != "echo" {
		t.Fatalf("echo: %d %s", code, body)
	}
}

func uvarint(b []byte) (uint64, int) {
	var x uint64
	var s uint
	for i, c := range b {
		if c < 0x80 {
			return x | uint64(c)<<s, i + 1
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	return 0, 0
}

func TestSearchAndTags(t *testing.T) {
	e := serve(t)
	sent := seed(t, e, 60)
	half := 0
	for range sent {
		if half++; half == 30 {
			if err := e.db.Flush(); err != nil { // half in a block, half in the head
				t.Fatal(err)
			}
		}
	}
	type result struct {
		Traces []struct {
			TraceID         string `json:"traceID"`
			RootServiceName string `json:"rootServiceName"`
			RootTraceName   string `json:"rootTraceName"`
			Start           string `json:"startTimeUnixNano"`
			DurationMs      *int   `json:"durationMs"`
			SpanSets        []struct {
				Spans []struct {
					SpanID     string `json:"spanID"`
					Duration   string `json:"durationNanos"`
					Attributes []struct {
						Key   string         `json:"key"`
						Value map[string]any `json:"value"`
					} `json:"attributes"`
				} `json:"spans"`
				Matched    int `json:"matched"`
				Attributes []struct {
					Key string `json:"key"`
				} `json:"attributes"`
			} `json:"spanSets"`
			SpanSet *struct{} `json:"spanSet"`
		} `json:"traces"`
		Metrics struct {
			InspectedTraces int    `json:"inspectedTraces"`
			InspectedBytes  string `json:"inspectedBytes"`
		} `json:"metrics"`
	}
	search := func(params url.Values) result {
		t.Helper()
		code, body := e.get(t, "/api/search?"+params.Encode(), "")
		if code != 200 {
			t.Fatalf("search %v: %d %s", params, code, body)
		}
		var r result
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	// Expected: traces with a span of status error, computed from what we sent.
	wantErr := map[string]bool{}
	for id, td := range sent {
		for _, fp := range storetest.Fingerprints(td) {
			if strings.Contains(fp, "status=2/") {
				wantErr[strings.TrimLeft(id.String(), "0")] = true
			}
		}
	}
	r := search(url.Values{"q": {"{ status = error }"}, "limit": {"1000"}, "spss": {"2"}})
	var got []string
	for _, tr := range r.Traces {
		got = append(got, tr.TraceID)
		if tr.RootServiceName != "frontend" || tr.RootTraceName == "" || tr.DurationMs == nil || tr.SpanSet == nil {
			t.Fatalf("trace result = %+v", tr)
		}
		ss := tr.SpanSets[0]
		if ss.Matched == 0 || len(ss.Spans) > 2 || len(ss.Spans) > ss.Matched {
			t.Fatalf("spanset: matched %d, %d spans", ss.Matched, len(ss.Spans))
		}
		keys := []string{}
		for _, a := range ss.Spans[0].Attributes {
			keys = append(keys, a.Key)
		}
		// Only what the query refers to, as Tempo answers.
		if !slices.Equal(keys, []string{"status"}) {
			t.Fatalf("span attributes = %v", keys)
		}
	}
	var want []string
	for id := range wantErr {
		want = append(want, id)
	}
	slices.Sort(got)
	slices.Sort(want)
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Fatalf("status=error traces: got %d, want %d", len(got), len(want))
	}
	if r.Metrics.InspectedTraces == 0 || r.Metrics.InspectedBytes == "" {
		t.Fatalf("metrics = %+v", r.Metrics)
	}
	// limit is honoured.
	if r := search(url.Values{"q": {"{}"}, "limit": {"7"}}); len(r.Traces) != 7 {
		t.Fatalf("limit 7 returned %d", len(r.Traces))
	}
	// tags= is the logfmt form of a filter.
	r1 := search(url.Values{"tags": {"service.name=payment http.method=POST"}, "limit": {"1000"}})
	r2 := search(url.Values{"q": {`{ .service.name = "payment" && .http.method = "POST" }`}, "limit": {"1000"}})
	if len(r1.Traces) == 0 || len(r1.Traces) != len(r2.Traces) {
		t.Fatalf("tags= found %d, q= found %d", len(r1.Traces), len(r2.Traces))
	}
	// minDuration filters on trace duration.
	all := search(url.Values{"limit": {"1000"}})
	long := search(url.Values{"limit": {"1000"}, "minDuration": {"300ms"}})
	if len(long.Traces) == 0 || len(long.Traces) >= len(all.Traces) {
		t.Fatalf("minDuration kept %d of %d", len(long.Traces), len(all.Traces))
	}
	for _, tr := range long.Traces {
		if *tr.DurationMs < 300 {
			t.Fatalf("trace of %dms passed minDuration=300ms", *tr.DurationMs)
		}
	}
	// by() puts the group value on the spanset.
	r = search(url.Values{"q": {"{ kind = client } | by(resource.service.name)"}, "limit": {"3"}})
	if len(r.Traces) == 0 || len(r.Traces[0].SpanSets[0].Attributes) != 1 || r.Traces[0].SpanSets[0].Attributes[0].Key != "by(resource.service.name)" {
		t.Fatalf("by() result = %+v", r.Traces)
	}

	// Tags.
	code, body := e.get(t, "/api/v2/search/tags", "")
	var scopes struct {
		Scopes []struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		} `json:"scopes"`
	}
	if err := json.Unmarshal(body, &scopes); code != 200 || err != nil {
		t.Fatalf("v2 tags: %d %s", code, body)
	}
	// Every scope that has tags, in this order; event and link attributes
	// (the generator's exception events and links) have their own scopes.
	wantScopes := []struct{ name, tag string }{{"span", "http.method"}, {"resource", "service.name"},
		{"event", "exception.type"}, {"link", "link.kind"}, {"intrinsic", "duration"}}
	if len(scopes.Scopes) != len(wantScopes) {
		t.Fatalf("v2 tags: %s", body)
	}
	for i, w := range wantScopes {
		if scopes.Scopes[i].Name != w.name || !slices.Contains(scopes.Scopes[i].Tags, w.tag) {
			t.Fatalf("v2 tags scope %d = %+v, want %s with %s", i, scopes.Scopes[i], w.name, w.tag)
		}
	}
	for _, sc := range []string{"event", "link", "intrinsic", "instrumentation"} {
		code, body = e.get(t, "/api/v2/search/tags?scope="+sc, "")
		if code != 200 || !strings.HasPrefix(string(body), `{"scopes":[{"name":"`+sc+`","tags":[`) || strings.Count(string(body), `{"name":`) != 1 {
			t.Fatalf("v2 tags scope=%s: %d %s", sc, code, body)
		}
	}
	code, body = e.get(t, "/api/search/tags", "")
	if code != 200 || !strings.Contains(string(body), `"tagNames":[`) || !strings.Contains(string(body), `"http.status_code"`) ||
		!strings.Contains(string(body), `"exception.type"`) || !strings.Contains(string(body), `"link.kind"`) {
		t.Fatalf("v1 tags: %s", body)
	}
	for sc, want := range map[string]string{"span": `"http.method"`, "resource": `"service.name"`, "event": `"exception.type"`,
		"link": `"link.kind"`, "intrinsic": `"rootServiceName"`} {
		code, body = e.get(t, "/api/search/tags?scope="+sc, "")
		if code != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("v1 tags scope=%s: %d %s", sc, code, body)
		}
	}
	code, body = e.get(t, "/api/search/tags?scope=span", "")
	if strings.Contains(string(body), `"service.name"`) || strings.Contains(string(body), `"exception.type"`) {
		t.Fatalf("v1 tags scope=span lists other scopes: %s", body)
	}
	if code, _ = e.get(t, "/api/search/tags?scope=galaxy", ""); code != 400 {
		t.Fatalf("v1 tags scope=galaxy: %d, want 400", code)
	}
	code, body = e.get(t, "/api/v2/search/tag/event.exception.type/values", "")
	if code != 200 || string(body) != `{"tagValues":[{"type":"string","value":"io.EOF"}]}`+"\n" {
		t.Fatalf("v2 event attribute values: %s", body)
	}
	code, body = e.get(t, "/api/v2/search/tag/link.link.kind/values", "")
	if code != 200 || string(body) != `{"tagValues":[{"type":"string","value":"follows"}]}`+"\n" {
		t.Fatalf("v2 link attribute values: %s", body)
	}
	code, body = e.get(t, "/api/search/tag/exception.type/values", "")
	if code != 200 || string(body) != `{"tagValues":["io.EOF"]}`+"\n" {
		t.Fatalf("v1 event attribute values: %s", body)
	}
	code, body = e.get(t, "/api/v2/search/tag/resource.service.name/values", "")
	if code != 200 || string(body) != `{"tagValues":[{"type":"string","value":"checkout"},{"type":"string","value":"frontend"},{"type":"string","value":"inventory"},{"type":"string","value":"payment"},{"type":"string","value":"shipping"}]}`+"\n" {
		t.Fatalf("v2 values: %s", body)
	}
	code, body = e.get(t, "/api/v2/search/tag/span.http.status_code/values", "")
	if code != 200 || !strings.Contains(string(body), `{"type":"int","value":"500"}`) {
		t.Fatalf("v2 int values: %s", body)
	}
	code, body = e.get(t, "/api/v2/search/tag/status/values", "")
	if code != 200 || !strings.Contains(string(body), `{"type":"keyword","value":"error"}`) {
		t.Fatalf("v2 status values: %s", body)
	}
	code, body = e.get(t, "/api/search/tag/http.method/values", "")
	if code != 200 || string(body) != `{"tagValues":["GET","POST","PUT"]}`+"\n" {
		t.Fatalf("v1 values: %s", body)
	}
	code, body = e.get(t, "/api/status/buildinfo", "")
	if code != 200 || !strings.Contains(string(body), `"version":"2.7.1"`) {
		t.Fatalf("buildinfo: %s", body)
	}
	if code, body := e.get(t, "/ready", ""); code != 200 || string(body) != "ready" {
		t.Fatalf("ready: %d %s", code, body)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.DefaultLimit, c.MaxTagValues = 0, -1
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "default_limit") || !strings.Contains(err.Error(), "max_tag_values") {
		t.Fatalf("validate = %v", err)
	}
	if err := tracestore.DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	// The search bounds: 0 turns one off, a negative value is an error,
	// every problem reported at once.
	c = DefaultConfig()
	c.MaxInspectedTraces, c.MaxInspectedBytes, c.MaxTraceBytes = -1, -1, -1
	err = c.Validate()
	for _, key := range []string{"max_inspected_traces", "max_inspected_bytes", "max_trace_bytes"} {
		if err == nil || !strings.Contains(err.Error(), "traces.search."+key) {
			t.Fatalf("validate = %v, want %s named", err, key)
		}
	}
	c.MaxInspectedTraces, c.MaxInspectedBytes, c.MaxTraceBytes = 0, 0, 0
	if err := c.Validate(); err != nil {
		t.Fatalf("zero (no bound) refused: %v", err)
	}
}
