package tracestore

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Per-block span columns (format version 3, docs/formats/tracestore.md):
// for every span of a block, in the order a decoder meets them, its start,
// duration, status, kind, name and its resource's service.name, grouped by
// the traces of one index chunk into one zstd frame. TraceQL metrics that
// read only those (traceql's ColumnsSuffice) run on the columns instead of
// decoding traces: tens of bytes per span instead of the whole span.
const (
	columnsFile  = "columns"
	columnsMagic = "NXTC"
	// columnsVersion 2 (format version 7) stores the start and duration
	// columns as byte planes (appendPlanes) instead of varints; version 3
	// (format version 8) adds attribute columns (attrcols.go); version 4
	// (format version 10) a root bit per span and each group's span IDs
	// (searchcols.go).
	columnsVersion = 4
)

// appendPlanes appends vals as byte(w) then w planes of len(vals) bytes,
// plane i holding byte i (little-endian) of every value, w the fewest
// bytes that hold the largest value. zstd compresses a plane of mostly
// random low bytes and a plane of small high bytes each near its entropy;
// interleaved varints (continuation bits, mixed byte roles) it did not.
func appendPlanes(b []byte, vals []uint64) []byte {
	var m uint64
	for _, v := range vals {
		m |= v
	}
	w := (bits.Len64(m) + 7) / 8
	b = append(b, byte(w))
	for i := 0; i < w; i++ {
		for _, v := range vals {
			b = append(b, byte(v>>(8*i)))
		}
	}
	return b
}

// readPlanes decodes n values written by appendPlanes into out.
func readPlanes(p []byte, n int, out []uint64) ([]uint64, bool) {
	if len(p) < 1 || p[0] > 8 || len(p) != 1+int(p[0])*n {
		return out, false
	}
	w := int(p[0])
	out = slices.Grow(out[:0], n)[:n]
	if w == 0 {
		clear(out)
		return out, true
	}
	// The first plane assigns (no clear pass); the low two planes, most
	// of the values here (times within a trace, codes), in one pass.
	p = p[1:]
	if w >= 2 {
		lo, hi := p[:n], p[n:2*n]
		for j := range out {
			out[j] = uint64(lo[j]) | uint64(hi[j])<<8
		}
	} else {
		for j, c := range p[:n] {
			out[j] = uint64(c)
		}
	}
	for i := 2; i < w; i++ {
		plane := p[i*n : (i+1)*n]
		sh := uint(8 * i)
		for j, c := range plane {
			out[j] |= uint64(c) << sh
		}
	}
	return out, true
}

// ColumnSpan is one span as the block columns hold it. Its fields are
// those of traceql.ColumnSpan, in the same order, so a caller converts
// one to the other with a plain conversion.
type ColumnSpan struct {
	Start, End uint64 // Unix ns
	Status     ptrace.StatusCode
	Kind       ptrace.SpanKind
	Name       string
	// Service is the resource's service.name, HasService false when the
	// resource has none.
	Service    string
	HasService bool
	// Root is set when the span has no parent span ID (format version 10
	// and later; false in older blocks' columns).
	Root bool
}

// SpansFunc receives the spans of one trace read from block columns, in the
// order a decoder of the trace meets them; attrs holds the values of the
// attributes SearchRequest.ColumnAttrs names, key-major: key k of span i
// at attrs[k*len(spans)+i]. spanID(i) reads the ID of spans[i] (it decodes
// the trace: call it rarely, e.g. for exemplars). spans and attrs are
// reused after the call returns. Returning false stops the search.
type SpansFunc func(id TraceID, spans []ColumnSpan, attrs []ColumnValue, spanID func(i int) (pcommon.SpanID, error)) (bool, error)

// colSpan is a span during column building.
type colSpan struct {
	start, end uint64
	status     uint64
	kind       uint64
	name       []byte
	svc        int // index into colWalker.svcs; -1 none
	spanID     [8]byte
	// root: the span's parent_span_id is absent or all zero (pdata's
	// ParentSpanID().IsEmpty()); idOff: where the 8 bytes of its span_id
	// lie in the walked bytes (-1: absent or not 8 bytes)
	root  bool
	idOff int32
	// startOff, endOff: where the 8 bytes of start_time_unix_nano and
	// end_time_unix_nano lie in the walked bytes (-1: absent)
	startOff, endOff int32
	// Format 12 (spanStripper): off is where the span's bytes start in
	// the walked bytes; timesAt where its first time field starts in
	// them, -1 when its fields are in neither layout a stripped record
	// restores; layout is then strippedAscending or strippedDescending.
	off, timesAt int32
	layout       byte
	// attributes (when colWalker.attrs): the span's in kvs[kvFrom:kvTo],
	// its resource's in kvs[res[r][0]:res[r][1]] (r = res; -1 none)
	kvFrom, kvTo int32
	res          int
	// nested (when colWalker.attrs): the span's events and links in
	// colWalker.nested[nFrom:nTo], for postings (postingScanner.fromWalk)
	nFrom, nTo int32
}

// colNested is the wire body of one Span.events (link false) or Span.links.
type colNested struct {
	body []byte
	link bool
}

// colWalker reads the column fields of every span of a TracesData from its
// wire bytes, in decoding order. irregular is set when a field cannot be
// represented in the columns (a service.name that is not a string, an
// out-of-range kind or status code, a message field repeated where
// protobuf would merge): such a trace is decoded instead of read from
// columns.
type colWalker struct {
	spans     []colSpan
	svcs      [][]byte
	irregular bool
	// attrs makes walk collect span and resource attributes (kvs, vbuf,
	// res) for attribute columns.
	attrs  bool
	top    int // cap of the walked bytes
	kvs    []colKV
	vbuf   []byte
	res    [][2]int32
	nested []colNested
}

// kv records one attribute KeyValue for attribute columns.
func (w *colWalker) kv(b []byte) error {
	key, val, hasVal, err := keyValue(b)
	if err != nil {
		return err
	}
	off := len(w.vbuf)
	var ok bool
	w.vbuf, ok = encodeAnyValue(w.vbuf, val, hasVal)
	w.kvs = append(w.kvs, colKV{key: key, voff: int32(off), vlen: int32(len(w.vbuf) - off), bad: !ok})
	return nil
}

