package tracestore

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// mountTmpfs mounts a tmpfs of size bytes on a fresh directory and unmounts
// it when the test ends. It skips the test only when mounting is not
// permitted (not root, or no CAP_SYS_ADMIN in a container).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		if msg := strings.ToLower(string(out)); os.Geteuid() != 0 || strings.Contains(msg, "permission denied") || strings.Contains(msg, "operation not permitted") || strings.Contains(msg, "only root") {
			t.Skipf("cannot mount a tmpfs here (%v: %s): the disk-full test needs root or CAP_SYS_ADMIN", err, out)
		}
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file until the filesystem is full and returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			return path
		}
	}
}

// TestDiskFull runs the store on a small tmpfs (2 MiB) that fills up: writes are
// refused with a retryable error (never an invalid-input one), queries keep
// answering, a cut that cannot be written keeps its traces in the head, and
// once space returns ingestion resumes by itself; after a reopen every
// acknowledged span is there exactly once.
func TestDiskFull(t *testing.T) {
	// slack leaves room for part of a record: the WAL write then fails
	// half-way through a multi-page record.
	for _, slack := range []int64{0, 12 << 10} {
		t.Run(fmt.Sprintf("slack=%d", slack), func(t *testing.T) { testDiskFull(t, slack) })
	}
}

func testDiskFull(t *testing.T, slack int64) {
	dir := mountTmpfs(t, "2m")
	db, _ := openTest(t, filepath.Join(dir, "db"), func(o *Options) { o.WALSegmentSize = 128 << 10 })
	t.Cleanup(func() { _ = db.Close() }) // before the unmount registered earlier
	g := storetest.NewGen(41, testBase.UnixNano())
	want := sent{}
	n := 0
	ingest := func() error {
		// Every third trace spans several 32 KiB WAL pages: a record torn by
		// ENOSPC between two of its pages must not corrupt what follows.
		n++
		id, td := g.Trace(map[bool]int{true: 100, false: 4}[n%3 == 0])
		cp := ptrace.NewTraces()
		td.CopyTo(cp)
		err := db.ConsumeTraces(t.Context(), cp)
		if err == nil {
			want.add(id, td)
		}
		return err
	}
	for i := 0; i < 30; i++ {
		if err := ingest(); err != nil {
			t.Fatalf("ingest before the disk fills: %v", err)
		}
	}
	filler := fill(t, dir)
	if slack > 0 {
		fi, err := os.Stat(filler)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(filler, fi.Size()-slack); err != nil {
			t.Fatal(err)
		}
	}

	// Writes are refused, retryably, once the WAL cannot grow.
	var refused error
	for i := 0; i < 5000 && refused == nil; i++ {
		refused = ingest()
	}
	if refused == nil {
		t.Fatal("the store never refused a write on a full filesystem")
	}
	if !errors.Is(refused, syscall.ENOSPC) || errors.Is(refused, ErrInvalidID) || errors.Is(refused, ErrTraceTooLarge) {
		t.Fatalf("refusal on a full disk = %v, want a (retryable) ENOSPC error", refused)
	}
	t.Logf("refused after %d acknowledged traces: %v", len(want), refused)
	for i := 0; i < 20; i++ {
		if err := ingest(); err == nil {
			t.Fatal("a write succeeded on a full disk")
		}
	}
	// Queries keep answering, and a cut that cannot be written loses nothing.
	if err := db.Flush(); err == nil {
		t.Fatal("cut succeeded on a full disk")
	}
	db.Maintain(t.Context())
	checkAll(t, db, want)

	// Space returns: ingestion resumes without a restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if err := ingest(); err != nil {
			t.Fatalf("ingest after space returned: %v", err)
		}
	}
	if testutil.ToFloat64(db.m.walWriteFailures) == 0 || testutil.ToFloat64(db.m.walRecoveries) != 1 {
		t.Fatalf("wal write failures %v, recoveries %v; want some and exactly one", testutil.ToFloat64(db.m.walWriteFailures), testutil.ToFloat64(db.m.walRecoveries))
	}
	// Replay the WAL segment the failed writes went to, before any cut
	// replaces it: a record torn by the failure must not cost what follows.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, _ = openTest(t, filepath.Join(dir, "db"), func(o *Options) { o.WALSegmentSize = 128 << 10 })
	checkAll(t, db, want)
	if err := db.Flush(); err != nil {
		t.Fatalf("cut after space returned: %v", err)
	}
	for i := 0; i < 20; i++ {
		if err := ingest(); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, _ = openTest(t, filepath.Join(dir, "db"), nil)
	checkAll(t, db, want)
}
