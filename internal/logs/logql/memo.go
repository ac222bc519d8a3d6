package logql

import (
	"encoding/binary"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// Outcome memo for logfmt metric queries (ADR 0103).
//
// In a range aggregation whose stages are one narrowed logfmt parser and
// label filters (`sum by (level) (count_over_time({…} | logfmt [1m]))`,
// `… | logfmt | status >= 500 …`), what happens to a line — dropped, or
// added to which series — depends only on the stream's labels, the entry's
// structured metadata and the raw text of the values the parser would set
// for the labels that matter (narrowParsers' `only`). Lines of one stream
// repeat those few values (status codes, levels), so the engine runs the
// stages once per distinct (metadata, values) and afterwards only
// tokenises the line to find the values, looks the outcome up and adds the
// sample: no label set is rebuilt, no filter evaluated, no value unquoted,
// converted, grouped or hashed per line.
//
// The memo key is the raw text of each wanted value (quotes included) or
// its absence, slot by slot: the parser's result for a label is a function
// of that text, so equal keys mean equal label sets. A line with a key that
// needs sanitising when sanitised names matter, or whose stream's memo is
// full, takes the general path (nothing cached).

// memoMaxSlots bounds the labels a memoised stage may extract.
const memoMaxSlots = 16

// memoMaxKeys bounds the distinct keys remembered per stream and metadata
// set; beyond it the remaining lines with new keys take the general path.
const memoMaxKeys = 4096

// memoMaxSets bounds the metadata sets with a memo per stream.
const memoMaxSets = 16

// memoPlan says how the lines of a range aggregation are memoised; nil
// when its stages are not one narrowed logfmt parser plus label filters.
type memoPlan struct {
	p *ParserStage
}

func newMemoPlan(stages []Stage, uw *Unwrap, keepValues bool) *memoPlan {
	if uw != nil || keepValues {
		return nil
	}
	var p *ParserStage
	for _, st := range stages {
		switch s := st.(type) {
		case *LabelFilterStage:
		case *ParserStage:
			if p != nil {
				return nil
			}
			switch {
			case s.Kind == "json" && len(s.Params) > 0:
				// `| json a="b.c"` sets exactly its parameters' labels
				// (ADR 0108): no narrowing needed.
				if len(s.Params) > memoMaxSlots || len(s.Flags) > 0 {
					return nil
				}
				if _, ok := newJSONPathKeys(s.Params); !ok {
					return nil
				}
			case !s.narrowed || s.Kind != "logfmt" && s.Kind != "json" || len(s.only) > memoMaxSlots:
				return nil
			}
			p = s
		default:
			return nil
		}
	}
	if p == nil {
		return nil
	}
	return &memoPlan{p: p}
}

// memoOutcome is what the stages made of a line: dropped (sr nil) or a
// sample of sr.
type memoOutcome struct {
	sr *seriesSamples
}

// streamMemo holds a stream's outcomes by metadata set, then by key.
type streamMemo struct {
	sets []memoSet
	last int
	// The previous line's metadata set (an index of sets), key and
	// outcome: an outcome is a function of the two (ADR 0103).
	prevOK  bool
	prevSet int
	prevKey []byte
	prevOut memoOutcome
	vals    [memoMaxSlots]string
	key     []byte

	// The wanted keys whose value can matter on this stream, each with
	// "=" appended, and their slots in p.only: a key that is a stream
	// label is set as key_extracted, which matters only if the query
	// names key_extracted too.
	keq  []string
	slot []int
	// sanitized: some searched key holds '_', the only byte sanitising
	// adds, so a key that needs sanitising could set it (the tokeniser
	// then hands such lines to the general path).
	sanitized bool
	// clash: slot pairs (k, k_extracted) where k is a stream label, so a
	// k pair in the line is set as k_extracted too: which of the two
	// comes last decides the label, and the key does not record the
	// order, so a line with both takes the general path.
	clash [][2]int
	// json: the wanted member names of a json stage on this stream (ADR
	// 0108); the fields above are for logfmt.
	json *jsonStreamKeys
	// nslots: the key's slots (p.only, or a json stage's parameters).
	nslots int
}

func newStreamMemo(p *ParserStage, stream labels.Labels) *streamMemo {
	m := &streamMemo{nslots: len(p.only)}
	if p.Kind == "json" {
		if len(p.Params) > 0 {
			m.nslots = len(p.Params)
			m.json, _ = newJSONPathKeys(p.Params) // newMemoPlan checked it
			return m
		}
		m.json = newJSONStreamKeys(p, stream)
		return m
	}
	for i, k := range p.only {
		if stream.Has(k) {
			x := slices.Index(p.only, k+"_extracted")
			if x < 0 {
				continue // set as k_extracted, which nothing reads
			}
			if !stream.Has(k + "_extracted") {
				m.clash = append(m.clash, [2]int{i, x})
			}
		}
		m.keq = append(m.keq, k+"=")
		m.slot = append(m.slot, i)
		m.sanitized = m.sanitized || strings.Contains(k, "_")
	}
	return m
}

type memoSet struct {
	md  labels.Labels
	out map[string]memoOutcome
}

// forMetadata returns the outcome map of the metadata set, making it if
// there is room; nil if the stream already has memoMaxSets sets.
func (m *streamMemo) forMetadata(md labels.Labels) map[string]memoOutcome {
	if m.last < len(m.sets) && labels.Equal(m.sets[m.last].md, md) {
		return m.sets[m.last].out
	}
	for i := range m.sets {
		if labels.Equal(m.sets[i].md, md) {
			m.last = i
			return m.sets[i].out
		}
	}
	if len(m.sets) >= memoMaxSets {
		return nil
	}
	m.sets = append(m.sets, memoSet{md: md, out: map[string]memoOutcome{}})
	m.last = len(m.sets) - 1
	return m.sets[m.last].out
}

// lineKey tokenises line as parseLogfmtNarrowed does and returns the memo
// key: per slot of p.only, 0 if the parser would not set it, or 1, the
// length and the raw value text of its last occurrence. ok is false when
// the line holds a key whose sanitised form could be a wanted label (the
// general path decides those).
func (m *streamMemo) lineKey(p *ParserStage, line string, it interface{ JSONObjects() bool }) (key []byte, ok bool) {
	var set uint32
	if m.json != nil {
		if m.json.off {
			return nil, false
		}
		// it, when not nil, says whether the line's chunk claims
		// JSONObjects (ADR 0109).
		claimed := it != nil && it.JSONObjects()
		if _, ok := jsonRawValues(line, m.json, &m.vals, &set, claimed); !ok {
			return nil, false
		}
	} else if m.sanitized {
		if !logfmtRawValues(line, p.only, true, &m.vals, &set) {
			return nil, false
		}
	} else {
		m.rawValues(line, &set)
	}
	for _, c := range m.clash {
		if set&(1<<c[0]) != 0 && set&(1<<c[1]) != 0 {
			return nil, false
		}
	}
	k := m.key[:0]
	for i := range m.nslots {
		if set&(1<<i) == 0 {
			k = append(k, 0)
			continue
		}
		k = append(k, 1)
		k = binary.AppendUvarint(k, uint64(len(m.vals[i])))
		k = append(k, m.vals[i]...)
	}
	m.key = k
	return k, true
}

// logfmtRawValues finds the raw text (quotes included; an unterminated
// quoted value runs to the end of the line) of the last value of each key
// in only, with exactly parseLogfmtNarrowed's pair boundaries. It reports
// false for a line with a key that needs sanitising when sanitizedMatter.
func logfmtRawValues(line string, only []string, sanitizedMatter bool, vals *[memoMaxSlots]string, set *uint32) bool {
	i, n := 0, len(line)
	for i < n {
		for i < n && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i >= n {
			break
		}
		ks := i
		i = logfmtKeyEnd(line, i)
		if i >= n || line[i] != '=' {
			continue // a key without a value: dropped (no --keep-empty)
		}
		key := line[ks:i]
		i++
		slot := -1
		if key != "" {
			slot = slices.Index(only, key)
			if slot < 0 && sanitizedMatter && !plainLabelName(key) {
				return false
			}
		}
		vs := i
		i = logfmtPairEnd(line, i)
		if slot >= 0 {
			vals[slot] = line[vs:i]
			*set |= 1 << slot
		}
	}
	return true
}

// rawValues is logfmtRawValues for a stage where no sanitised key can be
// wanted, without tokenising every pair. In the part of the line before
// the first double quote (up to the start of the pair holding it), pairs
// are separated by spaces and tabs only, so a pair has key K exactly where
// "K=" starts the line or follows a space or tab: strings.Index finds
// those. The rest of the line, if it holds some "K=" at all, is tokenised
// from that pair on. The last occurrence of a key wins, as in the parser.
func (m *streamMemo) rawValues(line string, set *uint32) {
	ts := len(line) // where tokenising starts
	if q := strings.IndexByte(line, '"'); q >= 0 {
		ts = q // back to the start of the pair holding the quote
		for ts > 0 && line[ts-1] != ' ' && line[ts-1] != '\t' {
			ts--
		}
	}
	prefix := line[:ts]
	tail := false
	for j, k := range m.keq {
		for from := 0; ; {
			p := strings.Index(prefix[from:], k)
			if p < 0 {
				break
			}
			p += from
			from = p + len(k)
			if p > 0 && prefix[p-1] != ' ' && prefix[p-1] != '\t' {
				continue
			}
			m.vals[m.slot[j]] = prefix[from:logfmtValueEnd(prefix, from)]
			*set |= 1 << m.slot[j]
		}
		tail = tail || ts < len(line) && strings.Contains(line[ts:], k)
	}
	if !tail {
		return
	}
	i, n := ts, len(line)
	for i < n {
		for i < n && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i >= n {
			break
		}
		ks := i
		i = logfmtKeyEnd(line, i)
		if i >= n || line[i] != '=' {
			continue
		}
		key := line[ks:i]
		i++
		slot := -1
		for j, k := range m.keq {
			if len(k) == len(key)+1 && k[:len(key)] == key {
				slot = m.slot[j]
				break
			}
		}
		vs := i
		i = logfmtPairEnd(line, i)
		if slot >= 0 {
			m.vals[slot] = line[vs:i]
			*set |= 1 << slot
		}
	}
}

// logfmtPairEnd is where the value starting at i ends, as
// parseLogfmtNarrowed finds it: past the closing quote of a quoted value
// (escape-aware; the end of the line if there is none), else at the next
// space or tab.
func logfmtPairEnd(line string, i int) int {
	n := len(line)
	if i >= n || line[i] != '"' {
		return logfmtValueEnd(line, i)
	}
	if q := strings.IndexByte(line[i+1:], '"'); q >= 0 && strings.IndexByte(line[i+1:i+1+q], '\\') < 0 {
		return i + 2 + q
	}
	j := i + 1
	for j < n && line[j] != '"' {
		if line[j] == '\\' {
			j++
		}
		j++
	}
	if j < n {
		return j + 1
	}
	return n
}

// plainLabelName: a valid label name as it stands (no sanitising).
func plainLabelName(k string) bool {
	if k == "" || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	for j := 0; j < len(k); j++ {
		if !logfmtPlain[k[j]] {
			return false
		}
	}
	return true
}
