// Package tracestore is nx-watcher's trace database: a write-ahead log, an
// in-memory head that groups spans by trace ID, and immutable compressed
// blocks with a trace-ID index and attribute postings, plus compaction and
// retention. The on-disk format is documented in docs/formats/tracestore.md.
//
// Lifecycle: Open (replays WAL, discards half-written blocks), then Run in its
// own goroutine (cuts idle traces into blocks, compacts, applies retention),
// then Close after Run has returned. ConsumeTraces returns only after the
// spans are in the WAL.
package tracestore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb/record"
	"github.com/prometheus/prometheus/tsdb/wlog"
	"github.com/prometheus/prometheus/util/compression"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/otlp"
)

// Deps are the store's injected collaborators.
type Deps struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// DB is an open trace store. All methods are safe for concurrent use.
type DB struct {
	dir    string
	opts   Options
	logger *slog.Logger
	m      *metrics

	// appendMu orders WAL writes with head inserts and with the WAL cut of a
	// block flush, so a checkpoint always matches the segments it replaces.
	appendMu sync.Mutex
	wal      *wlog.WL
	head     *head
	recBuf   []byte
	// hw follows the WAL's write position, so the head keeps where its
	// pieces lie instead of their bytes (ADR 0111).
	hw *headWAL

	// mu guards blocks and flushing (traces being written to a block; they
	// stay visible to queries until the block is open).
	mu       sync.RWMutex
	blocks   []*block
	flushing map[TraceID]*headTrace

	// flushingBytes is the size of flushing, readable without mu (Behind).
	flushingBytes atomic.Int64

	// cutMu serialises cuts, compactions and retention.
	cutMu   sync.Mutex
	lastCut time.Time
	// kick asks Run for a cut now (buffered, one pending request at most):
	// a full head is cut without waiting for the next CheckInterval tick.
	kick chan struct{}

	dec *zstd.Decoder
	// pcache keeps postings read from version 4 indexes (bounded).
	pcache *postingsCache
	closed atomic.Bool

	// walBroken is set (under appendMu) when a WAL write failed, on a full
	// disk say. The WAL's page buffer may then hold part of the refused
	// record, which a later write would put before acknowledged ones and
	// replay would take for corruption (repair would drop what follows).
	// No record is written until recoverWAL has moved to a fresh segment and
	// checkpointed the head over the damaged one.
	walBroken atomic.Bool
}

const walDirName = "wal"

// Open opens or creates the store in dir and replays its WAL. It returns once
// the store is ready to ingest and query.
func Open(dir string, opts Options, deps Deps) (*DB, error) {
	opts = opts.withDefaults()
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db := &DB{dir: dir, opts: opts, logger: logger.With("component", "tracestore"), head: newHead(),
		pcache: newPostingsCache(postingsCacheBytes), kick: make(chan struct{}, 1)}
	m, err := newMetrics(deps.Registerer, db)
	if err != nil {
		return nil, fmt.Errorf("open tracestore: %w", err)
	}
	db.m = m
	if err := os.MkdirAll(filepath.Join(dir, walDirName), 0o777); err != nil {
		return nil, fmt.Errorf("open tracestore: %w", err)
	}
	// Cuts use zstd "default", compaction "better", both on 1 MiB pages;
	// "best" cost ~6x the CPU for ~1.5 bytes/span (ADR 0022). Encoders
	// are made per block write (writeBlockWith).
	db.dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<30))
	if err != nil {
		return nil, fmt.Errorf("open tracestore: zstd decoder: %w", err)
	}
	if err := db.open(deps.Registerer); err != nil {
		db.closeResources()
		return nil, fmt.Errorf("open tracestore: %w", err)
	}
	db.lastCut = opts.Now()
	return db, nil
}

func (db *DB) open(reg prometheus.Registerer) error {
	walDir := filepath.Join(db.dir, walDirName)
	cpDir, cpIdx, err := wlog.LastCheckpoint(walDir)
	if errors.Is(err, record.ErrNotFound) {
		cpDir, cpIdx = "", -1
	} else if err != nil {
		return fmt.Errorf("find checkpoint: %w", err)
	}
	if err := db.loadBlocks(cpIdx); err != nil {
		return err
	}
	var walReg prometheus.Registerer
	if reg != nil {
		walReg = prometheus.WrapRegistererWithPrefix("nxwatcher_tracestore_", reg)
	}
	// Uncompressed, so the head can read its pieces back where they were
	// logged (ADR 0111); segments written compressed still replay.
	w, err := wlog.NewSize(db.logger, walReg, walDir, db.opts.WALSegmentSize, compression.None)
	if err != nil {
		return fmt.Errorf("open wal: %w", err)
	}
	db.wal = w
	now := db.opts.Now().UnixNano()
	if cpDir != "" {
		if err := db.replay(cpDir, 0, now, false); err != nil {
			return fmt.Errorf("replay checkpoint %d: %w", cpIdx, err)
		}
	}
	if err := db.replay(walDir, cpIdx+1, now, true); err != nil {
		return err
	}
	if db.hw, err = newHeadWAL(walDir, db.opts.WALSegmentSize, w); err != nil {
		return err
	}
	// Replay left the head's pieces in memory: write them out as a
	// checkpoint once, and the head points into it.
	if db.head.stats().traces > 0 {
		if err := db.checkpointHead(); err != nil {
			return fmt.Errorf("checkpoint replayed head: %w", err)
		}
	}
	return nil
}

