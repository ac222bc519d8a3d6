package logstore

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"go.uber.org/goleak"

	"github.com/nx-watcher/nxwatcher/internal/testclock"
)

const crashEnv = "LOGSTORE_CRASH_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashEnv); dir != "" {
		// The parent's time origin, so both sides agree across an hour boundary.
		base, _ = strconv.ParseInt(os.Getenv(crashEnv+"_BASE"), 10, 64)
		crashChild(dir)
		return
	}
	goleak.VerifyTestMain(m)
}

func openTest(t testing.TB, dir string, mod func(*Options)) *DB {
	t.Helper()
	opts := DefaultOptions()
	opts.ChunkTargetSize = 4 << 10 // many chunks from little data
	opts.WALSegmentSize = 64 << 10
	opts.CompactionFanout = 2 // tests merge two or three blocks; TestTieredCompaction checks the default
	if mod != nil {
		mod(&opts)
	}
	db, err := Open(dir, opts, Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return db
}

type fixture struct {
	streams []labels.Labels
	want    map[string][]Entry // by stream labels, sorted by time
}

// base is the fixtures' time origin: the (CI-shiftable) test clock, never a calendar date.
var base = testclock.Base().UnixNano()

// fixtureBatches yields the fixture's commits: n entries per stream, some
// out of order, some with structured metadata. It records them in f.want.
func fixtureBatches(f *fixture, from, n int, commit func(ls []labels.Labels, es []Entry) error) error {
	for batch := from; batch < from+n; batch += 50 {
		var lss []labels.Labels
		var es []Entry
		for _, ls := range f.streams {
			for i := batch; i < min(batch+50, from+n); i++ {
				ts := base + int64(i)*int64(time.Millisecond)
				if i%7 == 3 {
					ts -= 3 * int64(time.Millisecond) // mild disorder
				}
				e := Entry{Timestamp: ts, Line: fmt.Sprintf("level=info stream=%s seq=%d msg=\"request served\" id=req-%06d", ls.Get("app"), i, i)}
				if i%10 == 0 {
					e.Metadata = labels.FromStrings("trace_id", fmt.Sprintf("%032x", i))
				}
				lss = append(lss, ls)
				es = append(es, e)
				f.want[ls.String()] = append(f.want[ls.String()], e)
			}
		}
		if err := commit(lss, es); err != nil {
			return err
		}
	}
	for k := range f.want {
		slices.SortStableFunc(f.want[k], func(a, b Entry) int { return cmpInt64(a.Timestamp, b.Timestamp) })
	}
	return nil
}

func commitTo(db *DB) func([]labels.Labels, []Entry) error {
	return func(lss []labels.Labels, es []Entry) error {
		app := db.Appender()
		for i := range es {
			app.Append(lss[i], es[i])
		}
		rej, err := app.Commit()
		if err == nil && len(rej) > 0 {
			err = fmt.Errorf("rejected: %v", rej)
		}
		return err
	}
}

func ingest(t testing.TB, db *DB, f *fixture, from, n int) {
	t.Helper()
	if err := fixtureBatches(f, from, n, commitTo(db)); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func newFixture() *fixture {
	f := &fixture{want: map[string][]Entry{}}
	for _, app := range []string{"api", "db", "web"} {
		f.streams = append(f.streams, labels.FromStrings("app", app, "env", "prod"))
	}
	f.streams = append(f.streams, labels.FromStrings("app", "api", "env", "dev"))
	return f
}

func readAll(t testing.TB, db *DB, hints SelectHints, ms ...*labels.Matcher) map[string][]Entry {
	t.Helper()
	q, err := db.Querier(minTime, maxTime)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	got := map[string][]Entry{}
	ss := q.Select(t.Context(), hints, ms...)
	for ss.Next() {
		s := ss.At()
		it := s.Iterator(t.Context())
		for it.Next() {
			e := it.At()
			got[s.Labels.String()] = append(got[s.Labels.String()], Entry{Timestamp: e.Timestamp, Line: strings.Clone(e.Line), Metadata: e.Metadata})
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		it.Close()
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

func sameEntries(a, b []Entry) bool {
	if len(a) != len(b) {
		return false
	}
	// Entries with equal timestamps may come in any order.
	key := func(e Entry) string { return strconv.FormatInt(e.Timestamp, 10) + e.Line + e.Metadata.String() }
	ka, kb := make([]string, len(a)), make([]string, len(b))
	for i := range a {
		if i > 0 && a[i].Timestamp < a[i-1].Timestamp {
			return false
		}
		ka[i], kb[i] = key(a[i]), key(b[i])
	}
	slices.Sort(ka)
	slices.Sort(kb)
	return slices.Equal(ka, kb)
}

// conformance checks what every state of the store must answer alike.
func conformance(t *testing.T, db *DB, f *fixture) {
	t.Run("all streams forward", func(t *testing.T) {
		got := readAll(t, db, SelectHints{}, labels.MustNewMatcher(labels.MatchRegexp, "app", ".+"))
		if len(got) != len(f.streams) {
			t.Fatalf("got %d streams, want %d", len(got), len(f.streams))
		}
		for k, want := range f.want {
			if !sameEntries(got[k], want) {
				t.Fatalf("stream %s: got %d entries, want %d (or order/content differs)", k, len(got[k]), len(want))
			}
		}
	})
	t.Run("backward", func(t *testing.T) {
		m := labels.MustNewMatcher(labels.MatchEqual, "app", "db")
		got := readAll(t, db, SelectHints{Backward: true}, m)
		k := labels.FromStrings("app", "db", "env", "prod").String()
		es := got[k]
		slices.Reverse(es)
		if !sameEntries(es, f.want[k]) {
			t.Fatalf("backward: got %d entries, want %d", len(es), len(f.want[k]))
		}
	})
	t.Run("time range and matchers", func(t *testing.T) {
		start, end := base+100*int64(time.Millisecond), base+200*int64(time.Millisecond)
		got := readAll(t, db, SelectHints{Start: start, End: end},
			labels.MustNewMatcher(labels.MatchEqual, "app", "api"), labels.MustNewMatcher(labels.MatchNotEqual, "env", "dev"))
		if len(got) != 1 {
			t.Fatalf("got %d streams, want 1", len(got))
		}
		k := labels.FromStrings("app", "api", "env", "prod").String()
		var want []Entry
		for _, e := range f.want[k] {
			if e.Timestamp >= start && e.Timestamp < end {
				want = append(want, e)
			}
		}
		if !sameEntries(got[k], want) {
			t.Fatalf("got %d entries, want %d", len(got[k]), len(want))
		}
	})
	t.Run("needle", func(t *testing.T) {
		needle := "id=req-000123"
		got := readAll(t, db, SelectHints{Contains: []string{needle}},
			labels.MustNewMatcher(labels.MatchRegexp, "app", ".+"))
		n := 0
		for _, es := range got {
			n += len(es)
		}
		if n != len(f.streams) {
			t.Fatalf("needle matched %d lines, want %d", n, len(f.streams))
		}
	})
	t.Run("labels", func(t *testing.T) {
		q, _ := db.Querier(minTime, maxTime)
		defer q.Close()
		names, _ := q.LabelNames(t.Context(), labels.MustNewMatcher(labels.MatchRegexp, "app", ".+"))
		vals, _ := q.LabelValues(t.Context(), "app", labels.MustNewMatcher(labels.MatchEqual, "env", "prod"))
		if !slices.Equal(names, []string{"app", "env"}) || !slices.Equal(vals, []string{"api", "db", "web"}) {
			t.Fatalf("names %v values %v", names, vals)
		}
	})
}

func TestConformanceHead(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	defer db.Close()
	f := newFixture()
	ingest(t, db, f, 0, 600)
	conformance(t, db, f)
}

func TestConformanceCompactedBlock(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	defer db.Close()
	f := newFixture()
	for i := range 3 {
		ingest(t, db, f, i*200, 200)
		if err := db.FlushHead(); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(db.Blocks()); n != 3 {
		t.Fatalf("%d blocks after 3 flushes", n)
	}
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	bs := db.Blocks()
	if len(bs) != 1 || bs[0].Compaction.Level != 2 || bs[0].Stats.Entries != 4*600 {
		t.Fatalf("after compaction: %+v", bs)
	}
	conformance(t, db, f)
}

func TestConformanceReopen(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir, nil)
	f := newFixture()
	ingest(t, db, f, 0, 300)
	if err := db.FlushHead(); err != nil {
		t.Fatal(err)
	}
	ingest(t, db, f, 300, 300) // stays in the head and WAL
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir, nil)
	defer db.Close()
	conformance(t, db, f)
}

func TestBloomSkipsChunks(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	defer db.Close()
	f := newFixture()
	ingest(t, db, f, 0, 2000)
	if err := db.FlushHead(); err != nil {
		t.Fatal(err)
	}
	before := testCounter(db.m.query.chunksSkipped)
	got := readAll(t, db, SelectHints{Contains: []string{"id=req-001234"}}, labels.MustNewMatcher(labels.MatchEqual, "app", "web"))
	skipped := testCounter(db.m.query.chunksSkipped) - before
	if skipped == 0 {
		t.Fatal("no chunk skipped by the bloom filter")
	}
	// The chunks kept must include the one with the needle.
	found := false
	for _, es := range got {
		for _, e := range es {
			found = found || strings.Contains(e.Line, "id=req-001234")
		}
	}
	if !found {
		t.Fatal("bloom filter skipped the chunk holding the needle")
	}
}

func TestRetention(t *testing.T) {
	now := time.Unix(0, base).Add(48 * time.Hour)
	db := openTest(t, t.TempDir(), func(o *Options) {
		o.Retention = 24 * time.Hour
		o.Now = func() time.Time { return now }
	})
	defer db.Close()
	f := newFixture()
	ingest(t, db, f, 0, 100)
	if err := db.FlushHead(); err != nil {
		t.Fatal(err)
	}
	if err := db.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	if n := len(db.Blocks()); n != 0 {
		t.Fatalf("%d blocks left past retention", n)
	}
}

func TestRetentionSize(t *testing.T) {
	db := openTest(t, t.TempDir(), func(o *Options) { o.RetentionSize = 1 })
	defer db.Close()
	f := newFixture()
	ingest(t, db, f, 0, 100)
	if err := db.FlushHead(); err != nil {
		t.Fatal(err)
	}
	ingest(t, db, f, 100, 100)
	if err := db.FlushHead(); err != nil {
		t.Fatal(err)
	}
	if err := db.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	if n := len(db.Blocks()); n != 0 {
		t.Fatalf("%d blocks left over the size cap", n)
	}
}

func TestLimits(t *testing.T) {
	db := openTest(t, t.TempDir(), func(o *Options) {
		o.Limits = Limits{MaxStreams: 1, OutOfOrderWindow: time.Minute}
	})
	defer db.Close()
	app := db.Appender()
	a, b := labels.FromStrings("app", "a"), labels.FromStrings("app", "b")
	app.Append(a, Entry{Timestamp: base, Line: "ok"})
	app.Append(a, Entry{Timestamp: base - int64(2*time.Minute), Line: "too old"})
	app.Append(b, Entry{Timestamp: base, Line: "new stream"})
	rej, err := app.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if len(rej) != 2 {
		t.Fatalf("rejections %+v", rej)
	}
	got := readAll(t, db, SelectHints{}, labels.MustNewMatcher(labels.MatchRegexp, "app", ".*"))
	if len(got) != 1 || len(got[a.String()]) != 1 {
		t.Fatalf("stored %v", got)
	}
	db.SetLimits(Limits{})
	app.Append(b, Entry{Timestamp: base, Line: "new stream"})
	if rej, err := app.Commit(); err != nil || len(rej) != 0 {
		t.Fatalf("after raising limits: %v %v", rej, err)
	}
}

func TestQueryCancel(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	defer db.Close()
	f := newFixture()
	ingest(t, db, f, 0, 500)
	q, _ := db.Querier(minTime, maxTime)
	defer q.Close()
	ctx, cancel := context.WithCancel(t.Context())
	ss := q.Select(ctx, SelectHints{}, labels.MustNewMatcher(labels.MatchEqual, "app", "api"))
	ss.Next()
	it := ss.At().Iterator(ctx)
	it.Next()
	cancel()
	for it.Next() {
	}
	it.Close()
	// Either all buffered entries drained or the iterator stopped with ctx's error.
	if it.Err() != nil && it.Err() != context.Canceled {
		t.Fatal(it.Err())
	}
}

// crashChild ingests numbered lines, printing each acknowledged batch, until killed.
func crashChild(dir string) {
	db, err := Open(dir, Options{ChunkTargetSize: 4 << 10, WALSegmentSize: 64 << 10}, Deps{})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	// The conformance fixture first, acknowledged as a whole...
	if err := fixtureBatches(newFixture(), 0, 300, commitTo(db)); err != nil {
		fmt.Println("fixture:", err)
		os.Exit(2)
	}
	// ...then numbered lines until killed.
	ls := []labels.Labels{labels.FromStrings("crash", "a"), labels.FromStrings("crash", "b")}
	out := bufio.NewWriter(os.Stdout)
	for seq := 0; ; seq++ {
		app := db.Appender()
		for i := range 20 {
			n := seq*20 + i
			app.Append(ls[n%2], Entry{Timestamp: base + int64(n), Line: "line " + strconv.Itoa(n)})
		}
		if _, err := app.Commit(); err != nil {
			fmt.Println("commit:", err)
			os.Exit(2)
		}
		fmt.Fprintf(out, "ack %d\n", seq)
		out.Flush()
		if seq%40 == 39 {
			if err := db.FlushHead(); err != nil {
				fmt.Println("flush:", err)
				os.Exit(2)
			}
		}
		if seq%100 == 99 {
			db.Compact()
		}
	}
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	for round := range 3 {
		dir := t.TempDir()
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir, crashEnv+"_BASE="+strconv.FormatInt(base, 10))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		acked := -1
		target := 150 + round*97
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "ack ") {
				t.Fatalf("child: %s", line)
			}
			acked, _ = strconv.Atoi(strings.TrimPrefix(line, "ack "))
			if acked >= target {
				break
			}
		}
		cmd.Process.Kill() // SIGKILL, mid-ingest
		cmd.Wait()
		if acked < target {
			t.Fatalf("child stopped at ack %d", acked)
		}
		db, err := Open(dir, Options{ChunkTargetSize: 4 << 10}, Deps{})
		if err != nil {
			t.Fatalf("reopen after kill: %v", err)
		}
		got := readAll(t, db, SelectHints{}, labels.MustNewMatcher(labels.MatchRegexp, "crash", ".+"))
		seen := map[int]int{}
		for _, es := range got {
			for _, e := range es {
				n, _ := strconv.Atoi(strings.TrimPrefix(e.Line, "line "))
				seen[n]++
			}
		}
		for n := 0; n < (acked+1)*20; n++ {
			if seen[n] != 1 {
				t.Fatalf("round %d: acknowledged line %d present %d times (acked batches 0..%d, blocks %d)", round, n, seen[n], acked, len(db.Blocks()))
			}
		}
		for n, c := range seen {
			if c != 1 {
				t.Fatalf("round %d: line %d present %d times", round, n, c)
			}
		}
		// The same conformance suite as the head, block and reopen cases.
		f := newFixture()
		fixtureBatches(f, 0, 300, func([]labels.Labels, []Entry) error { return nil })
		t.Run(fmt.Sprintf("conformance after kill round %d", round), func(t *testing.T) { conformance(t, db, f) })
		db.Close()
	}
}

func testCounter(c interface{ Write(*dto.Metric) error }) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

func TestRunFlushesCompactsAndStops(t *testing.T) {
	db := openTest(t, t.TempDir(), func(o *Options) {
		o.HeadMaxBytes = 4 << 10 // a part of the fixture fills it
		o.CheckInterval = 5 * time.Millisecond
	})
	defer db.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- db.Run(ctx) }()
	f := newFixture()
	// In parts, each flushed before the next, so there are blocks to
	// compact however fast ingestion outruns the background flush.
	deadline := time.Now().Add(10 * time.Second)
	for part := range 4 {
		ingest(t, db, f, part*100, 100)
		for testCounter(db.m.flushes) <= float64(part) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	for {
		bs := db.Blocks()
		// Tiered: the newest flush may stay level 1 next to a merged block.
		if slices.ContainsFunc(bs, func(b BlockMeta) bool { return b.Compaction.Level >= 2 }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no compacted block after 10s: %+v", bs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	conformance(t, db, f)
}

// Blocks whose time ranges interleave (late data) are merged entry by entry.
func TestCompactOverlappingBlocks(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	defer db.Close()
	ls := labels.FromStrings("app", "late")
	var want []Entry
	for pass := range 2 { // even timestamps, then odd ones
		app := db.Appender()
		for i := pass; i < 2000; i += 2 {
			e := Entry{Timestamp: base + int64(i), Line: fmt.Sprintf("line %d", i)}
			app.Append(ls, e)
			want = append(want, e)
		}
		if _, err := app.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := db.FlushHead(); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	if n := len(db.Blocks()); n != 1 {
		t.Fatalf("%d blocks", n)
	}
	slices.SortFunc(want, func(a, b Entry) int { return cmpInt64(a.Timestamp, b.Timestamp) })
	got := readAll(t, db, SelectHints{}, labels.MustNewMatcher(labels.MatchEqual, "app", "late"))[ls.String()]
	if !sameEntries(got, want) {
		t.Fatalf("got %d entries, want %d in order", len(got), len(want))
	}
	// Re-chunked: no chunk of the merged block overlaps another.
	q, _ := db.Querier(minTime, maxTime)
	defer q.Close()
	ss := q.Select(t.Context(), SelectHints{}, labels.MustNewMatcher(labels.MatchEqual, "app", "late"))
	ss.Next()
	cs := ss.At().chunks
	for i := 1; i < len(cs); i++ {
		if cs[i].Meta().MinTime <= cs[i-1].Meta().MaxTime {
			t.Fatalf("chunks %d and %d overlap after compaction", i-1, i)
		}
	}
}

func TestRegexpSetMatchersUsePostings(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	defer db.Close()
	f := newFixture()
	ingest(t, db, f, 0, 100)
	check := func(phase string) {
		got := readAll(t, db, SelectHints{}, labels.MustNewMatcher(labels.MatchRegexp, "app", "db|web"), labels.MustNewMatcher(labels.MatchRegexp, "env", "prod|x"))
		if len(got) != 2 || len(got[labels.FromStrings("app", "web", "env", "prod").String()]) != 100 {
			t.Fatalf("%s: %d streams", phase, len(got))
		}
		got = readAll(t, db, SelectHints{}, labels.MustNewMatcher(labels.MatchRegexp, "app", "api|"))
		if len(got) != 2 { // "" alternative: must not narrow to postings only
			t.Fatalf("%s: %d streams for app=~\"api|\"", phase, len(got))
		}
	}
	check("head")
	if err := db.FlushHead(); err != nil {
		t.Fatal(err)
	}
	check("block")
}

func TestConcurrentCommitsFsyncAlways(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir, func(o *Options) { o.Fsync = FsyncAlways })
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ls := labels.FromStrings("writer", strconv.Itoa(w))
			for i := range 50 {
				app := db.Appender()
				app.Append(ls, Entry{Timestamp: base + int64(i), Line: fmt.Sprintf("w%d-%d", w, i)})
				if _, err := app.Commit(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir, nil) // everything acknowledged comes back from the WAL
	defer db.Close()
	got := readAll(t, db, SelectHints{}, labels.MustNewMatcher(labels.MatchRegexp, "writer", ".+"))
	n := 0
	for _, es := range got {
		n += len(es)
	}
	if len(got) != 8 || n != 400 {
		t.Fatalf("%d streams, %d entries after reopen", len(got), n)
	}
}

func TestMetadataHintSkipsChunks(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	defer db.Close()
	f := newFixture()
	ingest(t, db, f, 0, 2000)
	want := fmt.Sprintf("%032x", 1230)
	for _, phase := range []string{"head", "block"} {
		if phase == "block" {
			if err := db.FlushHead(); err != nil {
				t.Fatal(err)
			}
		}
		before := testCounter(db.m.query.chunksSkipped)
		got := readAll(t, db, SelectHints{Metadata: []labels.Label{{Name: "trace_id", Value: want}}}, labels.MustNewMatcher(labels.MatchRegexp, "app", ".+"))
		n := 0
		for _, es := range got {
			for _, e := range es {
				if e.Metadata.Get("trace_id") != want {
					t.Fatalf("%s: entry with trace_id %q passed", phase, e.Metadata.Get("trace_id"))
				}
				n++
			}
		}
		if n != len(f.streams) {
			t.Fatalf("%s: %d entries, want %d", phase, n, len(f.streams))
		}
		if testCounter(db.m.query.chunksSkipped) == before {
			t.Fatalf("%s: no chunk skipped by the metadata bloom", phase)
		}
	}
}

// A torn WAL tail (power loss mid-write) is cut off at the last whole record.
func TestTornWALTail(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir, nil)
	ls := labels.FromStrings("app", "torn")
	for i := range 100 {
		app := db.Appender()
		app.Append(ls, Entry{Timestamp: base + int64(i), Line: fmt.Sprintf("entry %03d %s", i, strings.Repeat("x", 200))})
		if _, err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Cut the newest segment inside its last record: wlog pads pages with
	// zeros on close, so cut 20 bytes before the last non-zero byte.
	segs, _ := filepath.Glob(filepath.Join(dir, "wal", "0*"))
	slices.Sort(segs)
	var last string
	for _, s := range segs {
		if st, _ := os.Stat(s); st.Size() > 0 {
			last = s
		}
	}
	if last == "" {
		t.Fatal("no WAL segment written")
	}
	data, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	end := len(data)
	for end > 0 && data[end-1] == 0 {
		end--
	}
	if err := os.Truncate(last, int64(end-20)); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir, nil)
	got := readAll(t, db, SelectHints{}, labels.MustNewMatcher(labels.MatchEqual, "app", "torn"))[ls.String()]
	if len(got) != 99 {
		t.Fatalf("%d entries after a torn tail, want the whole records before it", len(got))
	}
	for i, e := range got {
		if !strings.HasPrefix(e.Line, fmt.Sprintf("entry %03d ", i)) {
			t.Fatalf("entry %d is %q", i, e.Line[:12])
		}
	}
	// The store keeps working after the repair.
	app := db.Appender()
	app.Append(ls, Entry{Timestamp: base + 1000, Line: "after repair"})
	if _, err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openTest(t, dir, nil)
	defer db.Close()
	got = readAll(t, db, SelectHints{}, labels.MustNewMatcher(labels.MatchEqual, "app", "torn"))[ls.String()]
	if got[len(got)-1].Line != "after repair" {
		t.Fatalf("write after repair lost: last is %q", got[len(got)-1].Line)
	}
}
