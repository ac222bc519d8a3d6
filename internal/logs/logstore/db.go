package logstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/wlog"
	"github.com/prometheus/prometheus/util/compression"
)

// FsyncPolicy says when the WAL is fsynced. Every commit is written to the
// WAL (the OS page cache) before it is acknowledged, so a process crash loses
// nothing acknowledged; the policy decides what a machine crash can lose.
type FsyncPolicy string

const (
	FsyncAlways   FsyncPolicy = "always"   // fsync before every acknowledgement
	FsyncInterval FsyncPolicy = "interval" // fsync every FsyncInterval
	FsyncNever    FsyncPolicy = "never"    // leave it to the OS (and segment cuts)
)

// Options tune a DB. Zero values take the defaults from DefaultOptions.
type Options struct {
	Retention       time.Duration // drop blocks whose newest entry is older; 0 keeps forever
	RetentionSize   int64         // drop oldest blocks while blocks exceed this many bytes; 0 = no cap
	Fsync           FsyncPolicy
	FsyncInterval   time.Duration
	WALSegmentSize  int   // bytes, multiple of 32 KiB
	ChunkTargetSize int   // uncompressed bytes at which a chunk is cut
	HeadMaxBytes    int64 // the head is flushed to a block beyond this
	HeadMaxAge      time.Duration
	MaxBlockSize    int64         // compaction stops merging at this size
	MaxBlockSpan    time.Duration // compaction never merges blocks spanning more than this
	// CompactionFanout is how many adjacent blocks of one compaction level
	// are merged into one block of the next level (tiered compaction): each
	// stored byte is written once per level.
	CompactionFanout int
	// ColdCompression compresses the chunks of compacted blocks (level 2
	// and up); head chunks and flushed blocks stay s2. "zstd" (the
	// default) stores about half the bytes of s2 and decompresses ~3×
	// slower; "s2" keeps scans of old data as fast as of new (ADR 0097).
	ColdCompression  Compression
	CheckInterval    time.Duration // how often Run flushes, compacts and applies retention
	QueryConcurrency int           // chunk loaders per query
	// ActiveStreamWindow is how long a stream counts against
	// Limits.MaxStreams after its last entry, whether it is still in the
	// head or already in a block (Loki keeps an idle stream in its
	// ingesters for about as long).
	ActiveStreamWindow time.Duration
	// MinFreeBytes is the free space the store keeps on its filesystem:
	// commits that would leave less are refused with ErrDiskFull (retry
	// later) instead of failing halfway through a WAL write. 0 = no check.
	MinFreeBytes int64
	// Limits, changeable at run time with SetLimits.
	Limits Limits
	// Now is the clock, for tests; defaults to time.Now.
	Now func() time.Time
}

// Limits are the store-enforced ingestion limits.
type Limits struct {
	MaxStreams       int           // 0 = unlimited
	OutOfOrderWindow time.Duration // 0 = accept any order
}

// DefaultOptions are the defaults documented in docs/formats/logstore.md.
func DefaultOptions() Options {
	return Options{
		Fsync:            FsyncInterval,
		FsyncInterval:    time.Second,
		WALSegmentSize:   64 << 20,
		ChunkTargetSize:  256 << 10,
		HeadMaxBytes:     16 << 20,
		HeadMaxAge:       30 * time.Minute,
		MaxBlockSize:     1 << 30,
		MaxBlockSpan:     24 * time.Hour,
		CompactionFanout: 8,
		ColdCompression:  CompressionZstd,
		CheckInterval:    15 * time.Second,
		QueryConcurrency: defaultQueryConcurrency(),
		Now:              time.Now,

		ActiveStreamWindow: time.Hour,
		MinFreeBytes:       64 << 20,
	}
}

