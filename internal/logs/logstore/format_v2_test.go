package logstore

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// v1Want is what testdata/v1 holds: two blocks written by format version 1
// (before chunk summaries and zstd), 120 entries over three streams, most
// with detected_level metadata.
func v1Want() map[string][]Entry {
	base := time.Unix(1_700_000_000, 0).UnixNano()
	want := map[string][]Entry{}
	for k := range 120 {
		ls := labels.FromStrings("app", "v1", "pod", fmt.Sprint("p", k%3))
		md := labels.EmptyLabels()
		if k%4 != 0 {
			md = labels.FromStrings("detected_level", []string{"info", "warn"}[k%2])
		}
		want[ls.String()] = append(want[ls.String()], Entry{Timestamp: base + int64(k)*int64(250*time.Millisecond), Line: fmt.Sprintf("level=info i=%d msg=\"line %d\" status=%d", k, k, 200+k%7), Metadata: md})
	}
	return want
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func checkEntries(t *testing.T, got, want map[string][]Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d streams, want %d", len(got), len(want))
	}
	for k, w := range want {
		if !sameEntries(got[k], w) {
			t.Fatalf("stream %s: got %d entries %v…, want %d", k, len(got[k]), got[k][:min(2, len(got[k]))], len(w))
		}
	}
}

// TestReadsFormatV1 opens blocks written by format version 1, reads them,
// and compacts them into a version 2 block (zstd chunks with summaries)
// that reads the same.
func TestReadsFormatV1(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, "testdata/v1", dir)
	db := openTest(t, dir, func(o *Options) { o.ChunkTargetSize = 600 })
	defer db.Close()
	metas := db.Blocks()
	if len(metas) != 2 || metas[0].Version != 1 {
		t.Fatalf("blocks %+v, want two of version 1", metas)
	}
	all := labels.MustNewMatcher(labels.MatchEqual, "app", "v1")
	checkEntries(t, readAll(t, db, SelectHints{}, all), v1Want())
	// Version 1 chunks have no summary: counting falls back to reading.
	q, err := db.Querier(minTime, maxTime)
	if err != nil {
		t.Fatal(err)
	}
	ss := q.Select(t.Context(), SelectHints{Start: minTime, End: maxTime}, all)
	for ss.Next() {
		rest, st, err := ss.At().SplitSummarized(func(SummaryBucketCounts) {})
		if err != nil || rest == nil || st.Chunks != 0 {
			t.Fatalf("v1 stream summarized: rest %v, %+v, %v", rest, st, err)
		}
	}
	q.Close()

	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	metas = db.Blocks()
	if len(metas) != 1 || metas[0].Version != blockFormatVersion || metas[0].Compaction.Level != 2 {
		t.Fatalf("after compaction: %+v", metas)
	}
	checkEntries(t, readAll(t, db, SelectHints{}, all), v1Want())
	db.mu.RLock()
	b := db.blocks[0]
	db.mu.RUnlock()
	for _, st := range b.streams {
		for i := range st.chunks {
			h := blockChunkHandle{b: b, c: &st.chunks[i]}
			sc, err := h.readRaw()
			if err != nil {
				t.Fatal(err)
			}
			if sc.data[0] != chunkEncodingZstd || sc.summary == nil {
				t.Fatalf("compacted chunk: encoding %d, summary %d bytes; want zstd with a summary", sc.data[0], len(sc.summary))
			}
		}
	}
	// And again after a reopen.
	db.Close()
	db = openTest(t, dir, nil)
	defer db.Close()
	checkEntries(t, readAll(t, db, SelectHints{}, all), v1Want())
}

// TestColdCompressionS2 keeps compacted chunks in s2 when asked to.
func TestColdCompressionS2(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, "testdata/v1", dir)
	db := openTest(t, dir, func(o *Options) { o.ChunkTargetSize = 600; o.ColdCompression = CompressionS2 })
	defer db.Close()
	if err := db.Compact(); err != nil {
		t.Fatal(err)
	}
	db.mu.RLock()
	b := db.blocks[0]
	db.mu.RUnlock()
	sc, err := blockChunkHandle{b: b, c: &b.streams[0].chunks[0]}.readRaw()
	if err != nil {
		t.Fatal(err)
	}
	if sc.data[0] != chunkEncodingS2 || sc.summary == nil {
		t.Fatalf("encoding %d, summary %d bytes; want s2 with a summary", sc.data[0], len(sc.summary))
	}
	checkEntries(t, readAll(t, db, SelectHints{}, labels.MustNewMatcher(labels.MatchEqual, "app", "v1")), v1Want())
}

