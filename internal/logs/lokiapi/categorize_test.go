package lokiapi

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/grafana/loki/pkg/push"
)

// TestParseTimeLokiForms is the table of Loki's time parameter forms: an
// integer of up to 10 digits is seconds, a longer one nanoseconds, a
// number with a point seconds, anything else RFC3339.
func TestParseTimeLokiForms(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"4000000000", time.Unix(4000000000, 0)}, // 10 digits: seconds (2096), not 4 s after 1970
		{"1700000000", time.Unix(1700000000, 0)},
		{"0", time.Unix(0, 0)},
		{"123", time.Unix(123, 0)},
		{"-5", time.Unix(-5, 0)},
		{"40000000000", time.Unix(0, 40000000000)}, // 11 digits: nanoseconds
		{"1700000000123456789", time.Unix(1700000000, 123456789)},
		{"1700000000.5", time.Unix(1700000000, 5e8)},
		{"1700000000.000001", time.Unix(1700000000, 1000)},
		{"4000000000.0", time.Unix(4000000000, 0)},
		{"2023-11-14T22:13:20Z", time.Unix(1700000000, 0)},
		{"2023-11-14T22:13:20.25Z", time.Unix(1700000000, 25e7)},
		{"2023-11-14T23:13:20+01:00", time.Unix(1700000000, 0)},
	} {
		got, err := parseTime(tc.in, time.Time{})
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"yesterday", "1e9x", "2023-11-14", "12:00"} {
		if _, err := parseTime(bad, time.Time{}); err == nil {
			t.Errorf("parseTime(%q) accepted", bad)
		}
	}
}

// TestTenDigitTimeOverHTTP: an instant query at time=<10 digits> is
// evaluated at that second.
func TestTenDigitTimeOverHTTP(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e)
	sec := ts(60).Unix()
	code, b := e.get(t, "/loki/api/v1/query", url.Values{"query": {`sum(count_over_time({app="api"}[2h]))`}, "time": {fmt.Sprint(sec)}})
	if code != 200 || !strings.Contains(string(b), fmt.Sprintf(`"value":[%d,"3"]`, sec)) {
		t.Fatalf("%d %s", code, b)
	}
}

func (e *env) getHeader(t *testing.T, path string, params url.Values, h http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path+"?"+params.Encode(), nil)
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestCategorizeLabelsEncoding(t *testing.T) {
	e := newEnv(t, nil)
	code, msg := e.pushProto(t, []push.Stream{{Labels: `{app="api", env="prod"}`, Entries: []push.Entry{
		{Timestamp: ts(1), Line: `level=info msg=hello app=inner`},
		{Timestamp: ts(2), Line: `level=error msg=boom`, StructuredMetadata: push.LabelsAdapter{{Name: "trace_id", Value: "t1"}}},
	}}})
	if code != http.StatusNoContent {
		t.Fatalf("push: %d %s", code, msg)
	}
	cat := http.Header{"X-Loki-Response-Encoding-Flags": {"categorize-labels"}}
	stream := `{"stream":{"app":"api","env":"prod","service_name":"api"},"values":[`
	for _, tc := range []struct {
		name, query string
		hdr         http.Header
		want        string
	}{
		{"categorised, no parser", `{app="api"}`, cat,
			`"encodingFlags":["categorize-labels"],"result":[` + stream +
				fmt.Sprintf(`["%d","level=info msg=hello app=inner",{"structuredMetadata":{"detected_level":"info"}}],`, ts(1).UnixNano()) +
				fmt.Sprintf(`["%d","level=error msg=boom",{"structuredMetadata":{"detected_level":"error","trace_id":"t1"}}]]}]`, ts(2).UnixNano())},
		{"categorised, logfmt (a clash with a stream label is renamed)", `{app="api"} | logfmt`, cat,
			`"encodingFlags":["categorize-labels"],"result":[` + stream +
				fmt.Sprintf(`["%d","level=info msg=hello app=inner",{"structuredMetadata":{"detected_level":"info"},"parsed":{"app_extracted":"inner","level":"info","msg":"hello"}}],`, ts(1).UnixNano()) +
				fmt.Sprintf(`["%d","level=error msg=boom",{"structuredMetadata":{"detected_level":"error","trace_id":"t1"},"parsed":{"level":"error","msg":"boom"}}]]}]`, ts(2).UnixNano())},
		{"categorised, metadata dropped", `{app="api"} | drop detected_level, trace_id`, cat,
			`"encodingFlags":["categorize-labels"],"result":[` + stream +
				fmt.Sprintf(`["%d","level=info msg=hello app=inner",{}],`, ts(1).UnixNano()) +
				fmt.Sprintf(`["%d","level=error msg=boom",{}]]}]`, ts(2).UnixNano())},
		{"plain: everything folded into the stream", `{app="api"}`, nil,
			`"resultType":"streams","result":[` +
				fmt.Sprintf(`{"stream":{"app":"api","detected_level":"error","env":"prod","service_name":"api","trace_id":"t1"},"values":[["%d","level=error msg=boom"]]},`, ts(2).UnixNano()) +
				fmt.Sprintf(`{"stream":{"app":"api","detected_level":"info","env":"prod","service_name":"api"},"values":[["%d","level=info msg=hello app=inner"]]}]`, ts(1).UnixNano())},
	} {
		p := rangeParams(tc.query)
		p.Set("direction", "forward")
		code, body := e.getHeader(t, "/loki/api/v1/query_range", p, tc.hdr)
		if code != 200 || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d\n got %s\nwant …%s…", tc.name, code, body, tc.want)
		}
		if tc.hdr == nil && strings.Contains(body, "encodingFlags") {
			t.Errorf("%s: encodingFlags without the header", tc.name)
		}
	}
	// Metric queries are not affected by the header.
	code, body := e.getHeader(t, "/loki/api/v1/query_range", rangeParams(`sum by (detected_level) (count_over_time({app="api"}[1m]))`), cat)
	if code != 200 || strings.Contains(body, "encodingFlags") || !strings.Contains(body, `"metric":{"detected_level":"error"}`) {
		t.Errorf("metric query with the header: %d %s", code, body)
	}
	if !categorizeLabels(&http.Request{Header: http.Header{"X-Loki-Response-Encoding-Flags": {"other, categorize-labels"}}}) {
		t.Error("flag in a list not seen")
	}
}
