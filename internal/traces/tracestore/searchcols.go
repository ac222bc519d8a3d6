package tracestore

import (
	"errors"
	"fmt"
	"io"
)

// Format 10 (ADR 0110): each column group also holds its spans' IDs (8
// bytes each, in column order, one zstd frame after the attribute columns)
// and a root bit per span (bits column, bit 6: no parent span ID), so a
// search whose query the columns can evaluate answers a trace — span IDs,
// root service and name, start, duration, service statistics — without
// reading its data page. The data file keeps each regular trace's span_id
// fields with their 8 bytes zeroed (as format 9 does for span times);
// readers write them back from the columns (restoreTimes).

// allZero reports whether b holds only zero bytes (an empty span ID).
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// readSpanIDs reads and decompresses group gi's span IDs (format 10) into
// dst (cbuf holds the compressed bytes); both are returned for reuse.
func (b *block) readSpanIDs(ref *colGroupRef, gi int, dst, cbuf []byte) ([]byte, []byte, error) {
	if ref.idLen == 0 {
		return dst[:0], cbuf, fmt.Errorf("%w: group %d has no span IDs", errCorruptColumns, gi)
	}
	if cap(cbuf) < ref.idLen {
		cbuf = make([]byte, ref.idLen)
	}
	cbuf = cbuf[:ref.idLen]
	if _, err := b.cols.ReadAt(cbuf, int64(ref.idOff)); err != nil && !errors.Is(err, io.EOF) {
		return dst[:0], cbuf, fmt.Errorf("read span IDs of column group %d: %w", gi, err)
	}
	var out []byte
	err := checkFrameSize(cbuf, 8*ref.spans)
	if err == nil {
		out, err = b.dec.DecodeAll(cbuf, dst[:0])
	}
	if err != nil {
		return dst[:0], cbuf, fmt.Errorf("%w: group %d span IDs: %v", errCorruptColumns, gi, err)
	}
	if len(out) != 8*ref.spans {
		return out[:0], cbuf, fmt.Errorf("%w: group %d: %d bytes of span IDs for %d spans", errCorruptColumns, gi, len(out), ref.spans)
	}
	return out, cbuf, nil
}