func (w *colWalker) walk(td []byte) error {
	// Every slice the walk meets is a reslice of td, so a field's offset
	// in td is cap(td) minus the capacity left after it.
	w.top = cap(td)
	w.spans, w.svcs, w.irregular = w.spans[:0], w.svcs[:0], false
	w.kvs, w.vbuf, w.res, w.nested = w.kvs[:0], w.vbuf[:0], w.res[:0], w.nested[:0]
	it := pbIter{b: td}
	for it.next() {
		if it.num != 1 || it.typ != 2 { // TracesData.resource_spans
			continue
		}
		svc := -1
		resources := 0
		resIdx := -1
		if w.attrs {
			resIdx = len(w.res)
			w.res = append(w.res, [2]int32{int32(len(w.kvs)), 0})
		}
		rs := pbIter{b: it.body}
		for rs.next() {
			if rs.num != 1 || rs.typ != 2 { // ResourceSpans.resource
				continue
			}
			resources++
			found := false
			res := pbIter{b: rs.body}
			for res.next() {
				if res.num != 1 || res.typ != 2 { // Resource.attributes
					continue
				}
				if w.attrs {
					if err := w.kv(res.body); err != nil {
						return err
					}
				}
				if found {
					continue
				}
				key, val, hasVal, err := keyValue(res.body)
				if err != nil {
					return err
				}
				if string(key) != "service.name" {
					continue
				}
				found = true // pdata's Get returns the first one
				s, ok, err := stringValue(val, hasVal)
				if err != nil {
					return err
				}
				if !ok {
					w.irregular = true
					continue
				}
				w.svcs = append(w.svcs, s)
				svc = len(w.svcs) - 1
			}
			if res.err != nil {
				return res.err
			}
		}
		if rs.err != nil {
			return rs.err
		}
		if resources > 1 {
			w.irregular = true // protobuf merges repeated messages
		}
		if resIdx >= 0 {
			w.res[resIdx][1] = int32(len(w.kvs))
		}
		rs = pbIter{b: it.body}
		for rs.next() {
			if rs.num != 2 || rs.typ != 2 { // ResourceSpans.scope_spans
				continue
			}
			ss := pbIter{b: rs.body}
			for ss.next() {
				if ss.num == 2 && ss.typ == 2 { // ScopeSpans.spans
					if err := w.span(ss.body, svc, resIdx); err != nil {
						return err
					}
				}
			}
			if ss.err != nil {
				return ss.err
			}
		}
		if rs.err != nil {
			return rs.err
		}
	}
	return it.err
}

func (w *colWalker) span(b []byte, svc, res int) error {
	cs := colSpan{svc: svc, res: res, kvFrom: int32(len(w.kvs)), nFrom: int32(len(w.nested)), startOff: -1, endOff: -1, idOff: -1, root: true,
		off: int32(w.top - cap(b)), timesAt: -1}
	statuses := 0
	ls := layoutStart
	it := pbIter{b: b}
	for {
		at := len(b) - len(it.b)
		if !it.next() {
			break
		}
		if ls != layoutNone {
			if ls = nextLayoutState(ls, it.num, it.typ, len(b)-len(it.b)-at); ls == layoutTimes {
				cs.timesAt = int32(w.top - cap(b) + at)
			}
		}
		switch {
		case it.num == 9 && it.typ == 2 && w.attrs: // attributes
			if err := w.kv(it.body); err != nil {
				return err
			}
		case (it.num == 11 || it.num == 13) && it.typ == 2 && w.attrs: // events, links
			w.nested = append(w.nested, colNested{body: it.body, link: it.num == 13})
		case it.num == 2 && it.typ == 2: // span_id
			cs.spanID = [8]byte{}
			copy(cs.spanID[:], it.body)
			cs.idOff = -1
			if len(it.body) == 8 {
				cs.idOff = int32(w.top - cap(it.body))
			}
		case it.num == 4 && it.typ == 2: // parent_span_id
			cs.root = allZero(it.body)
		case it.num == 5 && it.typ == 2: // name
			cs.name = it.body
		case it.num == 6 && it.typ == 0: // kind
			cs.kind = it.v
		case it.num == 7 && it.typ == 1: // start_time_unix_nano
			cs.start = it.v
			cs.startOff = int32(w.top - cap(it.b) - 8)
		case it.num == 8 && it.typ == 1: // end_time_unix_nano
			cs.end = it.v
			cs.endOff = int32(w.top - cap(it.b) - 8)
		case it.num == 15 && it.typ == 2: // status
			statuses++
			cs.status = 0
			st := pbIter{b: it.body}
			for st.next() {
				if st.num == 3 && st.typ == 0 { // Status.code
					cs.status = st.v
				}
			}
			if st.err != nil {
				return st.err
			}
		}
	}
	if it.err != nil {
		return it.err
	}
	if statuses > 1 || cs.kind > 7 || cs.status > 3 {
		w.irregular = true
	}
	switch ls {
	case layoutAscEnd:
		cs.layout = strippedAscending
	case layoutDescEnd:
		cs.layout = strippedDescending
	default:
		cs.timesAt = -1
	}
	cs.kvTo = int32(len(w.kvs))
	cs.nTo = int32(len(w.nested))
	w.spans = append(w.spans, cs)
	return nil
}

// keyValue splits a KeyValue into its key and AnyValue bytes.
func keyValue(kv []byte) (key, val []byte, hasVal bool, err error) {
	it := pbIter{b: kv}
	for it.next() {
		switch {
		case it.num == 1 && it.typ == 2:
			key = it.body
		case it.num == 2 && it.typ == 2:
			val, hasVal = it.body, true
		}
	}
	return key, val, hasVal, it.err
}

// stringValue is the string of an AnyValue whose set field is string_value.
func stringValue(anyv []byte, has bool) ([]byte, bool, error) {
	if !has {
		return nil, false, nil
	}
	var s []byte
	vt := 0
	av := pbIter{b: anyv}
	for av.next() {
		switch n, t := av.num, av.typ; {
		case n == 1 && t == 2:
			vt, s = 1, av.body
		case n == 2 && t == 0, n == 3 && t == 0, n == 4 && t == 1, n >= 5 && n <= 7 && t == 2:
			vt = n
		}
	}
	return s, vt == 1, av.err
}

