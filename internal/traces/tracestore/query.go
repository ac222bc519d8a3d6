package tracestore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// snapshot is a consistent view for one query: blocks (referenced), traces
// being cut, and access to the head. Release it when done.
type snapshot struct {
	db     *DB
	blocks []*block
	// parts, when set, are the blocks a search looks in for a trace's
	// other parts: those overlapping its time range; nil means blocks.
	parts    []*block
	flushing map[TraceID]*headTrace
}

// searchPartsInRange makes a search with a time range look for a trace's
// other parts only in the blocks it searches (ADR 0124 addendum); false
// only in tests and benchmarks comparing both.
var searchPartsInRange = true

// partBlocks are the blocks that may hold parts of a trace the snapshot's
// reader looks at.
func (s *snapshot) partBlocks() []*block {
	if s.parts != nil {
		return s.parts
	}
	return s.blocks
}

func (db *DB) snapshot() *snapshot {
	db.mu.RLock()
	defer db.mu.RUnlock()
	s := &snapshot{db: db, blocks: slices.Clone(db.blocks), flushing: db.flushing}
	for _, b := range s.blocks {
		b.refs.Add(1)
	}
	return s
}

func (s *snapshot) release() {
	for _, b := range s.blocks {
		b.release()
	}
}

// traceData concatenates a trace's pieces from blocks (oldest first), the
// traces being cut and the head. Concatenated TracesData is valid TracesData.
// When the trace comes from more than one place, a span stored in two of
// them (a retry that arrived after its first copy was cut) is kept once.
func (s *snapshot) traceData(ctx context.Context, id TraceID, head *headTrace) ([]byte, error) {
	out, sources, err := s.rawTraceData(ctx, id, head)
	if err != nil || sources < 2 {
		return out, err
	}
	out, _, err = dedupTraceData(out)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return out, nil
}

// rawTraceData is traceData without dropping repeated spans; sources is the
// number of places the pieces came from.
func (s *snapshot) rawTraceData(ctx context.Context, id TraceID, head *headTrace) (out []byte, sources int, err error) {
	for _, b := range s.partBlocks() {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		e, ok, err := b.find(id)
		if err != nil {
			return nil, 0, fmt.Errorf("block %s: %w", b.meta.ULID, err)
		}
		if !ok {
			continue
		}
		sources++
		pr := b.pooledPageReader()
		d, err := pr.trace(id, e)
		if err != nil {
			pr.free()
			return nil, 0, fmt.Errorf("block %s: %w", b.meta.ULID, err)
		}
		out = append(out, d...)
		pr.free()
	}
	if t := s.flushing[id]; t != nil {
		sources++
		if out, err = t.appendData(out); err != nil {
			return nil, 0, err
		}
	}
	if head != nil && len(head.pieces) > 0 {
		sources++
		if out, err = head.appendData(out); err != nil {
			return nil, 0, err
		}
	}
	return out, sources, nil
}

// TraceByID returns every stored span of the trace, merged across the head
// and all blocks. found is false when no span of it is stored.
func (db *DB) TraceByID(ctx context.Context, id TraceID) (td ptrace.Traces, found bool, err error) {
	start := time.Now()
	defer func() {
		db.m.lookups.Inc()
		db.m.lookupSeconds.Observe(time.Since(start).Seconds())
	}()
	s, h := db.snapshotWithHead(id)
	defer s.release()
	data, err := s.traceData(ctx, id, h)
	if err != nil {
		return ptrace.Traces{}, false, fmt.Errorf("trace %x: %w", id[:], err)
	}
	if len(data) == 0 {
		return ptrace.NewTraces(), false, nil
	}
	var u ptrace.ProtoUnmarshaler
	td, err = u.UnmarshalTraces(data)
	if err != nil {
		return ptrace.Traces{}, false, fmt.Errorf("trace %x: decode: %w", id[:], err)
	}
	return td, true, nil
}

// TraceBytesByID is TraceByID without decoding: the trace as one protobuf
// TracesData (which is also the wire form of Tempo's tempopb.Trace).
func (db *DB) TraceBytesByID(ctx context.Context, id TraceID) ([]byte, bool, error) {
	s, h := db.snapshotWithHead(id)
	defer s.release()
	data, err := s.traceData(ctx, id, h)
	if err != nil {
		return nil, false, fmt.Errorf("trace %x: %w", id[:], err)
	}
	return data, len(data) > 0, nil
}

// snapshotWithHead takes the snapshot and the head's copy of id under one
// lock, so a concurrent cut can never hide the trace.
func (db *DB) snapshotWithHead(id TraceID) (*snapshot, *headTrace) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	s := &snapshot{db: db, blocks: slices.Clone(db.blocks), flushing: db.flushing}
	for _, b := range s.blocks {
		b.refs.Add(1)
	}
	return s, db.head.get(id)
}

