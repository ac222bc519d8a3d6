package logstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"runtime"
	"slices"
	"sync"
	"unsafe"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/prometheus/model/labels"
)

// Entry is one log line of a stream.
type Entry struct {
	Timestamp int64         // Unix nanoseconds.
	Line      string        // The log line as pushed.
	Metadata  labels.Labels // Loki 3 structured metadata; empty for most lines.
}

// Stored chunk encodings (docs/formats/logstore.md). s2 is the hot one:
// head chunks and flushed blocks. zstd (format version 2) is for compacted
// blocks: about half the bytes of s2 on log lines, decompressed ~3× slower.
const (
	chunkEncodingS2   byte = 1
	chunkEncodingZstd byte = 2
)

// Compression names a stored chunk encoding, for Options.
type Compression string

// The chunk compressions Options.ColdCompression accepts.
const (
	CompressionS2   Compression = "s2"
	CompressionZstd Compression = "zstd"
)

func (c Compression) encoding() byte {
	if c == CompressionZstd {
		return chunkEncodingZstd
	}
	return chunkEncodingS2
}

// One zstd encoder and decoder for the process: EncodeAll and DecodeAll
// are safe for concurrent use.
var (
	zstdOnce sync.Once
	zstdEnc  *zstd.Encoder
	zstdDec  *zstd.Decoder
)

func zstdCodecs() (*zstd.Encoder, *zstd.Decoder) {
	zstdOnce.Do(func() {
		var err error
		// SpeedFastest: on these lines it compresses as well as the default
		// level (0.168 vs 0.174 of the raw bytes at 256 KiB) at twice its speed.
		if zstdEnc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithLowerEncoderMem(true)); err != nil {
			panic(err) // only for invalid options
		}
		// DecodeAll never writes more than cap(dst)-len(dst) bytes
		// (WithDecodeAllCapLimit): a frame that decodes to more than the
		// chunk header's length is an error, not an allocation of up to
		// the decoder's memory limit. The frame's own checksum is not
		// verified: the stored chunk's CRC-32C already covers the frame.
		if zstdDec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)),
			zstd.WithDecoderMaxMemory(maxChunkRaw), zstd.WithDecodeAllCapLimit(true), zstd.IgnoreChecksum(true)); err != nil {
			panic(err)
		}
	})
	return zstdEnc, zstdDec
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorruptChunk reports a chunk whose checksum or layout does not add up.
var ErrCorruptChunk = errors.New("corrupt chunk")

// rawChunk accumulates entries column by column (see docs/formats/logstore.md):
// timestamps, line lengths, metadata, and all lines back to back, so a line
// filter can run one bytes.Index over every line of a chunk at once.
type rawChunk struct {
	ts, lens, md, lines []byte
	entries             int
	minT, maxT, lastT   int64
	unsorted            bool

	// The last metadata set appended and where its encoding (length
	// prefix included) sits in md: an entry with the same set copies
	// those bytes instead of encoding it again.
	lastMD               labels.Labels
	lastMDFrom, lastMDTo int
}

func (c *rawChunk) size() int { return len(c.ts) + len(c.lens) + len(c.md) + len(c.lines) }

func (c *rawChunk) append(ts int64, line string, md labels.Labels) {
	if c.entries == 0 {
		c.minT, c.maxT = ts, ts
	} else {
		if ts < c.lastT {
			c.unsorted = true
		}
		c.minT = min(c.minT, ts)
		c.maxT = max(c.maxT, ts)
	}
	c.ts = binary.AppendVarint(c.ts, ts-c.lastT)
	c.lastT = ts
	c.lens = binary.AppendUvarint(c.lens, uint64(len(line)))
	c.lines = append(c.lines, line...)
	if md.IsEmpty() {
		c.md = append(c.md, 0)
	} else if c.lastMDTo > c.lastMDFrom && labels.Equal(md, c.lastMD) {
		from := len(c.md)
		c.md = append(c.md, c.md[c.lastMDFrom:c.lastMDTo]...)
		c.lastMDFrom, c.lastMDTo = from, len(c.md)
	} else {
		from := len(c.md)
		// The blob goes straight into the column, its size computed first
		// (no per-entry buffer: every entry carries detected_level).
		n := uvarintLen(uint64(md.Len()))
		md.Range(func(l labels.Label) {
			n += uvarintLen(uint64(len(l.Name))) + len(l.Name) + uvarintLen(uint64(len(l.Value))) + len(l.Value)
		})
		c.md = binary.AppendUvarint(c.md, uint64(n))
		c.md = binary.AppendUvarint(c.md, uint64(md.Len()))
		md.Range(func(l labels.Label) {
			c.md = appendString(c.md, l.Name)
			c.md = appendString(c.md, l.Value)
		})
		c.lastMD, c.lastMDFrom, c.lastMDTo = md, from, len(c.md)
	}
	c.entries++
}

