package tracestore

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/klauspost/compress/zstd"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

func fuzzSeeds(f *testing.F) [][]byte {
	g := storetest.NewGen(51, testBase.UnixNano())
	var seeds [][]byte
	var m ptrace.ProtoMarshaler
	for _, n := range []int{1, 3, 8} {
		_, td := g.Trace(n)
		if n == 8 { // a retried span inside the request
			rs := td.ResourceSpans().At(0)
			rs.CopyTo(td.ResourceSpans().AppendEmpty())
		}
		if n == 3 { // attribute values of every kind
			a := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes()
			a.PutEmpty("e")
			a.PutEmptyBytes("b").FromRaw([]byte{1, 2})
			a.PutEmptySlice("s").AppendEmpty().SetInt(3)
			a.PutEmptyMap("m").PutStr("k", "v")
			td.ResourceSpans().At(0).Resource().Attributes().PutDouble("r", 1.5)
		}
		b, err := m.MarshalTraces(td)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// FuzzDecodeRecord feeds arbitrary WAL records to the decoder: no panic, and
// whatever decodes re-encodes to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		var td ptrace.Traces
		var u ptrace.ProtoUnmarshaler
		td, _ = u.UnmarshalTraces(s)
		pieces, _, err := split(td, td.SpanCount())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(encodeRecord(nil, pieces))
	}
	f.Add([]byte{recPieces})
	f.Add([]byte{recPieces, 1, 2, 3})
	f.Fuzz(func(t *testing.T, rec []byte) {
		pieces, err := decodeRecord(rec)
		if err != nil {
			return
		}
		if again := encodeRecord(nil, pieces); !bytes.Equal(again, rec) {
			// Non-minimal varints decode but re-encode shorter; compare pieces.
			p2, err := decodeRecord(again)
			if err != nil || len(p2) != len(pieces) {
				t.Fatalf("re-encoded record does not decode the same: %v", err)
			}
		}
	})
}

// FuzzSplitAndDedup checks the ingest split and the read-side dedup on any
// decodable TracesData: no panic, every valid span accounted for (stored in
// a piece or counted as a duplicate), and no span ID twice in a trace.
func FuzzSplitAndDedup(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var u ptrace.ProtoUnmarshaler
		td, err := u.UnmarshalTraces(data)
		if err != nil {
			return
		}
		n, err := validate(td)
		if err != nil {
			return
		}
		pieces, dups, err := split(td, n)
		if err != nil {
			return
		}
		total := dups
		for _, p := range pieces {
			total += p.spans
			if len(p.spanIDs) != p.spans {
				t.Fatalf("piece lists %d span IDs for %d spans", len(p.spanIDs), p.spans)
			}
			seen := map[pcommon.SpanID]bool{}
			for _, id := range p.spanIDs {
				if seen[id] {
					t.Fatalf("span %s twice in one piece", id)
				}
				seen[id] = true
			}
			// Two copies of a piece concatenated: dedup keeps one.
			twice := append(append([]byte(nil), p.data...), p.data...)
			out, d, err := dedupTraceData(twice)
			if err != nil {
				t.Fatalf("dedup of a valid piece: %v", err)
			}
			if d != p.spans {
				t.Fatalf("dedup dropped %d spans of a doubled %d-span piece", d, p.spans)
			}
			back, err := u.UnmarshalTraces(out)
			if err != nil || back.SpanCount() != p.spans {
				t.Fatalf("deduped trace: %v, %d spans, want %d", err, back.SpanCount(), p.spans)
			}
		}
		if total != n {
			t.Fatalf("split accounted for %d spans of %d", total, n)
		}
		// Arbitrary bytes to the read-side dedup: no panic.
		_, _, _ = dedupTraceData(data)
	})
}

