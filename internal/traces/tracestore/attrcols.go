package tracestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Attribute columns (format version 8, columns version 3, ADR 0100): for
// each column group and each span or resource attribute key that a span of
// the group carries, one column of per-span codes into a dictionary of the
// group's values of that key, in its own zstd sections right after the
// group's span columns. A query reads only the columns of the keys it
// names (SearchRequest.ColumnAttrs).
// maxAttrDict is the most distinct values one key's column holds in one
// group; a key with more (a URL, an ID) gets no column there and a query
// naming it decodes that group's traces (a variable for tests).
var maxAttrDict = 256

const (
	// maxAttrValueLen is the longest string value a column holds; a span
	// with a longer one is coded "not representable" (decoded instead).
	maxAttrValueLen = 256

	attrCodeAbsent = 0 // the span (or its resource) does not carry the key
	attrCodeBad    = 1 // the value is not representable: decode the trace
	attrCodeFirst  = 2 // dictionary value i is code attrCodeFirst+i
)

// Kinds of ColumnValue.
const (
	ColumnAbsent uint8 = iota // the span does not carry the attribute
	ColumnString
	ColumnInt   // N is the int64's bits
	ColumnFloat // N is math.Float64bits
	ColumnBool  // N is 0 or 1
	ColumnEmpty // an AnyValue with no value set
)

// ColumnValue is one span's value of one attribute read from attribute
// columns. Its fields are those of traceql.ColumnValue, in the same order.
type ColumnValue struct {
	Kind uint8
	S    string
	N    uint64
}

// encodeAnyValue appends the dictionary form of an AnyValue (type byte,
// then payload) to dst; ok is false for values the columns do not hold
// (arrays, maps, bytes, long strings, malformed bytes), which pdata would
// turn into something else or reject.
func encodeAnyValue(dst, anyv []byte, has bool) ([]byte, bool) {
	if !has {
		return append(dst, 'e'), true
	}
	var typ byte = 'e'
	var s []byte
	var v uint64
	it := pbIter{b: anyv}
	for it.next() {
		switch {
		case it.num == 1 && it.typ == 2:
			typ, s = 's', it.body
		case it.num == 2 && it.typ == 0:
			typ, v = 'b', min(it.v, 1)
		case it.num == 3 && it.typ == 0:
			typ, v = 'i', it.v
		case it.num == 4 && it.typ == 1:
			typ, v = 'f', it.v
		case it.num >= 1 && it.num <= 4, it.num == 5, it.num == 6, it.num == 7:
			return dst, false // wrong wire type, or a value columns do not hold
		}
	}
	if it.err != nil {
		return dst, false
	}
	dst = append(dst, typ)
	switch typ {
	case 's':
		if len(s) > maxAttrValueLen {
			return dst[:len(dst)-1], false
		}
		dst = append(dst, s...)
	case 'b':
		dst = append(dst, byte(v))
	case 'i', 'f':
		dst = binary.LittleEndian.AppendUint64(dst, v)
	}
	return dst, true
}

// decodeColumnValue is the inverse of encodeAnyValue.
func decodeColumnValue(b []byte) (ColumnValue, bool) {
	if len(b) == 0 {
		return ColumnValue{}, false
	}
	switch p := b[1:]; b[0] {
	case 'e':
		return ColumnValue{Kind: ColumnEmpty}, len(p) == 0
	case 's':
		return ColumnValue{Kind: ColumnString, S: string(p)}, true
	case 'b':
		return ColumnValue{Kind: ColumnBool, N: uint64(p[0] & 1)}, len(p) == 1 && p[0] <= 1
	case 'i', 'f':
		if len(p) != 8 {
			return ColumnValue{}, false
		}
		k := ColumnInt
		if b[0] == 'f' {
			k = ColumnFloat
		}
		return ColumnValue{Kind: k, N: binary.LittleEndian.Uint64(p)}, true
	}
	return ColumnValue{}, false
}

// Float returns the value of a ColumnFloat.
func (v ColumnValue) Float() float64 { return math.Float64frombits(v.N) }

// colKV is one attribute met by the column walker: key and the value's
// dictionary form in colWalker.vbuf[voff:voff+vlen]; bad when the value is
// not representable.
type colKV struct {
	key        []byte
	voff, vlen int32
	bad        bool
}

// attrCol is one key's column of the group being written.
type attrCol struct {
	key   int // index into colWriter.keys
	codes []uint64
	dict  map[string]uint64
	vals  []byte // uvarint(len) value, per dictionary entry
	nvals int
	dead  bool // too many distinct values: no column in this group
	// strs are the dictionary's values (dict's keys) by index; last is
	// the code coded last: a value equal to it skips the dictionary.
	strs []string
	last uint64
}

// put sets span idx's code (the first one set wins); false when the
// column does not take it.
func (c *attrCol) put(idx int, code uint64) bool {
	if c.dead || len(c.codes) > idx {
		return false
	}
	for len(c.codes) < idx {
		c.codes = append(c.codes, attrCodeAbsent)
	}
	c.codes = append(c.codes, code)
	return true
}

// lookupAttr returns the column of key and the code of val in it, adding
// both as needed.
func (cw *colWriter) lookupAttr(scoped []byte, val []byte, bad bool) (*attrCol, uint64) {
	c := cw.column(scoped)
	return c, cw.code(c, val, bad)
}

