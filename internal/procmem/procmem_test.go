package procmem

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func rssFileKiB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status:", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no RssFile line")
	return 0
}

// Releasing the executable's read-only pages lowers the file-backed
// resident set, and the code keeps running: what it needs faults back in.
func TestReleaseStartupPages(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	maps := readOnlyMappingsOf(exe)
	if len(maps) == 0 {
		t.Fatalf("no read-only mappings of %s found in /proc/self/maps", exe)
	}
	before := rssFileKiB(t)
	ReleaseStartupPages(slog.New(slog.DiscardHandler))
	after := rssFileKiB(t)
	if after >= before {
		t.Errorf("RssFile %d KiB before, %d KiB after: nothing released", before, after)
	}
	// Code and constant data not touched since still work.
	b, err := json.Marshal(map[string]any{"k": []int{1, 2, 3}})
	if err != nil || string(b) != `{"k":[1,2,3]}` {
		t.Fatalf("after release: %s %v", b, err)
	}
	if RSSKiB() <= 0 {
		t.Error("RSSKiB = 0")
	}
}

// ReleaseWhenQuiet releases once StartupSettle after start whatever the
// load, then only after intervals whose CPU time stayed under MaxCPU, and
// returns when its context ends.
func TestReleaseWhenQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Atomics: the race detector sees no order in synctest.Wait.
		var cpuNs, released atomic.Int64
		addCPU := func(d time.Duration) { cpuNs.Add(int64(d)) }
		opts := QuietOptions{
			Every:   time.Minute,
			MaxCPU:  time.Second,
			cpuTime: func() time.Duration { return time.Duration(cpuNs.Load()) },
			// The release's own 100 ms of CPU.
			release: func() { released.Add(1); addCPU(100 * time.Millisecond) },
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { ReleaseWhenQuiet(ctx, slog.New(slog.DiscardHandler), opts); close(done) }()

		step := func(d time.Duration) { time.Sleep(d); synctest.Wait() }
		step(StartupSettle - time.Millisecond)
		if released.Load() != 0 {
			t.Fatalf("released %d times before StartupSettle", released.Load())
		}
		step(time.Millisecond)
		if released.Load() != 1 {
			t.Fatalf("releases after StartupSettle = %d, want 1", released.Load())
		}
		// A busy minute: nothing released.
		addCPU(5 * time.Second)
		step(time.Minute)
		if released.Load() != 1 {
			t.Fatalf("busy interval released (releases = %d)", released.Load())
		}
		// A quiet minute (0.5 s of CPU): released; the release's own
		// 100 ms does not make the next minute busy.
		addCPU(500 * time.Millisecond)
		step(time.Minute)
		if released.Load() != 2 {
			t.Fatalf("quiet interval: releases = %d, want 2", released.Load())
		}
		addCPU(900 * time.Millisecond)
		step(time.Minute)
		if released.Load() != 3 {
			t.Fatalf("second quiet interval: releases = %d, want 3", released.Load())
		}
		cancel()
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("ReleaseWhenQuiet did not return after its context ended")
		}
	})
}

// With AtStart, ReleaseWhenQuiet releases at once, then StartupSettle
// later, then after quiet intervals as without it.
func TestReleaseWhenQuietAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var released atomic.Int64
		opts := QuietOptions{
			Every:   time.Minute,
			MaxCPU:  time.Second,
			AtStart: true,
			cpuTime: func() time.Duration { return 0 },
			release: func() { released.Add(1) },
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { ReleaseWhenQuiet(ctx, slog.New(slog.DiscardHandler), opts); close(done) }()
		synctest.Wait()
		if released.Load() != 1 {
			t.Fatalf("releases at start = %d, want 1", released.Load())
		}
		time.Sleep(StartupSettle)
		synctest.Wait()
		if released.Load() != 2 {
			t.Fatalf("releases after StartupSettle = %d, want 2", released.Load())
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if released.Load() != 3 {
			t.Fatalf("releases after a quiet minute = %d, want 3", released.Load())
		}
		cancel()
		<-done
	})
}

// Release returns the heap's free pages and the executable's pages at
// once: after a burst of garbage, the resident set falls.
func TestReleaseNow(t *testing.T) {
	var keep [][]byte
	for range 64 {
		keep = append(keep, make([]byte, 256<<10))
	}
	for _, b := range keep {
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1 // touch every page: resident
		}
	}
	keep = nil
	before, fileBefore := RSSKiB(), rssFileKiB(t)
	Release(slog.New(slog.DiscardHandler))
	after, fileAfter := RSSKiB(), rssFileKiB(t)
	if fileAfter >= fileBefore {
		t.Errorf("RssFile %d KiB before, %d KiB after: executable pages not released", fileBefore, fileAfter)
	}
	// 16 MiB of garbage returned (less what the test binary touches).
	if before-after < 8<<10 {
		t.Errorf("VmRSS %d KiB before, %d KiB after: the freed heap was not returned", before, after)
	}
	_ = keep
}

// exeVmFlags is the VmFlags line of every read-only mapping of the test
// binary, from /proc/self/smaps.
func exeVmFlags(t *testing.T) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skip("no /proc/self/smaps:", err)
	}
	var flags []string
	in := false
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && strings.Contains(f[0], "-") && len(f[1]) == 4 {
			in = len(f) >= 6 && f[5] == exe && f[1][1] != 'w'
			continue
		}
		if v, ok := strings.CutPrefix(line, "VmFlags:"); ok && in {
			flags = append(flags, strings.TrimSpace(v))
		}
	}
	if len(flags) == 0 {
		t.Fatalf("no read-only mappings of %s in /proc/self/smaps", exe)
	}
	return flags
}

// After the release with NoHugePages, and after Release, the executable's
// read-only mappings carry the kernel's no-huge-page flag ("nh"): no
// 2 MiB folio is mapped whole again.
func TestReleaseMarksNoHugePages(t *testing.T) {
	o := QuietOptions{NoHugePages: true}.withDefaults(slog.New(slog.DiscardHandler))
	o.release()
	for _, f := range exeVmFlags(t) {
		if !slices.Contains(strings.Fields(f), "nh") {
			t.Errorf("after the release: VmFlags %q lacks nh", f)
		}
	}
	Release(slog.New(slog.DiscardHandler))
	for _, f := range exeVmFlags(t) {
		if !slices.Contains(strings.Fields(f), "nh") {
			t.Errorf("after Release: VmFlags %q lacks nh", f)
		}
	}
}

// With the real clock and release, ReleaseWhenQuiet's defaults hold and
// the process CPU clock moves.
func TestQuietDefaults(t *testing.T) {
	o := QuietOptions{}.withDefaults(slog.New(slog.DiscardHandler))
	if o.Every != time.Minute || o.MaxCPU != time.Minute/50 {
		t.Errorf("defaults: every %s, max cpu %s", o.Every, o.MaxCPU)
	}
	before := processCPU()
	for deadline := time.Now().Add(5 * time.Second); processCPU() == before && time.Now().Before(deadline); {
		_ = strconv.Itoa(int(time.Now().UnixNano())) // spend a little CPU
	}
	if processCPU() <= before {
		t.Error("process CPU time did not advance")
	}
	rssBefore := rssFileKiB(t)
	o.release() // FreeHeap false: the executable's pages only
	if after := rssFileKiB(t); after >= rssBefore {
		t.Errorf("RssFile %d KiB before, %d KiB after the default release", rssBefore, after)
	}
}
