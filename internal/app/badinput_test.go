package app

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

const (
	rwV1ContentType = "application/x-protobuf"
	rwV2ContentType = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
)

var rwHeaders = map[string]string{"Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0"}

func mustMarshal(t *testing.T, m interface{ Marshal() ([]byte, error) }) []byte {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seriesCount(t *testing.T, ts *testServer, query string, at time.Time) int {
	t.Helper()
	v, _, _, err := ts.promAPI(t).Query(t.Context(), query, at)
	if err != nil {
		t.Fatalf("query %s: %v", query, err)
	}
	return len(v.(model.Vector))
}

// TestRemoteWriteBadInput sends every kind of bad request Prometheus rejects:
// each gets Prometheus's status, is counted, and loses nobody else's data.
func TestRemoteWriteBadInput(t *testing.T) {
	ts := startServer(t, "metrics:\n  prometheus:\n    global: {scrape_interval: 1h}\n")
	w := remoteWriter(t, ts.url)
	now := time.Now().Truncate(time.Second)

	// Data of a well-behaved writer, before and after the bad requests.
	if err := writeV1(t, w, "good_before", map[string]string{"job": "good"}, prompb.Sample{Timestamp: now.UnixMilli(), Value: 1}); err != nil {
		t.Fatal(err)
	}

	validV1 := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "x"}},
		Samples: []prompb.Sample{{Timestamp: now.UnixMilli(), Value: 1}},
	}}}
	oversized := make([]byte, 33<<20)

	for _, tc := range []struct {
		name        string
		contentType string
		body        []byte
		wantCode    int
		wantBody    string
	}{
		{"bad snappy", rwV1ContentType, []byte("this is not snappy"), http.StatusBadRequest, "corrupt input"},
		{"bad protobuf", rwV1ContentType, snappy.Encode(nil, []byte{0xff, 0xff, 0xff, 0x01, 0x02}), http.StatusBadRequest, ""},
		{"bad protobuf v2", rwV2ContentType, snappy.Encode(nil, []byte{0x0a, 0xff, 0x01}), http.StatusBadRequest, ""},
		{"unknown proto message", "application/x-protobuf;proto=foo.Bar", snappy.Encode(nil, mustMarshal(t, validV1)), http.StatusUnsupportedMediaType, ""},
		{"oversized body", rwV1ContentType, oversized, http.StatusRequestEntityTooLarge, "exceeds"},
		{"out of order sample", rwV1ContentType, snappy.Encode(nil, mustMarshal(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels:  []prompb.Label{{Name: "__name__", Value: "good_before"}, {Name: "job", Value: "good"}},
			Samples: []prompb.Sample{{Timestamp: now.Add(-time.Minute).UnixMilli(), Value: 0}},
		}}})), http.StatusBadRequest, "out of order"},
		{"too old sample", rwV1ContentType, snappy.Encode(nil, mustMarshal(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels:  []prompb.Label{{Name: "__name__", Value: "ancient"}},
			Samples: []prompb.Sample{{Timestamp: now.Add(-48 * time.Hour).UnixMilli(), Value: 0}},
		}}})), http.StatusBadRequest, "out of bounds"},
		{"invalid label name v2", rwV2ContentType, snappy.Encode(nil, mustMarshal(t, &writev2.Request{
			Symbols:    []string{"", "__name__", "bad_labels", "\xff\xfe", "v"},
			Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{1, 2, 3, 4}, Samples: []writev2.Sample{{Value: 1, Timestamp: now.UnixMilli()}}}},
		})), http.StatusBadRequest, "invalid metric name or labels"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := ts.post(t, "/api/v1/write", tc.contentType, bytes.NewReader(tc.body), rwHeaders)
			if code != tc.wantCode {
				t.Fatalf("status = %d (%s), want %d", code, body, tc.wantCode)
			}
			if !strings.Contains(body, tc.wantBody) {
				t.Fatalf("body = %q, want it to mention %q", body, tc.wantBody)
			}
		})
	}

	// Remote write 1.0 drops series with invalid labels and keeps the rest,
	// as Prometheus does.
	if err := writeV1(t, w, "good_after", map[string]string{"\xff": "x"}, prompb.Sample{Timestamp: now.UnixMilli(), Value: 2}); err != nil {
		t.Fatalf("v1 with invalid label: %v (Prometheus answers 204 and drops the series)", err)
	}
	if err := writeV1(t, w, "good_after", map[string]string{"job": "good"}, prompb.Sample{Timestamp: now.UnixMilli(), Value: 2}); err != nil {
		t.Fatal(err)
	}

	if n := seriesCount(t, ts, `{job="good"}`, now); n != 2 {
		t.Fatalf("good writer's series = %d, want 2: bad input lost other data", n)
	}
	if n := seriesCount(t, ts, `good_before{job="good"} == 1`, now); n != 1 {
		t.Fatal("the out-of-order write changed the accepted sample")
	}
	if n := seriesCount(t, ts, `{__name__=~"ancient|bad_labels"}`, now); n != 0 {
		t.Fatalf("rejected series were stored: %d", n)
	}
	if v := ts.metricValue(t, `nxwatcher_http_requests_total{code="400",handler="/api/v1/write"}`); v != 6 {
		t.Fatalf("400s counted = %v, want 6", v)
	}
	if v := ts.metricValue(t, `nxwatcher_http_requests_total{code="413",handler="/api/v1/write"}`); v != 1 {
		t.Fatalf("413s counted = %v, want 1", v)
	}
}

