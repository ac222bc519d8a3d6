package tracestore

import (
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Posting keys name what a span carries: "span.<attr>", "resource.<attr>",
// "event.<attr>" and "link.<attr>" (attributes of its events and links), or
// the intrinsics "name", "status" and "kind". Values are typed: the first
// byte says the type (s string, i int, f float, b bool, k keyword) and the
// rest is the value's text, so `.code = 200` never matches the string "200".
const (
	KeyName   = "name"
	KeyStatus = "status"
	KeyKind   = "kind"
)

// maxIndexedValueLen keeps long values (SQL, URLs with IDs) out of postings.
const maxIndexedValueLen = 256

// TypedValue is one value of a tag, as the v2 tag-values API reports it.
type TypedValue struct {
	Type  string // "string", "int", "float", "bool", "keyword"
	Value string
}

// EncodeValue returns the posting form of a typed value.
func EncodeValue(v TypedValue) string {
	switch v.Type {
	case "int":
		return "i" + v.Value
	case "float":
		return "f" + v.Value
	case "bool":
		return "b" + v.Value
	case "keyword":
		return "k" + v.Value
	default:
		return "s" + v.Value
	}
}

// DecodeValue is EncodeValue's inverse.
func DecodeValue(s string) TypedValue {
	if s == "" {
		return TypedValue{Type: "string"}
	}
	t := map[byte]string{'i': "int", 'f': "float", 'b': "bool", 'k': "keyword", 's': "string"}[s[0]]
	if t == "" {
		t = "string"
	}
	return TypedValue{Type: t, Value: s[1:]}
}

// attrValue encodes a scalar attribute; ok is false for maps, slices, bytes
// and values too long to index.
func attrValue(v pcommon.Value) (string, bool) {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		s := v.Str()
		if len(s) > maxIndexedValueLen {
			return "", false
		}
		return "s" + s, true
	case pcommon.ValueTypeInt:
		return "i" + strconv.FormatInt(v.Int(), 10), true
	case pcommon.ValueTypeDouble:
		return "f" + strconv.FormatFloat(v.Double(), 'g', -1, 64), true
	case pcommon.ValueTypeBool:
		return "b" + strconv.FormatBool(v.Bool()), true
	}
	return "", false
}

// StatusKeyword and KindKeyword spell intrinsics as TraceQL does.
func StatusKeyword(c ptrace.StatusCode) string {
	switch c {
	case ptrace.StatusCodeOk:
		return "ok"
	case ptrace.StatusCodeError:
		return "error"
	}
	return "unset"
}

func KindKeyword(k ptrace.SpanKind) string {
	switch k {
	case ptrace.SpanKindInternal:
		return "internal"
	case ptrace.SpanKindServer:
		return "server"
	case ptrace.SpanKindClient:
		return "client"
	case ptrace.SpanKindProducer:
		return "producer"
	case ptrace.SpanKindConsumer:
		return "consumer"
	}
	return "unspecified"
}

// forEachPosting calls fn for every (key, value) a trace carries; indexed is
// false when a value exists but cannot be indexed.
func forEachPosting(td ptrace.Traces, fn func(key, value string, indexed bool)) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		rs.Resource().Attributes().Range(func(k string, v pcommon.Value) bool {
			val, ok := attrValue(v)
			fn("resource."+k, val, ok)
			return true
		})
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			sp := sss.At(j).Spans()
			for k := 0; k < sp.Len(); k++ {
				s := sp.At(k)
				if len(s.Name()) <= maxIndexedValueLen {
					fn(KeyName, "s"+s.Name(), true)
				} else {
					fn(KeyName, "", false)
				}
				fn(KeyStatus, "k"+StatusKeyword(s.Status().Code()), true)
				fn(KeyKind, "k"+KindKeyword(s.Kind()), true)
				s.Attributes().Range(func(k string, v pcommon.Value) bool {
					val, ok := attrValue(v)
					fn("span."+k, val, ok)
					return true
				})
				for e := 0; e < s.Events().Len(); e++ {
					s.Events().At(e).Attributes().Range(func(k string, v pcommon.Value) bool {
						val, ok := attrValue(v)
						fn("event."+k, val, ok)
						return true
					})
				}
				for l := 0; l < s.Links().Len(); l++ {
					s.Links().At(l).Attributes().Range(func(k string, v pcommon.Value) bool {
						val, ok := attrValue(v)
						fn("link."+k, val, ok)
						return true
					})
				}
			}
		}
	}
}

// tagSet is the head's set of tag names and (capped) values. It is keyed
// without building posting strings, because it is updated on every ingest.
type tagSet struct {
	limit int
	keys  map[tagKey]map[tagValue]struct{}
}

