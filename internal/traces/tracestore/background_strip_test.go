package tracestore

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// spanFieldsOf returns what a stripped record of td leaves out: per span
// (in the column walk's order) its span ID and start and end times, the
// last occurrence of each field.
func spanFieldsOf(td []byte) (ids []byte, times []uint64, ok bool) {
	it := pbIter{b: td}
	for it.next() {
		if it.num != 1 || it.typ != 2 {
			continue
		}
		rs := pbIter{b: it.body}
		for rs.next() {
			if rs.num != 2 || rs.typ != 2 {
				continue
			}
			ss := pbIter{b: rs.body}
			for ss.next() {
				if ss.num != 2 || ss.typ != 2 {
					continue
				}
				var id []byte
				var start, end uint64
				sp := pbIter{b: ss.body}
				for sp.next() {
					switch {
					case sp.num == 2 && sp.typ == 2:
						id = sp.body
					case sp.num == 7 && sp.typ == 1:
						start = sp.v
					case sp.num == 8 && sp.typ == 1:
						end = sp.v
					}
				}
				if sp.err != nil || len(id) != 8 {
					return nil, nil, false
				}
				ids = append(ids, id...)
				times = append(times, start, end)
			}
			if ss.err != nil {
				return nil, nil, false
			}
		}
		if rs.err != nil {
			return nil, nil, false
		}
	}
	return ids, times, it.err == nil
}

// ascendingSpans returns td with every span's fields in ascending field
// order (as the OTel SDKs write them; pdata writes them last to first).
func ascendingSpans(t testing.TB, td []byte) []byte {
	sizes := []int{}
	out, _, _, ok := editSpans(nil, td, sortedFields{}, sizes, false)
	if !ok {
		t.Fatal("cannot reorder")
	}
	return out
}

type sortedFields struct{}

func (sortedFields) spanLen(span []byte, _ int) (int, bool) { return len(span), true }
func (sortedFields) appendSpan(dst, span []byte, _ int) []byte {
	type field struct {
		num int
		raw []byte
	}
	var fs []field
	for b := span; len(b) > 0; {
		num, _, _, _, n, err := protoField(b)
		if err != nil {
			return append(dst, span...)
		}
		fs = append(fs, field{num, b[:n]})
		b = b[n:]
	}
	slices.SortStableFunc(fs, func(a, b field) int { return a.num - b.num })
	for _, f := range fs {
		dst = append(dst, f.raw...)
	}
	return dst
}

// stripRoundTrip strips td and restores it: the restored bytes must be td.
func stripRoundTrip(t testing.TB, td []byte, id TraceID) (stripped []byte, ok bool) {
	ids, times, parsed := spanFieldsOf(td)
	if !parsed {
		return nil, false
	}
	var w colWalker
	if err := w.walk(td); err != nil {
		return nil, false
	}
	var st spanStripper
	out, ok := appendStripped([]byte("x"), td, id, &w, &st)
	if !ok {
		if string(out) != "x" {
			t.Fatalf("refused, but dst changed to %q", out)
		}
		return nil, false
	}
	rec := out[1:]
	sr := &spanRestorer{id: id, ids: ids, times: times}
	back, _, err := appendRestored([]byte("y"), rec, sr, nil)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if !bytes.Equal(back[1:], td) {
		t.Fatalf("restored %d bytes differ from the %d stripped", len(back)-1, len(td))
	}
	return rec, true
}