func (o *Options) fill() {
	d := DefaultOptions()
	if o.Fsync == "" {
		o.Fsync = d.Fsync
	}
	if o.FsyncInterval <= 0 {
		o.FsyncInterval = d.FsyncInterval
	}
	if o.WALSegmentSize <= 0 {
		o.WALSegmentSize = d.WALSegmentSize
	}
	o.WALSegmentSize = (o.WALSegmentSize + 32<<10 - 1) / (32 << 10) * (32 << 10)
	if o.ChunkTargetSize <= 0 {
		o.ChunkTargetSize = d.ChunkTargetSize
	}
	if o.HeadMaxBytes <= 0 {
		o.HeadMaxBytes = d.HeadMaxBytes
	}
	if o.HeadMaxAge <= 0 {
		o.HeadMaxAge = d.HeadMaxAge
	}
	if o.MaxBlockSize <= 0 {
		o.MaxBlockSize = d.MaxBlockSize
	}
	if o.MaxBlockSpan <= 0 {
		o.MaxBlockSpan = d.MaxBlockSpan
	}
	if o.CompactionFanout <= 0 {
		o.CompactionFanout = d.CompactionFanout
	}
	if o.ColdCompression != CompressionS2 && o.ColdCompression != CompressionZstd {
		o.ColdCompression = d.ColdCompression
	}
	if o.CheckInterval <= 0 {
		o.CheckInterval = d.CheckInterval
	}
	if o.QueryConcurrency <= 0 {
		o.QueryConcurrency = d.QueryConcurrency
	}
	if o.ActiveStreamWindow <= 0 {
		o.ActiveStreamWindow = d.ActiveStreamWindow
	}
	if o.Now == nil {
		o.Now = d.Now
	}
}

// Deps are the injected collaborators.
type Deps struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Typed append errors, so the API can answer with Loki's reasons.
var (
	ErrOutOfOrder     = errors.New("entry too far behind")
	ErrTooManyStreams = errors.New("maximum active stream limit exceeded")
	ErrClosed         = errors.New("logstore closed")
)

// DB is a log store: WAL, head, blocks.
type DB struct {
	dir    string
	opts   Options
	logger *slog.Logger
	m      *metrics

	limits atomic.Pointer[Limits]

	walMu sync.Mutex // orders WAL writes with head updates and head rotation
	wal   *wlog.WL
	dirty bool // written since the last fsync (interval policy)
	gc    groupCommit
	// active maps the labels hash of every stream written within
	// ActiveStreamWindow (head, flushing heads and recent blocks) to the
	// time of its last entry (Unix ns): the stream limit counts these, so
	// a head flush does not reset it. Guarded by walMu.
	active      map[uint64]int64
	activePrune int64 // when active was last pruned (Unix ns)
	// walBroken is the error of a failed WAL write; writes are refused
	// until recoverWAL succeeds (see admit). Guarded by walMu.
	walBroken error

	mu       sync.RWMutex // guards the fields below
	head     *head
	flushing []*head
	blocks   []*block // sorted by MinTime
	closed   bool

	replayDuplicates int // dropped while replaying the WAL, counted once metrics exist

	nextRef   atomic.Uint64
	flushMu   sync.Mutex // one flush or compaction at a time
	flushWake chan struct{}
}

