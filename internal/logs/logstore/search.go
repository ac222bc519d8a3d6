package logstore

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// searcher finds a needle in a chunk's lines column (all lines back to back).
// Two strategies, both checking the whole needle at every candidate:
//
//   - rare pivot: bytes.IndexByte (vectorised) on the needle byte least
//     common in log text. Fastest when that byte is really rare (upper case,
//     unusual punctuation): the scan runs at memory speed between hits.
//
//   - byte pair: a SWAR scan, 8 candidate positions per step, for places where
//     the two rarest needle bytes both sit at their offsets. Its speed does not
//     depend on how common each byte is, and two common bytes together are
//     rare (hex IDs: each hex digit turns up every ~40 bytes of log text, a
//     given pair at a given distance every ~1600).
//
//   - sampled 2-grams, for needles of gramMin bytes or more: every occurrence
//     covers m-1 consecutive 2-gram starts, so reading the 2-gram at every
//     (m-1)-th position and looking it up in a 64 Kib set of the needle's
//     2-grams finds every occurrence; only the rare sampled 2-gram that is
//     in the set leads to verification. A 32-byte trace ID is checked with
//     one lookup per 31 bytes of text.
//
// The rare-pivot scan switches to the pair or 2-gram scan when its pivot
// keeps turning up (more than one hit per pairCutover bytes), as bytes.Index
// switches from IndexByte to its brute-force loop.
//
// A searcher is read-only once built: one per query serves every chunk.
type searcher struct {
	needle []byte
	k1, k2 int           // positions of the rarest and second rarest needle byte (k1 != k2 when len > 1)
	c1, c2 byte          // needle[k1], needle[k2]
	rare   bool          // c1 is rare in log text: start with IndexByte
	grams  *[1024]uint64 // bit g set when the needle holds the 2-gram g (little-endian uint16); nil below gramMin
}

// gramMin is the needle length from which the sampled 2-gram scan beats
// the pair scan (it reads one 2-gram per len-1 bytes).
const gramMin = 16

// searcherFor builds the searcher for the longest of the needles (the most
// selective; callers check the others per line), or nil without needles.
func searcherFor(needles []string) *searcher {
	if len(needles) == 0 {
		return nil
	}
	longest := needles[0]
	for _, n := range needles[1:] {
		if len(n) > len(longest) {
			longest = n
		}
	}
	return newSearcher([]byte(longest))
}

// pairCutover: the rare-pivot scan gives way to the pair scan when its pivot
// hits more often than once per this many bytes (IndexByte's per-call cost
// then outweighs its vector speed).
const pairCutover = 96

func newSearcher(needle []byte) *searcher {
	s := &searcher{needle: needle}
	if len(needle) == 0 {
		return s
	}
	s.k1 = 0
	for i := 1; i < len(needle); i++ {
		if byteRank[needle[i]] < byteRank[needle[s.k1]] {
			s.k1 = i
		}
	}
	s.k2 = -1
	for i := range needle {
		if i != s.k1 && (s.k2 < 0 || byteRank[needle[i]] < byteRank[needle[s.k2]]) {
			s.k2 = i
		}
	}
	if s.k2 < 0 {
		s.k2 = s.k1
	}
	s.c1, s.c2 = needle[s.k1], needle[s.k2]
	s.rare = byteRank[s.c1] == 0 || len(needle) == 1
	if len(needle) >= gramMin {
		s.grams = gramSet(needle)
	}
	return s
}

func gramSet(needle []byte) *[1024]uint64 {
	g := new([1024]uint64)
	for i := 0; i+1 < len(needle); i++ {
		v := binary.LittleEndian.Uint16(needle[i:])
		g[v>>6] |= 1 << (v & 63)
	}
	return g
}

// indexLong is the scan for needles whose pivot byte is common.
func (s *searcher) indexLong(t []byte, from int) int {
	if s.grams != nil {
		return s.indexGrams(t, from)
	}
	return s.indexPair(t, from)
}

// indexGrams samples the 2-gram starting at every (m-1)-th position: the
// sample at j covers the starts j-(m-2)..j, so consecutive samples cover
// every start from `from` on, in increasing order. For a sampled 2-gram in
// the needle's set, each needle offset holding it gives a candidate start,
// tried from the smallest start up.
func (s *searcher) indexGrams(t []byte, from int) int {
	needle, grams := s.needle, s.grams
	m, n := len(needle), len(t)
	for j := from + m - 2; j+1 < n; j += m - 1 {
		g := binary.LittleEndian.Uint16(t[j:])
		if grams[g>>6]&(1<<(g&63)) == 0 {
			continue
		}
		for off := m - 2; off >= 0; off-- {
			if binary.LittleEndian.Uint16(needle[off:]) != g {
				continue
			}
			// The pivot bytes first: cheap, and they keep repetitive text
			// (every sample in the set, many offsets each) from costing a
			// full comparison per offset.
			if at := j - off; at >= from && at+m <= n && t[at+s.k1] == s.c1 && t[at+s.k2] == s.c2 && bytes.Equal(t[at:at+m], needle) {
				return at
			}
		}
	}
	return -1
}

