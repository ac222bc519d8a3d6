package logstore

import (
	"errors"
	"fmt"
	"syscall"
)

// ErrDiskFull refuses a commit because the store's filesystem is (nearly)
// out of space. Nothing of the commit is acknowledged; it is safe to retry,
// and the store accepts writes again by itself once space returns.
var ErrDiskFull = errors.New("logstore: not enough free disk space, retry later")

// freeBytes is the space available to the store's files.
func (db *DB) freeBytes() (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(db.dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// admit refuses a commit of about n bytes when the filesystem would keep
// less than MinFreeBytes, and while the WAL is broken by a failed write.
// The caller holds walMu.
//
// Why refuse before writing: a WAL write that fails halfway leaves a torn
// record in the WAL's page buffer, and Prometheus' wlog repairs a torn
// record on replay by dropping everything after it. So the store writes
// only with room to spare, and after a failed write it takes no more writes
// until recoverWAL has moved the head to a block and retired the segment
// holding the torn record.
func (db *DB) admit(n int) error {
	if db.walBroken != nil {
		return fmt.Errorf("%w (the last WAL write failed: %v)", ErrDiskFull, db.walBroken)
	}
	if db.opts.MinFreeBytes <= 0 {
		return nil
	}
	free, err := db.freeBytes()
	if err != nil {
		return nil // cannot tell: let the write itself find out
	}
	if free-int64(n) < db.opts.MinFreeBytes {
		db.m.diskFull.Inc()
		return fmt.Errorf("%w: %d bytes free, %d kept in reserve (min_free_space)", ErrDiskFull, free, db.opts.MinFreeBytes)
	}
	return nil
}

// walFailed records a failed WAL write. The caller holds walMu.
func (db *DB) walFailed(err error) error {
	db.walBroken = err
	db.m.walFailures.Inc()
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		db.m.diskFull.Inc()
		return fmt.Errorf("%w: write wal: %v", ErrDiskFull, err)
	}
	return fmt.Errorf("commit: write wal: %w", err)
}

// recoverWAL brings a store whose WAL write failed back to accepting
// writes: the head (everything acknowledged) is flushed to a block and the
// WAL segments up to the torn record are deleted. It fails, and the store
// keeps refusing writes, while there is still no room for the block.
func (db *DB) recoverWAL() error {
	db.walMu.Lock()
	broken := db.walBroken != nil
	db.walMu.Unlock()
	if !broken {
		return nil
	}
	if err := db.FlushHead(); err != nil {
		return fmt.Errorf("recover wal: %w", err)
	}
	db.walMu.Lock()
	db.walBroken = nil
	db.walMu.Unlock()
	db.logger.Info("wal writable again; accepting writes")
	return nil
}
