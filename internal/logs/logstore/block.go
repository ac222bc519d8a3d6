package logstore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
)

// On-disk block format version; see docs/formats/logstore.md. Version 2
// (ADR 0097) adds chunk summaries and zstd chunks; version 3 (ADR 0109)
// adds per-chunk flags (json objects). Versions 1 and 2 are still read
// (and compacted into version 3 blocks).
const (
	blockFormatVersion = 3
	blockFormatV1      = 1
	blockFormatV2      = 2
	indexMagic         = "NXLI"
	chunksMagic        = "NXLC"
	bloomsMagic        = "NXLB"
	metaFile           = "meta.json"
	indexFile          = "index"
	chunksFile         = "chunks"
	bloomsFile         = "blooms"
)

// BlockMeta is the content of a block's meta.json.
type BlockMeta struct {
	Version    int             `json:"version"`
	ULID       string          `json:"ulid"`
	MinTime    int64           `json:"minTime"`
	MaxTime    int64           `json:"maxTime"`
	Stats      BlockStats      `json:"stats"`
	Compaction BlockCompaction `json:"compaction"`
	// WALSegment is the last WAL segment whose records this block holds
	// (-1 for compacted blocks); replay skips segments up to it.
	WALSegment int `json:"walSegment"`
}

// BlockStats counts what a block holds.
type BlockStats struct {
	Streams   int   `json:"streams"`
	Chunks    int   `json:"chunks"`
	Entries   int64 `json:"entries"`
	RawBytes  int64 `json:"rawBytes"`
	SizeBytes int64 `json:"sizeBytes"`
}

// BlockCompaction records where a block came from.
type BlockCompaction struct {
	Level   int      `json:"level"`
	Sources []string `json:"sources,omitempty"`
}

// storedChunk is a chunk ready to be written to a block.
type storedChunk struct {
	meta    ChunkMeta
	data    []byte
	bloom   []byte
	summary []byte // nil: none (chunks of version 1 blocks)
}

type indexStream struct {
	lbls   labels.Labels
	chunks []blockChunk
}

type blockChunk struct {
	meta               ChunkMeta
	off, length        uint64
	bloomOff, bloomLen uint64
	summaryLen         uint64 // the summary follows the bloom in the blooms file; 0 = none
}

// blockWriter streams chunks to a temporary directory; finish renames it
// into place so a crash never leaves a half-written block visible.
type blockWriter struct {
	tmp, final       string
	chunksF, bloomsF *os.File
	chunksW, bloomsW *bufio.Writer
	chunksOff        uint64
	bloomsOff        uint64
	streams          []indexStream
	meta             BlockMeta
}

func newBlockWriter(dir, id string) (*blockWriter, error) {
	final := filepath.Join(dir, id)
	tmp := final + ".tmp"
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("create block dir: %w", err)
	}
	w := &blockWriter{tmp: tmp, final: final, meta: BlockMeta{Version: blockFormatVersion, ULID: id, MinTime: maxTime, MaxTime: minTime, WALSegment: -1}}
	var err error
	if w.chunksF, err = os.Create(filepath.Join(tmp, chunksFile)); err != nil {
		return nil, fmt.Errorf("create chunks file: %w", err)
	}
	if w.bloomsF, err = os.Create(filepath.Join(tmp, bloomsFile)); err != nil {
		w.chunksF.Close()
		return nil, fmt.Errorf("create blooms file: %w", err)
	}
	w.chunksW = bufio.NewWriterSize(w.chunksF, 1<<20)
	w.bloomsW = bufio.NewWriterSize(w.bloomsF, 1<<18)
	w.chunksW.WriteString(chunksMagic)
	w.chunksW.WriteByte(blockFormatVersion)
	w.bloomsW.WriteString(bloomsMagic)
	w.bloomsW.WriteByte(blockFormatVersion)
	w.chunksOff, w.bloomsOff = 5, 5
	return w, nil
}

