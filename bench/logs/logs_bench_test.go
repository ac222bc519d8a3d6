package logs

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/logs/logql"
	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
	"github.com/nx-watcher/nxwatcher/internal/logs/lokiapi"
)

var paths = []string{"/api/v1/users", "/api/v1/orders", "/api/v1/cart", "/healthz", "/api/v1/payments"}

// Line makes a realistic ~160-byte logfmt line with a random trace ID.
func Line(r *rand.Rand, i int) string {
	lvl := "info"
	if i%50 == 0 {
		lvl = "error"
	}
	return fmt.Sprintf("level=%s caller=handler.go:%d method=GET path=%s/%d status=200 duration=%d.%dms trace_id=%016x%016x msg=\"request served\"",
		lvl, 100+i%400, paths[i%len(paths)], r.IntN(100000), r.IntN(200), r.IntN(10), r.Uint64(), r.Uint64())
}

// PushBody builds one snappy protobuf push of n lines over `streams` streams,
// as Promtail sends them.
func PushBody(r *rand.Rand, base time.Time, seq, n, streams int) ([]byte, int) {
	req := &push.PushRequest{}
	raw := 0
	per := n / streams
	for s := range streams {
		st := push.Stream{Labels: fmt.Sprintf(`{app="bench", namespace="prod", pod="api-%d"}`, s)}
		for i := range per {
			k := seq*n + s*per + i
			l := Line(r, k)
			raw += len(l)
			st.Entries = append(st.Entries, push.Entry{Timestamp: base.Add(time.Duration(k) * time.Microsecond), Line: l})
		}
		req.Streams = append(req.Streams, st)
	}
	b, _ := proto.Marshal(req)
	return snappy.Encode(nil, b), raw
}

type server struct {
	db  *logstore.DB
	api *lokiapi.API
}

func newServer(b *testing.B, fsync string) *server {
	cfg := lokiapi.DefaultConfig()
	cfg.WAL.Fsync = fsync
	cfg.Limits.IngestionRateMB = 0 // measure the engine, not the limiter
	cfg.Limits.RejectOldSamples = false
	cfg.Limits.CreationGracePeriod = 0
	db, err := logstore.Open(b.TempDir(), cfg.StoreOptions(), logstore.Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	cfg.Limits.CreationGracePeriod = 1 << 62
	api, err := lokiapi.New(cfg, lokiapi.Deps{Registerer: prometheus.NewRegistry(), Store: db})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { api.Close(); db.Close() })
	return &server{db, api}
}

// BenchmarkPush measures /loki/api/v1/push end to end in-process: snappy,
// protobuf decode, validation, dedup against the head, WAL write
// (acknowledged after it), head append, chunk cutting with bloom building.
// b.SetBytes uses raw line bytes, so MB/s is log volume; lines/s is reported
// too, and cpu-ns/line is the process CPU time (user+sys, GC included) spent
// inside the timed pushes per line, which holds on a busy machine where
// wall-clock figures do not. Every push carries new timestamps, so no line is
// a duplicate of an earlier one (64 line sets are re-stamped and re-encoded,
// untimed, for each push).
func BenchmarkPush(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	const batch, streams = 1000, 10
	reqs := make([]*push.PushRequest, 64)
	raw := 0
	base := time.Now().Add(-time.Hour)
	for i := range reqs {
		var n int
		reqs[i], n = PushRequest(r, base, i, batch, streams)
		raw += n
	}
	// interval: fsync once a second (the default; acknowledged once in the
	// WAL, which survives a process crash); always: fsync before every answer.
	for _, fsync := range []string{"interval", "always"} {
		b.Run("fsync="+fsync, func(b *testing.B) {
			s := newServer(b, fsync)
			b.SetBytes(int64(raw / len(reqs)))
			timePushes(b, s, batch, "application/x-protobuf", func(i int) []byte {
				return Restamp(reqs[i%len(reqs)], base, i, batch, streams)
			})
		})
	}
}