// column returns the group's column of key scoped, adding it as needed.
func (cw *colWriter) column(scoped []byte) *attrCol {
	c := cw.acols[string(scoped)]
	if c == nil {
		ki, ok := cw.keyIdx[string(scoped)]
		if !ok {
			ki = len(cw.keys)
			cw.keys = append(cw.keys, string(scoped))
			cw.keyIdx[string(scoped)] = ki
		}
		if n := len(cw.spareCols); n > 0 {
			// a column of an earlier group, emptied (appendAttrFrames)
			c, cw.spareCols = cw.spareCols[n-1], cw.spareCols[:n-1]
			c.key = ki
		} else {
			c = &attrCol{key: ki, dict: map[string]uint64{}}
		}
		cw.acols[string(scoped)] = c
	}
	return c
}

// code returns val's code in column c, adding val to its dictionary as
// needed (0 when c is dead or dies of it).
func (cw *colWriter) code(c *attrCol, val []byte, bad bool) uint64 {
	if c.dead {
		return 0
	}
	if bad {
		return attrCodeBad
	}
	if c.last >= attrCodeFirst && string(val) == c.strs[c.last-attrCodeFirst] {
		return c.last
	}
	code, ok := c.dict[string(val)]
	if !ok {
		if c.nvals >= maxAttrDict {
			if cw.post != nil {
				// The codes so far are about to go: their postings first.
				cw.post.postColumn(cw, c)
			}
			c.kill()
			return 0
		}
		code = attrCodeFirst + uint64(c.nvals)
		s := string(val)
		c.dict[s] = code
		c.strs = append(c.strs, s)
		c.nvals++
		c.vals = binary.AppendUvarint(c.vals, uint64(len(val)))
		c.vals = append(c.vals, val...)
	}
	c.last = code
	return code
}

// kill drops the column (too many values, or none known): the group
// gets an entry without a column for its key.
func (c *attrCol) kill() {
	c.dead, c.codes, c.vals = true, c.codes[:0], c.vals[:0]
}

// resCode is one resource attribute's column and code, looked up once per
// resource (not per span).
type resCode struct {
	c    *attrCol
	code uint64
	kv   int // index into colWalker.kvs
}

// addAttrs codes the attributes of the walker's spans, the first of which
// is span first of the group.
func (cw *colWriter) addAttrs(first int) {
	w := &cw.walk
	cw.resAt = -1
	for i := range w.spans {
		s := &w.spans[i]
		for k := s.kvFrom; k < s.kvTo; k++ {
			kv := &w.kvs[k]
			// Spans mostly carry their keys in the same order: the column
			// of the key met last at this position is tried before the map.
			pos := int(k - s.kvFrom)
			var c *attrCol
			if pos < len(cw.spanMemo) {
				if m := cw.spanMemo[pos]; m != nil && string(kv.key) == cw.keys[m.key][len("span."):] {
					c = m
				}
			}
			if c == nil {
				cw.kbuf = append(append(cw.kbuf[:0], "span."...), kv.key...)
				c = cw.column(cw.kbuf)
				for len(cw.spanMemo) <= pos {
					cw.spanMemo = append(cw.spanMemo, nil)
				}
				cw.spanMemo[pos] = c
			}
			if !c.put(first+i, cw.code(c, w.vbuf[kv.voff:kv.voff+kv.vlen], kv.bad)) && cw.postTrace {
				cw.post.scan.walkedAttr("span.", w, kv) // not in the column
			}
		}
		if s.res >= 0 {
			if s.res != cw.resAt {
				// Look the resource's attributes up once for all its spans.
				cw.resAt, cw.resCodes = s.res, cw.resCodes[:0]
				r := w.res[s.res]
				svcSeen := false
				for k := r[0]; k < r[1]; k++ {
					kv := &w.kvs[k]
					if string(kv.key) == "service.name" {
						// The service column holds the first one.
						if svcSeen && cw.postTrace {
							cw.post.scan.walkedAttr("resource.", w, kv)
						}
						svcSeen = true
						continue
					}
					cw.kbuf = append(append(cw.kbuf[:0], "resource."...), kv.key...)
					c, code := cw.lookupAttr(cw.kbuf, w.vbuf[kv.voff:kv.voff+kv.vlen], kv.bad)
					cw.resCodes = append(cw.resCodes, resCode{c, code, int(k)})
				}
			}
			for _, rc := range cw.resCodes {
				if !rc.c.put(first+i, rc.code) && cw.postTrace {
					cw.post.scan.walkedAttr("resource.", w, &w.kvs[rc.kv])
				}
			}
		}
	}
}

