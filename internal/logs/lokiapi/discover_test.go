package lokiapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/prometheus/model/labels"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
)

func TestDiscoverServiceName(t *testing.T) {
	def := defaultDiscoverServiceName()
	for _, tc := range []struct {
		in    string
		names []string
		want  string // service_name, "" = absent
	}{
		{`{service_name="kept", app="a"}`, def, "kept"},
		{`{service="x", namespace="y"}`, def, "x"},
		{`{app="a", service="s"}`, def, "s"}, // list order, not label order
		{`{job="j", container="c"}`, def, "c"},
		{`{app_kubernetes_io_name="k", job="j"}`, def, "k"},
		{`{namespace="y"}`, def, "unknown_service"},
		{`{app="a"}`, nil, ""}, // empty list: discovery off
		{`{job="j", app="a"}`, []string{"job"}, "j"},
	} {
		ls, err := parseLabelString(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		got := discoverServiceName(ls, tc.names)
		if got.Get(labelServiceName) != tc.want || (tc.want == "" && got.Has(labelServiceName)) {
			t.Errorf("%s with %v: got %s, want service_name=%q", tc.in, tc.names, got, tc.want)
		}
		if ls.Len()+1 != got.Len() && !ls.Has(labelServiceName) && tc.want != "" {
			t.Errorf("%s: labels lost: %s", tc.in, got)
		}
	}
}

func TestDetectLevel(t *testing.T) {
	for _, tc := range []struct {
		md   labels.Labels
		line string
		want string
	}{
		{labels.EmptyLabels(), `level=warn msg="disk almost full"`, "warn"},
		{labels.EmptyLabels(), `ts=1 lvl=ERR caller=x.go:1`, "error"},
		{labels.EmptyLabels(), `msg="level=info inside a value" level=debug`, "debug"},
		{labels.EmptyLabels(), `{"ts":1,"level":"Error","msg":"boom"}`, "error"},
		{labels.EmptyLabels(), `{"severity":"WARNING","msg":"x"}`, "warn"},
		{labels.EmptyLabels(), `{"log":{"Level":"fatal"}}`, "fatal"},
		{labels.EmptyLabels(), `{"msg":"an error happened"}`, "error"}, // keywords after fields
		{labels.EmptyLabels(), `2026/01/01 12:00:00 [ERROR] connection refused`, "error"},
		{labels.EmptyLabels(), `INFO  starting server on :8080 (errors: 0)`, "info"},
		{labels.EmptyLabels(), `GET /index.html 200`, "unknown"},
		{labels.EmptyLabels(), `information about interrors`, "unknown"}, // whole words only
		{labels.EmptyLabels(), `E0101 trace0 debug2`, "unknown"},
		{labels.EmptyLabels(), `panic: runtime error: index out of range`, "error"},
		{labels.FromStrings("level", "Notice"), "ERROR in line", "Notice"}, // a level entry as written
		{labels.FromStrings("severity_number", "17", "severity_text", "whatever"), "info line", "error"},
		{labels.FromStrings("severity_number", "3"), "", "trace"},
		{labels.FromStrings("severity_text", "WARN"), "error line", "warn"},
		{labels.FromStrings("trace_id", "abc"), "level=info", "info"},
	} {
		if got := detectLevel(tc.md, tc.line); got != tc.want {
			t.Errorf("detectLevel(%s, %q) = %q, want %q", tc.md, tc.line, got, tc.want)
		}
	}
}

func TestAddDetectedLevel(t *testing.T) {
	// A level label of the stream wins over the line (observed on Loki 3).
	e := logstore.Entry{Line: "level=warn msg=x"}
	addDetectedLevel(&e, streamLevel(labels.FromStrings("app", "a", "level", "debug")))
	if e.Metadata.String() != `{detected_level="debug"}` {
		t.Fatalf("got %s", e.Metadata)
	}
	// Pushed metadata is kept, detected_level added.
	e = logstore.Entry{Line: "level=warn", Metadata: labels.FromStrings("trace_id", "t1")}
	addDetectedLevel(&e, "")
	if e.Metadata.String() != `{detected_level="warn", trace_id="t1"}` {
		t.Fatalf("got %s", e.Metadata)
	}
	// A detected_level pushed by the client is left alone.
	e = logstore.Entry{Line: "level=warn", Metadata: labels.FromStrings("detected_level", "custom")}
	addDetectedLevel(&e, "")
	if e.Metadata.String() != `{detected_level="custom"}` {
		t.Fatalf("got %s", e.Metadata)
	}
}

func TestDiscoverConfigYAML(t *testing.T) {
	c, err := decodeStrict(t, "logs:\n  retention: 1d\n")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Limits.DiscoverServiceName, defaultDiscoverServiceName()) || !c.Limits.DiscoverLogLevels {
		t.Fatalf("defaults: %v %v", c.Limits.DiscoverServiceName, c.Limits.DiscoverLogLevels)
	}
	c, err = decodeStrict(t, "logs:\n  limits:\n    discover_service_name: []\n    discover_log_levels: false\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Limits.DiscoverServiceName) != 0 || c.Limits.DiscoverLogLevels {
		t.Fatalf("off: %v %v", c.Limits.DiscoverServiceName, c.Limits.DiscoverLogLevels)
	}
	c, err = decodeStrict(t, "logs:\n  limits:\n    discover_service_name: [job, app]\n")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Limits.DiscoverServiceName, []string{"job", "app"}) {
		t.Fatalf("list: %v", c.Limits.DiscoverServiceName)
	}
	c.Limits.DiscoverServiceName = []string{"ok", "not-valid"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `discover_service_name[1]: "not-valid"`) {
		t.Fatalf("validate: %v", err)
	}
}

