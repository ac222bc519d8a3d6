package logstore

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

// spillFile holds a head's cut chunks on disk so the head's memory is its
// open chunks and blooms only (Prometheus keeps head chunks in mmapped files
// for the same reason). It is a cache: the WAL stays the source of truth,
// and Open deletes leftover spill files before replaying.
type spillFile struct {
	path string
	f    *os.File
	mu   sync.Mutex
	off  int64
}

const spillDir = "head"

func openSpill(dir string, firstSegment int) (*spillFile, error) {
	p := filepath.Join(dir, spillDir, fmt.Sprintf("%08d.chunks", firstSegment))
	f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	return &spillFile{path: p, f: f}, nil
}

func (s *spillFile) write(b []byte) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	off := s.off
	if _, err := s.f.WriteAt(b, off); err != nil {
		return 0, err
	}
	s.off += int64(len(b))
	return off, nil
}

func (s *spillFile) read(off int64, n int, buf []byte) ([]byte, error) {
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := s.f.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("read spilled chunk at %d: %w", off, err)
	}
	return buf, nil
}

// newHead starts a head whose cut chunks spill to disk; without a spill file
// (it could not be created) they stay in memory.
func (db *DB) newHead(firstSegment int) *head {
	h := newHead(firstSegment)
	sf, err := openSpill(db.dir, firstSegment)
	if err != nil {
		db.logger.Warn("head chunks stay in memory", "err", err)
		return h
	}
	h.spill = sf
	// Queries may still read a flushed head's chunks: the file is closed when
	// the last reference to the head is gone, not when the head is flushed.
	runtime.AddCleanup(h, func(f *os.File) { f.Close() }, sf.f)
	return h
}

// dropSpill removes a flushed head's file; open descriptors keep reading.
func (h *head) dropSpill() {
	if h.spill != nil {
		os.Remove(h.spill.path)
	}
}
