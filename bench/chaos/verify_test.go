package chaos

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// The read-back must count what the server lost or stored twice; these
// tests run it against fake APIs whose answers are known.

func TestVerifyLinesCountsLostAndDuplicatedAcrossPages(t *testing.T) {
	defer func(n int) { LokiPageLimit = n }(LokiPageLimit)
	LokiPageLimit = 3
	type entry struct {
		ts   int64
		line string
	}
	base := time.Now().Add(-time.Minute).UnixNano()
	// a and d stored twice (d's copies straddle a page boundary), c lost.
	stored := []entry{{base + 1, "a"}, {base + 1, "a"}, {base + 2, "b"}, {base + 4, "d"}, {base + 4, "d"}, {base + 5, "e"}, {base + 6, "f"}}
	acked := map[string]int64{"a": base + 1, "b": base + 2, "c": base + 3, "d": base + 4, "e": base + 5, "f": base + 6}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/loki/api/v1/query_range" || q.Get("direction") != "forward" || q.Get("query") != LokiStream(0) {
			http.Error(w, "unexpected "+r.URL.String(), 400)
			return
		}
		start, _ := strconv.ParseInt(q.Get("start"), 10, 64)
		limit, _ := strconv.Atoi(q.Get("limit"))
		var vals [][2]string
		for _, e := range stored {
			if e.ts >= start && len(vals) < limit {
				vals = append(vals, [2]string{strconv.FormatInt(e.ts, 10), e.line})
			}
		}
		// Two result streams, as structured metadata can split one stream.
		half := len(vals) / 2
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{
			"resultType": "streams",
			"result": []any{
				map[string]any{"stream": map[string]string{"job": "chaos"}, "values": vals[:half]},
				map[string]any{"stream": map[string]string{"job": "chaos", "x": "y"}, "values": vals[half:]},
			},
		}})
	}))
	defer srv.Close()
	r, err := VerifyLines(t.Context(), srv.URL, []int{0}, acked, map[string]bool{"a": true}, time.Unix(0, base))
	if err != nil {
		t.Fatal(err)
	}
	if r.Checked != 6 || r.Lost != 1 || r.Duplicated != 2 || r.DupResent != 1 {
		t.Errorf("checked %d lost %d duplicated %d (resent %d), want 6 1 2 (1); %q", r.Checked, r.Lost, r.Duplicated, r.DupResent, r.Examples)
	}
}

func TestVerifySamplesCountsLost(t *testing.T) {
	now := time.Now()
	ts1, ts2 := now.Add(-2*time.Second).UnixMilli(), now.Add(-time.Second).UnixMilli()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Query().Get("query"), "chaos_rw_sample[") {
			http.Error(w, "unexpected query", 400)
			return
		}
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"matrix","result":[
			{"metric":{"__name__":"chaos_rw_sample","sender":"0","series":"0"},"values":[[%.3f,"1"],[%.3f,"7"]]}]}}`,
			float64(ts1)/1000, float64(ts2)/1000)
	}))
	defer srv.Close()
	acked := map[string]map[int64]float64{
		"0/0": {ts1: 1, ts2: 2}, // ts2 holds another value
		"0/1": {ts1: 1},         // series missing
	}
	r, err := VerifySamples(t.Context(), srv.URL, acked, now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if r.Checked != 3 || r.Lost != 2 {
		t.Errorf("checked %d lost %d, want 3 2; %q", r.Checked, r.Lost, r.Examples)
	}
}

func TestVerifySpansCountsLostAndDuplicated(t *testing.T) {
	id := func(b byte) pcommon.TraceID { return pcommon.TraceID{15: b} }
	sid := func(b byte) pcommon.SpanID { return pcommon.SpanID{7: b} }
	// Trace 1: span 1 twice, span 2 missing. Trace 2: not found.
	stored := map[string][]pcommon.SpanID{id(1).String(): {sid(1), sid(1), sid(3)}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		spans, ok := stored[strings.TrimPrefix(r.URL.Path, "/api/traces/")]
		if !ok || r.Header.Get("Accept") != "application/protobuf" {
			http.Error(w, "trace not found", http.StatusNotFound)
			return
		}
		td := ptrace.NewTraces()
		ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
		for _, s := range spans {
			sp := ss.Spans().AppendEmpty()
			sp.SetSpanID(s)
		}
		b, _ := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
		_, _ = w.Write(b)
	}))
	defer srv.Close()
	r, err := VerifySpans(t.Context(), srv.URL, []AckedTrace{
		{ID: id(1), Spans: []pcommon.SpanID{sid(1), sid(2), sid(3)}, Resent: true},
		{ID: id(2), Spans: []pcommon.SpanID{sid(4)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Checked != 4 || r.Lost != 2 || r.Duplicated != 1 || r.DupResent != 1 {
		t.Errorf("checked %d lost %d duplicated %d (resent %d), want 4 2 1 (1); %q", r.Checked, r.Lost, r.Duplicated, r.DupResent, r.Examples)
	}
}
