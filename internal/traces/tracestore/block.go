package tracestore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
	"github.com/oklog/ulid/v2"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// On-disk format version 2 (version 1 blocks are still read); see
// docs/formats/tracestore.md.
const (
	formatVersion = 13
	// indexVersion is the index file's header byte in format versions 2
	// and 3 (3 added the columns file); version 4 writes layout 3
	// (index3.go).
	indexVersion = 2
	// dataVersion is the data file's header byte: its layout did not change
	// in format version 2.
	dataVersion = 1

	metaFile   = "meta.json"
	dataFile   = "data"
	indexFile  = "index"
	dataMagic  = "NXTD"
	indexMagic = "NXTI"
	// maxPostingValues caps distinct values per key per block; beyond it the
	// key is kept for the tags API but marked incomplete (never used to prune).
	maxPostingValues = 2000
	// sampleValues is how many values an incomplete key keeps (without
	// postings) so the tag-values API can still suggest some.
	sampleValues = 100
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// chunkTraces is how many index entries one ID chunk holds. Only the first
// ID of each chunk stays in memory; chunks are read on demand. A variable so
// tests can make blocks of many small chunks.
var chunkTraces = 1024

type blockMeta struct {
	Version int    `json:"version"`
	ULID    string `json:"ulid"`
	// MinTime/MaxTime bound span start and end times, Unix nanoseconds.
	MinTime int64 `json:"minTimeUnixNano"`
	MaxTime int64 `json:"maxTimeUnixNano"`
	Traces  int   `json:"traces"`
	Spans   int   `json:"spans"`
	Pages   int   `json:"pages"`
	// Level is 0 for blocks cut from the head, +1 per compaction.
	Level   int      `json:"level"`
	Sources []string `json:"sources,omitempty"`
	// WALCheckpoint is the checkpoint index that commits a block cut from the
	// head; a block whose checkpoint never got written is discarded at open.
	WALCheckpoint int `json:"walCheckpoint"`
	// PageCodec says how data pages are compressed: "" zstd frames,
	// "s2" s2Page frames (format 11 level-0 blocks, ADR 0120).
	PageCodec string `json:"pageCodec,omitempty"`
	// PageRuns (format 13) lists the first page of each run of pages the
	// data file holds, each in trace-ID order: a compaction keeps its
	// sources' pages (ADR 0125), so walking the block in ID order goes
	// back and forth between runs. Empty in older blocks: one run.
	PageRuns []uint32 `json:"pageRuns,omitempty"`
	// UnreferencedBytes (format 13) counts the uncompressed bytes of
	// records no index entry points at: pieces a compaction merged into a
	// new record, left in the source pages it kept.
	UnreferencedBytes int64 `json:"unreferencedBytes,omitempty"`
}

type indexEntry struct {
	page  uint32
	off   uint32
	len   uint32
	spans uint32
	start uint64
	end   uint64
	// ord is the trace's ordinal, set by find and idxCursor.at (format 9
	// readers restore span times from the columns by it).
	ord uint32
}

type pageRef struct {
	off  uint64
	clen uint32
	ulen uint32
}

type keyPostings struct {
	complete bool
	values   map[string][]uint32
	// pending counts the key's values in blockWriter.pairs (a cut's
	// postings before finish moves them into values).
	pending int
	// runs holds, per value, compaction's lists not merged yet
	// (mergePostings, finishMerge); values has the value with a nil list
	// meanwhile.
	runs map[string][][]uint32
}

// pairPostings is one key=value's list while a cut collects postings.
// blockWriter.pairs keys them by the pair, so a pair met again costs one
// map lookup instead of three (key, value, store back). value is a
// substring of the map key (no copy of its own).
type pairPostings struct {
	kp    *keyPostings
	value string
	list  []uint32
}

// traceRecord is one trace handed to a block writer, in ascending ID order.
type traceRecord struct {
	id       TraceID
	data     []byte
	spans    int
	minStart uint64
	maxEnd   uint64
	// cols, when set, holds the trace's columns read from a compaction
	// source; data is then as stored there (span times and IDs zeroed)
	// and is not walked again.
	cols *colSource
	// kept, with cols set, says the record stays where it is in a page
	// the writer copied (copyPages): data is nil, at its place.
	kept *keptRecord
}

// keptRecord is where a record lies in the block being written.
type keptRecord struct {
	page, off, len uint32
}

type blockWriter struct {
	tmpDir   string
	finalDir string
	f        *os.File
	w        *bufio.Writer
	off      uint64
	enc      *zstd.Encoder
	pageSize int
	page     []byte
	cbuf     []byte
	ids      []TraceID
	entries  []indexEntry
	pages    []pageRef
	postings map[string]*keyPostings
	// pairs holds the cut's postings by uvarint(len(key)) key value
	// until finish moves them into postings (addPosting).
	pairs   map[string]*pairPostings
	pairKey []byte
	// scratch of postGroup
	ordLists   [][]uint32
	bitCodes   []uint64
	dictVals   [][]byte
	pkey, pval []byte
	meta       blockMeta
	scan       postingScanner
	ord        uint32
	last       TraceID
	// merged is set by compaction: postings come from the sources
	// (mergePostings) instead of decoding every trace again.
	merged bool
	// cols writes the span columns (format version 3).
	cols *colWriter
	// cenc is the columns' own encoder in compaction (closed by finish
	// and abort); nil when they share enc.
	cenc *zstd.Encoder
	// s2Pages: data pages are s2 frames (a cut's, ADR 0120).
	s2Pages bool
	// penc, when set, compresses data pages instead of enc (a cut's zstd
	// pages at compactLevel while its columns use enc, ADR 0125).
	penc *zstd.Encoder
	// fresh says the writer wrote pages of its own, from firstOwnPage
	// on (a run after those copyPages took from sources, listed in
	// meta.PageRuns).
	fresh        bool
	firstOwnPage uint32
	// scratch of appendStripped (format 12)
	stripper spanStripper
}

func newBlockWriter(dir string, enc *zstd.Encoder, pageSize int, level int, sources []string, walCheckpoint int) (*blockWriter, error) {
	id := ulid.Make().String()
	bw := &blockWriter{
		tmpDir:   filepath.Join(dir, id+".tmp"),
		finalDir: filepath.Join(dir, id),
		enc:      enc,
		pageSize: pageSize,
		page:     make([]byte, 0, pageSize),
		postings: map[string]*keyPostings{},
		pairs:    map[string]*pairPostings{},
		meta: blockMeta{Version: formatVersion, ULID: id, Level: level, Sources: sources,
			WALCheckpoint: walCheckpoint, MinTime: -1},
	}
	bw.scan.fn = bw.addPosting
	if level == 0 && level0S2 {
		bw.s2Pages, bw.meta.PageCodec = true, pageCodecS2
	}
	if err := os.MkdirAll(bw.tmpDir, 0o777); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(bw.tmpDir, dataFile))
	if err != nil {
		return nil, err
	}
	bw.f, bw.w = f, bufio.NewWriterSize(f, 1<<20)
	hdr := append([]byte(dataMagic), dataVersion)
	if _, err := bw.w.Write(hdr); err != nil {
		return nil, bw.abort(err)
	}
	bw.off = uint64(len(hdr))
	cenc := enc
	if level > 0 {
		// compaction: columns at their own level (compactColumnsLevel)
		if bw.cenc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(compactColumnsLevel), zstd.WithEncoderConcurrency(1)); err != nil {
			return nil, bw.abort(err)
		}
		cenc = bw.cenc
	}
	if bw.cols, err = newColWriter(bw.tmpDir, cenc); err != nil {
		return nil, bw.abort(err)
	}
	bw.cols.idEnc = enc
	if level == 0 {
		bw.cols.post = bw
	}
	return bw, nil
}