// appendAttrFrames appends the group's attribute columns (sorted by key
// index) to out as sections, recording (key, length) pairs in refs.
func (cw *colWriter) appendAttrFrames(out []byte, refs []byte) ([]byte, []byte) {
	cols := cw.colList[:0]
	for _, c := range cw.acols {
		cols = append(cols, c)
	}
	slices.SortFunc(cols, func(a, b *attrCol) int { return a.key - b.key })
	cw.colList = cols
	refs = binary.AppendUvarint(refs, uint64(len(cols)))
	for _, c := range cols {
		refs = binary.AppendUvarint(refs, uint64(c.key))
		if c.dead {
			refs = binary.AppendUvarint(refs, 0)
			continue
		}
		for len(c.codes) < cw.spans {
			c.codes = append(c.codes, attrCodeAbsent)
		}
		r := binary.AppendUvarint(cw.araw[:0], uint64(c.nvals))
		r = append(r, c.vals...)
		cut := len(r)
		r = appendPlanes(r, c.codes)
		cw.araw = r
		start := len(out)
		out = binary.AppendUvarint(out, 2)
		for _, sec := range [][]byte{r[:cut], r[cut:]} {
			cw.sbuf = cw.enc.EncodeAll(sec, cw.sbuf[:0])
			out = binary.AppendUvarint(out, uint64(len(cw.sbuf)))
			out = append(out, cw.sbuf...)
		}
		refs = binary.AppendUvarint(refs, uint64(len(out)-start))
	}
	clear(cw.acols)
	// Keep the columns' buffers for the next group's keys (mostly the
	// same): a fresh code slice and dictionary per key and group was
	// most of the writer's garbage.
	for _, c := range cols {
		c.codes, c.vals, c.nvals, c.dead = c.codes[:0], c.vals[:0], 0, false
		c.strs, c.last = c.strs[:0], 0
		clear(c.dict)
		cw.spareCols = append(cw.spareCols, c)
	}
	clear(cw.spanMemo) // its columns are spare now
	return out, refs
}

// colAttrRef locates one key's column of one group.
type colAttrRef struct {
	key  int
	off  uint64
	clen int // 0: the key has no column in this group (too many values)
}

// readAttrColumn decodes one attribute column of group gi (n spans) into out.
// bad[j] is set for each span whose value is not representable.
func (b *block) readAttrColumn(ref colAttrRef, gi, n int, g *colGroup, out []ColumnValue) ([]ColumnValue, error) {
	if cap(g.cbuf) < ref.clen {
		g.cbuf = make([]byte, ref.clen)
	}
	g.cbuf = g.cbuf[:ref.clen]
	if _, err := b.cols.ReadAt(g.cbuf, int64(ref.off)); err != nil {
		return out, fmt.Errorf("read attribute column of group %d: %w", gi, err)
	}
	raw := g.araw[:0]
	cr := &byteReader{b: g.cbuf}
	ns := cr.count()
	var err error
	cut := 0
	for i := 0; i < ns && cr.err == nil; i++ {
		sec := cr.bytes(int(cr.uvarint()))
		if cr.err != nil {
			break
		}
		if raw, err = decodeFrames(b.dec, sec, raw); err != nil {
			return out, fmt.Errorf("%w: group %d attribute column: %v", errCorruptColumns, gi, err)
		}
		if i == 0 {
			cut = len(raw)
		}
	}
	g.araw = raw
	if cr.err != nil || len(cr.b) != 0 || ns != 2 {
		return out, fmt.Errorf("%w: group %d attribute column: sections", errCorruptColumns, gi)
	}
	r := &byteReader{b: raw[:cut]}
	nv := r.count()
	dict := make([]ColumnValue, nv)
	for i := range dict {
		v, ok := decodeColumnValue(r.bytes(int(r.uvarint())))
		if !ok && r.err == nil {
			r.err = errCorruptColumns
		}
		dict[i] = v
	}
	if r.err != nil || len(r.b) != 0 {
		return out, fmt.Errorf("%w: group %d attribute dictionary", errCorruptColumns, gi)
	}
	var ok bool
	if g.codes, ok = readPlanes(raw[cut:], n, g.codes); !ok {
		return out, fmt.Errorf("%w: group %d attribute codes", errCorruptColumns, gi)
	}
	out = slices.Grow(out[:0], n)[:n]
	for i, c := range g.codes {
		switch {
		case c == attrCodeAbsent:
			out[i] = ColumnValue{}
		case c == attrCodeBad:
			out[i] = ColumnValue{Kind: colValueBad}
		case c-attrCodeFirst < uint64(nv):
			out[i] = dict[c-attrCodeFirst]
		default:
			return out, fmt.Errorf("%w: group %d attribute code out of range", errCorruptColumns, gi)
		}
	}
	return out, nil
}

// colValueBad marks, inside a decoded group only, a value the columns do
// not hold; a trace with one is decoded instead of handed over.
const colValueBad uint8 = 255

// colFilter drops, before they are decoded, the candidates of one block
// that SearchRequest.Match rejects on their columns.
type colFilter struct {
	b     *block
	t     *colTable
	g     *colGroup
	match func(TraceID, []ColumnSpan, []ColumnValue) bool
	attrs []ColumnValue
}

func newColFilter(b *block, req *SearchRequest) (*colFilter, error) {
	t, err := b.queryColTable(req.ColumnAttrs)
	if err != nil {
		return nil, fmt.Errorf("block %s: %w", b.meta.ULID, err)
	}
	return &colFilter{b: b, t: t, g: &colGroup{index: -1}, match: req.Match}, nil
}

