package promapi

import (
	"encoding/binary"
	"math"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/prompb"
)

// A remote write 1.0 request (prompb.WriteRequest) decoded without
// allocating per label: label names and values stay in the request bytes,
// each series carries the xxhash of its label fields' raw bytes, and the
// samples are copied into one slice. Anything this decoder does not handle
// exactly as upstream's gogo decoder would (a wire error, an unknown field
// in a series, a repeated scalar, exemplars, histograms) makes it give up,
// and the whole request goes through Prometheus's own handler instead.

type rw1Pair struct{ name, value string } // views into the request bytes

type rw1Sample struct {
	t int64
	v float64
}

type rw1Series struct {
	hash                 uint64
	pairsFrom, pairsTo   int32
	samplesFrom, samples int32
}

type rw1Request struct {
	series  []rw1Series
	pairs   []rw1Pair
	samples []rw1Sample
	digest  xxhash.Digest
}

func (q *rw1Request) reset() {
	q.series, q.pairs, q.samples = q.series[:0], q.pairs[:0], q.samples[:0]
}

// Field numbers and wire types of prompb.WriteRequest, TimeSeries, Label
// and Sample.
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2

	fieldWRTimeseries = 1
	fieldWRMetadata   = 3
	fieldTSLabels     = 1
	fieldTSSamples    = 2
	fieldLabelName    = 1
	fieldLabelValue   = 2
	fieldSampleValue  = 1
	fieldSampleTime   = 2
)

// uvarint reads a varint at b[i:]; ok=false on a truncated or overlong one.
func uvarint(b []byte, i int) (v uint64, next int, ok bool) {
	for shift := uint(0); shift < 64; shift += 7 {
		if i >= len(b) {
			return 0, 0, false
		}
		c := b[i]
		i++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, i, true
		}
	}
	return 0, 0, false
}

// field reads a tag and, for wireBytes, the length-delimited payload.
func field(b []byte, i int) (num int, wire int, payload []byte, v uint64, next int, ok bool) {
	tag, i, ok := uvarint(b, i)
	if !ok || tag>>3 == 0 || tag>>3 > math.MaxInt32 {
		return 0, 0, nil, 0, 0, false
	}
	num, wire = int(tag>>3), int(tag&7)
	switch wire {
	case wireVarint:
		v, i, ok = uvarint(b, i)
		return num, wire, nil, v, i, ok
	case wireFixed64:
		if len(b)-i < 8 {
			return 0, 0, nil, 0, 0, false
		}
		return num, wire, nil, binary.LittleEndian.Uint64(b[i:]), i + 8, true
	case wireBytes:
		n, j, ok := uvarint(b, i)
		if !ok || n > uint64(len(b)-j) {
			return 0, 0, nil, 0, 0, false
		}
		return num, wire, b[j : j+int(n)], 0, j + int(n), true
	}
	return 0, 0, nil, 0, 0, false
}

var labelSep = []byte{0xff}

func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// decode fills q from a decompressed WriteRequest; false means "let
// upstream handle this request".
func (q *rw1Request) decode(body []byte) bool {
	q.reset()
	for i := 0; i < len(body); {
		num, wire, p, _, next, ok := field(body, i)
		if !ok {
			return false
		}
		i = next
		switch {
		case num == fieldWRTimeseries && wire == wireBytes:
			if !q.decodeSeries(p) {
				return false
			}
		case num == fieldWRMetadata && wire == wireBytes:
			// Ignored by the 1.0 receiver, as upstream's (metadata
			// appending is off), but it must decode as upstream's does.
			var md prompb.MetricMetadata
			if md.Unmarshal(p) != nil {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func (q *rw1Request) decodeSeries(b []byte) bool {
	s := rw1Series{pairsFrom: int32(len(q.pairs)), samplesFrom: int32(len(q.samples))}
	q.digest.Reset()
	for i := 0; i < len(b); {
		num, wire, p, _, next, ok := field(b, i)
		if !ok || wire != wireBytes {
			return false
		}
		i = next
		switch num {
		case fieldTSLabels:
			pair, ok := decodeLabel(p)
			if !ok {
				return false
			}
			q.pairs = append(q.pairs, pair)
			q.digest.Write(p)
			q.digest.Write(labelSep) // label boundary
		case fieldTSSamples:
			smp, ok := decodeSample(p)
			if !ok {
				return false
			}
			q.samples = append(q.samples, smp)
		default:
			return false // exemplars, histograms, unknown: upstream's path
		}
	}
	s.hash = q.digest.Sum64()
	s.pairsTo = int32(len(q.pairs))
	s.samples = int32(len(q.samples)) - s.samplesFrom
	q.series = append(q.series, s)
	return true
}

func decodeLabel(b []byte) (rw1Pair, bool) {
	var l rw1Pair
	var seenName, seenValue bool
	for i := 0; i < len(b); {
		num, wire, p, _, next, ok := field(b, i)
		if !ok || wire != wireBytes {
			return l, false
		}
		i = next
		switch {
		case num == fieldLabelName && !seenName:
			l.name, seenName = view(p), true
		case num == fieldLabelValue && !seenValue:
			l.value, seenValue = view(p), true
		default:
			return l, false
		}
	}
	return l, true
}

func decodeSample(b []byte) (rw1Sample, bool) {
	var s rw1Sample
	var seenV, seenT bool
	for i := 0; i < len(b); {
		num, wire, _, v, next, ok := field(b, i)
		if !ok {
			return s, false
		}
		i = next
		switch {
		case num == fieldSampleValue && wire == wireFixed64 && !seenV:
			s.v, seenV = math.Float64frombits(v), true
		case num == fieldSampleTime && wire == wireVarint && !seenT:
			s.t, seenT = int64(v), true
		default:
			return s, false
		}
	}
	return s, true
}