// checkpointHead writes the whole head as a checkpoint that replaces every
// WAL segment so far, points the head at it and deletes those segments.
// Callers hold appendMu (or are Open).
func (db *DB) checkpointHead() error {
	next, err := db.wal.NextSegment()
	if err != nil {
		return fmt.Errorf("cut wal segment: %w", err)
	}
	db.hw.newSegment(next)
	cp := next - 1
	all := db.head.all()
	refs, err := db.writeCheckpoint(cp, all)
	if err != nil {
		return fmt.Errorf("write checkpoint %d: %w", cp, err)
	}
	db.head.relocate(all, refs)
	db.hw.truncated(next)
	db.truncateWAL(next, cp)
	return nil
}

// truncateWAL deletes segments before next and checkpoints before cp, once
// nothing in the head points into them.
func (db *DB) truncateWAL(next, cp int) {
	if err := db.wal.Truncate(next); err != nil {
		db.logger.Warn("truncate wal", "err", err)
	}
	if err := wlog.DeleteCheckpoints(filepath.Join(db.dir, walDirName), cp); err != nil {
		db.logger.Warn("delete old checkpoints", "err", err)
	}
}

// replay reads segments from first on into the head. Only the live WAL may
// be repaired; a corrupt checkpoint is an error.
func (db *DB) replay(dir string, first int, now int64, repair bool) error {
	sr, err := wlog.NewSegmentsRangeReader(wlog.SegmentRange{Dir: dir, First: first, Last: -1})
	if err != nil {
		return fmt.Errorf("open segments: %w", err)
	}
	defer sr.Close()
	r := wlog.NewReader(sr)
	var tdu ptrace.ProtoUnmarshaler
	for r.Next() {
		// The head holds replayed pieces in memory until Open checkpoints it.
		rec := &headFile{mem: bytes.Clone(r.Record())}
		pieces, err := decodeRecord(rec.mem)
		if err != nil {
			return fmt.Errorf("decode record in segment %d: %w", r.Segment(), err)
		}
		for i, p := range pieces {
			if td, err := tdu.UnmarshalTraces(p.data); err == nil {
				db.head.collectTags(td)
				// The head drops a retry of these spans after a restart too.
				pieces[i].spanIDs = spanIDsOf(td)
			}
			pieces[i].ref = pieceRef{file: rec, off: int64(p.off), n: uint32(len(p.data))}
		}
		db.head.addPieces(pieces, now)
		db.m.walReplayed.Inc()
	}
	if err := r.Err(); err != nil {
		if !repair {
			return err
		}
		db.m.walCorruptions.Inc()
		db.logger.Warn("repairing torn wal tail", "err", err)
		if err := db.wal.Repair(err); err != nil {
			return fmt.Errorf("repair wal: %w", err)
		}
	}
	return nil
}

// loadBlocks opens every block, dropping leftovers of interrupted work:
// temporary directories, blocks whose WAL checkpoint was never committed, and
// compaction sources that a committed compacted block replaces.
func (db *DB) loadBlocks(cpIdx int) error {
	entries, err := os.ReadDir(db.dir)
	if err != nil {
		return fmt.Errorf("read dir: %w", err)
	}
	var metas []*block
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || name == walDirName {
			continue
		}
		path := filepath.Join(db.dir, name)
		if strings.HasSuffix(name, ".tmp") {
			if err := os.RemoveAll(path); err != nil {
				return fmt.Errorf("remove %s: %w", name, err)
			}
			continue
		}
		b, err := openBlock(path, db.dec, db.pcache)
		if err != nil {
			return fmt.Errorf("open block %s: %w", name, err)
		}
		if b.meta.Level == 0 && b.meta.WALCheckpoint > cpIdx {
			db.logger.Info("discarding block of an interrupted cut; its spans replay from the wal", "block", name)
			_ = b.close()
			if err := os.RemoveAll(path); err != nil {
				return fmt.Errorf("remove %s: %w", name, err)
			}
			continue
		}
		metas = append(metas, b)
	}
	replaced := map[string]bool{}
	for _, b := range metas {
		for _, s := range b.meta.Sources {
			replaced[s] = true
		}
	}
	for _, b := range metas {
		if replaced[b.meta.ULID] {
			_ = b.close()
			if err := os.RemoveAll(b.dir); err != nil {
				return fmt.Errorf("remove compacted source %s: %w", b.meta.ULID, err)
			}
			continue
		}
		db.blocks = append(db.blocks, b)
	}
	sortBlocks(db.blocks)
	return nil
}

