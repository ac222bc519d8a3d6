// Package backlog is the forwarders' durable, bounded, single-reader queue
// on disk (logs.forward, traces.forward) and the loop that drains it.
package backlog

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Backlog is a durable, bounded, single-reader queue of records on disk,
// shared by the logs and traces forwarders. It is a directory of numbered segment files (00000001.seg, …)
// of records, each
//
//	uint32 length (big endian) | uint32 CRC-32C of the payload | payload
//
// and a file `position` holding "segment offset" of the first record not
// yet acknowledged by the endpoint, replaced atomically after every
// acknowledgement. Records are appended with one write(2) each, so a
// record acknowledged to the log's sender survives a kill -9 of the
// process at once, and a power loss after the next Sync (Set.Run calls it
// every SyncInterval) or segment cut, which fsync. A torn record at the end of the last segment (a crash mid-write)
// is cut off at open. Fully acknowledged segments are deleted.
type Backlog struct {
	dir     string
	segSize int64
	maxSize int64

	mu      sync.Mutex
	segs    []int // numbers of existing segments, ascending
	sizes   map[int]int64
	active  *os.File
	dropped int64 // bytes of unsent records dropped to stay under maxSize
	notify  chan struct{}
	posSeg  int
	posOff  int64
	closed  bool
	dirty   bool // written since the last Sync
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const recordHeader = 8

// maxRecord bounds one record (a push body); larger lengths mean corruption.
const maxRecord = 256 << 20

func Open(dir string, segSize, maxSize int64) (*Backlog, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open backlog: %w", err)
	}
	b := &Backlog{dir: dir, segSize: segSize, maxSize: maxSize, sizes: map[int]int64{}, notify: make(chan struct{}, 1)}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open backlog: %w", err)
	}
	for _, e := range ents {
		n, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok {
			continue
		}
		i, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		b.segs = append(b.segs, i)
	}
	sort.Ints(b.segs)
	for _, s := range b.segs {
		st, err := os.Stat(b.segPath(s))
		if err != nil {
			return nil, fmt.Errorf("open backlog: %w", err)
		}
		b.sizes[s] = st.Size()
	}
	if err := b.readPosition(); err != nil {
		return nil, err
	}
	if len(b.segs) == 0 {
		if err := b.cut(); err != nil {
			return nil, err
		}
		return b, nil
	}
	last := b.segs[len(b.segs)-1]
	valid, err := validPrefix(b.segPath(last))
	if err != nil {
		return nil, err
	}
	if valid != b.sizes[last] {
		// A torn write at a crash: keep the records before it.
		if err := os.Truncate(b.segPath(last), valid); err != nil {
			return nil, fmt.Errorf("open backlog: cut torn record: %w", err)
		}
		b.sizes[last] = valid
	}
	b.clampPosition()
	f, err := os.OpenFile(b.segPath(last), os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open backlog: %w", err)
	}
	b.active = f
	return b, nil
}

// clampPosition keeps the saved position inside the segments on disk. It
// can point past them after a power loss (the position file survived, the
// last writes to the segment did not) or a hand-edited directory; left so,
// records appended from now on would sit before the position and never be
// sent.
func (b *Backlog) clampPosition() {
	last := b.segs[len(b.segs)-1]
	size, exists := b.sizes[b.posSeg]
	switch {
	case b.posSeg > last:
		b.posSeg, b.posOff = last, b.sizes[last]
	case !exists: // between two segments: the next one from its start
		b.posSeg, b.posOff = b.segs[sort.SearchInts(b.segs, b.posSeg)], 0
	case b.posOff < 0:
		b.posOff = 0
	default:
		// At a record boundary, at or before the saved offset: a position
		// that does not fall between two records (a corrupt file) would
		// otherwise make the reader skip the rest of the segment, records
		// appended after the restart included. At worst one record is sent
		// again.
		b.posOff = recordBoundary(b.segPath(b.posSeg), min(b.posOff, size))
	}
}

