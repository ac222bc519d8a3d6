package tracestore

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// compactBoth writes the same level-0 blocks into two stores and compacts
// one with columns taken from the sources (compactFromColumns) and one by
// walking every trace again; it returns both compacted blocks.
func compactBoth(t *testing.T, reqs [][]ptrace.Traces) (merged, walked *block) {
	t.Helper()
	build := func(fromColumns bool) *block {
		db, err := Open(t.TempDir(), DefaultOptions(), Deps{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		for _, cut := range reqs {
			for _, td := range cut {
				if err := db.ConsumeTraces(context.Background(), td); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		defer func(v bool) { compactFromColumns = v }(compactFromColumns)
		compactFromColumns = fromColumns
		if err := db.compact(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(db.blocks) != 1 {
			t.Fatalf("%d blocks after compaction", len(db.blocks))
		}
		return db.blocks[0]
	}
	return build(true), build(false)
}

// ingestCuts stores cuts in db, each one flushed into its own block, and
// returns what was sent.
func ingestCuts(t *testing.T, db *DB, cuts [][]ptrace.Traces) sent {
	t.Helper()
	want := sent{}
	for _, cut := range cuts {
		for _, td := range cut {
			addSent(want, td)
			if err := db.ConsumeTraces(t.Context(), td); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	return want
}

// genCuts makes cuts of traces of 1-8 spans, every fifth trace of a cut
// continuing in the next one (a trace in pieces in two sources).
func genCuts(seed uint64, cuts, traces int) [][]ptrace.Traces {
	return genCutsEvery(seed, cuts, traces, 5)
}

// genCutsEvery is genCuts with every every-th trace continuing.
func genCutsEvery(seed uint64, cuts, traces, every int) [][]ptrace.Traces {
	g := storetest.NewGen(seed, testBase.UnixNano())
	var out [][]ptrace.Traces
	var carry []pcommon.TraceID
	for range cuts {
		var next []pcommon.TraceID
		var cut []ptrace.Traces
		td := ptrace.NewTraces()
		for j := range traces {
			id := g.TraceID()
			if j < len(carry) {
				id = carry[j]
			}
			g.AppendTrace(td, id, 1+j%8, pcommon.SpanID{})
			if j%every == 0 {
				next = append(next, id)
			}
			if j%20 == 19 {
				cut, td = append(cut, td), ptrace.NewTraces()
			}
		}
		out, carry = append(out, append(cut, td)), next
	}
	return out
}

// TestCompactFromColumns: a block compacted from its sources' columns
// holds the same traces, bytes and columns as one compacted by walking
// every trace, except that a key without a column in a source group
// (too many values) may have none in the merged group either.
func TestCompactFromColumns(t *testing.T) {
	for _, dict := range []int{256, 3} {
		t.Run(fmt.Sprintf("maxAttrDict=%d", dict), func(t *testing.T) {
			defer func(v int) { maxAttrDict = v }(maxAttrDict)
			maxAttrDict = dict
			defer func(v int) { chunkTraces = v }(chunkTraces)
			chunkTraces = 16
			before := colSourceTraces.Load()
			merged, walked := compactBoth(t, genCuts(41, 4, 120))
			if colSourceTraces.Load() == before {
				t.Fatal("no trace was taken from its source's columns")
			}
			checkSameBlocks(t, merged, walked)
		})
	}
}

func checkSameBlocks(t *testing.T, merged, walked *block) {
	t.Helper()
	if merged.n != walked.n || merged.meta.Spans != walked.meta.Spans {
		t.Fatalf("merged %d traces %d spans, walked %d traces %d spans", merged.n, merged.meta.Spans, walked.n, walked.meta.Spans)
	}
	mc, wc := merged.cursor(), walked.cursor()
	mr, wr := merged.newPageReader(), walked.newPageReader()
	for ord := 0; ord < merged.n; ord++ {
		mid, me, err := mc.at(ord)
		if err != nil {
			t.Fatal(err)
		}
		wid, we, err := wc.at(ord)
		if err != nil {
			t.Fatal(err)
		}
		if mid != wid || me.spans != we.spans || me.start != we.start || me.end != we.end {
			t.Fatalf("ordinal %d: entries differ: %x %+v / %x %+v", ord, mid, me, wid, we)
		}
		ms, err := mr.storedTrace(me)
		if err != nil {
			t.Fatal(err)
		}
		ws, err := wr.storedTrace(we)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ms, ws) {
			t.Fatalf("ordinal %d: stored bytes differ", ord)
		}
		md, err := mr.trace(mid, me)
		if err != nil {
			t.Fatal(err)
		}
		wd, err := wr.trace(wid, we)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(md, wd) {
			t.Fatalf("ordinal %d: restored bytes differ", ord)
		}
	}
	mt, err := merged.readColTable()
	if err != nil {
		t.Fatal(err)
	}
	wt, err := walked.readColTable()
	if err != nil {
		t.Fatal(err)
	}
	if len(mt.groups) != len(wt.groups) {
		t.Fatalf("%d groups merged, %d walked", len(mt.groups), len(wt.groups))
	}
	keys := wt.keys
	if len(mt.keys) != len(keys) {
		t.Fatalf("keys: merged %q, walked %q", mt.keys, keys)
	}
	mt.wantAttrs(keys)
	wt.wantAttrs(keys)
	mg, wg := &colGroup{index: -1}, &colGroup{index: -1}
	deadSeen := 0
	for gi := range wt.groups {
		if err := merged.readColGroup(mt, gi, mg); err != nil {
			t.Fatal(err)
		}
		if err := walked.readColGroup(wt, gi, wg); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(mg.first, mg.irregular, mg.spans) != fmt.Sprint(wg.first, wg.irregular, wg.spans) {
			t.Fatalf("group %d: span columns differ", gi)
		}
		mids, _, err := merged.readSpanIDs(&mt.groups[gi], gi, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		wids, _, err := walked.readSpanIDs(&wt.groups[gi], gi, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(mids, wids) {
			t.Fatalf("group %d: span IDs differ", gi)
		}
		dead := map[int]bool{}
		for _, ref := range mg.refs {
			if ref.clen == 0 {
				dead[ref.key] = true
				deadSeen++
			}
		}
		for _, ref := range wg.refs {
			if ref.clen == 0 && !dead[slicesIndex(mt.keys, wt.keys[ref.key])] {
				t.Fatalf("group %d: %s has a column merged, none walked", gi, wt.keys[ref.key])
			}
		}
		for k, key := range keys {
			if dead[slicesIndex(mt.keys, key)] {
				continue
			}
			if fmt.Sprint(mg.attrs[k]) != fmt.Sprint(wg.attrs[k]) {
				t.Fatalf("group %d key %s: merged %v, walked %v", gi, key, mg.attrs[k], wg.attrs[k])
			}
		}
	}
	if maxAttrDict < 10 && deadSeen == 0 {
		t.Fatal("no key without a column: the dead-key path went untested")
	}
}

func slicesIndex(keys []string, k string) int {
	for i, x := range keys {
		if x == k {
			return i
		}
	}
	return -1
}

func TestMergeAscending(t *testing.T) {
	for _, tc := range []struct{ a, b, want []uint32 }{
		{nil, []uint32{1, 2}, []uint32{1, 2}},
		{[]uint32{1, 2}, nil, []uint32{1, 2}},
		{[]uint32{1, 2}, []uint32{3, 9}, []uint32{1, 2, 3, 9}},
		{[]uint32{1, 5, 9}, []uint32{2, 5, 10}, []uint32{1, 2, 5, 5, 9, 10}},
		{[]uint32{4, 6}, []uint32{0, 1}, []uint32{0, 1, 4, 6}},
		{[]uint32{4, 6}, []uint32{3, 1}, []uint32{4, 6, 3, 1}}, // not ascending: appended (sorted when written)
	} {
		if got := mergeAscending(slices.Clone(tc.a), tc.b); !slices.Equal(got, tc.want) {
			t.Errorf("mergeAscending(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestCompactTranslatesCodes: compaction that translates a source
// group's attribute codes to the merged group's (putAttrs) writes the
// same columns and data files, byte for byte, as one that walks every
// value through the column walker (addAttrs) — with columns that die
// (maxAttrDict 3) and values the columns do not hold (code 1).
func TestCompactTranslatesCodes(t *testing.T) {
	cuts := genCuts(47, 4, 120)
	for i, cut := range cuts {
		for j, td := range cut {
			if (i+j)%3 != 0 || td.ResourceSpans().Len() == 0 {
				continue
			}
			rs := td.ResourceSpans().At(0)
			// not representable: a slice on a span, a long string on a resource
			rs.ScopeSpans().At(0).Spans().At(0).Attributes().PutEmptySlice("tags").AppendEmpty().SetStr("x")
			rs.Resource().Attributes().PutStr("host.note", string(bytes.Repeat([]byte{'n'}, maxAttrValueLen+1)))
		}
	}
	for _, dict := range []int{256, 3} {
		t.Run(fmt.Sprintf("maxAttrDict=%d", dict), func(t *testing.T) {
			defer func(v, c int, tr bool) { maxAttrDict, chunkTraces, compactTranslateCodes = v, c, tr }(maxAttrDict, chunkTraces, compactTranslateCodes)
			maxAttrDict, chunkTraces = dict, 16
			files := map[bool][2][]byte{}
			for _, translate := range []bool{true, false} {
				compactTranslateCodes = translate
				before := colSourceTraces.Load()
				merged, _ := compactBoth(t, cuts)
				if colSourceTraces.Load() == before {
					t.Fatal("no trace was taken from its source's columns")
				}
				var f [2][]byte
				for i, name := range []string{columnsFile, dataFile} {
					b, err := os.ReadFile(filepath.Join(merged.dir, name))
					if err != nil {
						t.Fatal(err)
					}
					f[i] = b
				}
				files[translate] = f
			}
			if !bytes.Equal(files[true][0], files[false][0]) {
				t.Fatal("columns files differ")
			}
			if !bytes.Equal(files[true][1], files[false][1]) {
				t.Fatal("data files differ")
			}
		})
	}
}

// TestPushRunMergesAll: lists pushed source by source and merged as a
// binary counter give every ordinal of every list, ascending, whatever
// the lengths (an empty list, one that is not ascending: appended, sorted
// when the index is written).
func TestPushRunMergesAll(t *testing.T) {
	g := storetest.NewGen(53, testBase.UnixNano())
	for sources := 0; sources <= 21; sources++ {
		var runs [][]uint32
		var want []uint32
		for s := range sources {
			var run []uint32
			for o := uint32(0); o < 400; o++ {
				if g.TraceID()[0]%uint8(2+s%5) == 0 {
					run = append(run, o)
				}
			}
			want = append(want, run...)
			runs = pushRun(runs, slices.Clone(run))
		}
		slices.Sort(want)
		got := mergeRuns(runs)
		if !slices.Equal(got, want) {
			t.Fatalf("%d sources: %d ordinals merged, want %d", sources, len(got), len(want))
		}
	}
	runs := pushRun(pushRun(nil, []uint32{5, 9}), []uint32{7, 3}) // not ascending
	if got := mergeRuns(runs); !slices.Equal(got, []uint32{5, 9, 7, 3}) {
		t.Fatalf("unsorted run: %v", got)
	}
}
