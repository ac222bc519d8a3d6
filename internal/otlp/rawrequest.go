package otlp

import (
	"context"
	"encoding/binary"
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
	Resource     int32  // its resource, for ResourceAttributes
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
	// The span's ranges in the request's attribute list: its own
	// attributes, then its events', then its links' (each in pdata's order).
	attrsFrom, attrsTo, eventsTo, linksTo int32
}

// RawTracesRequest is one checked OTLP/HTTP protobuf trace request.
type RawTracesRequest struct {
	body      []byte
	spans     []RawSpan
	resources []rawResource
	attrs     []RawAttr    // every attribute the walk read, by span and resource
	scratch   [3][]RawAttr // a span's own, event and link attributes until its end
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

type rawResource struct{ from, to int32 }

// RawAttr is one attribute as the walk read it.
type RawAttr struct {
	Key   []byte
	Value RawValue
}

// ResourceCount is how many ResourceSpans the request holds.
func (r *RawTracesRequest) ResourceCount() int { return len(r.resources) }

// ResourceAttributes are the attributes of resource i, in pdata's order.
func (r *RawTracesRequest) ResourceAttributes(i int32) []RawAttr {
	return r.attrs[r.resources[i].from:r.resources[i].to]
}

// SpanAttributes are span i's attributes, in pdata's order.
func (r *RawTracesRequest) SpanAttributes(i int) []RawAttr {
	s := &r.spans[i]
	return r.attrs[s.attrsFrom:s.attrsTo]
}

// EventAttributes are the attributes of all of span i's events, event by event.
func (r *RawTracesRequest) EventAttributes(i int) []RawAttr {
	s := &r.spans[i]
	return r.attrs[s.attrsTo:s.eventsTo]
}

// LinkAttributes are the attributes of all of span i's links, link by link.
func (r *RawTracesRequest) LinkAttributes(i int) []RawAttr {
	s := &r.spans[i]
	return r.attrs[s.eventsTo:s.linksTo]
}

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
	// One-byte tags and lengths (field numbers below 16, bodies below 128
	// bytes) are nearly all of them.
	if len(b) >= 2 && b[0] < 0x80 && b[0]&7 == wireLen && b[0] >= 8 && b[1] < 0x80 {
		l := int(b[1])
		if l > len(b)-2 {
			it.bad = true
			return false
		}
		it.num, it.typ, it.v, it.body, it.b = int(b[0]>>3), wireLen, 0, b[2:2+l:2+l], b[2+l:]
		return true
	}
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

// ParseRawTraces is the receiver's walk of an OTLP/HTTP protobuf trace
// request, into a request of its own (for tests and tools: the receiver
// pools them). ok is false when the request would take pdata's path.
func ParseRawTraces(body []byte) (req *RawTracesRequest, ok bool) {
	req = new(RawTracesRequest)
	return req, parseRawTraces(body, req)
}

// parseRawTraces walks body into req (reusing its slices). ok is false when
// the walk refuses: body may be malformed, hold something pdata handles in
// a way the walk does not, or a span with an all-zero trace or span ID
// (which the pdata path drops and counts).
func parseRawTraces(body []byte, req *RawTracesRequest) bool {
	*req = RawTracesRequest{body: body, spans: req.spans[:0], resources: req.resources[:0], attrs: req.attrs[:0], scratch: req.scratch}
	w := rawWalker{req: req}
	it := wireIter{b: body}
	for it.next() {
		if it.num != 1 || it.typ != wireLen || !w.resourceSpans(it.body) {
			return false
		}
	}
	return !it.bad
}

func (w *rawWalker) resourceSpans(b []byte) bool {
	ri := int32(len(w.req.resources))
	w.req.resources = append(w.req.resources, rawResource{})
	var seen uint8
	it := wireIter{b: b}
	for it.next() {
		if it.typ != wireLen {
			return false
		}
		switch it.num {
		case 1:
			from := int32(len(w.req.attrs))
			if !once(&seen, 1) || !w.resource(it.body) {
				return false
			}
			w.req.resources[ri] = rawResource{from, int32(len(w.req.attrs))}
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
			if _, ok := w.keyValue(it.body, 0, true, &w.req.attrs); !ok {
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
			if _, ok := w.keyValue(it.body, 0, false, nil); !ok {
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
	// The span's own attributes first, then its events', then its links':
	// the order pdata's consumers read them in, whatever the wire order.
	sc := &w.req.scratch
	spanAttrs, events, links := sc[0][:0], sc[1][:0], sc[2][:0]
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
			n, ok = w.keyValue(it.body, 0, true, &spanAttrs)
			size += lenField(n)
		case it.num == 11 && it.typ == wireLen:
			var n int
			n, ok = w.event(it.body, &events)
			size += lenField(n)
		case it.num == 13 && it.typ == wireLen:
			var n int
			n, ok = w.link(it.body, &links)
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
	a := &w.req.attrs
	s.attrsFrom = int32(len(*a))
	*a = append(*a, spanAttrs...)
	s.attrsTo = int32(len(*a))
	*a = append(*a, events...)
	s.eventsTo = int32(len(*a))
	*a = append(*a, links...)
	s.linksTo = int32(len(*a))
	sc[0], sc[1], sc[2] = spanAttrs[:0], events[:0], links[:0]
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

func (w *rawWalker) event(b []byte, attrs *[]RawAttr) (int, bool) {
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
			n, ok := w.keyValue(it.body, 0, false, attrs)
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

func (w *rawWalker) link(b []byte, attrs *[]RawAttr) (int, bool) {
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
			n, ok := w.keyValue(it.body, 0, false, attrs)
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

// keyValue checks a KeyValue, appends it to attrs (when not nil) and
// returns its pdata size. top marks a resource or span attribute, whose
// type the generator cares about.
func (w *rawWalker) keyValue(b []byte, depth int, top bool, attrs *[]RawAttr) (int, bool) {
	var seen uint8
	size := 0
	valueSize := 0
	var kv RawAttr
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
			kv.Key = it.body
			if len(it.body) > 0 {
				size += lenField(len(it.body))
			}
		case 2:
			if !once(&seen, 2) {
				return 0, false
			}
			n, v, ok := w.anyValue(it.body, depth+1)
			if !ok {
				return 0, false
			}
			if top && (v.Type == pcommon.ValueTypeSlice || v.Type == pcommon.ValueTypeMap) {
				w.req.complexAttrs = true
			}
			kv.Value, valueSize = v, n
		default:
			return 0, false
		}
	}
	if it.bad {
		return 0, false
	}
	if attrs != nil {
		*attrs = append(*attrs, kv)
	}
	return size + lenField(valueSize), true
}

func (w *rawWalker) anyValue(b []byte, depth int) (int, RawValue, bool) {
	var v RawValue
	if depth > maxValueDepth {
		return 0, v, false
	}
	size := 0
	it := wireIter{b: b}
	for it.next() {
		if v.Type != pcommon.ValueTypeEmpty {
			return 0, v, false // a second oneof field: pdata keeps the last, the walk does not follow
		}
		switch {
		case it.num == 1 && it.typ == wireLen:
			v, size = RawValue{Type: pcommon.ValueTypeStr, Str: it.body}, lenField(len(it.body))
		case it.num == 2 && it.typ == wireVarint:
			v, size = RawValue{Type: pcommon.ValueTypeBool, Bool: it.v != 0}, 2
		case it.num == 3 && it.typ == wireVarint:
			v, size = RawValue{Type: pcommon.ValueTypeInt, Int: int64(it.v)}, 1+sov(it.v)
		case it.num == 4 && it.typ == wireI64:
			v, size = RawValue{Type: pcommon.ValueTypeDouble, Double: math.Float64frombits(it.v)}, 9
		case it.num == 5 && it.typ == wireLen:
			n, ok := w.list(it.body, depth, false)
			if !ok {
				return 0, v, false
			}
			v, size = RawValue{Type: pcommon.ValueTypeSlice}, lenField(n)
		case it.num == 6 && it.typ == wireLen:
			n, ok := w.list(it.body, depth, true)
			if !ok {
				return 0, v, false
			}
			v, size = RawValue{Type: pcommon.ValueTypeMap}, lenField(n)
		case it.num == 7 && it.typ == wireLen:
			v, size = RawValue{Type: pcommon.ValueTypeBytes, Str: it.body}, lenField(len(it.body))
		default:
			return 0, v, false
		}
	}
	return size, v, !it.bad
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
			n, ok = w.keyValue(it.body, depth, false, nil)
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