// colWriter builds a block's columns file, one group per index chunk.
type colWriter struct {
	f     *os.File
	w     *bufio.Writer
	off   uint64
	enc   *zstd.Encoder
	walk  colWalker
	table []byte
	n     int // groups written

	// the group being built
	traces            int
	minStart, maxEnd  uint64
	minDur, maxDur    uint64
	spans             int
	head, bits        []byte
	starts, durs      []uint64 // start - trace min; zig-zag duration
	nameIdx, svcIdx   []byte
	names, svcs       map[string]int
	nameList, svcList []string
	traceMins         []uint64
	traceHdr          []uint64 // n_spans<<1 | irregular
	raw, cbuf, sbuf   []byte
	cuts              []int
	irregular         int // traces of the group the columns cannot hold
	gotDur            bool
	ids               []byte // span IDs, 8 bytes per span (format 10)
	// idEnc, when set, compresses the span IDs (random: no level gains
	// anything, so the cheapest encoder at hand); enc otherwise.
	idEnc *zstd.Encoder

	// attribute columns (columns version 3): the group's columns by
	// scoped key ("span.x", "resource.x"), the block's key dictionary
	acols     map[string]*attrCol
	spareCols []*attrCol
	// spanMemo[i] is the column of the span key met last at attribute
	// position i (addAttrs); cleared with acols.
	spanMemo []*attrCol
	// src, when set, codes the trace's attributes instead of the walk
	// (compaction: colSource.putAttrs).
	src *colSource

	// Postings from the columns (a cut's block writer sets post): the
	// group's names, services, statuses, kinds and attribute codes are
	// turned into postings once per group and value (postGroup) instead
	// of once per span and value. postTrace is set while adding a trace
	// whose postings come from the columns; spanTrace maps each span of
	// the group to its trace's index in the group, -1 for traces whose
	// postings came from elsewhere; nameCodes, svcCodes are the spans'
	// dictionary indexes (svcCodes: noService without one).
	post                *blockWriter
	postTrace           bool
	spanTrace           []int32
	nameCodes, svcCodes []uint64
	colList             []*attrCol
	keys                []string
	keyIdx              map[string]int
	kbuf, araw          []byte
	arefs               []byte
	resAt               int
	resCodes            []resCode
}

func newColWriter(dir string, enc *zstd.Encoder) (*colWriter, error) {
	f, err := os.Create(filepath.Join(dir, columnsFile))
	if err != nil {
		return nil, err
	}
	cw := &colWriter{f: f, w: bufio.NewWriterSize(f, 256<<10), enc: enc,
		names: map[string]int{}, svcs: map[string]int{},
		acols: map[string]*attrCol{}, keyIdx: map[string]int{}}
	cw.walk.attrs = true
	hdr := append([]byte(columnsMagic), columnsVersion)
	if _, err := cw.w.Write(hdr); err != nil {
		_ = f.Close()
		return nil, err
	}
	cw.off = uint64(len(hdr))
	cw.resetGroup()
	return cw, nil
}

func (cw *colWriter) resetGroup() {
	cw.traces, cw.spans, cw.gotDur, cw.irregular = 0, 0, false, 0
	cw.minStart, cw.maxEnd = ^uint64(0), 0
	cw.minDur, cw.maxDur = 0, 0
	cw.starts, cw.durs, cw.bits = cw.starts[:0], cw.durs[:0], cw.bits[:0]
	cw.nameIdx, cw.svcIdx = cw.nameIdx[:0], cw.svcIdx[:0]
	clear(cw.names)
	clear(cw.svcs)
	cw.nameList, cw.svcList = cw.nameList[:0], cw.svcList[:0]
	cw.traceMins, cw.traceHdr = cw.traceMins[:0], cw.traceHdr[:0]
	cw.ids = cw.ids[:0]
	cw.spanTrace, cw.nameCodes, cw.svcCodes = cw.spanTrace[:0], cw.nameCodes[:0], cw.svcCodes[:0]
}

// add records one trace (all its stored bytes) with its index times.
func (cw *colWriter) add(data []byte, minStart, maxEnd uint64) error {
	if err := cw.walk.walk(data); err != nil {
		return err
	}
	cw.addWalked(minStart, maxEnd)
	return nil
}

// addWalked records the trace cw.walk holds: walked from its bytes (add)
// or filled from a source block's columns (compaction, colSource.fill).
func (cw *colWriter) addWalked(minStart, maxEnd uint64) {
	cw.traces++
	cw.minStart = min(cw.minStart, minStart)
	cw.maxEnd = max(cw.maxEnd, maxEnd)
	if cw.walk.irregular {
		cw.irregular++
		cw.traceHdr = append(cw.traceHdr, 1)
		cw.traceMins = append(cw.traceMins, 0)
		return
	}
	tmin := ^uint64(0)
	for i := range cw.walk.spans {
		tmin = min(tmin, cw.walk.spans[i].start)
	}
	if len(cw.walk.spans) == 0 {
		tmin = 0
	}
	cw.traceHdr = append(cw.traceHdr, uint64(len(cw.walk.spans))<<1)
	cw.traceMins = append(cw.traceMins, tmin)
	if cw.post != nil {
		t := int32(-1)
		if cw.postTrace {
			t = int32(cw.traces - 1)
		}
		for range cw.walk.spans {
			cw.spanTrace = append(cw.spanTrace, t)
		}
	}
	if cw.src != nil {
		cw.src.putAttrs(cw, cw.spans)
	} else {
		cw.addAttrs(cw.spans)
	}
	for i := range cw.walk.spans {
		s := &cw.walk.spans[i]
		cw.starts = append(cw.starts, s.start-tmin)
		d := int64(s.end - s.start)
		cw.durs = append(cw.durs, uint64(d<<1)^uint64(d>>63))
		ud := uint64(max(d, 0))
		if !cw.gotDur {
			cw.minDur, cw.maxDur, cw.gotDur = ud, ud, true
		} else {
			cw.minDur, cw.maxDur = min(cw.minDur, ud), max(cw.maxDur, ud)
		}
		bits := byte(s.status) | byte(s.kind)<<2
		if s.svc >= 0 {
			bits |= 1 << 5
		}
		if s.root {
			bits |= 1 << 6 // columns version 4 (format 10)
		}
		cw.bits = append(cw.bits, bits)
		cw.ids = append(cw.ids, s.spanID[:]...)
		ni, ok := cw.names[string(s.name)]
		if !ok {
			ni = len(cw.nameList)
			cw.names[string(s.name)] = ni
			cw.nameList = append(cw.nameList, string(s.name))
		}
		cw.nameIdx = binary.AppendUvarint(cw.nameIdx, uint64(ni))
		si := 0
		if s.svc >= 0 {
			sv := cw.walk.svcs[s.svc]
			var ok bool
			if si, ok = cw.svcs[string(sv)]; !ok {
				si = len(cw.svcList)
				cw.svcs[string(sv)] = si
				cw.svcList = append(cw.svcList, string(sv))
			}
		}
		cw.svcIdx = binary.AppendUvarint(cw.svcIdx, uint64(si))
		if cw.post != nil {
			cw.nameCodes = append(cw.nameCodes, uint64(ni))
			sc := uint64(noService)
			if s.svc >= 0 {
				sc = uint64(si)
			}
			cw.svcCodes = append(cw.svcCodes, sc)
		}
		cw.spans++
	}
}

