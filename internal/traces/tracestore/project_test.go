package tracestore

import (
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/testclock"
	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// TestProjection checks the wire-level projection against the same cut
// made with pdata: every kept field survives byte for byte, dropped
// attributes, events, links and trace state are gone.
func TestProjection(t *testing.T) {
	g := storetest.NewGen(7, testclock.Base().UnixNano())
	td := ptrace.NewTraces()
	for i := 0; i < 20; i++ {
		g.AppendTrace(td, g.TraceID(), 3+i%6, pcommon.SpanID{})
	}
	td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceState().FromRaw("k=v")
	td.ResourceSpans().At(0).ScopeSpans().At(0).Scope().Attributes().PutStr("lib.flavour", "x")
	td.ResourceSpans().At(0).ScopeSpans().At(0).Scope().Attributes().PutStr("other", "y")
	raw, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		p    Projection
	}{
		{"nothing", Projection{}},
		{"some keys", Projection{SpanAttrs: map[string]bool{"http.status_code": true}, ResourceAttrs: map[string]bool{"k8s.namespace.name": true},
			ScopeAttrs: map[string]bool{"lib.flavour": true}}},
		{"events and links", Projection{Events: true, Links: true, AllScopeAttrs: true}},
		{"no names", Projection{DropNames: true, SpanAttrs: map[string]bool{"http.method": true}}},
		{"everything", Projection{AllSpanAttrs: true, AllResourceAttrs: true, AllScopeAttrs: true, Events: true, Links: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			pj := &projector{p: &c.p}
			out, err := pj.apply(raw)
			if err != nil {
				t.Fatal(err)
			}
			got, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(out)
			if err != nil {
				t.Fatal(err)
			}
			want := ptrace.NewTraces()
			td.CopyTo(want)
			keep := func(all bool, set map[string]bool, always string) func(string, pcommon.Value) bool {
				return func(k string, _ pcommon.Value) bool { return !all && !set[k] && k != always }
			}
			for i := 0; i < want.ResourceSpans().Len(); i++ {
				rs := want.ResourceSpans().At(i)
				rs.Resource().Attributes().RemoveIf(keep(c.p.AllResourceAttrs, c.p.ResourceAttrs, "service.name"))
				for j := 0; j < rs.ScopeSpans().Len(); j++ {
					ss := rs.ScopeSpans().At(j)
					ss.Scope().Attributes().RemoveIf(keep(c.p.AllScopeAttrs, c.p.ScopeAttrs, ""))
					for k := 0; k < ss.Spans().Len(); k++ {
						s := ss.Spans().At(k)
						s.TraceState().FromRaw("")
						if c.p.DropNames {
							s.SetName("")
							s.Status().SetMessage("")
						}
						s.Attributes().RemoveIf(keep(c.p.AllSpanAttrs, c.p.SpanAttrs, ""))
						if !c.p.Events {
							s.Events().RemoveIf(func(ptrace.SpanEvent) bool { return true })
						}
						if !c.p.Links {
							s.Links().RemoveIf(func(ptrace.SpanLink) bool { return true })
						}
					}
				}
			}
			if d := storetest.Diff(want, got); d != "" {
				t.Fatalf("projection differs from the pdata cut:\n%s", d)
			}
			// Fingerprints leave scope attributes out: compare them here.
			for i := 0; i < want.ResourceSpans().Len(); i++ {
				w := want.ResourceSpans().At(i).ScopeSpans().At(0).Scope().Attributes().AsRaw()
				g := got.ResourceSpans().At(i).ScopeSpans().At(0).Scope().Attributes().AsRaw()
				if len(w) != len(g) {
					t.Fatalf("resource %d: scope attributes %v, want %v", i, g, w)
				}
			}
			if c.name == "nothing" && len(out) >= len(raw)/2 {
				t.Errorf("projected %d of %d bytes: attributes were not dropped", len(out), len(raw))
			}
		})
	}
	if _, err := (&projector{p: &Projection{}}).apply([]byte{0x0a, 0x05, 0x01}); err == nil {
		t.Error("truncated protobuf projected without error")
	}
}

