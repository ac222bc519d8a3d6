package tracestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// rawTestTraces is a request with every message the cut reads: resource and
// span attributes, a status, an event and a link with attributes.
func rawTestTraces(t testing.TB, seed uint64) (ptrace.Traces, []byte) {
	t.Helper()
	_, td := storetest.NewGen(seed, testBase.UnixNano()).Trace(4)
	sp := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	sp.Status().SetCode(ptrace.StatusCodeError)
	sp.Status().SetMessage("boom")
	ev := sp.Events().AppendEmpty()
	ev.SetName("exception")
	ev.Attributes().PutStr("exception.type", "E")
	ln := sp.Links().AppendEmpty()
	ln.SetTraceID(pcommon.TraceID{9, 9, 9})
	ln.SetSpanID(pcommon.SpanID{9})
	ln.Attributes().PutInt("link.n", 3)
	var m ptrace.ProtoMarshaler
	raw, err := m.MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	return td, raw
}

// pdataOnlyFields are unknown fields pdata skips and the cut's field reader
// refuses (or reads as another field), as found by FuzzColumnWalk.
func pdataOnlyFields() map[string][]byte {
	var openGroup []byte // a proto2 group left open, as in FuzzColumnWalk's corpus
	openGroup = protowire.AppendTag(openGroup, 100, protowire.StartGroupType)
	openGroup = protowire.AppendTag(openGroup, 101, protowire.VarintType)
	openGroup = protowire.AppendVarint(openGroup, 1)
	overflow := protowire.AppendTag(nil, 102, protowire.VarintType) // 10 bytes, overflow bits set
	overflow = append(overflow, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f)
	var huge []byte // field 2^32+103: pdata reads it as field 103
	huge = protowire.AppendVarint(huge, (1<<32+103)<<3|uint64(protowire.VarintType))
	huge = protowire.AppendVarint(huge, 5)
	return map[string][]byte{"open group": openGroup, "varint overflow": overflow, "field number past int32": huge}
}

// rawLevels are the messages the cut reads, as paths from the TracesData.
var rawLevels = []struct {
	name string
	path []protowire.Number
}{
	{"TracesData", nil},
	{"ResourceSpans", []protowire.Number{1}},
	{"Resource", []protowire.Number{1, 1}},
	{"resource KeyValue", []protowire.Number{1, 1, 1}},
	{"resource AnyValue", []protowire.Number{1, 1, 1, 2}},
	{"ScopeSpans", []protowire.Number{1, 2}},
	{"Span", []protowire.Number{1, 2, 2}},
	{"span KeyValue", []protowire.Number{1, 2, 2, 9}},
	{"span AnyValue", []protowire.Number{1, 2, 2, 9, 2}},
	{"Status", []protowire.Number{1, 2, 2, 15}},
	{"Event", []protowire.Number{1, 2, 2, 11}},
	{"event AnyValue", []protowire.Number{1, 2, 2, 11, 3, 2}},
	{"Link", []protowire.Number{1, 2, 2, 13}},
	{"link KeyValue", []protowire.Number{1, 2, 2, 13, 4}},
}

func openRawTestDB(t testing.TB) (*DB, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	db, err := Open(t.TempDir(), DefaultOptions(), Deps{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, reg
}

// spanDigests maps each span of td (the first copy of a retried one) to its
// JSON with its resource and scope.
func spanDigests(t testing.TB, td ptrace.Traces) map[[24]byte]string {
	t.Helper()
	out := map[[24]byte]string{}
	var jm ptrace.JSONMarshaler
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			ss := rs.ScopeSpans().At(j)
			for k := 0; k < ss.Spans().Len(); k++ {
				sp := ss.Spans().At(k)
				var key [24]byte
				tid, sid := sp.TraceID(), sp.SpanID()
				copy(key[:], tid[:])
				copy(key[16:], sid[:])
				if _, ok := out[key]; ok {
					continue
				}
				one := ptrace.NewTraces()
				ors := one.ResourceSpans().AppendEmpty()
				rs.Resource().CopyTo(ors.Resource())
				ors.SetSchemaUrl(rs.SchemaUrl())
				oss := ors.ScopeSpans().AppendEmpty()
				ss.Scope().CopyTo(oss.Scope())
				oss.SetSchemaUrl(ss.SchemaUrl())
				sp.CopyTo(oss.Spans().AppendEmpty())
				b, err := jm.MarshalTraces(one)
				if err != nil {
					t.Fatal(err)
				}
				out[key] = string(b)
			}
		}
	}
	return out
}