// flushGroup writes the group built so far as one zstd frame.
func (cw *colWriter) flushGroup() error {
	if cw.traces == 0 {
		return nil
	}
	if cw.post != nil {
		cw.post.postGroup(cw)
	}
	base := ^uint64(0)
	for i, h := range cw.traceHdr {
		if h&1 == 0 {
			base = min(base, cw.traceMins[i])
		}
	}
	if base == ^uint64(0) {
		base = 0
	}
	r := cw.raw[:0]
	r = binary.AppendUvarint(r, uint64(cw.traces))
	r = binary.AppendUvarint(r, base)
	for i, h := range cw.traceHdr {
		r = binary.AppendUvarint(r, h)
		if h&1 == 0 {
			r = binary.AppendUvarint(r, cw.traceMins[i]-base)
		}
	}
	r = binary.AppendUvarint(r, uint64(len(cw.nameList)))
	for _, s := range cw.nameList {
		r = appendString(r, s)
	}
	r = binary.AppendUvarint(r, uint64(len(cw.svcList)))
	for _, s := range cw.svcList {
		r = appendString(r, s)
	}
	// Sections: each plane and column body starts one (compressed on its
	// own, so each gets its own entropy table; the length prefixes ride at
	// the end of the section before).
	cuts := cw.cuts[:0]
	for _, vals := range [][]uint64{cw.starts, cw.durs} {
		cw.head = appendPlanes(cw.head[:0], vals)
		r = binary.AppendUvarint(r, uint64(len(cw.head)))
		r = append(r, cw.head[0])
		for i := 0; i < int(cw.head[0]); i++ {
			cuts = append(cuts, len(r))
			r = append(r, cw.head[1+i*len(vals):1+(i+1)*len(vals)]...)
		}
	}
	for _, col := range [][]byte{cw.bits, cw.nameIdx, cw.svcIdx} {
		r = binary.AppendUvarint(r, uint64(len(col)))
		cuts = append(cuts, len(r))
		r = append(r, col...)
	}
	cw.raw, cw.cuts = r, cuts
	cw.cbuf = binary.AppendUvarint(cw.cbuf[:0], uint64(len(cuts)+1))
	from := 0
	for i := 0; i <= len(cuts); i++ {
		to := len(r)
		if i < len(cuts) {
			to = cuts[i]
		}
		cw.sbuf = cw.enc.EncodeAll(r[from:to], cw.sbuf[:0])
		cw.cbuf = binary.AppendUvarint(cw.cbuf, uint64(len(cw.sbuf)))
		cw.cbuf = append(cw.cbuf, cw.sbuf...)
		from = to
	}
	clen := len(cw.cbuf)
	cw.cbuf, cw.arefs = cw.appendAttrFrames(cw.cbuf, cw.arefs[:0])
	// Span IDs (format 10): their own zstd frame after the attribute
	// columns, read only by searches that answer from the columns and by
	// readers restoring the data file's zeroed IDs.
	idFrom := len(cw.cbuf)
	idEnc := cw.enc
	if cw.idEnc != nil {
		idEnc = cw.idEnc
	}
	cw.cbuf = idEnc.EncodeAll(cw.ids, cw.cbuf)
	cw.arefs = binary.AppendUvarint(cw.arefs, uint64(len(cw.cbuf)-idFrom))
	if _, err := cw.w.Write(cw.cbuf); err != nil {
		return err
	}
	t := cw.table
	t = binary.AppendUvarint(t, cw.off)
	t = binary.AppendUvarint(t, uint64(clen))
	t = binary.AppendUvarint(t, uint64(cw.traces))
	t = binary.AppendUvarint(t, uint64(cw.spans))
	t = binary.AppendUvarint(t, cw.minStart)
	t = binary.AppendUvarint(t, cw.maxEnd-min(cw.maxEnd, cw.minStart))
	t = binary.AppendUvarint(t, cw.minDur)
	t = binary.AppendUvarint(t, cw.maxDur)
	t = binary.AppendUvarint(t, uint64(cw.irregular)) // version 2 (format 7)
	t = append(t, cw.arefs...)                        // version 3 (format 8)
	cw.table = t
	cw.off += uint64(len(cw.cbuf))
	cw.n++
	cw.resetGroup()
	return nil
}

// finish writes the group table and its CRC, syncs and closes the file.
func (cw *colWriter) finish(groupTraces int) error {
	if err := cw.flushGroup(); err != nil {
		return err
	}
	var t []byte
	t = binary.AppendUvarint(t, uint64(groupTraces))
	t = binary.AppendUvarint(t, uint64(cw.n))
	t = binary.AppendUvarint(t, uint64(len(cw.keys)))
	for _, k := range cw.keys {
		t = appendString(t, k)
	}
	t = append(t, cw.table...)
	tableOff := cw.off
	t = binary.LittleEndian.AppendUint64(t, tableOff)
	t = binary.LittleEndian.AppendUint32(t, crc32.Checksum(t, castagnoli))
	if _, err := cw.w.Write(t); err != nil {
		return err
	}
	if err := cw.w.Flush(); err != nil {
		return err
	}
	if err := cw.f.Sync(); err != nil {
		return err
	}
	err := cw.f.Close()
	cw.f = nil
	return err
}

func (cw *colWriter) abort() {
	if cw != nil && cw.f != nil {
		_ = cw.f.Close()
		cw.f = nil
	}
}

