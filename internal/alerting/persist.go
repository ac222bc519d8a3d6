package alerting

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

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
// (a notification was sent to a receiver for a group) is in the journal on
// disk before Log returns, so a crash right after a notification does not
// send it again on restart.
type durableNflog struct{ a *Alertmanager }

func (d durableNflog) Log(r *nflogpb.Receiver, gkey string, firing, resolved []uint64, store *nflog.Store, expiry time.Duration) error {
	if err := d.a.nflog.Log(r, gkey, firing, resolved, store, expiry); err != nil {
		return err
	}
	if err := d.a.journal.sync(); err != nil {
		d.a.metrics.snapshotErrors.WithLabelValues("nflog_journal").Inc()
		return fmt.Errorf("notification log journal: %w", err)
	}
	return nil
}

func (d durableNflog) Query(params ...nflog.QueryParam) ([]*nflogpb.Entry, error) {
	return d.a.nflog.Query(params...)
}

// nflogJournal is an append-only file of notification-log entries written
// since the last snapshot, in the snapshot's own encoding (varint-delimited
// MeshEntry). nflog hands every new entry to the broadcast callback (add);
// sync writes what is pending and fsyncs, one write for all concurrent
// callers (group commit). compact replaces the snapshot and empties the
// journal. At open, the journal is merged into the log newest-timestamp-
// wins, so replaying an entry the snapshot already holds is harmless, and
// a torn record at the end (a crash mid-write) is cut off.
type nflogJournal struct {
	path string

	mu      sync.Mutex // pending and seq; taken inside nflog's lock
	pending []byte
	seq     uint64

	syncMu sync.Mutex // the file, size and synced
	f      *os.File
	size   int64
	synced uint64
}

// openNflogJournal replays the journal at path into l and attaches to l's
// broadcast so that new entries are journaled.
func openNflogJournal(path string, l *nflog.Log) (*nflogJournal, error) {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	valid := validPrefix(b)
	if valid > 0 {
		if err := l.Merge(b[:valid]); err != nil {
			return nil, fmt.Errorf("replay journal: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	if valid < len(b) {
		// A torn record from a crash mid-write: drop it so that new
		// records follow the last whole one.
		if err := f.Truncate(int64(valid)); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("cut torn journal tail: %w", err)
		}
	}
	j := &nflogJournal{path: path, f: f, size: int64(valid)}
	l.SetBroadcast(j.add)
	return j, nil
}

// validPrefix returns the length of the longest prefix of b made of whole
// records that decode.
func validPrefix(b []byte) int {
	off := 0
	for off < len(b) {
		n, k := binary.Uvarint(b[off:])
		if k <= 0 || n > uint64(len(b)-off-k) {
			break
		}
		var e nflogpb.MeshEntry
		if err := proto.Unmarshal(b[off+k:off+k+int(n)], &e); err != nil || e.Entry == nil || e.Entry.Receiver == nil {
			break
		}
		off += k + int(n)
	}
	return off
}

// add is nflog's broadcast callback: b is one varint-delimited entry.
func (j *nflogJournal) add(b []byte) {
	j.mu.Lock()
	j.pending = append(j.pending, b...)
	j.seq++
	j.mu.Unlock()
}

// sync makes every entry added before the call durable.
func (j *nflogJournal) sync() error {
	j.mu.Lock()
	want := j.seq
	j.mu.Unlock()

	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	if j.synced >= want {
		return nil // another caller's write covered ours
	}
	j.mu.Lock()
	buf, upTo := j.pending, j.seq
	j.pending = nil
	j.mu.Unlock()

	_, err := j.f.Write(buf)
	if err == nil {
		err = j.f.Sync()
	}
	if err != nil {
		// Keep the file whole and the entries pending for the next try
		// (they are in the log's memory and in the next snapshot anyway).
		_ = j.f.Truncate(j.size)
		j.mu.Lock()
		j.pending = append(buf, j.pending...)
		j.mu.Unlock()
		return err
	}
	j.size += int64(len(buf))
	j.synced = upTo
	return nil
}

// compact writes a snapshot of l and empties the journal. Every entry in
// the journal file was added before compact took syncMu, so the snapshot
// holds it; entries still pending stay pending.
func (j *nflogJournal) compact(l snapshotter, snapshotPath string) (int64, error) {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	size, err := writeSnapshot(l, snapshotPath)
	if err != nil {
		return 0, err
	}
	if err := j.f.Truncate(0); err != nil {
		return size, fmt.Errorf("empty journal: %w", err)
	}
	j.size = 0
	return size, j.f.Sync()
}

// close releases the file; entries not synced are left to the snapshot
// written before it.
func (j *nflogJournal) close() error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	return j.f.Close()
}