// TestSummaryCounts checks a chunk summary against the chunk's own entries:
// per-second and per-metadata-set counts and line bytes (buckets open on
// the left), metadata bytes, timestamps before 1970.
func TestSummaryCounts(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		var rc rawChunk
		type cnt struct{ n, b int64 }
		want := map[string]cnt{}
		var mdBytes int64
		t0 := int64(1_700_000_000)*SummaryBucket - int64(r.IntN(3))*SummaryBucket
		for i := range 200 + r.IntN(300) {
			ts := t0 + r.Int64N(30*SummaryBucket)
			if i%7 == 0 {
				ts = t0 + int64(r.IntN(30))*SummaryBucket // on a bucket bound
			}
			if round%3 == 0 {
				ts = -ts // before 1970
			}
			line := fmt.Sprint("line ", i, " ", r.Uint64())
			md := labels.EmptyLabels()
			if i%3 == 1 {
				md = labels.FromStrings("detected_level", []string{"info", "warn"}[i%2], "trace_id", fmt.Sprint(i%5))
				mdBytes += int64(len("detected_level") + len(md.Get("detected_level")) + len("trace_id") + len(fmt.Sprint(i%5)))
			}
			rc.append(ts, line, md)
			end := (bucketOf(ts) + 1) * SummaryBucket
			if ts > end || ts <= end-SummaryBucket {
				t.Fatalf("bucket of %d ends at %d", ts, end)
			}
			k := fmt.Sprint(end, md)
			c := want[k]
			c.n++
			c.b += int64(len(line))
			want[k] = c
		}
		c := cutChunk(&rc)
		sm, err := parseSummary(c.summary())
		if err != nil {
			t.Fatal(err)
		}
		if sm.mdBytes != mdBytes || len(sm.sets) != 11 {
			t.Fatalf("metadata bytes %d, %d sets; want %d, 11 (none and ten)", sm.mdBytes, len(sm.sets), mdBytes)
		}
		got := map[string]cnt{}
		prev := int64(minTime)
		err = sm.each(func(b SummaryBucketCounts) {
			if b.End < prev {
				t.Fatalf("bucket %d after %d", b.End, prev)
			}
			prev = b.End
			k := fmt.Sprint(b.End, b.Metadata)
			if _, dup := got[k]; dup {
				t.Fatalf("group %s twice", k)
			}
			got[k] = cnt{int64(b.Entries), b.LineBytes}
		})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("round %d: groups\n got %v\nwant %v", round, got, want)
		}
	}
}