type lokiStreams struct {
	Data struct {
		Result []struct {
			Stream map[string]string `json:"stream"`
			Metric map[string]string `json:"metric"`
			Values [][]any           `json:"values"`
			Value  []any             `json:"value"`
		} `json:"result"`
	} `json:"data"`
}

// TestDiscoveredLabelsOnEveryPushPath pushes through protobuf, JSON and
// OTLP and reads service_name and detected_level back from every read path.
func TestDiscoveredLabelsOnEveryPushPath(t *testing.T) {
	e := newEnv(t, nil)
	code, msg := e.pushProto(t, []push.Stream{
		{Labels: `{service="checkout", namespace="shop"}`, Entries: []push.Entry{
			{Timestamp: ts(1), Line: "level=warn msg=slow"},
			{Timestamp: ts(2), Line: "all good", StructuredMetadata: push.LabelsAdapter{{Name: "trace_id", Value: "t1"}}},
		}},
		{Labels: `{app="cart", namespace="shop", level="debug"}`, Entries: []push.Entry{
			{Timestamp: ts(3), Line: "level=warn msg=ignored-level"},
		}},
	})
	if code != http.StatusNoContent {
		t.Fatalf("proto push: %d %s", code, msg)
	}
	body := fmt.Sprintf(`{"streams":[{"stream":{"namespace":"shop"},"values":[["%d","{\"level\":\"error\",\"msg\":\"x\"}"]]}]}`, ts(4).UnixNano())
	if code, msg := e.post(t, "/loki/api/v1/push", "application/json", "", []byte(body)); code != http.StatusNoContent {
		t.Fatalf("json push: %d %s", code, msg)
	}
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "payments")
	rl.Resource().Attributes().PutStr("k8s.namespace.name", "shop")
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(ts(5)))
	lr.SetSeverityNumber(plog.SeverityNumberError)
	lr.Body().SetStr("card declined")
	if err := e.api.ConsumeLogs(context.Background(), ld); err != nil {
		t.Fatal(err)
	}

	p := rangeParams(`{service_name=~".+"}`)
	p.Set("direction", "forward")
	code, b := e.get(t, "/loki/api/v1/query_range", p)
	if code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	var r lokiStreams
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{} // line → service_name/detected_level
	for _, s := range r.Data.Result {
		for _, v := range s.Values {
			got[v[1].(string)] = s.Stream["service_name"] + "/" + s.Stream["detected_level"]
		}
	}
	want := map[string]string{
		"level=warn msg=slow":          "checkout/warn",
		"all good":                     "checkout/unknown",
		"level=warn msg=ignored-level": "cart/debug",
		`{"level":"error","msg":"x"}`:  "unknown_service/error",
		"card declined":                "payments/error",
	}
	for l, w := range want {
		if got[l] != w {
			t.Errorf("%q: got %q, want %q (all: %v)", l, got[l], w, got)
		}
	}

	pl := url.Values{"start": p["start"], "end": p["end"]}
	code, b = e.get(t, "/loki/api/v1/labels", pl)
	if code != 200 || !strings.Contains(string(b), `"service_name"`) || strings.Contains(string(b), "detected_level") {
		t.Errorf("labels: %d %s (service_name is an index label, detected_level is not)", code, b)
	}
	code, b = e.get(t, "/loki/api/v1/label/service_name/values", pl)
	if code != 200 || string(b) != `{"status":"success","data":["cart","checkout","payments","unknown_service"]}`+"\n" {
		t.Errorf("label values: %d %s", code, b)
	}
	code, b = e.get(t, "/loki/api/v1/series", with(pl, "match[]", `{service_name="checkout"}`))
	if code != 200 || string(b) != `{"status":"success","data":[{"namespace":"shop","service":"checkout","service_name":"checkout"}]}`+"\n" {
		t.Errorf("series: %d %s", code, b)
	}
	// Metric queries group by detected_level like any label.
	q := url.Values{"query": {`sum by (detected_level) (count_over_time({service_name=~".+"}[2h]))`}, "time": {fmt.Sprint(ts(60).UnixNano())}}
	code, b = e.get(t, "/loki/api/v1/query", q)
	if code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	r = lokiStreams{}
	json.Unmarshal(b, &r)
	counts := map[string]string{}
	for _, s := range r.Data.Result {
		counts[s.Metric["detected_level"]] = s.Value[1].(string)
	}
	if fmt.Sprint(counts) != "map[debug:1 error:2 unknown:1 warn:1]" {
		t.Errorf("sum by (detected_level): %v (%s)", counts, b)
	}
	// A label filter on detected_level selects entries.
	code, b = e.get(t, "/loki/api/v1/query_range", rangeParams(`{service_name=~".+"} | detected_level="error"`))
	if code != 200 || strings.Count(string(b), `"detected_level":"error"`) != 2 || strings.Contains(string(b), `"warn"`) {
		t.Errorf("detected_level filter: %d %s", code, b)
	}
}

