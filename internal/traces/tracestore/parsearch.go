package tracestore

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// A block search can decode its candidate traces on several goroutines
// (Options.SearchWorkers) while one goroutine, the caller of Search, hands them to fn in the same order, with the same limits and the
// same statistics as a sequential scan. Candidates are cut into batches of
// consecutive ordinals; the first batches are small and few are in flight,
// so a search that stops early (limit 20) decodes little more than it uses,
// and both grow as the search goes on (ADR 0090).
const (
	searchFirstBatch = 16  // traces in the first batch of a search
	searchMaxBatch   = 256 // batches grow by 2× up to this, then end at a page boundary
)

// searchBatchBytes ends a batch early once its traces hold this many stored
// bytes, so a batch of large traces does not hold hundreds of them decoded
// at once (a variable for tests).
var searchBatchBytes = 4 << 20

// searchWorkers is the number of decoding goroutines one search uses:
// Options.SearchWorkers, 0 meaning min(GOMAXPROCS, 8) (the default) and 1
// the caller's goroutine only. Measured (bench/README.md ## traces, ADR
// 0090): with idle cores two workers cut a 10M-span search from 13.5 s to
// 6–9 s; on a saturated machine they cost ~10 % more CPU and no wall time.
func searchWorkers(opt int) int {
	if opt <= 0 {
		return max(1, min(runtime.GOMAXPROCS(0), 8))
	}
	return opt
}

// searchCand is one candidate trace of a block.
type searchCand struct {
	id  TraceID
	e   indexEntry
	ord int
}

// searchResult is what a worker made of one candidate.
type searchResult struct {
	id     TraceID
	raw    int64 // bytes of the whole trace before projection (what limits count)
	skip   bool  // larger than MaxTraceBytes: not decoded
	shared bool  // parts of the trace live outside this block
	td     ptrace.Traces
}

type searchBatch struct {
	b     *block
	cands []searchCand
	out   []searchResult
	err   error
	done  chan struct{}
	// parts, with several workers, are the batch's candidates split by
	// the worker that owns their page (pageOwner), each decoded there;
	// owner[i] is candidate i's part.
	parts []*searchBatch
	owner []int
	// parent is the batch a part belongs to; pending counts the parent's
	// parts not decoded yet.
	parent  *searchBatch
	pending atomic.Int32
}

// finish marks bt decoded, and its parent once its last part is.
func (bt *searchBatch) finish() {
	close(bt.done)
	p := bt.parent
	if p == nil || p.pending.Add(-1) > 0 {
		return
	}
	for _, part := range p.parts {
		if part != nil && part.err != nil {
			p.err = part.err
			break
		}
	}
	close(p.done)
}

// blockScanner runs the decoding workers of one Search.
type blockScanner struct {
	s *snapshot
	// work[w] feeds worker w the batch parts whose pages it owns.
	work []chan *searchBatch
	req  *SearchRequest
	wg   sync.WaitGroup
	stop context.CancelFunc
	ctx  context.Context
	// maxInFlight bounds the batches in flight (each part's channel holds
	// as many).
	maxInFlight int

	batch    int // size of the next batch
	inFlight int // batches allowed in flight now (grows to cap(work))

	// With one worker, batches are decoded on the caller's goroutine with these.
	pr *pageReader
	pj *projector
	u  ptrace.ProtoUnmarshaler
}

func newBlockScanner(ctx context.Context, s *snapshot, req *SearchRequest) *blockScanner {
	n := searchWorkers(s.db.opts.SearchWorkers)
	bs := &blockScanner{s: s, req: req, batch: searchFirstBatch, inFlight: 1}
	bs.ctx, bs.stop = context.WithCancel(ctx)
	if n == 1 {
		if req.Project != nil {
			bs.pj = &projector{p: req.Project}
		}
		return bs
	}
	bs.maxInFlight = 2 * n
	bs.work = make([]chan *searchBatch, n)
	for w := range n {
		bs.work[w] = make(chan *searchBatch, bs.maxInFlight)
		bs.wg.Add(1)
		go bs.worker(bs.work[w])
	}
	return bs
}