// Cond is a pruning condition: some span of the trace carries one of Keys
// with one of Values (posting form, see EncodeValue). Blocks use postings to
// skip traces that cannot match; the query engine still checks every trace.
type Cond struct {
	Keys   []string
	Values []string
}

// SearchRequest selects candidate traces.
type SearchRequest struct {
	// Start and End bound the traces (by span time) that may be returned; zero means open.
	Start, End time.Time
	// Conds must all hold; used only to skip traces.
	Conds []Cond
	// Limits bound the work; zero fields mean no bound.
	Limits SearchLimits
	// Project, when set, drops from each trace what the callback does not
	// read before decoding it (see Projection); the trace handed to fn
	// then holds only that, and must not be kept after fn returns.
	Project *Projection
	// Spans, when set, receives instead of fn the block traces whose spans
	// the block's columns hold (format version 3, see ColumnSpan): they are
	// not decoded. Only a caller that reads nothing but the columns' fields
	// may set it (TraceQL metrics for which traceql's ColumnsSuffice holds).
	// Traces of the head, traces with parts in several places, traces the
	// columns cannot represent and blocks without columns still go to fn,
	// in the same order as without Spans. Limits count a trace's stored
	// bytes as they do for fn.
	Spans SpansFunc
	// MinSpanDuration, when positive, promises that a trace matches only
	// if one of its spans lasts at least this long (a TraceQL filter
	// `{ duration > X && … }` or `>=`; traceql's MinSpanDuration). With
	// Spans set, block column groups whose longest span is shorter are
	// not decoded and their traces not handed to Spans, even traces with
	// parts elsewhere: such a trace can only match through a longer span
	// in another part, and is met through that part. Traces the columns
	// cannot hold are still handed over, as without it.
	MinSpanDuration time.Duration
	// ColumnAttrs names the attributes ("span.x", "resource.x"; not
	// resource.service.name, which ColumnSpan.Service holds) that Spans
	// and Match read from attribute columns (format version 8). A block
	// without those columns hands its traces to fn decoded, as do groups
	// where a named key has too many values for a column and traces with
	// a value the columns do not hold.
	ColumnAttrs []string
	// Match, when set, is asked about each block trace the columns hold
	// (with the ColumnAttrs values) before it is decoded or handed to
	// Spans: false drops it undecoded. It must be a predicate on single
	// spans, true when one of the spans it is given could make fn (or
	// Spans) accept the trace (e.g. a TraceQL spanset filter evaluated on
	// the columns). A trace stored in parts (several blocks, the head) is
	// asked about part by part: a part it rejects is dropped without
	// looking for the others, and the trace is met, whole, through a part
	// it accepts. The dropped traces count in the statistics and limits as
	// inspected, as they would without Match.
	Match func(id TraceID, spans []ColumnSpan, attrs []ColumnValue) bool
	// SpansRoot says that Spans reads ColumnSpan.Root and span IDs (a
	// search answered from the columns, ADR 0110): only blocks whose
	// columns hold them (format 10) hand traces to Spans; older blocks
	// hand them to Match and fn as without Spans.
	SpansRoot bool
}

// SearchLimits bound one search, so one broad query cannot take the process
// down. A search that reaches MaxTraces or MaxBytes stops early and returns
// what it found with SearchStats.Truncated set (not an error, as Tempo
// answers a search cut short with the results so far and fewer completed
// jobs than total jobs). Traces larger than MaxTraceBytes are skipped
// without being decoded and counted in SkippedTraces.
type SearchLimits struct {
	// MaxTraces caps the traces decoded and handed to fn.
	MaxTraces int
	// MaxBytes caps the protobuf bytes decoded.
	MaxBytes int64
	// MaxTraceBytes skips any one trace larger than this.
	MaxTraceBytes int64
}

// Reasons a search stopped early (SearchStats.Truncated).
const (
	TruncatedMaxTraces = "max_inspected_traces"
	TruncatedMaxBytes  = "max_inspected_bytes"
)

// SearchStats report the work a search did, for Tempo's "metrics" object.
type SearchStats struct {
	InspectedTraces int
	InspectedBytes  int64
	TotalBlocks     int
	// TotalJobs counts the units of work (the head, then each block in the
	// time range) and CompletedJobs those searched to the end; fewer
	// completed than total means a partial answer.
	TotalJobs, CompletedJobs int
	// SkippedTraces were larger than Limits.MaxTraceBytes.
	SkippedTraces int
	// Truncated names the limit that stopped the search early, or is "".
	Truncated string
}

