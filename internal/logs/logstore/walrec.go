package logstore

import (
	"encoding/binary"
	"fmt"

	"github.com/prometheus/prometheus/model/labels"
)

// WAL record types; the layout is documented in docs/formats/logstore.md.
const (
	recStreams byte = 1 // stream ref → label set
	recEntries byte = 2 // entries of one or more streams
)

type walEntries struct {
	ref     uint64
	entries []Entry
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendLabels(b []byte, ls labels.Labels) []byte {
	b = binary.AppendUvarint(b, uint64(ls.Len()))
	ls.Range(func(l labels.Label) {
		b = appendString(b, l.Name)
		b = appendString(b, l.Value)
	})
	return b
}

func encodeStreamsRecord(b []byte, refs []uint64, lss []labels.Labels) []byte {
	b = append(b, recStreams)
	for i, ref := range refs {
		b = binary.AppendUvarint(b, ref)
		b = appendLabels(b, lss[i])
	}
	return b
}

func encodeEntriesRecord(b []byte, batch []walEntries) []byte {
	b = append(b, recEntries)
	for _, s := range batch {
		b = binary.AppendUvarint(b, s.ref)
		b = binary.AppendUvarint(b, uint64(len(s.entries)))
		for _, e := range s.entries {
			b = binary.AppendVarint(b, e.Timestamp)
			b = appendString(b, e.Line)
			b = appendLabels(b, e.Metadata)
		}
	}
	return b
}

// decoder reads the varint framing shared by WAL records and the index.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("bad uvarint at %d bytes from end", len(d.b))
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("bad varint at %d bytes from end", len(d.b))
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	l := d.uvarint()
	if d.err != nil {
		return ""
	}
	if l > uint64(len(d.b)) {
		d.err = fmt.Errorf("string length %d beyond end", l)
		return ""
	}
	s := string(d.b[:l])
	d.b = d.b[l:]
	return s
}

func (d *decoder) labels(sb *labels.ScratchBuilder) labels.Labels {
	n := d.uvarint()
	if d.err != nil || n == 0 {
		return labels.EmptyLabels()
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("label count %d beyond end", n)
		return labels.EmptyLabels()
	}
	sb.Reset()
	for range n {
		name := d.string()
		value := d.string()
		sb.Add(name, value)
	}
	sb.Sort()
	return sb.Labels()
}

func decodeStreamsRecord(rec []byte, fn func(ref uint64, ls labels.Labels)) error {
	d := decoder{b: rec[1:]}
	var sb labels.ScratchBuilder
	for len(d.b) > 0 && d.err == nil {
		ref := d.uvarint()
		ls := d.labels(&sb)
		if d.err == nil {
			fn(ref, ls)
		}
	}
	return d.err
}

func decodeEntriesRecord(rec []byte, fn func(ref uint64, es []Entry)) error {
	d := decoder{b: rec[1:]}
	var sb labels.ScratchBuilder
	var es []Entry
	for len(d.b) > 0 && d.err == nil {
		ref := d.uvarint()
		n := d.uvarint()
		if n > uint64(len(d.b)) {
			return fmt.Errorf("entry count %d beyond end", n)
		}
		es = es[:0]
		for range n {
			ts := d.varint()
			line := d.string()
			md := d.labels(&sb)
			es = append(es, Entry{Timestamp: ts, Line: line, Metadata: md})
		}
		if d.err == nil {
			fn(ref, es)
		}
	}
	return d.err
}
