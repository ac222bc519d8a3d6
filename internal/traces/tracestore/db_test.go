package tracestore

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/goleak"

	"github.com/nx-watcher/nxwatcher/internal/testclock"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

const crashChildEnv = "NXWATCHER_TRACESTORE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	goleak.VerifyTestMain(m)
}

// testBase is the hour of the (CI-shiftable) test clock, never a calendar date.
var testBase = testclock.Base()

func openTest(t *testing.T, dir string, mod func(*Options)) (*DB, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts := DefaultOptions()
	opts.Now = func() time.Time { return testBase.Add(time.Hour) }
	opts.PageSize = 16 << 10
	if mod != nil {
		mod(&opts)
	}
	db, err := Open(dir, opts, Deps{Registerer: reg})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return db, reg
}

// sent tracks every span acknowledged per trace.
type sent map[pcommon.TraceID]ptrace.Traces

func (s sent) add(id pcommon.TraceID, td ptrace.Traces) {
	if cur, ok := s[id]; ok {
		s[id] = storetest.Merge(cur, td)
		return
	}
	s[id] = storetest.Merge(td)
}

func checkAll(t *testing.T, db *DB, want sent) {
	t.Helper()
	for id, td := range want {
		got, found, err := db.TraceByID(t.Context(), id)
		if err != nil || !found {
			t.Fatalf("trace %s: found=%v err=%v", id, found, err)
		}
		if d := storetest.Diff(td, got); d != "" {
			t.Fatalf("trace %s differs:\n%s", id, d)
		}
	}
	// Every stored trace is one we sent, and search sees each exactly once.
	n := 0
	_, err := db.Search(t.Context(), SearchRequest{}, func(id TraceID, td ptrace.Traces) (bool, error) {
		n++
		w, ok := want[id]
		if !ok {
			return false, fmt.Errorf("search returned unknown trace %s", id)
		}
		if d := storetest.Diff(w, td); d != "" {
			return false, fmt.Errorf("search trace %s differs:\n%s", id, d)
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Fatalf("search saw %d traces, want %d", n, len(want))
	}
	checkPostings(t, db, want)
}

// checkPostings compares the traces a single-condition search returns with
// the traces that really carry the value: complete postings are exact.
func checkPostings(t *testing.T, db *DB, want sent) {
	t.Helper()
	checked := 0
	for _, c := range []Cond{
		{Keys: []string{"resource.service.name"}, Values: []string{"spayment"}},
		{Keys: []string{KeyStatus}, Values: []string{"kerror"}},
		{Keys: []string{"span.http.status_code"}, Values: []string{"i404"}},
		{Keys: []string{KeyName}, Values: []string{"slate-work"}},
		{Keys: []string{"span.cache.hit", "resource.cache.hit"}, Values: []string{"btrue"}},
	} {
		truth := map[TraceID]bool{}
		for id, td := range want {
			forEachPosting(td, func(key, value string, indexed bool) {
				if slices.Contains(c.Keys, key) && slices.Contains(c.Values, value) {
					truth[id] = true
				}
			})
		}
		got := map[TraceID]bool{}
		if _, err := db.Search(t.Context(), SearchRequest{Conds: []Cond{c}}, func(id TraceID, _ ptrace.Traces) (bool, error) {
			got[id] = true
			return true, nil
		}); err != nil {
			t.Fatal(err)
		}
		// Head traces are not pruned by postings, so only blocks' misses matter:
		// every true trace must be found; false positives may come from the head.
		for id := range truth {
			if !got[id] {
				t.Fatalf("cond %v: trace %s carries the value but search skipped it", c, id)
			}
		}
		if db.headStats().traces == 0 && len(db.flushing) == 0 && len(got) != len(truth) {
			t.Fatalf("cond %v: %d candidates, %d true (postings not exact)", c, len(got), len(truth))
		}
		if len(truth) > 0 {
			checked++
		}
	}
	if checked < 3 {
		t.Fatalf("only %d conditions match the test data", checked)
	}
}

// TestConformance runs the same checks against every place spans can live.
func TestConformance(t *testing.T) {
	old := chunkTraces
	chunkTraces = 9 // blocks of many index chunks
	t.Cleanup(func() { chunkTraces = old })
	dir := t.TempDir()
	db, reg := openTest(t, dir, nil)
	g := storetest.NewGen(1, testBase.UnixNano())
	want := sent{}
	var roots = map[pcommon.TraceID]pcommon.SpanID{}
	ingest := func(traces int) {
		for i := 0; i < traces; i++ {
			id, td := g.Trace(1 + i%7)
			if err := db.ConsumeTraces(t.Context(), td); err != nil {
				t.Fatal(err)
			}
			want.add(id, td)
			roots[id] = td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SpanID()
		}
	}
	// Late spans for already-stored traces: they land in a later block.
	late := func(k int) {
		i := 0
		for id, root := range roots {
			if i++; i > k {
				break
			}
			td := ptrace.NewTraces()
			g.AppendTrace(td, id, 2, root)
			if err := db.ConsumeTraces(t.Context(), td); err != nil {
				t.Fatal(err)
			}
			want.add(id, td)
		}
	}

	ingest(200)
	t.Run("head", func(t *testing.T) { checkAll(t, db, want) })

	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.blockStats(); n != 1 {
		t.Fatalf("blocks after flush = %d, want 1", n)
	}
	late(30)
	ingest(50)
	t.Run("block+head", func(t *testing.T) { checkAll(t, db, want) })

	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Run("two blocks", func(t *testing.T) { checkAll(t, db, want) })

	if err := db.compact(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.blockStats(); n != 1 {
		t.Fatalf("blocks after compaction = %d, want 1", n)
	}
	if got := testutil.ToFloat64(db.m.compactions); got != 1 {
		t.Fatalf("compactions = %v", got)
	}
	t.Run("compacted block only", func(t *testing.T) {
		if st := db.headStats(); st.traces != 0 {
			t.Fatalf("head not empty: %d", st.traces)
		}
		checkAll(t, db, want) // exact postings check: nothing in the head
	})
	late(10)
	t.Run("compacted block", func(t *testing.T) { checkAll(t, db, want) })

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, _ = openTest(t, dir, nil)
	t.Run("clean reopen", func(t *testing.T) { checkAll(t, db, want) })
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_ = reg
}

func TestInvalidIDsRejectWholeRequest(t *testing.T) {
	db, reg := openTest(t, t.TempDir(), nil)
	defer db.Close()
	g := storetest.NewGen(2, testBase.UnixNano())
	for _, tc := range []struct {
		name, field string
		mutate      func(ptrace.Span)
	}{
		{"zero trace id", "trace_id", func(s ptrace.Span) { s.SetTraceID(pcommon.TraceID{}) }},
		{"zero span id", "span_id", func(s ptrace.Span) { s.SetSpanID(pcommon.SpanID{}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			goodID, td := g.Trace(3)
			sp := td.ResourceSpans().At(td.ResourceSpans().Len() - 1).ScopeSpans().At(0).Spans()
			tc.mutate(sp.At(sp.Len() - 1))
			err := db.ConsumeTraces(t.Context(), td)
			var ie *InvalidIDError
			if !errors.As(err, &ie) || !errors.Is(err, ErrInvalidID) || ie.Field != tc.field {
				t.Fatalf("err = %v, want InvalidIDError on %s", err, tc.field)
			}
			if _, found, _ := db.TraceByID(t.Context(), goodID); found {
				t.Fatal("valid spans of a rejected request were stored")
			}
		})
	}
	if got := testutil.ToFloat64(db.m.spansRejected.WithLabelValues("invalid_id")); got != 6 {
		t.Fatalf("rejected spans counter = %v, want 6", got)
	}
	// The store still works after bad input.
	id, td := g.Trace(2)
	if err := db.ConsumeTraces(t.Context(), td); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := db.TraceByID(t.Context(), id); !found {
		t.Fatal("good trace after bad input missing")
	}
	_ = reg
}

func TestTraceTooLarge(t *testing.T) {
	db, _ := openTest(t, t.TempDir(), func(o *Options) { o.MaxTraceBytes = 4 << 10 })
	defer db.Close()
	g := storetest.NewGen(3, testBase.UnixNano())
	_, td := g.Trace(200)
	if err := db.ConsumeTraces(t.Context(), td); !errors.Is(err, ErrTraceTooLarge) {
		t.Fatalf("err = %v, want ErrTraceTooLarge", err)
	}
}

func TestIdleCutAndRetention(t *testing.T) {
	now := testBase.Add(time.Hour)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	db, _ := openTest(t, t.TempDir(), func(o *Options) {
		o.Now = clock
		o.TraceIdle = 10 * time.Second
		o.MaxBlockDuration = time.Minute
		o.Retention = 24 * time.Hour
	})
	defer db.Close()
	g := storetest.NewGen(4, testBase.UnixNano())
	id, td := g.Trace(5)
	if err := db.ConsumeTraces(t.Context(), td); err != nil {
		t.Fatal(err)
	}
	db.Maintain(t.Context())
	if n, _ := db.blockStats(); n != 0 {
		t.Fatal("cut a trace that is not idle")
	}
	advance(2 * time.Minute)
	db.Maintain(t.Context())
	if n, _ := db.blockStats(); n != 1 {
		t.Fatalf("idle trace not cut: %d blocks", n)
	}
	if st := db.headStats(); st.traces != 0 {
		t.Fatalf("head still holds %d traces", st.traces)
	}
	if _, found, _ := db.TraceByID(t.Context(), id); !found {
		t.Fatal("trace lost by cut")
	}
	advance(48 * time.Hour)
	db.Maintain(t.Context())
	if n, _ := db.blockStats(); n != 0 {
		t.Fatalf("retention kept %d blocks", n)
	}
	if got := testutil.ToFloat64(db.m.retentionDrops.WithLabelValues("time")); got != 1 {
		t.Fatalf("retention counter = %v", got)
	}
	if _, found, _ := db.TraceByID(t.Context(), id); found {
		t.Fatal("trace survived retention")
	}
}

func TestRetentionSize(t *testing.T) {
	db, _ := openTest(t, t.TempDir(), func(o *Options) { o.RetentionSize = 1 })
	defer db.Close()
	g := storetest.NewGen(5, testBase.UnixNano())
	for i := 0; i < 3; i++ {
		_, td := g.Trace(4)
		if err := db.ConsumeTraces(t.Context(), td); err != nil {
			t.Fatal(err)
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.applyRetention(); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.blockStats(); n != 0 {
		t.Fatalf("size retention kept %d blocks", n)
	}
}

func TestSearchUsesPostings(t *testing.T) {
	db, _ := openTest(t, t.TempDir(), nil)
	defer db.Close()
	g := storetest.NewGen(6, testBase.UnixNano())
	for i := 0; i < 100; i++ {
		_, td := g.Trace(3)
		if err := db.ConsumeTraces(t.Context(), td); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	count := func(conds []Cond) (int, SearchStats) {
		n := 0
		st, err := db.Search(t.Context(), SearchRequest{Conds: conds}, func(TraceID, ptrace.Traces) (bool, error) { n++; return true, nil })
		if err != nil {
			t.Fatal(err)
		}
		return n, st
	}
	all, _ := count(nil)
	if all != 100 {
		t.Fatalf("all = %d", all)
	}
	none, st := count([]Cond{{Keys: []string{"resource.service.name"}, Values: []string{"snope"}}})
	if none != 0 || st.InspectedTraces != 0 {
		t.Fatalf("absent value inspected %d traces", st.InspectedTraces)
	}
	some, _ := count([]Cond{{Keys: []string{"span.http.status_code"}, Values: []string{"i500"}}})
	if some == 0 || some == 100 {
		t.Fatalf("status 500 candidates = %d, want some but not all", some)
	}
	names, err := db.TagNames(t.Context(), time.Time{}, time.Time{})
	if err != nil || !strings.Contains(strings.Join(names, ","), "span.http.method") {
		t.Fatalf("tag names = %v, %v", names, err)
	}
	vals, err := db.TagValues(t.Context(), "resource.service.name", time.Time{}, time.Time{}, 0)
	if err != nil || len(vals) != 5 || vals[0] != (TypedValue{"string", "checkout"}) {
		t.Fatalf("tag values = %v, %v", vals, err)
	}
}

func TestCorruptWALTailIsRepaired(t *testing.T) {
	dir := t.TempDir()
	db, _ := openTest(t, dir, nil)
	g := storetest.NewGen(7, testBase.UnixNano())
	want := sent{}
	for i := 0; i < 20; i++ {
		id, td := g.Trace(3)
		if err := db.ConsumeTraces(t.Context(), td); err != nil {
			t.Fatal(err)
		}
		want.add(id, td)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// A torn write: garbage appended to the last non-empty segment.
	segs, _ := filepath.Glob(filepath.Join(dir, "wal", "0*"))
	var last string
	for _, s := range segs {
		if fi, _ := os.Stat(s); fi.Size() > 0 {
			last = s
		}
	}
	f, err := os.OpenFile(last, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write([]byte{0x01, 0xff, 0xff, 0x00, 0x13, 0x37})
	_ = f.Close()
	db, _ = openTest(t, dir, nil)
	defer db.Close()
	checkAll(t, db, want)
}

// TestCrashRecovery kills a child mid-ingest (it also cuts blocks and
// compacts while writing) and checks every acknowledged span is there once.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	// Killed at a random point: sometimes mid-cut, sometimes mid-compaction,
	// sometimes mid-write.
	db, acked, stored := killChildAndReopen(t, "^$", crashChildEnv)
	// Every stored trace is also whole through the by-ID path.
	for fp := range acked {
		var id pcommon.TraceID
		b, _ := hex.DecodeString(strings.TrimPrefix(strings.Fields(fp)[0], "trace="))
		copy(id[:], b)
		got, found, err := db.TraceByID(t.Context(), id)
		if err != nil || !found {
			t.Fatalf("by ID %s: found=%v err=%v", id, found, err)
		}
		if !slices.Contains(storetest.Fingerprints(got), fp) {
			t.Fatalf("by ID %s lacks %s", id, fp)
		}
		break
	}
	t.Logf("%d acknowledged spans, %d stored (%d not acknowledged in time), %d blocks", len(acked), stored, stored-len(acked), len(db.blocks))
}

// killChildAndReopen runs this test binary again as a child (-test.run
// run, with env naming a fresh directory) that ingests and logs each
// acknowledged batch's span fingerprints, SIGKILLs it after a random
// number of batches, reopens its store and checks that every acknowledged
// span is stored exactly once and no span ID twice. It returns the
// reopened store (closed at the test's end), the acknowledged fingerprints
// and how many spans are stored.
func killChildAndReopen(t *testing.T, run, env string) (*DB, map[string]bool, int) {
	t.Helper()
	dir := t.TempDir()
	ackPath := filepath.Join(dir, "acks")
	cmd := exec.Command(os.Args[0], "-test.run="+run)
	cmd.Env = append(os.Environ(), env+"="+dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	threshold := 300 + rand.IntN(500)
	t.Logf("killing after %d acknowledged batches", threshold)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, _ := os.ReadFile(ackPath); strings.Count(string(b), "\n.\n") >= threshold {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatal("child made no progress")
		}
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = cmd.Wait()

	// The ack log holds full span fingerprints; a batch counts only once its
	// terminating "." line was written (a torn tail was never acknowledged).
	acked := map[string]bool{}
	f, err := os.Open(ackPath)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var batch []string
	for sc.Scan() {
		if line := sc.Text(); line != "." {
			batch = append(batch, line)
			continue
		}
		for _, fp := range batch {
			acked[fp] = true
		}
		batch = batch[:0]
	}
	_ = f.Close()
	if len(acked) == 0 {
		t.Fatal("no acknowledged spans")
	}

	db, _ := openTest(t, filepath.Join(dir, "db"), nil)
	t.Cleanup(func() { db.Close() })
	stored := map[string]int{}
	spanIDs := map[string]int{}
	_, err = db.Search(t.Context(), SearchRequest{}, func(id TraceID, td ptrace.Traces) (bool, error) {
		for _, fp := range storetest.Fingerprints(td) {
			stored[fp]++
			spanIDs[strings.Fields(fp)[1]]++
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for sid, n := range spanIDs {
		if n != 1 {
			t.Errorf("%s stored %d times", sid, n)
		}
	}
	missing := 0
	for fp := range acked {
		if stored[fp] != 1 {
			if missing++; missing < 3 {
				t.Errorf("acknowledged span missing or altered: %s", fp)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged spans missing", missing, len(acked))
	}
	return db, acked, len(stored)
}

// crashChild ingests forever, cutting and compacting blocks, logging each
// acknowledged batch; the parent kills it with SIGKILL.
func crashChild(dir string) {
	opts := DefaultOptions()
	opts.PageSize = 8 << 10
	opts.WALSegmentSize = 64 << 10
	opts.Now = testclock.Now
	db, err := Open(filepath.Join(dir, "db"), opts, Deps{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	acks, err := os.OpenFile(filepath.Join(dir, "acks"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o666)
	if err != nil {
		os.Exit(2)
	}
	g := storetest.NewGen(uint64(os.Getpid()), testclock.Now().UnixNano())
	var ids []pcommon.TraceID
	var roots []pcommon.SpanID
	ctx := context.Background()
	for i := 0; ; i++ {
		var id pcommon.TraceID
		var td ptrace.Traces
		if i%5 == 4 && len(ids) > 0 { // late spans of an older trace
			k := i % len(ids)
			id, td = ids[k], ptrace.NewTraces()
			g.AppendTrace(td, id, 2, roots[k])
		} else {
			id, td = g.Trace(1 + i%5)
			ids = append(ids, id)
			roots = append(roots, td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SpanID())
		}
		if err := db.ConsumeTraces(ctx, td); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		var line strings.Builder
		for _, fp := range storetest.Fingerprints(td) {
			line.WriteString(fp + "\n")
		}
		line.WriteString(".\n")
		_, _ = acks.WriteString(line.String())
		time.Sleep(200 * time.Microsecond) // spread the parent's kill over all phases
		if i%40 == 39 {
			_ = db.Flush()
		}
		if i%200 == 199 {
			_ = db.compact(ctx)
		}
	}
}
