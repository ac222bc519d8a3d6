package logql

import (
	"errors"
	"strings"
)

// pattern is a compiled `pattern` expression: literals and <captures>.
type pattern struct {
	parts []patPart
}

type patPart struct {
	literal string
	capture string // "" for a literal; "_" for an unnamed capture
}

// compilePattern reads "<ip> - <_> [<ts>] ...". A filter pattern (|>) may
// use only <_> captures and needs no named one.
func compilePattern(s string, filter bool) (*pattern, error) {
	p := &pattern{}
	named := 0
	for len(s) > 0 {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			p.parts = append(p.parts, patPart{literal: s})
			break
		}
		j := strings.IndexByte(s[i:], '>')
		name := ""
		if j > 0 {
			name = s[i+1 : i+j]
		}
		if j < 0 || !validCaptureName(name) {
			// Not a capture: keep '<' as literal text.
			p.parts = appendLiteral(p.parts, s[:i+1])
			s = s[i+1:]
			continue
		}
		if i > 0 {
			p.parts = appendLiteral(p.parts, s[:i])
		}
		if n := len(p.parts); n > 0 && p.parts[n-1].capture != "" {
			return nil, errors.New("two captures must be separated by literal text")
		}
		p.parts = append(p.parts, patPart{capture: name})
		if name != "_" {
			named++
		}
		s = s[i+j+1:]
	}
	if !filter && named == 0 {
		return nil, errors.New("at least one named capture is needed")
	}
	return p, nil
}

func appendLiteral(parts []patPart, lit string) []patPart {
	if n := len(parts); n > 0 && parts[n-1].capture == "" {
		parts[n-1].literal += lit
		return parts
	}
	return append(parts, patPart{literal: lit})
}

func validCaptureName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		if !isIdentChar(n[i]) {
			return false
		}
	}
	return isIdentStart(n[0])
}

// match walks the line; a capture runs up to the next literal (or line end).
func (p *pattern) match(line string, fn func(name, value string)) bool {
	for i, part := range p.parts {
		if part.capture == "" {
			if i == 0 {
				if !strings.HasPrefix(line, part.literal) {
					return false
				}
				line = line[len(part.literal):]
			}
			continue
		}
		var val string
		if i+1 < len(p.parts) {
			lit := p.parts[i+1].literal
			k := strings.Index(line, lit)
			if k < 0 {
				return false
			}
			val, line = line[:k], line[k+len(lit):]
		} else {
			val, line = line, ""
		}
		if fn != nil && part.capture != "_" {
			fn(part.capture, val)
		}
	}
	return true
}