func sortBlocks(bs []*block) {
	slices.SortFunc(bs, func(a, b *block) int {
		if a.meta.MinTime != b.meta.MinTime {
			if a.meta.MinTime < b.meta.MinTime {
				return -1
			}
			return 1
		}
		return strings.Compare(a.meta.ULID, b.meta.ULID)
	})
}

// Ready reports whether the store accepts writes and queries: true from a
// successful Open until Close.
func (db *DB) Ready() bool { return !db.closed.Load() }

// keepOnly removes from td every span that is not in kept (the spans this
// request stored), so consumers after the store (the fan-out's followers,
// such as the metrics-generator) see a retried span once, like the store.
func keepOnly(td ptrace.Traces, kept []tracePiece) {
	want := keptSpanSets(kept)
	taken := map[TraceID]*spanSet{}
	removeSpans(td, func(sp ptrace.Span) bool {
		w := want[sp.TraceID()]
		if w == nil || !w.has(sp.SpanID()) {
			return true
		}
		t := taken[sp.TraceID()]
		if t == nil {
			t = &spanSet{}
			taken[sp.TraceID()] = t
		}
		if t.has(sp.SpanID()) {
			return true // the second copy within this request
		}
		t.add(sp.SpanID())
		return false
	})
}

// keptSpanSets maps each kept piece's trace to its span IDs.
func keptSpanSets(kept []tracePiece) map[TraceID]*spanSet {
	want := make(map[TraceID]*spanSet, len(kept))
	for i := range kept {
		s := &spanSet{}
		for _, id := range kept[i].spanIDs {
			s.add(id)
		}
		want[kept[i].id] = s
	}
	return want
}

// keepOnlyRaw is keepOnly for a raw request: it marks the spans that are
// not in kept as dropped.
func keepOnlyRaw(req *otlp.RawTracesRequest, kept []tracePiece) {
	want := keptSpanSets(kept)
	taken := map[TraceID]*spanSet{}
	for i, sp := range req.Spans() {
		if sp.Dropped {
			continue
		}
		w := want[sp.TraceID]
		if w == nil || !w.has(sp.SpanID) {
			req.Drop(i)
			continue
		}
		t := taken[sp.TraceID]
		if t == nil {
			t = &spanSet{}
			taken[sp.TraceID] = t
		}
		if t.has(sp.SpanID) {
			req.Drop(i) // the second copy within this request
			continue
		}
		t.add(sp.SpanID)
	}
}

// ConsumeTraces validates td, writes it to the WAL and adds it to the head.
// It returns nil only once the spans are in the WAL (written to the OS; see
// the format doc for the durability contract). An *InvalidIDError (matching
// ErrInvalidID) means nothing of td was stored.
//
// Spans the head already holds (same trace ID and span ID: a sender's retry)
// are dropped and counted, and the request still succeeds: they are stored.
// When anything was dropped or refused, td is left holding only the spans
// this call stored, for the consumers that see td after the store.
// A trace that would grow beyond MaxTraceBytes is refused while the other
// traces of td are stored; the error then matches ErrTraceTooLarge and
// carries an *otlp.PartialSuccessError with the exact number of refused
// spans (errors.As), unless nothing of td was stored.
func (db *DB) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	raw, _ := otlp.RawTraces(ctx, td)
	return db.consume(ctx, td, raw)
}

// consume is ConsumeTraces with the protobuf request td was decoded from
// (nil: none); tests and fuzz targets give bytes of their own.
func (db *DB) consume(ctx context.Context, td ptrace.Traces, raw []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n, err := validate(td)
	if err != nil {
		db.m.spansRejected.WithLabelValues("invalid_id").Add(float64(td.SpanCount()))
		return err
	}
	if n == 0 {
		return nil
	}
	pieces, dups, sc, reencoded, err := splitWith(td, raw, n)
	if reencoded {
		db.m.reencodedRequests.Inc()
	}
	if err != nil {
		db.m.spansRejected.WithLabelValues("encode").Add(float64(n))
		return fmt.Errorf("encode spans: %w", err)
	}
	defer sc.release() // the pieces' data is not kept past this call (the head keeps where the WAL has it)
	return db.ingest(pieces, dups, n, pdataIngest{td})
}