// addStream appends one stream; streams must come in label order.
func (w *blockWriter) addStream(ls labels.Labels, chunks []storedChunk) error {
	if len(chunks) == 0 {
		return nil
	}
	if n := len(w.streams); n > 0 && labels.Compare(w.streams[n-1].lbls, ls) >= 0 {
		return fmt.Errorf("stream %s out of order", ls)
	}
	st := indexStream{lbls: ls}
	for _, c := range chunks {
		if _, err := w.chunksW.Write(c.data); err != nil {
			return fmt.Errorf("write chunk: %w", err)
		}
		if _, err := w.bloomsW.Write(c.bloom); err != nil {
			return fmt.Errorf("write bloom: %w", err)
		}
		if _, err := w.bloomsW.Write(c.summary); err != nil {
			return fmt.Errorf("write summary: %w", err)
		}
		st.chunks = append(st.chunks, blockChunk{meta: c.meta, off: w.chunksOff, length: uint64(len(c.data)), bloomOff: w.bloomsOff, bloomLen: uint64(len(c.bloom)), summaryLen: uint64(len(c.summary))})
		w.chunksOff += uint64(len(c.data))
		w.bloomsOff += uint64(len(c.bloom) + len(c.summary))
		w.meta.MinTime = min(w.meta.MinTime, c.meta.MinTime)
		w.meta.MaxTime = max(w.meta.MaxTime, c.meta.MaxTime)
		w.meta.Stats.Chunks++
		w.meta.Stats.Entries += int64(c.meta.Entries)
		w.meta.Stats.RawBytes += int64(c.meta.RawBytes)
	}
	w.streams = append(w.streams, st)
	w.meta.Stats.Streams++
	return nil
}

func (w *blockWriter) abort() {
	w.chunksF.Close()
	w.bloomsF.Close()
	os.RemoveAll(w.tmp)
}

func (w *blockWriter) finish() (BlockMeta, error) {
	if err := w.finishFiles(); err != nil {
		w.abort()
		return BlockMeta{}, err
	}
	if err := os.Rename(w.tmp, w.final); err != nil {
		os.RemoveAll(w.tmp)
		return BlockMeta{}, fmt.Errorf("rename block: %w", err)
	}
	return w.meta, syncDir(filepath.Dir(w.final))
}

func (w *blockWriter) finishFiles() error {
	for _, f := range []struct {
		w *bufio.Writer
		f *os.File
	}{{w.chunksW, w.chunksF}, {w.bloomsW, w.bloomsF}} {
		if err := f.w.Flush(); err != nil {
			return fmt.Errorf("flush %s: %w", filepath.Base(f.f.Name()), err)
		}
		if err := f.f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", filepath.Base(f.f.Name()), err)
		}
		if err := f.f.Close(); err != nil {
			return fmt.Errorf("close %s: %w", filepath.Base(f.f.Name()), err)
		}
	}
	idx := encodeIndex(w.streams)
	if err := writeFileSync(filepath.Join(w.tmp, indexFile), idx); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	w.meta.Stats.SizeBytes = int64(w.chunksOff+w.bloomsOff) + int64(len(idx))
	mj, err := json.MarshalIndent(w.meta, "", "\t")
	if err != nil {
		return fmt.Errorf("encode meta: %w", err)
	}
	if err := writeFileSync(filepath.Join(w.tmp, metaFile), mj); err != nil {
		return fmt.Errorf("write meta: %w", err)
	}
	return syncDir(w.tmp)
}

func writeFileSync(path string, data []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	return nil
}

