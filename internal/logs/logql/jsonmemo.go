package logql

import (
	"encoding/json"
	"math/bits"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/logs/jsonscan"
)

// The outcome memo for `| json` (ADR 0108).
//
// The memo of ADR 0103 applies to a narrowed json parser too: what the
// stages make of a valid JSON line depends only on the raw text of the
// values the parser sets for the wanted labels. jsonRawValues finds those
// with one validating pass over the line that accepts exactly what
// encoding/json's Decoder accepts as the first value (an object; what
// follows it is ignored, as the Decoder does), descending only into the
// objects whose flattened names lead to a wanted label. A line that is not
// valid JSON, nests deeper than jsonMemoMaxDepth, or names one wanted
// label (or one object on the way to one) twice — through a duplicate key,
// a flattened `a.b` meeting a literal `a_b`, a sanitised key, or a key
// renamed `k_extracted` — takes the general path: the error labels come
// from the full parser, and which of two values wins there follows Go's
// map order, so no key can record it.

// jsonMemoMaxDepth bounds the nesting the scanner follows (encoding/json
// allows 10000); deeper lines take the general path.
const jsonMemoMaxDepth = 256

// jsonMemoMaxPrefixes bounds the object names on the way to wanted labels.
const jsonMemoMaxPrefixes = 64

// jsonStreamKeys is the part of a stream's memo that says which member
// names matter on the stream: names[j] (a sanitised, flattened name) sets
// slot slots[j] of p.only; prefixes are the names of objects on the way to
// one of those (`a` and `a_b` for `a_b_c`).
type jsonStreamKeys struct {
	names    []string
	slots    []int
	prefixes []string
	// lens has bit n set when some name or prefix is n bytes long (bit 63:
	// 63 or more): a key of plain ASCII keeps its length when sanitised,
	// so one of another length is passed over without building its name.
	lens uint64
	// first[c]: some name or prefix starts with byte c. A top-level key of
	// plain ASCII starts its name with its first byte, or '_' for a digit
	// or another byte sanitised away.
	first [256]bool
	// off: the stream cannot be memoised (too many prefixes).
	off bool
	// want has bit slots[j] set for every j: the slots some member can
	// set. On a line of a chunk that claims JSONObjects (ADR 0109) the
	// scan stops once every one of them was named.
	want uint32
	// paths: names are `| json a="b.c"` paths, their fields joined by
	// NUL, matched against decoded keys as they are (no flattening, no
	// sanitising); an object or array at a path is a value too (jsonPath
	// marshals it).
	paths bool
}

// jsonPathFields splits an extraction path into its fields when it is
// made of dotted fields only (`b.c`); paths with brackets are not
// memoised (`["k"]` of a missing key sets an empty label, `[0]` indexes
// arrays).
func jsonPathFields(expr string) ([]string, bool) {
	if expr == "" || strings.ContainsAny(expr, "[]\x00") {
		return nil, false
	}
	var out []string
	for f := range strings.SplitSeq(expr, ".") {
		if f != "" {
			out = append(out, f)
		}
	}
	return out, len(out) > 0
}

// newJSONPathKeys is newJSONStreamKeys for a json stage with parameters:
// slot i is params[i]'s value. ok is false when a path is not memoised.
func newJSONPathKeys(params []Extraction) (*jsonStreamKeys, bool) {
	k := &jsonStreamKeys{paths: true}
	for i, x := range params {
		fs, ok := jsonPathFields(x.Expr)
		if !ok {
			return nil, false
		}
		k.names = append(k.names, strings.Join(fs, "\x00"))
		k.slots = append(k.slots, i)
		k.want |= 1 << i
		for j := 1; j < len(fs); j++ {
			if pre := strings.Join(fs[:j], "\x00"); !containsString(k.prefixes, pre) {
				k.prefixes = append(k.prefixes, pre)
			}
		}
	}
	k.off = len(k.prefixes) > jsonMemoMaxPrefixes
	return k, true
}

func (k *jsonStreamKeys) mayHaveLen(n int) bool {
	return k.lens&(1<<min(n, 63)) != 0
}

// jsonFirstByte maps a key's first byte to the first byte of its
// sanitised name: itself for a letter or '_', '_' for a digit or other
// ASCII; a backslash or a byte >= 0x80 maps to 0, which jsonStreamKeys.first
// always holds (memberName decodes such keys).
var jsonFirstByte = func() (t [256]byte) {
	for c := range 256 {
		switch {
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			t[c] = byte(c)
		case c == '\\' || c >= 0x80:
			t[c] = 0
		default:
			t[c] = '_'
		}
	}
	return t
}()