// PushRequest builds one push of n lines over `streams` streams.
func PushRequest(r *rand.Rand, base time.Time, seq, n, streams int) (*push.PushRequest, int) {
	req := &push.PushRequest{}
	raw := 0
	per := n / streams
	for s := range streams {
		st := push.Stream{Labels: fmt.Sprintf(`{app="bench", namespace="prod", pod="api-%d"}`, s)}
		for i := range per {
			k := seq*n + s*per + i
			l := Line(r, k)
			raw += len(l)
			st.Entries = append(st.Entries, push.Entry{Timestamp: base.Add(time.Duration(k) * time.Microsecond), Line: l})
		}
		req.Streams = append(req.Streams, st)
	}
	return req, raw
}

// Restamp gives req the timestamps of push number seq and encodes it as
// Promtail does (snappy protobuf).
func Restamp(req *push.PushRequest, base time.Time, seq, n, streams int) []byte {
	per := n / streams
	for s := range req.Streams {
		for i := range req.Streams[s].Entries {
			req.Streams[s].Entries[i].Timestamp = base.Add(time.Duration(seq*n+s*per+i) * time.Microsecond)
		}
	}
	b, _ := proto.Marshal(req)
	return snappy.Encode(nil, b)
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// scanStore builds a store with ~mb MiB of raw log lines flushed to a
// compacted block, returning it and the raw size.
func scanStore(b *testing.B, mb int) (*logstore.DB, int64, string) {
	return scanStoreOf(b, mb, Line)
}

// scanStoreOf is scanStore with lines made by mk (Line or JSONLine).
func scanStoreOf(b *testing.B, mb int, mk func(*rand.Rand, int) string) (*logstore.DB, int64, string) {
	// Fanout 2: the flushed blocks are compacted into one, as before tiered compaction.
	opts := logstore.Options{CompactionFanout: 2}
	coldCompression(&opts)
	db, err := logstore.Open(b.TempDir(), opts, logstore.Deps{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	r := rand.New(rand.NewPCG(3, 4))
	var raw int64
	needleAt := -1
	needle := ""
	base := time.Unix(1_700_000_000, 0)
	ls := []labels.Labels{}
	for s := range 4 {
		ls = append(ls, labels.FromStrings("app", "bench", "pod", fmt.Sprint("api-", s)))
	}
	for i := 0; raw < int64(mb)<<20; i++ {
		app := db.Appender()
		for j := range 1000 {
			k := i*1000 + j
			l := mk(r, k)
			if needleAt < 0 && raw > int64(mb)<<19 { // one line in the middle
				needleAt = k
				needle = l[strings.Index(l, "trace_id=")+9:][:32]
			}
			raw += int64(len(l))
			app.Append(ls[k%4], logstore.Entry{Timestamp: base.Add(time.Duration(k) * time.Millisecond).UnixNano(), Line: l})
		}
		if _, err := app.Commit(); err != nil {
			b.Fatal(err)
		}
		if i%200 == 199 {
			db.FlushHead()
		}
	}
	if err := db.FlushHead(); err != nil {
		b.Fatal(err)
	}
	for len(db.Blocks()) > 1 {
		before := len(db.Blocks())
		if err := db.Compact(); err != nil {
			b.Fatal(err)
		}
		if len(db.Blocks()) == before {
			break
		}
	}
	return db, raw, needle
}

// BenchmarkScanBruteForce reads every chunk and runs the line filter on every
// line: the cost of `|= "needle"` with no index help. Single worker, so the
// figure is per core.
func BenchmarkScanBruteForce(b *testing.B) {
	db, raw, traceID := scanStore(b, 64)
	for _, tc := range []struct {
		name, needle string
		want         int
	}{
		{"trace_id", traceID, 1},             // hex: every byte of it is common in logs
		{"rare_word", "OutOfMemoryError", 0}, // upper case: the pivot byte is rare
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(raw)
			b.ReportAllocs()
			cpu := startCPU()
			for i := 0; i < b.N; i++ {
				n := scan(b, db, logstore.SelectHints{Contains: []string{tc.needle}, IgnoreBlooms: true})
				if n != tc.want {
					b.Fatalf("found %d lines, want %d", n, tc.want)
				}
			}
			cpu.report(b, raw)
		})
	}
}

// BenchmarkScanGenericFilter is the brute-force scan through the generic
// per-line filter (the path `|~` and `!=` take): every line is materialised.
func BenchmarkScanGenericFilter(b *testing.B) {
	db, raw, needle := scanStore(b, 64)
	b.SetBytes(raw)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for i := 0; i < b.N; i++ {
		n := scan(b, db, logstore.SelectHints{Filter: func(l string) bool { return strings.Contains(l, needle) }})
		if n != 1 {
			b.Fatalf("found %d lines, want 1", n)
		}
	}
	cpu.report(b, raw)
}

// BenchmarkScanNeedleIndexed runs the same search with the needle handed to
// the store, so chunk blooms skip chunks that cannot hold it. SetBytes is the
// same raw size, so MB/s compares directly with the brute-force scan.
func BenchmarkScanNeedleIndexed(b *testing.B) {
	db, raw, needle := scanStore(b, 64)
	b.SetBytes(raw)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := scan(b, db, logstore.SelectHints{Contains: []string{needle}})
		if n != 1 {
			b.Fatalf("found %d lines, want 1", n)
		}
	}
}