func (bw *blockWriter) add(r traceRecord) error {
	if len(bw.ids) > 0 && !idLess(bw.last, r.id) {
		return fmt.Errorf("trace %x out of order", r.id)
	}
	bw.last = r.id
	if len(bw.page) > 0 && len(bw.page)+len(r.data) > bw.pageSize {
		if err := bw.flushPage(); err != nil {
			return err
		}
	}
	ord := uint32(len(bw.ids))
	pos := len(bw.page)
	bw.ids = append(bw.ids, r.id)
	bw.entries = append(bw.entries, indexEntry{page: uint32(len(bw.pages)), off: uint32(len(bw.page)),
		len: uint32(len(r.data)), spans: uint32(r.spans), start: r.minStart, end: r.maxEnd})
	switch {
	case r.kept != nil:
		e := &bw.entries[ord]
		e.page, e.off, e.len = r.kept.page, r.kept.off, r.kept.len
	case r.cols != nil:
		bw.page = append(bw.page, r.data...) // as stored in the source
	}
	bw.meta.Traces++
	bw.meta.Spans += r.spans
	if bw.meta.MinTime < 0 || int64(r.minStart) < bw.meta.MinTime {
		bw.meta.MinTime = int64(r.minStart)
	}
	bw.meta.MaxTime = max(bw.meta.MaxTime, int64(r.maxEnd))
	bw.ord = ord
	if r.cols != nil {
		r.cols.fill(&bw.cols.walk)
		if r.cols.translate {
			bw.cols.src = r.cols
		}
		bw.cols.addWalked(r.minStart, r.maxEnd)
		bw.cols.src = nil
		r.cols.markDead(bw.cols)
	} else {
		w := &bw.cols.walk
		if err := w.walk(r.data); err != nil {
			return fmt.Errorf("decode trace %x: %w", r.id[:], err)
		}
		// A regular trace's postings come from the columns (postGroup)
		// and, for what they do not hold, from the walk (postExtras).
		bw.cols.postTrace = bw.cols.post != nil && postingsFromColumns && walkedRegular(w)
		bw.cols.addWalked(r.minStart, r.maxEnd)
		stripped := false
		if !w.irregular && stripSpanFields && zeroSpanTimes {
			bw.page, stripped = appendStripped(bw.page, r.data, r.id, w, &bw.stripper)
		}
		if stripped {
			bw.entries[ord].len = uint32(len(bw.page) - pos)
		} else {
			bw.page = append(bw.page, r.data...)
			bw.cols.zeroTimes(bw.page[pos:])
		}
		if bw.cols.postTrace {
			bw.cols.postTrace = false
			if err := bw.postExtras(w); err != nil {
				return fmt.Errorf("decode trace %x: %w", r.id[:], err)
			}
		} else if !bw.merged {
			// Postings from the fields the column walk has just read; the
			// scanner walks the bytes again only for what the walk cannot
			// stand for (irregular traces, values the columns refuse).
			ok, err := bw.scan.fromWalk(w)
			if err == nil && !ok {
				err = bw.scan.scan(r.data)
			}
			if err != nil {
				return fmt.Errorf("decode trace %x: %w", r.id[:], err)
			}
		}
	}
	if len(bw.ids)%chunkTraces == 0 {
		if err := bw.cols.flushGroup(); err != nil {
			return err
		}
	}
	return nil
}

// addPosting records that trace bw.ord carries key=value. A pair seen
// before costs one lookup of the reused key buffer (no allocation); only
// new keys and pairs allocate.
func (bw *blockWriter) addPosting(key, value []byte, indexed bool) {
	if !indexed {
		bw.keyPostings(key).complete = false
		return
	}
	pk := binary.AppendUvarint(bw.pairKey[:0], uint64(len(key)))
	pk = append(append(pk, key...), value...)
	bw.pairKey = pk
	if p := bw.pairs[string(pk)]; p != nil {
		if n := len(p.list); p.list[n-1] != bw.ord {
			p.list = append(p.list, bw.ord)
		}
		return
	}
	kp := bw.keyPostings(key)
	if len(kp.values)+kp.pending >= maxPostingValues {
		kp.complete = false
		return
	}
	kp.pending++
	ks := string(pk)
	bw.pairs[ks] = &pairPostings{kp: kp, value: ks[len(ks)-len(value):], list: []uint32{bw.ord}}
}

// keyPostings returns key's postings, adding the key when new.
func (bw *blockWriter) keyPostings(key []byte) *keyPostings {
	kp := bw.postings[string(key)]
	if kp == nil {
		kp = &keyPostings{complete: true, values: map[string][]uint32{}}
		bw.postings[string(key)] = kp
	}
	return kp
}

// addPostingList is addPosting for the ascending ordinals ords.
func (bw *blockWriter) addPostingList(key, value []byte, indexed bool, ords []uint32) {
	if !indexed {
		bw.keyPostings(key).complete = false
		return
	}
	pk := binary.AppendUvarint(bw.pairKey[:0], uint64(len(key)))
	pk = append(append(pk, key...), value...)
	bw.pairKey = pk
	if p := bw.pairs[string(pk)]; p != nil {
		if need := len(p.list) + len(ords); need > cap(p.list) {
			p.list = slices.Grow(p.list, bw.projectedList(need)-len(p.list))
		}
		p.list = append(p.list, ords...)
		return
	}
	kp := bw.keyPostings(key)
	if len(kp.values)+kp.pending >= maxPostingValues {
		kp.complete = false
		return
	}
	kp.pending++
	ks := string(pk)
	bw.pairs[ks] = &pairPostings{kp: kp, value: ks[len(ks)-len(value):], list: slices.Clone(ords)}
}

// projectedList is the capacity to give a list that needs n ordinals
// now: n scaled to the block's trace count (cap(bw.ids), when the writer
// was told it), since trace IDs are random and a value's traces spread
// evenly over the block; doubling copied every long list several times
// (0.2 s of a 1M-span run's cut).
func (bw *blockWriter) projectedList(n int) int {
	done, total := len(bw.ids), cap(bw.ids)
	if done == 0 || total <= done {
		return 2 * n
	}
	return max(n, min(total, n*total/done+n/8))
}

// flushPairs moves the pairs addPosting collected into postings. Lists
// are sorted first: a group's postings from its columns (postGroup) land
// after those its other traces made as they were added.
func (bw *blockWriter) flushPairs() {
	for _, p := range bw.pairs {
		if !slices.IsSorted(p.list) {
			slices.Sort(p.list)
		}
		p.kp.values[p.value] = slices.Compact(p.list)
		p.kp.pending = 0
	}
	clear(bw.pairs)
}

// postingsFromColumns makes a cut take the postings of regular traces
// from the column groups (ADR 0117); false only in tests comparing both.
var postingsFromColumns = true

// noService is colWriter.svcCodes' code of a span whose resource has no
// service.name.
const noService = math.MaxUint32

// walkedRegular reports whether the columns hold everything of the
// walked trace that postings need from its spans and resources: the
// conditions under which postingScanner.fromWalk takes a trace.
func walkedRegular(w *colWalker) bool {
	if !w.attrs || w.irregular {
		return false
	}
	for i := range w.kvs {
		if w.kvs[i].bad {
			return false
		}
	}
	return true
}

// postExtras adds the postings of a walked regular trace that its
// columns do not hold: event and link attributes, and the attributes of
// resources without spans (as fromWalk does; bw.ord is the trace's).
func (bw *blockWriter) postExtras(w *colWalker) error {
	used := -1 // resources up to used have had their turn
	for i := range w.spans {
		sp := &w.spans[i]
		for r := used + 1; r < sp.res; r++ {
			bw.postResource(w, r)
		}
		used = max(used, sp.res)
		if err := bw.scan.nestedAttrs(w.nested[sp.nFrom:sp.nTo]); err != nil {
			return err
		}
	}
	for r := used + 1; r < len(w.res); r++ {
		bw.postResource(w, r)
	}
	return nil
}