type tagKey struct {
	scope byte // 's' span, 'r' resource, 'e' event, 'l' link, 'i' intrinsic
	name  string
}

type tagValue struct {
	typ byte // posting type byte: s i f b k
	s   string
	n   int64
	f   float64
}

func (v tagValue) encode() string {
	switch v.typ {
	case 'i':
		return "i" + strconv.FormatInt(v.n, 10)
	case 'f':
		return "f" + strconv.FormatFloat(v.f, 'g', -1, 64)
	}
	return string(v.typ) + v.s
}

func (k tagKey) encode() string {
	switch k.scope {
	case 's':
		return "span." + k.name
	case 'r':
		return "resource." + k.name
	case 'e':
		return "event." + k.name
	case 'l':
		return "link." + k.name
	}
	return k.name
}

func parseTagKey(key string) tagKey {
	switch scope, name := SplitTagKey(key); scope {
	case "span":
		return tagKey{'s', name}
	case "resource":
		return tagKey{'r', name}
	case "event":
		return tagKey{'e', name}
	case "link":
		return tagKey{'l', name}
	default:
		return tagKey{'i', name}
	}
}

func newTagSet(limit int) *tagSet {
	return &tagSet{limit: limit, keys: map[tagKey]map[tagValue]struct{}{}}
}

func (t *tagSet) add(k tagKey, v tagValue, indexed bool) {
	vals := t.keys[k]
	if vals == nil {
		vals = map[tagValue]struct{}{}
		t.keys[k] = vals
	}
	if indexed && len(vals) < t.limit {
		vals[v] = struct{}{}
	}
}

func toTagValue(v pcommon.Value) (tagValue, bool) {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		if len(v.Str()) > maxIndexedValueLen {
			return tagValue{}, false
		}
		return tagValue{typ: 's', s: v.Str()}, true
	case pcommon.ValueTypeInt:
		return tagValue{typ: 'i', n: v.Int()}, true
	case pcommon.ValueTypeDouble:
		return tagValue{typ: 'f', f: v.Double()}, true
	case pcommon.ValueTypeBool:
		if v.Bool() {
			return tagValue{typ: 'b', s: "true"}, true
		}
		return tagValue{typ: 'b', s: "false"}, true
	}
	return tagValue{}, false
}

func addTraceTags(t *tagSet, td ptrace.Traces) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		rs.Resource().Attributes().Range(func(k string, v pcommon.Value) bool {
			tv, ok := toTagValue(v)
			t.add(tagKey{'r', k}, tv, ok)
			return true
		})
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			sp := sss.At(j).Spans()
			for k := 0; k < sp.Len(); k++ {
				s := sp.At(k)
				t.add(tagKey{'i', KeyName}, tagValue{typ: 's', s: s.Name()}, len(s.Name()) <= maxIndexedValueLen)
				t.add(tagKey{'i', KeyStatus}, tagValue{typ: 'k', s: StatusKeyword(s.Status().Code())}, true)
				t.add(tagKey{'i', KeyKind}, tagValue{typ: 'k', s: KindKeyword(s.Kind())}, true)
				s.Attributes().Range(func(k string, v pcommon.Value) bool {
					tv, ok := toTagValue(v)
					t.add(tagKey{'s', k}, tv, ok)
					return true
				})
				for e := 0; e < s.Events().Len(); e++ {
					s.Events().At(e).Attributes().Range(func(k string, v pcommon.Value) bool {
						tv, ok := toTagValue(v)
						t.add(tagKey{'e', k}, tv, ok)
						return true
					})
				}
				for l := 0; l < s.Links().Len(); l++ {
					s.Links().At(l).Attributes().Range(func(k string, v pcommon.Value) bool {
						tv, ok := toTagValue(v)
						t.add(tagKey{'l', k}, tv, ok)
						return true
					})
				}
			}
		}
	}
}

// SplitTagKey splits "span.http.method" into ("span", "http.method"), and
// likewise "resource.", "event." and "link." keys; intrinsics return
// ("intrinsic", name).
func SplitTagKey(key string) (scope, name string) {
	if s, ok := strings.CutPrefix(key, "event."); ok {
		return "event", s
	}
	if s, ok := strings.CutPrefix(key, "link."); ok {
		return "link", s
	}
	if s, ok := strings.CutPrefix(key, "span."); ok {
		return "span", s
	}
	if s, ok := strings.CutPrefix(key, "resource."); ok {
		return "resource", s
	}
	return "intrinsic", key
}
