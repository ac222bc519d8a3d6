package logs

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/nx-watcher/nxwatcher/internal/logs/logql"
)

var jsonMessages = []string{
	`request served`,
	`request served: \"GET\" done`,
	`upstream said \"ok\"\tin 2 tries`,
	`caf\u00e9 order \u2192 kitchen`,
	`multi\nline\\path C:\\tmp`,
}

// JSONLine makes a JSON line of the same shape as Line (level, caller,
// method, path, status as a number, duration, trace ID, a message with
// escapes), ~200–290 bytes; every third line carries a nested object
// (http.proto, http.client.ip) and an array, as JSON loggers write them.
func JSONLine(r *rand.Rand, i int) string {
	return jsonLine(r, i, 200)
}

func jsonLine(r *rand.Rand, i, status int) string {
	lvl := "info"
	if i%50 == 0 {
		lvl = "error"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `{"level":%q,"caller":"handler.go:%d","method":"GET","path":"%s/%d","status":%d,"duration_ms":%d.%d,"trace_id":"%016x%016x","msg":"%s"`,
		lvl, 100+i%400, paths[i%len(paths)], r.IntN(100000), status, r.IntN(200), r.IntN(10), r.Uint64(), r.Uint64(), jsonMessages[i%len(jsonMessages)])
	if i%3 == 0 {
		fmt.Fprintf(&b, `,"http":{"proto":"HTTP/1.1","client":{"ip":"10.0.%d.%d","port":%d}},"tags":["api","v1"]`, i%250, r.IntN(250), 1024+r.IntN(60000))
	}
	b.WriteByte('}')
	return b.String()
}

// millionJSONLine is JSONLine with status 503 on every 97th line, as
// millionLines' logfmt lines.
func millionJSONLine(r *rand.Rand, k int) string {
	status := 200
	if k%97 == 0 {
		status = 503
	}
	return jsonLine(r, k, status)
}

// TestJSONLinesAreValid: the bench lines decode, so the benchmarks measure
// the parser, not its error path.
func TestJSONLinesAreValid(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for k := range 300 {
		l := millionJSONLine(r, k)
		if !strconv.CanBackquote(l) || !strings.HasPrefix(l, `{"level":"`) {
			t.Fatalf("line %d: %s", k, l)
		}
		var v map[string]any
		if err := jsonUnmarshal(l, &v); err != nil {
			t.Fatalf("line %d: %v: %s", k, err, l)
		}
	}
}

// BenchmarkLogQLMetricJSON is BenchmarkLogQLMetric's parser query over
// 64 MiB of JSON lines.
func BenchmarkLogQLMetricJSON(b *testing.B) {
	db, raw, _ := scanStoreOf(b, 64, JSONLine)
	eng := logql.NewEngine(logql.EngineOpts{})
	for _, q := range []string{
		`sum by (level) (count_over_time({app="bench"} | json [1m]))`,
		`sum by (ip) (count_over_time({app="bench"} | json ip="http.client.ip", lvl="level" | lvl="error" [1m]))`,
	} {
		b.Run(q, func(b *testing.B) { timeMetricQuery(b, eng, db, raw, q) })
	}
}

// BenchmarkHTTPMetricQueryJSON is BenchmarkHTTPMetricQuery's status rate
// over 1M JSON lines (every 97th with status 503).
func BenchmarkHTTPMetricQueryJSON(b *testing.B) {
	_, api, raw, start, span := millionLinesOf(b, 0, false, millionJSONLine)
	httpQueries(b, api, raw, start, span,
		`sum by (service) (rate({app="bench"} | json | status >= 500 [1m]))`,
	)
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
