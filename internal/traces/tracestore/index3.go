package tracestore

import (
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Index layout 3 (format version 4, docs/formats/tracestore.md): what a
// query needs only now and then stays in the file, which is memory-mapped
// instead of read into the heap. Postings are one zstd frame per key, read
// and decoded when a query names the key (kept in a bounded cache); the
// trace-ID bloom filter is blocked (all bits of one ID in one 64-byte
// block) and read from the mapping. Opening a block reads only the small
// body: the chunk fence, the page table and the postings directory.
const indexLayout3 = 3

// indexLayout4 (format version 5) is layout 3 with the posting lists
// stored uncompressed in the file, outside the key frames: a key's frame
// holds only its values and where their lists are, and the lists are read
// from the mapping as far as a query walks them. With lists inside the
// frame (layout 3), a search naming a key every trace carries decoded and
// walked megabytes per block before its first candidate.
const indexLayout4 = 4

// indexLayout5 (format version 6) is layout 4 with the bloom filter's
// hash mixed (bloom3Pos).
const indexLayout5 = 5

// indexLayout6 (format version 7) is layout 5 with each posting list
// tagged: listVarint (uvarint(n) and n deltas, as before) or listBitmap
// (uvarint(first) then a bitmap of ordinals first, first+1, …), whichever
// is smaller. A value most traces carry (kind, status, a service) costs
// 1/8 byte per trace as a bitmap instead of ~1 byte as deltas; both forms
// are still walked in the mapping as far as a query goes.
const indexLayout6 = 6 // also: ID chunks field-major in three sections (parseChunk6)

// indexLayout7 (format version 13) is layout 6 with each entry's page and
// offset said outright: page deltas are zigzag (a compacted block keeps
// its sources' pages, so entries in ID order go back and forth between
// them, ADR 0125) and each offset is a zigzag difference from where the
// previous entry ended (0 when on another page), so a block whose entries
// follow its records still costs a zero byte per trace.
const indexLayout7 = 7

// List tags of layout 6.
const (
	listVarint = 0
	listBitmap = 1
)

// appendTaggedList appends list in the smaller of layout 6's two forms.
func appendTaggedList(b []byte, list []uint32) []byte {
	if len(list) > 0 {
		first, last := list[0], list[len(list)-1]
		bm := uvarintLen(uint64(first)) + int(last-first)/8 + 1
		vs := uvarintLen(uint64(len(list)))
		prev := uint32(0)
		for _, o := range list {
			vs += uvarintLen(uint64(o - prev))
			prev = o
		}
		if bm < vs {
			b = append(b, listBitmap)
			b = binary.AppendUvarint(b, uint64(first))
			n := len(b)
			b = append(b, make([]byte, int(last-first)/8+1)...)
			for _, o := range list {
				i := o - first
				b[n+int(i/8)] |= 1 << (i % 8)
			}
			return b
		}
	}
	return appendPostingList(append(b, listVarint), list)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// postingsCacheBytes bounds a store's cache of decoded postings frames.
// One frame of a key every trace carries (status, kind) takes ~1–2 bytes
// per trace of the block, so 8 MiB holds the hot keys of a few million
// traces; a query whose frames do not fit decodes them again.
const postingsCacheBytes = 8 << 20

// bloom3 is a blocked bloom filter: an ID sets k=7 bits, 9 bits of its
// second half each, inside the 512-bit block its first half chooses.
const (
	bloomBlockBytes = 64
	bloomBlockBits  = bloomBlockBytes * 8
	bloomK3         = 7
)

// bloom3BitsPerTrace sizes the filters written now. Readers take the size
// from the file, so this is not part of the format. At 10 bits (as the
// in-memory filter of layouts 1 and 2) ~1 % of absent IDs answered
// "maybe", and each such answer costs a chunk decode (~100 µs): in a search
// or metrics query that checks every trace against every other block, that
// was half of a column scan's CPU. 16 bits give ~0.1 % for 0.75 bytes more
// per trace, in the mapped file, not the heap.
const bloom3BitsPerTrace = 16

func bloom3Blocks(n int) int { return max(1, (n*bloom3BitsPerTrace+bloomBlockBits-1)/bloomBlockBits) }

func bloom3Pos(id TraceID, nBlocks int, mixed bool) (blk uint64, bits [bloomK3]uint16) {
	h1 := binary.LittleEndian.Uint64(id[:8])
	h2 := binary.LittleEndian.Uint64(id[8:])
	if mixed {
		// Layout 5: trace IDs are not always uniform in their raw bits
		// (generators set the lowest bit, W3C-style IDs have a zero or
		// timestamp half), and a raw h1 % n with n even used half the
		// blocks for IDs whose first byte is odd: a 13 % false-positive
		// rate instead of 1 %. Both words are mixed (splitmix64 finaliser).
		h1, h2 = mix64(h1^bits64rot(h2)), mix64(h2^0x9e3779b97f4a7c15)
		blk = (h1 >> 32) * uint64(nBlocks) >> 32
	} else {
		blk = h1 % uint64(nBlocks)
	}
	for i := range bits {
		bits[i] = uint16(h2 >> (9 * i) & (bloomBlockBits - 1))
	}
	return blk, bits
}

func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

func bits64rot(x uint64) uint64 { return x<<29 | x>>35 }

func bloom3Bytes(ids []TraceID, mixed bool) []byte {
	n := bloom3Blocks(len(ids))
	out := make([]byte, n*bloomBlockBytes)
	for _, id := range ids {
		blk, bits := bloom3Pos(id, n, mixed)
		b := out[blk*bloomBlockBytes:]
		for _, p := range bits {
			b[p/8] |= 1 << (p % 8)
		}
	}
	return out
}

func bloom3MayContain(bloom []byte, id TraceID, mixed bool) bool {
	n := len(bloom) / bloomBlockBytes
	if n == 0 {
		return true
	}
	if uint64(n) > 1<<32 {
		return true // beyond what the mixed hash addresses: never written
	}
	blk, bits := bloom3Pos(id, n, mixed)
	b := bloom[blk*bloomBlockBytes:]
	for _, p := range bits {
		if b[p/8]&(1<<(p%8)) == 0 {
			return false
		}
	}
	return true
}

var (
	emptyPostingList = postingList{0}
	emptyTaggedList  = postingList{listVarint, 0}
)

// postingsRef locates one key's postings frame in a layout 3 index.
type postingsRef struct {
	complete bool
	values   int
	off      uint64
	clen     uint32
}

// encodeIndex3 returns a layout 3 index file, or layout 4 (lists outside
// the frames) when layout is indexLayout4.
func (bw *blockWriter) encodeIndex3(layout byte) []byte {
	out := append(make([]byte, 0, bw.indexSizeHint()), indexMagic...)
	out = append(out, layout)
	base := uint64(bw.meta.MinTime)
	table, nChunks := bw.appendChunks(&out, base, layout)
	// Postings: one frame per key, in key order.
	keys := make([]string, 0, len(bw.postings))
	for k := range bw.postings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var dir, raw []byte
	dir = binary.AppendUvarint(dir, uint64(len(keys)))
	frames := make([][]byte, len(keys))
	if layout >= indexLayout4 {
		// Lists first, uncompressed; each frame then names its lists.
		for i, k := range keys {
			frames[i] = bw.appendValueRefs(nil, bw.postings[k], &out, layout >= indexLayout6)
		}
	}
	for i, k := range keys {
		kp := bw.postings[k]
		if layout >= indexLayout4 {
			raw = frames[i]
		} else {
			raw = bw.appendValues(raw[:0], kp)
		}
		off := len(out)
		out = bw.encodeLarge(raw, out)
		dir = appendString(dir, k)
		if kp.complete {
			dir = append(dir, 1)
		} else {
			dir = append(dir, 0)
		}
		dir = binary.AppendUvarint(dir, uint64(min(len(kp.values), sampleIfIncomplete(kp))))
		dir = binary.AppendUvarint(dir, uint64(off))
		dir = binary.AppendUvarint(dir, uint64(len(out)-off))
	}
	bloomOff := len(out)
	out = append(out, bloom3Bytes(bw.ids, layout >= indexLayout5)...)
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(bw.ids)))
	b = binary.AppendUvarint(b, base)
	b = binary.AppendUvarint(b, uint64(chunkTraces))
	b = binary.AppendUvarint(b, uint64(nChunks))
	b = append(b, table...)
	b = bw.appendPages(b)
	b = binary.AppendUvarint(b, uint64(bloomOff))
	b = binary.AppendUvarint(b, uint64(bloom3Blocks(len(bw.ids))))
	b = append(b, dir...)
	bodyOff := len(out)
	out = bw.encodeLarge(b, out)
	out = binary.LittleEndian.AppendUint64(out, uint64(bodyOff))
	// The CRC covers the body and its offset only: opening a block reads
	// nothing else. Chunks and postings frames carry zstd checksums.
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out[bodyOff:], castagnoli))
}