// FuzzColumnWalk checks the column walker against pdata on any decodable
// TracesData: unless it calls the trace irregular, it reads the same spans
// in the same order with the same start, end, status code, kind, name,
// span ID and resource service.name, as the column path must for TraceQL
// metrics to answer as decoding does.
func FuzzColumnWalk(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var u ptrace.ProtoUnmarshaler
		td, err := u.UnmarshalTraces(data)
		if err != nil {
			return
		}
		w := colWalker{attrs: true}
		if err := w.walk(data); err != nil {
			// pdata accepts some malformed unknown fields (a proto2 group
			// left open) the walker refuses. Ingest then stores pdata's
			// own encoding of what it decoded (cutReads refuses the
			// request's bytes, ADR 0115): that encoding must walk, and is
			// what the checks below read.
			if cutReads(data) {
				t.Fatalf("cutReads accepts bytes the walker refuses: %v", err)
			}
			var m ptrace.ProtoMarshaler
			if data, err = m.MarshalTraces(td); err != nil {
				t.Fatal(err)
			}
			if err := w.walk(data); err != nil {
				t.Fatalf("the walker refuses pdata's own encoding: %v", err)
			}
		}
		if w.irregular {
			return
		}
		checkFromWalk(t, data)
		// checkAttrs: the walker's first value of each key is pdata's
		// (Map.Get), or marked bad when pdata's is not a scalar.
		checkAttrs := func(what string, m pcommon.Map, kvs []colKV) {
			if len(kvs) != m.Len() {
				t.Fatalf("%s: walker %d attributes, pdata %d", what, len(kvs), m.Len())
			}
			for _, kv := range kvs {
				want, _ := m.Get(string(kv.key))
				first := slices.IndexFunc(kvs, func(o colKV) bool { return string(o.key) == string(kv.key) })
				kv = kvs[first]
				if kv.bad {
					if tp := want.Type(); tp != pcommon.ValueTypeSlice && tp != pcommon.ValueTypeMap && tp != pcommon.ValueTypeBytes &&
						(tp != pcommon.ValueTypeStr || len(want.Str()) <= maxAttrValueLen) {
						t.Fatalf("%s: %q marked bad, pdata %v", what, kv.key, want.AsRaw())
					}
					continue
				}
				got, ok := decodeColumnValue(w.vbuf[kv.voff : kv.voff+kv.vlen])
				var same bool
				switch want.Type() {
				case pcommon.ValueTypeStr:
					same = got.Kind == ColumnString && got.S == want.Str()
				case pcommon.ValueTypeInt:
					same = got.Kind == ColumnInt && int64(got.N) == want.Int()
				case pcommon.ValueTypeDouble:
					same = got.Kind == ColumnFloat && got.N == math.Float64bits(want.Double())
				case pcommon.ValueTypeBool:
					same = got.Kind == ColumnBool && (got.N == 1) == want.Bool()
				case pcommon.ValueTypeEmpty:
					same = got.Kind == ColumnEmpty
				}
				if !ok || !same {
					t.Fatalf("%s: %q: walker %+v, pdata %v %v", what, kv.key, got, want.Type(), want.AsRaw())
				}
			}
		}
		k := 0
		rss := td.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			rs := rss.At(i)
			sv, hasSvc := rs.Resource().Attributes().Get("service.name")
			for j := 0; j < rs.ScopeSpans().Len(); j++ {
				ss := rs.ScopeSpans().At(j).Spans()
				for l := 0; l < ss.Len(); l++ {
					sp := ss.At(l)
					if k >= len(w.spans) {
						t.Fatalf("walker found %d spans, pdata more", len(w.spans))
					}
					c := w.spans[k]
					k++
					if c.start != uint64(sp.StartTimestamp()) || c.end != uint64(sp.EndTimestamp()) ||
						int32(c.status) != int32(sp.Status().Code()) || int32(c.kind) != int32(sp.Kind()) ||
						string(c.name) != sp.Name() || pcommon.SpanID(c.spanID) != sp.SpanID() {
						t.Fatalf("span %d: walker %+v, pdata %s %d..%d %v %v", k-1, c, sp.Name(), sp.StartTimestamp(), sp.EndTimestamp(), sp.Status().Code(), sp.Kind())
					}
					checkAttrs("span", sp.Attributes(), w.kvs[c.kvFrom:c.kvTo])
					if c.res >= 0 {
						r := w.res[c.res]
						checkAttrs("resource", rs.Resource().Attributes(), w.kvs[r[0]:r[1]])
					}
					if (c.svc >= 0) != hasSvc || (hasSvc && (sv.Type() != pcommon.ValueTypeStr || string(w.svcs[c.svc]) != sv.Str())) {
						t.Fatalf("span %d: service %d, pdata %v %v", k-1, c.svc, hasSvc, sv.AsString())
					}
				}
			}
		}
		if k != len(w.spans) {
			t.Fatalf("walker found %d spans, pdata %d", len(w.spans), k)
		}
	})
}