// postResource adds the postings of a resource without spans.
func (bw *blockWriter) postResource(w *colWalker, r int) {
	for k := w.res[r][0]; k < w.res[r][1]; k++ {
		bw.scan.walkedAttr("resource.", w, &w.kvs[k])
	}
}

// postGroup adds the postings of the group's traces whose postings come
// from the columns: names, statuses, kinds, services and every attribute
// column, each value once with the ordinals of the traces carrying it.
func (bw *blockWriter) postGroup(cw *colWriter) {
	first := uint32(len(bw.ids) - cw.traces)
	bw.codeOrds(cw, cw.nameCodes, 0, len(cw.nameList), first, func(i int) ([]byte, bool) {
		return stringPosting(bw.pval[:0], cw.nameList[i])
	}, KeyName)
	bw.codeOrds(cw, cw.svcCodes, 0, len(cw.svcList), first, func(i int) ([]byte, bool) {
		return stringPosting(bw.pval[:0], cw.svcList[i])
	}, "resource.service.name")
	bw.bitCodes = bw.bitCodes[:0]
	for _, b := range cw.bits {
		bw.bitCodes = append(bw.bitCodes, uint64(b&3))
	}
	bw.codeOrds(cw, bw.bitCodes, 0, 4, first, func(i int) ([]byte, bool) {
		return append(append(bw.pval[:0], 'k'), StatusKeyword(ptrace.StatusCode(int32(i)))...), true
	}, KeyStatus)
	bw.bitCodes = bw.bitCodes[:0]
	for _, b := range cw.bits {
		bw.bitCodes = append(bw.bitCodes, uint64(b>>2&7))
	}
	bw.codeOrds(cw, bw.bitCodes, 0, 8, first, func(i int) ([]byte, bool) {
		return append(append(bw.pval[:0], 'k'), KindKeyword(ptrace.SpanKind(int32(i)))...), true
	}, KeyKind)
	for _, c := range cw.acols {
		if !c.dead {
			bw.postColumn(cw, c)
		}
	}
}

func stringPosting(dst []byte, s string) ([]byte, bool) {
	if len(s) > maxIndexedValueLen {
		return dst, false
	}
	return append(append(dst, 's'), s...), true
}

// postColumn adds the postings of attribute column c's codes so far.
func (bw *blockWriter) postColumn(cw *colWriter, c *attrCol) {
	bw.dictVals = bw.dictVals[:0]
	r := &byteReader{b: c.vals}
	for i := 0; i < c.nvals; i++ {
		bw.dictVals = append(bw.dictVals, r.bytes(int(r.uvarint())))
	}
	first := uint32(len(bw.ids) - cw.traces)
	bw.codeOrds(cw, c.codes, attrCodeFirst, c.nvals, first, func(i int) ([]byte, bool) {
		return postingValue(bw.pval[:0], bw.dictVals[i])
	}, cw.keys[c.key])
}

// codeOrds adds to key's postings, for each of the n values, the
// ordinals of the traces (first + index in the group) whose spans carry
// it: codes[k] is span k's code, value i's being base+i.
func (bw *blockWriter) codeOrds(cw *colWriter, codes []uint64, base uint64, n int, first uint32, value func(int) ([]byte, bool), key string) {
	for len(bw.ordLists) < n {
		bw.ordLists = append(bw.ordLists, nil)
	}
	lists := bw.ordLists[:n]
	for i := range lists {
		lists[i] = lists[i][:0]
	}
	for k, c := range codes {
		t := cw.spanTrace[k]
		if t < 0 || c < base || c-base >= uint64(n) {
			continue
		}
		l := lists[c-base]
		if o := first + uint32(t); len(l) == 0 || l[len(l)-1] != o {
			lists[c-base] = append(l, o)
		}
	}
	bw.pkey = append(bw.pkey[:0], key...)
	for i, l := range lists {
		if len(l) == 0 {
			continue
		}
		v, indexed := value(i)
		bw.pval = v
		bw.addPostingList(bw.pkey, v, indexed, l)
	}
}

// postingValue is the posting form of a column dictionary value (as
// postingScanner.walkedAttr makes it from the same bytes).
func postingValue(dst, v []byte) ([]byte, bool) {
	if len(v) == 0 {
		return dst, false
	}
	switch p := v[1:]; v[0] {
	case 's':
		if len(p) > maxIndexedValueLen {
			return dst, false
		}
		return append(append(dst, 's'), p...), true
	case 'b':
		return strconv.AppendBool(append(dst, 'b'), len(p) > 0 && p[0] != 0), true
	case 'i':
		if len(p) != 8 {
			return dst, false
		}
		return strconv.AppendInt(append(dst, 'i'), int64(binary.LittleEndian.Uint64(p)), 10), true
	case 'f':
		if len(p) != 8 {
			return dst, false
		}
		return strconv.AppendFloat(append(dst, 'f'), math.Float64frombits(binary.LittleEndian.Uint64(p)), 'g', -1, 64), true
	}
	return dst, false // 'e': no value
}

// mergePostings adds a source block's postings, renumbered by newOrd
// (source ordinal -> ordinal in this block).
func (bw *blockWriter) mergePostings(src *block, newOrd []uint32) error {
	for _, key := range src.postingKeys() {
		skp, err := src.keyPostings(key)
		if err != nil {
			return err
		}
		kp := bw.postings[key]
		if kp == nil {
			kp = &keyPostings{complete: true, values: map[string][]uint32{}}
			bw.postings[key] = kp
		}
		if !skp.complete {
			kp.complete = false
		}
		if kp.runs == nil {
			kp.runs = map[string][][]uint32{}
		}
		// Values in order, not the map's: which values a key past the
		// limit keeps, and so the compacted index, must not change from
		// one run to the next.
		vals := make([]string, 0, len(skp.values))
		for v := range skp.values {
			vals = append(vals, v)
		}
		slices.Sort(vals)
		for _, v := range vals {
			if _, ok := kp.values[v]; !ok {
				if len(kp.values) >= maxPostingValues {
					kp.complete = false
					continue
				}
				kp.values[v] = nil
			}
			if !kp.complete {
				continue // an incomplete key keeps values without lists
			}
			src := skp.decode(skp.values[v])
			run := make([]uint32, len(src))
			for i, o := range src {
				run[i] = newOrd[o]
			}
			kp.runs[v] = pushRun(kp.runs[v], run)
		}
	}
	return nil
}

// pushRun adds run to runs, merging runs of about equal length as they
// come (a binary counter): each ordinal is copied O(log sources) times
// instead of once per later source (mergeAscending into one growing list
// was 1.5 s of a 21-source, 10M-span compaction's 26 CPU-s).
func pushRun(runs [][]uint32, run []uint32) [][]uint32 {
	runs = append(runs, run)
	for n := len(runs); n >= 2 && len(runs[n-1]) >= len(runs[n-2]); n-- {
		runs[n-2] = mergeAscending(runs[n-2], runs[n-1])
		runs = runs[:n-1]
	}
	return runs
}

// mergeRuns merges what pushRun left into one list.
func mergeRuns(runs [][]uint32) []uint32 {
	if len(runs) == 0 {
		return nil
	}
	for n := len(runs); n >= 2; n-- {
		runs[n-2] = mergeAscending(runs[n-2], runs[n-1])
	}
	return runs[0]
}

// finishMerge merges each value's remaining runs into its list.
func (bw *blockWriter) finishMerge() {
	for _, kp := range bw.postings {
		for v, runs := range kp.runs {
			kp.values[v] = mergeRuns(runs)
		}
		kp.runs = nil
	}
}

