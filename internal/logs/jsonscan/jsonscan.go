// Package jsonscan holds the pieces of JSON's grammar that both the log
// store's json-objects chunk check (logstore, ADR 0109) and LogQL's json
// outcome memo (logql, ADR 0108) validate lines with: white space,
// strings, numbers and literals, accepting exactly what encoding/json
// accepts. One copy, so that the store's claim about a chunk and the
// query's reading of its lines cannot drift apart.
package jsonscan

import (
	"math/bits"
	"strings"
	"unsafe"
)

const (
	lo = 0x0101010101010101
	hi = 0x8080808080808080
)

// Has marks the bytes of x equal to c (exact for the lowest marked byte,
// which is all the callers use).
func Has(x uint64, c byte) uint64 {
	y := x ^ (lo * uint64(c))
	return (y - lo) &^ y & hi
}

// Special marks the bytes of x that end a plain run of string body: a
// quote, a backslash or a control byte (exact for the lowest marked byte).
func Special(x uint64) uint64 {
	return Has(x, '"') | Has(x, '\\') | ((x - lo*0x20) &^ x & hi)
}

// Load64 reads s[i:i+8] little-endian without bounds checks: the caller
// ensures i+8 <= len(s).
func Load64(s string, i int) uint64 {
	return *(*uint64)(unsafe.Add(unsafe.Pointer(unsafe.StringData(s)), i))
}

// SkipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func SkipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// ScalarEnd validates the string, number or literal at s[i] and returns
// the index after it.
func ScalarEnd(s string, i int) (int, bool) {
	switch c := s[i]; {
	case c == '"':
		e := ShortStringEnd(s, i+1)
		return e, e >= 0
	case c == 't':
		return i + 4, strings.HasPrefix(s[i:], "true")
	case c == 'f':
		return i + 5, strings.HasPrefix(s[i:], "false")
	case c == 'n':
		return i + 4, strings.HasPrefix(s[i:], "null")
	case c == '-' || c >= '0' && c <= '9':
		return NumberEnd(s, i)
	}
	return 0, false
}

// NumberEnd validates -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at
// s[i] and returns the index after it.
func NumberEnd(s string, i int) (int, bool) {
	if s[i] == '-' {
		i++
	}
	if i >= len(s) {
		return 0, false
	}
	switch {
	case s[i] == '0':
		i++
	case s[i] >= '1' && s[i] <= '9':
		for i++; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		}
	default:
		return 0, false
	}
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return 0, false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return 0, false
		}
	}
	return i, true
}

// ShortStringEnd is StringEnd with a first look at eight bytes: most keys
// and many values close within them.
func ShortStringEnd(s string, i int) int {
	if i+8 <= len(s) {
		if m := Special(Load64(s, i)); m != 0 {
			if q := i + bits.TrailingZeros64(m)/8; s[q] == '"' {
				return q + 1
			}
		}
	}
	return StringEnd(s, i)
}

// StringEnd validates the string whose body starts at s[i] (after the
// opening quote) and returns the index after its closing quote, or -1:
// control bytes are refused, escapes must be JSON's, any other byte
// (invalid UTF-8 included) is accepted, as encoding/json does.
func StringEnd(s string, i int) int {
	for {
		for ; i+16 <= len(s); i += 16 {
			mx, my := Special(Load64(s, i)), Special(Load64(s, i+8))
			if mx|my != 0 {
				if mx != 0 {
					i += bits.TrailingZeros64(mx) / 8
				} else {
					i += 8 + bits.TrailingZeros64(my)/8
				}
				break
			}
		}
		for i < len(s) && s[i] != '"' && s[i] != '\\' && s[i] >= 0x20 {
			i++
		}
		if i >= len(s) {
			return -1
		}
		switch c := s[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		}
		// a backslash
		if i+1 >= len(s) {
			return -1
		}
		switch s[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if i+6 > len(s) {
				return -1
			}
			for j := i + 2; j < i+6; j++ {
				if !IsHex(s[j]) {
					return -1
				}
			}
			i += 6
		default:
			return -1
		}
	}
}

// IsHex reports whether c is a hexadecimal digit.
func IsHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