// indexSizeHint is the capacity the index is built in: ~21 bytes per
// trace of ID chunks and about one per posting entry (dense lists take
// less as bitmaps, sparse ones up to ~2), ~1.3 times the index of the
// benchmark's blocks. Grown by doubling, the ~70 MB index of a 10M-span
// compaction was copied several times (~1 s of its 26 CPU-s).
func (bw *blockWriter) indexSizeHint() int {
	entries := 0
	for _, kp := range bw.postings {
		for _, l := range kp.values {
			entries += len(l)
		}
	}
	return 22*len(bw.ids) + entries + 64<<10
}

func sampleIfIncomplete(kp *keyPostings) int {
	if kp.complete {
		return len(kp.values)
	}
	return sampleValues
}

// appendSections appends raw split at cuts as uvarint(n) n × (uvarint(len)
// zstd frame): each section gets its own entropy tables, so random bytes
// (IDs, low bytes of times) do not spoil the coding of the small values
// next to them.
func appendSections(enc *zstd.Encoder, dst, raw []byte, cuts []int) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(cuts)+1))
	from := 0
	for i := 0; i <= len(cuts); i++ {
		to := len(raw)
		if i < len(cuts) {
			to = cuts[i]
		}
		f := enc.EncodeAll(raw[from:to], nil)
		dst = binary.AppendUvarint(dst, uint64(len(f)))
		dst = append(dst, f...)
		from = to
	}
	return dst
}