// recordBoundary is the end of the last whole record of the segment that
// ends at or before off; off itself when a damaged record before it stops
// the walk.
func recordBoundary(path string, off int64) int64 {
	f, err := os.Open(path)
	if err != nil {
		return off
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var at int64
	for at < off {
		p, err := readRecord(r)
		if err != nil {
			return off // damage before the position: already sent, trust the position
		}
		if at+recordHeader+int64(len(p)) > off {
			return at
		}
		at += recordHeader + int64(len(p))
	}
	return at
}

func (b *Backlog) segPath(n int) string { return filepath.Join(b.dir, fmt.Sprintf("%08d.seg", n)) }

func (b *Backlog) readPosition() error {
	raw, err := os.ReadFile(filepath.Join(b.dir, "position"))
	if errors.Is(err, os.ErrNotExist) {
		if len(b.segs) > 0 {
			b.posSeg = b.segs[0]
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("open backlog: read position: %w", err)
	}
	if _, err := fmt.Sscanf(string(raw), "%d %d", &b.posSeg, &b.posOff); err != nil {
		return fmt.Errorf("open backlog: position %q: %w", raw, err)
	}
	if len(b.segs) > 0 && b.posSeg < b.segs[0] {
		b.posSeg, b.posOff = b.segs[0], 0
	}
	return nil
}

// validPrefix is the length of the segment's leading run of whole records
// with good checksums.
func validPrefix(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("open backlog: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var off int64
	for {
		p, err := readRecord(r)
		if err != nil {
			return off, nil
		}
		off += recordHeader + int64(len(p))
	}
}

func readRecord(r io.Reader) ([]byte, error) {
	var h [recordHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(h[:4])
	if n > maxRecord {
		return nil, errors.New("record too large")
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return nil, err
	}
	if crc32.Checksum(p, castagnoli) != binary.BigEndian.Uint32(h[4:]) {
		return nil, errors.New("record checksum mismatch")
	}
	return p, nil
}

// cut starts a new segment; b.mu held or not yet shared.
func (b *Backlog) cut() error {
	n := 1
	if len(b.segs) > 0 {
		n = b.segs[len(b.segs)-1] + 1
	}
	f, err := os.OpenFile(b.segPath(n), os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("backlog: new segment: %w", err)
	}
	if b.active != nil {
		if err := b.active.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("backlog: sync segment: %w", err)
		}
		b.active.Close()
	}
	b.active = f
	b.segs = append(b.segs, n)
	b.sizes[n] = 0
	if len(b.segs) == 1 {
		b.posSeg, b.posOff = n, 0
	}
	return nil
}

// append writes one record and wakes the sender.
func (b *Backlog) Append(p []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("backlog closed")
	}
	last := b.segs[len(b.segs)-1]
	if b.sizes[last] > 0 && b.sizes[last]+recordHeader+int64(len(p)) > b.segSize {
		if err := b.cut(); err != nil {
			return err
		}
		last = b.segs[len(b.segs)-1]
	}
	buf := make([]byte, recordHeader+len(p))
	binary.BigEndian.PutUint32(buf[:4], uint32(len(p)))
	binary.BigEndian.PutUint32(buf[4:8], crc32.Checksum(p, castagnoli))
	copy(buf[recordHeader:], p)
	n, err := b.active.Write(buf)
	b.sizes[last] += int64(n)
	b.dirty = true
	if err != nil {
		return fmt.Errorf("backlog: write: %w", err)
	}
	b.enforceLimit()
	select {
	case b.notify <- struct{}{}:
	default:
	}
	return nil
}

// enforceLimit drops the oldest segments (never the active one) while the
// backlog is over its size; b.mu held.
func (b *Backlog) enforceLimit() {
	for len(b.segs) > 1 && b.size() > b.maxSize {
		old := b.segs[0]
		unsent := b.sizes[old]
		if old == b.posSeg {
			unsent -= b.posOff
		}
		b.dropped += unsent
		os.Remove(b.segPath(old))
		delete(b.sizes, old)
		b.segs = b.segs[1:]
		if b.posSeg <= old {
			b.posSeg, b.posOff = b.segs[0], 0
		}
	}
}

func (b *Backlog) size() int64 {
	var s int64
	for _, n := range b.sizes {
		s += n
	}
	return s
}

// pendingBytes is what has not been acknowledged yet.
func (b *Backlog) PendingBytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	var s int64
	for _, n := range b.segs {
		if n < b.posSeg {
			continue
		}
		s += b.sizes[n]
		if n == b.posSeg {
			s -= b.posOff
		}
	}
	return s
}

// takeDropped returns and resets the bytes dropped since the last call.
func (b *Backlog) TakeDropped() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.dropped
	b.dropped = 0
	return d
}