// pageOwner is the worker that decodes page's candidates. Each page has
// one, so a page is decoded once however a block's page runs (format 13,
// ADR 0125) interleave in ID order: when batches went to whichever worker
// was free, both workers decoded most pages of a block of several runs
// (10M spans, 8 runs: 8.8 against 6.8 CPU-s for a search decoding
// 369,007 traces, bench/README.md ## traces).
func pageOwner(page uint32, workers int) int { return int(page) % workers }

// close stops the workers and waits for them; batches not yet decoded are
// abandoned.
func (bs *blockScanner) close() {
	bs.stop()
	if bs.work == nil {
		if bs.pr != nil {
			bs.pr.free()
		}
		return
	}
	for _, w := range bs.work {
		close(w)
	}
	bs.wg.Wait()
}

func (bs *blockScanner) worker(work chan *searchBatch) {
	defer bs.wg.Done()
	var pr *pageReader
	defer func() {
		if pr != nil {
			pr.free()
		}
	}()
	var pj *projector
	if bs.req.Project != nil {
		pj = &projector{p: bs.req.Project}
	}
	var u ptrace.ProtoUnmarshaler
	for bt := range work {
		if pr == nil || pr.b != bt.b {
			if pr != nil {
				pr.free()
			}
			pr = bt.b.pooledPageReader()
		}
		bt.err = bs.decode(bt, pr, pj, &u)
		bt.finish()
	}
}

func (bs *blockScanner) decode(bt *searchBatch, pr *pageReader, pj *projector, u *ptrace.ProtoUnmarshaler) error {
	bt.out = make([]searchResult, 0, len(bt.cands))
	lim := bs.req.Limits
	for _, c := range bt.cands {
		if err := bs.ctx.Err(); err != nil {
			return err
		}
		own, err := pr.trace(c.id, c.e)
		if err != nil {
			return fmt.Errorf("block %s: %w", bt.b.meta.ULID, err)
		}
		data, shared, err := bs.s.complete(bs.ctx, c.id, own, bt.b)
		if err != nil {
			return err
		}
		r := searchResult{id: c.id, raw: traceBytes(c.e, data, shared), shared: shared}
		if lim.MaxTraceBytes > 0 && r.raw > lim.MaxTraceBytes {
			r.skip = true
			bt.out = append(bt.out, r)
			continue
		}
		if pj != nil {
			if data, err = pj.apply(data); err != nil {
				return fmt.Errorf("decode trace %x: %w", c.id[:], err)
			}
		}
		// pdata copies what it keeps, so data (the page buffer or the
		// projector's) may be reused once this returns.
		if r.td, err = u.UnmarshalTraces(data); err != nil {
			return fmt.Errorf("decode trace %x: %w", c.id[:], err)
		}
		bt.out = append(bt.out, r)
	}
	return nil
}

