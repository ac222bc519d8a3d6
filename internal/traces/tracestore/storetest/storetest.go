// Package storetest builds deterministic test traces and compares stored
// traces with what was sent, span by span. Tests and benchmarks of the trace
// packages share it.
package storetest

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"
)

// Gen makes realistic traces: a root server span with client/internal
// children across a few services, with attributes, events, links and status.
type Gen struct {
	rng  *rand.Rand
	Base int64 // start time of the first trace, Unix ns
	n    int
}

// NewGen returns a generator seeded for reproducible data.
func NewGen(seed uint64, base int64) *Gen {
	return &Gen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), Base: base}
}

var (
	services = []string{"frontend", "checkout", "payment", "inventory", "shipping"}
	routes   = []string{"GET /api/products", "POST /api/orders", "GET /api/cart", "PUT /api/cart", "GET /healthz"}
	methods  = []string{"GET", "POST", "PUT"}
)

// TraceID returns a random, valid trace ID.
func (g *Gen) TraceID() pcommon.TraceID {
	var id pcommon.TraceID
	binary.LittleEndian.PutUint64(id[:8], g.rng.Uint64()|1)
	binary.LittleEndian.PutUint64(id[8:], g.rng.Uint64())
	return id
}

// SpanID returns a random, valid span ID.
func (g *Gen) SpanID() pcommon.SpanID {
	var id pcommon.SpanID
	binary.LittleEndian.PutUint64(id[:], g.rng.Uint64()|1)
	return id
}

// Trace returns one trace of n spans (n >= 1) in a fresh ptrace.Traces, one
// ResourceSpans per service.
func (g *Gen) Trace(n int) (pcommon.TraceID, ptrace.Traces) {
	td := ptrace.NewTraces()
	id := g.TraceID()
	g.AppendTrace(td, id, n, pcommon.SpanID{})
	return id, td
}

// AppendTrace adds n spans of trace id to td. With a zero parent the first
// span is the root; otherwise all hang below parent (a late-arriving batch).
func (g *Gen) AppendTrace(td ptrace.Traces, id pcommon.TraceID, n int, parent pcommon.SpanID) []pcommon.SpanID {
	g.n++
	start := g.Base + int64(g.n)*int64(1e6)
	byService := map[string]ptrace.SpanSlice{}
	spanIDs := make([]pcommon.SpanID, 0, n)
	for i := 0; i < n; i++ {
		svc := services[0]
		if i > 0 {
			svc = services[1+g.rng.IntN(len(services)-1)]
		}
		ss, ok := byService[svc]
		if !ok {
			rs := td.ResourceSpans().AppendEmpty()
			rs.Resource().Attributes().PutStr("service.name", svc)
			rs.Resource().Attributes().PutStr("k8s.namespace.name", "nx-backend")
			rs.Resource().Attributes().PutStr("deployment.environment", "production")
			sc := rs.ScopeSpans().AppendEmpty()
			sc.Scope().SetName("nx/" + svc)
			sc.Scope().SetVersion("1.2.3")
			ss = sc.Spans()
			byService[svc] = ss
		}
		s := ss.AppendEmpty()
		s.SetTraceID(id)
		sid := g.SpanID()
		s.SetSpanID(sid)
		switch {
		case i == 0 && parent.IsEmpty():
			s.SetName(routes[g.rng.IntN(len(routes))])
			s.SetKind(ptrace.SpanKindServer)
		case i == 0:
			s.SetParentSpanID(parent)
			s.SetName("late-work")
			s.SetKind(ptrace.SpanKindInternal)
		default:
			s.SetParentSpanID(spanIDs[g.rng.IntN(len(spanIDs))])
			s.SetName(fmt.Sprintf("%s %s", methods[g.rng.IntN(len(methods))], svc))
			s.SetKind([]ptrace.SpanKind{ptrace.SpanKindClient, ptrace.SpanKindInternal, ptrace.SpanKindServer}[g.rng.IntN(3)])
		}
		s.SetStartTimestamp(pcommon.Timestamp(start + int64(i)*1000))
		s.SetEndTimestamp(pcommon.Timestamp(start + int64(i)*1000 + int64(g.rng.IntN(5e8))))
		a := s.Attributes()
		a.PutStr("http.method", methods[g.rng.IntN(len(methods))])
		a.PutInt("http.status_code", []int64{200, 200, 200, 404, 500}[g.rng.IntN(5)])
		a.PutStr("http.url", fmt.Sprintf("https://shop.example/api/items/%d", g.rng.IntN(100000)))
		a.PutBool("cache.hit", g.rng.IntN(2) == 0)
		a.PutDouble("queue.ratio", float64(g.rng.IntN(100))/100)
		if g.rng.IntN(4) == 0 {
			s.Status().SetCode(ptrace.StatusCodeError)
			s.Status().SetMessage("upstream failed")
			ev := s.Events().AppendEmpty()
			ev.SetName("exception")
			ev.SetTimestamp(s.StartTimestamp() + 10)
			ev.Attributes().PutStr("exception.type", "io.EOF")
		} else if g.rng.IntN(3) == 0 {
			s.Status().SetCode(ptrace.StatusCodeOk)
		}
		if g.rng.IntN(10) == 0 {
			l := s.Links().AppendEmpty()
			l.SetTraceID(g.TraceID())
			l.SetSpanID(g.SpanID())
			l.Attributes().PutStr("link.kind", "follows")
		}
		spanIDs = append(spanIDs, sid)
	}
	return spanIDs
}