// wrap returns next without the candidates Match rejects; each rejected
// one is passed to drop (its stored bytes), which returns false to end
// the search there.
func (f *colFilter) wrap(ctx context.Context, next func() (searchCand, bool, error), drop func(raw int64) bool) func() (searchCand, bool, error) {
	n := 0
	return func() (searchCand, bool, error) {
		for {
			if n++; n%256 == 1 { // long runs of dropped candidates still see cancellation
				if err := ctx.Err(); err != nil {
					return searchCand{}, false, err
				}
			}
			c, ok, err := next()
			if err != nil || !ok {
				return c, ok, err
			}
			gi := c.ord / f.t.groupTraces
			if f.g.index != gi {
				if err := f.b.readColGroup(f.t, gi, f.g); err != nil {
					return c, false, fmt.Errorf("block %s: %w", f.b.meta.ULID, err)
				}
			}
			j := c.ord - gi*f.t.groupTraces
			if f.g.irregular[j] || f.g.attrBad[j] {
				return c, true, nil
			}
			// A part Match rejects is dropped even when the trace has
			// parts elsewhere: those are met through the part that
			// matches (Match's contract, ADR 0124).
			f.attrs = f.g.traceAttrs(j, f.attrs)
			if f.match(c.id, f.g.spans[f.g.first[j]:f.g.first[j+1]], f.attrs) {
				return c, true, nil
			}
			if !drop(int64(c.e.len)) {
				return c, false, nil
			}
		}
	}
}

// Span times in the columns only (format version 9, ADR 0101): the data
// file keeps each span's start_time_unix_nano and end_time_unix_nano
// fields, but with their 8 bytes zeroed for every trace the columns hold
// (regular traces); readers write them back from the columns when they read
// the trace (pageReader.trace), so every consumer sees the bytes ingested.
// Zeros cost zstd next to nothing where the random low bytes of
// nanosecond times cost ~8 bytes per span.

// zeroTimes zeroes, in data (the bytes the walker just walked, copied into
// the page), the span times the columns hold for the trace just added.
func (cw *colWriter) zeroTimes(data []byte) {
	if cw.walk.irregular || !zeroSpanTimes {
		return
	}
	for i := range cw.walk.spans {
		s := &cw.walk.spans[i]
		for _, off := range [3]int32{s.startOff, s.endOff, s.idOff} {
			if off >= 0 {
				clear(data[off : off+8])
			}
		}
	}
}

// zeroSpanTimes is false only in tests that turn written blocks into
// older formats (whose data files hold the times).
var zeroSpanTimes = true

// timeTable is the block's column group table, read once per block and
// kept (O(groups) memory, ~100 bytes per 1024 traces): restoring span
// times and every column query read it. Callers must not change it.
func (b *block) timeTable() (*colTable, error) {
	b.ttOnce.Do(func() { b.tt, b.ttErr = b.readColTable() })
	return b.tt, b.ttErr
}

// queryColTable is the block's column table for one query, which reads
// the attribute columns keys name.
func (b *block) queryColTable(keys []string) (*colTable, error) {
	shared, err := b.timeTable()
	if err != nil {
		return nil, err
	}
	t := *shared
	t.want = nil
	t.wantAttrs(keys)
	return &t, nil
}

// timeGroup is what restoreTimes needs of one column group: each trace's
// span range and first start, the start and duration planes.
type timeGroup struct {
	index        int
	first        []int32
	mins         []uint64
	irregular    []bool
	starts, durs []uint64
	raw, cbuf    []byte
	// ids holds the group's span IDs, 8 bytes per span (format 10).
	ids, idbuf []byte
}

// readGroupTimes decodes only the sections of group gi that hold the
// trace headers and the start and duration planes (not the status, name
// and service columns, nor attribute columns).
func (b *block) readGroupTimes(t *colTable, gi int, tg *timeGroup) error {
	ref := &t.groups[gi]
	tg.index = -1
	if cap(tg.cbuf) < ref.clen {
		tg.cbuf = make([]byte, ref.clen)
	}
	tg.cbuf = tg.cbuf[:ref.clen]
	if _, err := b.cols.ReadAt(tg.cbuf, int64(ref.off)); err != nil {
		return fmt.Errorf("read column group %d: %w", gi, err)
	}
	cr := &byteReader{b: tg.cbuf}
	ns := cr.count()
	raw := tg.raw[:0]
	var err error
	for i := 0; ; i++ {
		if i >= ns || cr.err != nil {
			tg.raw = raw
			return fmt.Errorf("%w: group %d: sections", errCorruptColumns, gi)
		}
		sec := cr.bytes(int(cr.uvarint()))
		if cr.err != nil {
			continue
		}
		if raw, err = decodeFrames(b.dec, sec, raw); err != nil {
			tg.raw = raw
			return fmt.Errorf("%w: group %d: %v", errCorruptColumns, gi, err)
		}
		if ok, err := tg.parse(raw, ref); err != nil {
			tg.raw = raw
			return fmt.Errorf("%w: group %d: %v", errCorruptColumns, gi, err)
		} else if ok {
			break
		}
	}
	tg.raw = raw
	tg.ids = tg.ids[:0] // pooled: never another block's IDs
	if b.meta.Version >= 10 {
		if tg.ids, tg.idbuf, err = b.readSpanIDs(ref, gi, tg.ids, tg.idbuf); err != nil {
			return err
		}
	}
	tg.index = gi
	return nil
}

var errShort = errors.New("short")

