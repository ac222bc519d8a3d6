package lokiapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/nx-watcher/nxwatcher/internal/otlp"
)

// lines returns every line a log query finds for q over the test window,
// with its count.
func (e *env) lines(t *testing.T, q string) map[string]int {
	t.Helper()
	p := url.Values{"query": {q}, "start": {fmt.Sprint(ts(-8000).UnixNano())}, "end": {fmt.Sprint(ts(8000).UnixNano())}, "limit": {"5000"}}
	code, body := e.get(t, "/loki/api/v1/query_range", p)
	if code != 200 {
		t.Fatalf("query %s: %d %s", q, code, body)
	}
	var r struct {
		Data struct {
			Result []struct {
				Values [][2]string `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, s := range r.Data.Result {
		for _, v := range s.Values {
			out[v[1]]++
		}
	}
	return out
}

func dupsDropped(e *env) float64 {
	mfs, _ := e.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "nxwatcher_logstore_duplicate_entries_dropped_total" {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == "ingest" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// A push refused in part answers as Loki does (status, which entries, why,
// "total ignored: N out of M"), stores the rest, and a sender that retries
// the same push stores nothing twice.
func TestPartialPushAndRetryStoreOnce(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Limits.MaxLineSize = 64 })
	// One stream is ahead by an hour, so its old entry is too far behind.
	if code, msg := e.pushProto(t, []push.Stream{{Labels: `{app="ooo"}`, Entries: []push.Entry{{Timestamp: ts(3500), Line: "ahead"}}}}); code != 204 {
		t.Fatalf("%d %s", code, msg)
	}
	req := []push.Stream{
		{Labels: `{app="ooo"}`, Entries: []push.Entry{{Timestamp: ts(-200), Line: "behind"}, {Timestamp: ts(3400), Line: "in window"}}},
		{Labels: `{app="mix"}`, Entries: []push.Entry{{Timestamp: ts(1), Line: "ok 1"}, {Timestamp: ts(2), Line: strings.Repeat("x", 65)}, {Timestamp: ts(3), Line: "ok 3"}}},
	}
	var first string
	for attempt := range 3 {
		code, msg := e.pushProto(t, req)
		if code != http.StatusBadRequest {
			t.Fatalf("attempt %d: %d %s", attempt, code, msg)
		}
		for _, want := range []string{
			fmt.Sprintf("entry with timestamp %s ignored, reason: 'entry too far behind, oldest acceptable timestamp is: %s',\nuser 'fake', total ignored: 1 out of 2 for stream: {app=\"ooo\", service_name=\"ooo\"}",
				ts(-200).UTC(), ts(3500).Add(-time.Hour).UTC().Format(time.RFC3339)),
			"Max entry size '64' bytes exceeded for stream '{app=\"mix\", service_name=\"mix\"}' while adding an entry with length '65' bytes",
		} {
			if !strings.Contains(msg, want) {
				t.Fatalf("attempt %d: answer %q lacks %q", attempt, msg, want)
			}
		}
		if attempt == 0 {
			first = msg
		} else if msg != first {
			t.Fatalf("a retry is answered differently:\n%s\nthen\n%s", first, msg)
		}
	}
	got := e.lines(t, `{app=~"ooo|mix"}`)
	for _, l := range []string{"ahead", "in window", "ok 1", "ok 3"} {
		if got[l] != 1 {
			t.Errorf("%q stored %d times, want once", l, got[l])
		}
	}
	if len(got) != 4 {
		t.Errorf("stored %v", got)
	}
	if n := dupsDropped(e); n != 2*3 {
		t.Errorf("duplicates dropped %v, want 6 (3 stored entries, 2 retries)", n)
	}
	// The same retry through the JSON encoding is deduplicated too.
	js := fmt.Sprintf(`{"streams":[{"stream":{"app":"mix"},"values":[["%d","ok 1"],["%d","ok 3"]]}]}`, ts(1).UnixNano(), ts(3).UnixNano())
	if code, msg := e.post(t, "/loki/api/v1/push", "application/json", "", []byte(js)); code != 204 {
		t.Fatalf("json retry: %d %s", code, msg)
	}
	if got := e.lines(t, `{app="mix"}`); got["ok 1"] != 1 || got["ok 3"] != 1 {
		t.Fatalf("after json retry %v", got)
	}
}

// Over the stream limit, the new stream is refused with Loki's 429 (retry
// later) and the other streams of the push are stored; the retry that a 429
// invites stores nothing twice, and once the limit is raised it stores the
// refused stream.
func TestStreamLimitRetryIsHarmless(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Limits.MaxGlobalStreamsPerUser = 1 })
	req := []push.Stream{
		{Labels: `{app="a"}`, Entries: []push.Entry{{Timestamp: ts(1), Line: "a1"}, {Timestamp: ts(2), Line: "a2"}}},
		{Labels: `{app="b"}`, Entries: []push.Entry{{Timestamp: ts(1), Line: "b1"}, {Timestamp: ts(2), Line: "b2"}, {Timestamp: ts(3), Line: "b3"}}},
	}
	for range 2 {
		code, msg := e.pushProto(t, req)
		if code != http.StatusTooManyRequests || !strings.Contains(msg, `Maximum active stream limit exceeded when trying to create stream {app="b", service_name="b"}`) ||
			!strings.Contains(msg, "total ignored: 3 out of 3") {
			t.Fatalf("%d %s", code, msg)
		}
	}
	cfg := DefaultConfig()
	cfg.Limits.MaxGlobalStreamsPerUser = 2
	if err := e.api.ApplyConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if code, msg := e.pushProto(t, req); code != 204 {
		t.Fatalf("after raising the limit: %d %s", code, msg)
	}
	got := e.lines(t, `{app=~"a|b"}`)
	for _, l := range []string{"a1", "a2", "b1", "b2", "b3"} {
		if got[l] != 1 {
			t.Errorf("%q stored %d times", l, got[l])
		}
	}
}

func otlpBatch(lines ...string) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "partial")
	lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
	for i, l := range lines {
		lr := lrs.AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(ts(i)))
		lr.Body().SetStr(l)
	}
	return ld
}

// OTLP: a batch stored in part returns *otlp.PartialSuccessError with the
// exact number refused; all invalid is permanent; a limit that refuses
// everything is retryable; retries store nothing twice.
func TestOTLPPartialSuccess(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Limits.MaxLineSize = 8 })
	batch := otlpBatch("short", "this one is too long", "tiny", "also far too long")
	for range 2 {
		err := e.api.ConsumeLogs(t.Context(), batch)
		var ps *otlp.PartialSuccessError
		if !errors.As(err, &ps) || ps.Rejected != 2 || !strings.Contains(ps.Reason, "Max entry size '8' bytes exceeded") {
			t.Fatalf("ConsumeLogs: %v", err)
		}
		var perr *PushError
		if !errors.As(err, &perr) || perr.Status != 400 {
			t.Fatalf("no Loki status in %v", err)
		}
		if errors.Is(err, otlp.ErrInvalidInput) {
			t.Fatal("a partial success must not read as invalid input")
		}
	}
	if got := e.lines(t, `{service_name="partial"}`); got["short"] != 1 || got["tiny"] != 1 || len(got) != 2 {
		t.Fatalf("stored %v", got)
	}
	if err := e.api.ConsumeLogs(t.Context(), otlpBatch("much too long", "far too long")); !errors.Is(err, otlp.ErrInvalidInput) {
		t.Fatalf("all invalid: %v", err)
	}
	// The HTTP endpoint answers 200 with partial_success.
	body := fmt.Sprintf(`{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"partial"}}]},"scopeLogs":[{"logRecords":[`+
		`{"timeUnixNano":"%d","body":{"stringValue":"ok"}},{"timeUnixNano":"%d","body":{"stringValue":"way too long"}}]}]}]}`, ts(10).UnixNano(), ts(11).UnixNano())
	code, msg := e.post(t, "/otlp/v1/logs", "application/json", "", []byte(body))
	if code != 200 || !strings.Contains(msg, `"partialSuccess":{"rejectedLogRecords":"1","errorMessage":"Max entry size '8' bytes exceeded`) {
		t.Fatalf("otlp http partial: %d %s", code, msg)
	}
}

