package lokiapi

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/gorilla/websocket"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.uber.org/goleak"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
	"github.com/nx-watcher/nxwatcher/internal/testclock"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The OTel SDK exporter's HTTP client keeps idle connections briefly.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"))
}

// now is the tests' clock: the wall clock (moved by NXWATCHER_TEST_CLOCK_SHIFT
// in CI) truncated to the hour, never a calendar date.
var now = testclock.Base()

type env struct {
	api *API
	db  *logstore.DB
	srv *httptest.Server
	reg *prometheus.Registry
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	return newEnvAt(t, func() time.Time { return now }, mod)
}

// newEnvAt builds an API and store that both read clock.
func newEnvAt(t *testing.T, clock func() time.Time, mod func(*Config)) *env {
	t.Helper()
	cfg := DefaultConfig()
	if mod != nil {
		mod(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	opts := cfg.StoreOptions()
	opts.Now = clock
	db, err := logstore.Open(t.TempDir(), opts, logstore.Deps{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	api, err := New(cfg, Deps{Registerer: reg, Store: db, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	return &env{api: api, db: db, srv: serve(t, api), reg: reg}
}

// serve mounts the API's routes on a test server on 127.0.0.1:0.
func serve(t *testing.T, api *API) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	for _, rt := range api.Routes() {
		mux.HandleFunc(rt.Method+" "+rt.Path, rt.Handler)
	}
	mux.HandleFunc("POST /v1/logs", api.OTLPLogs)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// pushProto sends a real logproto.PushRequest built with Loki's own
// (Apache-2.0) push types, snappy-compressed, as Promtail does.
func (e *env) pushProto(t *testing.T, streams []push.Stream) (int, string) {
	t.Helper()
	b, err := proto.Marshal(&push.PushRequest{Streams: streams})
	if err != nil {
		t.Fatal(err)
	}
	return e.post(t, "/loki/api/v1/push", "application/x-protobuf", "", snappy.Encode(nil, b))
}

func (e *env) post(t *testing.T, path, ct, enc string, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	if enc != "" {
		req.Header.Set("Content-Encoding", enc)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(rb)
}

func (e *env) get(t *testing.T, path string, params url.Values) (int, []byte) {
	t.Helper()
	resp, err := http.Get(e.srv.URL + path + "?" + params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func ts(sec int) time.Time { return now.Add(-time.Hour).Add(time.Duration(sec) * time.Second) }

func seed(t *testing.T, e *env) {
	t.Helper()
	code, body := e.pushProto(t, []push.Stream{
		{Labels: `{app="api", env="prod"}`, Entries: []push.Entry{
			{Timestamp: ts(1), Line: "level=info msg=hello status=200"},
			{Timestamp: ts(2), Line: "level=error msg=boom status=500", StructuredMetadata: push.LabelsAdapter{{Name: "trace_id", Value: "t1"}}},
			{Timestamp: ts(3), Line: "level=info msg=bye status=200"},
		}},
		{Labels: `{app="web", env="dev"}`, Entries: []push.Entry{{Timestamp: ts(4), Line: "level=error msg=timeout status=504"}}},
	})
	if code != http.StatusNoContent {
		t.Fatalf("push: %d %s", code, body)
	}
}

func rangeParams(q string) url.Values {
	return url.Values{"query": {q}, "start": {fmt.Sprint(ts(0).UnixNano())}, "end": {fmt.Sprint(ts(60).UnixNano())}}
}

func TestPushProtobufAndQueryRangeStreams(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e)
	p := rangeParams(`{env=~".+"} |= "error"`)
	p.Set("direction", "forward")
	code, body := e.get(t, "/loki/api/v1/query_range", p)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var resp struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Stream map[string]string `json:"stream"`
				Values [][2]string       `json:"values"`
			} `json:"result"`
			Stats struct {
				Summary struct {
					TotalLinesProcessed int `json:"totalLinesProcessed"`
				} `json:"summary"`
			} `json:"stats"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if resp.Status != "success" || resp.Data.ResultType != "streams" || len(resp.Data.Result) != 2 {
		t.Fatalf("unexpected response %s", body)
	}
	first := resp.Data.Result[0]
	if first.Stream["app"] != "api" || first.Stream["trace_id"] != "t1" || len(first.Values) != 1 ||
		first.Values[0][0] != fmt.Sprint(ts(2).UnixNano()) || first.Values[0][1] != "level=error msg=boom status=500" {
		t.Fatalf("first stream %+v", first)
	}
	if resp.Data.Stats.Summary.TotalLinesProcessed != 2 {
		t.Fatalf("stats lines %d, want 2 (filter pushed down)", resp.Data.Stats.Summary.TotalLinesProcessed)
	}
}

func TestQueryRangeMatrixAndInstantVector(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e)
	p := rangeParams(`sum by (app) (count_over_time({env=~".+"}[1m]))`)
	p.Set("step", "30")
	code, body := e.get(t, "/loki/api/v1/query_range", p)
	if code != 200 || !strings.Contains(string(body), `"resultType":"matrix"`) {
		t.Fatalf("%d %s", code, body)
	}
	var m struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	json.Unmarshal(body, &m)
	if len(m.Data.Result) != 2 || m.Data.Result[0].Metric["app"] != "api" {
		t.Fatalf("matrix %s", body)
	}
	v := m.Data.Result[0].Values[0] // ts(0) has an empty window; ts(30) covers 1s..3s
	if v[0].(float64) != float64(ts(30).Unix()) || v[1].(string) != "3" {
		t.Fatalf("point %v", v)
	}
	q := url.Values{"query": {`vector(1)+vector(1)`}, "time": {fmt.Sprint(now.UnixNano())}}
	code, body = e.get(t, "/loki/api/v1/query", q)
	if code != 200 || !strings.Contains(string(body), fmt.Sprintf(`"result":[{"metric":{},"value":[%d,"2"]}]`, now.Unix())) {
		t.Fatalf("instant: %d %s", code, body)
	}
}

func TestPushJSONAndGzip(t *testing.T) {
	e := newEnv(t, nil)
	body := fmt.Sprintf(`{"streams":[{"stream":{"app":"json"},"values":[["%d","json line",{"user":"u1"}],["%d","second"]]}]}`, ts(5).UnixNano(), ts(6).UnixNano())
	if code, msg := e.post(t, "/loki/api/v1/push", "application/json", "", []byte(body)); code != 204 {
		t.Fatalf("json push: %d %s", code, msg)
	}
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	fmt.Fprintf(w, `{"streams":[{"stream":{"app":"json"},"values":[["%d","gzipped"]]}]}`, ts(7).UnixNano())
	w.Close()
	if code, msg := e.post(t, "/loki/api/v1/push", "application/json", "gzip", gz.Bytes()); code != 204 {
		t.Fatalf("gzip push: %d %s", code, msg)
	}
	code, out := e.get(t, "/loki/api/v1/query_range", rangeParams(`{app="json"} | user="u1" or line_format "{{__line__}}" != "x"`))
	_ = code
	code, out = e.get(t, "/loki/api/v1/query_range", rangeParams(`{app="json"}`))
	if code != 200 || !strings.Contains(string(out), `"gzipped"`) || !strings.Contains(string(out), `"user":"u1"`) {
		t.Fatalf("%d %s", code, out)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Limits.MaxLineSize = 64
		c.Limits.MaxGlobalStreamsPerUser = 2
	})
	good := push.Entry{Timestamp: ts(1), Line: "ok"}
	cases := []struct {
		name   string
		send   func() (int, string)
		status int
		msg    string
		reason string
	}{
		{"bad snappy", func() (int, string) {
			return e.post(t, "/loki/api/v1/push", "application/x-protobuf", "", []byte("not snappy at all"))
		}, 400, "snappy", reasonMalformed},
		{"bad protobuf", func() (int, string) {
			return e.post(t, "/loki/api/v1/push", "application/x-protobuf", "", snappy.Encode(nil, []byte{0x0a, 0xff, 0xff, 0x01}))
		}, 400, "malformed protobuf push at byte 1", reasonMalformed},
		{"bad json", func() (int, string) {
			return e.post(t, "/loki/api/v1/push", "application/json", "", []byte(`{"streams":[{"stream":{"a":"b"},"values":[["1","x"]`))
		}, 400, "malformed json push", reasonMalformed},
		{"bad gzip", func() (int, string) {
			return e.post(t, "/loki/api/v1/push", "application/json", "gzip", []byte(`plain`))
		}, 400, "malformed gzip body", reasonMalformed},
		{"invalid labels", func() (int, string) {
			return e.pushProto(t, []push.Stream{{Labels: `{app="a"`, Entries: []push.Entry{good}}})
		}, 400, "error parsing labels '{app=\"a\"'", reasonInvalidLabels},
		{"invalid label name", func() (int, string) {
			return e.post(t, "/loki/api/v1/push", "application/json", "", []byte(fmt.Sprintf(`{"streams":[{"stream":{"a-b":"x"},"values":[["%d","x"]]}]}`, ts(1).UnixNano())))
		}, 400, `invalid label name "a-b"`, reasonInvalidLabels},
		{"line too long keeps the rest", func() (int, string) {
			return e.pushProto(t, []push.Stream{{Labels: `{app="long"}`, Entries: []push.Entry{
				{Timestamp: ts(1), Line: strings.Repeat("x", 65)}, {Timestamp: ts(2), Line: "kept"}}}})
		}, 400, "Max entry size '64' bytes exceeded for stream '{app=\"long\", service_name=\"long\"}' while adding an entry with length '65' bytes", reasonLineTooLong},
		{"too old", func() (int, string) {
			return e.pushProto(t, []push.Stream{{Labels: `{app="long"}`, Entries: []push.Entry{{Timestamp: now.Add(-30 * 24 * time.Hour), Line: "old"}}}})
		}, 400, "has timestamp too old", reasonTooOld},
		{"too many streams", func() (int, string) {
			return e.pushProto(t, []push.Stream{{Labels: `{app="s2"}`, Entries: []push.Entry{good}}, {Labels: `{app="s3"}`, Entries: []push.Entry{good}}})
		}, 429, "Maximum active stream limit exceeded", reasonStreamLimit},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(e.api.m.discardedEntries.WithLabelValues(tc.reason))
			code, msg := tc.send()
			if code != tc.status || !strings.Contains(msg, tc.msg) {
				t.Fatalf("got %d %q, want %d containing %q", code, msg, tc.status, tc.msg)
			}
			if after := testutil.ToFloat64(e.api.m.discardedEntries.WithLabelValues(tc.reason)); after <= before {
				t.Fatalf("discarded_entries_total{reason=%q} not incremented", tc.reason)
			}
		})
	}
	// The valid line of the partially refused push is stored, nothing else lost.
	code, out := e.get(t, "/loki/api/v1/query_range", rangeParams(`{app=~".+"}`))
	if code != 200 || !strings.Contains(string(out), `"kept"`) || strings.Contains(string(out), "xxxx") {
		t.Fatalf("%d %s", code, out)
	}
	for _, q := range []struct{ q, msg string }{
		{`{app="x"`, "parse error at line 1, col 9"},
		{`sum(rate({app="x"}[1m])) by`, "expected"},
		{`{app=~".*"}`, "at least one regexp or equality matcher"},
	} {
		code, body := e.get(t, "/loki/api/v1/query_range", rangeParams(q.q))
		if code != 400 || !strings.Contains(string(body), q.msg) {
			t.Fatalf("query %s: %d %s", q.q, code, body)
		}
	}
	if n := testutil.ToFloat64(e.api.m.queries.WithLabelValues("query_range", "400")); n != 3 {
		t.Fatalf("queries_total{code=400} = %v, want 3", n)
	}
	p := rangeParams(`{app="x"}`)
	p.Set("limit", "6000")
	if code, body := e.get(t, "/loki/api/v1/query_range", p); code != 400 || !strings.Contains(string(body), "max entries limit") {
		t.Fatalf("limit: %d %s", code, body)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Limits.IngestionRateMB = 0.0001 // ~100 bytes/s
		c.Limits.IngestionBurstSizeMB = 0.0001
	})
	code, msg := e.pushProto(t, []push.Stream{{Labels: `{app="a"}`, Entries: []push.Entry{{Timestamp: ts(1), Line: strings.Repeat("y", 200)}}}})
	if code != 429 || !strings.Contains(msg, "Ingestion rate limit exceeded") {
		t.Fatalf("%d %s", code, msg)
	}
	// Raising the limit at run time (reload) lets the same push through.
	cfg := DefaultConfig()
	if err := e.api.ApplyConfig(cfg); err != nil {
		t.Fatal(err)
	}
	code, msg = e.pushProto(t, []push.Stream{{Labels: `{app="a"}`, Entries: []push.Entry{{Timestamp: ts(1), Line: strings.Repeat("y", 200)}}}})
	if code != 204 {
		t.Fatalf("after reload: %d %s", code, msg)
	}
}

func TestLabelsSeriesStatsVolume(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e)
	p := url.Values{"start": {fmt.Sprint(ts(0).UnixNano())}, "end": {fmt.Sprint(ts(60).UnixNano())}}
	for _, tc := range []struct {
		path   string
		params url.Values
		want   string
	}{
		{"/loki/api/v1/labels", p, `{"status":"success","data":["app","env","service_name"]}`}, // service_name discovered from app
		{"/loki/api/v1/label/app/values", p, `{"status":"success","data":["api","web"]}`},
		{"/loki/api/v1/label/nope/values", p, `{"status":"success","data":[]}`},
		{"/loki/api/v1/series", with(p, "match[]", `{env="dev"}`), `{"status":"success","data":[{"app":"web","env":"dev","service_name":"web"}]}`},
		{"/loki/api/v1/index/stats", with(p, "query", `{app="api"}`), `{"streams":1,"chunks":1,"entries":3,"bytes":`},
		{"/loki/api/v1/index/volume", with(p, "query", `{env=~".+"}`), `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"env":"prod"},"value":[`},
		{"/loki/api/v1/index/volume_range", with(with(p, "query", `{app="api"}`), "step", "60"), `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"app":"api"},"values":[[`},
		{"/loki/api/v1/index/volume", with(with(p, "query", `{env=~".+"}`), "aggregateBy", "labels"), `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"env":""},"value":[`},
		{"/ready", nil, "ready"},
		{"/loki/api/v1/format_query", url.Values{"query": {`sum(rate({a="b"}|="x"[1m]))by(c)`}}, `{"status":"success","data":"sum by (c) (rate({a=\"b\"} |= \"x\" [1m]))"}`},
		{"/loki/api/v1/status/buildinfo", nil, `{"branch":"","buildDate":"","buildUser":"nxwatcher","goVersion":"go`},
	} {
		code, body := e.get(t, tc.path, tc.params)
		if code != 200 || !strings.HasPrefix(string(body), tc.want) {
			t.Errorf("%s: %d %s, want prefix %s", tc.path, code, body, tc.want)
		}
		if tc.path == "/loki/api/v1/index/volume" && strings.Contains(string(body), `"stats"`) {
			t.Errorf("volume response carries stats: %s", body)
		}
	}
}

func TestParseTime(t *testing.T) {
	for in, want := range map[string]time.Time{
		"1700000000000000000":            time.Unix(1700000000, 0),
		"1700000000.5":                   time.Unix(1700000000, 5e8),
		"2023-11-14T22:13:20Z":           time.Unix(1700000000, 0),
		"2023-11-14T22:13:20.000000001Z": time.Unix(1700000000, 1),
	} {
		got, err := parseTime(in, time.Time{})
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseTime("yesterday", time.Time{}); err == nil {
		t.Error("bad time accepted")
	}
}

func TestInstantLogQueryIsRejected(t *testing.T) {
	e := newEnv(t, nil)
	code, body := e.get(t, "/loki/api/v1/query", url.Values{"query": {`{app="x"}`}})
	if code != 400 || !strings.Contains(string(body), "log queries are not supported as an instant query type") {
		t.Fatalf("%d %s", code, body)
	}
}

func TestSeriesNeedsMatch(t *testing.T) {
	e := newEnv(t, nil)
	code, body := e.get(t, "/loki/api/v1/series", nil)
	if code != 400 || !strings.Contains(string(body), "at least one match[]") {
		t.Fatalf("%d %s", code, body)
	}
}

func with(v url.Values, k, val string) url.Values {
	c := url.Values{}
	for kk, vv := range v {
		c[kk] = vv
	}
	c.Set(k, val)
	return c
}

func TestOTLPWithSDKExporter(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range []string{"/otlp/v1/logs", "/v1/logs"} {
		exp, err := otlploghttp.New(t.Context(), otlploghttp.WithEndpointURL(e.srv.URL+path), otlploghttp.WithCompression(otlploghttp.GzipCompression))
		if err != nil {
			t.Fatal(err)
		}
		lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewSimpleProcessor(exp)),
			sdklog.WithResource(resource.NewSchemaless(attribute.String("service.name", "checkout"), attribute.String("k8s.namespace.name", "shop"), attribute.String("host.name", "node-1"))))
		var r otellog.Record
		r.SetTimestamp(ts(10))
		r.SetBody(attribute.StringValue("order placed via " + path))
		r.SetSeverity(otellog.SeverityWarn)
		r.SetSeverityText("WARN")
		r.AddAttributes(attribute.String("order.id", "o-42"))
		lp.Logger("shop/orders", otellog.WithInstrumentationVersion("1.2.3")).Emit(t.Context(), r)
		if err := lp.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	code, body := e.get(t, "/loki/api/v1/query_range", rangeParams(`{service_name="checkout", k8s_namespace_name="shop"} | order_id="o-42" | severity_text="WARN"`))
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	for _, want := range []string{`"host_name":"node-1"`, `"scope_name":"shop/orders"`, `"scope_version":"1.2.3"`, `"severity_number":"13"`, `order placed via /otlp/v1/logs`, `order placed via /v1/logs`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("missing %s in %s", want, body)
		}
	}
	if n := testutil.ToFloat64(e.api.m.receivedEntries.WithLabelValues("otlp")); n != 2 {
		t.Errorf("received_entries_total{format=otlp} = %v, want 2", n)
	}
	code, msg := e.post(t, "/otlp/v1/logs", "application/x-protobuf", "", []byte{0xff, 0xff})
	if code != 400 || !strings.Contains(msg, "malformed OTLP logs request") {
		t.Fatalf("bad otlp: %d %s", code, msg)
	}
}

func TestTail(t *testing.T) {
	e := newEnv(t, nil)
	// Entries pushed before the tail opens are sent as backfill...
	code, _ := e.pushProto(t, []push.Stream{{Labels: `{app="api"}`, Entries: []push.Entry{{Timestamp: ts(0), Line: "early boom"}}}})
	if code != 204 {
		t.Fatal(code)
	}
	u := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/loki/api/v1/tail?" + url.Values{"query": {`{app="api"} |= "boom"`}, "start": {fmt.Sprint(ts(0).UnixNano())}}.Encode()
	conn, _, err := websocket.DefaultDialer.DialContext(t.Context(), u, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var first tailResponse
	if err := conn.ReadJSON(&first); err != nil || len(first.Streams) != 1 || first.Streams[0].Values[0][1] != "early boom" {
		t.Fatalf("backfill %+v %v", first, err)
	}
	// ...and later pushes arrive as they are committed, whatever their timestamps.
	seed(t, e)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var msg tailResponse
	if err := conn.ReadJSON(&msg); err != nil {
		t.Fatal(err)
	}
	if len(msg.Streams) != 1 || len(msg.Streams[0].Values) != 1 || msg.Streams[0].Values[0][1] != "level=error msg=boom status=500" {
		t.Fatalf("tail frame %+v", msg)
	}
	conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	c.WAL.Fsync = "sometimes"
	c.Limits.MaxLabelNamesPerSeries = 0
	c.Limits.QueryTimeout = 0
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"logs.wal.fsync", "max_label_names_per_series", "query_timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not report %s", err, want)
		}
	}
}

func TestConsumeLogsDirect(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Limits.MaxLineSize = 32 })
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("k8s.pod.name", "web-1")
	rl.Resource().Attributes().PutEmptyMap("host").PutStr("arch", "amd64")
	lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
	ok := lrs.AppendEmpty()
	ok.SetTimestamp(pcommon.NewTimestampFromTime(ts(1)))
	ok.Body().SetStr("short line")
	ok.SetTraceID(pcommon.TraceID{1, 2, 3})
	long := lrs.AppendEmpty()
	long.SetTimestamp(pcommon.NewTimestampFromTime(ts(2)))
	long.Body().SetStr(strings.Repeat("z", 40))
	err := e.api.ConsumeLogs(t.Context(), ld)
	var perr *PushError
	if !errors.As(err, &perr) || perr.Status != 400 || !strings.Contains(perr.Msg, "Max entry size '32' bytes exceeded") {
		t.Fatalf("ConsumeLogs error %v", err)
	}
	code, body := e.get(t, "/loki/api/v1/query_range", rangeParams(`{service_name="unknown_service", k8s_pod_name="web-1"}`))
	if code != 200 || !strings.Contains(string(body), `"short line"`) || !strings.Contains(string(body), `"host_arch":"amd64"`) ||
		!strings.Contains(string(body), `"trace_id":"01020300000000000000000000000000"`) || strings.Contains(string(body), "zzzz") {
		t.Fatalf("%d %s", code, body)
	}
}

func TestOTLPJSONAndPostForms(t *testing.T) {
	e := newEnv(t, nil)
	body := fmt.Sprintf(`{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"cart"}}]},"scopeLogs":[{"logRecords":[{"timeUnixNano":"%d","body":{"stringValue":"json otlp"}}]}]}]}`, ts(3).UnixNano())
	if code, msg := e.post(t, "/otlp/v1/logs", "application/json", "", []byte(body)); code != 200 || !json.Valid([]byte(msg)) {
		t.Fatalf("otlp json: %d %q", code, msg)
	}
	form := rangeParams(`{service_name="cart"}`)
	resp, err := http.PostForm(e.srv.URL+"/loki/api/v1/query_range", form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"json otlp"`) {
		t.Fatalf("POST query_range: %d %s", resp.StatusCode, b)
	}
	if code, msg := e.post(t, "/otlp/v1/logs", "text/plain", "", []byte("x")); code != 415 {
		t.Fatalf("wrong content type: %d %s", code, msg)
	}
}

func TestOutOfOrderWindow(t *testing.T) {
	e := newEnv(t, nil)
	if code, msg := e.pushProto(t, []push.Stream{{Labels: `{app="ooo"}`, Entries: []push.Entry{{Timestamp: ts(3000), Line: "new"}}}}); code != 204 {
		t.Fatalf("%d %s", code, msg)
	}
	before := testutil.ToFloat64(e.api.m.discardedEntries.WithLabelValues(reasonOutOfOrder))
	code, msg := e.pushProto(t, []push.Stream{{Labels: `{app="ooo"}`, Entries: []push.Entry{
		{Timestamp: ts(3000 - 7200), Line: "two hours behind"}, {Timestamp: ts(2990), Line: "ten seconds behind"}}}})
	if code != 400 || !strings.Contains(msg, "entry too far behind") {
		t.Fatalf("%d %s", code, msg)
	}
	if testutil.ToFloat64(e.api.m.discardedEntries.WithLabelValues(reasonOutOfOrder)) != before+1 {
		t.Fatal("too_far_behind not counted once")
	}
	p := url.Values{"query": {`{app="ooo"}`}, "start": {fmt.Sprint(ts(-8000).UnixNano())}, "end": {fmt.Sprint(ts(4000).UnixNano())}}
	_, body := e.get(t, "/loki/api/v1/query_range", p)
	if !strings.Contains(string(body), "ten seconds behind") || strings.Contains(string(body), "two hours behind") {
		t.Fatalf("%s", body)
	}
}

func TestTailRejectsBadQueries(t *testing.T) {
	e := newEnv(t, nil)
	for _, q := range []string{`{app=`, `count_over_time({app="x"}[1m])`} {
		code, body := e.get(t, "/loki/api/v1/tail", url.Values{"query": {q}})
		if code != 400 {
			t.Errorf("tail %s: %d %s", q, code, body)
		}
	}
}

func TestVolumeMatchesStats(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e)
	p := url.Values{"query": {`{app="api"}`}, "start": {fmt.Sprint(ts(0).UnixNano())}, "end": {fmt.Sprint(ts(60).UnixNano())}}
	_, sb := e.get(t, "/loki/api/v1/index/stats", p)
	var st struct{ Bytes int }
	json.Unmarshal(sb, &st)
	_, vb := e.get(t, "/loki/api/v1/index/volume", p)
	var vol struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	json.Unmarshal(vb, &vol)
	if st.Bytes == 0 || len(vol.Data.Result) != 1 || vol.Data.Result[0].Value[1] != fmt.Sprint(st.Bytes) {
		t.Fatalf("stats %s, volume %s", sb, vb)
	}
}
