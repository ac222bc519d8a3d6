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
		if raw, err = b.dec.DecodeAll(sec, raw); err != nil {
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
	s     *snapshot
	b     *block
	t     *colTable
	g     *colGroup
	match func(TraceID, []ColumnSpan, []ColumnValue) bool
	attrs []ColumnValue
}

func (s *snapshot) newColFilter(b *block, req *SearchRequest) (*colFilter, error) {
	t, err := b.queryColTable(req.ColumnAttrs)
	if err != nil {
		return nil, fmt.Errorf("block %s: %w", b.meta.ULID, err)
	}
	return &colFilter{s: s, b: b, t: t, g: &colGroup{index: -1}, match: req.Match}, nil
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
		if raw, err = b.dec.DecodeAll(sec, raw); err != nil {
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

// restoreTimes writes the span times of trace ord (its stored bytes td,
// zeroed by zeroTimes) back from the block's columns.
func (pr *pageReader) restoreTimes(td []byte, ord int) error {
	t, err := pr.b.timeTable()
	if err != nil {
		return err
	}
	gi := ord / t.groupTraces
	if gi >= len(t.groups) {
		return fmt.Errorf("%w: ordinal %d beyond the column groups", errCorruptColumns, ord)
	}
	if pr.tg == nil {
		pr.tg = &timeGroup{index: -1}
	}
	if pr.tg.index != gi {
		if err := pr.b.readGroupTimes(t, gi, pr.tg); err != nil {
			return err
		}
	}
	g, j := pr.tg, ord-gi*t.groupTraces
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