// BenchmarkLogQLNeedle is the same needle query through the LogQL engine
// (pushdown of the line filter and its needle).
func BenchmarkLogQLNeedle(b *testing.B) {
	db, raw, needle := scanStore(b, 64)
	eng := logql.NewEngine(logql.EngineOpts{})
	q := fmt.Sprintf(`{app="bench"} |= %q`, needle)
	b.SetBytes(raw)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := eng.Exec(context.Background(), db, q, logql.Params{Start: time.Unix(0, 0), End: time.Now(), Limit: 100, Backward: true})
		if err != nil {
			b.Fatal(err)
		}
		if n := len(res.Value.(logql.Streams)); n != 1 {
			b.Fatalf("%d streams", n)
		}
	}
}

// cpuClock measures the process's user+system CPU time over a benchmark, so
// a throughput can be reported per CPU-second actually used: on the shared
// machine, wall-clock MB/s drops whenever another build takes the core.
type cpuClock struct{ t0 time.Duration }

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuClock { return cpuClock{processCPU()} }

// report adds "cpuMB/s": bytes per op × ops / CPU seconds used.
func (c cpuClock) report(b *testing.B, bytesPerOp int64) {
	if d := processCPU() - c.t0; d > 0 {
		b.ReportMetric(float64(bytesPerOp)*float64(b.N)/d.Seconds()/1e6, "cpuMB/s")
	}
}

func scan(b *testing.B, db *logstore.DB, h logstore.SelectHints) int {
	q, err := db.Querier(0, 1<<62)
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	n := 0
	ss := q.Select(context.Background(), h, labels.MustNewMatcher(labels.MatchEqual, "app", "bench"))
	for ss.Next() {
		it := ss.At().Iterator(context.Background())
		for it.Next() {
			n++
		}
		if err := it.Err(); err != nil {
			b.Fatal(err)
		}
		it.Close()
	}
	return n
}

// BenchmarkLogQLMetric is a dashboard-style query over the whole 64 MiB:
// every line is decoded, parsed by logfmt and counted per level.
func BenchmarkLogQLMetric(b *testing.B) {
	db, raw, _ := scanStore(b, 64)
	eng := logql.NewEngine(logql.EngineOpts{})
	for _, q := range []string{
		`sum by (pod) (count_over_time({app="bench"}[1m]))`,
		`sum by (level) (count_over_time({app="bench"} | logfmt [1m]))`,
	} {
		b.Run(q, func(b *testing.B) { timeMetricQuery(b, eng, db, raw, q) })
	}
}

