package tracestore

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestTaggedLists: layout 6 lists (varint or bitmap, whichever is smaller)
// give back the same ordinals, walked whole or skipping with next(min), and
// a dense list costs about a bit per ordinal it spans.
func TestTaggedLists(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	kp := &blockPostings{tagged: true}
	sawBitmap, sawVarint := false, false
	for round := 0; round < 400; round++ {
		n := rng.IntN(3000)
		density := rng.Float64()
		start := uint32(rng.IntN(70000))
		var list []uint32
		for o := start; len(list) < n; o++ {
			if rng.Float64() < density {
				list = append(list, o)
			}
		}
		pl := postingList(appendTaggedList(nil, list))
		if len(pl) > 0 && pl[0] == listBitmap {
			sawBitmap = true
		} else {
			sawVarint = true
		}
		if got := kp.decode(pl); !slices.Equal(got, list) && (len(got) != 0 || len(list) != 0) {
			t.Fatalf("round %d: decoded %d ordinals, want %d", round, len(got), len(list))
		}
		// Skipping: next(min) for random mins against a linear search.
		it := kp.iter(pl)
		min := uint32(0)
		for {
			min += uint32(rng.IntN(40))
			got, ok := it.next(min)
			i, _ := slices.BinarySearch(list, min)
			if i == len(list) {
				if ok {
					t.Fatalf("round %d: next(%d) = %d, want end", round, min, got)
				}
				break
			}
			if !ok || got != list[i] {
				t.Fatalf("round %d: next(%d) = %d %v, want %d", round, min, got, ok, list[i])
			}
			min = got + 1
		}
	}
	if !sawBitmap || !sawVarint {
		t.Fatalf("bitmap %v varint %v: both forms should occur", sawBitmap, sawVarint)
	}
	// Every ordinal of 0..9999: ~1250 bytes, not ~10000.
	all := make([]uint32, 10000)
	for i := range all {
		all[i] = uint32(i)
	}
	if n := len(appendTaggedList(nil, all)); n > 1260 {
		t.Fatalf("dense list of 10000 ordinals takes %d bytes", n)
	}
}

// TestPlanes: the byte-plane columns of format version 7 round-trip, with
// the fewest planes that hold the largest value.
func TestPlanes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, max := range []uint64{0, 1, 255, 256, 1e9, 1 << 63} {
		vals := make([]uint64, 1+rng.IntN(500))
		for i := range vals {
			vals[i] = rng.Uint64N(max + 1)
		}
		vals[0] = max
		p := appendPlanes(nil, vals)
		if want := (64 - leadingZeros(max) + 7) / 8; int(p[0]) != want {
			t.Fatalf("max %d: %d planes, want %d", max, p[0], want)
		}
		got, ok := readPlanes(p, len(vals), nil)
		if !ok || !slices.Equal(got, vals) {
			t.Fatalf("max %d: round trip failed (%v)", max, ok)
		}
		if _, ok := readPlanes(p[:len(p)-1], len(vals), nil); ok {
			t.Fatalf("max %d: short planes accepted", max)
		}
	}
}

func leadingZeros(v uint64) int {
	n := 0
	for i := 63; i >= 0 && v&(1<<i) == 0; i-- {
		n++
	}
	return n
}
