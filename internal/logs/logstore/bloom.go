package logstore

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"sync"
)

// A chunk's bloom filter holds every byte trigram of its lines. A line filter
// `|= "needle"` can only match a chunk holding all of the needle's trigrams,
// so chunks missing one are skipped without being read or decompressed.
// Trigrams (not whole tokens) keep the test exact for substring matches.

const (
	bloomHashes  = 3
	bloomMinBits = 1 << 10
	bloomMaxBits = 1 << 21 // 256 KiB: bigger chunks saturate rather than grow
)

type bloom struct {
	bits []uint64
	mask uint32
}

// trigramSet dedupes trigrams with a 2^24-bit bitmap shared through a pool.
type trigramSet struct {
	seen    []uint64
	touched []uint32
}

var trigramSets = sync.Pool{New: func() any { return &trigramSet{seen: make([]uint64, 1<<24/64)} }}

func (s *trigramSet) add(line string) {
	if len(line) < 3 {
		return
	}
	t := uint32(line[0])<<8 | uint32(line[1])
	for i := 2; i < len(line); i++ {
		t = (t<<8 | uint32(line[i])) & 0xFFFFFF
		w, b := t>>6, uint64(1)<<(t&63)
		if s.seen[w]&b == 0 {
			s.seen[w] |= b
			s.touched = append(s.touched, t)
		}
	}
}

func (s *trigramSet) reset() {
	for _, t := range s.touched {
		s.seen[t>>6] = 0
	}
	s.touched = s.touched[:0]
}

func trigramHashes(t uint32) (uint32, uint32) {
	h := uint64(t) * 0x9E3779B97F4A7C15
	return uint32(h >> 32), uint32(h) | 1
}

func newBloomFromSet(s *trigramSet) *bloom {
	m := max(bloomMinBits, 1<<bits.Len(uint(len(s.touched)*8)))
	m = min(m, bloomMaxBits)
	b := &bloom{bits: make([]uint64, m/64), mask: uint32(m - 1)}
	for _, t := range s.touched {
		h1, h2 := trigramHashes(t)
		for i := uint32(0); i < bloomHashes; i++ {
			p := (h1 + i*h2) & b.mask
			b.bits[p>>6] |= 1 << (p & 63)
		}
	}
	return b
}

// mayContain reports whether every trigram of every needle may be present.
func (b *bloom) mayContain(needles []string) bool {
	if b == nil {
		return true
	}
	for _, n := range needles {
		if len(n) < 3 {
			continue
		}
		t := uint32(n[0])<<8 | uint32(n[1])
		for i := 2; i < len(n); i++ {
			t = (t<<8 | uint32(n[i])) & 0xFFFFFF
			h1, h2 := trigramHashes(t)
			for k := uint32(0); k < bloomHashes; k++ {
				p := (h1 + k*h2) & b.mask
				if b.bits[p>>6]&(1<<(p&63)) == 0 {
					return false
				}
			}
		}
	}
	return true
}

// encode: log2(bits) byte, then the words little-endian.
func (b *bloom) encode() []byte {
	out := make([]byte, 1, 1+len(b.bits)*8)
	out[0] = byte(bits.Len32(b.mask))
	for _, w := range b.bits {
		out = binary.LittleEndian.AppendUint64(out, w)
	}
	return out
}

func decodeBloom(p []byte) (*bloom, error) {
	if len(p) < 1 {
		return nil, errors.New("empty bloom")
	}
	lg := int(p[0])
	if lg < 6 || lg > 24 || len(p) != 1+(1<<lg)/8 {
		return nil, errors.New("bloom size mismatch")
	}
	b := &bloom{bits: make([]uint64, (1<<lg)/64), mask: uint32(1<<lg - 1)}
	for i := range b.bits {
		b.bits[i] = binary.LittleEndian.Uint64(p[1+8*i:])
	}
	return b, nil
}

// buildBloom indexes the lines of sorted entries.
func buildBloom(es []Entry) *bloom {
	s := trigramSets.Get().(*trigramSet)
	for _, e := range es {
		s.add(e.Line)
	}
	b := newBloomFromSet(s)
	s.reset()
	trigramSets.Put(s)
	return b
}
