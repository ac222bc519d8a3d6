package tracestore

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// recPieces is the only WAL record type: trace pieces of one request (or, in a
// checkpoint, the merged pieces of head traces).
const recPieces byte = 1

// encodeRecord appends pieces to buf[:0] as one record and sets each
// piece's off to where its data starts in the record.
func encodeRecord(buf []byte, pieces []tracePiece) []byte {
	buf = append(buf[:0], recPieces)
	for i := range pieces {
		p := &pieces[i]
		buf = append(buf, p.id[:]...)
		buf = binary.AppendUvarint(buf, uint64(p.spans))
		buf = binary.AppendUvarint(buf, p.minStart)
		buf = binary.AppendUvarint(buf, p.maxEnd)
		buf = binary.AppendUvarint(buf, uint64(len(p.data)))
		p.off = len(buf)
		buf = append(buf, p.data...)
	}
	return buf
}

var errShortRecord = errors.New("short record")

// decodeRecord returns pieces whose data aliases rec (off is where it starts
// in rec); callers copy if they keep it.
func decodeRecord(rec []byte) ([]tracePiece, error) {
	if len(rec) == 0 || rec[0] != recPieces {
		return nil, fmt.Errorf("unknown record type %v", rec[:min(1, len(rec))])
	}
	b := rec[1:]
	var out []tracePiece
	for len(b) > 0 {
		if len(b) < 16 {
			return nil, errShortRecord
		}
		var p tracePiece
		copy(p.id[:], b[:16])
		b = b[16:]
		var vals [4]uint64
		for i := range vals {
			v, n := binary.Uvarint(b)
			if n <= 0 {
				return nil, errShortRecord
			}
			vals[i] = v
			b = b[n:]
		}
		p.spans, p.minStart, p.maxEnd = int(vals[0]), vals[1], vals[2]
		if uint64(len(b)) < vals[3] {
			return nil, errShortRecord
		}
		p.off = len(rec) - len(b)
		p.data = b[:vals[3]]
		b = b[vals[3]:]
		out = append(out, p)
	}
	return out, nil
}