// parse reads the group header and the start and duration planes from
// raw; false (no error) when raw does not hold them all yet.
func (tg *timeGroup) parse(raw []byte, ref *colGroupRef) (bool, error) {
	r := &byteReader{b: raw}
	n := int(r.uvarint())
	base := r.uvarint()
	if r.err != nil {
		return false, nil
	}
	if n != ref.traces {
		return false, fmt.Errorf("%d traces, table says %d", n, ref.traces)
	}
	tg.first = append(tg.first[:0], 0)
	tg.mins, tg.irregular = tg.mins[:0], tg.irregular[:0]
	total := 0
	for j := 0; j < n && r.err == nil; j++ {
		h := r.uvarint()
		irr := h&1 == 1
		var m uint64
		if !irr {
			m = base + r.uvarint()
			if h>>1 > uint64(ref.spans-total) { // before adding: no overflow
				return false, errors.New("more spans than the table says")
			}
			total += int(h >> 1)
		}
		if total > ref.spans {
			return false, errors.New("more spans than the table says")
		}
		tg.irregular = append(tg.irregular, irr)
		tg.mins = append(tg.mins, m)
		tg.first = append(tg.first, int32(total))
	}
	for d := 0; d < 2; d++ { // the name and service dictionaries
		k := r.count()
		for i := 0; i < k && r.err == nil; i++ {
			r.bytes(int(r.uvarint()))
		}
	}
	var ok [2]bool
	for c, dst := range []*[]uint64{&tg.starts, &tg.durs} {
		l := int(r.uvarint())
		col := r.bytes(l)
		if r.err != nil {
			return false, nil
		}
		if *dst, ok[c] = readPlanes(col, total, *dst); !ok[c] {
			return false, errors.New("start or duration column")
		}
	}
	return true, nil
}

// timeGroupOf returns the column group holding trace ord's span times
// and the trace's index in it.
func (pr *pageReader) timeGroupOf(ord int) (*timeGroup, int, error) {
	t, err := pr.b.timeTable()
	if err != nil {
		return nil, 0, err
	}
	gi := ord / t.groupTraces
	if gi >= len(t.groups) {
		return nil, 0, fmt.Errorf("%w: ordinal %d beyond the column groups", errCorruptColumns, ord)
	}
	if pr.tg == nil {
		pr.tg = &timeGroup{index: -1}
	}
	if pr.tg.index != gi {
		if err := pr.b.readGroupTimes(t, gi, pr.tg); err != nil {
			return nil, 0, err
		}
	}
	return pr.tg, ord - gi*t.groupTraces, nil
}

// restoreStripped appends the trace a stripped record rec (format 12)
// of trace id at ordinal ord stands for to pr.rbuf.
func (pr *pageReader) restoreStripped(rec []byte, id TraceID, ord int) ([]byte, error) {
	g, j, err := pr.timeGroupOf(ord)
	if err != nil {
		return nil, err
	}
	if g.irregular[j] {
		return nil, fmt.Errorf("%w: irregular trace", errStripped)
	}
	from, to := int(g.first[j]), int(g.first[j+1])
	if len(g.ids) < 8*to || len(g.starts) < to || len(g.durs) < to {
		return nil, fmt.Errorf("%w: span IDs or times missing", errStripped)
	}
	sr := &pr.sr
	sr.id, sr.ids = id, g.ids[8*from:8*to]
	sr.times = sr.times[:0]
	tmin := g.mins[j]
	for k := from; k < to; k++ {
		start := tmin + g.starts[k]
		z := g.durs[k]
		sr.times = append(sr.times, start, start+uint64(int64(z>>1)^-int64(z&1)))
	}
	n := len(pr.rbuf)
	pr.rbuf, pr.sizes, err = appendRestored(pr.rbuf, rec, sr, pr.sizes)
	if err != nil {
		return nil, err
	}
	return pr.rbuf[n:len(pr.rbuf):len(pr.rbuf)], nil
}

// restoreTimes writes the span times of trace ord (its stored bytes td,
// zeroed by zeroTimes) back from the block's columns.
func (pr *pageReader) restoreTimes(td []byte, ord int) error {
	g, j, err := pr.timeGroupOf(ord)
	if err != nil {
		return err
	}
	if g.irregular[j] {
		return nil
	}
	from, to := int(g.first[j]), int(g.first[j+1])
	tmin := g.mins[j]
	k := from
	top := cap(td)
	it := pbIter{b: td}
	for it.next() {
		if it.num != 1 || it.typ != 2 { // TracesData.resource_spans
			continue
		}
		rs := pbIter{b: it.body}
		for rs.next() {
			if rs.num != 2 || rs.typ != 2 { // ResourceSpans.scope_spans
				continue
			}
			ss := pbIter{b: rs.body}
			for ss.next() {
				if ss.num != 2 || ss.typ != 2 { // ScopeSpans.spans
					continue
				}
				if k >= to {
					return fmt.Errorf("%w: more spans than the columns hold", errCorruptColumns)
				}
				startOff, endOff, idOff := -1, -1, -1
				sp := pbIter{b: ss.body}
				for sp.next() {
					switch {
					case sp.num == 2 && sp.typ == 2:
						idOff = -1
						if len(sp.body) == 8 {
							idOff = top - cap(sp.body)
						}
					case sp.num == 7 && sp.typ == 1:
						startOff = top - cap(sp.b) - 8
					case sp.num == 8 && sp.typ == 1:
						endOff = top - cap(sp.b) - 8
					}
				}
				if sp.err != nil {
					return sp.err
				}
				start := tmin + g.starts[k]
				z := g.durs[k]
				if startOff >= 0 {
					binary.LittleEndian.PutUint64(td[startOff:], start)
				}
				if endOff >= 0 {
					binary.LittleEndian.PutUint64(td[endOff:], start+uint64(int64(z>>1)^-int64(z&1)))
				}
				if idOff >= 0 && pr.b.meta.Version >= 10 && len(g.ids) >= 8*(k+1) {
					copy(td[idOff:idOff+8], g.ids[8*k:])
				}
				k++
			}
			if ss.err != nil {
				return ss.err
			}
		}
		if rs.err != nil {
			return rs.err
		}
	}
	if it.err != nil {
		return it.err
	}
	if k != to {
		return fmt.Errorf("%w: %d spans, the columns hold %d", errCorruptColumns, k-from, to-from)
	}
	return nil
}