// TakesRawTraces implements otlp.RawTracesConsumer.
func (db *DB) TakesRawTraces() bool { return true }

// ConsumeRawTraces is ConsumeTraces for a request the OTLP receiver walked
// without pdata (ADR 0118): the store splits the request's own bytes (the
// walk accepts only encodings cutReads accepts), collects head tags from
// them and marks the spans it did not store in req, so the answer, the
// stored bytes, the head and the metrics are those ConsumeTraces gives for
// the request's pdata. A request the split refuses takes ConsumeTraces on
// pdata.
func (db *DB) ConsumeRawTraces(ctx context.Context, req *otlp.RawTracesRequest) error {
	if td, ok := req.Decoded(); ok {
		var raw []byte
		if req.Unchanged() {
			raw = req.Body()
		}
		return db.consume(ctx, td, raw)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	n := req.SpanCount()
	if n == 0 {
		return nil
	}
	// The walk accepts fewer encodings than cutReads (only fields pdata
	// knows, with their wire types; FuzzRawPath checks), so its bytes are
	// what the cut reads.
	body := req.Body()
	{
		sc := splitPool.Get().(*splitScratch)
		if pieces, dups, err := sc.split(body, n); err == nil {
			defer sc.release()
			return db.ingest(pieces, dups, n, &rawIngest{req: req})
		}
		sc.release()
	}
	td, err := req.Traces()
	if err != nil {
		return fmt.Errorf("decode spans: %w", err)
	}
	return db.consume(ctx, td, body)
}

// ingestView is the request as the consumers after the store see it: pdata
// or the raw request.
type ingestView interface {
	// keepOnly leaves only the spans of kept for later consumers.
	keepOnly(kept []tracePiece)
	// collectTags adds the request's tags to the head.
	collectTags(h *head)
}

type pdataIngest struct{ td ptrace.Traces }

func (p pdataIngest) keepOnly(kept []tracePiece) { keepOnly(p.td, kept) }
func (p pdataIngest) collectTags(h *head)        { h.collectTags(p.td) }

// rawIngest remembers whether keepOnly ran: pdata's keepOnly removes every
// resource left without a span, so its tags are not collected either.
type rawIngest struct {
	req    *otlp.RawTracesRequest
	pruned bool
}

func (r *rawIngest) keepOnly(kept []tracePiece) { keepOnlyRaw(r.req, kept); r.pruned = true }
func (r *rawIngest) collectTags(h *head)        { h.collectRawTags(r.req, r.pruned) }

// ingest stores the pieces of a request of n spans (dups of them already
// left out by the split) and answers for it.
func (db *DB) ingest(pieces []tracePiece, dups, n int, view ingestView) error {

	if db.walBroken.Load() {
		if err := db.recoverWAL(); err != nil {
			db.m.spansRejected.WithLabelValues("wal_write").Add(float64(n))
			return fmt.Errorf("write wal: recover from an earlier failed write: %w", err)
		}
	}
	db.appendMu.Lock()
	if db.closed.Load() {
		db.appendMu.Unlock()
		return ErrClosed
	}
	if db.walBroken.Load() { // another write failed since
		db.appendMu.Unlock()
		db.m.spansRejected.WithLabelValues("wal_write").Add(float64(n))
		return errWALBroken
	}
	var tooLarge, tooLargeTraces int
	var firstTooLarge error
	kept := pieces[:0]
	for _, p := range pieces {
		if dup := db.head.duplicates(&p); dup != nil {
			dups += dup.len()
			np, ok, err := withoutSpans(p, dup)
			if err != nil {
				db.appendMu.Unlock()
				db.m.spansRejected.WithLabelValues("encode").Add(float64(n))
				return fmt.Errorf("encode spans: %w", err)
			}
			if !ok {
				continue
			}
			p = np
		}
		if limit := db.opts.MaxTraceBytes; limit > 0 {
			cur := 0
			if t := db.head.get(p.id); t != nil {
				cur = t.size
			}
			if int64(cur+len(p.data)) > limit {
				tooLarge += p.spans
				tooLargeTraces++
				if firstTooLarge == nil {
					firstTooLarge = fmt.Errorf("%w: trace %x would hold %d bytes, limit %d", ErrTraceTooLarge, p.id, cur+len(p.data), limit)
				}
				continue
			}
		}
		kept = append(kept, p)
	}
	stored, size := 0, 0
	for _, p := range kept {
		stored += p.spans
		size += len(p.data)
	}
	if len(kept) > 0 {
		db.recBuf = encodeRecord(db.recBuf, kept)
		if err := db.wal.Log(db.recBuf); err != nil {
			db.walBroken.Store(true)
			db.appendMu.Unlock()
			db.m.walWriteFailures.Inc()
			db.m.spansRejected.WithLabelValues("wal_write").Add(float64(n))
			db.logger.Warn("wal write failed; refusing writes until a fresh segment and a checkpoint are written", "err", err)
			return fmt.Errorf("write wal: %w", err)
		}
		db.hw.locate(db.wal, db.recBuf, kept)
		db.head.addPieces(kept, db.opts.Now().UnixNano())
	}
	db.appendMu.Unlock()
	if len(kept) > 0 && db.head.bytesNow() >= db.opts.MaxHeadBytes {
		db.askCut() // cut a full head now, not at the next tick
	}

	if dups > 0 {
		db.m.duplicateSpans.WithLabelValues("ingest").Add(float64(dups))
	}
	if tooLarge > 0 {
		db.m.spansRejected.WithLabelValues("trace_too_large").Add(float64(tooLarge))
	}
	if dups > 0 || tooLarge > 0 {
		view.keepOnly(kept)
	}
	if len(kept) > 0 {
		view.collectTags(db.head)
		db.m.spansIngested.Add(float64(stored))
		db.m.bytesIngested.Add(float64(size))
	}
	if tooLarge == 0 {
		return nil
	}
	if stored == 0 && dups == 0 {
		return firstTooLarge // nothing of td is stored: the sender's fault, all of it
	}
	return fmt.Errorf("%w: %w", firstTooLarge, &otlp.PartialSuccessError{
		Rejected: int64(tooLarge),
		Reason:   fmt.Sprintf("%d spans of %d traces refused: trace larger than max_trace_bytes (%d bytes)", tooLarge, tooLargeTraces, db.opts.MaxTraceBytes),
	})
}

// errWALBroken refuses a write that raced with a failed one; the sender retries.
var errWALBroken = errors.New("write wal: recovering from a failed write, retry")

// recoverWAL makes the WAL writable again after a failed write: it starts a
// new segment (flushing whatever the failed write left in the page buffer
// into the old one) and writes a checkpoint of the whole head over every
// older segment, then deletes them, so the damaged record is never replayed.
// The head holds exactly the acknowledged spans not yet in blocks (a refused
// record never reached it), so nothing acknowledged is lost and nothing
// refused comes back. Appends wait meanwhile.
func (db *DB) recoverWAL() error {
	db.cutMu.Lock()
	defer db.cutMu.Unlock()
	db.appendMu.Lock()
	defer db.appendMu.Unlock()
	if db.closed.Load() {
		return ErrClosed
	}
	if !db.walBroken.Load() {
		return nil
	}
	if err := db.checkpointHead(); err != nil {
		return err
	}
	db.walBroken.Store(false)
	db.m.walRecoveries.Inc()
	db.logger.Info("wal writable again after a failed write")
	return nil
}

// Run cuts blocks, compacts and applies retention until ctx ends. Besides
// its CheckInterval tick it cuts at once when a full head asks for it
// (Behind, ConsumeTraces).
func (db *DB) Run(ctx context.Context) error {
	t := time.NewTicker(db.opts.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			db.Maintain(ctx)
		case <-db.kick:
			if err := db.cut(false); err != nil && !errors.Is(err, ErrClosed) {
				db.m.cutFailures.Inc()
				db.logger.Error("cut block", "err", err)
			}
		}
	}
}

