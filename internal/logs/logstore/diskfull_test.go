package logstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
)

// smallFS mounts a tmpfs of size bytes and fills all but room bytes of it
// with a ballast file; freeing the ballast is "space returns".
func smallFS(t *testing.T, size, room int64) (dir, ballast string) {
	t.Helper()
	mnt := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skip("cannot mount a tmpfs here (EPERM: needs root or CAP_SYS_ADMIN); the disk-full path is untested in this run")
		}
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		// Lazily: a flushed head's spill file is closed when the head is
		// garbage collected, which may be after the test.
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	ballast = filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, make([]byte, size-room), 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(mnt, "logs"), ballast
}

// fill commits batches until the store refuses one (or max batches are
// in), returning every acknowledged entry. Lines are distinct and poorly
// compressible.
func fill(t *testing.T, db *DB, ls labels.Labels, seq *int, max int) ([]Entry, error) {
	t.Helper()
	var acked []Entry
	for range max {
		app := db.Appender()
		var batch []Entry
		for range 50 {
			*seq++
			e := Entry{Timestamp: base + int64(*seq), Line: fmt.Sprintf("entry %08d %x %x", *seq, uint64(*seq)*0x9e3779b97f4a7c15, uint64(*seq)*0xc2b2ae3d27d4eb4f)}
			batch = append(batch, e)
			app.Append(ls, e)
		}
		if _, err := app.Commit(); err != nil {
			return acked, err
		}
		acked = append(acked, batch...)
	}
	if max < 100_000 {
		return acked, nil
	}
	t.Fatal("the filesystem never filled")
	return nil, nil
}

func checkAcked(t *testing.T, db *DB, ls labels.Labels, acked []Entry) {
	t.Helper()
	got := readAll(t, db, SelectHints{}, labels.MustNewMatcher(labels.MatchEqual, "app", ls.Get("app")))[ls.String()]
	n := map[string]int{}
	for _, e := range got {
		n[e.Line]++
	}
	for _, e := range acked {
		if n[e.Line] != 1 {
			t.Fatalf("acknowledged %q present %d times (%d acknowledged, %d stored)", e.Line, n[e.Line], len(acked), len(got))
		}
	}
}

func diskOpts() Options {
	o := DefaultOptions()
	o.WALSegmentSize = 64 << 10
	o.ChunkTargetSize = 4 << 10
	o.CheckInterval = 20 * time.Millisecond
	return o
}

// With a free-space reserve the store refuses a commit before the disk is
// full (ErrDiskFull: retry later), keeps answering queries, takes writes
// again as soon as space returns, and loses nothing acknowledged.
func TestDiskFullRefusedBeforeWriting(t *testing.T) {
	dir, ballast := smallFS(t, 8<<20, 3<<20)
	opts := diskOpts()
	opts.MinFreeBytes = 1 << 20
	reg := prometheus.NewRegistry()
	db, err := Open(dir, opts, Deps{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close() }()
	ls := labels.FromStrings("app", "full")
	seq := 0
	acked, err := fill(t, db, ls, &seq, 100_000)
	if !errors.Is(err, ErrDiskFull) || len(acked) == 0 {
		t.Fatalf("after %d entries: %v", len(acked), err)
	}
	if testCounter(db.m.diskFull) == 0 {
		t.Fatal("refusal not counted")
	}
	checkAcked(t, db, ls, acked) // queries still served
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	more, err := fill(t, db, ls, &seq, 100_000)
	if !errors.Is(err, ErrDiskFull) || len(more) == 0 {
		t.Fatalf("after space returned: %d more entries, then %v", len(more), err)
	}
	acked = append(acked, more...)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(dir, opts, Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	checkAcked(t, db, ls, acked)
}

// Without a reserve the WAL write itself fails (ENOSPC), possibly leaving
// a torn record. The store refuses writes from then on, serves queries,
// recovers by itself (Run) once space returns, and a crash at any point
// loses nothing acknowledged.
func TestDiskFullWALWriteFailsAndRecovers(t *testing.T) {
	dir, ballast := smallFS(t, 8<<20, 2<<20)
	opts := diskOpts()
	opts.MinFreeBytes = 0
	db, err := Open(dir, opts, Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close() }()
	ls := labels.FromStrings("app", "torn")
	seq := 0
	acked, err := fill(t, db, ls, &seq, 100_000)
	if !errors.Is(err, ErrDiskFull) || len(acked) == 0 {
		t.Fatalf("after %d entries: %v", len(acked), err)
	}
	// A crash now: the files as they are, on a disk with room to replay.
	crashed := t.TempDir()
	if err := os.CopyFS(crashed, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	cdb, err := Open(crashed, opts, Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	checkAcked(t, cdb, ls, acked)
	cdb.Close()

	checkAcked(t, db, ls, acked)
	if _, err := fill(t, db, ls, &seq, 100_000); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("a store whose WAL write failed took a write: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); db.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		app := db.Appender()
		seq++
		e := Entry{Timestamp: base + int64(seq), Line: fmt.Sprintf("after recovery %d", seq)}
		app.Append(ls, e)
		_, err := app.Commit()
		if err == nil {
			acked = append(acked, e)
			break
		}
		if !errors.Is(err, ErrDiskFull) || time.Now().After(deadline) {
			t.Fatalf("store did not recover: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // Run's next check
	}
	// Some more, short of filling the disk again (a WAL whose last page
	// cannot be flushed cannot be closed either).
	more, err := fill(t, db, ls, &seq, 20)
	if err != nil || len(more) == 0 {
		t.Fatalf("writes after recovery: %d, %v", len(more), err)
	}
	acked = append(acked, more...)
	cancel()
	wg.Wait()
	crashed = t.TempDir()
	if err := os.CopyFS(crashed, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	cdb, err = Open(crashed, opts, Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer cdb.Close()
	checkAcked(t, cdb, ls, acked)
}