// Open opens or creates a store in dir, replaying the WAL.
func Open(dir string, opts Options, deps Deps) (*DB, error) {
	opts.fill()
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	db := &DB{dir: dir, opts: opts, logger: deps.Logger.With("component", "logstore"), flushWake: make(chan struct{}, 1)}
	lim := opts.Limits
	db.limits.Store(&lim)
	if err := os.MkdirAll(filepath.Join(dir, "blocks"), 0o755); err != nil {
		return nil, fmt.Errorf("open logstore: %w", err)
	}
	if err := db.loadBlocks(); err != nil {
		return nil, fmt.Errorf("open logstore: %w", err)
	}
	lastBlockSeg := -1
	for _, b := range db.blocks {
		lastBlockSeg = max(lastBlockSeg, b.meta.WALSegment)
	}
	walDir := filepath.Join(dir, "wal")
	_, lastSeg, err := wlog.Segments(walDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		db.closeBlocks()
		return nil, fmt.Errorf("open logstore: list wal segments: %w", err)
	}
	w, err := wlog.NewSize(db.logger, nil, walDir, opts.WALSegmentSize, compression.Snappy)
	if err != nil {
		db.closeBlocks()
		return nil, fmt.Errorf("open logstore: open wal: %w", err)
	}
	db.wal = w
	// Spilled head chunks of a previous run are rebuilt from the WAL.
	if err := os.RemoveAll(filepath.Join(dir, spillDir)); err != nil {
		w.Close()
		db.closeBlocks()
		return nil, fmt.Errorf("open logstore: clear head chunks: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, spillDir), 0o755); err != nil {
		w.Close()
		db.closeBlocks()
		return nil, fmt.Errorf("open logstore: %w", err)
	}
	db.head = db.newHead(lastBlockSeg + 1)
	if lastSeg >= 0 && lastSeg > lastBlockSeg {
		if err := db.replay(walDir, lastBlockSeg+1, lastSeg); err != nil {
			w.Close()
			db.closeBlocks()
			return nil, fmt.Errorf("open logstore: %w", err)
		}
	}
	db.seedActive()
	db.m = newMetrics(deps.Registerer, db)
	db.m.duplicates.WithLabelValues("ingest").Add(float64(db.replayDuplicates))
	return db, nil
}

// seedActive fills the active-stream set from the replayed head and the
// index of every block holding entries within ActiveStreamWindow.
func (db *DB) seedActive() {
	now := db.opts.Now().UnixNano()
	from := now - int64(db.opts.ActiveStreamWindow)
	db.active = map[uint64]int64{}
	for _, b := range db.blocks {
		if b.meta.MaxTime < from {
			continue
		}
		for i := range b.streams {
			st := &b.streams[i]
			last := minTime
			for _, c := range st.chunks {
				last = max(last, c.meta.MaxTime)
			}
			if last >= from {
				h := st.lbls.Hash()
				db.active[h] = max(db.active[h], last)
			}
		}
	}
	for _, s := range db.head.allStreams() {
		db.active[s.lbls.Hash()] = now
	}
}

// pruneActive forgets streams idle for longer than ActiveStreamWindow, at
// most once a second. The caller holds walMu.
func (db *DB) pruneActive(now int64) {
	if now-db.activePrune < int64(time.Second) && now >= db.activePrune {
		return
	}
	db.activePrune = now
	from := now - int64(db.opts.ActiveStreamWindow)
	for h, t := range db.active {
		if t < from {
			delete(db.active, h)
		}
	}
}

// ActiveStreams is the number of streams counted against the stream limit.
func (db *DB) ActiveStreams() int {
	db.walMu.Lock()
	defer db.walMu.Unlock()
	return len(db.active)
}

func (db *DB) loadBlocks() error {
	root := filepath.Join(db.dir, "blocks")
	ents, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("list blocks: %w", err)
	}
	var bs []*block
	for _, e := range ents {
		p := filepath.Join(root, e.Name())
		if strings.HasSuffix(e.Name(), ".tmp") || strings.HasSuffix(e.Name(), ".deleted") {
			// Left over from a crash mid-write or mid-delete.
			if err := os.RemoveAll(p); err != nil {
				return fmt.Errorf("remove leftover %s: %w", e.Name(), err)
			}
			continue
		}
		if !e.IsDir() {
			continue
		}
		b, err := openBlock(p)
		if err != nil {
			for _, b := range bs {
				b.close()
			}
			return fmt.Errorf("open block %s: %w", e.Name(), err)
		}
		bs = append(bs, b)
	}
	// A compaction that crashed before deleting its sources leaves them behind.
	replaced := map[string]bool{}
	for _, b := range bs {
		for _, s := range b.meta.Compaction.Sources {
			if s != b.meta.ULID {
				replaced[s] = true
			}
		}
	}
	for _, b := range bs {
		if replaced[b.meta.ULID] {
			b.close()
			if err := os.RemoveAll(b.dir); err != nil {
				return fmt.Errorf("remove compacted source %s: %w", b.meta.ULID, err)
			}
			continue
		}
		db.blocks = append(db.blocks, b)
	}
	db.sortBlocks()
	return nil
}