// successor is the empty chunk that follows c in a stream that just filled
// it: its columns are allocated at c's sizes (plus a little), so the next
// chunk of a busy stream fills without regrowing them. Growing by append
// (×1.25 at these sizes) copied each column about four times over and was
// ~8 % of the push path's CPU. Only streams that fill a chunk get one, so
// many quiet streams cost nothing more.
func (c *rawChunk) successor() rawChunk {
	capOf := func(n int) int { return n + n/16 + 64 }
	return rawChunk{
		ts:    make([]byte, 0, capOf(len(c.ts))),
		lens:  make([]byte, 0, capOf(len(c.lens))),
		md:    make([]byte, 0, capOf(len(c.md))),
		lines: make([]byte, 0, capOf(len(c.lines))),
	}
}

// snapshot captures the chunk for a reader; later appends never rewrite
// bytes a snapshot can see.
func (c *rawChunk) snapshot() rawChunk {
	s := *c
	s.ts, s.lens, s.md, s.lines = c.ts[:len(c.ts):len(c.ts)], c.lens[:len(c.lens):len(c.lens)], c.md[:len(c.md):len(c.md)], c.lines[:len(c.lines):len(c.lines)]
	return s
}

// encode lays the columns out behind a small header.
func (c *rawChunk) encode() []byte {
	b := make([]byte, 0, c.size()+4*binary.MaxVarintLen64)
	b = binary.AppendUvarint(b, uint64(c.entries))
	b = binary.AppendUvarint(b, uint64(len(c.ts)))
	b = binary.AppendUvarint(b, uint64(len(c.lens)))
	b = binary.AppendUvarint(b, uint64(len(c.md)))
	b = append(b, c.ts...)
	b = append(b, c.lens...)
	b = append(b, c.md...)
	return append(b, c.lines...)
}

// chunkView is a decoded chunk: timestamps and offsets in slices, lines and
// metadata still in the (uncompressed) buffer.
type chunkView struct {
	ts      []int64
	lineOff []int // n+1 offsets into lines
	lines   []byte
	mdOff   []int // n+1 offsets into md; an entry's blob is md[mdOff[i]:mdOff[i+1]]
	md      []byte

	// The last metadata blob decoded and its labels: consecutive entries
	// mostly carry the same metadata (every entry has detected_level), so
	// they share one decoded set instead of allocating one each.
	lastBlob []byte
	lastMD   labels.Labels
}

func (v *chunkView) len() int { return len(v.ts) }

func (v *chunkView) line(i int) []byte { return v.lines[v.lineOff[i]:v.lineOff[i+1]] }

// entry materialises entry i; with alias the line shares the chunk buffer,
// which must then never be reused.
func (v *chunkView) entry(i int, alias bool) (Entry, error) {
	l := v.line(i)
	e := Entry{Timestamp: v.ts[i]}
	if alias {
		e.Line = unsafe.String(unsafe.SliceData(l), len(l))
	} else {
		e.Line = string(l)
	}
	blob := v.md[v.mdOff[i]:v.mdOff[i+1]]
	if len(blob) > 0 && v.lastBlob != nil && bytes.Equal(blob, v.lastBlob) {
		e.Metadata = v.lastMD
	} else if len(blob) > 0 {
		d := decoder{b: blob}
		var sb labels.ScratchBuilder
		e.Metadata = d.labels(&sb)
		if d.err != nil {
			return e, fmt.Errorf("%w: entry %d metadata: %w", ErrCorruptChunk, i, d.err)
		}
		v.lastBlob, v.lastMD = blob, e.Metadata
	}
	return e, nil
}

// parseChunk decodes a chunk. With a searcher, a chunk whose lines column
// does not contain the needle anywhere comes back empty without decoding its
// timestamp, length and metadata columns.
func parseChunk(raw []byte, s *searcher) (*chunkView, error) {
	d := decoder{b: raw}
	n, lt, ll, lm := d.uvarint(), d.uvarint(), d.uvarint(), d.uvarint()
	if d.err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrCorruptChunk, d.err)
	}
	rest := d.b
	if lt+ll+lm > uint64(len(rest)) || n > uint64(len(rest)) {
		return nil, fmt.Errorf("%w: columns exceed %d bytes", ErrCorruptChunk, len(rest))
	}
	lines := rest[lt+ll+lm:]
	if s != nil && s.index(lines, 0) < 0 {
		return &chunkView{lineOff: []int{0}, mdOff: []int{0}}, nil
	}
	return parseColumns(int(n), rest[:lt], rest[lt:lt+ll], rest[lt+ll:lt+ll+lm], lines)
}