// encodeIndex writes the stream table and the postings (label name → value →
// stream numbers), followed by a CRC32-C of everything before it.
func encodeIndex(streams []indexStream) []byte {
	b := append([]byte(indexMagic), blockFormatVersion)
	b = binary.AppendUvarint(b, uint64(len(streams)))
	post := map[string]map[string][]int{}
	for i, s := range streams {
		b = appendLabels(b, s.lbls)
		b = binary.AppendUvarint(b, uint64(len(s.chunks)))
		for _, c := range s.chunks {
			b = binary.AppendVarint(b, c.meta.MinTime)
			b = binary.AppendUvarint(b, uint64(c.meta.MaxTime-c.meta.MinTime))
			b = binary.AppendUvarint(b, uint64(c.meta.Entries))
			b = binary.AppendUvarint(b, uint64(c.meta.RawBytes))
			b = binary.AppendUvarint(b, c.off)
			b = binary.AppendUvarint(b, c.length)
			b = binary.AppendUvarint(b, c.bloomOff)
			b = binary.AppendUvarint(b, c.bloomLen)
			b = binary.AppendUvarint(b, c.summaryLen)
			var flags uint64
			if c.meta.JSONObjects {
				flags |= chunkFlagJSONObjects
			}
			b = binary.AppendUvarint(b, flags)
		}
		s.lbls.Range(func(l labels.Label) {
			if post[l.Name] == nil {
				post[l.Name] = map[string][]int{}
			}
			post[l.Name][l.Value] = append(post[l.Name][l.Value], i)
		})
	}
	names := sortedKeys(post)
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, n := range names {
		b = appendString(b, n)
		vals := sortedKeys(post[n])
		b = binary.AppendUvarint(b, uint64(len(vals)))
		for _, v := range vals {
			b = appendString(b, v)
			refs := post[n][v]
			b = binary.AppendUvarint(b, uint64(len(refs)))
			prev := 0
			for _, r := range refs {
				b = binary.AppendUvarint(b, uint64(r-prev))
				prev = r
			}
		}
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// block is an open, immutable block. Chunks and blooms are read with pread
// on demand; only the stream table and postings live in memory.
type block struct {
	dir      string
	meta     BlockMeta
	streams  []indexStream
	postings map[string]map[string][]int
	chunks   *os.File
	blooms   *os.File
	bloomMap []byte // the blooms file, mmapped: checked without reads or copies

	mu       sync.Mutex
	refs     int
	deleted  bool
	released chan struct{}
}

var errBadIndex = errors.New("bad index")

func openBlock(dir string) (*block, error) {
	mb, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return nil, fmt.Errorf("read meta: %w", err)
	}
	b := &block{dir: dir, released: make(chan struct{})}
	if err := json.Unmarshal(mb, &b.meta); err != nil {
		return nil, fmt.Errorf("decode meta: %w", err)
	}
	if b.meta.Version != blockFormatVersion && b.meta.Version != blockFormatV2 && b.meta.Version != blockFormatV1 {
		return nil, fmt.Errorf("unsupported block version %d", b.meta.Version)
	}
	ib, err := os.ReadFile(filepath.Join(dir, indexFile))
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	if b.streams, b.postings, err = decodeIndex(ib); err != nil {
		return nil, fmt.Errorf("decode index: %w", err)
	}
	if b.chunks, err = os.Open(filepath.Join(dir, chunksFile)); err != nil {
		return nil, fmt.Errorf("open chunks: %w", err)
	}
	if b.blooms, err = os.Open(filepath.Join(dir, bloomsFile)); err != nil {
		b.chunks.Close()
		return nil, fmt.Errorf("open blooms: %w", err)
	}
	if b.bloomMap, err = mmapFile(b.blooms); err != nil {
		b.chunks.Close()
		b.blooms.Close()
		return nil, fmt.Errorf("mmap blooms: %w", err)
	}
	return b, nil
}

func decodeIndex(ib []byte) ([]indexStream, map[string]map[string][]int, error) {
	if len(ib) < 9 || string(ib[:4]) != indexMagic {
		return nil, nil, fmt.Errorf("%w: missing magic", errBadIndex)
	}
	version := ib[4]
	if version != blockFormatVersion && version != blockFormatV2 && version != blockFormatV1 {
		return nil, nil, fmt.Errorf("%w: version %d", errBadIndex, ib[4])
	}
	body := ib[:len(ib)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(ib[len(ib)-4:]) {
		return nil, nil, fmt.Errorf("%w: checksum mismatch", errBadIndex)
	}
	d := decoder{b: body[5:]}
	var sb labels.ScratchBuilder
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return nil, nil, fmt.Errorf("%w: stream count %d", errBadIndex, n)
	}
	streams := make([]indexStream, 0, n)
	for range n {
		s := indexStream{lbls: d.labels(&sb)}
		nc := d.uvarint()
		if nc > uint64(len(d.b)) {
			return nil, nil, fmt.Errorf("%w: chunk count %d", errBadIndex, nc)
		}
		s.chunks = make([]blockChunk, nc)
		for i := range s.chunks {
			c := &s.chunks[i]
			c.meta.MinTime = d.varint()
			c.meta.MaxTime = c.meta.MinTime + int64(d.uvarint())
			c.meta.Entries = int(d.uvarint())
			c.meta.RawBytes = int(d.uvarint())
			c.off, c.length = d.uvarint(), d.uvarint()
			c.bloomOff, c.bloomLen = d.uvarint(), d.uvarint()
			if version >= 2 {
				c.summaryLen = d.uvarint()
			}
			if version >= 3 {
				c.meta.JSONObjects = d.uvarint()&chunkFlagJSONObjects != 0
			}
		}
		streams = append(streams, s)
	}
	post := map[string]map[string][]int{}
	nn := d.uvarint()
	for range nn {
		if d.err != nil {
			break
		}
		name := d.string()
		vals := map[string][]int{}
		nv := d.uvarint()
		for range nv {
			if d.err != nil {
				break
			}
			v := d.string()
			nr := d.uvarint()
			if nr > uint64(len(streams)) {
				return nil, nil, fmt.Errorf("%w: postings length %d", errBadIndex, nr)
			}
			refs := make([]int, nr)
			prev := 0
			for i := range refs {
				prev += int(d.uvarint())
				if prev >= len(streams) {
					return nil, nil, fmt.Errorf("%w: posting %d beyond %d streams", errBadIndex, prev, len(streams))
				}
				refs[i] = prev
			}
			vals[v] = refs
		}
		post[name] = vals
	}
	if d.err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errBadIndex, d.err)
	}
	return streams, post, nil
}

