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

// each calls f for every field of message b.
func each(b []byte, f func(num, typ int, v uint64, body []byte) error) error {
	for len(b) > 0 {
		num, typ, v, body, n, err := protoField(b)
		if err != nil {
			return err
		}
		if err := f(num, typ, v, body); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (s *postingScanner) scan(td []byte) error {
	return each(td, func(num, typ int, _ uint64, rs []byte) error {
		if num != 1 || typ != 2 { // TracesData.resource_spans
			return nil
		}
		// Resource attributes first, then spans, whatever the wire order.
		if err := each(rs, func(num, typ int, _ uint64, res []byte) error {
			if num != 1 || typ != 2 { // ResourceSpans.resource
				return nil
			}
			return each(res, func(num, typ int, _ uint64, kv []byte) error {
				if num != 1 || typ != 2 { // Resource.attributes
					return nil
				}
				return s.attr("resource.", kv)
			})
		}); err != nil {
			return err
		}
		return each(rs, func(num, typ int, _ uint64, ss []byte) error {
			if num != 2 || typ != 2 { // ResourceSpans.scope_spans
				return nil
			}
			return each(ss, func(num, typ int, _ uint64, sp []byte) error {
				if num != 2 || typ != 2 { // ScopeSpans.spans
					return nil
				}
				return s.span(sp)
			})
		})
	})
}

func (s *postingScanner) span(sp []byte) error {
	var name []byte
	var kind, code uint64
	if err := each(sp, func(num, typ int, v uint64, body []byte) error {
		switch {
		case num == 5 && typ == 2: // name
			name = body
		case num == 6 && typ == 0: // kind
			kind = v
		case num == 15 && typ == 2: // status
			code = 0
			return each(body, func(num, typ int, v uint64, _ []byte) error {
				if num == 3 && typ == 0 { // Status.code
					code = v
				}
				return nil
			})
		}
		return nil
	}); err != nil {
		return err
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
	return each(sp, func(num, typ int, _ uint64, kv []byte) error {
		if num != 9 || typ != 2 { // Span.attributes
			return nil
		}
		return s.attr("span.", kv)
	})
}

// attr handles one KeyValue as attrValue does: scalar values are indexed,
// strings up to maxIndexedValueLen; others are reported as not indexed.
func (s *postingScanner) attr(prefix string, kv []byte) error {
	s.key = append(s.key[:0], prefix...)
	var anyv []byte
	hasValue := false
	if err := each(kv, func(num, typ int, _ uint64, body []byte) error {
		switch {
		case num == 1 && typ == 2:
			s.key = append(s.key[:len(prefix)], body...)
		case num == 2 && typ == 2:
			anyv, hasValue = body, true
		}
		return nil
	}); err != nil {
		return err
	}
	indexed := false
	if hasValue {
		// The last oneof field present wins, as in protobuf decoding.
		var vt int
		var vv uint64
		var vb []byte
		if err := each(anyv, func(num, typ int, v uint64, body []byte) error {
			switch {
			case num == 1 && typ == 2, num == 2 && typ == 0, num == 3 && typ == 0,
				num == 4 && typ == 1, num >= 5 && num <= 7 && typ == 2:
				vt, vv, vb = num, v, body
			}
			return nil
		}); err != nil {
			return err
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