// Search calls fn with each candidate trace (complete: all of its spans from
// every block and the head), newest data first, until fn returns false, an
// error, or ctx ends. Each trace is passed at most once.
func (db *DB) Search(ctx context.Context, req SearchRequest, fn func(id TraceID, td ptrace.Traces) (bool, error)) (SearchStats, error) {
	var st SearchStats
	db.mu.RLock()
	s := &snapshot{db: db, blocks: slices.Clone(db.blocks), flushing: db.flushing}
	for _, b := range s.blocks {
		b.refs.Add(1)
	}
	heads := db.head.all()
	db.mu.RUnlock()
	defer s.release()
	st.TotalBlocks = len(s.blocks)

	var lo, hi uint64 = 0, ^uint64(0)
	if !req.Start.IsZero() {
		lo = uint64(max(0, req.Start.UnixNano()))
	}
	if !req.End.IsZero() {
		hi = uint64(max(0, req.End.UnixNano()))
	}
	// seen holds the traces already handed to fn that may be met again:
	// those of the head and of traces being cut, and block traces with
	// parts elsewhere. A trace only in one block is met once, so it is not
	// recorded (at 10M spans that map was ~1.8M entries).
	seen := map[TraceID]struct{}{}
	var u ptrace.ProtoUnmarshaler
	var pj *projector
	if req.Project != nil {
		pj = &projector{p: req.Project}
	}
	lim := req.Limits
	// admit applies the limits to a trace of raw bytes before it is handed
	// to fn: skip means it is too large, more=false stops the search.
	admit := func(raw int64) (skip, more bool) {
		if lim.MaxTraceBytes > 0 && raw > lim.MaxTraceBytes {
			st.SkippedTraces++
			db.m.searchSkipped.Inc()
			return true, true
		}
		if lim.MaxTraces > 0 && st.InspectedTraces >= lim.MaxTraces {
			st.Truncated = TruncatedMaxTraces
			return false, false
		}
		if lim.MaxBytes > 0 && st.InspectedBytes+raw > lim.MaxBytes {
			st.Truncated = TruncatedMaxBytes
			return false, false
		}
		st.InspectedTraces++
		st.InspectedBytes += raw
		db.m.searchTraces.Inc()
		return false, true
	}
	// emit decodes one trace of the head and hands it to fn, within the limits.
	emit := func(id TraceID, data []byte) (bool, error) {
		seen[id] = struct{}{}
		skip, more := admit(int64(len(data)))
		if skip || !more {
			return more, nil
		}
		if pj != nil {
			var err error
			if data, err = pj.apply(data); err != nil {
				return false, fmt.Errorf("decode trace %x: %w", id[:], err)
			}
		}
		td, err := u.UnmarshalTraces(data)
		if err != nil {
			return false, fmt.Errorf("decode trace %x: %w", id[:], err)
		}
		return fn(id, td)
	}

	blocks := slices.Clone(s.blocks)
	blocks = slices.DeleteFunc(blocks, func(b *block) bool { return uint64(b.meta.MaxTime) < lo || uint64(b.meta.MinTime) > hi })
	if searchPartsInRange && (!req.Start.IsZero() || !req.End.IsZero()) {
		// A trace's parts in blocks outside the range are not looked for,
		// as Tempo searches only the blocks of the range: looking in every
		// block cost each match one bloom probe per block retained.
		s.parts = append(make([]*block, 0, len(blocks)), blocks...)
	}
	st.TotalJobs = 1 + len(blocks)

	slices.SortFunc(heads, func(a, b *headTrace) int { return cmpUint(b.maxEnd, a.maxEnd) })
	for _, t := range append(heads, flushingList(s.flushing)...) {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if _, dup := seen[t.id]; dup || t.maxEnd < lo || t.minStart > hi {
			continue
		}
		data, _, err := s.complete(ctx, t.id, nil, nil)
		if err != nil {
			return st, err
		}
		if len(data) == 0 {
			if data, err = t.data(); err != nil {
				return st, err
			}
		}
		more, err := emit(t.id, data)
		if err != nil || !more {
			return st, err
		}
	}
	st.CompletedJobs++
	if len(blocks) == 0 {
		return st, nil
	}

	// Blocks: traces decoded on several goroutines, handed to fn here in
	// order (parsearch.go).
	bs := newBlockScanner(ctx, s, &req)
	defer bs.close()
	slices.SortFunc(blocks, func(a, b *block) int { return cmpInt(b.meta.MaxTime, a.meta.MaxTime) })
	for _, b := range blocks {
		cands, all, err := b.candidateIter(req.Conds)
		if err != nil {
			return st, err
		}
		cur := b.cursor()
		// Newest traces sit at random ordinals; walk in ordinal order so pages decode once.
		var ord uint32 // next ordinal to consider
		next := func() (searchCand, bool, error) {
			for {
				if all {
					if int(ord) >= b.n {
						return searchCand{}, false, nil
					}
				} else {
					o, ok := cands.next(ord)
					if !ok || int(o) >= b.n {
						return searchCand{}, false, nil
					}
					ord = o
				}
				id, e, err := cur.at(int(ord))
				if err != nil {
					return searchCand{}, false, fmt.Errorf("block %s: %w", b.meta.ULID, err)
				}
				ord++
				if e.end < lo || e.start > hi {
					continue
				}
				if _, dup := seen[id]; dup {
					continue
				}
				return searchCand{id: id, e: e, ord: int(ord) - 1}, true, nil
			}
		}
		var stopped bool
		emitResult := func(r searchResult) (bool, error) {
			if err := ctx.Err(); err != nil {
				return false, err
			}
			if r.shared {
				seen[r.id] = struct{}{}
			}
			skip, more := admit(r.raw)
			if !more {
				stopped = true
				return false, nil
			}
			if skip {
				return true, nil
			}
			more, err := fn(r.id, r.td)
			stopped = !more
			return more, err
		}
		colsOK := b.cols != nil && (len(req.ColumnAttrs) == 0 || b.meta.Version >= 8)
		switch {
		case req.Spans != nil && colsOK && (!req.SpansRoot || b.meta.Version >= 10):
			err = s.scanColumns(ctx, b, &req, next, emitResult, func(id TraceID, raw int64) (bool, bool) {
				skip, more := admit(raw)
				stopped = !more
				return skip, more
			}, func(id TraceID, spans []ColumnSpan, attrs []ColumnValue, spanID func(int) (pcommon.SpanID, error)) (bool, error) {
				more, err := req.Spans(id, spans, attrs, spanID)
				stopped = !more
				return more, err
			})
		case req.Match != nil && colsOK:
			var cf *colFilter
			if cf, err = newColFilter(b, &req); err != nil {
				return st, err
			}
			next := cf.wrap(ctx, next, func(raw int64) bool {
				if _, more := admit(raw); !more {
					stopped = true
					return false
				}
				return true
			})
			err = bs.scan(b, next, emitResult)
			if err == nil && stopped {
				return st, nil
			}
		default:
			err = bs.scan(b, next, emitResult)
		}
		if err != nil || stopped {
			return st, err
		}
		st.CompletedJobs++
	}
	return st, nil
}

