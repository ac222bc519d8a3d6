package logstore

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/bits"
	"sync"
)

// Each chunk carries a bloom filter over the 6-byte n-grams of its lines. A
// line filter `|= "needle"` can only match a chunk that holds every n-gram of
// the needle, so chunks missing one are skipped unread. Six bytes (not three)
// keep random IDs distinctive: every hex trigram occurs in every chunk of
// real logs, but a given 6-gram of a trace ID almost never does. Needles
// shorter than 6 bytes cannot prune.
//
// The filter is built in one pass into a large scratch filter, the number
// of distinct n-grams is estimated from its fill, and it is folded (OR of
// halves, valid because positions are hash & (m-1)) down to about 4 bits
// per n-gram. With two hashes that is a ~15% false positive rate per n-gram,
// and a needle of length L must pass all L-5 of them.

const (
	gramLen      = 6
	bloomHashes  = 2
	bloomMinBits = 1 << 9
	bloomMaxBits = 1 << 21
	bitsPerGram  = 4
)

var bloomScratch = sync.Pool{New: func() any { s := make([]uint64, bloomMaxBits/64); return &s }}

func gramHash(b []byte) (uint32, uint32) {
	g := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 | uint64(b[4])<<32 | uint64(b[5])<<40
	h := g * 0x9E3779B97F4A7C15
	h ^= h >> 29
	return uint32(h >> 32), uint32(h) | 1
}

// buildBloom indexes every line of a chunk view; the result is encoded as
// log2(bits), hash count, then the words little-endian.
func buildBloom(v *chunkView) []byte {
	grams := len(v.lines) - (gramLen-1)*v.len() + distinctMetadataBytes(v)
	m := bloomMinBits
	for m < bloomMaxBits && m < grams*16 {
		m <<= 1
	}
	sp := bloomScratch.Get().(*[]uint64)
	words := (*sp)[:m/64]
	mask := uint32(m - 1)
	for i := range v.len() {
		addLineGrams(words, mask, v.line(i))
	}
	// Structured metadata pairs are indexed as "name=value", so equality
	// filters on them (| trace_id="…") skip chunks too.
	if v.md != nil {
		var pair, last []byte
		for i := range v.len() {
			blob := v.md[v.mdOff[i]:v.mdOff[i+1]]
			// Most entries repeat the previous entry's metadata (every
			// entry has detected_level): its pairs are in already.
			if len(blob) == 0 || bytes.Equal(blob, last) {
				continue
			}
			last = blob
			rangeMetadataBlob(blob, func(name, value []byte) {
				pair = append(append(append(pair[:0], name...), '='), value...)
				for j := 0; j+gramLen <= len(pair); j++ {
					h1, h2 := gramHash(pair[j:])
					for k := uint32(0); k < bloomHashes; k++ {
						p := (h1 + k*h2) & mask
						words[p>>6] |= 1 << (p & 63)
					}
				}
			})
		}
	}
	set := 0
	for _, w := range words {
		set += bits.OnesCount64(w)
	}
	// Distinct n-grams from the fill ratio of the scratch filter.
	distinct := float64(m)
	if set < m {
		distinct = -float64(m) / bloomHashes * math.Log(1-float64(set)/float64(m))
	}
	target := bloomMinBits
	for target < m && float64(target) < distinct*bitsPerGram {
		target <<= 1
	}
	for cur := m; cur > target; cur >>= 1 {
		half := cur / 128
		for i := range half {
			words[i] |= words[i+half]
		}
	}
	out := make([]byte, 2, 2+target/8)
	out[0] = byte(bits.Len(uint(target)) - 1)
	out[1] = bloomHashes
	for _, w := range words[:target/64] {
		out = binary.LittleEndian.AppendUint64(out, w)
	}
	clear(words)
	bloomScratch.Put(sp)
	return out
}