// Fingerprints renders every span of td as one canonical line (resource,
// scope and all span fields), sorted, so two Traces with the same spans in
// any grouping compare equal.
func Fingerprints(td ptrace.Traces) []string {
	var out []string
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		res := attrs(rs.Resource().Attributes())
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			sc := rs.ScopeSpans().At(j)
			scope := sc.Scope().Name() + "@" + sc.Scope().Version()
			for k := 0; k < sc.Spans().Len(); k++ {
				s := sc.Spans().At(k)
				var b strings.Builder
				fmt.Fprintf(&b, "trace=%s span=%s parent=%s name=%q kind=%d start=%d end=%d status=%d/%q state=%q res={%s} scope=%s attrs={%s}",
					s.TraceID().String(), s.SpanID().String(),
					s.ParentSpanID().String(), s.Name(), s.Kind(), s.StartTimestamp(), s.EndTimestamp(),
					s.Status().Code(), s.Status().Message(), s.TraceState().AsRaw(), res, scope, attrs(s.Attributes()))
				for e := 0; e < s.Events().Len(); e++ {
					ev := s.Events().At(e)
					fmt.Fprintf(&b, " event=%q@%d{%s}", ev.Name(), ev.Timestamp(), attrs(ev.Attributes()))
				}
				for l := 0; l < s.Links().Len(); l++ {
					ln := s.Links().At(l)
					fmt.Fprintf(&b, " link=%s/%s{%s}", ln.TraceID().String(), ln.SpanID().String(), attrs(ln.Attributes()))
				}
				out = append(out, b.String())
			}
		}
	}
	slices.Sort(out)
	return out
}

func attrs(m pcommon.Map) string {
	var kv []string
	m.Range(func(k string, v pcommon.Value) bool {
		kv = append(kv, fmt.Sprintf("%s=%s:%s", k, v.Type(), v.AsString()))
		return true
	})
	slices.Sort(kv)
	return strings.Join(kv, ",")
}

// Diff returns "" when want and got hold the same spans, else a short report.
func Diff(want, got ptrace.Traces) string {
	w, g := Fingerprints(want), Fingerprints(got)
	if slices.Equal(w, g) {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "want %d spans, got %d\n", len(w), len(g))
	gs := map[string]int{}
	for _, x := range g {
		gs[x]++
	}
	for _, x := range w {
		if gs[x] == 0 {
			fmt.Fprintf(&b, "missing: %s\n", x)
		} else {
			gs[x]--
		}
	}
	for x, n := range gs {
		for ; n > 0; n-- {
			fmt.Fprintf(&b, "unexpected: %s\n", x)
		}
	}
	return b.String()
}

// Merge returns one Traces holding the spans of all parts.
func Merge(parts ...ptrace.Traces) ptrace.Traces {
	out := ptrace.NewTraces()
	for _, p := range parts {
		c := ptrace.NewTraces()
		p.CopyTo(c)
		c.ResourceSpans().MoveAndAppendTo(out.ResourceSpans())
	}
	return out
}

// AppendInside appends extra to the message reached by path inside msg
// (field numbers; the first field of each number at every level), fixing
// the lengths on the way back. ok is false when the path is not there.
// Tests use it to plant fields deep in an encoded request.
func AppendInside(msg []byte, path []protowire.Number, extra []byte) (out []byte, ok bool) {
	if len(path) == 0 {
		return append(append([]byte(nil), msg...), extra...), true
	}
	for b := msg; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return nil, false
		}
		if num == path[0] && typ == protowire.BytesType {
			body, _ := protowire.ConsumeBytes(b[n:])
			inner, ok := AppendInside(body, path[1:], extra)
			if !ok {
				return nil, false
			}
			out = append(out, msg[:len(msg)-len(b)]...)
			out = protowire.AppendTag(out, num, protowire.BytesType)
			out = protowire.AppendBytes(out, inner)
			return append(out, b[n+m:]...), true
		}
		b = b[n+m:]
	}
	return nil, false
}

// PlantedVariants returns input planted in base's first span at the two
// places where a span reads nested messages (a KeyValue of its attributes,
// its Status), where base has them.
func PlantedVariants(base, input []byte) [][]byte {
	var out [][]byte
	for _, path := range [][]protowire.Number{{1, 2, 2, 9}, {1, 2, 2, 15}} {
		if raw, ok := AppendInside(base, path, input); ok {
			out = append(out, raw)
		}
	}
	return out
}