func flushingList(m map[TraceID]*headTrace) []*headTrace {
	out := make([]*headTrace, 0, len(m))
	for _, t := range m {
		out = append(out, t)
	}
	return out
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TagNames returns the posting keys ("span.x", "resource.x", "name",
// "status", "kind") seen in the head and in blocks overlapping [start, end].
func (db *DB) TagNames(ctx context.Context, start, end time.Time) ([]string, error) {
	s := db.snapshot()
	defer s.release()
	set := map[string]struct{}{}
	db.head.mu.RLock()
	for k := range db.head.tags.keys {
		set[k.encode()] = struct{}{}
	}
	db.head.mu.RUnlock()
	for _, b := range s.blocks {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !b.overlaps(start, end) {
			continue
		}
		for _, k := range b.postingKeys() {
			set[k] = struct{}{}
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out, nil
}

// TagValues returns up to limit distinct values of one posting key (0 = no limit).
func (db *DB) TagValues(ctx context.Context, key string, start, end time.Time, limit int) ([]TypedValue, error) {
	s := db.snapshot()
	defer s.release()
	set := map[string]struct{}{}
	db.head.mu.RLock()
	for v := range db.head.tags.keys[parseTagKey(key)] {
		set[v.encode()] = struct{}{}
	}
	db.head.mu.RUnlock()
	for _, b := range s.blocks {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !b.overlaps(start, end) {
			continue
		}
		kp, err := b.keyPostings(key)
		if err != nil {
			return nil, err
		}
		if kp != nil {
			for v := range kp.values {
				set[v] = struct{}{}
			}
		}
	}
	vals := make([]string, 0, len(set))
	for v := range set {
		vals = append(vals, v)
	}
	slices.Sort(vals)
	if limit > 0 && len(vals) > limit {
		vals = vals[:limit]
	}
	out := make([]TypedValue, len(vals))
	for i, v := range vals {
		out[i] = DecodeValue(v)
	}
	return out, nil
}

func (b *block) overlaps(start, end time.Time) bool {
	if !start.IsZero() && b.meta.MaxTime < start.UnixNano() {
		return false
	}
	if !end.IsZero() && b.meta.MinTime > end.UnixNano() {
		return false
	}
	return true
}

// HeadStats describes the in-memory head.
type HeadStats struct {
	Traces int
	Spans  int64
	Bytes  int64
}

// HeadStats reports the head's size (for benchmarks and status pages).
func (db *DB) HeadStats() HeadStats {
	st := db.head.stats()
	return HeadStats{Traces: st.traces, Spans: st.spans, Bytes: st.bytes}
}