// addLineGrams sets the bits of every n-gram of l: the same positions as
// gramHash with bloomHashes = 2, but the n-gram is rolled one byte at a
// time instead of loaded six bytes a time, and the two probes are unrolled.
// This loop is most of a chunk cut's CPU, a third of the push path's.
func addLineGrams(words []uint64, mask uint32, l []byte) {
	if len(l) < gramLen {
		return
	}
	var g uint64
	for j := range gramLen - 1 {
		g |= uint64(l[j]) << (8 * (j + 1))
	}
	for _, c := range l[gramLen-1:] {
		g = g>>8 | uint64(c)<<40
		h := g * 0x9E3779B97F4A7C15
		h ^= h >> 29
		h1, h2 := uint32(h>>32), uint32(h)|1
		p := h1 & mask
		q := (h1 + h2) & mask
		words[p>>6] |= 1 << (p & 63)
		words[q>>6] |= 1 << (q & 63)
	}
}

// bloomMayContain tests an encoded filter (from memory or an mmapped file)
// without decoding it.
func bloomMayContain(f []byte, needles []string) bool {
	if len(f) < 2 {
		return true
	}
	lg := int(f[0])
	if lg < 6 || lg > 24 || len(f) != 2+(1<<lg)/8 {
		return true // unreadable filter: read the chunk instead
	}
	mask := uint32(1<<lg - 1)
	k := uint32(f[1])
	words := f[2:]
	for _, n := range needles {
		for j := 0; j+gramLen <= len(n); j++ {
			h1, h2 := gramHash([]byte(n[j : j+gramLen]))
			for i := uint32(0); i < k; i++ {
				p := (h1 + i*h2) & mask
				if words[p>>3]&(1<<(p&7)) == 0 {
					return false
				}
			}
		}
	}
	return true
}

// distinctMetadataBytes sizes the metadata the bloom indexes: a blob equal
// to the previous entry's adds nothing.
func distinctMetadataBytes(v *chunkView) int {
	if v.md == nil {
		return 0
	}
	n := 0
	var last []byte
	for i := range v.len() {
		blob := v.md[v.mdOff[i]:v.mdOff[i+1]]
		if !bytes.Equal(blob, last) {
			n += len(blob)
			last = blob
		}
	}
	return n
}

// coldBloomMaxFill is the fill up to which compaction folds a chunk's
// filter (ADR 0097): with two hashes a needle's n-gram then passes with
// probability ≤ 0.62² ≈ 0.38, so a 32-hex-digit trace ID (27 n-grams)
// still rules out practically every chunk that lacks it (0.38²⁷ ≈ 5e-12),
// a 16-byte needle nearly so (2.5e-5), while an 8-byte needle (3 n-grams)
// passes ~4 % of such chunks instead of ~0.05 % before folding (TestFoldBloom).
const coldBloomMaxFill = 0.62

// foldBloom halves an encoded filter (OR of its halves, valid because
// positions are hash & (bits-1)) while the result stays at or below
// coldBloomMaxFill and bloomMinBits; a filter it cannot read comes back as is.
func foldBloom(f []byte) []byte {
	if len(f) < 2 {
		return f
	}
	lg := int(f[0])
	if lg < 6 || lg > 24 || len(f) != 2+(1<<lg)/8 {
		return f
	}
	words := make([]uint64, (1<<lg)/64)
	for i := range words {
		words[i] = binary.LittleEndian.Uint64(f[2+8*i:])
	}
	for len(words)*64 > bloomMinBits {
		half := len(words) / 2
		set := 0
		for i := range half {
			set += bits.OnesCount64(words[i] | words[i+half])
		}
		if float64(set) > coldBloomMaxFill*float64(half*64) {
			break
		}
		for i := range half {
			words[i] |= words[i+half]
		}
		words = words[:half]
	}
	if len(words)*64 == 1<<lg {
		return f
	}
	out := make([]byte, 2, 2+len(words)*8)
	out[0] = byte(bits.Len(uint(len(words)*64)) - 1)
	out[1] = f[1]
	for _, w := range words {
		out = binary.LittleEndian.AppendUint64(out, w)
	}
	return out
}