func (db *DB) sortBlocks() {
	slices.SortFunc(db.blocks, func(a, b *block) int {
		if c := cmpInt64(a.meta.MinTime, b.meta.MinTime); c != 0 {
			return c
		}
		return strings.Compare(a.meta.ULID, b.meta.ULID)
	})
}

func (db *DB) closeBlocks() {
	for _, b := range db.blocks {
		b.close()
	}
}

func (db *DB) replay(walDir string, first, last int) error {
	sr, err := wlog.NewSegmentsRangeReader(wlog.SegmentRange{Dir: walDir, First: first, Last: last})
	if err != nil {
		return fmt.Errorf("replay wal: %w", err)
	}
	defer sr.Close()
	r := wlog.NewReader(sr)
	refs := map[uint64]*memStream{}
	var maxRef uint64
	var unknown int
	replayDups := 0
	defer func() { db.replayDuplicates = replayDups }()
	for r.Next() {
		rec := r.Record()
		if len(rec) == 0 {
			continue
		}
		switch rec[0] {
		case recStreams:
			err = decodeStreamsRecord(rec, func(ref uint64, ls labels.Labels) {
				s := db.head.get(ls)
				if s == nil {
					s = db.head.create(ref, ls)
				}
				refs[ref] = s
				maxRef = max(maxRef, ref)
			})
		case recEntries:
			err = decodeEntriesRecord(rec, func(ref uint64, es []Entry) {
				s := refs[ref]
				if s == nil {
					unknown += len(es)
					return
				}
				// WALs written before ingest dedup may hold duplicates.
				es, n := s.dedup(es)
				replayDups += n
				if len(es) > 0 {
					db.head.appendEntries(s, es, db.opts.ChunkTargetSize)
				}
			})
		default:
			err = fmt.Errorf("unknown record type %d", rec[0])
		}
		if err != nil {
			return fmt.Errorf("replay wal segment %d: %w", r.Segment(), err)
		}
	}
	if err := r.Err(); err != nil {
		// A torn tail from a crash mid-write: everything before it was
		// acknowledged and is kept; the tail never was.
		db.logger.Warn("wal corruption, repairing", "err", err)
		if rerr := db.wal.Repair(err); rerr != nil {
			return fmt.Errorf("repair wal: %w", rerr)
		}
	}
	if unknown > 0 {
		db.logger.Warn("wal entries for unknown streams dropped", "entries", unknown)
	}
	db.nextRef.Store(maxRef)
	if db.head.entries.Load() > 0 {
		db.head.createdAt.Store(db.opts.Now().UnixNano())
	}
	return nil
}

// SetLimits changes the ingestion limits; safe while running.
func (db *DB) SetLimits(l Limits) { db.limits.Store(&l) }

var walBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1<<20); return &b }}

// Appender buffers entries until Commit. Not safe for concurrent use.
type Appender struct {
	db      *DB
	streams []pendingStream
	index   map[uint64][]int
	stored  []StoredStream
}

// StoredStream is what a commit stored for one stream: its entries minus
// those refused and those dropped as exact duplicates.
type StoredStream struct {
	Labels  labels.Labels
	Entries []Entry
}

// Stored lists what the last successful Commit stored, e.g. to feed live
// tails without repeating a sender's retried lines.
func (a *Appender) Stored() []StoredStream { return a.stored }

type pendingStream struct {
	lbls    labels.Labels
	entries []Entry
}

// Appender starts a batch.
func (db *DB) Appender() *Appender { return &Appender{db: db, index: map[uint64][]int{}} }

