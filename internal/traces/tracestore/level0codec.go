package tracestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"

	"github.com/klauspost/compress/s2"
)

// Level-0 data pages (format 11, ADR 0120) are s2 blocks, not zstd
// frames: zstd "fastest" was ~0.6 µs/span of a cut, s2 ~0.2, and
// compaction recompresses every level-0 page at compactLevel anyway, so
// only level-0 blocks pay s2's ~11 bytes/span more, for as long as their
// compaction window is open. Index and columns stay zstd.

// pageCodecS2 is blockMeta.PageCodec of a block whose data pages are
// s2Page frames; "" means zstd frames.
const pageCodecS2 = "s2"

// level0S2 makes cuts write s2 pages (formats 11 and 12). Since format 13
// cuts write zstd pages at compactLevel, which compaction keeps as they
// are (ADR 0125); true only in tests and benchmarks comparing both.
var level0S2 = false

var errCorruptPage = errors.New("corrupt page")

// appendS2Page appends page as an s2 frame:
//
//	s2_block crc32c(s2_block)[4, little endian]
//
// The checksum stands in for zstd's content checksum.
func appendS2Page(dst, page []byte) []byte {
	start := len(dst)
	n := s2.MaxEncodedLen(len(page))
	dst = slices.Grow(dst, n+4)[:start+n]
	enc := s2.Encode(dst[start:], page)
	dst = dst[:start+len(enc)]
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(enc, castagnoli))
}

// decodeS2Page decodes an s2 frame that the page table says holds ulen
// bytes into dst's storage.
func decodeS2Page(src, dst []byte, ulen int) ([]byte, error) {
	if len(src) < 4 {
		return nil, fmt.Errorf("%w: %d bytes", errCorruptPage, len(src))
	}
	body := src[:len(src)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(src[len(src)-4:]) {
		return nil, fmt.Errorf("%w: checksum mismatch", errCorruptPage)
	}
	n, err := s2.DecodedLen(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errCorruptPage, err)
	}
	if n != ulen {
		return nil, fmt.Errorf("%w: %d bytes, index says %d", errCorruptPage, n, ulen)
	}
	out, err := s2.Decode(slices.Grow(dst[:0], n)[:n], body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errCorruptPage, err)
	}
	return out, nil
}