func parseColumns(n int, tsCol, lensCol, mdCol, lines []byte) (*chunkView, error) {
	v := viewPool.Get().(*chunkView)
	*v = chunkView{ts: resize(v.ts, n), lineOff: resize(v.lineOff, n+1), mdOff: resize(v.mdOff, n+1), lines: lines, md: mdCol}
	v.lineOff[0] = 0
	var t int64
	for i := range n {
		dt, k := binary.Varint(tsCol)
		if k <= 0 {
			return nil, fmt.Errorf("%w: timestamp %d", ErrCorruptChunk, i)
		}
		tsCol = tsCol[k:]
		t += dt
		v.ts[i] = t
		l, k := binary.Uvarint(lensCol)
		if k <= 0 {
			return nil, fmt.Errorf("%w: line length %d", ErrCorruptChunk, i)
		}
		lensCol = lensCol[k:]
		v.lineOff[i+1] = v.lineOff[i] + int(l)
		if v.lineOff[i+1] > len(lines) || v.lineOff[i+1] < v.lineOff[i] {
			return nil, fmt.Errorf("%w: line %d beyond the lines column", ErrCorruptChunk, i)
		}
	}
	// Metadata blobs are stored as length + bytes. Most chunks have none
	// (every length 0): then md stays empty. Otherwise the blobs are packed
	// so md[mdOff[i]:mdOff[i+1]] is exactly blob i.
	v.md = nil
	if len(mdCol) == n && bytes.Count(mdCol, []byte{0}) == n {
		clear(v.mdOff)
		return v, nil
	}
	packed := make([]byte, 0, len(mdCol))
	off := 0
	for i := range n {
		bl, k := binary.Uvarint(mdCol[off:])
		if k <= 0 || uint64(len(mdCol)-off-k) < bl {
			return nil, fmt.Errorf("%w: metadata %d", ErrCorruptChunk, i)
		}
		v.mdOff[i] = len(packed)
		packed = append(packed, mdCol[off+k:off+k+int(bl)]...)
		off += k + int(bl)
	}
	v.mdOff[n] = len(packed)
	v.md = packed
	return v, nil
}

// viewPool recycles the offset columns of chunk views that a query is done
// with (free); views nobody frees are simply collected.
var viewPool = sync.Pool{New: func() any { return new(chunkView) }}

// resize returns s with length n, reusing its array when it is large enough
// (the contents are not cleared).
func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// free returns the view's columns for reuse; v must not be used after it.
// Entries made from it keep their timestamps, metadata and lines (lines
// alias the chunk buffer, not the view).
func (v *chunkView) free() {
	if v == nil || cap(v.ts) == 0 {
		return
	}
	*v = chunkView{ts: v.ts[:0], lineOff: v.lineOff[:0], mdOff: v.mdOff[:0]}
	viewPool.Put(v)
}

// sortedOrder returns entry indexes by time, or nil if already in order.
func (v *chunkView) sortedOrder() []int {
	if slices.IsSorted(v.ts) {
		return nil
	}
	order := make([]int, v.len())
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmpInt64(v.ts[a], v.ts[b]) })
	return order
}