// mergeAscending returns the ascending ordinals of a and b, reusing a
// when b follows it. A source's list renumbered by newOrd ascends (both
// blocks order traces by ID), so the merged lists need no sort; should
// one not, appendValueRefs still sorts it.
func mergeAscending(a, b []uint32) []uint32 {
	if len(a) == 0 || len(b) == 0 || a[len(a)-1] < b[0] || !slices.IsSorted(b) {
		return append(a, b...)
	}
	out := make([]uint32, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if b[j] < a[i] {
			out = append(out, b[j])
			j++
		} else {
			out = append(out, a[i])
			i++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// encodeLarge compresses src with a throwaway encoder when src is much
// larger than a page: an encoder keeps a history buffer as large as the
// largest input it saw, for its lifetime (the store's live for the process).
func (bw *blockWriter) encodeLarge(src, dst []byte) []byte {
	return bw.encodeLargeWith(bw.enc, src, dst)
}

// encodeLargeWith is encodeLarge with enc for inputs up to two pages.
func (bw *blockWriter) encodeLargeWith(enc *zstd.Encoder, src, dst []byte) []byte {
	if len(src) <= 2*bw.pageSize {
		return enc.EncodeAll(src, dst)
	}
	big, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(compactLevel), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return enc.EncodeAll(src, dst)
	}
	dst = big.EncodeAll(src, dst)
	_ = big.Close()
	return dst
}

func (bw *blockWriter) flushPage() error {
	if bw.s2Pages {
		bw.cbuf = appendS2Page(bw.cbuf[:0], bw.page)
	} else {
		enc := bw.enc
		if bw.penc != nil {
			enc = bw.penc
		}
		bw.cbuf = bw.encodeLargeWith(enc, bw.page, bw.cbuf[:0])
	}
	if !bw.fresh {
		bw.fresh, bw.firstOwnPage = true, uint32(len(bw.pages))
	}
	if _, err := bw.w.Write(bw.cbuf); err != nil {
		return err
	}
	bw.pages = append(bw.pages, pageRef{off: bw.off, clen: uint32(len(bw.cbuf)), ulen: uint32(len(bw.page))})
	bw.off += uint64(len(bw.cbuf))
	bw.page = bw.page[:0]
	return nil
}

// copyPages appends src's data pages to the block as they are (their
// compressed bytes, not decoded: ADR 0125) and returns the number its
// first page gets here, so src's record at (page p, offset o) lies at
// (base+p, o). Call it before the writer's first add.
func (bw *blockWriter) copyPages(src *block) (uint32, error) {
	if len(bw.ids) > 0 || bw.fresh {
		return 0, errors.New("pages copied after the writer's own records")
	}
	base := uint32(len(bw.pages))
	for i := 0; i < len(src.pages); {
		// Pages lie back to back in a data file: one copy per stretch.
		j := i + 1
		for j < len(src.pages) && src.pages[j].off == src.pages[j-1].off+uint64(src.pages[j-1].clen) {
			j++
		}
		start, end := src.pages[i].off, src.pages[j-1].off+uint64(src.pages[j-1].clen)
		n, err := io.Copy(bw.w, io.NewSectionReader(src.data, int64(start), int64(end-start)))
		if err != nil {
			return 0, fmt.Errorf("copy pages of block %s: %w", src.meta.ULID, err)
		}
		if n != int64(end-start) {
			return 0, fmt.Errorf("copy pages of block %s: %d of %d bytes", src.meta.ULID, n, end-start)
		}
		for _, p := range src.pages[i:j] {
			bw.pages = append(bw.pages, pageRef{off: bw.off + (p.off - start), clen: p.clen, ulen: p.ulen})
		}
		bw.off += end - start
		i = j
	}
	for _, r := range src.runStarts() {
		bw.meta.PageRuns = append(bw.meta.PageRuns, base+r)
	}
	bw.meta.UnreferencedBytes += src.meta.UnreferencedBytes
	return base, nil
}

func (bw *blockWriter) closeColumnsEncoder() {
	if bw.cenc != nil {
		_ = bw.cenc.Close()
		bw.cenc = nil
	}
}

func (bw *blockWriter) abort(err error) error {
	bw.closeColumnsEncoder()
	bw.cols.abort()
	if bw.f != nil {
		_ = bw.f.Close()
	}
	_ = os.RemoveAll(bw.tmpDir)
	return err
}

// finish writes index and meta, syncs, and renames the block into place.
func (bw *blockWriter) finish() (string, error) {
	if len(bw.page) > 0 {
		if err := bw.flushPage(); err != nil {
			return "", bw.abort(err)
		}
	}
	if err := bw.w.Flush(); err != nil {
		return "", bw.abort(err)
	}
	if err := bw.f.Sync(); err != nil {
		return "", bw.abort(err)
	}
	if err := bw.f.Close(); err != nil {
		bw.f = nil
		return "", bw.abort(err)
	}
	bw.f = nil
	err := bw.cols.finish(chunkTraces)
	bw.closeColumnsEncoder()
	if err != nil {
		return "", bw.abort(err)
	}
	bw.flushPairs()
	bw.meta.Pages = len(bw.pages)
	if bw.fresh && len(bw.meta.PageRuns) > 0 {
		bw.meta.PageRuns = append(bw.meta.PageRuns, bw.firstOwnPage)
	}
	if len(bw.meta.PageRuns) == 0 {
		bw.meta.PageRuns = []uint32{0}
	}
	if bw.meta.MinTime < 0 {
		bw.meta.MinTime = 0
	}
	if err := writeFileSync(filepath.Join(bw.tmpDir, indexFile), bw.encodeIndex3(indexLayout7)); err != nil {
		return "", bw.abort(err)
	}
	mb, err := json.MarshalIndent(bw.meta, "", "  ")
	if err != nil {
		return "", bw.abort(err)
	}
	if err := writeFileSync(filepath.Join(bw.tmpDir, metaFile), mb); err != nil {
		return "", bw.abort(err)
	}
	if err := os.Rename(bw.tmpDir, bw.finalDir); err != nil {
		return "", bw.abort(err)
	}
	return bw.finalDir, syncDir(filepath.Dir(bw.finalDir))
}

// encodeIndex returns the index file (version 2): ID chunks, each its own
// zstd frame, then zstd(body), the body's offset and a CRC32C of everything
// before it. Postings are runs of small deltas and compress well.
func (bw *blockWriter) encodeIndex() []byte {
	out := append([]byte(indexMagic), indexVersion)
	base := uint64(bw.meta.MinTime)
	var table, raw []byte
	nChunks := 0
	for c := 0; c < len(bw.ids); c += chunkTraces {
		end := min(c+chunkTraces, len(bw.ids))
		raw = raw[:0]
		prevPage := bw.entries[c].page
		for i := c; i < end; i++ {
			e := bw.entries[i]
			raw = append(raw, bw.ids[i][:]...)
			raw = binary.AppendUvarint(raw, uint64(e.page-prevPage))
			prevPage = e.page
			raw = binary.AppendUvarint(raw, uint64(e.len))
			raw = binary.AppendUvarint(raw, uint64(e.spans))
			// Microseconds, rounded outwards: the entry times only prune
			// searches by time range and bound compacted blocks' meta.
			start := (e.start - base) / 1000
			raw = binary.AppendUvarint(raw, start)
			raw = binary.AppendUvarint(raw, (max(e.end, e.start)-base-start*1000+999)/1000)
		}
		off := len(out)
		out = bw.enc.EncodeAll(raw, out)
		table = append(table, bw.ids[c][:]...)
		table = binary.AppendUvarint(table, uint64(off))
		table = binary.AppendUvarint(table, uint64(len(out)-off))
		table = binary.AppendUvarint(table, uint64(bw.entries[c].page))
		table = binary.AppendUvarint(table, uint64(bw.entries[c].off))
		nChunks++
	}
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(bw.ids)))
	b = binary.AppendUvarint(b, base)
	b = binary.AppendUvarint(b, uint64(chunkTraces))
	b = binary.AppendUvarint(b, uint64(nChunks))
	b = append(b, table...)
	b = bw.appendPages(b)
	b = bw.appendPostings(b)
	bodyOff := len(out)
	out = bw.encodeLarge(b, out)
	out = binary.LittleEndian.AppendUint64(out, uint64(bodyOff))
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

func (bw *blockWriter) appendPages(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(bw.pages)))
	for _, p := range bw.pages {
		b = binary.AppendUvarint(b, p.off)
		b = binary.AppendUvarint(b, uint64(p.clen))
		b = binary.AppendUvarint(b, uint64(p.ulen))
	}
	return b
}