// Append buffers an entry for the stream with labels ls (sorted, non-empty).
func (a *Appender) Append(ls labels.Labels, e Entry) {
	h := ls.Hash()
	for _, i := range a.index[h] {
		if labels.Equal(a.streams[i].lbls, ls) {
			a.streams[i].entries = append(a.streams[i].entries, e)
			return
		}
	}
	a.index[h] = append(a.index[h], len(a.streams))
	a.streams = append(a.streams, pendingStream{lbls: ls, entries: []Entry{e}})
}

// Rollback drops the batch.
func (a *Appender) Rollback() { a.streams, a.index = nil, map[uint64][]int{} }

// Rejection says why entries of a stream were refused.
type Rejection struct {
	Labels  labels.Labels
	Entry   Entry
	Err     error // ErrOutOfOrder or ErrTooManyStreams
	Dropped int   // entries of this stream refused for the same reason
	Total   int   // entries of this stream in the batch
	// Floor is the oldest acceptable timestamp (Unix ns) for ErrOutOfOrder.
	Floor int64
}

// Commit writes the batch to the WAL and then to the head. It returns the
// refused entries (limits) separately from a failure of the whole commit.
// Nothing is visible or acknowledged before the WAL write succeeds.
func (a *Appender) Commit() ([]Rejection, error) {
	rej, syncSeq, err := a.write()
	if err != nil || syncSeq == 0 {
		return rej, err
	}
	// Group commit: the WAL lock is released, so concurrent commits write
	// meanwhile and one fsync acknowledges them all.
	if err := a.db.gc.sync(syncSeq, a.db.walSegmentPath); err != nil {
		a.db.m.walFailures.Inc()
		return rej, fmt.Errorf("commit: fsync wal: %w", err)
	}
	return rej, nil
}