// entries materialises all entries in time order, aliasing the buffer.
func (v *chunkView) entries() ([]Entry, error) {
	out := make([]Entry, 0, v.len())
	order := v.sortedOrder()
	for k := range v.len() {
		i := k
		if order != nil {
			i = order[k]
		}
		e, err := v.entry(i, true)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// search calls fn, in line order, with the index of every line containing
// the searcher's needle. It scans the whole lines column at once and skips a
// match that spans two lines.
func (v *chunkView) search(s *searcher, fn func(i int)) {
	if len(s.needle) == 0 {
		for i := range v.len() {
			fn(i)
		}
		return
	}
	for p := 0; ; {
		at := s.index(v.lines, p)
		if at < 0 {
			return
		}
		i, _ := slices.BinarySearch(v.lineOff, at+1)
		i-- // lineOff[i] <= at < lineOff[i+1]
		if end := v.lineOff[i+1]; at+len(s.needle) <= end {
			fn(i)
			p = end // next line
		} else {
			p = at + 1
		}
	}
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// encodeSorted rebuilds a chunk from sorted entries.
func encodeSorted(es []Entry) *rawChunk {
	c := &rawChunk{}
	for _, e := range es {
		c.append(e.Timestamp, e.Line, e.Metadata)
	}
	return c
}

// compressChunk turns an encoded chunk into its stored form: encoding byte,
// compressed payload (s2 block; or uvarint raw length + zstd frame), CRC32-C
// of everything before it.
func compressChunk(raw []byte, encoding byte) []byte {
	if encoding == chunkEncodingZstd {
		enc, _ := zstdCodecs()
		out := make([]byte, 0, len(raw)/3+16)
		out = append(out, chunkEncodingZstd)
		out = binary.AppendUvarint(out, uint64(len(raw)))
		out = enc.EncodeAll(raw, out)
		return binary.BigEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
	}
	enc := s2.Encode(nil, raw)
	out := make([]byte, 0, 1+len(enc)+4)
	out = append(out, chunkEncodingS2)
	out = append(out, enc...)
	return binary.BigEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

// maxChunkRaw bounds the decompressed size any stored chunk may claim, the
// index's record of it included (chunks are cut at ChunkTargetSize, 256 KiB
// by default, plus at most one entry; lines are limited by max_line_size).
const maxChunkRaw = 1 << 30

var chunkBufs = sync.Pool{New: func() any { return new([]byte) }}

// poisonReleased makes tests overwrite a pooled buffer as it is returned,
// so a line used after its buffer's release shows.
var poisonReleased bool

// decompressChunk checks and inflates a stored chunk. want is the
// uncompressed size the index records for it (ChunkMeta.RawBytes; 0 when
// unknown): a chunk whose header claims another size, or more than
// maxChunkRaw, is refused before anything is allocated, and the decoders
// never write past that size (a corrupt frame that passes the CRC cannot
// make a query allocate more than the chunk's recorded size). With pooled,
// the buffer comes from a pool and release returns it; otherwise release is
// a no-op.
func decompressChunk(stored []byte, pooled bool, want int) (raw []byte, release func(), err error) {
	release = func() {}
	if len(stored) < 5 {
		return nil, release, fmt.Errorf("%w: %d bytes", ErrCorruptChunk, len(stored))
	}
	body := stored[:len(stored)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(stored[len(stored)-4:]) {
		return nil, release, fmt.Errorf("%w: checksum mismatch", ErrCorruptChunk)
	}
	var n int
	payload := body[1:]
	switch body[0] {
	case chunkEncodingS2:
		var err error
		if n, err = s2.DecodedLen(payload); err != nil {
			return nil, release, fmt.Errorf("%w: %w", ErrCorruptChunk, err)
		}
		if n > maxChunkRaw {
			return nil, release, fmt.Errorf("%w: s2 chunk length %d", ErrCorruptChunk, n)
		}
	case chunkEncodingZstd:
		l, k := binary.Uvarint(payload)
		if k <= 0 || l > maxChunkRaw {
			return nil, release, fmt.Errorf("%w: zstd chunk length", ErrCorruptChunk)
		}
		n, payload = int(l), payload[k:]
	default:
		return nil, release, fmt.Errorf("%w: unknown encoding %d", ErrCorruptChunk, body[0])
	}
	if want > 0 && n != want {
		return nil, release, fmt.Errorf("%w: header says %d bytes uncompressed, the index %d", ErrCorruptChunk, n, want)
	}
	var dst []byte
	if pooled {
		bp := chunkBufs.Get().(*[]byte)
		if cap(*bp) < n {
			*bp = make([]byte, n)
		}
		dst = (*bp)[:n]
		release = func() {
			if poisonReleased {
				for i := range *bp {
					(*bp)[i] = '#'
				}
			}
			chunkBufs.Put(bp)
		}
	} else {
		dst = make([]byte, n)
	}
	if body[0] == chunkEncodingZstd {
		_, dec := zstdCodecs()
		// The cap limit: DecodeAll fails rather than grow dst past n.
		raw, err = dec.DecodeAll(payload, dst[:0:n])
		if err == nil && len(raw) != n {
			err = fmt.Errorf("zstd chunk of %d bytes, header says %d", len(raw), n)
		}
	} else {
		// s2.Decode writes into dst when its header's length fits (it was
		// checked above) and never allocates a larger buffer.
		raw, err = s2.Decode(dst, payload)
	}
	if err != nil {
		release()
		return nil, func() {}, fmt.Errorf("%w: %w", ErrCorruptChunk, err)
	}
	return raw, release, nil
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// rangeMetadataBlob calls fn with each name and value of an encoded
// metadata blob, without copying them; a malformed blob stops early.
func rangeMetadataBlob(blob []byte, fn func(name, value []byte)) {
	cnt, k := binary.Uvarint(blob)
	if k <= 0 {
		return
	}
	blob = blob[k:]
	next := func() ([]byte, bool) {
		l, k := binary.Uvarint(blob)
		if k <= 0 || uint64(len(blob)-k) < l {
			return nil, false
		}
		s := blob[k : k+int(l)]
		blob = blob[k+int(l):]
		return s, true
	}
	for range cnt {
		name, ok1 := next()
		value, ok2 := next()
		if !ok1 || !ok2 {
			return
		}
		fn(name, value)
	}
}