// A rate limit refuses the whole batch: nothing is stored and the error is
// neither a partial success nor invalid input, so the receiver asks the
// sender to retry.
func TestOTLPRateLimitedIsRetryable(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Limits.IngestionRateMB = 0.00001 // 10 bytes/s
		c.Limits.IngestionBurstSizeMB = 0.00001
	})
	err := e.api.ConsumeLogs(t.Context(), otlpBatch("a line well over ten bytes"))
	var ps *otlp.PartialSuccessError
	if err == nil || errors.As(err, &ps) || errors.Is(err, otlp.ErrInvalidInput) {
		t.Fatalf("rate limited: %v", err)
	}
	if n := testutil.ToFloat64(e.api.m.discardedEntries.WithLabelValues(reasonRateLimited)); n != 1 {
		t.Fatalf("rate_limited discarded %v", n)
	}
}

// A live tail shows what was stored: a sender's retried lines once, and no
// entry the store refused.
func TestTailSkipsRetriesAndRefusals(t *testing.T) {
	e := newEnv(t, nil)
	u := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/loki/api/v1/tail?" + url.Values{"query": {`{app="tailed"}`}, "start": {fmt.Sprint(ts(0).UnixNano())}}.Encode()
	conn, _, err := websocket.DefaultDialer.DialContext(t.Context(), u, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	first := []push.Entry{{Timestamp: ts(3500), Line: "first"}}
	if code, msg := e.pushProto(t, []push.Stream{{Labels: `{app="tailed"}`, Entries: first}}); code != 204 {
		t.Fatalf("%d %s", code, msg)
	}
	// The retry of "first", an entry too far behind, and a new one.
	retry := []push.Entry{first[0], {Timestamp: ts(-200), Line: "too far behind"}, {Timestamp: ts(3501), Line: "second"}}
	if code, msg := e.pushProto(t, []push.Stream{{Labels: `{app="tailed"}`, Entries: retry}}); code != 400 {
		t.Fatalf("%d %s", code, msg)
	}
	var got []string
	for len(got) < 2 {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		var msg tailResponse
		if err := conn.ReadJSON(&msg); err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		for _, s := range msg.Streams {
			for _, v := range s.Values {
				got = append(got, v[1])
			}
		}
	}
	if len(got) != 2 || got[0] != "first" || got[1] != "second" {
		t.Fatalf("tail sent %q, want first, second", got)
	}
	conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
}