// ingestRawAndCut stores td through the raw request path with raw as its
// request bytes, cuts the head into a block and checks that every trace
// reads back with the spans pdata decoded. It reports false when the store
// refused td (invalid IDs, a trace too large).
func ingestRawAndCut(t testing.TB, db *DB, td ptrace.Traces, raw []byte) bool {
	t.Helper()
	want := ptrace.NewTraces()
	td.CopyTo(want)
	if err := db.consume(context.Background(), td, raw); err != nil {
		if errors.Is(err, ErrInvalidID) || errors.Is(err, ErrTraceTooLarge) {
			return false
		}
		t.Fatalf("consume: %v", err)
	}
	if err := db.Flush(); err != nil {
		t.Fatalf("cut after raw ingest: %v", err)
	}
	wantSpans := spanDigests(t, want)
	ids := map[TraceID]bool{}
	for key := range wantSpans {
		ids[TraceID(key[:16])] = true
	}
	got := 0
	for id := range ids {
		back, found, err := db.TraceByID(context.Background(), id)
		if err != nil || !found {
			t.Fatalf("trace %x after the cut: found %v, %v", id, found, err)
		}
		for key, js := range spanDigests(t, back) {
			if TraceID(key[:16]) != id {
				t.Fatalf("trace %x holds a span of trace %x", id, key[:16])
			}
			if wantSpans[key] != js {
				t.Fatalf("span %x reads back as\n%s\nwant\n%s", key[16:], js, wantSpans[key])
			}
			got++
		}
	}
	if got != len(wantSpans) {
		t.Fatalf("read back %d spans, want %d", got, len(wantSpans))
	}
	return true
}

// TestRawIngestRefusedFieldsFallBack: request bytes with fields pdata skips
// and the cut refuses, at every level the cut reads, are stored as pdata's
// encoding; the cut succeeds and the spans read back as pdata decoded them.
func TestRawIngestRefusedFieldsFallBack(t *testing.T) {
	_, base := rawTestTraces(t, 61)
	for fname, field := range pdataOnlyFields() {
		for _, lv := range rawLevels {
			t.Run(fname+"/"+lv.name, func(t *testing.T) {
				raw, ok := storetest.AppendInside(base, lv.path, field)
				if !ok {
					t.Fatalf("no %v in the test request", lv.path)
				}
				var u ptrace.ProtoUnmarshaler
				td, err := u.UnmarshalTraces(raw)
				if err != nil {
					t.Fatalf("pdata refuses the request: %v", err)
				}
				if cutReads(raw) {
					t.Fatal("cutReads accepts the request")
				}
				db, _ := openRawTestDB(t)
				if !ingestRawAndCut(t, db, td, raw) {
					t.Fatal("store refused the request")
				}
				if n := testutil.ToFloat64(db.m.reencodedRequests); n != 1 {
					t.Fatalf("reencoded requests %v, want 1", n)
				}
			})
		}
	}
}

// TestRawIngestWithoutTheCheckFailsTheCut shows what cutReads guards
// against: the same bytes split verbatim make the block writer fail.
func TestRawIngestWithoutTheCheckFailsTheCut(t *testing.T) {
	_, base := rawTestTraces(t, 62)
	raw, ok := storetest.AppendInside(base, []protowire.Number{1, 2, 2, 9, 2}, pdataOnlyFields()["open group"])
	if !ok {
		t.Fatal("no span AnyValue")
	}
	var u ptrace.ProtoUnmarshaler
	td, err := u.UnmarshalTraces(raw)
	if err != nil {
		t.Fatal(err)
	}
	pieces, _, err := splitEncoded(raw, td.SpanCount())
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(pieces, func(a, b tracePiece) int { return compareIDs(a.id, b.id) })
	db, _ := openRawTestDB(t)
	_, err = db.writeBlock(func(yield func(traceRecord) error) error {
		for _, p := range pieces {
			if err := yield(traceRecord{id: p.id, data: p.data, spans: p.spans, minStart: p.minStart, maxEnd: p.maxEnd}); err != nil {
				return err
			}
		}
		return nil
	}, 0, nil, 0)
	if err == nil {
		t.Fatal("the block writer takes the verbatim pieces: the test no longer shows the hazard")
	}
}