// decodeSections reverses appendSections, appending the sections to dst.
func decodeSections(dec *zstd.Decoder, src, dst []byte) ([]byte, error) {
	r := &byteReader{b: src}
	ns := r.count()
	for i := 0; i < ns && r.err == nil; i++ {
		sec := r.bytes(int(r.uvarint()))
		if r.err != nil {
			break
		}
		var err error
		if dst, err = decodeFrames(dec, sec, dst); err != nil {
			return dst, err
		}
	}
	if r.err != nil || len(r.b) != 0 {
		return dst, errors.New("bad sections")
	}
	return dst, nil
}

// appendChunks writes the ID chunks to *out and returns their table.
func (bw *blockWriter) appendChunks(out *[]byte, base uint64, layout byte) (table []byte, nChunks int) {
	var raw []byte
	for c := 0; c < len(bw.ids); c += chunkTraces {
		end := min(c+chunkTraces, len(bw.ids))
		raw = raw[:0]
		if layout >= indexLayout6 {
			// Field-major: IDs, then page deltas, lengths and span
			// counts, then start and end times, as three sections.
			for i := c; i < end; i++ {
				raw = append(raw, bw.ids[i][:]...)
			}
			cuts := []int{len(raw)}
			prevPage := bw.entries[c].page
			for i := c; i < end; i++ {
				if layout >= indexLayout7 {
					raw = binary.AppendVarint(raw, int64(bw.entries[i].page)-int64(prevPage))
				} else {
					raw = binary.AppendUvarint(raw, uint64(bw.entries[i].page-prevPage))
				}
				prevPage = bw.entries[i].page
			}
			for i := c; i < end; i++ {
				raw = binary.AppendUvarint(raw, uint64(bw.entries[i].len))
			}
			for i := c; i < end; i++ {
				raw = binary.AppendUvarint(raw, uint64(bw.entries[i].spans))
			}
			if layout >= indexLayout7 {
				for i := c; i < end; i++ {
					e := bw.entries[i]
					raw = binary.AppendVarint(raw, int64(e.off)-int64(expectedOffset(bw.entries[c:i], e.page, bw.entries[c].off)))
				}
			}
			cuts = append(cuts, len(raw))
			for i := c; i < end; i++ {
				raw = binary.AppendUvarint(raw, (bw.entries[i].start-base)/1000)
			}
			for i := c; i < end; i++ {
				e := bw.entries[i]
				start := (e.start - base) / 1000
				raw = binary.AppendUvarint(raw, (max(e.end, e.start)-base-start*1000+999)/1000)
			}
			off := len(*out)
			*out = appendSections(bw.enc, *out, raw, cuts)
			table = append(table, bw.ids[c][:]...)
			table = binary.AppendUvarint(table, uint64(off))
			table = binary.AppendUvarint(table, uint64(len(*out)-off))
			table = binary.AppendUvarint(table, uint64(bw.entries[c].page))
			table = binary.AppendUvarint(table, uint64(bw.entries[c].off))
			nChunks++
			continue
		}
		prevPage := bw.entries[c].page
		for i := c; i < end; i++ {
			e := bw.entries[i]
			raw = append(raw, bw.ids[i][:]...)
			raw = binary.AppendUvarint(raw, uint64(e.page-prevPage))
			prevPage = e.page
			raw = binary.AppendUvarint(raw, uint64(e.len))
			raw = binary.AppendUvarint(raw, uint64(e.spans))
			start := (e.start - base) / 1000
			raw = binary.AppendUvarint(raw, start)
			raw = binary.AppendUvarint(raw, (max(e.end, e.start)-base-start*1000+999)/1000)
		}
		off := len(*out)
		*out = bw.enc.EncodeAll(raw, *out)
		table = append(table, bw.ids[c][:]...)
		table = binary.AppendUvarint(table, uint64(off))
		table = binary.AppendUvarint(table, uint64(len(*out)-off))
		table = binary.AppendUvarint(table, uint64(bw.entries[c].page))
		table = binary.AppendUvarint(table, uint64(bw.entries[c].off))
		nChunks++
	}
	return table, nChunks
}