// write does the locked part of Commit: limits, WAL write, head append. A
// non-zero seq must be passed to the group commit before acknowledging.
func (a *Appender) write() ([]Rejection, uint64, error) {
	db := a.db
	a.stored = a.stored[:0]
	lim := db.limits.Load()
	db.walMu.Lock()
	defer db.walMu.Unlock()
	db.mu.RLock()
	h, closed := db.head, db.closed
	db.mu.RUnlock()
	if closed {
		return nil, 0, ErrClosed
	}
	var rej []Rejection
	var newRefs []uint64
	var newLabels []labels.Labels
	batch := make([]walEntries, 0, len(a.streams))
	targets := make([]*memStream, 0, len(a.streams))
	now := db.opts.Now().UnixNano()
	var touched, added []uint64
	for _, ps := range a.streams {
		s := h.get(ps.lbls)
		hash := ps.lbls.Hash()
		if s == nil {
			if _, known := db.active[hash]; !known && lim.MaxStreams > 0 && len(db.active) >= lim.MaxStreams {
				db.pruneActive(now)
				if len(db.active) >= lim.MaxStreams {
					rej = append(rej, Rejection{Labels: ps.lbls, Entry: ps.entries[0], Err: ErrTooManyStreams, Dropped: len(ps.entries), Total: len(ps.entries)})
					continue
				}
			}
			ref := db.nextRef.Add(1)
			newRefs = append(newRefs, ref)
			newLabels = append(newLabels, ps.lbls)
			s = &memStream{ref: ref, lbls: ps.lbls, maxT: minTime}
		}
		// Counted from now on, so later streams of this batch see it; a
		// failed WAL write leaves it counted until it ages out.
		if _, known := db.active[hash]; !known {
			db.active[hash] = now
			added = append(added, hash)
		}
		touched = append(touched, hash)
		es := ps.entries
		if lim.OutOfOrderWindow > 0 {
			s.mu.Lock()
			floor := s.maxT
			s.mu.Unlock()
			var kept []Entry
			var first *Entry
			dropped := 0
			for i := range es {
				floor = max(floor, es[i].Timestamp)
			}
			floor -= int64(lim.OutOfOrderWindow)
			for i := range es {
				if es[i].Timestamp < floor {
					if first == nil {
						first = &es[i]
					}
					dropped++
					continue
				}
				kept = append(kept, es[i])
			}
			if dropped > 0 {
				rej = append(rej, Rejection{Labels: ps.lbls, Entry: *first, Err: ErrOutOfOrder, Dropped: dropped, Total: len(ps.entries), Floor: floor})
				es = kept
			}
		}
		// Exact duplicates (a sender's retry) are acknowledged but not
		// stored again, as Loki's ingester does.
		es, dups := s.dedup(es)
		if dups > 0 {
			db.m.duplicates.WithLabelValues("ingest").Add(float64(dups))
		}
		if len(es) == 0 {
			continue
		}
		batch = append(batch, walEntries{ref: s.ref, entries: es})
		targets = append(targets, s)
	}
	if len(batch) == 0 {
		return rej, 0, nil
	}
	var recs [][]byte
	if len(newRefs) > 0 {
		recs = append(recs, encodeStreamsRecord(nil, newRefs, newLabels))
	}
	// The WAL copies records into its pages, so one pooled buffer serves every commit.
	bp := walBufs.Get().(*[]byte)
	defer walBufs.Put(bp)
	*bp = encodeEntriesRecord((*bp)[:0], batch)
	recs = append(recs, *bp)
	size := 0
	for _, r := range recs {
		size += len(r)
	}
	if err := db.admit(size); err != nil {
		for _, h := range added {
			delete(db.active, h) // never written
		}
		return rej, 0, err
	}
	if err := db.wal.Log(recs...); err != nil {
		for _, h := range added {
			delete(db.active, h)
		}
		return rej, 0, db.walFailed(err)
	}
	db.dirty = true
	for _, h := range touched {
		db.active[h] = now
	}
	var syncSeq uint64
	if db.opts.Fsync == FsyncAlways {
		seg, _, err := db.wal.LastSegmentAndOffset()
		if err != nil {
			db.m.walFailures.Inc()
			return rej, 0, fmt.Errorf("commit: wal position: %w", err)
		}
		syncSeq = db.gc.written(seg)
	}
	// Streams become visible only now that their WAL record is written.
	for i, s := range targets {
		if s2 := h.get(s.lbls); s2 != nil {
			s = s2
		} else {
			s = h.create(s.ref, s.lbls)
		}
		h.appendEntries(s, batch[i].entries, db.opts.ChunkTargetSize)
		db.m.entries.Add(float64(len(batch[i].entries)))
		for _, e := range batch[i].entries {
			db.m.bytes.Add(float64(len(e.Line)))
		}
	}
	for i, s := range targets {
		a.stored = append(a.stored, StoredStream{Labels: s.lbls, Entries: batch[i].entries})
	}
	if h.createdAt.Load() == 0 {
		h.createdAt.Store(db.opts.Now().UnixNano())
	}
	if h.bytes.Load() >= db.opts.HeadMaxBytes {
		select {
		case db.flushWake <- struct{}{}:
		default:
		}
	}
	a.Rollback()
	return rej, syncSeq, nil
}

func (db *DB) walSegmentPath(seg int) string {
	return wlog.SegmentName(filepath.Join(db.dir, "wal"), seg)
}

// Querier opens a read view over [mint, maxt) in Unix ns.
func (db *DB) Querier(mint, maxt int64) (*Querier, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return nil, ErrClosed
	}
	q := &Querier{mint: mint, maxt: maxt, sem: make(chan struct{}, db.opts.QueryConcurrency), stats: &db.m.query}
	for _, b := range db.blocks {
		if b.meta.MaxTime < mint || b.meta.MinTime >= maxt {
			continue
		}
		if b.acquire() {
			q.blocks = append(q.blocks, b)
		}
	}
	q.heads = append(append(q.heads, db.flushing...), db.head)
	return q, nil
}

// Ready reports whether the store is open.
func (db *DB) Ready() bool {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return !db.closed
}

