package alerting

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/nflog/nflogpb"
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

// durableNflog is the notification log the pipeline writes to: each entry
// (a notification was sent to a receiver for a group) is on disk before
// Log returns, so a crash right after a notification does not send it
// again on restart. Concurrent Logs share one snapshot write (group
// commit): a snapshot covers every Log that finished before it started.
type durableNflog struct{ a *Alertmanager }

func (d durableNflog) Log(r *nflogpb.Receiver, gkey string, firing, resolved []uint64, store *nflog.Store, expiry time.Duration) error {
	a := d.a
	if err := a.nflog.Log(r, gkey, firing, resolved, store, expiry); err != nil {
		return err
	}
	seq := a.nflogWrites.Add(1)
	a.snapshotMu.Lock()
	defer a.snapshotMu.Unlock()
	if a.nflogSynced >= seq {
		return nil // a snapshot taken after our Log already covers it
	}
	upTo := a.nflogWrites.Load()
	if err := a.snapshotLocked("nflog", a.nflog, a.nflogFile); err != nil {
		return fmt.Errorf("notification log: %w", err)
	}
	a.nflogSynced = upTo
	return nil
}

func (d durableNflog) Query(params ...nflog.QueryParam) ([]*nflogpb.Entry, error) {
	return d.a.nflog.Query(params...)
}
