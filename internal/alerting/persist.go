package alerting

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// snapshotter is what silences and the notification log have in common:
// both drop expired entries and write their whole state as one snapshot.
type snapshotter interface {
	GC() (int, error)
	Snapshot(w io.Writer) (int64, error)
}

// writeSnapshot collects garbage and replaces path atomically with a fresh
// snapshot: write a temporary file, fsync, rename, fsync the directory, so
// a crash leaves either the old or the new snapshot, never half of one.
func writeSnapshot(s snapshotter, path string) (int64, error) {
	if _, err := s.GC(); err != nil {
		return 0, fmt.Errorf("collect garbage: %w", err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("create temporary snapshot: %w", err)
	}
	size, err := s.Snapshot(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return 0, fmt.Errorf("write snapshot %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return 0, fmt.Errorf("replace snapshot: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return size, nil
}
