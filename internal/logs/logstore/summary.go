package logstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
)

// A chunk summary (format version 2, ADR 0097) holds a chunk's entry
// counts and line bytes per second, so count_over_time, rate, bytes_over_time
// and bytes_rate whose windows fall on whole seconds are answered without
// reading the chunk. It is stored in the blooms file right after the chunk's
// bloom filter (mmapped, never on the heap) and carries what decides whether
// a query may use it: the names of the structured metadata in the chunk.
//
//	uvarint names, names × string      metadata names present, sorted
//	uvarint metadata_bytes             Σ len(name)+len(value) over all entries
//	uvarint buckets
//	buckets × (varint Δk, uvarint entries, uvarint line_bytes)
//
// Bucket k holds the entries with k·1s < ts ≤ (k+1)·1s (a range window is
// open on the left, closed on the right); Δk is k minus the previous
// bucket's k (the first one's is k itself), buckets in ascending k.

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
	var names []string
	var mdBytes uint64
	var last []byte
	var lastBytes uint64
	if v.md != nil {
		for i := range v.len() {
			blob := v.md[v.mdOff[i]:v.mdOff[i+1]]
			if len(blob) == 0 {
				continue
			}
			if last == nil || string(blob) != string(last) {
				last, lastBytes = blob, 0
				rangeMetadataBlob(blob, func(name, value []byte) {
					lastBytes += uint64(len(name) + len(value))
					if !slices.Contains(names, string(name)) {
						names = append(names, string(name))
					}
				})
			}
			mdBytes += lastBytes
		}
	}
	slices.Sort(names)
	type bucket struct {
		k          int64
		n, lineLen uint64
	}
	var bs []bucket
	for i := range v.len() {
		k := bucketOf(v.ts[i])
		ll := uint64(v.lineOff[i+1] - v.lineOff[i])
		if n := len(bs); n > 0 && bs[n-1].k == k {
			bs[n-1].n++
			bs[n-1].lineLen += ll
			continue
		}
		bs = append(bs, bucket{k, 1, ll})
	}
	if !slices.IsSortedFunc(bs, func(a, b bucket) int { return cmpInt64(a.k, b.k) }) {
		slices.SortStableFunc(bs, func(a, b bucket) int { return cmpInt64(a.k, b.k) })
		merged := bs[:0]
		for _, b := range bs {
			if n := len(merged); n > 0 && merged[n-1].k == b.k {
				merged[n-1].n += b.n
				merged[n-1].lineLen += b.lineLen
				continue
			}
			merged = append(merged, b)
		}
		bs = merged
	}
	out := binary.AppendUvarint(make([]byte, 0, 8+len(bs)*5), uint64(len(names)))
	for _, n := range names {
		out = appendString(out, n)
	}
	out = binary.AppendUvarint(out, mdBytes)
	out = binary.AppendUvarint(out, uint64(len(bs)))
	prev := int64(0)
	for _, b := range bs {
		out = binary.AppendVarint(out, b.k-prev)
		prev = b.k
		out = binary.AppendUvarint(out, b.n)
		out = binary.AppendUvarint(out, b.lineLen)
	}
	return out
}

// SummaryBucketCounts is one bucket of a chunk summary.
type SummaryBucketCounts struct {
	End       int64 // the bucket holds entries with End-SummaryBucket < ts ≤ End (Unix ns)
	Entries   int
	LineBytes int64
}

// chunkSummary is a decoded summary header; the buckets are read by each.
type chunkSummary struct {
	names   []string
	mdBytes int64
	buckets []byte
	n       int
}

func parseSummary(b []byte) (chunkSummary, error) {
	d := decoder{b: b}
	nn := d.uvarint()
	if nn > uint64(len(b)) {
		return chunkSummary{}, fmt.Errorf("%w: %d names", errBadSummary, nn)
	}
	s := chunkSummary{names: make([]string, 0, nn)}
	for range nn {
		s.names = append(s.names, d.string())
	}
	s.mdBytes = int64(d.uvarint())
	nb := d.uvarint()
	if d.err != nil || nb > uint64(len(d.b)) {
		return chunkSummary{}, fmt.Errorf("%w: header", errBadSummary)
	}
	s.buckets, s.n = d.b, int(nb)
	return s, nil
}

// each calls fn for every bucket, in time order.
func (s chunkSummary) each(fn func(SummaryBucketCounts)) error {
	d := decoder{b: s.buckets}
	k := int64(0)
	for range s.n {
		k += d.varint()
		n, lb := d.uvarint(), d.uvarint()
		if d.err != nil {
			return fmt.Errorf("%w: %w", errBadSummary, d.err)
		}
		fn(SummaryBucketCounts{End: (k + 1) * SummaryBucket, Entries: int(n), LineBytes: int64(lb)})
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
// entry of it can be a duplicate of another chunk's), has a summary, whose
// metadata names mdOK accepts (nil accepts only chunks without metadata),
// and whose buckets lie wholly inside or outside the Select's range, it
// calls fn with each bucket in the range. It returns the stream of the
// remaining chunks (nil if none), to be read as usual.
//
// Callers use it for counts and line bytes per window whose bounds are
// multiples of SummaryBucket; a bucket's entries are then in the same
// windows as its End.
func (s *Stream) SplitSummarized(mdOK func(names []string) bool, fn func(SummaryBucketCounts)) (*Stream, SummaryStats, error) {
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
		var sm chunkSummary
		if usable {
			var err error
			if sm, err = parseSummary(sum); err != nil {
				return nil, st, err
			}
			usable = len(sm.names) == 0 || (mdOK != nil && mdOK(sm.names))
		}
		if !usable {
			rest = append(rest, c)
			continue
		}
		st.Chunks++
		whole := m.MinTime >= start && m.MaxTime < end
		if whole {
			st.MetadataBytes += sm.mdBytes
		}
		err := sm.each(func(b SummaryBucketCounts) {
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