// scan hands the candidates of block b, in ordinal order, to emit, which
// returns false to stop. next yields candidates (ok=false at the end); it
// and emit run on the calling goroutine only.
func (bs *blockScanner) scan(b *block, next func() (searchCand, bool, error), emit func(searchResult) (bool, error)) error {
	var queue []*searchBatch
	defer func() {
		// An early stop abandons the batches in flight: cancel them and
		// wait, so no worker still reads this block's pages afterwards.
		if len(queue) > 0 {
			bs.stop()
			for _, bt := range queue {
				<-bt.done
			}
		}
	}()
	exhausted := false
	var pending *searchCand // first candidate of the next batch, read past a page boundary
	for {
		for !exhausted && len(queue) < bs.inFlight {
			bt := &searchBatch{b: b, done: make(chan struct{})}
			if pending != nil {
				bt.cands = append(bt.cands, *pending)
				pending = nil
			}
			var bytes int
			for _, c := range bt.cands {
				bytes += int(c.e.len)
			}
			for bytes < searchBatchBytes {
				c, ok, err := next()
				if err != nil {
					return err
				}
				if !ok {
					exhausted = true
					break
				}
				n := len(bt.cands)
				if n > 0 && (n >= bs.batch && (bs.batch < searchMaxBatch || c.e.page != bt.cands[n-1].e.page)) {
					pending = &c
					break
				}
				bt.cands = append(bt.cands, c)
				bytes += int(c.e.len)
			}
			if len(bt.cands) == 0 {
				break
			}
			bs.batch = min(bs.batch*2, searchMaxBatch)
			queue = append(queue, bt)
			if len(bs.work) == 0 { // one worker: decode here
				if bs.pr == nil || bs.pr.b != b {
					if bs.pr != nil {
						bs.pr.free()
					}
					bs.pr = b.pooledPageReader()
				}
				bt.err = bs.decode(bt, bs.pr, bs.pj, &bs.u)
				close(bt.done)
				continue
			}
			bs.dispatch(bt)
		}
		if len(queue) == 0 {
			return nil
		}
		bt := queue[0]
		<-bt.done
		queue = queue[1:]
		if bt.err != nil {
			return bt.err
		}
		bs.inFlight = min(bs.inFlight+1, max(1, bs.maxInFlight))
		for _, r := range bt.results() {
			more, err := emit(r)
			if err != nil || !more {
				return err
			}
		}
	}
}

// dispatch splits bt by page owner and hands each part to its worker;
// bt.done closes once every part is decoded. Sends never block: at most
// maxInFlight batches are in flight, each with one part per worker.
func (bs *blockScanner) dispatch(bt *searchBatch) {
	n := len(bs.work)
	bt.parts = make([]*searchBatch, n)
	bt.owner = make([]int, len(bt.cands))
	for i, c := range bt.cands {
		w := pageOwner(c.e.page, n)
		if bt.parts[w] == nil {
			bt.parts[w] = &searchBatch{b: bt.b, done: make(chan struct{}), parent: bt}
			bt.pending.Add(1)
		}
		bt.parts[w].cands = append(bt.parts[w].cands, c)
		bt.owner[i] = w
	}
	for w, part := range bt.parts {
		if part != nil {
			bs.work[w] <- part
		}
	}
}

// results are bt's results in candidate order, from its parts when it
// was split.
func (bt *searchBatch) results() []searchResult {
	if bt.parts == nil {
		return bt.out
	}
	out := make([]searchResult, 0, len(bt.cands))
	next := make([]int, len(bt.parts))
	for _, w := range bt.owner {
		part := bt.parts[w]
		if next[w] >= len(part.out) {
			break // the part stopped early (an error, or the search ended)
		}
		out = append(out, part.out[next[w]])
		next[w]++
	}
	return out
}

// complete returns the whole trace when parts of it live outside block
// from (other blocks, traces being cut, the head), with shared set; else
// own, the block's copy.
func (s *snapshot) complete(ctx context.Context, id TraceID, own []byte, from *block) ([]byte, bool, error) {
	elsewhere, err := s.elsewhere(id, from)
	if err != nil {
		return nil, false, err
	}
	if !elsewhere {
		return own, false, nil
	}
	data, err := s.traceData(ctx, id, s.db.head.get(id))
	return data, true, err
}

// traceBytes is what a search counts of a trace for its byte limits:
// the stored record's length for a trace in one block (what a search
// answered from the columns counts; a stripped record, format 12, is
// shorter than the trace it restores to), else the bytes assembled.
func traceBytes(e indexEntry, data []byte, shared bool) int64 {
	if shared {
		return int64(len(data))
	}
	return int64(e.len)
}

// elsewhere reports whether parts of trace id live outside block from:
// in another block, among the traces being cut or in the head.
func (s *snapshot) elsewhere(id TraceID, from *block) (bool, error) {
	if s.flushing[id] != nil || s.db.head.get(id) != nil {
		return true, nil
	}
	for _, b := range s.partBlocks() {
		if b == from {
			continue
		}
		_, ok, err := b.find(id)
		if err != nil {
			return false, fmt.Errorf("block %s: %w", b.meta.ULID, err)
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}
