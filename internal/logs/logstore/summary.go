package logstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// A chunk summary (format version 2, ADR 0097) holds a chunk's entry
// counts and line bytes per second and per structured-metadata set, so
// count_over_time, rate, bytes_over_time and bytes_rate whose windows fall
// on whole seconds are answered without reading the chunk. It is stored in
// the blooms file right after the chunk's bloom filter (mmapped, never on
// the heap).
//
//	uvarint sets, sets × (uvarint len, blob)   distinct non-empty metadata sets,
//	                                           blob as in the chunk's md column
//	uvarint metadata_bytes                     Σ len(name)+len(value) over all entries
//	uvarint buckets
//	buckets × (varint Δk, uvarint groups,
//	           groups × (uvarint set, uvarint entries, uvarint line_bytes))
//
// Bucket k holds the entries with k·1s < ts ≤ (k+1)·1s (a range window is
// open on the left, closed on the right); Δk is k minus the previous
// bucket's k (the first one's is k itself), buckets in ascending k. Set 0
// is "no metadata", set i > 0 the i-th blob.

// SummaryBucket is the width of a chunk summary's buckets.
const SummaryBucket = int64(time.Second)

var errBadSummary = errors.New("bad chunk summary")

// bucketOf is the summary bucket of a timestamp.
func bucketOf(ts int64) int64 {
	k := (ts - 1) / SummaryBucket
	if (ts-1)%SummaryBucket < 0 {
		k--
	}
	return k
}

// buildSummary summarises a decoded chunk.
func buildSummary(v *chunkView) []byte {
	var sets [][]byte
	setOf := map[string]uint64{}
	var mdBytes uint64
	var last []byte
	var lastSet, lastBytes uint64
	type group struct {
		k               int64
		set, n, lineLen uint64
	}
	var gs []group
	for i := range v.len() {
		var set uint64
		if v.md != nil {
			if blob := v.md[v.mdOff[i]:v.mdOff[i+1]]; len(blob) > 0 {
				if last == nil || string(blob) != string(last) {
					var ok bool
					if lastSet, ok = setOf[string(blob)]; !ok {
						sets = append(sets, blob)
						lastSet = uint64(len(sets))
						setOf[string(blob)] = lastSet
					}
					last, lastBytes = blob, 0
					rangeMetadataBlob(blob, func(name, value []byte) { lastBytes += uint64(len(name) + len(value)) })
				}
				set = lastSet
				mdBytes += lastBytes
			}
		}
		k := bucketOf(v.ts[i])
		ll := uint64(v.lineOff[i+1] - v.lineOff[i])
		if n := len(gs); n > 0 && gs[n-1].k == k && gs[n-1].set == set {
			gs[n-1].n++
			gs[n-1].lineLen += ll
			continue
		}
		gs = append(gs, group{k, set, 1, ll})
	}
	// Entries are sorted by time, but sets alternate within a second:
	// order the groups by (bucket, set) and merge equal ones.
	slices.SortStableFunc(gs, func(a, b group) int {
		if c := cmpInt64(a.k, b.k); c != 0 {
			return c
		}
		return cmpInt64(int64(a.set), int64(b.set))
	})
	merged := gs[:0]
	for _, g := range gs {
		if n := len(merged); n > 0 && merged[n-1].k == g.k && merged[n-1].set == g.set {
			merged[n-1].n += g.n
			merged[n-1].lineLen += g.lineLen
			continue
		}
		merged = append(merged, g)
	}
	gs = merged
	out := binary.AppendUvarint(make([]byte, 0, 8+len(gs)*6), uint64(len(sets)))
	for _, b := range sets {
		out = binary.AppendUvarint(out, uint64(len(b)))
		out = append(out, b...)
	}
	out = binary.AppendUvarint(out, mdBytes)
	buckets := 0
	for i, g := range gs {
		if i == 0 || g.k != gs[i-1].k {
			buckets++
		}
	}
	out = binary.AppendUvarint(out, uint64(buckets))
	prev := int64(0)
	for i := 0; i < len(gs); {
		j := i
		for j < len(gs) && gs[j].k == gs[i].k {
			j++
		}
		out = binary.AppendVarint(out, gs[i].k-prev)
		prev = gs[i].k
		out = binary.AppendUvarint(out, uint64(j-i))
		for _, g := range gs[i:j] {
			out = binary.AppendUvarint(out, g.set)
			out = binary.AppendUvarint(out, g.n)
			out = binary.AppendUvarint(out, g.lineLen)
		}
		i = j
	}
	return out
}

// SummaryBucketCounts is one (bucket, metadata set) group of a chunk summary.
type SummaryBucketCounts struct {
	End       int64 // the bucket holds entries with End-SummaryBucket < ts ≤ End (Unix ns)
	Entries   int
	LineBytes int64
	// Metadata is the structured metadata the group's entries carry
	// (empty for none); MetadataKey identifies it (its encoding: equal
	// sets, equal keys), for callers that key series by it.
	Metadata    labels.Labels
	MetadataKey string
}

// chunkSummary is a decoded summary header; the buckets are read by each.
type chunkSummary struct {
	sets    []labels.Labels // [0] is the empty set
	keys    []string
	mdBytes int64
	buckets []byte
	n       int
}