// TestStrippedRecords: format 12 records (ADR 0123) leave out 46 bytes
// per span and restore byte for byte, in pdata's field order and the
// SDKs'; spans whose layout a reader could not rebuild exactly are
// refused, so the record is stored whole.
func TestStrippedRecords(t *testing.T) {
	g := storetest.NewGen(71, testBase.UnixNano())
	id, traces := g.Trace(6)
	td, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(traces)
	if err != nil {
		t.Fatal(err)
	}
	tid := TraceID(id)
	asc := ascendingSpans(t, td)
	if bytes.Equal(asc, td) {
		t.Fatal("reordering changed nothing")
	}
	for name, b := range map[string][]byte{"descending": td, "ascending": asc} {
		rec, ok := stripRoundTrip(t, b, tid)
		if !ok {
			t.Fatalf("%s: refused", name)
		}
		if want := len(b) + 1 - 6*spanFieldsLeftOut; len(rec) != want {
			t.Fatalf("%s: %d bytes stripped, want %d", name, len(rec), want)
		}
		if mark := map[string]byte{"descending": strippedDescending, "ascending": strippedAscending}[name]; rec[0] != mark {
			t.Fatalf("%s: mark %d", name, rec[0])
		}
	}
	// A span whose layout a reader could not rebuild: the record is refused.
	other := tid
	other[0] ^= 1
	if _, ok := stripRoundTrip(t, td, other); ok {
		t.Fatal("a span whose trace_id is not the trace's: stripped")
	}
	var firstAsc []byte
	editFirst := func(b []byte, fn func(span []byte) []byte) []byte {
		out, _, _, ok := editSpans(nil, b, firstSpanEdit{fn}, nil, false)
		if !ok {
			t.Fatal("edit")
		}
		return out
	}
	refuse := map[string][]byte{
		"mixed layouts": editFirst(td, func(span []byte) []byte { return sortedFields{}.appendSpan(nil, span, 0) }),
		"kind after the attributes": editFirst(asc, func(span []byte) []byte {
			firstAsc = span
			return moveField(span, 6)
		}),
		"no end time": editFirst(td, func(span []byte) []byte { return dropField(span, 8) }),
	}
	// a span length prefix not in its shortest form (one more byte, same value)
	long := binary.AppendUvarint([]byte{0x12}, uint64(len(firstAsc)))
	long[len(long)-1] |= 0x80
	long = append(append(long, 0), firstAsc...)
	ss := binary.AppendUvarint([]byte{0x12}, uint64(len(long)))
	ss = append(ss, long...)
	refuse["long length prefix"] = append(binary.AppendUvarint([]byte{0x0a}, uint64(len(ss))), ss...)
	if _, ok := stripRoundTrip(t, refuse["long length prefix"][:0:0], tid); ok {
		t.Fatal("empty trace stripped")
	}
	for name, b := range refuse {
		var w colWalker
		if err := w.walk(b); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var st spanStripper
		if _, ok := appendStripped(nil, b, tid, &w, &st); ok {
			t.Errorf("%s: stripped", name)
		}
	}
	// the one-span trace with a shortest prefix is stripped
	short := binary.AppendUvarint([]byte{0x12}, uint64(len(firstAsc)))
	short = append(short, firstAsc...)
	ss = append(binary.AppendUvarint([]byte{0x12}, uint64(len(short))), short...)
	if _, ok := stripRoundTrip(t, append(binary.AppendUvarint([]byte{0x0a}, uint64(len(ss))), ss...), tid); !ok {
		t.Fatal("one-span trace refused")
	}
}

// firstSpanEdit rewrites the first span with fn, the others as they are.
type firstSpanEdit struct{ fn func([]byte) []byte }

func (f firstSpanEdit) spanLen(span []byte, k int) (int, bool) {
	if k == 0 {
		return len(f.fn(span)), true
	}
	return len(span), true
}

func (f firstSpanEdit) appendSpan(dst, span []byte, k int) []byte {
	if k == 0 {
		return append(dst, f.fn(span)...)
	}
	return append(dst, span...)
}

// moveField and dropField move field num of span to its end, or drop it.
func moveField(span []byte, num int) []byte {
	var moved, rest []byte
	for b := span; len(b) > 0; {
		n2, _, _, _, m, err := protoField(b)
		if err != nil {
			break
		}
		if n2 == num {
			moved = append(moved, b[:m]...)
		} else {
			rest = append(rest, b[:m]...)
		}
		b = b[m:]
	}
	return append(rest, moved...)
}

func dropField(span []byte, num int) []byte {
	moved := moveField(span, num)
	for b := moved; len(b) > 0; {
		n2, _, _, _, m, err := protoField(b)
		if err != nil || n2 == num {
			return moved[:len(moved)-len(b)]
		}
		b = b[m:]
	}
	return moved
}

// TestStrippedRecordsInBlocks: every regular trace a cut or compaction
// writes from pdata is stored stripped, and compaction carries a source's
// stripped records over as they are.
func TestStrippedRecordsInBlocks(t *testing.T) {
	db, _ := openTest(t, t.TempDir(), nil)
	defer db.Close()
	want := ingestCuts(t, db, genCuts(73, 2, 60))
	count := func() (stripped, all int) {
		for _, b := range db.blocks {
			data, err := os.ReadFile(filepath.Join(b.dir, dataFile))
			if err != nil {
				t.Fatal(err)
			}
			cur := b.cursor()
			for ord := 0; ord < b.n; ord++ {
				_, e, err := cur.at(ord)
				if err != nil {
					t.Fatal(err)
				}
				p := b.pages[e.page]
				var page []byte
				if b.meta.PageCodec == pageCodecS2 {
					page, err = decodeS2Page(data[p.off:p.off+uint64(p.clen)], nil, int(p.ulen))
				} else {
					page, err = b.dec.DecodeAll(data[p.off:p.off+uint64(p.clen)], nil)
				}
				if err != nil {
					t.Fatal(err)
				}
				if page[e.off] <= strippedAscending {
					stripped++
				}
				all++
			}
		}
		return stripped, all
	}
	if s, n := count(); s != n || n == 0 {
		t.Fatalf("level 0: %d of %d records stripped", s, n)
	}
	checkAll(t, db, want)
	if err := db.compact(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s, n := count(); s != n || n == 0 {
		t.Fatalf("compacted: %d of %d records stripped", s, n)
	}
	checkAll(t, db, want)
}
