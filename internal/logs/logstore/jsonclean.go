package logstore

import (
	"bytes"
	"unsafe"

	"github.com/nx-watcher/nxwatcher/internal/logs/jsonscan"
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
	b     string // the line (viewed, not copied)
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
	// A view, not a copy: c.b is read only during this call.
	return c.lineString(unsafe.String(unsafe.SliceData(b), len(b)))
}

func (c *jsonChecker) lineString(s string) bool {
	c.names = c.names[:0]
	c.offs = c.offs[:0]
	i := jsonscan.SkipSpace(s, 0)
	if i >= len(s) || s[i] != '{' {
		return false
	}
	c.b = s
	_, ok := c.object(i, 0, 0, true, 1)
	c.b = ""
	return ok && c.distinct()
}

// object checks the object at b[i] == '{' and returns the index after its
// '}'. When named, its members' names are recorded, flattened under the
// name c.names[ps:pe] (none at the top).
func (c *jsonChecker) object(i, ps, pe int, named bool, depth int) (int, bool) {
	if depth > jsonCleanMaxDepth {
		return 0, false
	}
	b := c.b
	i = jsonscan.SkipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, false
		}
		ke := jsonscan.ShortStringEnd(b, i+1)
		if ke < 0 {
			return 0, false
		}
		key := b[i+1 : ke-1]
		ns, ne := 0, 0
		// Keys of objects inside arrays set no label, but the query's
		// early-stopping scan still reads them: they must be plain too.
		if !plainKey(key) {
			return 0, false
		}
		if named {
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
		i = jsonscan.SkipSpace(b, ke)
		if i >= len(b) || b[i] != ':' {
			return 0, false
		}
		if i = jsonscan.SkipSpace(b, i+1); i >= len(b) {
			return 0, false
		}
		var ok bool
		switch b[i] {
		case '{':
			i, ok = c.object(i, ns, ne, named, depth+1)
		case '[':
			i, ok = c.array(i, depth+1)
		default:
			i, ok = jsonscan.ScalarEnd(b, i)
		}
		if !ok {
			return 0, false
		}
		if i = jsonscan.SkipSpace(b, i); i >= len(b) {
			return 0, false
		}
		switch b[i] {
		case ',':
			i = jsonscan.SkipSpace(b, i+1)
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
	i = jsonscan.SkipSpace(b, i+1)
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
			i, ok = jsonscan.ScalarEnd(b, i)
		}
		if !ok {
			return 0, false
		}
		if i = jsonscan.SkipSpace(b, i); i >= len(b) {
			return 0, false
		}
		switch b[i] {
		case ',':
			i = jsonscan.SkipSpace(b, i+1)
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

func plainKey(k string) bool {
	if len(k) == 0 || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	for i := 0; i < len(k); i++ {
		if ch := k[i]; !(ch == '_' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9') {
			return false
		}
	}
	return true
}

// JSONObjectLine reports whether line meets the claim a chunk's
// JSONObjects makes of each of its lines (for tests of the query side).
func JSONObjectLine(line string) bool {
	var c jsonChecker
	return c.lineString(line)
}
