package chaos

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var (
	flagKills  = flag.Int("chaos.kills", 5, "kill -9 count of TestCrashLoop (long run: 100)")
	flagMinUp  = flag.Duration("chaos.min-up", 700*time.Millisecond, "shortest time the server runs under load before a kill")
	flagMaxUp  = flag.Duration("chaos.max-up", 3*time.Second, "longest time the server runs under load before a kill")
	flagSeed   = flag.Uint64("chaos.seed", 0, "random seed (0: from the clock, printed)")
	flagFull   = flag.Int("chaos.full-check-every", 10, "read everything back on every n-th restart (others read recent data); runs of up to 10 kills always read everything")
	flagKeep   = flag.Bool("chaos.keep", false, "keep the storage and server logs of the run (printed)")
	flagResend = flag.Float64("chaos.resend", 0.05, "probability that a sender sends an acknowledged batch again (an answer lost after the store)")
	flagTmpfs  = flag.String("chaos.tmpfs-size", "256m", "size of TestDiskFull's tmpfs; above the stores' free-space reserves (logs.storage.min_free_space defaults to 64MiB), else the store refuses from the start")
	flagBin    = flag.String("chaos.bin", "", "use this nxwatcher binary instead of building ./cmd/nxwatcher")
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// nxBinary builds ./cmd/nxwatcher once per test run.
func nxBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if *flagBin != "" {
			binPath = *flagBin
			return
		}
		binDir, binErr = os.MkdirTemp("", "nxwatcher-chaos-bin-")
		if binErr != nil {
			return
		}
		// Generous: under `go test -race ./...` this build competes with every
		// other package's race build (it took over 15 min at load 19).
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		start := time.Now()
		binPath, binErr = BuildBinary(ctx, binDir)
		if binErr == nil {
			fmt.Fprintf(os.Stderr, "bench/chaos: built nxwatcher in %s\n", time.Since(start).Round(time.Second))
		}
	})
	if binErr != nil {
		t.Fatalf("build nxwatcher: %v", binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	if code == 0 {
		CloseIdle()
		if err := goleak.Find(
			goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func workDir(t *testing.T) string {
	t.Helper()
	if *flagKeep {
		d, err := os.MkdirTemp("", "nxwatcher-chaos-")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("keeping %s", d)
		return d
	}
	return t.TempDir()
}

func seed(t *testing.T) uint64 {
	s := *flagSeed
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (-chaos.seed=%d reproduces the kill moments)", s, s)
	return s
}

// TestCrashLoop kills the server under mixed load -chaos.kills times and
// reads every acknowledged sample, line and span back after each restart.
func TestCrashLoop(t *testing.T) {
	if testing.Short() && *flagKills > 5 {
		t.Skip("long crash loop in -short mode")
	}
	bin := nxBinary(t)
	dir := workDir(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Duration(*flagKills)*40*time.Second+2*time.Minute)
	defer cancel()
	full := *flagFull
	if *flagKills <= 10 {
		full = 1
	}
	h, err := NewHarness(Options{
		Bin: bin, Dir: dir, StoragePath: filepath.Join(dir, "data"),
		Kills: *flagKills, MinUp: *flagMinUp, MaxUp: *flagMaxUp, Senders: 2, Seed: seed(t),
		Resend: *flagResend, FullCheckEvery: full, Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	start := time.Now()
	tot, err := h.RunCrashLoop(ctx)
	if tot.Counters == nil {
		tot.Counters = h.Counters()
	}
	t.Logf("crash loop in %s wall:\n%s", time.Since(start).Round(time.Second), tot.Report())
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range []string{SignalSamples, SignalLines, SignalSpans} {
		c := tot.Counters[sig]
		if c.Items == 0 {
			t.Errorf("%s: nothing acknowledged", sig)
		}
		if tot.Lost[sig] != 0 {
			t.Errorf("%s: %d acknowledged items lost", sig, tot.Lost[sig])
		}
		if tot.Dup[sig] != 0 {
			t.Errorf("%s: %d items stored more than once", sig, tot.Dup[sig])
		}
		if c.RefusedPermanent != 0 {
			t.Errorf("%s: %d batches refused permanently (a real client drops them): %q", sig, c.RefusedPermanent, c.PermanentDetails)
		}
	}
	for _, s := range tot.Scrape {
		t.Errorf("scrape: %s", s)
	}
}

// fullFor is how long TestDiskFull keeps the disk full.
const fullFor = 5 * time.Second

// fillDisk writes dir/filler until the filesystem refuses (ENOSPC).
func fillDisk(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var n int64
	for _, size := range []int{1 << 20, 4 << 10, 1} {
		buf := make([]byte, size)
		for {
			m, err := f.Write(buf)
			n += int64(m)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// waitFor polls cond until it is true or the timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	return true
}

// TestDiskFull runs the server on a small tmpfs (-chaos.tmpfs-size) under load, fills it and
// checks that pushes are refused retryably, queries keep answering, writes
// resume once space is freed, and nothing acknowledged is lost.
func TestDiskFull(t *testing.T) {
	bin := nxBinary(t)
	dir := workDir(t)
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size="+*flagTmpfs); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("mount tmpfs on %s: %v (needs root or CAP_SYS_ADMIN); disk-full proof not run", mnt, err)
		}
		t.Fatalf("mount tmpfs on %s: %v", mnt, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			t.Errorf("umount %s: %v", mnt, err)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	s := seed(t)
	h, err := NewHarness(Options{Bin: bin, Dir: dir, StoragePath: filepath.Join(mnt, "data"), Senders: 2, Seed: s, Logf: t.Logf})
	// No simulated lost answers here: duplicates in this test come from the
	// refusals themselves.
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Server.Start(ctx); err != nil {
		t.Fatal(err)
	}
	h.StartLoad()
	signals := []string{SignalSamples, SignalLines, SignalSpans}
	acked := func(sig string, after time.Time, n int) func() bool {
		return func() bool {
			c := h.Counters()[sig]
			return c.Batches >= n && c.LastAck.After(after)
		}
	}
	for _, sig := range signals {
		if !waitFor(ctx, 30*time.Second, acked(sig, h.Start, 5)) {
			c := h.Counters()[sig]
			t.Fatalf("%s: not 5 acknowledged batches within 30 s before filling the disk (%d acknowledged, answers %s, permanent refusals %q); log tail:\n%s",
				sig, c.Batches, FormatReasons(c.Reasons), c.PermanentDetails, Tail(h.Server.LogPath(), 20))
		}
	}
	before := h.Counters()

	filled, err := fillDisk(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatalf("fill disk: %v", err)
	}
	fullAt := time.Now()
	t.Logf("disk full: filler %d MiB", filled>>20)

	for _, sig := range signals {
		ok := waitFor(ctx, 30*time.Second, func() bool { return h.Counters()[sig].LastRefused.After(fullAt) })
		c := h.Counters()[sig]
		if !ok {
			t.Errorf("%s: no refusal within 30 s of the disk filling (%d batches acknowledged meanwhile)", sig, c.Batches-before[sig].Batches)
		}
	}
	// Keep the disk full a while (head cuts, compaction and retries meet
	// ENOSPC too), then check the server is still up and answering.
	if d := time.Until(fullAt.Add(fullFor)); d > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	if !h.Server.Alive() {
		t.Fatalf("server exited with the disk full; log tail:\n%s", Tail(h.Server.LogPath(), 30))
	}
	// Queries keep answering with the disk full.
	snap := h.Snapshot()
	base := h.Server.Base()
	if _, err := VerifySamples(ctx, base, snap.Samples, h.Start.Add(-time.Minute)); err != nil {
		t.Errorf("PromQL query with the disk full: %v", err)
	}
	if _, err := VerifyLines(ctx, base, []int{0}, snap.Lines, nil, h.Start); err != nil {
		t.Errorf("LogQL query with the disk full: %v", err)
	}
	if len(snap.Traces) > 0 {
		if _, err := fetchTrace(ctx, base, snap.Traces[0].ID); err != nil {
			t.Errorf("trace by ID with the disk full: %v", err)
		}
	}
	during := h.Counters()

	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	freedAt := time.Now()
	for _, sig := range signals {
		if !waitFor(ctx, 60*time.Second, acked(sig, freedAt, 1)) {
			t.Errorf("%s: writes did not resume within 60 s of freeing space; log tail:\n%s", sig, Tail(h.Server.LogPath(), 20))
			continue
		}
		t.Logf("%s: writes acknowledged again within %s of freeing space (sender backoff is up to 1 s)", sig, h.Counters()[sig].LastAck.Sub(freedAt).Round(time.Millisecond))
	}
	h.StopLoad()
	after := h.Counters()
	for _, sig := range signals {
		b, d, a := before[sig], during[sig], after[sig]
		t.Logf("%s: before full %d batches acked; while full +%d acked, %d retryable refusals, %d unanswered; after free +%d acked; reasons %s",
			sig, b.Batches, d.Batches-b.Batches, d.RefusedRetryable-b.RefusedRetryable, d.Unanswered-b.Unanswered,
			a.Batches-d.Batches, FormatReasons(a.Reasons))
		if a.RefusedPermanent != 0 {
			t.Errorf("%s: %d batches refused with a non-retryable status: %q", sig, a.RefusedPermanent, a.PermanentDetails)
		}
		if sig == SignalSpans {
			// OTLP exporters retry ResourceExhausted only with RetryInfo;
			// a full disk is Unavailable.
			for reason, n := range a.Reasons {
				if reason != "Unavailable" && reason != "conn" && reason != "conn-cut" {
					t.Errorf("%s: %d refusals with %s, want Unavailable", sig, n, reason)
				}
			}
		}
	}
	if !h.Server.Alive() {
		t.Fatalf("server exited; log tail:\n%s", Tail(h.Server.LogPath(), 30))
	}

	check := func(when string) {
		rs, err := h.Verify(ctx, h.Snapshot(), time.Time{}, rand.New(rand.NewPCG(s, 2)))
		if err != nil {
			t.Fatalf("read back %s: %v", when, err)
		}
		t.Logf("%s: %s", when, formatResults(rs))
		for _, r := range rs {
			if r.Lost != 0 || r.Duplicated != 0 {
				t.Errorf("%s: %s lost %d, duplicated %d of %d: %q", when, r.Signal, r.Lost, r.Duplicated, r.Checked, r.Examples)
			}
		}
	}
	check("after space returned")
	// What was acknowledged must also be on disk: kill -9 and read again.
	h.Server.Kill()
	if err := h.Server.Start(ctx); err != nil {
		t.Fatalf("restart after disk full: %v", err)
	}
	check("after kill -9 and restart")
}