// TestSplitSummarized checks which chunks a stream answers from summaries:
// not those overlapping another chunk (duplicates), not those cut by an
// unaligned range bound, not the head's open chunk, and none when lines are
// filtered; metadata comes with its groups.
func TestSplitSummarized(t *testing.T) {
	db := openTest(t, t.TempDir(), func(o *Options) { o.ChunkTargetSize = 1 << 10 })
	defer db.Close()
	ls := labels.FromStrings("app", "s")
	t0 := int64(1_800_000_000) * SummaryBucket
	add := func(from, n int, md labels.Labels) {
		app := db.Appender()
		for i := from; i < from+n; i++ {
			app.Append(ls, Entry{Timestamp: t0 + int64(i)*int64(100*time.Millisecond), Line: fmt.Sprintf("line %04d xxxxxxxxxxxxxxxxxxxxxxxxxxxx", i), Metadata: md})
		}
		if _, err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	add(0, 100, labels.EmptyLabels())
	if err := db.FlushHead(); err != nil {
		t.Fatal(err)
	}
	add(100, 100, labels.FromStrings("detected_level", "info"))
	if err := db.FlushHead(); err != nil {
		t.Fatal(err)
	}
	// A retry of entry 50 (a duplicate, dropped by the merge) in a block of
	// its own overlaps one chunk of the first block: both are read.
	add(50, 1, labels.EmptyLabels())
	if err := db.FlushHead(); err != nil {
		t.Fatal(err)
	}
	add(200, 5, labels.EmptyLabels()) // the head's open chunk: read
	split := func(h SelectHints) (summarized int64, rest int) {
		q, err := db.Querier(minTime, maxTime)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		ss := q.Select(t.Context(), h, labels.MustNewMatcher(labels.MatchEqual, "app", "s"))
		if !ss.Next() {
			t.Fatal("no stream")
		}
		s := ss.At()
		r, st, err := s.SplitSummarized(func(b SummaryBucketCounts) {
			summarized += int64(b.Entries)
			if lv := b.Metadata.Get("detected_level"); (lv == "info") != (b.MetadataKey != "") {
				t.Fatalf("group metadata %s, key %q", b.Metadata, b.MetadataKey)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if st.Entries != summarized {
			t.Fatalf("stats %d entries, callbacks %d", st.Entries, summarized)
		}
		if r != nil {
			it := r.Iterator(t.Context())
			for it.Next() {
				rest++
			}
			it.Close()
		}
		return summarized, rest
	}
	all := SelectHints{Start: minTime, End: maxTime}
	s, r := split(all)
	if s+int64(r) != 205 || s < 150 || r < 6 || r > 60 {
		t.Fatalf("summarized %d + read %d, want 205 with the overlap and the open chunk read", s, r)
	}
	if s, r := split(SelectHints{Start: minTime, End: maxTime, Contains: []string{"line"}}); s != 0 || r != 205 {
		t.Fatalf("with a line filter: summarized %d, read %d; want all read", s, r)
	}
	// A range from 2.05 s to 15.05 s (unaligned): entries 21..150, the
	// chunks holding the bounds read.
	h := SelectHints{Start: t0 + 2050*int64(time.Millisecond), End: t0 + 15050*int64(time.Millisecond)}
	if s, r := split(h); s+int64(r) != 130 || r < 2 {
		t.Fatalf("unaligned range: summarized %d + read %d, want 130 (entries 21..150)", s, r)
	}
	// Aligned on seconds (2 s exclusive … 15 s inclusive, as a window
	// (2 s, 15 s] selects with Start 2 s + 1 ns, End 15 s + 1 ns): entries 21..150 again.
	h = SelectHints{Start: t0 + 2*int64(time.Second) + 1, End: t0 + 15*int64(time.Second) + 1}
	if s, r := split(h); s+int64(r) != 130 {
		t.Fatalf("aligned range: summarized %d + read %d, want 130", s, r)
	}
}

// TestFoldBloom: a folded filter keeps every n-gram of the chunk (no false
// negatives), is smaller when the filter was sparse, and stays within the
// fill bound.
func TestFoldBloom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var rc rawChunk
	var ids []string
	for i := range 400 {
		id := fmt.Sprintf("%016x%016x", r.Uint64(), r.Uint64())
		ids = append(ids, id)
		rc.append(int64(i), "level=info trace_id="+id+" msg=\"served\"", labels.EmptyLabels())
	}
	c := cutChunk(&rc)
	f := foldBloom(c.bloom)
	if len(f) > len(c.bloom) {
		t.Fatalf("folded %d bytes > %d", len(f), len(c.bloom))
	}
	for _, id := range ids {
		if !bloomMayContain(f, []string{id, id[5:13], "trace_id="}) {
			t.Fatalf("folded filter lost %s", id)
		}
	}
	set := 0
	for _, b := range f[2:] {
		for ; b != 0; b &= b - 1 {
			set++
		}
	}
	if fill := float64(set) / float64(8*(len(f)-2)); len(f) < len(c.bloom) && fill > coldBloomMaxFill {
		t.Fatalf("fill %.2f above %.2f", fill, coldBloomMaxFill)
	}
	// False positives: random trace IDs that are not in the chunk pass
	// neither filter; random 8-hex-digit needles pass the folded one at
	// most a few times in a hundred.
	fp := func(f []byte, n int) int {
		k := 0
		for range 2000 {
			if bloomMayContain(f, []string{fmt.Sprintf("%016x%016x", r.Uint64(), r.Uint64())[:n]}) {
				k++
			}
		}
		return k
	}
	if a, b := fp(c.bloom, 32), fp(f, 32); a+b > 0 {
		t.Fatalf("32-digit needles not in the chunk passed %d (unfolded) and %d (folded) of 2000", a, b)
	}
	a, b := fp(c.bloom, 8), fp(f, 8)
	t.Logf("8-digit needles not in the chunk passing: unfolded %d, folded %d of 2000 (filter %d → %d bytes)", a, b, len(c.bloom), len(f))
	if b > 200 {
		t.Fatalf("folded filter passes %d of 2000 8-digit needles", b)
	}
	sparse := append([]byte{12, 2}, make([]byte, 1<<12/8)...)
	sparse[2] = 1
	if g := foldBloom(sparse); len(g) != 2+bloomMinBits/8 || !bloomMayContain(g, nil) {
		t.Fatalf("an almost empty filter of 4096 bits folds to %d bytes, want %d", len(g), 2+bloomMinBits/8)
	}
	if g := foldBloom([]byte{40, 2, 1}); len(g) != 3 {
		t.Fatal("an unreadable filter must come back as is")
	}
}

// FuzzDecoders feeds arbitrary bytes to the version 2 decoders: stored
// chunks (both encodings, with a valid checksum so the body is decoded),
// chunk summaries and the block index. None may panic or allocate without
// bound.
func FuzzDecoders(f *testing.F) {
	var rc rawChunk
	rc.append(1_000_000_000, "level=info msg=a", labels.FromStrings("detected_level", "info"))
	rc.append(2_500_000_000, "level=warn msg=b", labels.EmptyLabels())
	c := cutChunk(&rc)
	f.Add(c.data[:len(c.data)-4], c.summary())
	f.Add(compressChunk(rc.encode(), chunkEncodingZstd)[:len(c.data)-4], []byte{0, 0, 1, 2, 1, 3})
	f.Add([]byte{2, 0xff, 0xff, 0xff, 0xff, 0x0f}, []byte{})
	f.Fuzz(func(t *testing.T, body, summary []byte) {
		stored := binary.BigEndian.AppendUint32(slices.Clone(body), crc32.Checksum(body, castagnoli))
		if raw, release, err := decompressChunk(stored, true, 0); err == nil {
			parseChunk(raw, nil)
			release()
		}
		if s, err := parseSummary(summary); err == nil {
			s.each(func(SummaryBucketCounts) {})
		}
		idx := append([]byte(indexMagic), blockFormatVersion)
		idx = append(idx, summary...)
		decodeIndex(binary.BigEndian.AppendUint32(idx, crc32.Checksum(idx, castagnoli)))
	})
}