// colGroupRef locates one group of a columns file.
type colGroupRef struct {
	off              uint64
	clen             int
	traces, spans    int
	minStart, maxEnd uint64
	minDur, maxDur   uint64
	// irregular counts the group's traces without columns (their spans
	// are not in the duration bounds); -1 when unknown (before format 7).
	irregular int
	// attrRefs holds the group's attribute column entries (format 8) as
	// written, parsed by attrs when a query names a key.
	attrRefs []byte
	// idOff, idLen locate the group's span IDs (format 10; idLen 0 before).
	idOff uint64
	idLen int
}

// attrs locates the group's attribute columns; the entries were checked
// when the table was read.
func (g *colGroupRef) attrs(out []colAttrRef) []colAttrRef {
	out = out[:0]
	r := &byteReader{b: g.attrRefs}
	at := g.off + uint64(g.clen)
	for n := r.count(); n > 0 && r.err == nil; n-- {
		a := colAttrRef{key: int(r.uvarint()), clen: int(r.uvarint()), off: at}
		at += uint64(a.clen)
		out = append(out, a)
	}
	return out
}

// colTable is a columns file's group table, read per query (O(groups)).
type colTable struct {
	groupTraces int
	groups      []colGroupRef
	// keys is the block's attribute key dictionary (format 8).
	keys []string
	// want holds, for each attribute a query asked for
	// (SearchRequest.ColumnAttrs), its index in keys or -1 when no span
	// of the block carries it; nil when none was asked for.
	want []int
}

// wantAttrs sets which attribute columns readColGroup decodes.
func (t *colTable) wantAttrs(keys []string) {
	t.want = t.want[:0]
	for _, k := range keys {
		t.want = append(t.want, slices.Index(t.keys, k))
	}
}

var errCorruptColumns = errors.New("corrupt columns")

