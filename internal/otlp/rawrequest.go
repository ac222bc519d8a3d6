package otlp

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"math/bits"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// RawTracesConsumer is a TracesConsumer that can also take an OTLP/HTTP
// protobuf request without pdata (ADR 0118). The receiver uses it when the
// request's bytes pass parseRawTraces, a walk that accepts only what pdata
// decodes to the same spans; every other request, and every consumer that
// does not implement it, takes ConsumeTraces. The rules of ConsumeTraces
// apply: the request and its bytes are valid only until the call returns.
type RawTracesConsumer interface {
	TracesConsumer
	// TakesRawTraces reports whether raw requests save anything: false
	// for a wrapper whose consumers need pdata (the receiver then decodes
	// as before instead of walking the request first).
	TakesRawTraces() bool
	ConsumeRawTraces(ctx context.Context, req *RawTracesRequest) error
}

// takesRaw reports whether c takes raw requests and saves by them.
func takesRaw(c TracesConsumer) bool {
	rc, ok := c.(RawTracesConsumer)
	return ok && rc.TakesRawTraces()
}

// RawSpan is what the walk read of one span. Strings are views of the
// request's bytes: copy what is kept past the call.
type RawSpan struct {
	Resource     int32  // index into Resources
	Bytes        []byte // the Span message as the sender encoded it
	TraceID      pcommon.TraceID
	SpanID       pcommon.SpanID
	ParentSpanID pcommon.SpanID
	Kind         ptrace.SpanKind
	StatusCode   ptrace.StatusCode
	Start, End   uint64
	Name         []byte
	StatusMsg    []byte
	// Size is the span's size as pdata encodes it (ptrace.ProtoMarshaler
	// SpanSize), which differs from len(Bytes) when the sender left out
	// fields pdata always writes or wrote defaults pdata leaves out.
	Size int
	// Dropped marks a span a consumer did not store (a retry the store
	// already held): consumers after it skip it, as they would not see it
	// in pdata (the store removes it from td).
	Dropped bool
}

// RawTracesRequest is one checked OTLP/HTTP protobuf trace request.
type RawTracesRequest struct {
	body      []byte
	spans     []RawSpan
	resources [][]byte // the Resource messages (nil when absent)
	// complexAttrs: a resource or span attribute whose value is a list or
	// a map (pdata's AsString of it is JSON).
	complexAttrs bool
	td           ptrace.Traces
	decoded      bool
	dropped      bool
}

// Body is the request's protobuf (an ExportTraceServiceRequest, which is
// also a TracesData).
func (r *RawTracesRequest) Body() []byte { return r.body }

// Spans lists the request's spans in wire order.
func (r *RawTracesRequest) Spans() []RawSpan { return r.spans }

// Resources are the Resource messages of the request's ResourceSpans, in order.
func (r *RawTracesRequest) Resources() [][]byte { return r.resources }

// SpanCount is how many spans the request holds.
func (r *RawTracesRequest) SpanCount() int { return len(r.spans) }

// ComplexAttributes reports a resource or span attribute whose value is a
// list or a map.
func (r *RawTracesRequest) ComplexAttributes() bool { return r.complexAttrs }

// Drop marks span i as not stored, for the consumers after the caller.
func (r *RawTracesRequest) Drop(i int) {
	if !r.spans[i].Dropped {
		r.spans[i].Dropped = true
		r.dropped = true
	}
}

// Decoded returns the pdata of the request once a consumer asked for it
// (Traces); from then on pdata is what every later consumer reads.
func (r *RawTracesRequest) Decoded() (ptrace.Traces, bool) { return r.td, r.decoded }

// Unchanged reports that no span was dropped: the bytes still hold exactly
// the request's spans.
func (r *RawTracesRequest) Unchanged() bool { return !r.dropped }

// Traces decodes the request with pdata (once), without the dropped spans,
// for a consumer that needs pdata.
func (r *RawTracesRequest) Traces() (ptrace.Traces, error) {
	if r.decoded {
		return r.td, nil
	}
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(r.body); err != nil {
		return ptrace.Traces{}, err
	}
	td := req.Traces()
	if r.dropped {
		i := 0
		rss := td.ResourceSpans()
		for a := range rss.Len() {
			sss := rss.At(a).ScopeSpans()
			for b := range sss.Len() {
				sss.At(b).Spans().RemoveIf(func(ptrace.Span) bool {
					drop := i < len(r.spans) && r.spans[i].Dropped
					i++
					return drop
				})
			}
		}
	}
	r.td, r.decoded = td, true
	return td, nil
}