// Behind reports whether the store is behind its ingest: the head plus the
// traces being cut into a block hold at least MaxHeadBytes. A receiver
// refuses writes retryably while it is true (otlp.Deps.TracesFull), so
// memory stays bounded by about twice MaxHeadBytes under any load. When
// the head alone has reached MaxHeadBytes, Behind also asks Run for a cut
// at once. It never blocks.
func (db *DB) Behind() bool {
	hb := db.head.bytesNow()
	if hb >= db.opts.MaxHeadBytes {
		db.askCut()
	}
	return hb+db.flushingBytes.Load() >= db.opts.MaxHeadBytes
}

// askCut asks Run for a cut without blocking; one request is kept pending.
func (db *DB) askCut() {
	select {
	case db.kick <- struct{}{}:
	default:
	}
}

// Maintain does one round of background work: cut, compact, retention.
// Errors are logged and counted; the next round retries.
func (db *DB) Maintain(ctx context.Context) {
	if err := db.cut(false); err != nil {
		db.m.cutFailures.Inc()
		db.logger.Error("cut block", "err", err)
	}
	if err := db.compactWith(ctx, false); err != nil {
		db.m.compactFailures.Inc()
		db.logger.Error("compact blocks", "err", err)
	}
	if err := db.applyRetention(); err != nil {
		db.logger.Error("apply retention", "err", err)
	}
}