// appendValueRefs appends a key's lists to *out and returns its layout 4
// frame body: n_values × (value, list offset, list length); an incomplete
// key's values have no list (length 0).
func (bw *blockWriter) appendValueRefs(b []byte, kp *keyPostings, out *[]byte, tagged bool) []byte {
	vals := make([]string, 0, len(kp.values))
	for v := range kp.values {
		vals = append(vals, v)
	}
	slices.Sort(vals)
	if !kp.complete {
		vals = vals[:min(len(vals), sampleValues)]
	}
	b = binary.AppendUvarint(b, uint64(len(vals)))
	for _, v := range vals {
		b = appendString(b, v)
		if !kp.complete {
			b = binary.AppendUvarint(b, 0)
			b = binary.AppendUvarint(b, 0)
			continue
		}
		list := kp.values[v]
		if bw.merged {
			if !slices.IsSorted(list) { // mergePostings keeps them sorted
				slices.Sort(list)
			}
			list = slices.Compact(list)
		}
		off := len(*out)
		if tagged {
			*out = appendTaggedList(*out, list)
		} else {
			*out = appendPostingList(*out, list)
		}
		b = binary.AppendUvarint(b, uint64(off))
		b = binary.AppendUvarint(b, uint64(len(*out)-off))
	}
	return b
}

// appendValues writes a key's values and lists as layout 2 does.
func (bw *blockWriter) appendValues(b []byte, kp *keyPostings) []byte {
	vals := make([]string, 0, len(kp.values))
	for v := range kp.values {
		vals = append(vals, v)
	}
	slices.Sort(vals)
	if !kp.complete {
		vals = vals[:min(len(vals), sampleValues)]
	}
	b = binary.AppendUvarint(b, uint64(len(vals)))
	for _, v := range vals {
		b = appendString(b, v)
		list := kp.values[v]
		if bw.merged {
			if !slices.IsSorted(list) { // mergePostings keeps them sorted
				slices.Sort(list)
			}
			list = slices.Compact(list)
		}
		if !kp.complete {
			list = nil
		}
		b = appendPostingList(b, list)
	}
	return b
}

