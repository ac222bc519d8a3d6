package logstore

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// The json-objects chunk flag (ADR 0109, format version 3).
//
// A `| json` metric query must validate every line in full: an invalid
// line gets __error__="JSONParserErr" and is still counted, and a member
// named twice changes which value wins. When the store has checked, once,
// that every line of a chunk is a JSON object whose member names (reached
// through objects, flattened as `a_b`) are plain label names, distinct,
// and none ends in `_extracted`, a query may stop reading a line of that
// chunk as soon as it has found the members it wants: nothing after them
// can make the line invalid or name one of them again.

// jsonCleanMaxDepth bounds the nesting of a claimed line (the query's
// scanner follows 256 levels).
const jsonCleanMaxDepth = 200

// jsonCleanMaxNames bounds the member names of a claimed line: a line with
// more is not claimed (the pairwise check stays cheap).
const jsonCleanMaxNames = 256

// jsonObjectChunk reports whether every line of v is a jsonObjectLine.
// Lines that are not JSON (logfmt, plain text) fail at their first byte.
func jsonObjectChunk(v *chunkView) bool {
	n := v.len()
	if n == 0 {
		return false
	}
	var c jsonChecker
	for i := range n {
		if !c.line(v.line(i)) {
			return false
		}
	}
	return true
}

// jsonChecker holds the names of the line being checked, reused.
type jsonChecker struct {
	b     []byte
	names []byte // flattened names back to back
	offs  []int  // name k is names[offs[2k]:offs[2k+1]]
}

// line reports whether b is, after JSON white space, a valid JSON object
// (what follows it is not looked at, as encoding/json's Decoder does not)
// nesting at most jsonCleanMaxDepth deep, whose members reached through
// objects have keys [A-Za-z_][A-Za-z0-9_]* written without escapes and
// flattened names (prefix_key) that are pairwise distinct and do not end
// in "_extracted".
func (c *jsonChecker) line(b []byte) bool {
	c.b = b
	c.names = c.names[:0]
	c.offs = c.offs[:0]
	i := jsonWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	if _, ok := c.object(i, 0, 0, true, 1); !ok {
		return false
	}
	return c.distinct()
}

func jsonWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// object checks the object at b[i] == '{' and returns the index after its
// '}'. When named, its members' names are recorded, flattened under the
// name c.names[ps:pe] (none at the top).
func (c *jsonChecker) object(i, ps, pe int, named bool, depth int) (int, bool) {
	if depth > jsonCleanMaxDepth {
		return 0, false
	}
	b := c.b
	i = jsonWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, false
		}
		ke := jsonShortStrEnd(b, i+1)
		if ke < 0 {
			return 0, false
		}
		key := b[i+1 : ke-1]
		ns, ne := 0, 0
		if named {
			if !plainKey(key) {
				return 0, false
			}
			ns = len(c.names)
			if pe > ps {
				c.names = append(c.names, c.names[ps:pe]...)
				c.names = append(c.names, '_')
			}
			c.names = append(c.names, key...)
			ne = len(c.names)
			if bytes.HasSuffix(c.names[ns:ne], []byte("_extracted")) || len(c.offs) >= 2*jsonCleanMaxNames {
				return 0, false
			}
			c.offs = append(c.offs, ns, ne)
		}
		i = jsonWS(b, ke)
		if i >= len(b) || b[i] != ':' {
			return 0, false
		}
		if i = jsonWS(b, i+1); i >= len(b) {
			return 0, false
		}
		var ok bool
		switch b[i] {
		case '{':
			i, ok = c.object(i, ns, ne, named, depth+1)
		case '[':
			i, ok = c.array(i, depth+1)
		default:
			i, ok = jsonScalar(b, i)
		}
		if !ok {
			return 0, false
		}
		if i = jsonWS(b, i); i >= len(b) {
			return 0, false
		}
		switch b[i] {
		case ',':
			i = jsonWS(b, i+1)
		case '}':
			return i + 1, true
		default:
			return 0, false
		}
	}
}

// array checks the array at b[i] == '['; the keys of objects in it are
// not names (json sets no label from an array).
func (c *jsonChecker) array(i, depth int) (int, bool) {
	if depth > jsonCleanMaxDepth {
		return 0, false
	}
	b := c.b
	i = jsonWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, true
	}
	for {
		if i >= len(b) {
			return 0, false
		}
		var ok bool
		switch b[i] {
		case '{':
			i, ok = c.object(i, 0, 0, false, depth+1)
		case '[':
			i, ok = c.array(i, depth+1)
		default:
			i, ok = jsonScalar(b, i)
		}
		if !ok {
			return 0, false
		}
		if i = jsonWS(b, i); i >= len(b) {
			return 0, false
		}
		switch b[i] {
		case ',':
			i = jsonWS(b, i+1)
		case ']':
			return i + 1, true
		default:
			return 0, false
		}
	}
}