// jsonKeyClass: 0 for a byte of a label name, 1 for other ASCII (the key
// is sanitised byte for byte), 2 for a backslash or a byte >= 0x80 (the
// key's decoded and sanitised length may differ from its raw length).
var jsonKeyClass = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9':
		case c == '\\' || c >= 0x80:
			t[c] = 2
		default:
			t[c] = 1
		}
	}
	return t
}()

func newJSONStreamKeys(p *ParserStage, stream labels.Labels) *jsonStreamKeys {
	k := &jsonStreamKeys{}
	add := func(n string, slot int) {
		k.names = append(k.names, n)
		k.slots = append(k.slots, slot)
		k.want |= 1 << slot
		for i := 1; i < len(n); i++ {
			if n[i] == '_' && i > 0 {
				pre := n[:i]
				if !containsString(k.prefixes, pre) {
					k.prefixes = append(k.prefixes, pre)
				}
			}
		}
	}
	for i, x := range p.only {
		// A member named x sets x unless x is a stream label (then it
		// sets x_extracted); a member named b sets b_extracted = x when b
		// is a stream label.
		if !stream.Has(x) {
			add(x, i)
		}
		if b, ok := strings.CutSuffix(x, "_extracted"); ok && b != "" && stream.Has(b) {
			add(b, i)
		}
	}
	k.first[0] = true
	for _, n := range append(slices.Clip(k.names), k.prefixes...) {
		k.lens |= 1 << min(len(n), 63)
		if n != "" {
			k.first[n[0]] = true
		}
	}
	k.off = len(k.prefixes) > jsonMemoMaxPrefixes
	return k
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// jsonScan is one pass of jsonRawValues over a line.
type jsonScan struct {
	line    string
	k       *jsonStreamKeys
	vals    *[memoMaxSlots]string
	set     uint32 // slots with a scalar value
	seen    uint32 // slots named at all (scalar, object or array)
	seenPre uint64 // prefixes named
	// dup: a wanted name or prefix was named twice, or the nesting is
	// deeper than jsonMemoMaxDepth: the general path decides.
	dup bool
	// stop: the line's chunk claims JSONObjects (ADR 0109): the line is
	// a valid object whose member names are plain and distinct, so the
	// scan ends (done) once every slot in k.want was named.
	stop, done bool
}

// jsonRawValues scans line as parseJSON's decoder would and finds the raw
// text of the value of each wanted name in k. valid says whether the
// Decoder accepts the line (an object first, after JSON white space);
// ok is valid and no name was named twice and the nesting is bounded.
//
// claimed says the line comes from a chunk that claims JSONObjects (ADR
// 0109): the store checked that it is a valid object whose member names
// (through objects, flattened) are plain, distinct and none ends in
// "_extracted". Then nothing after the last wanted member can change the
// answer, and the scan stops there (at once when no member can be wanted).
func jsonRawValues(line string, k *jsonStreamKeys, vals *[memoMaxSlots]string, set *uint32, claimed bool) (valid, ok bool) {
	if claimed && k.want == 0 {
		*set = 0
		return true, true
	}
	if claimed && len(k.prefixes) == 0 && !k.paths {
		if jsonClaimedTop(line, k, vals, set) {
			return true, true
		}
	}
	s := jsonScan{line: line, k: k, vals: vals, stop: claimed}
	i := jsonscan.SkipSpace(line, 0)
	if i >= len(line) || line[i] != '{' {
		return false, false
	}
	if _, valid = s.object(i, "", true, 1); !valid {
		return false, false
	}
	*set = s.set
	return true, !s.dup
}

// jsonClaimedTop finds the wanted top-level members of a claimed line
// (ADR 0109) by searching for their keys instead of walking the members
// before them, when every wanted name is a plain top-level key (no
// prefixes, no paths). In a claimed line keys are written without escapes
// and no name appears twice, and a string cannot hold an unescaped quote,
// so `"name"` followed by a colon, its quote not after a backslash, is the
// key name; it is a member of the top object when no '{', '[' or '}' byte
// lies between the line's opening brace and it. A name with no such key
// anywhere is absent. false: some key lies deeper, or after a brace; the
// caller walks the line.
func jsonClaimedTop(line string, k *jsonStreamKeys, vals *[memoMaxSlots]string, set *uint32) bool {
	o := jsonscan.SkipSpace(line, 0)
	if o >= len(line) || line[o] != '{' {
		return false
	}
	var got uint32
	for j, n := range k.names {
		if n == "" {
			return false
		}
		slot := k.slots[j]
		for from := o + 1; ; {
			q := strings.Index(line[from:], n)
			if q < 0 {
				break // absent
			}
			p := from + q // the name's first byte
			from = p + 1
			e := p + len(n)
			if p-1 <= o || line[p-1] != '"' || line[p-2] == '\\' || e >= len(line) || line[e] != '"' {
				continue
			}
			v := jsonscan.SkipSpace(line, e+1)
			if v >= len(line) || line[v] != ':' {
				continue // a string value, not a key
			}
			seg := line[o+1 : p]
			if strings.IndexByte(seg, '{') >= 0 || strings.IndexByte(seg, '[') >= 0 || strings.IndexByte(seg, '}') >= 0 {
				return false
			}
			if v = jsonscan.SkipSpace(line, v+1); v >= len(line) {
				return false
			}
			var end int
			var ok bool
			switch line[v] {
			case '{', '[':
				// An object or array sets no label.
			default:
				if end, ok = jsonscan.ScalarEnd(line, v); !ok {
					return false
				}
				vals[slot] = line[v:end]
				got |= 1 << slot
			}
			break
		}
	}
	*set = got
	return true
}

// object scans the object at line[i] == '{' and returns the index after
// its '}'. When relevant, its members' flattened names are prefix_key
// (key alone at the top) and are looked up among the wanted names.
func (s *jsonScan) object(i int, prefix string, relevant bool, depth int) (int, bool) {
	line := s.line
	if depth > jsonMemoMaxDepth {
		s.dup = true
		relevant = false
	}
	i = jsonscan.SkipSpace(line, i+1)
	if i < len(line) && line[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(line) || line[i] != '"' {
			return 0, false
		}
		ks := i + 1
		ke := -1
		// Most keys close within eight bytes: no call for those.
		if ks+8 <= len(line) {
			x := jsonscan.Load64(line, ks)
			if m := jsonscan.Special(x); m != 0 {
				if q := ks + bits.TrailingZeros64(m)/8; line[q] == '"' {
					ke = q + 1
				}
			}
		}
		if ke < 0 {
			if ke = jsonscan.StringEnd(line, ks); ke < 0 {
				return 0, false
			}
		}
		if ke+1 < len(line) && line[ke] == ':' && line[ke+1] > ' ' {
			i = ke + 1 // compact JSON
		} else {
			i = jsonscan.SkipSpace(line, ke)
			if i >= len(line) || line[i] != ':' {
				return 0, false
			}
			i = jsonscan.SkipSpace(line, i+1)
			if i >= len(line) {
				return 0, false
			}
		}
		slot, pre := -1, -1
		var name string
		if relevant && (s.k.paths || prefix != "" || ks == ke-1 || s.k.first[jsonFirstByte[line[ks]]]) {
			name = s.memberName(prefix, line[ks-1:ke])
			if name != "" {
				for j, n := range s.k.names {
					if n == name {
						slot = s.k.slots[j]
						if s.seen&(1<<slot) != 0 {
							s.dup = true
						}
						s.seen |= 1 << slot
						break
					}
				}
				for j, n := range s.k.prefixes {
					if n == name {
						pre = j
						if s.seenPre&(1<<j) != 0 {
							s.dup = true
						}
						s.seenPre |= 1 << j
						break
					}
				}
			}
		}
		if relevant && prefix == "" && ke == ks+1 && !s.k.paths && line[i] == '{' {
			// An object under the empty key at the top: parseJSON
			// flattens its members as top-level ones ({"":{"a":1}} sets
			// a). Rare: the general path decides.
			s.dup = true
		}
		vs := i
		var ok bool
		switch line[i] {
		case '{':
			if slot >= 0 && s.k.paths && s.stop {
				// Its raw text is a value: no stop inside it.
				s.stop = false
				i, ok = s.object(i, name, pre >= 0, depth+1)
				s.stop = true
			} else {
				i, ok = s.object(i, name, pre >= 0, depth+1)
			}
			if ok && slot >= 0 && s.k.paths {
				s.vals[slot] = line[vs:i]
				s.set |= 1 << slot
			}
		case '[':
			i, ok = s.array(i, depth+1)
			if ok && slot >= 0 && s.k.paths {
				s.vals[slot] = line[vs:i]
				s.set |= 1 << slot
			}
		case '"':
			e := -1
			if i+9 <= len(line) { // most values close within eight bytes too
				x := jsonscan.Load64(line, i+1)
				if m := jsonscan.Special(x); m != 0 {
					if q := i + 1 + bits.TrailingZeros64(m)/8; line[q] == '"' {
						e = q + 1
					}
				}
			}
			if e < 0 {
				e = jsonscan.StringEnd(line, i+1)
			}
			i, ok = e, e >= 0
			if ok && slot >= 0 {
				s.vals[slot] = line[vs:i]
				s.set |= 1 << slot
			}
		default:
			i, ok = jsonscan.ScalarEnd(line, i)
			if ok && slot >= 0 {
				s.vals[slot] = line[vs:i]
				s.set |= 1 << slot
			}
		}
		if !ok {
			return 0, false
		}
		if s.stop && relevant && s.seen&s.k.want == s.k.want {
			// Only where members are looked up: an object inside an array
			// (or any value nobody looks into) is scanned to its end, since
			// array does not stop early, and its caller stops after it.
			s.done = true
			return i, true
		}
		i = jsonscan.SkipSpace(line, i)
		if i >= len(line) {
			return 0, false
		}
		switch line[i] {
		case ',':
			i = jsonscan.SkipSpace(line, i+1)
		case '}':
			return i + 1, true
		default:
			return 0, false
		}
	}
}

// memberName is the sanitised label name parseJSON gives the member with
// the quoted key raw inside an object named prefix, or "" when no wanted
// name or prefix can be that long.
func (s *jsonScan) memberName(prefix, raw string) string {
	key := raw[1 : len(raw)-1]
	if s.k.paths {
		if strings.IndexByte(key, 0x5c) >= 0 || !isASCII(key) { // a backslash or non-ASCII: decode
			var u string
			if err := json.Unmarshal([]byte(raw), &u); err != nil {
				s.dup = true
				return ""
			}
			key = u
		}
		if strings.IndexByte(key, 0) >= 0 {
			s.dup = true // NUL joins path fields
			return ""
		}
		if prefix != "" {
			return prefix + "\x00" + key
		}
		return key
	}
	if prefix == "" && key != "" {
		switch c := key[0]; jsonKeyClass[c] {
		case 0:
			if c >= '0' && c <= '9' {
				c = '_'
			}
			if !s.k.first[c] {
				return ""
			}
		case 1:
			if !s.k.first['_'] {
				return ""
			}
		}
	}
	var cls uint8
	for j := 0; j < len(key); j++ {
		cls |= jsonKeyClass[key[j]]
	}
	if cls < 2 {
		n := len(key)
		if prefix != "" {
			n += len(prefix) + 1
		}
		if !s.k.mayHaveLen(n) {
			return ""
		}
		if prefix == "" && cls == 0 && key != "" && (key[0] < '0' || key[0] > '9') {
			return key
		}
	} else {
		var u string
		if err := json.Unmarshal([]byte(raw), &u); err != nil {
			s.dup = true // cannot happen for a scanned string; be safe
			return ""
		}
		key = u
	}
	if prefix != "" {
		key = prefix + "_" + key
	}
	return sanitizeLabelName(key)
}

// array scans the array at line[i] == '['; parseJSON sets no label from
// an array, so nothing in it is looked up.
func (s *jsonScan) array(i int, depth int) (int, bool) {
	line := s.line
	if depth > jsonMemoMaxDepth {
		s.dup = true
	}
	i = jsonscan.SkipSpace(line, i+1)
	if i < len(line) && line[i] == ']' {
		return i + 1, true
	}
	for {
		if i >= len(line) {
			return 0, false
		}
		var ok bool
		switch line[i] {
		case '{':
			i, ok = s.object(i, "", false, depth+1)
		case '[':
			i, ok = s.array(i, depth+1)
		default:
			i, ok = jsonscan.ScalarEnd(line, i)
		}
		if !ok {
			return 0, false
		}
		i = jsonscan.SkipSpace(line, i)
		if i >= len(line) {
			return 0, false
		}
		switch line[i] {
		case ',':
			i = jsonscan.SkipSpace(line, i+1)
		case ']':
			return i + 1, true
		default:
			return 0, false
		}
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
