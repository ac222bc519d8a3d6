package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nx-watcher/nxwatcher/internal/procmem"
)

// rssFileOf is RssFile of a process in KiB, -1 if unreadable.
func rssFileOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return -1
}

// Serve releases start-up's garbage and executable pages once it is ready,
// not StartupSettle (10 s) later: what was resident at ready was mostly
// that (ADR 0088).
func TestServeReleasesMemoryWhenReady(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "serve.yml")
	writeFile(t, cfg, quietConfig)
	p := startProc(t, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"), "--log.level=debug")
	ready := time.Now()
	atReady := rssFileOf(p.cmd.Process.Pid)
	const released = "Released start-up pages of the executable"
	for !strings.Contains(p.logs.String(), released) {
		if time.Since(ready) > procmem.StartupSettle/2 {
			t.Fatalf("no %q within %s of ready (RssFile at ready %d KiB, now %d KiB)", released, procmem.StartupSettle/2, atReady, rssFileOf(p.cmd.Process.Pid))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("released %s after ready was seen; RssFile at ready %d KiB, now %d KiB", time.Since(ready).Round(time.Millisecond), atReady, rssFileOf(p.cmd.Process.Pid))
}

// After the before-ready release, the quiet-time release does not release
// again at once; without it, it does.
func TestServeReleaseBeforeReadySkipsReleaseAtStart(t *testing.T) {
	if releasedBeforeReady.Load() {
		t.Fatal("released before ready already")
	}
	if o := serveQuietOptions(); !o.AtStart || !o.FreeHeap || !o.NoHugePages {
		t.Fatalf("options without the before-ready release: %+v", o)
	}
	serveReleaseBeforeReady(slog.New(slog.DiscardHandler))
	t.Cleanup(func() { releasedBeforeReady.Store(false) })
	if o := serveQuietOptions(); o.AtStart || !o.FreeHeap || !o.NoHugePages {
		t.Fatalf("options after the before-ready release: %+v", o)
	}
}