// HeadMemory reports the bytes the head holds in memory (the rest is spilled).
func (db *DB) HeadMemory() int64 {
	db.mu.RLock()
	defer db.mu.RUnlock()
	n := db.head.memBytes.Load()
	for _, h := range db.flushing {
		n += h.memBytes.Load()
	}
	return n
}

// HeadStats reports the head's size, for limits and tests.
func (db *DB) HeadStats() (streams int, entries, bytes int64) {
	db.mu.RLock()
	h := db.head
	db.mu.RUnlock()
	return h.numStreams(), h.entries.Load(), h.bytes.Load()
}

// Dir is the store's directory.
func (db *DB) Dir() string { return db.dir }

// Blocks returns the metas of the current blocks, oldest first.
func (db *DB) Blocks() []BlockMeta {
	db.mu.RLock()
	defer db.mu.RUnlock()
	out := make([]BlockMeta, len(db.blocks))
	for i, b := range db.blocks {
		out[i] = b.meta
	}
	return out
}

func newULID(now time.Time) string {
	return ulid.MustNew(ulid.Timestamp(now), ulid.DefaultEntropy()).String()
}

// FlushHead writes the head to a new block and starts an empty head; the WAL
// segments it covered are deleted once the block is durable. Heads whose
// earlier flush failed are retried first, and their segments are kept until then.
func (db *DB) FlushHead() error {
	db.flushMu.Lock()
	defer db.flushMu.Unlock()

	db.walMu.Lock()
	db.mu.Lock()
	old := db.head
	if db.closed {
		db.mu.Unlock()
		db.walMu.Unlock()
		return nil
	}
	// After a failed WAL write the current segment may end in a torn
	// record: retire it even when the head is empty.
	if old.entries.Load() > 0 || db.walBroken != nil {
		next, err := db.wal.NextSegmentSync()
		if err != nil {
			db.mu.Unlock()
			db.walMu.Unlock()
			return fmt.Errorf("flush head: cut wal segment: %w", err)
		}
		old.lastSegment = next - 1
		db.head = db.newHead(next)
		db.flushing = append(db.flushing, old)
	}
	pending := slices.Clone(db.flushing)
	db.mu.Unlock()
	db.walMu.Unlock()

	for _, h := range pending {
		if h.entries.Load() == 0 { // retired only to cut the WAL (recoverWAL)
			db.mu.Lock()
			db.flushing = slices.DeleteFunc(db.flushing, func(x *head) bool { return x == h })
			db.mu.Unlock()
			h.dropSpill()
			continue
		}
		start := time.Now()
		b, err := db.writeHeadBlock(h, h.lastSegment)
		if err != nil {
			db.m.flushFailures.Inc()
			// The head stays queryable and its WAL segments stay; the next flush retries.
			return fmt.Errorf("flush head: %w", err)
		}
		db.mu.Lock()
		db.blocks = append(db.blocks, b)
		db.sortBlocks()
		db.flushing = slices.DeleteFunc(db.flushing, func(x *head) bool { return x == h })
		db.mu.Unlock()
		h.dropSpill()
		db.m.flushes.Inc()
		db.m.blockBytesFlush.Add(float64(b.meta.Stats.SizeBytes))
		db.m.flushDuration.Observe(time.Since(start).Seconds())
	}
	// Every flushed head's segments precede the current head's first one.
	db.mu.RLock()
	keepFrom := db.head.firstSegment
	db.mu.RUnlock()
	if err := db.wal.Truncate(keepFrom); err != nil {
		return fmt.Errorf("flush head: truncate wal: %w", err)
	}
	return nil
}

