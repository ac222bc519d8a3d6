package logstore

import (
	"fmt"
	"os"
	"slices"
	"sync"
)

// groupCommit lets concurrent commits share fsyncs (fsync: always). Each
// commit notes the WAL segment it wrote to and gets a sequence number; the
// first to reach sync fsyncs every segment written so far, and the others
// find their number already covered.
type groupCommit struct {
	mu      sync.Mutex // guards seq and segs; taken under the DB's WAL lock
	seq     uint64
	segs    []int // segments written since the last fsync
	syncMu  sync.Mutex
	syncedT uint64
}

func (g *groupCommit) written(seg int) uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seq++
	if !slices.Contains(g.segs, seg) {
		g.segs = append(g.segs, seg)
	}
	return g.seq
}

// sync returns once everything up to seq is on disk. Segment files are
// fsynced through their own descriptors: fsync covers the file, whoever
// wrote it, and wlog's own handle is not safe to use concurrently.
func (g *groupCommit) sync(seq uint64, path func(int) string) error {
	g.syncMu.Lock()
	defer g.syncMu.Unlock()
	if g.syncedT >= seq {
		return nil
	}
	g.mu.Lock()
	hi, segs := g.seq, g.segs
	g.segs = nil
	g.mu.Unlock()
	for i, seg := range segs {
		if err := fsyncFile(path(seg)); err != nil {
			g.mu.Lock() // let the next caller retry the rest
			g.segs = append(g.segs, segs[i:]...)
			g.mu.Unlock()
			return err
		}
	}
	g.syncedT = hi
	return nil
}

func fsyncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("open %s: %w", p, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", p, err)
	}
	return nil
}