// openIndex3 maps a layout 3 index and reads its body.
func (b *block) openIndex3(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return 0, err
	}
	mm, err := mapFile(f, st.Size())
	if err != nil {
		_ = f.Close()
		return 0, fmt.Errorf("map index: %w", err)
	}
	b.index, b.mm = f, mm
	if err := b.decodeIndex3(mm); err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (b *block) decodeIndex3(all []byte) error {
	if len(all) < 5+12 || string(all[:4]) != indexMagic || (all[4] < indexLayout3 || all[4] > indexLayout7) {
		return errCorruptIndex
	}
	b.layout = all[4]
	bodyOff := binary.LittleEndian.Uint64(all[len(all)-12:])
	if bodyOff < 5 || bodyOff > uint64(len(all)-12) {
		return errCorruptIndex
	}
	tail := all[bodyOff : len(all)-4]
	if crc32.Checksum(tail, castagnoli) != binary.LittleEndian.Uint32(all[len(all)-4:]) {
		return fmt.Errorf("%w: checksum mismatch", errCorruptIndex)
	}
	raw, err := decodeFrames(b.dec, slices.Clone(tail[:len(tail)-8]), nil)
	if err != nil {
		return fmt.Errorf("%w: %v", errCorruptIndex, err)
	}
	r := &byteReader{b: raw}
	if err := b.readChunkTable(r, bodyOff); err != nil {
		return err
	}
	b.readPages(r)
	bloomOff, nBlocks := r.uvarint(), r.uvarint()
	if r.err == nil && (nBlocks == 0 || nBlocks > bodyOff/bloomBlockBytes || bloomOff > bodyOff-nBlocks*bloomBlockBytes) {
		return fmt.Errorf("%w: bloom filter outside the file", errCorruptIndex)
	}
	b.bloom3 = all[bloomOff : bloomOff+nBlocks*bloomBlockBytes]
	b.postingsEnd = bodyOff
	nk := r.count()
	b.pdir = make(map[string]postingsRef, nk)
	for i := 0; i < nk && r.err == nil; i++ {
		k := string(r.bytes(int(r.uvarint())))
		flag := r.bytes(1)
		ref := postingsRef{complete: len(flag) == 1 && flag[0] == 1, values: int(r.uvarint())}
		ref.off, ref.clen = r.uvarint(), uint32(r.uvarint())
		if ref.off > bodyOff || uint64(ref.clen) > bodyOff-ref.off {
			return fmt.Errorf("%w: postings of %q outside the file", errCorruptIndex, k)
		}
		b.pdir[k] = ref
	}
	return r.err
}

// postingKeys lists the block's posting keys.
func (b *block) postingKeys() []string {
	if b.pdir != nil {
		out := make([]string, 0, len(b.pdir))
		for k := range b.pdir {
			out = append(out, k)
		}
		return out
	}
	out := make([]string, 0, len(b.postings))
	for k := range b.postings {
		out = append(out, k)
	}
	return out
}

// keyPostings returns the postings of one key (nil when no span of the
// block carries it): from memory for layouts 1 and 2, from the key's frame
// (through the store's cache) for layout 3.
func (b *block) keyPostings(key string) (*blockPostings, error) {
	if b.pdir == nil {
		return b.postings[key], nil
	}
	ref, ok := b.pdir[key]
	if !ok {
		return nil, nil
	}
	ck := cacheKey{b: b, key: key}
	if kp := b.cache.get(ck); kp != nil {
		return kp, nil
	}
	raw, err := decodeFrames(b.dec, b.mm[ref.off:ref.off+uint64(ref.clen)], nil)
	if err != nil {
		return nil, fmt.Errorf("%w: postings of %q: %v", errCorruptIndex, key, err)
	}
	r := &byteReader{b: raw}
	nv := r.count()
	kp := &blockPostings{complete: ref.complete, tagged: b.layout >= indexLayout6, values: make(map[string]postingList, nv)}
	for j := 0; j < nv && r.err == nil; j++ {
		v := string(r.bytes(int(r.uvarint())))
		if b.layout < indexLayout4 {
			kp.values[v] = r.postingList()
			continue
		}
		// The list stays in the mapping; it is walked only as far as a
		// query goes (the block cannot close while a query holds it).
		off, n := r.uvarint(), r.uvarint()
		if n == 0 {
			kp.values[v] = emptyPostingList
			if kp.tagged {
				kp.values[v] = emptyTaggedList
			}
			continue
		}
		if off > b.postingsEnd || n > b.postingsEnd-off {
			return nil, fmt.Errorf("%w: list of %q=%q outside the postings", errCorruptIndex, key, v)
		}
		kp.values[v] = postingList(b.mm[off : off+n])
	}
	if r.err != nil {
		return nil, fmt.Errorf("postings of %q: %w", key, r.err)
	}
	size := len(raw) + len(kp.values)*48
	if b.layout >= indexLayout4 {
		size = len(raw) + len(kp.values)*(48+24) // lists are in the mapping, not the heap
	}
	b.cache.put(ck, kp, size)
	return kp, nil
}