func (bw *blockWriter) appendPostings(b []byte) []byte {
	keys := make([]string, 0, len(bw.postings))
	for k := range bw.postings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		kp := bw.postings[k]
		b = appendString(b, k)
		if kp.complete {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
		b = bw.appendValues(b, kp)
	}
	return b
}

// appendPostingList writes uvarint(n) and n ascending ordinals as deltas.
func appendPostingList(b []byte, list []uint32) []byte {
	b = binary.AppendUvarint(b, uint64(len(list)))
	prev := uint32(0)
	for _, o := range list {
		b = binary.AppendUvarint(b, uint64(o-prev))
		prev = o
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func idLess(a, b TraceID) bool { return bytes.Compare(a[:], b[:]) < 0 }

func writeFileSync(name string, b []byte) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	_ = d.Close()
	return err
}

// block is an open, immutable block. In memory: the page table, a bloom
// filter over trace IDs, the first ID of every index chunk (the fence) and
// the postings, still delta-encoded. Index chunks (IDs and entries) and data
// pages are read with pread when a query needs them.
type block struct {
	dir      string
	meta     blockMeta
	size     int64
	n        int // traces
	base     uint64
	chunkN   int
	chunks   []chunkRef
	pages    []pageRef
	bloom    bloom
	postings map[string]*blockPostings
	data     *os.File
	index    *os.File // version 2: chunks are read from here
	cols     *os.File // version 3: span columns; nil before
	// version 4 (index layout 3): the index file is mapped (mm); the
	// blocked bloom filter is a slice of it and postings are read per key
	// through cache, with pdir saying where.
	mm     []byte
	layout byte // index layout (3, 4 or 5) of a mapped index
	// postingsEnd bounds where layout 4 posting lists may lie.
	postingsEnd uint64
	bloom3      []byte
	pdir        map[string]postingsRef
	cache       *postingsCache
	dec         *zstd.Decoder

	// refs counts queries using the block; a retired block (compacted away,
	// deleted by retention, or store closed) closes when the last one ends.
	refs      atomic.Int64
	retired   atomic.Bool
	closeOnce sync.Once
	// tt is the column table restoreTimes reads (format 9), read once.
	ttOnce   sync.Once
	tt       *colTable
	ttErr    error
	closeErr error
}

// chunkRef locates one index chunk: chunkN entries (fewer in the last one).
type chunkRef struct {
	first   TraceID
	off     uint64
	clen    uint32
	page    uint32 // page and offset of the chunk's first trace
	pageOff uint32
	n       int
	res     *idxChunk // version 1 blocks: the whole index is resident
}

type idxChunk struct {
	ids     []TraceID
	entries []indexEntry
}

type blockPostings struct {
	complete bool
	// tagged: lists start with a tag byte (listVarint or listBitmap),
	// index layout 6 and later.
	tagged bool
	values map[string]postingList
}

// decode returns the ordinals of pl, one of kp's lists.
func (kp *blockPostings) decode(pl postingList) []uint32 {
	if !kp.tagged {
		return pl.decode()
	}
	if len(pl) > 0 && pl[0] == listVarint {
		return pl[1:].decode()
	}
	var out []uint32
	it := kp.iter(pl)
	for o, ok := it.next(0); ok; o, ok = it.next(o + 1) {
		out = append(out, o)
	}
	return out
}

// iter walks pl, one of kp's lists, lazily.
func (kp *blockPostings) iter(pl postingList) ordIter {
	if !kp.tagged {
		return newListIter(pl)
	}
	if len(pl) == 0 {
		return &listIter{}
	}
	if pl[0] == listVarint {
		return newListIter(pl[1:])
	}
	if pl[0] != listBitmap {
		return &listIter{}
	}
	first, k := binary.Uvarint(pl[1:])
	if k <= 0 || first > math.MaxUint32 {
		return &listIter{}
	}
	return &bitmapIter{first: uint32(first), bits: pl[1+k:]}
}

// postingList is uvarint(n) followed by n ordinal deltas, as on disk.
type postingList []byte

func (p postingList) decode() []uint32 {
	n, k := binary.Uvarint(p)
	if k <= 0 {
		return nil
	}
	p = p[k:]
	// Each delta takes at least a byte: a damaged count must not size the
	// list (FuzzDecodeIndex3 asked for 64 GiB).
	out := make([]uint32, 0, min(n, uint64(len(p))))
	prev := uint32(0)
	for i := uint64(0); i < n; i++ {
		d, k := binary.Uvarint(p)
		if k <= 0 {
			break
		}
		p = p[k:]
		prev += uint32(d)
		out = append(out, prev)
	}
	return out
}

func (b *block) closeFiles() error {
	b.cache.drop(b)
	err := b.data.Close()
	if e := unmapFile(b.mm); err == nil {
		err = e
	}
	b.mm, b.bloom3 = nil, nil
	if b.cols != nil {
		if e := b.cols.Close(); err == nil {
			err = e
		}
	}
	if b.index != nil {
		if e := b.index.Close(); err == nil {
			err = e
		}
	}
	return err
}

func (b *block) release() {
	if b.refs.Add(-1) == 0 && b.retired.Load() {
		b.closeOnce.Do(func() { b.closeErr = b.closeFiles() })
	}
}

// retire closes the block now if unused, else when its last query ends.
func (b *block) retire() error {
	b.retired.Store(true)
	if b.refs.Load() == 0 {
		b.closeOnce.Do(func() { b.closeErr = b.closeFiles() })
		return b.closeErr
	}
	return nil
}

func openBlock(dir string, dec *zstd.Decoder, cache *postingsCache) (*block, error) {
	mb, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return nil, err
	}
	b := &block{dir: dir, dec: dec, cache: cache}
	if err := json.Unmarshal(mb, &b.meta); err != nil {
		return nil, fmt.Errorf("decode meta: %w", err)
	}
	if b.meta.Version < 1 || b.meta.Version > formatVersion {
		return nil, fmt.Errorf("unsupported block version %d", b.meta.Version)
	}
	if b.meta.PageCodec != "" && (b.meta.PageCodec != pageCodecS2 || b.meta.Version < 11) {
		return nil, fmt.Errorf("unsupported page codec %q in a version %d block", b.meta.PageCodec, b.meta.Version)
	}
	if err := b.meta.checkRuns(); err != nil {
		return nil, err
	}
	if b.meta.Version >= 4 {
		return b.openV4(mb)
	}
	ib, err := os.ReadFile(filepath.Join(dir, indexFile))
	if err != nil {
		return nil, err
	}
	if b.meta.Version == 1 {
		err = b.decodeIndexV1(ib)
	} else {
		err = b.decodeIndex(ib)
	}
	if err != nil {
		return nil, fmt.Errorf("decode index: %w", err)
	}
	if b.meta.Version != 1 {
		if b.index, err = os.Open(filepath.Join(dir, indexFile)); err != nil {
			return nil, err
		}
	}
	f, err := os.Open(filepath.Join(dir, dataFile))
	if err != nil {
		if b.index != nil {
			_ = b.index.Close()
		}
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		if b.index != nil {
			_ = b.index.Close()
		}
		return nil, err
	}
	b.data = f
	b.size = st.Size() + int64(len(ib)) + int64(len(mb))
	if b.meta.Version >= 3 {
		if err := b.openColumns(); err != nil {
			_ = b.closeFiles()
			return nil, err
		}
	}
	return b, nil
}

func (b *block) openColumns() error {
	var err error
	if b.cols, err = os.Open(filepath.Join(b.dir, columnsFile)); err != nil {
		return err
	}
	cst, err := b.cols.Stat()
	if err != nil {
		return err
	}
	b.size += cst.Size()
	return nil
}