// Flush cuts every head trace into a block, idle or not. Tests and shutdown
// hooks use it; Run cuts only idle traces.
func (db *DB) Flush() error { return db.cut(true) }

func (db *DB) cut(force bool) error {
	db.cutMu.Lock()
	defer db.cutMu.Unlock()
	if db.closed.Load() {
		return ErrClosed
	}
	now := db.opts.Now()
	idleBefore := now.Add(-db.opts.TraceIdle).UnixNano()
	liveBefore := now.Add(-db.opts.MaxTraceLive).UnixNano()

	db.appendMu.Lock()
	all := db.head.all()
	st := db.head.stats()
	full := st.bytes >= db.opts.MaxHeadBytes
	var sel, rest []*headTrace
	var selBytes int64
	for _, t := range all {
		if force || full || t.lastSeen <= idleBefore || t.firstSeen <= liveBefore {
			sel = append(sel, t)
			selBytes += int64(t.size)
		} else {
			rest = append(rest, t)
		}
	}
	due := force || full || selBytes >= db.opts.MaxBlockBytes || now.Sub(db.lastCut) >= db.opts.MaxBlockDuration
	if len(sel) == 0 || !due {
		db.appendMu.Unlock()
		return nil
	}
	db.mu.Lock()
	db.head.remove(sel)
	db.flushing = make(map[TraceID]*headTrace, len(sel))
	for _, t := range sel {
		db.flushing[t.id] = t
	}
	db.flushingBytes.Store(selBytes)
	db.mu.Unlock()
	next, err := db.wal.NextSegment()
	if err == nil {
		db.hw.newSegment(next)
	}
	db.appendMu.Unlock()
	if err != nil {
		db.abandonCut(sel)
		return fmt.Errorf("cut wal segment: %w", err)
	}
	cp := next - 1

	sortByID(sel)
	// Pieces are read a batch of IDs at a time in file order (ADR 0120);
	// the batch buffer is released once the block is written.
	var cr cutReader
	b, err := db.writeBlockWith(func(yield func(traceRecord) error) error {
		return cr.each(sel, func(t *headTrace, data []byte) error {
			return yield(traceRecord{id: t.id, data: data, spans: t.spans, minStart: t.minStart, maxEnd: t.maxEnd})
		})
	}, 0, nil, cp, nil, nil, len(sel))
	cr.release()
	if err != nil {
		db.abandonCut(sel)
		return fmt.Errorf("write block: %w", err)
	}
	// The checkpoint commits the block: until it exists, Open discards the
	// block and replays its spans from the WAL instead.
	refs, err := db.writeCheckpoint(cp, rest)
	if err != nil {
		_ = b.close()
		_ = os.RemoveAll(b.dir)
		db.abandonCut(sel)
		return fmt.Errorf("write checkpoint %d: %w", cp, err)
	}
	db.mu.Lock()
	db.blocks = append(db.blocks, b)
	sortBlocks(db.blocks)
	db.flushing = nil
	db.flushingBytes.Store(0)
	db.mu.Unlock()
	db.lastCut = now
	db.m.blocksCut.Inc()

	// The traces left in the head now read their older pieces from the
	// checkpoint; the segments they came from can go.
	db.head.relocate(rest, refs)
	db.appendMu.Lock()
	db.hw.truncated(next)
	db.appendMu.Unlock()
	db.truncateWAL(next, cp)
	db.logger.Debug("cut block", "block", b.meta.ULID, "traces", b.meta.Traces, "spans", b.meta.Spans)
	return nil
}

func (db *DB) abandonCut(sel []*headTrace) {
	db.mu.Lock()
	db.head.restore(sel)
	db.flushing = nil
	db.flushingBytes.Store(0)
	db.mu.Unlock()
}

func compareIDs(a, b TraceID) int { return strings.Compare(string(a[:]), string(b[:])) }

// sortByID sorts head traces by ID (compareIDs's order) on a contiguous
// copy of their IDs as two big-endian words: sorting the pointers chased
// each trace's header at every comparison (0.2 µs/span of a cut).
func sortByID(ts []*headTrace) {
	type key struct {
		hi, lo uint64
		t      *headTrace
	}
	keys := make([]key, len(ts))
	for i, t := range ts {
		keys[i] = key{binary.BigEndian.Uint64(t.id[:8]), binary.BigEndian.Uint64(t.id[8:]), t}
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := cmp.Compare(a.hi, b.hi); c != 0 {
			return c
		}
		return cmp.Compare(a.lo, b.lo)
	})
	for i := range keys {
		ts[i] = keys[i].t
	}
}

