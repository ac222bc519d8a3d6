package tracestore

import (
	"encoding/binary"
	"errors"
	"math"
	"strconv"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// postingScanner reads the postings of an OTLP TracesData protobuf straight
// from its wire bytes: the same (key, value, indexed) calls as forEachPosting,
// in the same order, without building pdata. Cutting a block used to decode
// every trace with pdata only to collect postings; this walk costs a fraction
// of that and allocates nothing (key and value are reused buffers, valid only
// during the call).
type postingScanner struct {
	key, val []byte
	fn       func(key, value []byte, indexed bool)
}

var errBadProto = errors.New("malformed TracesData protobuf")

// protoField reads one field: number, wire type, the varint or fixed value, or
// the bytes of a length-delimited field; n is the number of bytes consumed.
func protoField(b []byte) (num int, typ int, v uint64, body []byte, n int, err error) {
	// One-byte tags and lengths (field numbers below 16, bodies below 128
	// bytes) are nearly all of them: skip the general varint loop.
	if len(b) >= 2 && b[0] < 0x80 && b[0]&7 == 2 && b[1] < 0x80 {
		l := int(b[1])
		if l > len(b)-2 || b[0]>>3 == 0 {
			return 0, 0, 0, nil, 0, errBadProto
		}
		return int(b[0] >> 3), 2, 0, b[2 : 2+l], 2 + l, nil
	}
	tag, k := binary.Uvarint(b)
	if k <= 0 {
		return 0, 0, 0, nil, 0, errBadProto
	}
	num, typ, n = int(tag>>3), int(tag&7), k
	switch typ {
	case 0:
		v, k = binary.Uvarint(b[n:])
		if k <= 0 {
			return 0, 0, 0, nil, 0, errBadProto
		}
		n += k
	case 1:
		if len(b) < n+8 {
			return 0, 0, 0, nil, 0, errBadProto
		}
		v = binary.LittleEndian.Uint64(b[n:])
		n += 8
	case 2:
		l, k := binary.Uvarint(b[n:])
		if k <= 0 || l > uint64(len(b)-n-k) {
			return 0, 0, 0, nil, 0, errBadProto
		}
		n += k
		body = b[n : n+int(l)]
		n += int(l)
	case 5:
		if len(b) < n+4 {
			return 0, 0, 0, nil, 0, errBadProto
		}
		v = uint64(binary.LittleEndian.Uint32(b[n:]))
		n += 4
	default:
		return 0, 0, 0, nil, 0, errBadProto
	}
	if num == 0 {
		return 0, 0, 0, nil, 0, errBadProto
	}
	return num, typ, v, body, n, nil
}

// pbIter walks the fields of one message.
type pbIter struct {
	b    []byte
	num  int
	typ  int
	v    uint64
	body []byte
	err  error
}

func (it *pbIter) next() bool {
	if len(it.b) == 0 || it.err != nil {
		return false
	}
	num, typ, v, body, n, err := protoField(it.b)
	if err != nil {
		it.err = err
		return false
	}
	it.num, it.typ, it.v, it.body, it.b = num, typ, v, body, it.b[n:]
	return true
}

func (s *postingScanner) scan(td []byte) error {
	it := pbIter{b: td}
	for it.next() {
		if it.num != 1 || it.typ != 2 { // TracesData.resource_spans
			continue
		}
		// Resource attributes first, then spans, whatever the wire order.
		rs := pbIter{b: it.body}
		for rs.next() {
			if rs.num != 1 || rs.typ != 2 { // ResourceSpans.resource
				continue
			}
			res := pbIter{b: rs.body}
			for res.next() {
				if res.num == 1 && res.typ == 2 { // Resource.attributes
					if err := s.attr("resource.", res.body); err != nil {
						return err
					}
				}
			}
			if res.err != nil {
				return res.err
			}
		}
		if rs.err != nil {
			return rs.err
		}
		rs = pbIter{b: it.body}
		for rs.next() {
			if rs.num != 2 || rs.typ != 2 { // ResourceSpans.scope_spans
				continue
			}
			ss := pbIter{b: rs.body}
			for ss.next() {
				if ss.num == 2 && ss.typ == 2 { // ScopeSpans.spans
					if err := s.span(ss.body); err != nil {
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

func (s *postingScanner) span(sp []byte) error {
	var name []byte
	var kind, code uint64
	it := pbIter{b: sp}
	for it.next() {
		switch {
		case it.num == 5 && it.typ == 2: // name
			name = it.body
		case it.num == 6 && it.typ == 0: // kind
			kind = it.v
		case it.num == 15 && it.typ == 2: // status
			code = 0
			st := pbIter{b: it.body}
			for st.next() {
				if st.num == 3 && st.typ == 0 { // Status.code
					code = st.v
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
	s.key = append(s.key[:0], KeyName...)
	if len(name) <= maxIndexedValueLen {
		s.val = append(append(s.val[:0], 's'), name...)
		s.fn(s.key, s.val, true)
	} else {
		s.fn(s.key, nil, false)
	}
	s.key = append(s.key[:0], KeyStatus...)
	s.val = append(append(s.val[:0], 'k'), StatusKeyword(ptrace.StatusCode(int32(code)))...)
	s.fn(s.key, s.val, true)
	s.key = append(s.key[:0], KeyKind...)
	s.val = append(append(s.val[:0], 'k'), KindKeyword(ptrace.SpanKind(int32(kind)))...)
	s.fn(s.key, s.val, true)
	it = pbIter{b: sp}
	for it.next() {
		if it.num == 9 && it.typ == 2 { // Span.attributes
			if err := s.attr("span.", it.body); err != nil {
				return err
			}
		}
	}
	if it.err != nil {
		return it.err
	}
	// Event attributes (Span.events, Event.attributes = 3), then link
	// attributes (Span.links, Link.attributes = 4), as forEachPosting.
	for _, f := range []struct {
		num, attrNum int
		prefix       string
	}{{11, 3, "event."}, {13, 4, "link."}} {
		it = pbIter{b: sp}
		for it.next() {
			if it.num != f.num || it.typ != 2 {
				continue
			}
			ev := pbIter{b: it.body}
			for ev.next() {
				if ev.num == f.attrNum && ev.typ == 2 {
					if err := s.attr(f.prefix, ev.body); err != nil {
						return err
					}
				}
			}
			if ev.err != nil {
				return ev.err
			}
		}
		if it.err != nil {
			return it.err
		}
	}
	return nil
}

// attr handles one KeyValue as attrValue does: scalar values are indexed,
// strings up to maxIndexedValueLen; others are reported as not indexed.
func (s *postingScanner) attr(prefix string, kv []byte) error {
	s.key = append(s.key[:0], prefix...)
	var anyv []byte
	hasValue := false
	it := pbIter{b: kv}
	for it.next() {
		switch {
		case it.num == 1 && it.typ == 2:
			s.key = append(s.key[:len(prefix)], it.body...)
		case it.num == 2 && it.typ == 2:
			anyv, hasValue = it.body, true
		}
	}
	if it.err != nil {
		return it.err
	}
	indexed := false
	if hasValue {
		// The last oneof field present wins, as in protobuf decoding.
		var vt int
		var vv uint64
		var vb []byte
		av := pbIter{b: anyv}
		for av.next() {
			switch n, t := av.num, av.typ; {
			case n == 1 && t == 2, n == 2 && t == 0, n == 3 && t == 0, n == 4 && t == 1, n >= 5 && n <= 7 && t == 2:
				vt, vv, vb = n, av.v, av.body
			}
		}
		if av.err != nil {
			return av.err
		}
		indexed = true
		switch vt {
		case 1:
			if len(vb) > maxIndexedValueLen {
				indexed = false
			} else {
				s.val = append(append(s.val[:0], 's'), vb...)
			}
		case 2:
			s.val = strconv.AppendBool(append(s.val[:0], 'b'), vv != 0)
		case 3:
			s.val = strconv.AppendInt(append(s.val[:0], 'i'), int64(vv), 10)
		case 4:
			s.val = strconv.AppendFloat(append(s.val[:0], 'f'), math.Float64frombits(vv), 'g', -1, 64)
		default:
			indexed = false
		}
	}
	if !indexed {
		s.fn(s.key, nil, false)
		return nil
	}
	s.fn(s.key, s.val, true)
	return nil
}

// fromWalk makes the postings of the trace w has just walked (with attrs)
// from the fields the walk read, instead of walking the bytes again: the
// same calls as scan, in the same order (which values of a key past
// maxPostingValues are kept depends on it). It reports false, having made no call, when
// the walk cannot stand for scan: an irregular trace, or an attribute value
// the columns refuse (scan indexes some of those).
func (s *postingScanner) fromWalk(w *colWalker) (bool, error) {
	if !w.attrs || w.irregular {
		return false, nil
	}
	for i := range w.kvs {
		if w.kvs[i].bad {
			return false, nil
		}
	}
	next := 0 // the next ResourceSpans whose attributes are due
	resAttrs := func(upTo int) {
		for ; next <= upTo && next < len(w.res); next++ {
			for i := w.res[next][0]; i < w.res[next][1]; i++ {
				s.walkedAttr("resource.", w, &w.kvs[i])
			}
		}
	}
	for i := range w.spans {
		sp := &w.spans[i]
		resAttrs(sp.res)
		s.key = append(s.key[:0], KeyName...)
		if len(sp.name) <= maxIndexedValueLen {
			s.val = append(append(s.val[:0], 's'), sp.name...)
			s.fn(s.key, s.val, true)
		} else {
			s.fn(s.key, nil, false)
		}
		s.key = append(s.key[:0], KeyStatus...)
		s.val = append(append(s.val[:0], 'k'), StatusKeyword(ptrace.StatusCode(int32(sp.status)))...)
		s.fn(s.key, s.val, true)
		s.key = append(s.key[:0], KeyKind...)
		s.val = append(append(s.val[:0], 'k'), KindKeyword(ptrace.SpanKind(int32(sp.kind)))...)
		s.fn(s.key, s.val, true)
		for j := sp.kvFrom; j < sp.kvTo; j++ {
			s.walkedAttr("span.", w, &w.kvs[j])
		}
		if err := s.nestedAttrs(w.nested[sp.nFrom:sp.nTo]); err != nil {
			return true, err
		}
	}
	resAttrs(len(w.res))
	return true, nil
}

// nestedAttrs scans the attributes of a span's events, then of its links
// (the column walk keeps both, in order, in nested).
func (s *postingScanner) nestedAttrs(nested []colNested) error {
	for _, link := range [2]bool{false, true} {
		prefix, attrNum := "event.", 3 // Event.attributes
		if link {
			prefix, attrNum = "link.", 4 // Link.attributes
		}
		for _, n := range nested {
			if n.link != link {
				continue
			}
			ev := pbIter{b: n.body}
			for ev.next() {
				if ev.num == attrNum && ev.typ == 2 {
					if err := s.attr(prefix, ev.body); err != nil {
						return err
					}
				}
			}
			if ev.err != nil {
				return ev.err
			}
		}
	}
	return nil
}

// walkedAttr is attr for a KeyValue the column walk has coded (not bad).
func (s *postingScanner) walkedAttr(prefix string, w *colWalker, kv *colKV) {
	s.key = append(append(s.key[:0], prefix...), kv.key...)
	v := w.vbuf[kv.voff : kv.voff+kv.vlen]
	indexed := true
	switch p := v[1:]; v[0] {
	case 's':
		if len(p) > maxIndexedValueLen {
			indexed = false
		} else {
			s.val = append(append(s.val[:0], 's'), p...)
		}
	case 'b':
		s.val = strconv.AppendBool(append(s.val[:0], 'b'), p[0] != 0)
	case 'i':
		s.val = strconv.AppendInt(append(s.val[:0], 'i'), int64(binary.LittleEndian.Uint64(p)), 10)
	case 'f':
		s.val = strconv.AppendFloat(append(s.val[:0], 'f'), math.Float64frombits(binary.LittleEndian.Uint64(p)), 'g', -1, 64)
	default: // 'e': no value
		indexed = false
	}
	if !indexed {
		s.fn(s.key, nil, false)
		return
	}
	s.fn(s.key, s.val, true)
}

// cutReads reports whether every message the cut reads from a stored trace
// (the column walk and the posting scanner: TracesData, ResourceSpans,
// Resource, ScopeSpans, Span, Status, Event, Link, KeyValue and AnyValue)
// parses under their field reader, protoField, in td: only then may the
// request's own bytes be stored verbatim (ADR 0115). pdata skips unknown
// proto2 groups and drops a 10-byte varint's overflow bits; the cut refuses
// both, and would then fail for the whole head. Field numbers beyond int32
// are refused too: pdata truncates them (a huge number can stand for
// trace_id), the cut's readers do not, so the two would read different
// spans. It reads no value and allocates nothing.
func cutReads(td []byte) bool { return fieldsRead(td, msgTraces) }

// The messages cutReads descends into.
const (
	msgNone uint8 = iota
	msgTraces
	msgResourceSpans
	msgResource
	msgScopeSpans
	msgSpan
	msgEvent
	msgLink
	msgKeyValue
	msgPlain // read field by field, nothing inside: Status, AnyValue
)

// readInside is the message a length-delimited field num of a msg holds,
// when the cut reads it.
func readInside(msg uint8, num uint64) uint8 {
	switch msg {
	case msgTraces:
		if num == 1 {
			return msgResourceSpans
		}
	case msgResourceSpans:
		switch num {
		case 1:
			return msgResource
		case 2:
			return msgScopeSpans
		}
	case msgResource:
		if num == 1 {
			return msgKeyValue
		}
	case msgScopeSpans:
		if num == 2 {
			return msgSpan
		}
	case msgSpan:
		switch num {
		case 9:
			return msgKeyValue
		case 11:
			return msgEvent
		case 13:
			return msgLink
		case 15:
			return msgPlain
		}
	case msgEvent:
		if num == 3 {
			return msgKeyValue
		}
	case msgLink:
		if num == 4 {
			return msgKeyValue
		}
	case msgKeyValue:
		if num == 2 {
			return msgPlain
		}
	}
	return msgNone
}

// fieldsRead is protoField's acceptance over every field of b, a msg, and
// of the messages inside it that the cut reads.
func fieldsRead(b []byte, msg uint8) bool {
	for len(b) > 0 {
		var tag uint64
		if b[0] < 0x80 {
			tag, b = uint64(b[0]), b[1:]
		} else {
			t, n := binary.Uvarint(b)
			if n <= 0 {
				return false
			}
			tag, b = t, b[n:]
		}
		num := tag >> 3
		if num == 0 || num > math.MaxInt32 {
			return false
		}
		switch tag & 7 {
		case 0:
			n := 0
			for n < len(b) && n < 10 && b[n] >= 0x80 {
				n++
			}
			if n == len(b) || n == 10 || n == 9 && b[n] > 1 {
				return false // truncated or overflowing, as binary.Uvarint
			}
			b = b[n+1:]
		case 1:
			if len(b) < 8 {
				return false
			}
			b = b[8:]
		case 5:
			if len(b) < 4 {
				return false
			}
			b = b[4:]
		case 2:
			var l uint64
			if len(b) > 0 && b[0] < 0x80 {
				l, b = uint64(b[0]), b[1:]
			} else {
				v, n := binary.Uvarint(b)
				if n <= 0 {
					return false
				}
				l, b = v, b[n:]
			}
			if l > uint64(len(b)) {
				return false
			}
			if inner := readInside(msg, num); inner != msgNone && !fieldsRead(b[:l], inner) {
				return false
			}
			b = b[l:]
		default:
			return false
		}
	}
	return true
}