// readColTable reads the group table from the end of the columns file.
func (b *block) readColTable() (*colTable, error) {
	st, err := b.cols.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size < int64(len(columnsMagic))+1+12 {
		return nil, errCorruptColumns
	}
	var tail [12]byte
	if _, err := b.cols.ReadAt(tail[:], size-12); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	off := binary.LittleEndian.Uint64(tail[:8])
	if off < 5 || off > uint64(size-12) { // unsigned: a huge offset must not wrap negative
		return nil, errCorruptColumns
	}
	buf := make([]byte, size-int64(off))
	if _, err := b.cols.ReadAt(buf, int64(off)); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	body, sum := buf[:len(buf)-4], binary.LittleEndian.Uint32(buf[len(buf)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("%w: table checksum mismatch", errCorruptColumns)
	}
	r := &byteReader{b: body[:len(body)-8]}
	t := &colTable{groupTraces: int(r.uvarint())}
	n := r.count()
	if r.err == nil && (t.groupTraces <= 0 || (b.n+t.groupTraces-1)/t.groupTraces != n) {
		return nil, fmt.Errorf("%w: %d groups for %d traces", errCorruptColumns, n, b.n)
	}
	if b.meta.Version >= 8 {
		t.keys = make([]string, r.count())
		for i := range t.keys {
			t.keys[i] = string(r.bytes(int(r.uvarint())))
		}
	}
	t.groups = make([]colGroupRef, n)
	for i := 0; i < n && r.err == nil; i++ {
		g := &t.groups[i]
		g.off, g.clen = r.uvarint(), int(r.uvarint())
		g.traces, g.spans = int(r.uvarint()), int(r.uvarint())
		g.minStart = r.uvarint()
		g.maxEnd = g.minStart + r.uvarint()
		g.minDur, g.maxDur = r.uvarint(), r.uvarint()
		g.irregular = -1
		if b.meta.Version >= 7 {
			g.irregular = int(r.uvarint())
		}
		// A group's span count sizes its decode buffers and its int32
		// offsets: bound it by the block's (meta) and by int32.
		badSpans := g.spans < 0 || g.spans > math.MaxInt32 || (b.meta.Spans > 0 && g.spans > b.meta.Spans)
		if badSpans || g.off > off || uint64(g.clen) > off-g.off || g.traces != min(t.groupTraces, b.n-i*t.groupTraces) {
			return nil, fmt.Errorf("%w: group %d", errCorruptColumns, i)
		}
		if b.meta.Version >= 8 {
			from := r.b
			na := r.count()
			at := g.off + uint64(g.clen)
			for j := 0; j < na && r.err == nil; j++ {
				key, clen := r.uvarint(), r.uvarint()
				if key >= uint64(len(t.keys)) || at > off || clen > off-at {
					return nil, fmt.Errorf("%w: group %d attribute column %d", errCorruptColumns, i, j)
				}
				at += clen
			}
			g.attrRefs = from[:len(from)-len(r.b)]
			if b.meta.Version >= 10 {
				idLen := r.uvarint()
				if at > off || idLen > off-at || idLen == 0 {
					return nil, fmt.Errorf("%w: group %d span IDs", errCorruptColumns, i)
				}
				g.idOff, g.idLen = at, int(idLen)
			}
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: %v", errCorruptColumns, r.err)
	}
	return t, nil
}

// colGroup is one decoded group: the spans of its traces, in ordinal
// order. Trace j's spans are spans[first[j]:first[j+1]]; an irregular
// trace has none and irregular[j] set.
type colGroup struct {
	index     int
	first     []int32
	irregular []bool
	spans     []ColumnSpan
	raw, cbuf []byte
	// format version 7: the start and duration planes decoded
	starts, durs []uint64
	// format version 8: the attribute columns colTable.want names, each
	// over every span of the group (attrs[k][span]); attrBad[j] is set
	// when trace j must be decoded for them (a value not representable,
	// or a key without a column in this group).
	attrs   [][]ColumnValue
	refs    []colAttrRef
	attrBad []bool
	araw    []byte
	codes   []uint64
	// keepCodes (compaction's colSource) keeps each attribute column's
	// dictionary codes in attrCodes[k][span] too.
	keepCodes bool
	attrCodes [][]uint64
	// buffers reused between groups
	mins        []uint64
	names, svcs []string
}

// readColGroup decodes group gi of t into g (reusing its buffers).
// colGroupsDecoded counts column groups decoded, process-wide (tests).
var colGroupsDecoded atomic.Int64

func (b *block) readColGroup(t *colTable, gi int, g *colGroup) error {
	colGroupsDecoded.Add(1)
	ref := &t.groups[gi]
	if cap(g.cbuf) < ref.clen {
		g.cbuf = make([]byte, ref.clen)
	}
	g.cbuf = g.cbuf[:ref.clen]
	if _, err := b.cols.ReadAt(g.cbuf, int64(ref.off)); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read column group %d: %w", gi, err)
	}
	var raw []byte
	var err error
	if b.meta.Version >= 7 {
		// Sections, each its own zstd frame, concatenated.
		raw = g.raw[:0]
		cr := &byteReader{b: g.cbuf}
		ns := cr.count()
		for i := 0; i < ns && cr.err == nil; i++ {
			sec := cr.bytes(int(cr.uvarint()))
			if cr.err != nil {
				break
			}
			if raw, err = decodeFrames(b.dec, sec, raw); err != nil {
				return fmt.Errorf("%w: group %d: %v", errCorruptColumns, gi, err)
			}
		}
		if cr.err != nil || len(cr.b) != 0 {
			return fmt.Errorf("%w: group %d: sections", errCorruptColumns, gi)
		}
	} else if raw, err = decodeFrames(b.dec, g.cbuf, g.raw[:0]); err != nil {
		return fmt.Errorf("%w: group %d: %v", errCorruptColumns, gi, err)
	}
	g.raw = raw
	g.index = -1
	r := &byteReader{b: raw}
	n := int(r.uvarint())
	base := r.uvarint()
	if r.err == nil && n != ref.traces {
		return fmt.Errorf("%w: group %d holds %d traces, table says %d", errCorruptColumns, gi, n, ref.traces)
	}
	g.first = append(g.first[:0], 0)
	g.irregular = g.irregular[:0]
	mins := g.mins[:0]
	total := 0
	for j := 0; j < n && r.err == nil; j++ {
		h := r.uvarint()
		if h&1 == 1 {
			g.irregular = append(g.irregular, true)
			mins = append(mins, 0)
		} else {
			g.irregular = append(g.irregular, false)
			mins = append(mins, base+r.uvarint())
			if h>>1 > uint64(ref.spans-total) { // before adding: no overflow
				return fmt.Errorf("%w: group %d: more spans than the table says", errCorruptColumns, gi)
			}
			total += int(h >> 1)
		}
		if total > ref.spans {
			return fmt.Errorf("%w: group %d: more spans than the table says", errCorruptColumns, gi)
		}
		g.first = append(g.first, int32(total))
	}
	g.mins = mins
	nn := r.count()
	// The dictionaries reuse the previous group's strings where they are
	// the same (most groups name the same spans and services): no
	// allocation, less garbage for a search reading thousands of groups.
	names := slices.Grow(g.names[:0], nn)[:nn]
	for i := range names {
		if bs := r.bytes(int(r.uvarint())); names[i] != string(bs) {
			names[i] = string(bs)
		}
	}
	ns := r.count()
	svcs := slices.Grow(g.svcs[:0], ns)[:ns]
	for i := range svcs {
		if bs := r.bytes(int(r.uvarint())); svcs[i] != string(bs) {
			svcs[i] = string(bs)
		}
	}
	g.names, g.svcs = names, svcs
	var cols [5]byteReader
	for c := range cols {
		cols[c] = byteReader{b: r.bytes(int(r.uvarint()))}
	}
	if r.err != nil {
		return fmt.Errorf("%w: group %d: %v", errCorruptColumns, gi, r.err)
	}
	planes := b.meta.Version >= 7
	if planes {
		var ok1, ok2 bool
		g.starts, ok1 = readPlanes(cols[0].b, total, g.starts)
		g.durs, ok2 = readPlanes(cols[1].b, total, g.durs)
		if !ok1 || !ok2 {
			return fmt.Errorf("%w: group %d: start or duration column", errCorruptColumns, gi)
		}
		cols[0].b, cols[1].b = nil, nil
	}
	if cap(g.spans) < total {
		g.spans = make([]ColumnSpan, total)
	}
	g.spans = g.spans[:total]
	k := 0
	for j := 0; j < n; j++ {
		tmin := mins[j]
		for ; k < int(g.first[j+1]); k++ {
			s := &g.spans[k]
			if planes {
				s.Start = tmin + g.starts[k]
				z := g.durs[k]
				s.End = s.Start + uint64(int64(z>>1)^-int64(z&1))
			} else {
				s.Start = tmin + cols[0].uvarint()
				d, m := binary.Varint(cols[1].b)
				if m <= 0 {
					return fmt.Errorf("%w: group %d: duration column", errCorruptColumns, gi)
				}
				cols[1].b = cols[1].b[m:]
				s.End = s.Start + uint64(d)
			}
			if bb := cols[2].b; len(bb) > 0 {
				bits := bb[0]
				cols[2].b = bb[1:]
				s.Status = ptrace.StatusCode(bits & 3)
				s.Kind = ptrace.SpanKind(bits >> 2 & 7)
				s.HasService = bits&(1<<5) != 0
				s.Root = bits&(1<<6) != 0
			} else {
				cols[2].err = errCorruptColumns
			}
			// dictionary indexes: one byte each below 128 names/services
			var ni, si uint64
			if nb := cols[3].b; len(nb) > 0 && nb[0] < 0x80 {
				ni, cols[3].b = uint64(nb[0]), nb[1:]
			} else {
				ni = cols[3].uvarint()
			}
			if sb := cols[4].b; len(sb) > 0 && sb[0] < 0x80 {
				si, cols[4].b = uint64(sb[0]), sb[1:]
			} else {
				si = cols[4].uvarint()
			}
			if ni >= uint64(len(names)) || (s.HasService && si >= uint64(len(svcs))) {
				return fmt.Errorf("%w: group %d: dictionary index out of range", errCorruptColumns, gi)
			}
			s.Name = names[ni]
			s.Service = ""
			if s.HasService {
				s.Service = svcs[si]
			}
		}
	}
	for c := range cols {
		if cols[c].err != nil || len(cols[c].b) != 0 {
			return fmt.Errorf("%w: group %d: column %d", errCorruptColumns, gi, c)
		}
	}
	if err := b.readGroupAttrs(t, gi, g, total); err != nil {
		return err
	}
	g.index = gi
	return nil
}

// readGroupAttrs decodes the attribute columns t.want names for group gi.
func (b *block) readGroupAttrs(t *colTable, gi int, g *colGroup, total int) error {
	nt := len(g.irregular)
	g.attrBad = slices.Grow(g.attrBad[:0], nt)[:nt]
	clear(g.attrBad)
	if len(t.want) == 0 {
		g.attrs = g.attrs[:0]
		return nil
	}
	for len(g.attrs) < len(t.want) {
		g.attrs = append(g.attrs, nil)
	}
	g.attrs = g.attrs[:len(t.want)]
	if g.keepCodes {
		for len(g.attrCodes) < len(t.want) {
			g.attrCodes = append(g.attrCodes, nil)
		}
		g.attrCodes = g.attrCodes[:len(t.want)]
	}
	ref := &t.groups[gi]
	g.refs = ref.attrs(g.refs)
	for k, key := range t.want {
		j := -1
		if key >= 0 {
			j = slices.IndexFunc(g.refs, func(a colAttrRef) bool { return a.key == key })
		}
		switch {
		case j < 0: // no span of the group carries the key
			g.attrs[k] = slices.Grow(g.attrs[k][:0], total)[:total]
			clear(g.attrs[k])
			g.clearCodes(k, total)
		case g.refs[j].clen == 0: // no column: decode every trace
			for i := range g.attrBad {
				g.attrBad[i] = true
			}
			g.attrs[k] = slices.Grow(g.attrs[k][:0], total)[:total]
			clear(g.attrs[k])
			g.clearCodes(k, total)
		default:
			var err error
			if g.attrs[k], err = b.readAttrColumn(g.refs[j], gi, total, g, g.attrs[k]); err != nil {
				return err
			}
			if g.keepCodes {
				g.attrCodes[k] = append(g.attrCodes[k][:0], g.codes...)
			}
			for tj := 0; tj < nt; tj++ {
				for _, v := range g.attrs[k][g.first[tj]:g.first[tj+1]] {
					if v.Kind == colValueBad {
						g.attrBad[tj] = true
						break
					}
				}
			}
		}
	}
	return nil
}

// clearCodes sets key k's kept codes to absent for n spans.
func (g *colGroup) clearCodes(k, n int) {
	if g.keepCodes {
		g.attrCodes[k] = slices.Grow(g.attrCodes[k][:0], n)[:n]
		clear(g.attrCodes[k])
	}
}

// traceAttrs appends trace j's attribute values, key-major (value of key k
// on span i at k*n+i), to out.
func (g *colGroup) traceAttrs(j int, out []ColumnValue) []ColumnValue {
	out = out[:0]
	from, to := g.first[j], g.first[j+1]
	if len(g.attrs) == 1 {
		// One key: the column's own slice, key-major already, not copied.
		// Capped, so out[:0] of it on the next call (same query, so again
		// one key) never appends into the column.
		return g.attrs[0][from:to:to]
	}
	for _, col := range g.attrs {
		out = append(out, col[from:to]...)
	}
	return out
}

// spanIDAt returns the span ID of the i-th span of a trace's stored bytes,
// counted in decoding order (the columns' order).
func spanIDAt(data []byte, i int) (pcommon.SpanID, error) {
	var w colWalker
	if err := w.walk(data); err != nil {
		return pcommon.SpanID{}, err
	}
	if i < 0 || i >= len(w.spans) {
		return pcommon.SpanID{}, fmt.Errorf("span %d of %d", i, len(w.spans))
	}
	return pcommon.SpanID(w.spans[i].spanID), nil
}

// scanColumns is Search over one block for a request with Spans: the
// candidates next yields, in ordinal order, go to req.Spans from the
// columns when the trace lives in this block only and the columns
// represent it, else they are decoded (as the workers would) and go to
// emit. admit applies the limits to a column trace of raw stored bytes.
// It runs on the caller's goroutine: reading columns costs a fraction of
// handing traces to workers.
func (s *snapshot) scanColumns(ctx context.Context, b *block, req *SearchRequest, next func() (searchCand, bool, error),
	emit func(searchResult) (bool, error), admit func(id TraceID, raw int64) (skip, more bool), spans SpansFunc) error {
	t, err := b.queryColTable(req.ColumnAttrs)
	if err != nil {
		return fmt.Errorf("block %s: %w", b.meta.ULID, err)
	}
	var attrs []ColumnValue
	pr := b.pooledPageReader()
	defer pr.free()
	var pj *projector
	if req.Project != nil {
		pj = &projector{p: req.Project}
	}
	var u ptrace.ProtoUnmarshaler
	var cur, c searchCand // c outside the loop: declared inside, it escaped (one allocation per candidate)
	var ids, idbuf []byte
	idsGroup := -1
	g := &colGroup{index: -1}
	spanID := func(i int) (pcommon.SpanID, error) {
		if b.meta.Version >= 10 && g.index >= 0 {
			// format 10: the IDs are in the columns (one frame per group)
			gi := g.index
			k := int(g.first[cur.ord-gi*t.groupTraces]) + i
			if i < 0 || k >= int(g.first[cur.ord-gi*t.groupTraces+1]) {
				return pcommon.SpanID{}, fmt.Errorf("span %d of trace %x", i, cur.id[:])
			}
			if idsGroup != gi {
				var err error
				idsGroup = -1
				if ids, idbuf, err = b.readSpanIDs(&t.groups[gi], gi, ids, idbuf); err != nil {
					return pcommon.SpanID{}, fmt.Errorf("block %s: %w", b.meta.ULID, err)
				}
				idsGroup = gi
			}
			return pcommon.SpanID(ids[8*k : 8*k+8]), nil
		}
		data, err := pr.trace(cur.id, cur.e)
		if err != nil {
			return pcommon.SpanID{}, fmt.Errorf("block %s: %w", b.meta.ULID, err)
		}
		return spanIDAt(data, i)
	}
	pf := &colPrefetch{b: b, t: t, depth: searchWorkers(s.db.opts.SearchWorkers) - 1}
	if req.SpansRoot {
		// A search answered from the columns builds answers here, and
		// decoding groups ahead on other goroutines cost CPU without
		// shortening it: 10M spans, no limit, 2.5-2.7 CPU-s / 1.7-1.8 s
		// wall with the prefetch, 1.8-1.9 CPU-s / 1.5-1.7 s without
		// (bench/README.md ## traces, ADR 0110).
		pf.depth = 0
	}
	pf.sem = make(chan struct{}, max(1, pf.depth))
	defer pf.wg.Wait()
	// candidate pulls the next candidate whose group may hold a match,
	// dropping those of groups MinSpanDuration rules out.
	candidate := func() (searchCand, bool, error) {
		for {
			c, ok, err := next()
			if err != nil || !ok {
				return c, ok, err
			}
			gi := c.ord / t.groupTraces
			if ref := &t.groups[gi]; req.MinSpanDuration > 0 && ref.irregular == 0 &&
				ref.maxDur < uint64(req.MinSpanDuration) {
				// No span of the group lasts long enough and every trace
				// of it is in the columns. A trace with parts elsewhere
				// can only match through a longer span there, and is met
				// through that part (ADR 0124).
				continue
			}
			return c, true, nil
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var ok bool
		var err error
		if pf.depth > 0 {
			c, ok, err = pf.pull(candidate)
		} else {
			c, ok, err = candidate()
		}
		if err != nil || !ok {
			return err
		}
		cur = c
		gi := c.ord / t.groupTraces
		if g.index != gi {
			if pf.depth > 0 {
				ng, err := pf.group(gi, g)
				if err != nil {
					return fmt.Errorf("block %s: %w", b.meta.ULID, err)
				}
				g = ng
			} else if err := b.readColGroup(t, gi, g); err != nil {
				return fmt.Errorf("block %s: %w", b.meta.ULID, err)
			}
		}
		j := c.ord - gi*t.groupTraces
		shared := false
		decode := g.irregular[j] || g.attrBad[j]
		if !decode {
			attrs = g.traceAttrs(j, attrs) // for Match and spans below
			if req.Match != nil && !req.Match(c.id, g.spans[g.first[j]:g.first[j+1]], attrs) {
				// No span of this part matches: dropped without looking
				// for the trace's other parts, which are met through the
				// part that matches (Match's contract, ADR 0124).
				if _, more := admit(c.id, int64(c.e.len)); !more {
					return nil
				}
				continue
			}
			if shared, err = s.elsewhere(c.id, b); err != nil {
				return err
			}
		}
		if decode || shared {
			own, err := pr.trace(c.id, c.e)
			if err != nil {
				return fmt.Errorf("block %s: %w", b.meta.ULID, err)
			}
			data, shared, err := s.complete(ctx, c.id, own, b)
			if err != nil {
				return err
			}
			r := searchResult{id: c.id, raw: traceBytes(c.e, data, shared), shared: shared}
			if lim := req.Limits.MaxTraceBytes; lim > 0 && r.raw > lim {
				r.skip = true
			} else {
				if pj != nil {
					if data, err = pj.apply(data); err != nil {
						return fmt.Errorf("decode trace %x: %w", c.id[:], err)
					}
				}
				if r.td, err = u.UnmarshalTraces(data); err != nil {
					return fmt.Errorf("decode trace %x: %w", c.id[:], err)
				}
			}
			more, err := emit(r)
			if err != nil || !more {
				return err
			}
			continue
		}
		skip, more := admit(c.id, int64(c.e.len))
		if !more {
			return nil
		}
		if skip {
			continue
		}
		more, err = spans(c.id, g.spans[g.first[j]:g.first[j+1]], attrs, spanID)
		if err != nil || !more {
			return err
		}
	}
}

// colPrefetch decodes the column groups of the next candidates on up to
// depth goroutines while the caller's goroutine hands the current group's
// traces over: candidates are pulled ahead (in order) until depth groups
// beyond the current one are in flight, and handed back in the same order,
// so results, limits and early stops are those of the sequential scan.
type colPrefetch struct {
	b     *block
	t     *colTable
	depth int
	sem   chan struct{}
	wg    sync.WaitGroup
	queue []searchCand
	qhead int // queue[qhead:] are the candidates not yet handed back
	futs  []*groupFuture
	done  bool // next() returned its last candidate or an error
	err   error
	free  []*colGroup
}

type groupFuture struct {
	gi   int
	g    *colGroup
	err  error
	done chan struct{}
}

// pull returns the next candidate, first pulling ahead and starting the
// decode of the groups it meets.
func (p *colPrefetch) pull(next func() (searchCand, bool, error)) (searchCand, bool, error) {
	for !p.done && len(p.futs) <= p.depth {
		c, ok, err := next()
		if err != nil || !ok {
			p.done, p.err = true, err
			break
		}
		p.queue = append(p.queue, c)
		gi := c.ord / p.t.groupTraces
		if n := len(p.futs); n == 0 || p.futs[n-1].gi != gi {
			p.futs = append(p.futs, p.start(gi))
		}
	}
	if p.qhead == len(p.queue) {
		return searchCand{}, false, p.err
	}
	c := p.queue[p.qhead]
	if p.qhead++; p.qhead >= 64 && p.qhead*2 >= len(p.queue) {
		// move the rest to the front and reuse the slice (slicing the
		// head off made every append reallocate)
		n := copy(p.queue, p.queue[p.qhead:])
		p.queue, p.qhead = p.queue[:n], 0
	}
	return c, true, nil
}

func (p *colPrefetch) start(gi int) *groupFuture {
	f := &groupFuture{gi: gi, done: make(chan struct{})}
	if n := len(p.free); n > 0 {
		f.g, p.free = p.free[n-1], p.free[:n-1]
	} else {
		f.g = &colGroup{index: -1}
	}
	p.sem <- struct{}{}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f.err = p.b.readColGroup(p.t, gi, f.g)
		<-p.sem
		close(f.done)
	}()
	return f
}

// group waits for group gi's decode (started by pull) and returns it; cur,
// the group done with, is kept for reuse.
func (p *colPrefetch) group(gi int, cur *colGroup) (*colGroup, error) {
	for len(p.futs) > 0 && p.futs[0].gi != gi {
		<-p.futs[0].done // a group whose candidates were all consumed
		p.free = append(p.free, p.futs[0].g)
		p.futs = p.futs[1:]
	}
	if len(p.futs) == 0 {
		return nil, fmt.Errorf("column group %d not prefetched", gi)
	}
	f := p.futs[0]
	p.futs = p.futs[1:]
	<-f.done
	if f.err != nil {
		return nil, f.err
	}
	p.free = append(p.free, cur)
	return f.g, nil
}