// writeBlock writes the records that iter yields (ascending IDs) as a block and opens it.
func (db *DB) writeBlock(iter func(yield func(traceRecord) error) error, level int, sources []string, cp int) (*block, error) {
	return db.writeBlockWith(iter, level, sources, cp, nil, nil, 0)
}

// cutEncoderLevel is the zstd level of level-0 blocks (ADR 0112): the cut
// is on ingest's critical path and compaction recompresses its blocks at
// compactLevel anyway. A variable for BenchmarkCutLevel.
var cutEncoderLevel = zstd.SpeedFastest

// writeBlockWith is writeBlock; a non-nil postings callback supplies the
// postings (compaction merges its sources') and traces are not decoded;
// a non-nil prepare runs before the first record (compaction copies its
// sources' pages there). traces, when known, sizes the writer's per-trace
// tables once (growing them cost ~2 s of a 10M-span compaction's 28).
func (db *DB) writeBlockWith(iter func(yield func(traceRecord) error) error, level int, sources []string, cp int,
	postings, prepare func(*blockWriter) error, traces int) (*block, error) {
	// A fresh encoder per block: its history and match tables (~8 MiB at
	// "better") are garbage once the block is written, instead of live for
	// the process (most of a quiet store's heap, bench/README.md ## traces).
	lvl := cutEncoderLevel
	if level > 0 {
		lvl = compactLevel
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(lvl), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(encWindow))
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	defer enc.Close()
	bw, err := newBlockWriter(db.dir, enc, db.opts.PageSize, level, sources, cp)
	if err != nil {
		return nil, err
	}
	if level == 0 && !bw.s2Pages {
		// Level-0 pages are kept by compaction (ADR 0125): compressed once,
		// at compactLevel; the columns, rewritten by compaction, stay at lvl.
		penc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(compactLevel), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(encWindow))
		if err != nil {
			return nil, bw.abort(fmt.Errorf("zstd encoder: %w", err))
		}
		defer penc.Close()
		bw.penc = penc
	}
	bw.merged = postings != nil
	bw.ids = make([]TraceID, 0, traces)
	bw.entries = make([]indexEntry, 0, traces)
	if prepare != nil {
		if err := prepare(bw); err != nil {
			return nil, bw.abort(err)
		}
	}
	if err := iter(bw.add); err != nil {
		return nil, bw.abort(err)
	}
	if postings != nil {
		if err := postings(bw); err != nil {
			return nil, bw.abort(err)
		}
	}
	dir, err := bw.finish()
	if err != nil {
		return nil, err
	}
	return openBlock(dir, db.dec, db.pcache)
}

// writeCheckpoint writes the head traces that stay in the head as
// checkpoint idx, replacing WAL segments 0..idx, one record per trace, and
// returns where each trace's bytes now lie (for head.relocate).
// checkpointRecordBytes bounds the trace bytes writeCheckpoint puts in one
// record (a larger trace gets a record of its own).
const checkpointRecordBytes = 256 << 10

// checkpointOrder orders rest by where each trace's first piece lies.
func checkpointOrder(rest []*headTrace) []int {
	order := make([]int, len(rest))
	for i := range order {
		order[i] = i
	}
	files := map[*headFile]int{} // any order of files groups each one's pieces
	first := func(t *headTrace) (int, int64) {
		if len(t.pieces) == 0 {
			return -1, 0
		}
		f, ok := files[t.pieces[0].file]
		if !ok {
			f = len(files)
			files[t.pieces[0].file] = f
		}
		return f, t.pieces[0].off
	}
	slices.SortFunc(order, func(a, b int) int {
		fa, oa := first(rest[a])
		fb, ob := first(rest[b])
		if c := cmp.Compare(fa, fb); c != 0 {
			return c
		}
		return cmp.Compare(oa, ob)
	})
	return order
}