// FuzzDecodeIndex3 feeds corrupt layout 3 and later indexes to the
// reader: errors, never a panic. Seeds: a cut block's index and that of a
// block compacted from three cuts, which keeps their pages (entries go back
// and forth between page runs, layout 7).
func FuzzDecodeIndex3(f *testing.F) {
	var dec *zstd.Decoder
	for _, cuts := range []int{1, 3} {
		db, err := Open(f.TempDir(), DefaultOptions(), Deps{})
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { _ = db.Close() })
		g := storetest.NewGen(uint64(cuts), testBase.UnixNano())
		for i := 0; i < 30*cuts; i++ {
			_, td := g.Trace(1 + i%5)
			if err := db.ConsumeTraces(context.Background(), td); err != nil {
				f.Fatal(err)
			}
			if i%30 == 29 {
				if err := db.Flush(); err != nil {
					f.Fatal(err)
				}
			}
		}
		if err := db.compact(context.Background()); err != nil {
			f.Fatal(err)
		}
		db.mu.RLock()
		if len(db.blocks) != 1 || len(db.blocks[0].runStarts()) != cuts {
			f.Fatalf("%d blocks, want one of %d page runs", len(db.blocks), cuts)
		}
		f.Add(slices.Clone(db.blocks[0].mm))
		db.mu.RUnlock()
		dec = db.dec
	}
	f.Fuzz(func(t *testing.T, ib []byte) {
		b := &block{dec: dec}
		if err := b.decodeIndex3(ib); err != nil {
			return
		}
		b.mm = ib
		for _, k := range b.postingKeys() {
			if kp, err := b.keyPostings(k); err == nil && kp != nil {
				for _, pl := range kp.values {
					_ = kp.decode(pl) // varint and bitmap lists (layout 6)
				}
			}
		}
		for i := range b.chunks {
			if c, err := b.chunk(i); err == nil && len(c.ids) > 0 {
				_, _, _ = b.find(c.ids[0])
			}
		}
	})
}

// seedColumnsFile cuts one block of 30 generated traces (gen seed seed)
// and adds its columns file to f's corpus; the block stays open until f
// ends.
func seedColumnsFile(f *testing.F, seed uint64) *block {
	db, err := Open(f.TempDir(), DefaultOptions(), Deps{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = db.Close() })
	g := storetest.NewGen(seed, testBase.UnixNano())
	for i := 0; i < 30; i++ {
		_, td := g.Trace(1 + i%5)
		if err := db.ConsumeTraces(context.Background(), td); err != nil {
			f.Fatal(err)
		}
	}
	if err := db.Flush(); err != nil {
		f.Fatal(err)
	}
	db.mu.RLock()
	src := db.blocks[0]
	db.mu.RUnlock()
	cols, err := os.ReadFile(filepath.Join(src.dir, columnsFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cols)
	return src
}

// withColumnsFile writes data to name and returns src with that file as its
// columns (closed when t ends).
func withColumnsFile(t *testing.T, src *block, name string, data []byte) *block {
	if err := os.WriteFile(name, data, 0o666); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fh.Close() })
	return &block{dec: src.dec, cols: fh, n: src.n, meta: src.meta}
}

// FuzzColumnsFile feeds corrupt format 9 columns files (span, attribute and
// time sections) to the readers: errors, never a panic.
func FuzzColumnsFile(f *testing.F) {
	src := seedColumnsFile(f, 2)
	name := filepath.Join(f.TempDir(), columnsFile)
	f.Fuzz(func(t *testing.T, data []byte) {
		b := withColumnsFile(t, src, name, data)
		tab, err := b.readColTable()
		if err != nil {
			return
		}
		tab.wantAttrs(append(slices.Clone(tab.keys), "span.absent"))
		cg, tg := &colGroup{index: -1}, &timeGroup{index: -1}
		for gi := range tab.groups {
			_ = b.readColGroup(tab, gi, cg)
			_ = b.readGroupTimes(tab, gi, tg)
			_, _, _ = b.readSpanIDs(&tab.groups[gi], gi, nil, nil) // format 10
		}
	})
}
