package logstore

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// The unrolled, rolling n-gram loop sets exactly the bits of the reference
// loop over gramHash: blooms written before it stay readable and equal.
func TestAddLineGramsMatchesGramHash(t *testing.T) {
	if bloomHashes != 2 {
		t.Fatalf("addLineGrams unrolls 2 probes, bloomHashes is %d", bloomHashes)
	}
	r := rand.New(rand.NewPCG(1, 2))
	const m = 1 << 14
	got, want := make([]uint64, m/64), make([]uint64, m/64)
	for n := range 300 {
		l := make([]byte, n%97)
		for i := range l {
			l[i] = byte(r.Uint32())
		}
		addLineGrams(got, m-1, l)
		for j := 0; j+gramLen <= len(l); j++ {
			h1, h2 := gramHash(l[j:])
			for k := uint32(0); k < bloomHashes; k++ {
				p := (h1 + k*h2) & (m - 1)
				want[p>>6] |= 1 << (p & 63)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("line %d (%d bytes): bits differ from the reference", n, len(l))
		}
	}
}