// distinct reports whether the recorded names are pairwise distinct.
func (c *jsonChecker) distinct() bool {
	n := len(c.offs) / 2
	for x := 1; x < n; x++ {
		a := c.names[c.offs[2*x]:c.offs[2*x+1]]
		for y := range x {
			// Most pairs differ in length or in their last byte.
			o := c.names[c.offs[2*y]:c.offs[2*y+1]]
			if len(o) == len(a) && o[len(o)-1] == a[len(a)-1] && bytes.Equal(a, o) {
				return false
			}
		}
	}
	return true
}

func plainKey(k []byte) bool {
	if len(k) == 0 || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	for _, ch := range k {
		if !(ch == '_' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9') {
			return false
		}
	}
	return true
}

// jsonScalar checks the string, number or literal at b[i] and returns the
// index after it.
func jsonScalar(b []byte, i int) (int, bool) {
	switch ch := b[i]; {
	case ch == '"':
		e := jsonShortStrEnd(b, i+1)
		return e, e >= 0
	case ch == 't':
		return i + 4, bytes.HasPrefix(b[i:], []byte("true"))
	case ch == 'f':
		return i + 5, bytes.HasPrefix(b[i:], []byte("false"))
	case ch == 'n':
		return i + 4, bytes.HasPrefix(b[i:], []byte("null"))
	case ch == '-' || ch >= '0' && ch <= '9':
		return jsonNum(b, i)
	}
	return 0, false
}

// jsonNum: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func jsonNum(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return 0, false
	}
	switch {
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0, false
		}
	}
	return i, true
}

const (
	jsonLo = 0x0101010101010101
	jsonHi = 0x8080808080808080
)

// jsonHas marks the bytes of x equal to c (exact for the lowest marked
// byte, which is all the callers use).
func jsonHas(x uint64, c byte) uint64 {
	y := x ^ (jsonLo * uint64(c))
	return (y - jsonLo) &^ y & jsonHi
}

// jsonShortStrEnd is jsonStrEnd with a first look at eight bytes: most
// keys and many values close within them.
func jsonShortStrEnd(b []byte, i int) int {
	if i+8 <= len(b) {
		x := binary.LittleEndian.Uint64(b[i:])
		if m := jsonHas(x, '"') | jsonHas(x, '\\') | ((x - jsonLo*0x20) &^ x & jsonHi); m != 0 {
			if q := i + bits.TrailingZeros64(m)/8; b[q] == '"' {
				return q + 1
			}
		}
	}
	return jsonStrEnd(b, i)
}

// jsonStrEnd checks the string whose body starts at b[i] (after the
// opening quote) and returns the index after its closing quote, or -1:
// control bytes are refused, escapes must be JSON's, any other byte
// (invalid UTF-8 included) is accepted, as encoding/json does.
func jsonStrEnd(b []byte, i int) int {
	for {
		for ; i+16 <= len(b); i += 16 {
			x, y := binary.LittleEndian.Uint64(b[i:]), binary.LittleEndian.Uint64(b[i+8:])
			mx := jsonHas(x, '"') | jsonHas(x, '\\') | ((x - jsonLo*0x20) &^ x & jsonHi)
			my := jsonHas(y, '"') | jsonHas(y, '\\') | ((y - jsonLo*0x20) &^ y & jsonHi)
			if mx|my != 0 {
				if mx != 0 {
					i += bits.TrailingZeros64(mx) / 8
				} else {
					i += 8 + bits.TrailingZeros64(my)/8
				}
				break
			}
		}
		for i < len(b) && b[i] != '"' && b[i] != '\\' && b[i] >= 0x20 {
			i++
		}
		if i >= len(b) {
			return -1
		}
		switch ch := b[i]; {
		case ch == '"':
			return i + 1
		case ch < 0x20:
			return -1
		}
		if i+1 >= len(b) {
			return -1
		}
		switch b[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if i+6 > len(b) {
				return -1
			}
			for j := i + 2; j < i+6; j++ {
				if ch := b[j]; !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f' || ch >= 'A' && ch <= 'F') {
					return -1
				}
			}
			i += 6
		default:
			return -1
		}
	}
}

// JSONObjectLine reports whether line meets the claim a chunk's
// JSONObjects makes of each of its lines (for tests of the query side).
func JSONObjectLine(line string) bool {
	var c jsonChecker
	return c.line([]byte(line))
}