// next returns the first unacknowledged record and where the one after it
// starts, or ok=false when everything is acknowledged.
func (b *Backlog) Next() (p []byte, seg int, off int64, ok bool, err error) {
	b.mu.Lock()
	seg, off = b.posSeg, b.posOff
	for {
		size, exists := b.sizes[seg]
		if !exists {
			b.mu.Unlock()
			return nil, 0, 0, false, nil
		}
		if off < size {
			break
		}
		// This segment is done; move on if a later one exists.
		i := sort.SearchInts(b.segs, seg)
		if i+1 >= len(b.segs) {
			b.mu.Unlock()
			return nil, 0, 0, false, nil
		}
		seg, off = b.segs[i+1], 0
	}
	b.mu.Unlock()
	f, err := os.Open(b.segPath(seg))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, 0, 0, false, nil // dropped by the size limit meanwhile
		}
		return nil, 0, 0, false, err
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, 0, 0, false, err
	}
	p, err = readRecord(f)
	if err != nil {
		// A corrupt record mid-backlog: skip the rest of the segment.
		b.mu.Lock()
		size := b.sizes[seg]
		b.mu.Unlock()
		return nil, seg, size, true, &CorruptError{Skipped: size - off, err: fmt.Errorf("segment %d offset %d: %w", seg, off, err)}
	}
	return p, seg, off + recordHeader + int64(len(p)), true, nil
}

// ack records that everything before (seg, off) was delivered: the
// position file is replaced and segments before seg are deleted.
func (b *Backlog) Ack(seg int, off int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if seg < b.posSeg || (seg == b.posSeg && off < b.posOff) {
		return nil // the size limit moved past it meanwhile
	}
	b.posSeg, b.posOff = seg, off
	tmp := filepath.Join(b.dir, "position.tmp")
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%d %d\n", seg, off)), 0o644); err != nil {
		return fmt.Errorf("backlog: write position: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(b.dir, "position")); err != nil {
		return fmt.Errorf("backlog: write position: %w", err)
	}
	for len(b.segs) > 1 && b.segs[0] < seg {
		os.Remove(b.segPath(b.segs[0]))
		delete(b.sizes, b.segs[0])
		b.segs = b.segs[1:]
	}
	return nil
}

// Sync fsyncs the segment being written if a record was appended since the
// last Sync (earlier segments were fsynced when they were cut).
func (b *Backlog) Sync() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || !b.dirty {
		return nil
	}
	b.dirty = false
	if err := b.active.Sync(); err != nil {
		return fmt.Errorf("backlog: sync: %w", err)
	}
	return nil
}

// SetLimits changes the segment size (from the next segment on) and the
// bound, dropping the oldest unsent segments if the backlog is now over
// it; it returns the unsent bytes dropped.
func (b *Backlog) SetLimits(segSize, maxSize int64) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.segSize, b.maxSize = segSize, maxSize
	before := b.dropped
	b.enforceLimit()
	d := b.dropped - before
	b.dropped = before
	return d
}

func (b *Backlog) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if err := b.active.Sync(); err != nil {
		b.active.Close()
		return fmt.Errorf("backlog: sync: %w", err)
	}
	return b.active.Close()
}

// CorruptError is a record that cannot be read; the rest of its segment
// (skipped bytes) is given up.
type CorruptError struct {
	Skipped int64
	err     error
}

func (e *CorruptError) Error() string { return e.err.Error() }

// Notify receives a value after records were appended.
func (b *Backlog) Notify() <-chan struct{} { return b.notify }

// Sender is what Drain hands records to, and tells what happened.
type Sender struct {
	// Send delivers one record until it is acknowledged or refused for
	// good; false when ctx ended first (the record stays for next time).
	Send func(ctx context.Context, rec []byte) bool
	// Sleep waits d or until ctx ends (false); tests shorten it.
	Sleep func(ctx context.Context, d time.Duration) bool
	// RetryWait is the pause after a read error.
	RetryWait time.Duration
	// Corrupt counts the bytes skipped in a corrupt segment.
	Corrupt func(skipped int64)
	// Pending reports the bytes still to send after every record.
	Pending func(bytes int64)
	Logger  *slog.Logger
}

// Drain sends every record in order, acknowledging each once Send returns
// true, and waits for new ones, until ctx ends.
func (b *Backlog) Drain(ctx context.Context, s Sender) {
	for ctx.Err() == nil {
		rec, seg, off, ok, err := b.Next()
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				s.Logger.Error("Read forward backlog", "err", err)
				if !s.Sleep(ctx, s.RetryWait) {
					return
				}
				continue
			}
			s.Logger.Error("Skipping the rest of a corrupt backlog segment", "err", err)
			s.Corrupt(ce.Skipped)
			if err := b.Ack(seg, off); err != nil {
				s.Logger.Error("Save forward position", "err", err)
			}
			continue
		}
		if !ok {
			s.Pending(0)
			select {
			case <-ctx.Done():
				return
			case <-b.Notify():
			}
			continue
		}
		if !s.Send(ctx, rec) {
			return // ctx ended; the record stays in the backlog
		}
		if err := b.Ack(seg, off); err != nil {
			s.Logger.Error("Save forward position", "err", err)
		}
		s.Pending(b.PendingBytes())
	}
}

// SleepCtx waits d, or returns false as soon as ctx ends.
func SleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