// acquire pins the block for a query; false if it is being deleted.
func (b *block) acquire() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.deleted {
		return false
	}
	b.refs++
	return true
}

func (b *block) release() {
	b.mu.Lock()
	b.refs--
	done := b.deleted && b.refs == 0
	b.mu.Unlock()
	if done {
		close(b.released)
	}
}

// markDeleted stops new queries; the returned channel closes when the last
// running query lets go.
func (b *block) markDeleted() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.deleted {
		b.deleted = true
		if b.refs == 0 {
			close(b.released)
		}
	}
	return b.released
}

func (b *block) close() error {
	return errors.Join(munmap(b.bloomMap), b.chunks.Close(), b.blooms.Close())
}

func (b *block) streamsMatching(ms []*labels.Matcher) []int {
	var cand []int
	narrowed := false
	for _, m := range ms {
		vals := postingValues(m)
		if vals == nil {
			continue
		}
		var p []int
		for _, v := range vals {
			p = append(p, b.postings[m.Name][v]...)
		}
		if !narrowed || len(p) < len(cand) {
			cand, narrowed = p, true
		}
	}
	out := []int{}
	if !narrowed {
		for i := range b.streams {
			if matchesAll(b.streams[i].lbls, ms) {
				out = append(out, i)
			}
		}
		return out
	}
	for _, i := range cand {
		if matchesAll(b.streams[i].lbls, ms) {
			out = append(out, i)
		}
	}
	return out
}

// blockChunkHandle reads one chunk of a block.
type blockChunkHandle struct {
	b *block
	c *blockChunk
}

func (h blockChunkHandle) Meta() ChunkMeta { return h.c.meta }
func (h blockChunkHandle) storedSize() int { return int(h.c.length) }

func (h blockChunkHandle) mayContain(needles []string) bool {
	end := h.c.bloomOff + h.c.bloomLen
	if len(needles) == 0 || h.c.bloomLen == 0 || end > uint64(len(h.b.bloomMap)) {
		return true
	}
	return bloomMayContain(h.b.bloomMap[h.c.bloomOff:end], needles)
}

var storedBufs = sync.Pool{New: func() any { return new([]byte) }}

func (h blockChunkHandle) view(pooled bool, s *searcher) (*chunkView, func(), error) {
	bp := storedBufs.Get().(*[]byte)
	defer storedBufs.Put(bp)
	if uint64(cap(*bp)) < h.c.length {
		*bp = make([]byte, h.c.length)
	}
	buf := (*bp)[:h.c.length]
	if _, err := h.b.chunks.ReadAt(buf, int64(h.c.off)); err != nil {
		return nil, func() {}, fmt.Errorf("read chunk at %d: %w", h.c.off, err)
	}
	raw, release, err := decompressChunk(buf, pooled, h.c.meta.RawBytes)
	if err != nil {
		return nil, release, fmt.Errorf("chunk at %d: %w", h.c.off, err)
	}
	v, err := parseChunk(raw, s)
	if err != nil {
		release()
		return nil, func() {}, fmt.Errorf("chunk at %d: %w", h.c.off, err)
	}
	return v, release, nil
}

// summary returns the chunk's summary from the mmapped blooms file; nil
// if it has none (version 1 blocks) or it lies beyond the file.
func (h blockChunkHandle) summary() []byte {
	from := h.c.bloomOff + h.c.bloomLen
	end := from + h.c.summaryLen
	if h.c.summaryLen == 0 || end > uint64(len(h.b.bloomMap)) {
		return nil
	}
	return h.b.bloomMap[from:end:end]
}

// readRaw returns the stored bytes, for compaction that keeps a chunk as is.
func (h blockChunkHandle) readRaw() (storedChunk, error) {
	buf := make([]byte, h.c.length)
	if _, err := h.b.chunks.ReadAt(buf, int64(h.c.off)); err != nil {
		return storedChunk{}, fmt.Errorf("read chunk at %d: %w", h.c.off, err)
	}
	end := h.c.bloomOff + h.c.bloomLen
	if end > uint64(len(h.b.bloomMap)) {
		return storedChunk{}, fmt.Errorf("bloom at %d beyond the blooms file", h.c.bloomOff)
	}
	sc := storedChunk{meta: h.c.meta, data: buf, bloom: bytes.Clone(h.b.bloomMap[h.c.bloomOff:end])}
	if s := h.summary(); s != nil {
		sc.summary = bytes.Clone(s)
	}
	return sc, nil
}