// Format 12 (ADR 0123): a regular trace's record leaves out what the
// index and the columns already hold of each span, when the span's
// fields are laid out so that a reader puts them back byte for byte:
//
//	record := strippedMark tracesdata'
//
// tracesdata' is the trace with each span's trace_id (the index's ID),
// span_id and start and end times (the columns') left out and the length
// prefixes of spans, scope spans and resource spans shortened to match.
// A span qualifies when it starts with trace_id (16 bytes, the trace's
// ID) and span_id (8 bytes), then holds fields 3–6 in any order, then
// start_time_unix_nano and end_time_unix_nano, then only fields from 9
// on, those four in their shortest encoding; every span of the trace
// must qualify and every length prefix on the way be in its shortest
// form (the reader writes them shortest). That is how pdata and the OTel
// SDKs write spans. 46 bytes per span fewer for s2 at the cut and zstd
// at compaction (the trace ID and zeroed IDs and times compressed to ~5
// bytes per span, but cost the compressors their time).

// A stripped record starts with its spans' layout: 0 or 1 (field 0) is
// no protobuf tag, so a record as ingested never starts with either.
const (
	strippedDescending = 0x00
	strippedAscending  = 0x01
)

// spanFieldsLeftOut is what a stripped span lacks: trace_id (2 + 16),
// span_id (2 + 8), start and end (1 + 8 each).
const spanFieldsLeftOut = 46

// stripSpanFields makes block writers strip regular traces; false in
// tests writing older formats.
var stripSpanFields = true

// spanEditor rewrites the spans of a trace, the k-th in the order the
// column walk meets them.
type spanEditor interface {
	// spanLen returns the rewritten span's length; false refuses it.
	spanLen(span []byte, k int) (int, bool)
	appendSpan(dst, span []byte, k int) []byte
}

// lenPrefix splits a length-delimited field f (whole, as protoField
// measured it, body its payload) into its tag bytes and reports whether
// its length prefix is in its shortest form.
func lenPrefix(f, body []byte) (tag []byte, shortest bool) {
	_, tl := binary.Uvarint(f)
	if tl <= 0 || tl > len(f)-len(body) {
		return nil, false
	}
	return f[:tl], len(f)-len(body)-tl == uvarintLen(uint64(len(body)))
}

// editSpans appends td with each span rewritten by ed and the length
// prefixes of spans, scope spans and resource spans recomputed (shortest
// form); sizes is scratch. strict refuses a length prefix on the way that
// is not in its shortest form. It returns the number of spans met; false
// when td does not parse or ed refuses a span (dst then holds garbage
// past its old length).
func editSpans(dst, td []byte, ed spanEditor, sizes []int, strict bool) ([]byte, []int, int, bool) {
	sizes = sizes[:0]
	k := 0
	// Pass 1: every rewritten length, containers before their contents.
	for b := td; len(b) > 0; {
		num, typ, _, rsBody, n, err := protoField(b)
		if err != nil {
			return dst, sizes, k, false
		}
		if num == 1 && typ == 2 { // TracesData.resource_spans
			if tag, ok := lenPrefix(b[:n], rsBody); !ok && (strict || tag == nil) {
				return dst, sizes, k, false
			}
			rsSlot, rsLen := len(sizes), 0
			sizes = append(sizes, 0)
			for r := rsBody; len(r) > 0; {
				num, typ, _, ssBody, n, err := protoField(r)
				if err != nil {
					return dst, sizes, k, false
				}
				if num != 2 || typ != 2 { // ResourceSpans.scope_spans
					rsLen += n
					r = r[n:]
					continue
				}
				tag, ok := lenPrefix(r[:n], ssBody)
				if !ok && (strict || tag == nil) {
					return dst, sizes, k, false
				}
				ssSlot, ssLen := len(sizes), 0
				sizes = append(sizes, 0)
				for s := ssBody; len(s) > 0; {
					num, typ, _, span, n, err := protoField(s)
					if err != nil {
						return dst, sizes, k, false
					}
					if num != 2 || typ != 2 { // ScopeSpans.spans
						ssLen += n
						s = s[n:]
						continue
					}
					stag, ok := lenPrefix(s[:n], span)
					if !ok && (strict || stag == nil) {
						return dst, sizes, k, false
					}
					l, ok := ed.spanLen(span, k)
					if !ok {
						return dst, sizes, k, false
					}
					k++
					sizes = append(sizes, l)
					ssLen += len(stag) + uvarintLen(uint64(l)) + l
					s = s[n:]
				}
				sizes[ssSlot] = ssLen
				rsLen += len(tag) + uvarintLen(uint64(ssLen)) + ssLen
				r = r[n:]
			}
			sizes[rsSlot] = rsLen
		}
		b = b[n:]
	}
	// Pass 2: the same walk, writing.
	si, k := 0, 0
	for b := td; len(b) > 0; {
		num, typ, _, rsBody, n, _ := protoField(b)
		if num != 1 || typ != 2 {
			dst = append(dst, b[:n]...)
			b = b[n:]
			continue
		}
		tag, _ := lenPrefix(b[:n], rsBody)
		dst = binary.AppendUvarint(append(dst, tag...), uint64(sizes[si]))
		si++
		for r := rsBody; len(r) > 0; {
			num, typ, _, ssBody, n, _ := protoField(r)
			if num != 2 || typ != 2 {
				dst = append(dst, r[:n]...)
				r = r[n:]
				continue
			}
			tag, _ := lenPrefix(r[:n], ssBody)
			dst = binary.AppendUvarint(append(dst, tag...), uint64(sizes[si]))
			si++
			for s := ssBody; len(s) > 0; {
				num, typ, _, span, n, _ := protoField(s)
				if num != 2 || typ != 2 {
					dst = append(dst, s[:n]...)
					s = s[n:]
					continue
				}
				tag, _ := lenPrefix(s[:n], span)
				dst = binary.AppendUvarint(append(dst, tag...), uint64(sizes[si]))
				si++
				dst = ed.appendSpan(dst, span, k)
				k++
				s = s[n:]
			}
			r = r[n:]
		}
		b = b[n:]
	}
	return dst, sizes, k, true
}