func (db *DB) writeCheckpoint(idx int, rest []*headTrace) ([]pieceRef, error) {
	walDir := filepath.Join(db.dir, walDirName)
	final := wlog.CheckpointDir(walDir, idx)
	tmp := final + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return nil, err
	}
	cw, err := wlog.New(nil, nil, tmp, compression.None)
	if err != nil {
		return nil, err
	}
	type loc struct {
		seg int
		off int64
	}
	locs := make([]loc, len(rest))
	pos := newWALPos(0, 0, wlog.DefaultSegmentSize)
	// Traces in the order of their first piece in the WAL, read through
	// one window, logged many to a record: at a cut under load, most
	// pieces written since the last cut stay, and a pread and a write per
	// trace cost more than copying them (ADR 0116). The checkpoint's
	// records are what ingest writes (decodeRecord reads either).
	order := checkpointOrder(rest)
	var win pieceWindow
	var buf, data, last []byte
	lastIdx := -1
	var pc []tracePiece
	var pcIdx []int
	flush := func() error {
		if len(pc) == 0 {
			return nil
		}
		buf = encodeRecord(buf, pc)
		if err := cw.Log(buf); err != nil {
			return err
		}
		seg, start := pos.place(len(buf))
		for j, p := range pc {
			locs[pcIdx[j]] = loc{seg, walDataOffset(start, p.off)}
		}
		last, lastIdx = append(last[:0], pc[len(pc)-1].data...), pcIdx[len(pc)-1]
		pc, pcIdx, data = pc[:0], pcIdx[:0], data[:0] // wlog copied the record

		return nil
	}
	for _, i := range order {
		t := rest[i]
		if len(pc) > 0 && len(data)+t.size > checkpointRecordBytes {
			if err := flush(); err != nil {
				_ = cw.Close()
				return nil, err
			}
		}
		from := len(data)
		var err error
		for _, p := range t.pieces {
			if data, err = p.appendVia(data, &win); err != nil {
				_ = cw.Close()
				return nil, fmt.Errorf("trace %x: %w", t.id[:], err)
			}
		}
		pc = append(pc, tracePiece{id: t.id, data: data[from:len(data):len(data)], spans: t.spans, minStart: t.minStart, maxEnd: t.maxEnd})
		pcIdx = append(pcIdx, i)
	}
	if err := flush(); err != nil {
		_ = cw.Close()
		return nil, err
	}
	if err := cw.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return nil, err
	}
	if err := syncDir(walDir); err != nil {
		return nil, err
	}
	files := map[int]*headFile{}
	refs := make([]pieceRef, len(rest))
	for i, l := range locs {
		hf := files[l.seg]
		if hf == nil {
			f, err := os.Open(wlog.SegmentName(final, l.seg))
			if err != nil {
				return nil, err
			}
			hf = &headFile{f: f}
			files[l.seg] = hf
			db.hw.track(hf)
		}
		refs[i] = pieceRef{file: hf, off: l.off, n: uint32(rest[i].size)}
	}
	// The last record checks the layout: read it back.
	if lastIdx >= 0 {
		got, err := refs[lastIdx].appendTo(nil)
		if err != nil || !bytes.Equal(got, last) {
			return nil, fmt.Errorf("checkpoint %d: a record is not where the wal layout puts it (%v)", idx, err)
		}
	}
	return refs, nil
}

// Close stops ingestion and closes the WAL and blocks. Traces still in the
// head are replayed from the WAL on the next Open.
func (db *DB) Close() error {
	db.cutMu.Lock()
	defer db.cutMu.Unlock()
	db.appendMu.Lock()
	defer db.appendMu.Unlock()
	if db.closed.Swap(true) {
		return nil
	}
	return db.closeResources()
}

func (db *DB) closeResources() error {
	var errs []error
	if db.wal != nil {
		if err := db.wal.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close wal: %w", err))
		}
	}
	if db.hw != nil {
		db.hw.closeAll()
	}
	db.mu.Lock()
	for _, b := range db.blocks {
		if err := b.retire(); err != nil {
			errs = append(errs, fmt.Errorf("close block %s: %w", b.meta.ULID, err))
		}
	}
	db.blocks = nil
	db.mu.Unlock()
	if db.dec != nil {
		db.dec.Close()
	}
	return errors.Join(errs...)
}

func (db *DB) headStats() headStats { return db.head.stats() }

func (db *DB) blockStats() (n int, bytes int64) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	for _, b := range db.blocks {
		bytes += b.size
	}
	return len(db.blocks), bytes
}

// unreferencedBytes sums the blocks' unreferenced bytes (format 13).
func (db *DB) unreferencedBytes() (n int64) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	for _, b := range db.blocks {
		n += b.meta.UnreferencedBytes
	}
	return n
}

// Stats is what the store holds now: the head (traces not yet cut into a
// block) and the blocks on disk. The UI's Status page shows it.
type Stats struct {
	HeadTraces int   `json:"headTraces"`
	HeadSpans  int64 `json:"headSpans"`
	HeadBytes  int64 `json:"headBytes"`
	Blocks     int   `json:"blocks"`
	BlockBytes int64 `json:"blockBytes"`
}

// Stats reads the head's and the blocks' sizes.
func (db *DB) Stats() Stats {
	h := db.headStats()
	n, bytes := db.blockStats()
	return Stats{HeadTraces: h.traces, HeadSpans: h.spans, HeadBytes: h.bytes, Blocks: n, BlockBytes: bytes}
}