// ConsumeRawOrTraces hands req to c: raw when c takes raw requests and no
// consumer before it decoded req, else as pdata (with the request's bytes
// for RawTraces while they still match).
func ConsumeRawOrTraces(ctx context.Context, c TracesConsumer, req *RawTracesRequest) error {
	if rc, ok := c.(RawTracesConsumer); ok && !req.decoded {
		return rc.ConsumeRawTraces(ctx, req)
	}
	td, err := req.Traces()
	if err != nil {
		return err
	}
	if req.Unchanged() {
		ctx = withRawTraces(ctx, td, req.body)
	}
	return c.ConsumeTraces(ctx, td)
}

// RawValue is one attribute value as the walk read it.
type RawValue struct {
	Type   pcommon.ValueType
	Str    []byte // string or bytes
	Int    int64
	Double float64
	Bool   bool
}

// RangeAttributes calls fn for each KeyValue of field num of msg (a
// message parseRawTraces accepted), in wire order, until fn returns false.
// Resource attributes are field 1 of a Resource, span attributes field 9 of
// a Span, event attributes field 3 of an Event, link attributes field 4 of
// a Link.
func RangeAttributes(msg []byte, num int, fn func(key []byte, v RawValue) bool) {
	for it := (wireIter{b: msg}); it.next(); {
		if it.num != num || it.typ != wireLen {
			continue
		}
		var key []byte
		var v RawValue
		for kv := (wireIter{b: it.body}); kv.next(); {
			switch kv.num {
			case 1:
				key = kv.body
			case 2:
				v = rawValueOf(kv.body)
			}
		}
		if !fn(key, v) {
			return
		}
	}
}

// RangeNested calls fn for each message of field num of msg: a Span's
// events (11) or links (13).
func RangeNested(msg []byte, num int, fn func(nested []byte)) {
	for it := (wireIter{b: msg}); it.next(); {
		if it.num == num && it.typ == wireLen {
			fn(it.body)
		}
	}
}

func rawValueOf(b []byte) RawValue {
	var v RawValue
	for it := (wireIter{b: b}); it.next(); {
		switch it.num {
		case 1:
			v = RawValue{Type: pcommon.ValueTypeStr, Str: it.body}
		case 2:
			v = RawValue{Type: pcommon.ValueTypeBool, Bool: it.v != 0}
		case 3:
			v = RawValue{Type: pcommon.ValueTypeInt, Int: int64(it.v)}
		case 4:
			v = RawValue{Type: pcommon.ValueTypeDouble, Double: math.Float64frombits(it.v)}
		case 5:
			v = RawValue{Type: pcommon.ValueTypeSlice}
		case 6:
			v = RawValue{Type: pcommon.ValueTypeMap}
		case 7:
			v = RawValue{Type: pcommon.ValueTypeBytes, Str: it.body}
		}
	}
	return v
}

const (
	wireVarint = 0
	wireI64    = 1
	wireLen    = 2
	wireI32    = 5
)

// wireIter walks the fields of one protobuf message.
type wireIter struct {
	b    []byte
	num  int
	typ  int
	v    uint64
	body []byte
	bad  bool
}

func (it *wireIter) next() bool {
	if len(it.b) == 0 || it.bad {
		return false
	}
	b := it.b
	tag, n := binary.Uvarint(b)
	if n <= 0 || tag>>3 == 0 || tag>>3 > math.MaxInt32 {
		it.bad = true
		return false
	}
	it.num, it.typ, it.body, it.v = int(tag>>3), int(tag&7), nil, 0
	switch it.typ {
	case wireVarint:
		v, m := binary.Uvarint(b[n:])
		if m <= 0 {
			it.bad = true
			return false
		}
		it.v, n = v, n+m
	case wireI64:
		if len(b) < n+8 {
			it.bad = true
			return false
		}
		it.v, n = binary.LittleEndian.Uint64(b[n:]), n+8
	case wireI32:
		if len(b) < n+4 {
			it.bad = true
			return false
		}
		it.v, n = uint64(binary.LittleEndian.Uint32(b[n:])), n+4
	case wireLen:
		l, m := binary.Uvarint(b[n:])
		if m <= 0 || l > uint64(len(b)-n-m) {
			it.bad = true
			return false
		}
		n += m
		it.body, n = b[n:n+int(l):n+int(l)], n+int(l)
	default:
		it.bad = true
		return false
	}
	it.b = b[n:]
	return true
}

// errRawRefused: the walk does not vouch for this request; pdata decodes it.
var errRawRefused = errors.New("raw walk refused the request")