// postingsCache keeps recently read postings frames, bounded in bytes
// (their decoded size plus map overhead). Shared by a store's blocks.
type postingsCache struct {
	mu    sync.Mutex
	max   int
	size  int
	ll    *list.List
	items map[cacheKey]*list.Element
}

type cacheKey struct {
	b   *block
	key string
}

type cacheItem struct {
	k    cacheKey
	kp   *blockPostings
	size int
}

func newPostingsCache(maxBytes int) *postingsCache {
	return &postingsCache{max: maxBytes, ll: list.New(), items: map[cacheKey]*list.Element{}}
}

func (c *postingsCache) get(k cacheKey) *blockPostings {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*cacheItem).kp
	}
	return nil
}

func (c *postingsCache) put(k cacheKey, kp *blockPostings, size int) {
	if c == nil || size > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[k]; ok {
		return
	}
	c.items[k] = c.ll.PushFront(&cacheItem{k: k, kp: kp, size: size})
	c.size += size
	for c.size > c.max {
		e := c.ll.Back()
		it := e.Value.(*cacheItem)
		c.ll.Remove(e)
		delete(c.items, it.k)
		c.size -= it.size
	}
}

// drop forgets a closed block's entries.
func (c *postingsCache) drop(b *block) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.items {
		if k.b == b {
			c.size -= e.Value.(*cacheItem).size
			c.ll.Remove(e)
			delete(c.items, k)
		}
	}
}

// readChunkTable reads the index body's head, shared by every index layout:
// trace count, ID base, traces per chunk, and each chunk's first trace ID,
// extent in the data file (which must end before bodyOff) and page.
func (b *block) readChunkTable(r *byteReader, bodyOff uint64) error {
	b.n = int(r.uvarint())
	b.base = r.uvarint()
	b.chunkN = int(r.uvarint())
	nc := r.count()
	if r.err == nil && (b.chunkN <= 0 || (b.n+b.chunkN-1)/b.chunkN != nc) {
		return fmt.Errorf("%w: %d chunks for %d traces", errCorruptIndex, nc, b.n)
	}
	b.chunks = make([]chunkRef, nc)
	for i := 0; i < nc && r.err == nil; i++ {
		c := &b.chunks[i]
		copy(c.first[:], r.bytes(16))
		c.off, c.clen = r.uvarint(), uint32(r.uvarint())
		c.page, c.pageOff = uint32(r.uvarint()), uint32(r.uvarint())
		c.n = min(b.chunkN, b.n-i*b.chunkN)
		if c.off > bodyOff || uint64(c.clen) > bodyOff-c.off {
			return fmt.Errorf("%w: chunk %d outside the file", errCorruptIndex, i)
		}
	}
	return nil
}

// expectedOffset is where layout 7 predicts the entry after prev (the
// chunk's earlier entries) to start on page: right after the previous
// entry on the same page, else at 0; first is the chunk's first entry's
// offset (from the chunk table).
func expectedOffset(prev []indexEntry, page, first uint32) uint32 {
	if len(prev) == 0 {
		return first
	}
	if last := prev[len(prev)-1]; last.page == page {
		return last.off + last.len
	}
	return 0
}