func (db *DB) writeHeadBlock(h *head, lastSeg int) (*block, error) {
	id := newULID(db.opts.Now())
	w, err := newBlockWriter(filepath.Join(db.dir, "blocks"), id)
	if err != nil {
		return nil, err
	}
	w.meta.WALSegment = lastSeg
	w.meta.Compaction = BlockCompaction{Level: 1, Sources: []string{id}}
	for _, s := range h.allStreams() {
		s.mu.Lock()
		if s.open.entries > 0 {
			c := cutChunk(&s.open)
			s.chunks = append(s.chunks, c)
			s.open = rawChunk{}
		}
		cs := slices.Clone(s.chunks)
		s.mu.Unlock()
		sc := make([]storedChunk, len(cs))
		for i, c := range cs {
			data, err := c.stored(nil)
			if err != nil {
				w.abort()
				return nil, err
			}
			sc[i] = storedChunk{meta: c.meta, data: data, bloom: c.bloom, summary: c.sum}
		}
		slices.SortStableFunc(sc, func(a, b storedChunk) int { return cmpInt64(a.meta.MinTime, b.meta.MinTime) })
		if err := w.addStream(s.lbls, sc); err != nil {
			w.abort()
			return nil, err
		}
	}
	if _, err := w.finish(); err != nil {
		return nil, err
	}
	b, err := openBlock(w.final)
	if err != nil {
		return nil, fmt.Errorf("open new block: %w", err)
	}
	return b, nil
}

// Run flushes the head, compacts blocks and applies retention until ctx ends.
func (db *DB) Run(ctx context.Context) error {
	tick := time.NewTicker(db.opts.CheckInterval)
	defer tick.Stop()
	var syncC <-chan time.Time
	if db.opts.Fsync == FsyncInterval {
		st := time.NewTicker(db.opts.FsyncInterval)
		defer st.Stop()
		syncC = st.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-syncC:
			db.syncWAL()
		case <-db.flushWake:
			if err := db.FlushHead(); err != nil {
				db.logger.Error("flush head", "err", err)
			}
		case <-tick.C:
			db.Maintain()
		}
	}
}

// Maintain runs one round of background work: flush an old or big head,
// compact, apply retention. Errors are logged and counted; the next round retries.
func (db *DB) Maintain() {
	if err := db.recoverWAL(); err != nil {
		db.logger.Warn("wal still not writable", "err", err)
	}
	db.walMu.Lock()
	db.pruneActive(db.opts.Now().UnixNano())
	db.walMu.Unlock()
	db.mu.RLock()
	h := db.head
	db.mu.RUnlock()
	age := time.Duration(0)
	if c := h.createdAt.Load(); c != 0 {
		age = db.opts.Now().Sub(time.Unix(0, c))
	}
	if h.bytes.Load() >= db.opts.HeadMaxBytes || (h.entries.Load() > 0 && age >= db.opts.HeadMaxAge) {
		if err := db.FlushHead(); err != nil {
			db.logger.Error("flush head", "err", err)
		}
	}
	if err := db.Compact(); err != nil {
		db.m.compactionFailures.Inc()
		db.logger.Error("compact", "err", err)
	}
	if err := db.ApplyRetention(); err != nil {
		db.logger.Error("retention", "err", err)
	}
}

func (db *DB) syncWAL() {
	db.walMu.Lock()
	defer db.walMu.Unlock()
	if !db.dirty || db.wal == nil {
		return
	}
	if err := db.wal.Sync(); err != nil {
		db.m.walFailures.Inc()
		db.logger.Error("fsync wal", "err", err)
		return
	}
	db.dirty = false
}

// Close syncs and closes the WAL and blocks. The head is not flushed: the WAL
// holds it and the next Open replays it.
func (db *DB) Close() error {
	db.walMu.Lock()
	defer db.walMu.Unlock()
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return nil
	}
	db.closed = true
	var errs []error
	if err := db.wal.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close wal: %w", err))
	}
	// Spill files are left for Open to clear; their descriptors close with
	// their heads (see newHead).
	for _, b := range db.blocks {
		<-b.markDeleted() // wait for running queries
		if err := b.close(); err != nil {
			errs = append(errs, fmt.Errorf("close block %s: %w", b.meta.ULID, err))
		}
	}
	if db.m != nil {
		db.m.unregister()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close logstore: %w", err)
	}
	return nil
}

var _ io.Closer = (*DB)(nil)