// The sets of a chunk without metadata, shared: never appended to.
var (
	noMetadataSets = []labels.Labels{labels.EmptyLabels()}
	noMetadataKeys = []string{""}
)

func parseSummary(b []byte) (chunkSummary, error) {
	d := decoder{b: b}
	ns := d.uvarint()
	if ns > uint64(len(b)) {
		return chunkSummary{}, fmt.Errorf("%w: %d metadata sets", errBadSummary, ns)
	}
	s := chunkSummary{sets: noMetadataSets, keys: noMetadataKeys}
	if ns > 0 {
		s.sets, s.keys = make([]labels.Labels, 1, ns+1), make([]string, 1, ns+1)
		s.sets[0] = labels.EmptyLabels()
	}
	var sb labels.ScratchBuilder
	for range ns {
		blob := d.string()
		if d.err != nil {
			break
		}
		bd := decoder{b: []byte(blob)}
		s.sets = append(s.sets, bd.labels(&sb))
		if bd.err != nil {
			return chunkSummary{}, fmt.Errorf("%w: metadata set: %w", errBadSummary, bd.err)
		}
		s.keys = append(s.keys, blob)
	}
	s.mdBytes = int64(d.uvarint())
	nb := d.uvarint()
	if d.err != nil || nb > uint64(len(d.b)) {
		return chunkSummary{}, fmt.Errorf("%w: header", errBadSummary)
	}
	s.buckets, s.n = d.b, int(nb)
	return s, nil
}

// each calls fn for every group of every bucket, buckets in time order.
func (s chunkSummary) each(fn func(SummaryBucketCounts)) error {
	d := decoder{b: s.buckets}
	k := int64(0)
	for range s.n {
		k += d.varint()
		ng := d.uvarint()
		if d.err != nil || ng > uint64(len(d.b)) {
			return fmt.Errorf("%w: bucket", errBadSummary)
		}
		for range ng {
			set, n, lb := d.uvarint(), d.uvarint(), d.uvarint()
			if d.err != nil || set >= uint64(len(s.sets)) {
				return fmt.Errorf("%w: group", errBadSummary)
			}
			fn(SummaryBucketCounts{End: (k + 1) * SummaryBucket, Entries: int(n), LineBytes: int64(lb), Metadata: s.sets[set], MetadataKey: s.keys[set]})
		}
	}
	return nil
}

// SummaryStats counts what SplitSummarized answered from summaries.
type SummaryStats struct {
	Chunks        int
	Entries       int64
	LineBytes     int64
	MetadataBytes int64
}

// SplitSummarized answers from chunk summaries what needs no line: for
// every chunk of the stream that overlaps no other of its chunks (so no
// entry of it can be a duplicate of another chunk's), has a summary, and
// whose buckets lie wholly inside or outside the Select's range, it calls
// fn with each (bucket, metadata set) group in the range. It returns the stream of the
// remaining chunks (nil if none), to be read as usual.
//
// Callers use it for counts and line bytes per window whose bounds are
// multiples of SummaryBucket; a bucket's entries are then in the same
// windows as its End.
func (s *Stream) SplitSummarized(fn func(SummaryBucketCounts)) (*Stream, SummaryStats, error) {
	var st SummaryStats
	if len(s.hints.Contains) > 0 || s.hints.Filter != nil || len(s.hints.Metadata) > 0 {
		return s, st, nil // lines are filtered: every one must be read
	}
	cs := slices.Clone(s.chunks)
	slices.SortStableFunc(cs, func(a, b chunkHandle) int { return cmpInt64(a.Meta().MinTime, b.Meta().MinTime) })
	start, end := s.hints.Start, s.hints.End
	alignedStart := (start-1)%SummaryBucket == 0
	alignedEnd := (end-1)%SummaryBucket == 0
	var rest []chunkHandle
	runMax := int64(minTime)
	for i, c := range cs {
		m := c.Meta()
		overlaps := (i > 0 && m.MinTime <= runMax) || (i+1 < len(cs) && cs[i+1].Meta().MinTime <= m.MaxTime)
		runMax = max(runMax, m.MaxTime)
		sum := c.summary()
		usable := !overlaps && sum != nil &&
			(alignedStart || m.MinTime >= start || m.MaxTime < start) &&
			(alignedEnd || m.MaxTime <= end-1 || m.MinTime > end-1)
		if !usable {
			rest = append(rest, c)
			continue
		}
		sm, err := parseSummary(sum)
		if err != nil {
			return nil, st, err
		}
		st.Chunks++
		whole := m.MinTime >= start && m.MaxTime < end
		if whole {
			st.MetadataBytes += sm.mdBytes
		}
		err = sm.each(func(b SummaryBucketCounts) {
			if b.End < start || b.End-SummaryBucket+1 > end-1 {
				return
			}
			st.Entries += int64(b.Entries)
			st.LineBytes += b.LineBytes
			fn(b)
		})
		if err != nil {
			return nil, st, err
		}
	}
	if len(rest) == 0 {
		return nil, st, nil
	}
	r := *s
	r.chunks = rest
	return &r, st, nil
}