// BenchmarkLogQLRecent is Grafana's default: the newest 1000 lines of a stream selector.
func BenchmarkLogQLRecent(b *testing.B) {
	db, _, _ := scanStore(b, 64)
	eng := logql.NewEngine(logql.EngineOpts{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := eng.Exec(context.Background(), db, `{app="bench"}`, logql.Params{Start: time.Unix(0, 0), End: time.Now(), Limit: 1000, Backward: true})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, s := range res.Value.(logql.Streams) {
			n += len(s.Entries)
		}
		if n != 1000 {
			b.Fatalf("%d lines", n)
		}
	}
}

// BenchmarkPushParallel sends pushes from 8 goroutines per core, as many
// Promtail agents do; with fsync=always concurrent pushes share fsyncs.
// 64 line sets are stamped with 1024 distinct timestamp ranges beforehand,
// so the first 1024 pushes repeat no line (the store drops exact repeats);
// beyond that (more than ~5 s of pushes at 2 cores) bodies repeat.
func BenchmarkPushParallel(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	const batch, streams = 1000, 10
	reqs := make([]*push.PushRequest, 64)
	raw := 0
	base := time.Now().Add(-time.Hour)
	for i := range reqs {
		var n int
		reqs[i], n = PushRequest(r, base, i, batch, streams)
		raw += n
	}
	bodies := make([][]byte, 1024)
	for i := range bodies {
		bodies[i] = Restamp(reqs[i%len(reqs)], base, i, batch, streams)
	}
	for _, fsync := range []string{"interval", "always"} {
		b.Run("fsync="+fsync, func(b *testing.B) {
			s := newServer(b, fsync)
			b.SetBytes(int64(raw / len(reqs)))
			b.ReportAllocs()
			b.SetParallelism(8)
			var next atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(next.Add(1))
					req := httptest.NewRequest(http.MethodPost, "/loki/api/v1/push", bytes.NewReader(bodies[i%len(bodies)]))
					req.Header.Set("Content-Type", "application/x-protobuf")
					w := httptest.NewRecorder()
					s.api.Push(w, req)
					if w.Code != http.StatusNoContent {
						b.Errorf("push: %d %s", w.Code, w.Body)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// timePushes pushes body(i) for i < b.N to the server's Loki push handler
// and reports lines/s and the process CPU spent inside the pushes per line
// (building the bodies is untimed).
func timePushes(b *testing.B, s *server, batch int, contentType string, body func(i int) []byte) {
	b.ReportAllocs()
	var cpu time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		req := httptest.NewRequest(http.MethodPost, "/loki/api/v1/push", bytes.NewReader(body(i)))
		req.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		c0 := cpuTime()
		b.StartTimer()
		s.api.Push(w, req)
		b.StopTimer()
		cpu += cpuTime() - c0
		b.StartTimer()
		if w.Code != http.StatusNoContent {
			b.Fatalf("push: %d %s", w.Code, w.Body)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*batch), "cpu-ns/line")
}

// timeMetricQuery runs a 2 h metric query at 1 m steps over raw bytes of
// logs and reports them per CPU-second (all cores the query used, GC
// included): the per-core figure on a shared machine.
func timeMetricQuery(b *testing.B, eng *logql.Engine, db *logstore.DB, raw int64, q string) {
	b.SetBytes(raw)
	b.ReportAllocs()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		_, err := eng.Exec(context.Background(), db, q, logql.Params{Start: time.Unix(1_700_000_000, 0), End: time.Unix(1_700_000_000, 0).Add(2 * time.Hour), Step: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(raw)*float64(b.N)/cpu.Seconds()/1e6, "cpuMB/s")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/query")
}
