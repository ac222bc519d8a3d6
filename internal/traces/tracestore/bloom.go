package tracestore

import "encoding/binary"

// bloom is a per-block filter over trace IDs. Trace IDs are random, so their
// two halves serve as the two hashes of double hashing; nothing is rehashed.
type bloom struct {
	bits []uint64
	k    uint32
}

const bloomBitsPerTrace = 10

func newBloom(n int) bloom {
	m := max(64, n*bloomBitsPerTrace)
	return bloom{bits: make([]uint64, (m+63)/64), k: 7}
}

func (b bloom) positions(id TraceID, fn func(uint64) bool) bool {
	h1 := binary.LittleEndian.Uint64(id[:8])
	h2 := binary.LittleEndian.Uint64(id[8:]) | 1
	m := uint64(len(b.bits)) * 64
	for i := uint64(0); i < uint64(b.k); i++ {
		if !fn((h1 + i*h2) % m) {
			return false
		}
	}
	return true
}

func (b bloom) add(id TraceID) {
	b.positions(id, func(p uint64) bool { b.bits[p/64] |= 1 << (p % 64); return true })
}

func (b bloom) mayContain(id TraceID) bool {
	if len(b.bits) == 0 {
		return true
	}
	return b.positions(id, func(p uint64) bool { return b.bits[p/64]&(1<<(p%64)) != 0 })
}
