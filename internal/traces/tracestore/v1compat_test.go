package tracestore

import (
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/nx-watcher/nxwatcher/internal/traces/tracestore/storetest"
)

// writeV1Index rewrites an open version 2 block's index and meta in the
// version 1 layout (docs/formats/tracestore.md, "Version 1").
func writeV1Index(t *testing.T, b *block) {
	t.Helper()
	var ids []TraceID
	var entries []indexEntry
	cur := b.cursor()
	for ord := 0; ord < b.n; ord++ {
		id, e, err := cur.at(ord)
		if err != nil {
			t.Fatal(err)
		}
		ids, entries = append(ids, id), append(entries, e)
	}
	var body []byte
	body = binary.AppendUvarint(body, uint64(len(ids)))
	body = binary.AppendUvarint(body, b.base)
	for i, id := range ids {
		e := entries[i]
		body = append(body, id[:]...)
		for _, v := range []uint64{uint64(e.page), uint64(e.off), uint64(e.len), uint64(e.spans), e.start - b.base, e.end - e.start} {
			body = binary.AppendUvarint(body, v)
		}
	}
	body = binary.AppendUvarint(body, uint64(len(b.pages)))
	for _, p := range b.pages {
		body = binary.AppendUvarint(body, p.off)
		body = binary.AppendUvarint(body, uint64(p.clen))
		body = binary.AppendUvarint(body, uint64(p.ulen))
	}
	bl := newBloom(len(ids))
	for _, id := range ids {
		bl.add(id)
	}
	body = binary.AppendUvarint(body, uint64(bl.k))
	body = binary.AppendUvarint(body, uint64(len(bl.bits)))
	for _, w := range bl.bits {
		body = binary.LittleEndian.AppendUint64(body, w)
	}
	keys := b.postingKeys()
	slices.Sort(keys)
	body = binary.AppendUvarint(body, uint64(len(keys)))
	for _, k := range keys {
		kp, err := b.keyPostings(k)
		if err != nil {
			t.Fatal(err)
		}
		body = appendString(body, k)
		if kp.complete {
			body = append(body, 1)
		} else {
			body = append(body, 0)
		}
		vals := make([]string, 0, len(kp.values))
		for v := range kp.values {
			vals = append(vals, v)
		}
		slices.Sort(vals)
		body = binary.AppendUvarint(body, uint64(len(vals)))
		for _, v := range vals {
			body = appendString(body, v)
			body = appendPostingList(body, kp.decode(kp.values[v]))
		}
	}
	enc := newTestEncoder(t)
	out := append([]byte(indexMagic), 1)
	out = enc.EncodeAll(body, out)
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
	if err := os.WriteFile(filepath.Join(b.dir, indexFile), out, 0o666); err != nil {
		t.Fatal(err)
	}
	meta := b.meta
	meta.Version, meta.PageRuns = 1, nil // a version 1 block has one run and does not say so
	mb, _ := json.Marshal(meta)
	if err := os.WriteFile(filepath.Join(b.dir, metaFile), mb, 0o666); err != nil {
		t.Fatal(err)
	}
}

// TestReadsVersion1Blocks: blocks written by format version 1 still open,
// answer lookups and searches, and compact into version 2 blocks.
func TestReadsVersion1Blocks(t *testing.T) {
	old, oldS2 := chunkTraces, level0S2
	chunkTraces = 7       // many chunks, a short last one
	zeroSpanTimes = false // version 1 data files hold the span times
	level0S2 = false      // and zstd pages
	t.Cleanup(func() { chunkTraces, zeroSpanTimes, level0S2 = old, true, oldS2 })
	dir := t.TempDir()
	db, _ := openTest(t, dir, nil)
	g := storetest.NewGen(3, testBase.UnixNano())
	want := sent{}
	for round := 0; round < 2; round++ {
		for i := 0; i < 60; i++ {
			id, td := g.Trace(1 + i%7)
			if err := db.ConsumeTraces(t.Context(), td); err != nil {
				t.Fatal(err)
			}
			want.add(id, td)
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	checkAll(t, db, want)
	db.mu.RLock()
	blocks := slices.Clone(db.blocks)
	db.mu.RUnlock()
	for _, b := range blocks {
		writeV1Index(t, b) // reads every chunk, then overwrites the files
	}
	zeroSpanTimes = true // compaction writes the current format
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, _ = openTest(t, dir, nil)
	defer db.Close()
	db.mu.RLock()
	for _, b := range db.blocks {
		if b.meta.Version != 1 || b.index != nil {
			t.Fatalf("block %s: version %d, not read as version 1", b.meta.ULID, b.meta.Version)
		}
	}
	db.mu.RUnlock()
	checkAll(t, db, want)
	if err := db.compact(t.Context()); err != nil {
		t.Fatal(err)
	}
	db.mu.RLock()
	if len(db.blocks) != 1 || db.blocks[0].meta.Version != formatVersion {
		t.Fatalf("compaction of version 1 blocks: %d blocks", len(db.blocks))
	}
	db.mu.RUnlock()
	checkAll(t, db, want)
}

func newTestEncoder(t *testing.T) *zstd.Encoder {
	t.Helper()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = enc.Close() })
	return enc
}