// TestEventAndLinkTags: event and link attribute names and values are
// listed from the head, from a cut block and after a reopen (WAL replay).
func TestEventAndLinkTags(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, DefaultOptions(), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	g := storetest.NewGen(9, testclock.Now().UnixNano())
	td := ptrace.NewTraces()
	for i := 0; i < 50; i++ {
		g.AppendTrace(td, g.TraceID(), 5, pcommon.SpanID{})
	}
	if err := db.ConsumeTraces(t.Context(), td); err != nil {
		t.Fatal(err)
	}
	check := func(stage string, db *DB) {
		t.Helper()
		names, err := db.TagNames(t.Context(), time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(names, "event.exception.type") || !slices.Contains(names, "link.link.kind") {
			t.Errorf("%s: tag names %v lack event.exception.type or link.link.kind", stage, names)
		}
		for key, want := range map[string]string{"event.exception.type": "io.EOF", "link.link.kind": "follows"} {
			vals, err := db.TagValues(t.Context(), key, time.Time{}, time.Time{}, 0)
			if err != nil || len(vals) != 1 || vals[0] != (TypedValue{Type: "string", Value: want}) {
				t.Errorf("%s: %s values %v (%v), want %q", stage, key, vals, err, want)
			}
		}
	}
	check("head", db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open(dir, DefaultOptions(), Deps{}); err != nil {
		t.Fatal(err)
	}
	check("replayed head", db)
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	check("block", db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// protoFieldSlow is protoField without its one-byte fast path: the
// reference FuzzProtoField holds the fast path to.
func protoFieldSlow(b []byte) (num int, typ int, v uint64, body []byte, n int, err error) {
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

// FuzzProtoField: the fast path reads every field exactly as the general
// varint path; projecting never panics, and what decodes still decodes
// after projection.
func FuzzProtoField(f *testing.F) {
	g := storetest.NewGen(1, testclock.Base().UnixNano())
	_, td := g.Trace(4)
	raw, _ := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	f.Add(raw)
	f.Add([]byte{0x0a, 0x00})
	f.Add([]byte{0x02, 0x01, 0xff})
	f.Add([]byte{0x0a, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		for rest := b; len(rest) > 0; {
			n1, t1, v1, b1, k1, e1 := protoField(rest)
			n2, t2, v2, b2, k2, e2 := protoFieldSlow(rest)
			if n1 != n2 || t1 != t2 || v1 != v2 || string(b1) != string(b2) || k1 != k2 || (e1 == nil) != (e2 == nil) {
				t.Fatalf("fast (%d %d %d %x %d %v) != slow (%d %d %d %x %d %v) on %x", n1, t1, v1, b1, k1, e1, n2, t2, v2, b2, k2, e2, rest)
			}
			if e1 != nil {
				break
			}
			rest = rest[k1:]
		}
		pj := &projector{p: &Projection{SpanAttrs: map[string]bool{"http.method": true}}}
		out, err := pj.apply(b)
		if _, derr := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(b); derr == nil && err == nil {
			if _, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(out); err != nil {
				t.Fatalf("projection of decodable input does not decode: %v", err)
			}
		}
	})
}

// TestKindUnspecifiedTagValue: a span without a kind is listed under the
// kind values as "unspecified", in the head and in a block.
func TestKindUnspecifiedTagValue(t *testing.T) {
	db, err := Open(t.TempDir(), DefaultOptions(), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	g := storetest.NewGen(5, testclock.Now().UnixNano())
	_, td := g.Trace(3)
	td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SetKind(ptrace.SpanKindUnspecified)
	if err := db.ConsumeTraces(t.Context(), td); err != nil {
		t.Fatal(err)
	}
	for _, stage := range []string{"head", "block"} {
		if stage == "block" {
			if err := db.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		vals, err := db.TagValues(t.Context(), KeyKind, time.Time{}, time.Time{}, 0)
		if err != nil || !slices.Contains(vals, TypedValue{Type: "keyword", Value: "unspecified"}) {
			t.Fatalf("%s: kind values %v (%v), want unspecified among them", stage, vals, err)
		}
	}
}
