package lokiapi

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/grafana/loki/pkg/push"
)

func seedDrilldown(t *testing.T, e *env) {
	t.Helper()
	var api, web []push.Entry
	for i := range 6 {
		api = append(api, push.Entry{Timestamp: ts(i * 10), Line: fmt.Sprintf(`level=info method=GET path=/items/%d status=200 duration=%dms size=%dKiB ok=true`, i, 10+i, i+1)})
	}
	api = append(api, push.Entry{Timestamp: ts(61), Line: `level=error method=POST path=/pay status=500 duration=1.5s size=1KiB ok=false`,
		StructuredMetadata: push.LabelsAdapter{{Name: "trace_id", Value: "abc"}}})
	for i := range 3 {
		web = append(web, push.Entry{Timestamp: ts(i*20 + 5), Line: fmt.Sprintf(`{"level":"warn","msg":"slow render","page":{"id":%d,"name":"home"},"tags":["a"]}`, i)})
	}
	code, msg := e.pushProto(t, []push.Stream{
		{Labels: `{app="api", env="prod", pod="api-1"}`, Entries: api},
		{Labels: `{app="web", env="prod", pod="web-1"}`, Entries: web[:2]},
		{Labels: `{app="web", env="prod", pod="web-2", pid="17", run="0b5e1a4c-9a3e-4d7e-8f00-1c2d3e4f5a6b"}`, Entries: web[2:]},
	})
	if code != http.StatusNoContent {
		t.Fatalf("push: %d %s", code, msg)
	}
}

func drilldownParams(q string) url.Values {
	return url.Values{"query": {q}, "start": {fmt.Sprint(ts(0).UnixNano())}, "end": {fmt.Sprint(ts(120).UnixNano())}}
}

func TestDrilldownEndpoints(t *testing.T) {
	e := newEnv(t, nil)
	seedDrilldown(t, e)
	for _, tc := range []struct {
		name, path string
		params     url.Values
		want       string
	}{
		{"detected labels", "/loki/api/v1/detected_labels", drilldownParams(`{env="prod"}`),
			`{"detectedLabels":[{"label":"app","cardinality":2},{"label":"env","cardinality":1},{"label":"pod","cardinality":3},{"label":"service_name","cardinality":2}]}`},
		{"detected labels, one service", "/loki/api/v1/detected_labels", drilldownParams(`{service_name="web"}`),
			`{"detectedLabels":[{"label":"app","cardinality":1},{"label":"env","cardinality":1},{"label":"pod","cardinality":2},{"label":"service_name","cardinality":1}]}`},
		{"detected fields, logfmt", "/loki/api/v1/detected_fields", drilldownParams(`{app="api"}`),
			`{"fields":[` +
				`{"label":"detected_level","type":"string","cardinality":2,"parsers":null},` +
				`{"label":"duration","type":"duration","cardinality":7,"parsers":["logfmt"]},` +
				`{"label":"level","type":"string","cardinality":2,"parsers":["logfmt"]},` +
				`{"label":"method","type":"string","cardinality":2,"parsers":["logfmt"]},` +
				`{"label":"ok","type":"boolean","cardinality":2,"parsers":["logfmt"]},` +
				`{"label":"path","type":"string","cardinality":7,"parsers":["logfmt"]},` +
				`{"label":"size","type":"bytes","cardinality":6,"parsers":["logfmt"]},` +
				`{"label":"status","type":"int","cardinality":2,"parsers":["logfmt"]},` +
				`{"label":"trace_id","type":"string","cardinality":1,"parsers":null}` +
				`],"limit":1000}`},
		{"detected fields, json with paths", "/loki/api/v1/detected_fields", drilldownParams(`{app="web"}`),
			`{"fields":[` +
				`{"label":"detected_level","type":"string","cardinality":1,"parsers":null},` +
				`{"label":"level","type":"string","cardinality":1,"parsers":["json"],"jsonPath":["level"]},` +
				`{"label":"msg","type":"string","cardinality":1,"parsers":["json"],"jsonPath":["msg"]},` +
				`{"label":"page_id","type":"int","cardinality":3,"parsers":["json"],"jsonPath":["page","id"]},` +
				`{"label":"page_name","type":"string","cardinality":1,"parsers":["json"],"jsonPath":["page","name"]}` +
				`],"limit":1000}`},
		{"detected field values", "/loki/api/v1/detected_field/status/values", drilldownParams(`{app="api"}`),
			`{"values":["200","500"],"limit":1000}`},
		{"detected field values from metadata", "/loki/api/v1/detected_field/detected_level/values", drilldownParams(`{env="prod"}`),
			`{"values":["error","info","warn"],"limit":1000}`},
		{"detected field values of an unknown field", "/loki/api/v1/detected_field/nope/values", drilldownParams(`{app="api"}`),
			`{"values":[],"limit":1000}`},
		{"detected fields of nothing", "/loki/api/v1/detected_fields", drilldownParams(`{app="none"}`),
			`{"fields":[],"limit":1000}`},
		{"detected labels of nothing", "/loki/api/v1/detected_labels", drilldownParams(`{app="none"}`),
			`{"detectedLabels":[]}`},
		{"detected field values after a filter", "/loki/api/v1/detected_field/method/values", drilldownParams(`{app="api"} |= "status=500"`),
			`{"values":["POST"],"limit":1000}`},
		{"volume by service_name, as Drilldown's service list asks", "/loki/api/v1/index/volume", with(drilldownParams(`{service_name=~".+"}`), "limit", "5000"),
			`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"service_name":"api"},"value":[`},
	} {
		code, b := e.get(t, tc.path, tc.params)
		got := strings.TrimSpace(string(b))
		if code != 200 || !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: %d\n got %s\nwant %s", tc.name, code, got, tc.want)
		}
	}
	code, b := e.get(t, "/loki/api/v1/index/volume", with(drilldownParams(`{service_name=~".+"}`), "limit", "5000"))
	if code != 200 || !strings.Contains(string(b), `{"metric":{"service_name":"web"}`) || strings.Contains(string(b), `"app"`) {
		t.Errorf("volume: %d %s", code, b)
	}
}

