package logstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"unsafe"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/prometheus/model/labels"
)

// Entry is one log line of a stream.
type Entry struct {
	Timestamp int64         // Unix nanoseconds.
	Line      string        // The log line as pushed.
	Metadata  labels.Labels // Loki 3 structured metadata; empty for most lines.
}

const chunkEncodingS2 byte = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorruptChunk reports a chunk whose checksum or layout does not add up.
var ErrCorruptChunk = errors.New("corrupt chunk")

// rawChunk accumulates entries in the uncompressed chunk layout
// (see docs/formats/logstore.md) so an open chunk costs one buffer, not one
// allocation per line.
type rawChunk struct {
	buf      []byte
	entries  int
	minT     int64
	maxT     int64
	lastT    int64
	unsorted bool
}

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
	c.buf = binary.AppendVarint(c.buf, ts-c.lastT)
	c.lastT = ts
	c.buf = binary.AppendUvarint(c.buf, uint64(len(line)))
	c.buf = append(c.buf, line...)
	c.buf = binary.AppendUvarint(c.buf, uint64(md.Len()))
	md.Range(func(l labels.Label) {
		c.buf = binary.AppendUvarint(c.buf, uint64(len(l.Name)))
		c.buf = append(c.buf, l.Name...)
		c.buf = binary.AppendUvarint(c.buf, uint64(len(l.Value)))
		c.buf = append(c.buf, l.Value...)
	})
	c.entries++
}

// decodeEntries parses the uncompressed layout. Lines alias buf, which must
// never be reused afterwards.
func decodeEntries(buf []byte, n int, fn func(ts int64, line string, md labels.Labels) bool) error {
	var ts int64
	var sb labels.ScratchBuilder
	for i := 0; len(buf) > 0; i++ {
		d, k := binary.Varint(buf)
		if k <= 0 {
			return fmt.Errorf("%w: entry %d: bad timestamp", ErrCorruptChunk, i)
		}
		ts += d
		buf = buf[k:]
		line, rest, err := readBytes(buf)
		if err != nil {
			return fmt.Errorf("%w: entry %d: line: %w", ErrCorruptChunk, i, err)
		}
		buf = rest
		cnt, k := binary.Uvarint(buf)
		if k <= 0 || cnt > uint64(len(buf)) {
			return fmt.Errorf("%w: entry %d: bad metadata count", ErrCorruptChunk, i)
		}
		buf = buf[k:]
		md := labels.EmptyLabels()
		if cnt > 0 {
			sb.Reset()
			for range cnt {
				var name, value []byte
				if name, buf, err = readBytes(buf); err != nil {
					return fmt.Errorf("%w: entry %d: metadata name: %w", ErrCorruptChunk, i, err)
				}
				if value, buf, err = readBytes(buf); err != nil {
					return fmt.Errorf("%w: entry %d: metadata value: %w", ErrCorruptChunk, i, err)
				}
				sb.Add(string(name), string(value))
			}
			md = sb.Labels()
		}
		if !fn(ts, unsafe.String(unsafe.SliceData(line), len(line)), md) {
			return nil
		}
	}
	_ = n
	return nil
}

func readBytes(buf []byte) (b, rest []byte, err error) {
	l, k := binary.Uvarint(buf)
	if k <= 0 || l > uint64(len(buf)-k) {
		return nil, nil, errors.New("length out of range")
	}
	return buf[k : k+int(l)], buf[k+int(l):], nil
}

// sortedEntries decodes a raw chunk into entries sorted by timestamp.
func sortedEntries(buf []byte, n int) ([]Entry, error) {
	out := make([]Entry, 0, n)
	err := decodeEntries(buf, n, func(ts int64, line string, md labels.Labels) bool {
		out = append(out, Entry{Timestamp: ts, Line: line, Metadata: md})
		return true
	})
	byTime := func(a, b Entry) int { return cmpInt64(a.Timestamp, b.Timestamp) }
	if !slices.IsSortedFunc(out, byTime) {
		slices.SortStableFunc(out, byTime)
	}
	return out, err
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

// encodeSortedChunk re-encodes entries (sorted) into the raw layout.
func encodeSortedChunk(es []Entry) *rawChunk {
	c := &rawChunk{}
	for _, e := range es {
		c.append(e.Timestamp, e.Line, e.Metadata)
	}
	return c
}

// compressChunk turns a raw chunk into its stored form: encoding byte,
// s2 block, CRC32-C of everything before it.
func compressChunk(raw []byte) []byte {
	enc := s2.Encode(nil, raw)
	out := make([]byte, 0, 1+len(enc)+4)
	out = append(out, chunkEncodingS2)
	out = append(out, enc...)
	return binary.BigEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

// decompressChunk checks and inflates a stored chunk into a fresh buffer.
func decompressChunk(stored []byte) ([]byte, error) {
	if len(stored) < 5 {
		return nil, fmt.Errorf("%w: %d bytes", ErrCorruptChunk, len(stored))
	}
	body := stored[:len(stored)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(stored[len(stored)-4:]) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorruptChunk)
	}
	if body[0] != chunkEncodingS2 {
		return nil, fmt.Errorf("%w: unknown encoding %d", ErrCorruptChunk, body[0])
	}
	raw, err := s2.Decode(nil, body[1:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptChunk, err)
	}
	return raw, nil
}
