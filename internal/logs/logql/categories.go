package logql

import (
	"github.com/prometheus/prometheus/model/labels"
)

// categorize splits the labels a line carries after its pipeline the way
// Loki's categorize-labels encoding does: the stream's index labels that
// are left, the entry's structured metadata (md, as stored) and the rest,
// which stages extracted or formatted. A metadata name a parser overwrote
// stays metadata, as the entry carries it.
func categorize(ls *labelSet, md labels.Labels) (labels.Labels, EntryLabels) {
	var sb, mb, pb labels.ScratchBuilder
	for _, l := range ls.ls {
		switch {
		case l.Value == "":
		case ls.stream[l.Name]:
			sb.Add(l.Name, l.Value)
		case md.Has(l.Name):
			mb.Add(l.Name, l.Value)
		default:
			pb.Add(l.Name, l.Value)
		}
	}
	sb.Sort()
	mb.Sort()
	pb.Sort()
	return sb.Labels(), EntryLabels{StructuredMetadata: mb.Labels(), Parsed: pb.Labels()}
}

// metadataBytes is the size of structured metadata as Loki counts it in
// query stats: names and values.
func metadataBytes(md labels.Labels) int64 {
	n := 0
	md.Range(func(l labels.Label) { n += len(l.Name) + len(l.Value) })
	return int64(n)
}