// sov is the size of v as a varint.
func sov(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

// lenField is pdata's size of a length-delimited field holding l bytes.
func lenField(l int) int { return 1 + sov(uint64(l)) + l }

// rawWalker checks a request field by field and fills the request's view.
// It accepts a message only when every field is one pdata knows, with the
// wire type pdata expects, at most once when singular, and IDs of a valid
// length: what it accepts pdata decodes without error, to the spans it
// read. Anything else (unknown fields, deprecated fields pdata migrates,
// dictionary indexes, bad lengths, nesting past maxValueDepth) refuses,
// and the request takes pdata's path as before.
type rawWalker struct {
	req *RawTracesRequest
}

const maxValueDepth = 16

// parseRawTraces walks body into req (reusing its slices). ok is false when
// the walk refuses: body may be malformed, hold something pdata handles in
// a way the walk does not, or a span with an all-zero trace or span ID
// (which the pdata path drops and counts).
func parseRawTraces(body []byte, req *RawTracesRequest) bool {
	*req = RawTracesRequest{body: body, spans: req.spans[:0], resources: req.resources[:0]}
	w := rawWalker{req: req}
	for it := (wireIter{b: body}); ; {
		if !it.next() {
			if it.bad {
				return false
			}
			break
		}
		if it.num != 1 || it.typ != wireLen {
			return false
		}
		if !w.resourceSpans(it.body) {
			return false
		}
	}
	return true
}

func (w *rawWalker) resourceSpans(b []byte) bool {
	ri := int32(len(w.req.resources))
	w.req.resources = append(w.req.resources, nil)
	var seen uint8
	it := wireIter{b: b}
	for it.next() {
		if it.typ != wireLen {
			return false
		}
		switch it.num {
		case 1:
			if !once(&seen, 1) || !w.resource(it.body) {
				return false
			}
			w.req.resources[ri] = it.body
		case 2:
			if !w.scopeSpans(it.body, ri) {
				return false
			}
		case 3:
			if !once(&seen, 2) {
				return false
			}
		default:
			return false
		}
	}
	return !it.bad
}

// once records bit in seen and reports whether it was new.
func once(seen *uint8, bit uint8) bool {
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

func (w *rawWalker) resource(b []byte) bool {
	var seen uint8
	it := wireIter{b: b}
	for it.next() {
		switch {
		case it.num == 1 && it.typ == wireLen:
			if _, ok := w.keyValue(it.body, 0, true); !ok {
				return false
			}
		case it.num == 2 && it.typ == wireVarint:
			if !once(&seen, 1) {
				return false
			}
		default:
			return false
		}
	}
	return !it.bad
}

func (w *rawWalker) scopeSpans(b []byte, ri int32) bool {
	var seen uint8
	it := wireIter{b: b}
	for it.next() {
		if it.typ != wireLen {
			return false
		}
		switch it.num {
		case 1:
			if !once(&seen, 1) || !w.scope(it.body) {
				return false
			}
		case 2:
			if !w.span(it.body, ri) {
				return false
			}
		case 3:
			if !once(&seen, 2) {
				return false
			}
		default:
			return false
		}
	}
	return !it.bad
}

func (w *rawWalker) scope(b []byte) bool {
	var seen uint8
	it := wireIter{b: b}
	for it.next() {
		switch {
		case (it.num == 1 || it.num == 2) && it.typ == wireLen:
			if !once(&seen, uint8(it.num)) {
				return false
			}
		case it.num == 3 && it.typ == wireLen:
			if _, ok := w.keyValue(it.body, 0, false); !ok {
				return false
			}
		case it.num == 4 && it.typ == wireVarint:
			if !once(&seen, 4) {
				return false
			}
		default:
			return false
		}
	}
	return !it.bad
}

// span bits of singular fields seen.
const (
	spTraceID = 1 << iota
	spSpanID
	spTraceState
	spParent
	spFlags
	spName
	spKind
	spStart
	spEnd
	spDroppedAttrs
	spDroppedEvents
	spDroppedLinks
	spStatus
)

func (w *rawWalker) span(b []byte, ri int32) bool {
	s := RawSpan{Resource: ri, Bytes: b}
	var seen uint32
	first := func(bit uint32) bool {
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	}
	size := 0
	it := wireIter{b: b}
	for it.next() {
		ok := true
		switch {
		case it.num == 1 && it.typ == wireLen:
			ok = first(spTraceID) && len(it.body) == 16
			copy(s.TraceID[:], it.body)
		case it.num == 2 && it.typ == wireLen:
			ok = first(spSpanID) && len(it.body) == 8
			copy(s.SpanID[:], it.body)
		case it.num == 3 && it.typ == wireLen:
			ok = first(spTraceState)
			if len(it.body) > 0 {
				size += lenField(len(it.body))
			}
		case it.num == 4 && it.typ == wireLen:
			ok = first(spParent) && (len(it.body) == 0 || len(it.body) == 8)
			copy(s.ParentSpanID[:], it.body)
		case it.num == 16 && it.typ == wireI32:
			ok = first(spFlags)
			if it.v != 0 {
				size += 6
			}
		case it.num == 5 && it.typ == wireLen:
			ok = first(spName)
			s.Name = it.body
			if len(it.body) > 0 {
				size += lenField(len(it.body))
			}
		case it.num == 6 && it.typ == wireVarint:
			ok = first(spKind) && it.v <= uint64(ptrace.SpanKindConsumer)
			s.Kind = ptrace.SpanKind(it.v)
			if it.v != 0 {
				size += 1 + sov(it.v)
			}
		case (it.num == 7 || it.num == 8) && it.typ == wireI64:
			if it.num == 7 {
				ok, s.Start = first(spStart), it.v
			} else {
				ok, s.End = first(spEnd), it.v
			}
			if it.v != 0 {
				size += 9
			}
		case it.num == 9 && it.typ == wireLen:
			var n int
			n, ok = w.keyValue(it.body, 0, true)
			size += lenField(n)
		case it.num == 11 && it.typ == wireLen:
			var n int
			n, ok = w.event(it.body)
			size += lenField(n)
		case it.num == 13 && it.typ == wireLen:
			var n int
			n, ok = w.link(it.body)
			size += lenField(n)
		case (it.num == 10 || it.num == 12 || it.num == 14) && it.typ == wireVarint:
			bit := uint32(spDroppedAttrs)
			if it.num == 12 {
				bit = spDroppedEvents
			} else if it.num == 14 {
				bit = spDroppedLinks
			}
			ok = first(bit)
			if uint32(it.v) != 0 {
				size += 1 + sov(uint64(uint32(it.v)))
			}
		case it.num == 15 && it.typ == wireLen:
			var n int
			ok = first(spStatus)
			n, s.StatusCode, s.StatusMsg, ok = statusOf(it.body, ok)
			size += lenField(n) - lenField(0) // the always-written status is added below
		default:
			ok = false
		}
		if !ok {
			return false
		}
	}
	if it.bad || s.TraceID.IsEmpty() || s.SpanID.IsEmpty() {
		return false
	}
	// pdata always writes trace, span and parent IDs and the status.
	size += lenField(16) + lenField(8) + lenField(0)
	if !s.ParentSpanID.IsEmpty() {
		size += 8
	}
	s.Size = size + lenField(0)
	w.req.spans = append(w.req.spans, s)
	return true
}

func statusOf(b []byte, ok bool) (size int, code ptrace.StatusCode, msg []byte, _ bool) {
	var seen uint8
	it := wireIter{b: b}
	for ok && it.next() {
		switch {
		case it.num == 2 && it.typ == wireLen:
			ok = once(&seen, 1)
			msg = it.body
			if len(msg) > 0 {
				size += lenField(len(msg))
			}
		case it.num == 3 && it.typ == wireVarint:
			ok = once(&seen, 2) && it.v <= uint64(ptrace.StatusCodeError)
			code = ptrace.StatusCode(it.v)
			if it.v != 0 {
				size += 1 + sov(it.v)
			}
		default:
			ok = false
		}
	}
	return size, code, msg, ok && !it.bad
}

func (w *rawWalker) event(b []byte) (int, bool) {
	var seen uint8
	size := 0
	it := wireIter{b: b}
	for it.next() {
		switch {
		case it.num == 1 && it.typ == wireI64:
			if !once(&seen, 1) {
				return 0, false
			}
			if it.v != 0 {
				size += 9
			}
		case it.num == 2 && it.typ == wireLen:
			if !once(&seen, 2) {
				return 0, false
			}
			if len(it.body) > 0 {
				size += lenField(len(it.body))
			}
		case it.num == 3 && it.typ == wireLen:
			n, ok := w.keyValue(it.body, 0, false)
			if !ok {
				return 0, false
			}
			size += lenField(n)
		case it.num == 4 && it.typ == wireVarint:
			if !once(&seen, 4) {
				return 0, false
			}
			if uint32(it.v) != 0 {
				size += 1 + sov(uint64(uint32(it.v)))
			}
		default:
			return 0, false
		}
	}
	return size, !it.bad
}

func (w *rawWalker) link(b []byte) (int, bool) {
	var seen uint8
	size := 0
	var tid, sid int
	it := wireIter{b: b}
	for it.next() {
		switch {
		case it.num == 1 && it.typ == wireLen:
			if !once(&seen, 1) || (len(it.body) != 0 && len(it.body) != 16) {
				return 0, false
			}
			if !isZero(it.body) {
				tid = 16
			}
		case it.num == 2 && it.typ == wireLen:
			if !once(&seen, 2) || (len(it.body) != 0 && len(it.body) != 8) {
				return 0, false
			}
			if !isZero(it.body) {
				sid = 8
			}
		case it.num == 3 && it.typ == wireLen:
			if !once(&seen, 4) {
				return 0, false
			}
			if len(it.body) > 0 {
				size += lenField(len(it.body))
			}
		case it.num == 4 && it.typ == wireLen:
			n, ok := w.keyValue(it.body, 0, false)
			if !ok {
				return 0, false
			}
			size += lenField(n)
		case it.num == 5 && it.typ == wireVarint:
			if !once(&seen, 8) {
				return 0, false
			}
			if uint32(it.v) != 0 {
				size += 1 + sov(uint64(uint32(it.v)))
			}
		case it.num == 6 && it.typ == wireI32:
			if !once(&seen, 16) {
				return 0, false
			}
			if it.v != 0 {
				size += 5
			}
		default:
			return 0, false
		}
	}
	return size + lenField(tid) + lenField(sid), !it.bad
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// keyValue checks a KeyValue and returns its pdata size. top marks a
// resource or span attribute, whose type the generator cares about.
func (w *rawWalker) keyValue(b []byte, depth int, top bool) (int, bool) {
	var seen uint8
	size := 0
	valueSize := 0
	it := wireIter{b: b}
	for it.next() {
		if it.typ != wireLen {
			return 0, false
		}
		switch it.num {
		case 1:
			if !once(&seen, 1) {
				return 0, false
			}
			if len(it.body) > 0 {
				size += lenField(len(it.body))
			}
		case 2:
			if !once(&seen, 2) {
				return 0, false
			}
			n, typ, ok := w.anyValue(it.body, depth+1)
			if !ok {
				return 0, false
			}
			if top && (typ == pcommon.ValueTypeSlice || typ == pcommon.ValueTypeMap) {
				w.req.complexAttrs = true
			}
			valueSize = n
		default:
			return 0, false
		}
	}
	return size + lenField(valueSize), !it.bad
}

func (w *rawWalker) anyValue(b []byte, depth int) (int, pcommon.ValueType, bool) {
	if depth > maxValueDepth {
		return 0, 0, false
	}
	typ := pcommon.ValueTypeEmpty
	size := 0
	it := wireIter{b: b}
	for it.next() {
		if typ != pcommon.ValueTypeEmpty {
			return 0, 0, false // a second oneof field: pdata keeps the last, the walk does not follow
		}
		switch {
		case it.num == 1 && it.typ == wireLen:
			typ, size = pcommon.ValueTypeStr, lenField(len(it.body))
		case it.num == 2 && it.typ == wireVarint:
			typ, size = pcommon.ValueTypeBool, 2
		case it.num == 3 && it.typ == wireVarint:
			typ, size = pcommon.ValueTypeInt, 1+sov(it.v)
		case it.num == 4 && it.typ == wireI64:
			typ, size = pcommon.ValueTypeDouble, 9
		case it.num == 5 && it.typ == wireLen:
			n, ok := w.list(it.body, depth, false)
			if !ok {
				return 0, 0, false
			}
			typ, size = pcommon.ValueTypeSlice, lenField(n)
		case it.num == 6 && it.typ == wireLen:
			n, ok := w.list(it.body, depth, true)
			if !ok {
				return 0, 0, false
			}
			typ, size = pcommon.ValueTypeMap, lenField(n)
		case it.num == 7 && it.typ == wireLen:
			typ, size = pcommon.ValueTypeBytes, lenField(len(it.body))
		default:
			return 0, 0, false
		}
	}
	return size, typ, !it.bad
}

// list checks an ArrayValue (AnyValues) or a KeyValueList (KeyValues).
func (w *rawWalker) list(b []byte, depth int, kvs bool) (int, bool) {
	size := 0
	it := wireIter{b: b}
	for it.next() {
		if it.num != 1 || it.typ != wireLen {
			return 0, false
		}
		var n int
		var ok bool
		if kvs {
			n, ok = w.keyValue(it.body, depth, false)
		} else {
			n, _, ok = w.anyValue(it.body, depth+1)
		}
		if !ok {
			return 0, false
		}
		size += lenField(n)
	}
	return size, !it.bad
}