// openV4 opens a format version 4 block: the index is mapped, not read.
func (b *block) openV4(meta []byte) (*block, error) {
	isize, err := b.openIndex3(filepath.Join(b.dir, indexFile))
	if err != nil {
		if b.index != nil {
			_ = b.index.Close()
			_ = unmapFile(b.mm)
		}
		return nil, fmt.Errorf("decode index: %w", err)
	}
	if b.data, err = os.Open(filepath.Join(b.dir, dataFile)); err != nil {
		_ = b.index.Close()
		_ = unmapFile(b.mm)
		return nil, err
	}
	st, err := b.data.Stat()
	if err == nil {
		b.size = st.Size() + isize + int64(len(meta))
		err = b.openColumns()
	}
	if err != nil {
		_ = b.closeFiles()
		return nil, err
	}
	return b, nil
}

var errCorruptIndex = errors.New("corrupt index")

type byteReader struct {
	b   []byte
	err error
}

func (r *byteReader) uvarint() uint64 {
	// One byte: most counts, lengths and deltas (index chunks, column
	// tables); binary.Uvarint is not inlined.
	if len(r.b) > 0 && r.b[0] < 0x80 && r.err == nil {
		v := uint64(r.b[0])
		r.b = r.b[1:]
		return v
	}
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorruptIndex
		return 0
	}
	r.b = r.b[n:]
	return v
}

