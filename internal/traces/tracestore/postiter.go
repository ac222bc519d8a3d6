package tracestore

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// Candidate ordinals are produced lazily from the delta-encoded postings,
// so a search that stops after 20 traces decodes the postings only up to
// the ordinals it reached, not every list whole (and allocates nothing
// per ordinal).

// ordIter yields ascending trace ordinals.
type ordIter interface {
	// next returns the smallest ordinal ≥ min not returned before, or
	// ok=false at the end. Callers pass min above the last ordinal returned.
	next(min uint32) (ord uint32, ok bool)
}

// listIter walks one posting list (uvarint(n) then n deltas).
type listIter struct {
	p    []byte
	left uint64
	cur  uint32
}

func newListIter(p postingList) *listIter {
	n, k := binary.Uvarint(p)
	if k <= 0 {
		return &listIter{}
	}
	return &listIter{p: p[k:], left: n}
}

func (it *listIter) next(min uint32) (uint32, bool) {
	for it.left > 0 {
		d, k := binary.Uvarint(it.p)
		if k <= 0 {
			it.left = 0
			return 0, false
		}
		it.p = it.p[k:]
		it.left--
		it.cur += uint32(d)
		if it.cur >= min {
			return it.cur, true
		}
	}
	return 0, false
}

// bitmapIter walks a layout 6 bitmap list: bit i (byte i/8, bit i%8) set
// means ordinal first+i is in the list.
type bitmapIter struct {
	first uint32
	bits  []byte
}

func (it *bitmapIter) next(min uint32) (uint32, bool) {
	i := uint64(0)
	if min > it.first {
		i = uint64(min - it.first)
	}
	for i/8 < uint64(len(it.bits)) {
		w := it.bits[i/8] >> (i % 8)
		if w == 0 {
			i = (i/8 + 1) * 8
			continue
		}
		i += uint64(bits.TrailingZeros8(w))
		o := uint64(it.first) + i
		if o > math.MaxUint32 {
			return 0, false
		}
		return uint32(o), true
	}
	return 0, false
}

// unionIter merges several iterators (the values and keys of one Cond).
type unionIter struct {
	its   []ordIter
	heads []uint32
	live  []bool
	init  bool
}

func (u *unionIter) next(min uint32) (uint32, bool) {
	if !u.init {
		u.init = true
		u.heads = make([]uint32, len(u.its))
		u.live = make([]bool, len(u.its))
		for i, it := range u.its {
			u.heads[i], u.live[i] = it.next(min)
		}
	}
	best, found := uint32(0), false
	for i, it := range u.its {
		if u.live[i] && u.heads[i] < min {
			u.heads[i], u.live[i] = it.next(min)
		}
		if u.live[i] && (!found || u.heads[i] < best) {
			best, found = u.heads[i], true
		}
	}
	if !found {
		return 0, false
	}
	// Consume best from every iterator holding it (a trace in two lists once).
	for i, it := range u.its {
		if u.live[i] && u.heads[i] == best {
			u.heads[i], u.live[i] = it.next(best + 1)
		}
	}
	return best, true
}

// intersectIter yields the ordinals every iterator yields. heads are
// values read from its[i] and not yet returned (valid[i]).
type intersectIter struct {
	its   []ordIter
	heads []uint32
	valid []bool
	done  bool
}

func (x *intersectIter) next(min uint32) (uint32, bool) {
	if x.done {
		return 0, false
	}
	if x.heads == nil {
		x.heads, x.valid = make([]uint32, len(x.its)), make([]bool, len(x.its))
	}
	cand := min
	for {
		agree := true
		for i, it := range x.its {
			if !x.valid[i] || x.heads[i] < cand {
				o, ok := it.next(cand)
				if !ok {
					x.done = true
					return 0, false
				}
				x.heads[i], x.valid[i] = o, true
			}
			if x.heads[i] > cand {
				cand, agree = x.heads[i], false
			}
		}
		if agree { // every head is cand: return it, consumed
			clear(x.valid)
			return cand, true
		}
	}
}

// candidateIter is the lazy form of candidates: the ordinals that may
// satisfy every Cond. all=true means no condition could be used (every
// trace is a candidate, it is nil); an iterator yielding nothing means none.
func (b *block) candidateIter(conds []Cond) (it ordIter, all bool, err error) {
	var parts []ordIter
	for _, c := range conds {
		var lists []ordIter
		usable := true
		for _, k := range c.Keys {
			kp, err := b.keyPostings(k)
			if err != nil {
				return nil, false, fmt.Errorf("block %s: %w", b.meta.ULID, err)
			}
			if kp == nil {
				continue // no span in this block carries the key
			}
			if !kp.complete {
				usable = false
				break
			}
			for _, v := range c.Values {
				if pl, ok := kp.values[v]; ok {
					lists = append(lists, kp.iter(pl))
				}
			}
		}
		if !usable {
			continue
		}
		switch len(lists) {
		case 0:
			return &listIter{}, false, nil // nothing can match this condition
		case 1:
			parts = append(parts, lists[0])
		default:
			parts = append(parts, &unionIter{its: lists})
		}
	}
	switch len(parts) {
	case 0:
		return nil, true, nil
	case 1:
		return parts[0], false, nil
	}
	return &intersectIter{its: parts}, false, nil
}