// The span layouts a stripped record restores, as the column walk meets
// a span's fields (nextLayoutState): ascending trace_id span_id [3–6]*
// start end [9–]* (the OTel SDKs), descending [9–]* end start [3–6]*
// span_id trace_id (pdata writes fields last to first); trace_id,
// span_id and the times each in their shortest encoding.
const (
	layoutNone = iota
	layoutStart
	layoutAscID    // after trace_id
	layoutAscMid   // after span_id, fields 3–6
	layoutTimes    // after the first time field (either layout)
	layoutAscEnd   // after end, fields from 9 on
	layoutDescHigh // fields from 9 on
	layoutDescMid  // after start, fields 3–6
	layoutDescID   // after span_id
	layoutDescEnd  // after trace_id
)

// nextLayoutState moves a span's layout state past a field (number, wire
// type, bytes on the wire).
func nextLayoutState(ls, num, typ, n int) int {
	traceID := num == 1 && typ == 2 && n == 18
	spanID := num == 2 && typ == 2 && n == 10
	start := num == 7 && typ == 1 && n == 9
	end := num == 8 && typ == 1 && n == 9
	mid, high := num >= 3 && num <= 6, num >= 9
	switch {
	case ls == layoutStart && traceID:
		return layoutAscID
	case ls == layoutAscID && spanID, ls == layoutAscMid && mid:
		return layoutAscMid
	case ls == layoutAscMid && start:
		return layoutTimes
	case ls == layoutTimes && end, ls == layoutAscEnd && high:
		return layoutAscEnd
	case (ls == layoutStart || ls == layoutDescHigh) && high:
		return layoutDescHigh
	case (ls == layoutStart || ls == layoutDescHigh) && end:
		return layoutTimes
	case ls == layoutTimes && start, ls == layoutDescMid && mid:
		return layoutDescMid
	case ls == layoutDescMid && spanID:
		return layoutDescID
	case ls == layoutDescID && traceID:
		return layoutDescEnd
	}
	return layoutNone
}

// spanStripper leaves the fields out of the spans of trace id (writers),
// from what the column walk found of each (spans, in the walk's order).
type spanStripper struct {
	id    TraceID
	spans []colSpan
	// top is cap of the walked bytes: a span's offset in them is top
	// minus its capacity
	top    int
	layout byte
	depth  int // strip's nesting
}

func (st *spanStripper) spanLen(span []byte, k int) (int, bool) {
	if k >= len(st.spans) {
		return 0, false
	}
	cs := &st.spans[k]
	if cs.timesAt < 0 || int(cs.off) != st.top-cap(span) || (k > 0 && cs.layout != st.layout) || len(span) < spanFieldsLeftOut {
		return 0, false
	}
	id := span[2:18]
	if cs.layout == strippedDescending {
		id = span[len(span)-16:]
	}
	if string(id) != string(st.id[:]) {
		return 0, false
	}
	st.layout = cs.layout
	return len(span) - spanFieldsLeftOut, true
}

func (st *spanStripper) appendSpan(dst, span []byte, k int) []byte {
	p := int(st.spans[k].timesAt - st.spans[k].off)
	if st.layout == strippedAscending {
		return append(append(dst, span[28:p]...), span[p+18:]...)
	}
	return append(append(dst, span[:p]...), span[p+18:len(span)-28]...)
}