// varint reads a zigzag varint (index layout 7's page and offset deltas).
func (r *byteReader) varint() int64 {
	u := r.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (r *byteReader) bytes(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.err = errCorruptIndex
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *byteReader) count() int {
	v := r.uvarint()
	if v > uint64(len(r.b)) { // every element takes at least one byte
		r.err = errCorruptIndex
		return 0
	}
	return int(v)
}

// postingList returns the next list without decoding it.
func (r *byteReader) postingList() postingList {
	start := r.b
	n := r.count()
	for i := 0; i < n && r.err == nil; i++ {
		r.uvarint()
	}
	if r.err != nil {
		return nil
	}
	return postingList(start[:len(start)-len(r.b)])
}

func checkIndex(ib []byte, version byte) ([]byte, error) {
	if len(ib) < 9 || string(ib[:4]) != indexMagic || ib[4] != version {
		return nil, errCorruptIndex
	}
	body, sum := ib[:len(ib)-4], binary.LittleEndian.Uint32(ib[len(ib)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", errCorruptIndex)
	}
	return body, nil
}

// decodeIndex reads a version 2 index: body, then every chunk once to build
// the bloom filter and check entries against the page table.
func (b *block) decodeIndex(ib []byte) error {
	all, err := checkIndex(ib, indexVersion)
	if err != nil {
		return err
	}
	if len(all) < 13 {
		return errCorruptIndex
	}
	bodyOff := binary.LittleEndian.Uint64(all[len(all)-8:])
	if bodyOff < 5 || bodyOff > uint64(len(all)-8) {
		return errCorruptIndex
	}
	// A copy: the shared decoder may keep a reference to its last input,
	// which would otherwise pin the whole index file in memory.
	raw, err := decodeFrames(b.dec, slices.Clone(all[bodyOff:len(all)-8]), nil)
	if err != nil {
		return fmt.Errorf("%w: %v", errCorruptIndex, err)
	}
	r := &byteReader{b: raw}
	if err := b.readChunkTable(r, bodyOff); err != nil {
		return err
	}
	b.readPagesAndPostings(r)
	if r.err != nil {
		return r.err
	}
	b.bloom = newBloom(b.n)
	for i := range b.chunks {
		c, err := b.parseChunk(i, all[b.chunks[i].off:b.chunks[i].off+uint64(b.chunks[i].clen)])
		if err != nil {
			return err
		}
		for _, id := range c.ids {
			b.bloom.add(id)
		}
	}
	return nil
}

func (b *block) readPagesAndPostings(r *byteReader) {
	b.readPages(r)
	b.readPostings(r)
}

func (b *block) readPages(r *byteReader) {
	np := r.count()
	b.pages = make([]pageRef, np)
	for i := 0; i < np && r.err == nil; i++ {
		b.pages[i] = pageRef{off: r.uvarint(), clen: uint32(r.uvarint()), ulen: uint32(r.uvarint())}
	}
}

func (b *block) readPostings(r *byteReader) {
	nk := r.count()
	b.postings = make(map[string]*blockPostings, nk)
	for i := 0; i < nk && r.err == nil; i++ {
		k := string(r.bytes(int(r.uvarint())))
		flag := r.bytes(1)
		kp := &blockPostings{complete: len(flag) == 1 && flag[0] == 1}
		nv := r.count()
		kp.values = make(map[string]postingList, nv)
		for j := 0; j < nv && r.err == nil; j++ {
			v := string(r.bytes(int(r.uvarint())))
			kp.values[v] = r.postingList()
		}
		b.postings[k] = kp
	}
}

// parseChunk decodes chunk i from its compressed bytes.
func (b *block) parseChunk(i int, comp []byte) (*idxChunk, error) {
	ref := &b.chunks[i]
	if b.layout >= indexLayout6 {
		return b.parseChunk6(i, comp)
	}
	raw, err := decodeFrames(b.dec, comp, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: chunk %d: %v", errCorruptIndex, i, err)
	}
	r := &byteReader{b: raw}
	c := &idxChunk{ids: make([]TraceID, ref.n), entries: make([]indexEntry, ref.n)}
	page, off := ref.page, ref.pageOff
	for j := 0; j < ref.n && r.err == nil; j++ {
		copy(c.ids[j][:], r.bytes(16))
		if d := uint32(r.uvarint()); d > 0 {
			page, off = page+d, 0
		}
		e := &c.entries[j]
		e.page, e.off = page, off
		e.len, e.spans = uint32(r.uvarint()), uint32(r.uvarint())
		e.start = b.base + r.uvarint()*1000
		e.end = e.start + r.uvarint()*1000
		off += e.len
	}
	if r.err != nil {
		return nil, fmt.Errorf("chunk %d: %w", i, r.err)
	}
	if err := b.checkEntries(c.entries); err != nil {
		return nil, err
	}
	if ref.n > 0 && c.ids[0] != ref.first {
		return nil, fmt.Errorf("%w: chunk %d does not start with its fence ID", errCorruptIndex, i)
	}
	return c, nil
}

// parseChunk6 decodes a layout 6 chunk: sections of IDs, then page deltas,
// lengths and span counts, then start and end times (field-major).
func (b *block) parseChunk6(i int, comp []byte) (*idxChunk, error) {
	return b.parseChunk6Into(i, comp, nil)
}

// chunkBuf holds a cursor's chunk and decode buffer for reuse (layout 6).
type chunkBuf struct {
	c   idxChunk
	raw []byte
}

// parseChunk6Into is parseChunk6 into buf's slices when buf is not nil
// (the chunk returned is then valid until the next call with buf).
func (b *block) parseChunk6Into(i int, comp []byte, buf *chunkBuf) (*idxChunk, error) {
	ref := &b.chunks[i]
	var dst []byte
	if buf != nil {
		dst = buf.raw[:0]
	}
	if cap(dst) < ref.n*32 {
		dst = make([]byte, 0, ref.n*32)
	}
	raw, err := decodeSections(b.dec, comp, dst)
	if buf != nil {
		buf.raw = raw
	}
	if err != nil {
		return nil, fmt.Errorf("%w: chunk %d: %v", errCorruptIndex, i, err)
	}
	r := &byteReader{b: raw}
	var c *idxChunk
	if buf != nil {
		c = &buf.c
		c.ids = slices.Grow(c.ids[:0], ref.n)[:ref.n]
		c.entries = slices.Grow(c.entries[:0], ref.n)[:ref.n]
		clear(c.entries)
	} else {
		c = &idxChunk{ids: make([]TraceID, ref.n), entries: make([]indexEntry, ref.n)}
	}
	for j := 0; j < ref.n && r.err == nil; j++ {
		copy(c.ids[j][:], r.bytes(16))
	}
	page, off := ref.page, ref.pageOff
	explicit := b.layout >= indexLayout7
	for j := 0; j < ref.n && r.err == nil; j++ {
		if explicit {
			p := int64(page) + r.varint()
			if p < 0 || p >= int64(len(b.pages)) {
				return nil, fmt.Errorf("%w: chunk %d: page %d of %d", errCorruptIndex, i, p, len(b.pages))
			}
			page = uint32(p)
		} else if d := uint32(r.uvarint()); d > 0 {
			page = page + d
		}
		c.entries[j].page = page
	}
	for j := 0; j < ref.n && r.err == nil; j++ {
		c.entries[j].len = uint32(r.uvarint())
	}
	for j := 0; j < ref.n && r.err == nil; j++ {
		c.entries[j].spans = uint32(r.uvarint())
	}
	for j := 0; explicit && j < ref.n && r.err == nil; j++ {
		e := &c.entries[j]
		o := int64(expectedOffset(c.entries[:j], e.page, ref.pageOff)) + r.varint()
		if o < 0 || o > math.MaxUint32 {
			return nil, fmt.Errorf("%w: chunk %d: offset %d", errCorruptIndex, i, o)
		}
		e.off = uint32(o)
	}
	for j := 0; j < ref.n && r.err == nil; j++ {
		c.entries[j].start = b.base + r.uvarint()*1000
	}
	for j := 0; j < ref.n && r.err == nil; j++ {
		c.entries[j].end = c.entries[j].start + r.uvarint()*1000
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, fmt.Errorf("%w: chunk %d: %v", errCorruptIndex, i, r.err)
	}
	page = ref.page
	for j := range c.entries {
		if explicit {
			break
		}
		e := &c.entries[j]
		if e.page != page {
			page, off = e.page, 0
		}
		e.off = off
		off += e.len
	}
	if err := b.checkEntries(c.entries); err != nil {
		return nil, err
	}
	if ref.n > 0 && c.ids[0] != ref.first {
		return nil, fmt.Errorf("%w: chunk %d does not start with its fence ID", errCorruptIndex, i)
	}
	return c, nil
}

func (b *block) checkEntries(es []indexEntry) error {
	for _, e := range es {
		if int(e.page) >= len(b.pages) || uint64(e.off)+uint64(e.len) > uint64(b.pages[e.page].ulen) {
			return fmt.Errorf("%w: entry points outside its page", errCorruptIndex)
		}
	}
	return nil
}

// chunk returns index chunk i, reading it from the index file if needed.
func (b *block) chunk(i int) (*idxChunk, error) {
	ref := &b.chunks[i]
	if ref.res != nil {
		return ref.res, nil
	}
	if b.mm != nil {
		return b.parseChunk(i, b.mm[ref.off:ref.off+uint64(ref.clen)])
	}
	buf := make([]byte, ref.clen)
	if _, err := b.index.ReadAt(buf, int64(ref.off)); err != nil {
		return nil, fmt.Errorf("read index chunk %d: %w", i, err)
	}
	return b.parseChunk(i, buf)
}

// decodeIndexV1 reads a version 1 index; everything stays resident.
func (b *block) decodeIndexV1(ib []byte) error {
	body, err := checkIndex(ib, 1)
	if err != nil {
		return err
	}
	raw, err := decodeFrames(b.dec, body[5:], nil)
	if err != nil {
		return fmt.Errorf("%w: %v", errCorruptIndex, err)
	}
	r := &byteReader{b: raw}
	n := r.count()
	ids := make([]TraceID, n)
	entries := make([]indexEntry, n)
	base := r.uvarint()
	for i := 0; i < n && r.err == nil; i++ {
		copy(ids[i][:], r.bytes(16))
		e := &entries[i]
		e.page, e.off, e.len, e.spans = uint32(r.uvarint()), uint32(r.uvarint()), uint32(r.uvarint()), uint32(r.uvarint())
		e.start = base + r.uvarint()
		e.end = e.start + r.uvarint()
	}
	b.readPages(r)
	b.bloom.k = uint32(r.uvarint())
	nw := r.count()
	words := r.bytes(nw * 8)
	if r.err == nil {
		b.bloom.bits = make([]uint64, nw)
		for i := range b.bloom.bits {
			b.bloom.bits[i] = binary.LittleEndian.Uint64(words[i*8:])
		}
	}
	b.readPostings(r) // same layout in both versions
	if r.err != nil {
		return r.err
	}
	if err := b.checkEntries(entries); err != nil {
		return err
	}
	b.n, b.chunkN = n, chunkTraces
	for c := 0; c < n; c += chunkTraces {
		end := min(c+chunkTraces, n)
		b.chunks = append(b.chunks, chunkRef{first: ids[c], n: end - c,
			res: &idxChunk{ids: ids[c:end], entries: entries[c:end]}})
	}
	return nil
}

func (b *block) close() error { return b.retire() }

// find returns the index entry of id: bloom filter, fence, one chunk.
func (b *block) find(id TraceID) (indexEntry, bool, error) {
	if b.n == 0 {
		return indexEntry{}, false, nil
	}
	if b.bloom3 != nil {
		if !bloom3MayContain(b.bloom3, id, b.layout >= indexLayout5) {
			return indexEntry{}, false, nil
		}
	} else if !b.bloom.mayContain(id) {
		return indexEntry{}, false, nil
	}
	i := sort.Search(len(b.chunks), func(i int) bool { return idLess(id, b.chunks[i].first) }) - 1
	if i < 0 {
		return indexEntry{}, false, nil
	}
	c, err := b.chunk(i)
	if err != nil {
		return indexEntry{}, false, err
	}
	j := sort.Search(len(c.ids), func(j int) bool { return !idLess(c.ids[j], id) })
	if j < len(c.ids) && c.ids[j] == id {
		e := c.entries[j]
		e.ord = uint32(i*b.chunkN + j)
		return e, true, nil
	}
	return indexEntry{}, false, nil
}

// idxCursor reads entries by ordinal, keeping the current chunk; walking
// ordinals in ascending order reads each chunk once.
type idxCursor struct {
	b   *block
	ci  int
	c   *idxChunk
	buf *chunkBuf
}

func (b *block) cursor() *idxCursor { return &idxCursor{b: b, ci: -1} }

func (cu *idxCursor) at(ord int) (TraceID, indexEntry, error) {
	ci := ord / cu.b.chunkN
	if ci != cu.ci {
		var c *idxChunk
		var err error
		if ref := &cu.b.chunks[ci]; ref.res == nil && cu.b.mm != nil && cu.b.layout >= indexLayout6 {
			// sequential scans parse chunk after chunk: reuse one buffer
			if cu.buf == nil {
				cu.buf = &chunkBuf{}
			}
			c, err = cu.b.parseChunk6Into(ci, cu.b.mm[ref.off:ref.off+uint64(ref.clen)], cu.buf)
		} else {
			c, err = cu.b.chunk(ci)
		}
		if err != nil {
			cu.ci = -1
			return TraceID{}, indexEntry{}, err
		}
		cu.c, cu.ci = c, ci
	}
	j := ord - ci*cu.b.chunkN
	e := cu.c.entries[j]
	e.ord = uint32(ord)
	return cu.c.ids[j], e, nil
}

// pageReader decodes pages, keeping the last one for sequential scans,
// and in a block of several page runs (format 13) also the last page of
// up to maxReaderPages-1 others: walking such a block in ID order goes
// back and forth between runs, each in order (ADR 0125).
type pageReader struct {
	b       *block
	cur     int
	buf     []byte
	cbuf    []byte
	decoded int64
	// parked holds other decoded pages, least recently used first.
	parked []parkedPage
	// tg is the column group span times are restored from (format 9).
	tg *timeGroup
	// rbuf holds the traces restored from stripped records (format 12)
	// of the current page: a returned trace lives as long as the page.
	rbuf  []byte
	sr    spanRestorer
	sizes []int
}

// checkFrameSize refuses a zstd frame (a page, a group's span IDs) whose
// header says it holds other than want bytes, before anything is
// allocated for it: DecodeAll sizes its output by that claim, up to the
// decoder's 1 GiB.
func checkFrameSize(frame []byte, want int) error {
	var h zstd.Header
	if err := h.Decode(frame); err != nil {
		return fmt.Errorf("%w: %v", errCorruptPage, err)
	}
	if h.HasFCS && h.FrameContentSize != uint64(want) {
		return fmt.Errorf("%w: frame holds %d bytes, want %d", errCorruptPage, h.FrameContentSize, want)
	}
	return nil
}

// pagesDecoded counts data pages decoded, process-wide (tests).
var pagesDecoded atomic.Int64

// parkedPage is a decoded page a pageReader keeps while it reads others;
// rbuf holds the traces restored from its stripped records.
type parkedPage struct {
	page      int
	buf, rbuf []byte
}

// maxReaderPages bounds the pages one pageReader keeps decoded (~PageSize
// each); compaction keeps at most maxCopiedRuns runs of pages, plus one
// of its own, so a walk in ID order decodes each page once.
const maxReaderPages = maxCopiedRuns + 1

func (b *block) newPageReader() *pageReader { return &pageReader{b: b, cur: -1} }

// runStarts is the first page of each of b's page runs.
func (b *block) runStarts() []uint32 {
	if len(b.meta.PageRuns) == 0 {
		return []uint32{0}
	}
	return b.meta.PageRuns
}

// runOf is the run (index into starts, ascending from 0) holding page.
func runOf(starts []uint32, page int) int {
	r, _ := slices.BinarySearch(starts, uint32(page)+1)
	return max(r-1, 0)
}

// checkRuns refuses page runs and unreferenced bytes a block of its
// version cannot have: runs start at page 0, ascend, and lie within the
// pages.
func (m *blockMeta) checkRuns() error {
	if m.Version < 13 && (len(m.PageRuns) > 0 || m.UnreferencedBytes != 0) {
		return fmt.Errorf("page runs or unreferenced bytes in a version %d block", m.Version)
	}
	if m.UnreferencedBytes < 0 {
		return fmt.Errorf("unreferenced bytes %d", m.UnreferencedBytes)
	}
	for i, p := range m.PageRuns {
		if (i == 0 && p != 0) || (i > 0 && p <= m.PageRuns[i-1]) || (i > 0 && int(p) >= m.Pages) {
			return fmt.Errorf("page runs %v of %d pages", m.PageRuns, m.Pages)
		}
	}
	return nil
}

// switchPage makes page current if it is parked (true); otherwise it parks
// the current page, if the block has more runs than one, and leaves
// buffers to decode page into (false).
func (pr *pageReader) switchPage(page int) bool {
	runs := pr.b.runStarts()
	keep := min(len(runs), maxReaderPages)
	if keep <= 1 {
		return false
	}
	cur := parkedPage{page: pr.cur, buf: pr.buf, rbuf: pr.rbuf}
	for i, p := range pr.parked {
		if p.page == page {
			pr.parked = append(pr.parked[:i], pr.parked[i+1:]...)
			if cur.page >= 0 {
				pr.parked = append(pr.parked, cur)
			}
			pr.cur, pr.buf, pr.rbuf = p.page, p.buf, p.rbuf
			return true
		}
	}
	run := runOf(runs, page)
	if cur.page < 0 || runOf(runs, cur.page) == run {
		// Nothing to park, or page's run has moved on from the current
		// page: decode into its buffers.
		return false
	}
	// Evict a page of page's run (the run has moved on from it), else the
	// least recently used page.
	victim := -1
	for i, p := range pr.parked {
		if runOf(runs, p.page) == run {
			victim = i
			break
		}
	}
	if victim < 0 && len(pr.parked) >= keep-1 {
		victim = 0
	}
	var free parkedPage
	if victim >= 0 {
		free = pr.parked[victim]
		pr.parked = append(pr.parked[:victim], pr.parked[victim+1:]...)
	}
	pr.parked = append(pr.parked, cur)
	pr.cur, pr.buf, pr.rbuf = -1, free.buf[:0], free.rbuf[:0]
	return false
}

// pageBufs recycles page buffers (up to PageSize each) between lookups.
var pageBufs sync.Pool

// pooledPageReader is a pageReader whose buffers come from pageBufs; call
// free when done with every slice it returned.
func (b *block) pooledPageReader() *pageReader {
	pr := &pageReader{b: b, cur: -1}
	if p, ok := pageBufs.Get().(*pooledBufs); ok {
		pr.buf, pr.cbuf, pr.tg = p.buf[:0], p.cbuf[:0], p.tg
		if pr.tg != nil {
			pr.tg.index = -1
		}
	}
	return pr
}

type pooledBufs struct {
	buf, cbuf []byte
	tg        *timeGroup
}

func (pr *pageReader) free() {
	if pr.buf != nil || pr.cbuf != nil || pr.tg != nil {
		pageBufs.Put(&pooledBufs{pr.buf, pr.cbuf, pr.tg})
	}
	pr.buf, pr.cbuf, pr.cur, pr.tg, pr.rbuf, pr.parked = nil, nil, -1, nil, nil, nil
}

// trace returns trace id's bytes (entry e) as ingested; they live until
// the reader moves to another page.
func (pr *pageReader) trace(id TraceID, e indexEntry) ([]byte, error) {
	td, err := pr.storedTrace(e)
	if err != nil {
		return nil, err
	}
	if len(td) > 0 && td[0] <= strippedAscending && pr.b.meta.Version >= 12 {
		out, err := pr.restoreStripped(td, id, int(e.ord))
		if err != nil {
			return nil, fmt.Errorf("trace at ordinal %d: %w", e.ord, err)
		}
		return out, nil
	}
	if pr.b.meta.Version >= 9 {
		if err := pr.restoreTimes(td, int(e.ord)); err != nil {
			return nil, fmt.Errorf("trace at ordinal %d: %w", e.ord, err)
		}
	}
	return td, nil
}

// storedTrace is the trace's bytes as the data file holds them: from
// format 9 on, with the span times (and from 10 the span IDs) the columns
// hold zeroed.
func (pr *pageReader) storedTrace(e indexEntry) ([]byte, error) {
	if int(e.page) != pr.cur && !pr.switchPage(int(e.page)) {
		p := pr.b.pages[e.page]
		if cap(pr.cbuf) < int(p.clen) {
			pr.cbuf = make([]byte, p.clen)
		}
		pr.cbuf = pr.cbuf[:p.clen]
		if _, err := pr.b.data.ReadAt(pr.cbuf, int64(p.off)); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read page %d: %w", e.page, err)
		}
		var out []byte
		var err error
		if pr.b.meta.PageCodec == pageCodecS2 {
			out, err = decodeS2Page(pr.cbuf, pr.buf, int(p.ulen))
		} else if err = checkFrameSize(pr.cbuf, int(p.ulen)); err == nil {
			out, err = pr.b.dec.DecodeAll(pr.cbuf, pr.buf[:0])
		}
		if err != nil {
			pr.cur = -1
			return nil, fmt.Errorf("decompress page %d: %w", e.page, err)
		}
		if len(out) != int(p.ulen) {
			pr.cur = -1
			return nil, fmt.Errorf("page %d: %d bytes, index says %d", e.page, len(out), p.ulen)
		}
		pr.buf, pr.cur = out, int(e.page)
		pr.rbuf = pr.rbuf[:0]
		pr.decoded += int64(p.clen)
		pagesDecoded.Add(1)
	}
	return pr.buf[e.off : e.off+e.len], nil
}