// TestRawIngestKeepsRequestBytes: a well-formed request goes through the raw
// path unchanged (no re-encoding), with pieces byte-identical to the
// re-encoding path's, and a sender's own field order is kept and reads back.
func TestRawIngestKeepsRequestBytes(t *testing.T) {
	td, raw := rawTestTraces(t, 63)
	n := td.SpanCount()
	fromRaw, _, sc1, reencoded, err := splitWith(td, raw, n)
	if err != nil || reencoded {
		t.Fatalf("raw split: %v, reencoded %v", err, reencoded)
	}
	defer sc1.release()
	fromTD, _, sc2, _, err := splitWith(td, nil, n)
	if err != nil {
		t.Fatal(err)
	}
	defer sc2.release()
	if len(fromRaw) != len(fromTD) {
		t.Fatalf("%d pieces from the request, %d from td", len(fromRaw), len(fromTD))
	}
	for i := range fromRaw {
		if !bytes.Equal(fromRaw[i].data, fromTD[i].data) {
			t.Fatalf("piece %d differs between the raw and the re-encoding path", i)
		}
	}

	// Another field order and a valid unknown field: kept as sent.
	var known []byte
	known = protowire.AppendTag(known, 1000, protowire.BytesType)
	known = protowire.AppendBytes(known, []byte("x"))
	odd, ok := storetest.AppendInside(raw, []protowire.Number{1, 2, 2}, known)
	if !ok {
		t.Fatal("no span")
	}
	if !cutReads(odd) {
		t.Fatal("cutReads refuses a valid unknown field")
	}
	var u ptrace.ProtoUnmarshaler
	td2, err := u.UnmarshalTraces(odd)
	if err != nil {
		t.Fatal(err)
	}
	db, _ := openRawTestDB(t)
	if !ingestRawAndCut(t, db, td2, odd) {
		t.Fatal("store refused the request")
	}
	if n := testutil.ToFloat64(db.m.reencodedRequests); n != 0 {
		t.Fatalf("reencoded requests %v, want 0", n)
	}
}

// TestRawIngestColumnWalkCorpus sends FuzzColumnWalk's kept inputs through
// the raw path, as they are and inside a span's attribute value.
func TestRawIngestColumnWalkCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzColumnWalk", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no FuzzColumnWalk corpus: %v", err)
	}
	_, base := rawTestTraces(t, 64)
	withSpans := 0
	for _, name := range files {
		input := readFuzzBytes(t, name)
		t.Run(filepath.Base(name), func(t *testing.T) {
			variants := append([][]byte{input, append(slices.Clone(base), input...)}, storetest.PlantedVariants(base, input)...)
			for _, raw := range variants {
				var u ptrace.ProtoUnmarshaler
				td, err := u.UnmarshalTraces(raw)
				if err != nil {
					continue // not a request pdata takes at this place
				}
				if td.SpanCount() > 0 {
					withSpans++
				}
				db, _ := openRawTestDB(t)
				ingestRawAndCut(t, db, td, raw)
			}
		})
	}
	if withSpans == 0 {
		t.Fatal("no corpus input reached the store inside a request with spans")
	}
}

// readFuzzBytes reads a one-[]byte "go test fuzz v1" corpus file.
func readFuzzBytes(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) != 2 || !bytes.HasPrefix(lines[1], []byte("[]byte(")) {
		t.Fatalf("%s: not a one-[]byte corpus file", name)
	}
	lit := bytes.TrimSuffix(bytes.TrimPrefix(lines[1], []byte("[]byte(")), []byte(")"))
	s, err := strconv.Unquote(string(lit))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return []byte(s)
}