// index returns the first position at or after from where the needle starts
// in t, or -1. An empty needle matches at from.
func (s *searcher) index(t []byte, from int) int {
	m := len(s.needle)
	if m == 0 {
		if from <= len(t) {
			return from
		}
		return -1
	}
	if from < 0 {
		from = 0
	}
	if from+m > len(t) {
		return -1
	}
	if !s.rare {
		return s.indexLong(t, from)
	}
	k1, c1 := s.k1, s.c1
	p := from + k1 // position of the pivot of the next candidate
	hits := 0
	for {
		j := bytes.IndexByte(t[p:], c1)
		if j < 0 {
			return -1
		}
		at := p + j - k1
		if at+m > len(t) {
			return -1
		}
		if t[at+s.k2] == s.c2 && bytes.Equal(t[at:at+m], s.needle) {
			return at
		}
		p += j + 1
		hits++
		if m > 1 && hits >= 16 && hits*pairCutover > p-from {
			return s.indexLong(t, at+1)
		}
	}
}

const (
	swarLo = 0x0101010101010101
	swarHi = 0x8080808080808080
)

// indexPair is index's byte-pair scan. For each candidate start i it needs
// t[i+k1] == c1 and t[i+k2] == c2, that is a zero byte in both
// load(i+k1)^c1 and load(i+k2)^c2, so a zero byte in their OR. It checks 8
// starts per 64-bit word with the has-zero-byte trick ((w-0x01…)&^w&0x80…),
// 32 starts per step. A lane that is really zero is always flagged; a lane
// above a zero lane may be flagged too, which only costs a verification.
// Candidates come out in increasing order.
func (s *searcher) indexPair(t []byte, from int) int {
	m, needle := len(s.needle), s.needle
	k1, k2 := s.k1, s.k2
	r1, r2 := swarLo*uint64(s.c1), swarLo*uint64(s.c2)
	n := len(t)
	i := from
	for ; i+max(k1, k2)+32 <= n; i += 32 {
		a := t[i+k1 : i+k1+32]
		b := t[i+k2 : i+k2+32]
		z0 := pairLanes(binary.LittleEndian.Uint64(a[0:]), binary.LittleEndian.Uint64(b[0:]), r1, r2)
		z1 := pairLanes(binary.LittleEndian.Uint64(a[8:]), binary.LittleEndian.Uint64(b[8:]), r1, r2)
		z2 := pairLanes(binary.LittleEndian.Uint64(a[16:]), binary.LittleEndian.Uint64(b[16:]), r1, r2)
		z3 := pairLanes(binary.LittleEndian.Uint64(a[24:]), binary.LittleEndian.Uint64(b[24:]), r1, r2)
		if (z0|z1|z2|z3)&swarHi == 0 {
			continue
		}
		if at := s.verify(t, i, z0); at >= 0 {
			return at
		}
		if at := s.verify(t, i+8, z1); at >= 0 {
			return at
		}
		if at := s.verify(t, i+16, z2); at >= 0 {
			return at
		}
		if at := s.verify(t, i+24, z3); at >= 0 {
			return at
		}
	}
	for ; i+m <= n; i++ {
		if t[i+k1] == s.c1 && t[i+k2] == s.c2 && bytes.Equal(t[i:i+m], needle) {
			return i
		}
	}
	return -1
}

// pairLanes flags (high bit of lane j, before masking with swarHi) the
// lanes where x's byte is r1's and y's byte is r2's: a zero lane of
// (x^r1)|(y^r2), found with (w-0x01…)&^w. Every such lane is flagged; a lane
// is flagged without being one only above a lane that is.
func pairLanes(x, y, r1, r2 uint64) uint64 {
	w := (x ^ r1) | (y ^ r2)
	return (w - swarLo) &^ w
}

// verify checks the candidate starts i+j flagged in the high bits of z (lane
// j), in order, and returns the first that starts the needle, or -1.
func (s *searcher) verify(t []byte, i int, z uint64) int {
	m := len(s.needle)
	for z &= swarHi; z != 0; z &= z - 1 {
		at := i + bits.TrailingZeros64(z)>>3
		if at+m <= len(t) && bytes.Equal(t[at:at+m], s.needle) {
			return at
		}
	}
	return -1
}

// byteRank orders bytes by how common they are in log text (lower is rarer),
// from letter frequencies in English and the punctuation of logfmt and JSON.
var byteRank = func() [256]uint8 {
	var r [256]uint8 // anything unlisted (upper case, rare symbols) is rare: 0
	common := " etaoinsrlcdu=\"m.:hpg0fy1b2/w-v_,k53489x76jqz{}[]"
	for i, c := range []byte(common) {
		r[c] = uint8(len(common) - i)
	}
	return r
}()