func TestPatterns(t *testing.T) {
	e := newEnv(t, nil)
	seedDrilldown(t, e)
	p := drilldownParams(`{app="api"}`)
	p.Set("step", "60s")
	code, b := e.get(t, "/loki/api/v1/patterns", p)
	t0 := ts(0).Unix()
	want := fmt.Sprintf(`{"status":"success","data":[`+
		`{"pattern":"level=info method=GET path=<_> status=<_> duration=<_> size=<_> ok=true","samples":[[%d,6]]},`+
		`{"pattern":"level=error method=POST path=/pay status=<_> duration=<_> size=<_> ok=false","samples":[[%d,1]]}]}`,
		t0-t0%60, (t0+61)-(t0+61)%60)
	if code != 200 || strings.TrimSpace(string(b)) != want {
		t.Errorf("%d\n got %s\nwant %s", code, b, want)
	}
	if code, b := e.get(t, "/loki/api/v1/patterns", drilldownParams(`{app="none"}`)); code != 200 || strings.TrimSpace(string(b)) != `{"status":"success","data":[]}` {
		t.Errorf("empty: %d %s", code, b)
	}
	if code, _ := e.get(t, "/loki/api/v1/patterns", drilldownParams(`nope`)); code != 400 {
		t.Errorf("bad selector: %d", code)
	}
}

func TestLinePattern(t *testing.T) {
	for in, want := range map[string]string{
		`GET /api/v1/users/42 200 12ms`:                        `GET <_>`,
		`user alice logged in from 10.0.0.1`:                   `user alice logged in from <_>`,
		`level=info msg="request done" id=7 took=3ms`:          `level=info msg="request done" id=<_> took=<_>`,
		`level=info msg="user 42 done"`:                        `level=info msg=<_>`,
		`connection reset by peer`:                             `connection reset by peer`,
		`  spaced    out  `:                                    `spaced out`,
		`trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa`: `trace <_> span <_>`,
	} {
		if got := linePattern(in); got != want {
			t.Errorf("linePattern(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFieldType(t *testing.T) {
	for v, want := range map[string]string{
		"42": "int", "-3": "int", "1.5": "float", "true": "boolean", "False": "boolean",
		"150ms": "duration", "1h2m": "duration", "12KiB": "bytes", "1.5MB": "bytes",
		"abc": "string", "NaN": "string", "0x1p-2": "string", "": "string",
	} {
		if got := fieldType(v); got != want {
			t.Errorf("fieldType(%q) = %s, want %s", v, got, want)
		}
	}
}