func TestDiscoveryOff(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Limits.DiscoverServiceName = nil
		c.Limits.DiscoverLogLevels = false
	})
	code, msg := e.pushProto(t, []push.Stream{{Labels: `{app="a"}`, Entries: []push.Entry{{Timestamp: ts(1), Line: "level=error"}}}})
	if code != http.StatusNoContent {
		t.Fatalf("%d %s", code, msg)
	}
	code, b := e.get(t, "/loki/api/v1/query_range", rangeParams(`{app="a"}`))
	if code != 200 || !strings.Contains(string(b), `"stream":{"app":"a"},`) {
		t.Fatalf("%d %s", code, b)
	}
}

// BenchmarkDetectLevel: the ingest-side cost of detected_level per line,
// for a logfmt line with its level first, a JSON line and a line whose
// level only a keyword gives.
func BenchmarkDetectLevel(b *testing.B) {
	for name, line := range map[string]string{
		"logfmt":  `level=info caller=handler.go:120 method=GET path=/api/v1/items/4711 status=200 duration=12.3ms trace_id=4bf92f3577b34da6a3ce929d0e0e4736 msg="request served"`,
		"json":    `{"ts":"2026-01-01T00:00:00Z","caller":"handler.go:120","msg":"request served","status":200,"level":"warn"}`,
		"keyword": `2026/01/01 00:00:00 handler.go:120: GET /api/v1/items/4711 took 12.3ms [ERROR] upstream timeout`,
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				e := logstore.Entry{Line: line}
				addDetectedLevel(&e, "")
			}
		})
	}
}

// TestDiscoveryFollowsReload: the cached discovered labels of a pushed
// label string are recomputed when a reload changes the limits.
func TestDiscoveryFollowsReload(t *testing.T) {
	e := newEnv(t, nil)
	stream := func(sec int) []push.Stream {
		return []push.Stream{{Labels: `{app="a", job="j"}`, Entries: []push.Entry{{Timestamp: ts(sec), Line: "x"}}}}
	}
	if code, msg := e.pushProto(t, stream(1)); code != http.StatusNoContent {
		t.Fatalf("%d %s", code, msg)
	}
	cfg := DefaultConfig()
	cfg.Limits.DiscoverServiceName = []string{"job"}
	if err := e.api.ApplyConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if code, msg := e.pushProto(t, stream(2)); code != http.StatusNoContent {
		t.Fatalf("%d %s", code, msg)
	}
	pl := url.Values{"start": {fmt.Sprint(ts(0).UnixNano())}, "end": {fmt.Sprint(ts(60).UnixNano())}}
	code, b := e.get(t, "/loki/api/v1/label/service_name/values", pl)
	if code != 200 || strings.TrimSpace(string(b)) != `{"status":"success","data":["a","j"]}` {
		t.Fatalf("%d %s", code, b)
	}
}