// FuzzRawIngestCut feeds arbitrary request bytes through the raw request
// path: whatever pdata decodes, the pieces ingest keeps hold the spans pdata
// decoded, and the block writer of the cut takes every one of them (a
// refused piece would fail every cut of its head). TestRawIngest* run the
// same through a real store with a cut and reads.
func FuzzRawIngestCut(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	_, base := rawTestTraces(f, 65)
	f.Add(base)
	for _, field := range pdataOnlyFields() {
		for _, lv := range rawLevels {
			if raw, ok := storetest.AppendInside(base, lv.path, field); ok {
				f.Add(raw)
			}
		}
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(cutEncoderLevel), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(encWindow))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = enc.Close() })
	bw, err := newBlockWriter(f.TempDir(), enc, DefaultOptions().PageSize, 0, nil, 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = bw.abort(nil) })
	var ord TraceID
	f.Fuzz(func(t *testing.T, data []byte) {
		var u ptrace.ProtoUnmarshaler
		td, err := u.UnmarshalTraces(data)
		if err != nil {
			return
		}
		n, err := validate(td)
		if err != nil || n == 0 {
			return
		}
		if cutReads(data) {
			// What cutReads accepts, the cut's readers read.
			w := colWalker{attrs: true}
			if err := w.walk(data); err != nil {
				t.Fatalf("cutReads accepts what the column walk refuses: %v", err)
			}
			s := postingScanner{fn: func(key, value []byte, indexed bool) {}}
			if err := s.scan(data); err != nil {
				t.Fatalf("cutReads accepts what the posting scanner refuses: %v", err)
			}
		}
		want := spanDigests(t, td)
		pieces, dups, sc, _, err := splitWith(td, data, n)
		if err != nil {
			t.Fatalf("split: %v", err)
		}
		defer sc.release()
		var all []byte
		for _, p := range pieces {
			all = append(all, p.data...)
		}
		back, err := u.UnmarshalTraces(all)
		if err != nil {
			t.Fatalf("the pieces do not decode: %v", err)
		}
		got := spanDigests(t, back)
		if len(got) != len(want) || n-dups != back.SpanCount() {
			t.Fatalf("pieces hold %d spans (%d distinct), want %d distinct of %d with %d retried", back.SpanCount(), len(got), len(want), n, dups)
		}
		for key, js := range got {
			if want[key] != js {
				t.Fatalf("span %x stored as\n%s\nwant\n%s", key, js, want[key])
			}
		}
		// One block writer for the whole run (a new one per input costs
		// ~10 ms); it checks only that trace IDs ascend, so each piece
		// goes in under the next number.
		for _, p := range pieces {
			binary.BigEndian.PutUint64(ord[8:], binary.BigEndian.Uint64(ord[8:])+1)
			if err := bw.add(traceRecord{id: ord, data: p.data, spans: p.spans, minStart: p.minStart, maxEnd: p.maxEnd}); err != nil {
				t.Fatalf("the cut refuses a piece ingest kept: %v", err)
			}
		}
	})
}

// BenchmarkRawRequestCheck compares, per span of a 100-trace request, the
// check the raw request path pays (cutReads), the cut's own walk and
// posting scan that could stand for it, and the re-encoding it saves.
func BenchmarkRawRequestCheck(b *testing.B) {
	g := storetest.NewGen(3, testBase.UnixNano())
	td := ptrace.NewTraces()
	for j := 0; j < 100; j++ {
		g.AppendTrace(td, g.TraceID(), 3+j%6, pcommon.SpanID{})
	}
	var m ptrace.ProtoMarshaler
	raw, err := m.MarshalTraces(td)
	if err != nil {
		b.Fatal(err)
	}
	spans := td.SpanCount()
	perSpan := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
	}
	b.Run("cutReads", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !cutReads(raw) {
				b.Fatal("refused")
			}
		}
		perSpan(b)
	})
	b.Run("walk+postings", func(b *testing.B) {
		b.ReportAllocs()
		w := colWalker{attrs: true}
		s := postingScanner{fn: func(key, value []byte, indexed bool) {}}
		for b.Loop() {
			if err := w.walk(raw); err != nil {
				b.Fatal(err)
			}
			if ok, err := s.fromWalk(&w); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
		perSpan(b)
	})
	b.Run("MarshalTraces", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.MarshalTraces(td); err != nil {
				b.Fatal(err)
			}
		}
		perSpan(b)
	})
}
