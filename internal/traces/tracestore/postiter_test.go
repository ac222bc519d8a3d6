package tracestore

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestCandidateIter checks the lazy candidate ordinals against whole-list
// decoding (the reference below, the code Search used before) on random
// postings and conditions: unions of values and keys, intersections,
// incomplete and absent keys, stopping early, and skipping ahead.
func TestCandidateIter(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 500 {
		n := 1 + rng.IntN(3000)
		b := &block{n: n, postings: map[string]*blockPostings{}}
		keys := []string{"a", "b", "c", "d"}
		for _, k := range keys[:1+rng.IntN(len(keys))] {
			kp := &blockPostings{complete: rng.IntN(8) != 0, values: map[string]postingList{}}
			for v := range 1 + rng.IntN(4) {
				var list []uint32
				density := rng.Float64()
				for o := range n {
					if rng.Float64() < density*density {
						list = append(list, uint32(o))
					}
				}
				if len(list) > 0 || rng.IntN(2) == 0 {
					kp.values[string(rune('0'+v))] = appendPostingList(nil, list)
				}
			}
			b.postings[k] = kp
		}
		var conds []Cond
		for range rng.IntN(4) {
			c := Cond{}
			for range 1 + rng.IntN(2) {
				c.Keys = append(c.Keys, keys[rng.IntN(len(keys))])
			}
			for range 1 + rng.IntN(3) {
				c.Values = append(c.Values, string(rune('0'+rng.IntN(5))))
			}
			conds = append(conds, c)
		}
		want, wantAll := b.candidates(conds)
		it, all, err := b.candidateIter(conds)
		if err != nil {
			t.Fatal(err)
		}
		if all != wantAll {
			t.Fatalf("round %d: all=%v, want %v", round, all, wantAll)
		}
		if all {
			continue
		}
		var got []uint32
		for min := uint32(0); ; {
			o, ok := it.next(min)
			if !ok {
				break
			}
			got = append(got, o)
			min = o + 1
			if rng.IntN(10) == 0 { // skip ahead, as a caller may
				min += uint32(rng.IntN(20))
				want = slices.DeleteFunc(want, func(w uint32) bool { return w > o && w < min })
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d, conds %v: got %v, want %v", round, conds, got, want)
		}
	}
}

// candidates intersects the postings of every condition. all=true means no
// condition could be used and every trace is a candidate.
func (b *block) candidates(conds []Cond) (ords []uint32, all bool) {
	all = true
	for _, c := range conds {
		var union []uint32
		usable := true
		for _, k := range c.Keys {
			kp := b.postings[k]
			if kp == nil {
				continue // no span in this block carries the key
			}
			if !kp.complete {
				usable = false
				break
			}
			for _, v := range c.Values {
				if pl, ok := kp.values[v]; ok {
					union = mergeUnion(union, pl.decode())
				}
			}
		}
		if !usable {
			continue
		}
		if all {
			ords, all = union, false
		} else {
			ords = intersect(ords, union)
		}
		if len(ords) == 0 {
			return nil, false
		}
	}
	return ords, all
}

func mergeUnion(a, b []uint32) []uint32 {
	if len(a) == 0 {
		return slices.Clone(b)
	}
	out := make([]uint32, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			out = append(out, a[i])
			i++
		case a[i] > b[j]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

func intersect(a, b []uint32) []uint32 {
	var out []uint32
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}