// appendStripped appends td (trace id's bytes, which the column walk w
// has just walked) as a stripped record; false, with dst as it was, when
// a span or length prefix does not qualify. One pass: each length prefix
// keeps its width, padded (a varint's 0x80 continuation bytes), since a
// container only shrinks; readers take any varint, and write the restored
// trace's prefixes shortest, as the original's had to be.
func appendStripped(dst, td []byte, id TraceID, w *colWalker, st *spanStripper) ([]byte, bool) {
	st.id, st.spans, st.top, st.layout, st.depth = id, w.spans, w.top, 0, 0
	start := len(dst)
	if len(w.spans) == 0 || cap(td) != w.top {
		return dst, false
	}
	out, k, ok := st.strip(append(dst, 0), td, 0)
	if !ok || k != len(w.spans) {
		return dst[:start], false
	}
	out[start] = st.layout
	return out, true
}

// strip appends b, a message at nesting depth (0 TracesData, 1
// ResourceSpans, 2 ScopeSpans) with its spans stripped from span k on; it
// returns the next span's index.
func (st *spanStripper) strip(dst, b []byte, k int) ([]byte, int, bool) {
	for len(b) > 0 {
		num, typ, _, body, n, err := protoField(b)
		if err != nil {
			return dst, k, false
		}
		if typ != 2 || num != 1+min(1, st.depth) { // resource_spans (1), scope_spans (2), spans (2)
			dst = append(dst, b[:n]...)
			b = b[n:]
			continue
		}
		tag, shortest := lenPrefix(b[:n], body)
		if !shortest {
			return dst, k, false
		}
		dst = append(dst, tag...)
		at, width := len(dst), n-len(tag)-len(body)
		dst = append(dst, b[len(tag):n-len(body)]...) // the prefix's room
		if st.depth == 2 {
			if _, ok := st.spanLen(body, k); !ok {
				return dst, k, false
			}
			dst = st.appendSpan(dst, body, k)
			k++
		} else {
			st.depth++
			var ok bool
			dst, k, ok = st.strip(dst, body, k)
			st.depth--
			if !ok {
				return dst, k, false
			}
		}
		putPaddedUvarint(dst[at:at+width], uint64(len(dst)-at-width))
		b = b[n:]
	}
	return dst, k, true
}

// putPaddedUvarint writes v as a varint of exactly len(b) bytes; v must
// fit (it is never more than the value the bytes held).
func putPaddedUvarint(b []byte, v uint64) {
	for i := range len(b) - 1 {
		b[i] = byte(v) | 0x80
		v >>= 7
	}
	b[len(b)-1] = byte(v)
}

// spanFieldsAt returns where fields numbered lo..hi run from p on in
// span: the first field past them, false when a field does not parse.
func spanFieldsAt(span []byte, p, lo, hi int) (int, bool) {
	for p < len(span) {
		num, _, _, _, n, err := protoField(span[p:])
		if err != nil {
			return p, false
		}
		if num < lo || num > hi {
			break
		}
		p += n
	}
	return p, true
}

// spanRestorer puts the left-out fields back (readers).
type spanRestorer struct {
	id     TraceID
	layout byte
	// ids: 8 bytes per span; times: start and end per span
	ids   []byte
	times []uint64
}

func (sr *spanRestorer) spanLen(span []byte, k int) (int, bool) {
	if 2*k+1 >= len(sr.times) || 8*k+8 > len(sr.ids) {
		return 0, false
	}
	return len(span) + spanFieldsLeftOut, true
}

func (sr *spanRestorer) appendSpan(dst, span []byte, k int) []byte {
	start, end := sr.times[2*k], sr.times[2*k+1]
	if sr.layout == strippedAscending {
		dst = append(append(dst, 0x0a, 16), sr.id[:]...)
		dst = append(append(dst, 0x12, 8), sr.ids[8*k:8*k+8]...)
		p, _ := spanFieldsAt(span, 0, 3, 6)
		dst = append(dst, span[:p]...)
		dst = binary.LittleEndian.AppendUint64(append(dst, 0x39), start)
		dst = binary.LittleEndian.AppendUint64(append(dst, 0x41), end)
		return append(dst, span[p:]...)
	}
	p, _ := spanFieldsAt(span, 0, 9, math.MaxInt)
	dst = append(dst, span[:p]...)
	dst = binary.LittleEndian.AppendUint64(append(dst, 0x41), end)
	dst = binary.LittleEndian.AppendUint64(append(dst, 0x39), start)
	dst = append(dst, span[p:]...)
	dst = append(append(dst, 0x12, 8), sr.ids[8*k:8*k+8]...)
	return append(append(dst, 0x0a, 16), sr.id[:]...)
}

var errStripped = errors.New("stripped record does not match its columns")

// appendRestored appends the trace a stripped record rec stands for:
// trace sr.id, span IDs sr.ids (8 bytes per span) and sr.times (start,
// end per span), as many spans as rec holds.
func appendRestored(dst, rec []byte, sr *spanRestorer, sizes []int) ([]byte, []int, error) {
	if len(rec) == 0 || rec[0] > strippedAscending {
		return dst, sizes, errStripped
	}
	sr.layout = rec[0]
	start := len(dst)
	out, sizes, k, ok := editSpans(dst, rec[1:], sr, sizes, false)
	if !ok || 2*k != len(sr.times) {
		return dst[:start], sizes, errStripped
	}
	return out, sizes, nil
}