func TestInvalidPromQLIsBadData(t *testing.T) {
	ts := startServer(t, "metrics:\n  prometheus:\n    global: {scrape_interval: 1h}\n")
	code, body := ts.get(t, "/api/v1/query?query=sum(rate(x[5m])")
	if code != http.StatusBadRequest || !strings.Contains(body, `"errorType":"bad_data"`) {
		t.Fatalf("invalid PromQL = %d %s, want 400 bad_data", code, body)
	}
	code, body = ts.get(t, "/api/v1/query_range?query=up&start=10&end=1&step=1")
	if code != http.StatusBadRequest || !strings.Contains(body, "end timestamp must not be before start time") {
		t.Fatalf("bad range = %d %s", code, body)
	}
	_, _, _, err := ts.promAPI(t).Query(t.Context(), "up{", time.Now())
	var apiErr *promv1.Error
	if !asError(err, &apiErr) || apiErr.Type != promv1.ErrBadData {
		t.Fatalf("client error = %v, want bad_data", err)
	}
}

func TestQueryLimitsAreConfigurable(t *testing.T) {
	ts := startServer(t, "metrics:\n  query:\n    max_samples: 100\n  prometheus:\n    global: {scrape_interval: 1h}\n")
	w := remoteWriter(t, ts.url)
	now := time.Now().Truncate(time.Second)
	var samples []prompb.Sample
	for i := range 200 {
		samples = append(samples, prompb.Sample{Timestamp: now.Add(time.Duration(i-200) * time.Second).UnixMilli(), Value: float64(i)})
	}
	if err := writeV1(t, w, "many", nil, samples...); err != nil {
		t.Fatal(err)
	}
	// Within the limit.
	if n := seriesCount(t, ts, `count_over_time(many[50s])`, now); n != 1 {
		t.Fatalf("small query = %d series", n)
	}
	// 200 samples loaded at once > max_samples 100.
	code, body := ts.get(t, "/api/v1/query?query=count_over_time(many[5m])&time="+unixString(now))
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "too many samples") {
		t.Fatalf("over max_samples = %d %s, want 422 too many samples", code, body)
	}
	// 2.6M subquery steps cannot finish in 30ms (the step limit is lifted to reach the timeout).
	ts = startServer(t, "metrics:\n  query:\n    timeout: 30ms\n    max_subquery_steps: 0\n  prometheus:\n    global: {scrape_interval: 1h}\n")
	code, body = ts.get(t, "/api/v1/query?query=count_over_time(vector(1)[30d:1s])")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"errorType":"timeout"`) {
		t.Fatalf("over timeout = %d %s, want 503 timeout", code, body)
	}
}

func unixString(t time.Time) string {
	return strings.TrimSuffix(model.TimeFromUnixNano(t.UnixNano()).String(), ".000")
}

func asError(err error, target **promv1.Error) bool {
	e, ok := err.(*promv1.Error)
	if ok {
		*target = e
	}
	return ok
}

var _ = remoteapi.WriteV1MessageType
