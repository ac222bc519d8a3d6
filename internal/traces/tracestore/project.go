package tracestore

import (
	"encoding/binary"
)

// Projection names what of each trace a search's callback reads, so Search
// can drop the rest from the protobuf bytes before decoding them: decoding
// attributes into pdata is most of a broad search's CPU, and a metrics
// query such as `{} | rate() by (resource.service.name)` reads one
// attribute of thousands. Span fields other than attributes, events and
// links (IDs, name, kind, times, status) are always kept, and so is the
// resource's service.name (root service, per-service statistics).
type Projection struct {
	// SpanAttrs, ResourceAttrs and ScopeAttrs are the attribute keys to
	// keep at each level; AllSpanAttrs and the like keep every one.
	SpanAttrs, ResourceAttrs, ScopeAttrs          map[string]bool
	AllSpanAttrs, AllResourceAttrs, AllScopeAttrs bool
	// Events and Links keep the spans' events and links, whole.
	Events, Links bool
	// DropNames drops span names and status messages too.
	DropNames bool
}

// projector applies a Projection with reusable buffers, one per nesting
// level, so projecting allocates nothing once they have grown.
type projector struct {
	p                             *Projection
	out, rs, res, ss, scope, span []byte
}

// apply returns td without what p drops. The result aliases the
// projector's buffer: valid until the next call.
func (pj *projector) apply(td []byte) ([]byte, error) {
	out := pj.out[:0]
	for b := td; len(b) > 0; {
		num, typ, _, body, n, err := protoField(b)
		if err != nil {
			return nil, err
		}
		if num == 1 && typ == 2 { // TracesData.resource_spans
			if pj.rs, err = pj.resourceSpans(pj.rs[:0], body); err != nil {
				return nil, err
			}
			out = appendLenField(out, 1, pj.rs)
		} else {
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	pj.out = out
	return out, nil
}

func (pj *projector) resourceSpans(out, b []byte) ([]byte, error) {
	for len(b) > 0 {
		num, typ, _, body, n, err := protoField(b)
		if err != nil {
			return nil, err
		}
		switch {
		case num == 1 && typ == 2 && !pj.p.AllResourceAttrs: // resource
			if pj.res, err = keepAttributes(pj.res[:0], body, 1, pj.p.ResourceAttrs, true); err != nil {
				return nil, err
			}
			out = appendLenField(out, 1, pj.res)
		case num == 2 && typ == 2: // scope_spans
			if pj.ss, err = pj.scopeSpans(pj.ss[:0], body); err != nil {
				return nil, err
			}
			out = appendLenField(out, 2, pj.ss)
		default:
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return out, nil
}

func (pj *projector) scopeSpans(out, b []byte) ([]byte, error) {
	for len(b) > 0 {
		num, typ, _, body, n, err := protoField(b)
		if err != nil {
			return nil, err
		}
		switch {
		case num == 1 && typ == 2 && !pj.p.AllScopeAttrs: // scope: name, version, attributes (3)
			if pj.scope, err = keepAttributes(pj.scope[:0], body, 3, pj.p.ScopeAttrs, false); err != nil {
				return nil, err
			}
			out = appendLenField(out, 1, pj.scope)
		case num == 2 && typ == 2: // spans
			if pj.span, err = pj.spanFields(pj.span[:0], body); err != nil {
				return nil, err
			}
			out = appendLenField(out, 2, pj.span)
		default:
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return out, nil
}

func (pj *projector) spanFields(out, b []byte) ([]byte, error) {
	// Copy runs of kept fields at once: most fields are kept.
	run := b
	runLen := 0
	for len(b) > 0 {
		num, typ, _, body, n, err := protoField(b)
		if err != nil {
			return nil, err
		}
		keep := true
		switch {
		case num == 3: // trace_state
			keep = false
		case num == 5 && pj.p.DropNames: // name
			keep = false
		case num == 15 && typ == 2 && pj.p.DropNames: // status: keep the code (3), not the message (2)
			out = append(out, run[:runLen]...)
			run, runLen = b[n:], 0
			var code uint64
			for st := body; len(st) > 0; {
				num, typ, v, _, k, err := protoField(st)
				if err != nil {
					return nil, err
				}
				if num == 3 && typ == 0 {
					code = v
				}
				st = st[k:]
			}
			if code != 0 {
				out = append(out, 15<<3|2, byte(1+varintLen(code)), 3<<3)
				out = binary.AppendUvarint(out, code)
			}
			b = b[n:]
			continue
		case num == 9 && typ == 2 && !pj.p.AllSpanAttrs: // attributes
			keep = len(pj.p.SpanAttrs) > 0 && pj.p.SpanAttrs[string(kvKey(body))]
		case num == 11: // events
			keep = pj.p.Events
		case num == 13: // links
			keep = pj.p.Links
		}
		if keep {
			runLen += n
		} else {
			out = append(out, run[:runLen]...)
			run, runLen = b[n:], 0
		}
		b = b[n:]
	}
	return append(out, run[:runLen]...), nil
}

// keepAttributes copies message b, keeping of its KeyValue field attrNum
// only the keys in keep (and service.name when serviceName).
func keepAttributes(out, b []byte, attrNum int, keep map[string]bool, serviceName bool) ([]byte, error) {
	for len(b) > 0 {
		num, typ, _, body, n, err := protoField(b)
		if err != nil {
			return nil, err
		}
		if num != attrNum || typ != 2 {
			out = append(out, b[:n]...)
		} else if k := kvKey(body); keep[string(k)] || (serviceName && string(k) == "service.name") {
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return out, nil
}

// kvKey returns the key of a KeyValue message (field 1), nil if none.
func kvKey(b []byte) []byte {
	for len(b) > 0 {
		num, typ, _, body, n, err := protoField(b)
		if err != nil {
			return nil
		}
		if num == 1 && typ == 2 {
			return body
		}
		b = b[n:]
	}
	return nil
}

func appendLenField(out []byte, num int, body []byte) []byte {
	out = binary.AppendUvarint(out, uint64(num)<<3|2)
	out = binary.AppendUvarint(out, uint64(len(body)))
	return append(out, body...)
}

func varintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
